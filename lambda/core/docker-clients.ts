/**
 * Which container clients may be redirected to another registry host.
 *
 * A redirect to another host only works for clients that re-authenticate there: Go's HTTP client
 * drops `Authorization` on any host change, and podman, skopeo, buildah, CRI-O (containers/image),
 * containerd before 1.4.9/1.5.5, crane before 0.21.8 and kaniko never ask the new host for a token.
 * Everyone not positively known to cope is proxied. See docs/ARCHITECTURE.md, "Redirect or proxy".
 */

type Version = [number, number, number];

function parseVersion(s: string): Version | null {
  const m = /^v?(\d+)\.(\d+)(?:\.(\d+))?/.exec(s);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : null;
}

function atLeast(v: Version, min: Version): boolean {
  for (let i = 0; i < 3; i++) if (v[i] !== min[i]) return v[i] > min[i];
  return true;
}

function containerdReauthenticates(v: Version): boolean {
  const [major, minor] = v;
  if (major >= 2) return true;
  if (major !== 1) return false;
  if (minor >= 6) return true;
  if (minor === 5) return atLeast(v, [1, 5, 5]);
  if (minor === 4) return atLeast(v, [1, 4, 9]);
  return false;
}

/** True when this User-Agent belongs to a client that follows a registry redirect and re-authenticates at the new host. */
export function followsRegistryRedirects(userAgent: string | undefined): boolean {
  if (!userAgent) return false;
  const ua = userAgent.trim();
  // Docker Engine ("docker/24.0.7 go/... UpstreamClient(Docker-Client/24.0.7 (linux))") re-authenticates with the challenge of its /v2/ ping.
  if (ua.startsWith('docker/') || ua.includes('Docker-Client')) return true;
  if (ua === 'Watchtower (Docker)') return true;
  const containerd = /(?:^|[\s(])containerd\/(v?\d+\.\d+(?:\.\d+)?)/.exec(ua);
  if (containerd) {
    const v = parseVersion(containerd[1]);
    return v !== null && containerdReauthenticates(v);
  }
  const ggcr = /go-containerregistry\/(v?\d+\.\d+(?:\.\d+)?)/.exec(ua);
  if (ggcr && !/kaniko/i.test(ua)) {
    const v = parseVersion(ggcr[1]);
    return v !== null && atLeast(v, [0, 21, 8]);
  }
  return false;
}
