/**
 * User-Agent parsing into coarse fields. The raw string is never stored: pip's and uv's JSON
 * user agents name the kernel release and distribution, which can fingerprint a machine.
 */
export interface ClientInfo {
  client_name: string | null;
  client_version: string | null;
  os: string | null;
  arch: string | null;
  ci: boolean | null;
  bot: boolean;
}

const ARCH: Record<string, string> = {
  x86_64: 'amd64', amd64: 'amd64', x64: 'amd64', i386: '386', i686: '386', ia32: '386', x86: '386',
  aarch64: 'arm64', arm64: 'arm64', armv7l: 'arm', arm: 'arm', ppc64le: 'ppc64le', s390x: 's390x', riscv64: 'riscv64',
};
const OS: Record<string, string> = {
  linux: 'linux', darwin: 'darwin', macos: 'darwin', windows: 'windows', win32: 'windows', freebsd: 'freebsd', openbsd: 'openbsd', android: 'android', ios: 'ios',
};
const normArch = (a: string | undefined | null) => (a ? ARCH[a.toLowerCase()] ?? null : null);
const normOs = (o: string | undefined | null) => (o ? OS[o.toLowerCase()] ?? null : null);
const version = (v: string | undefined) => (v ? v.replace(/^v(?=\d)/, '').slice(0, 32) : null);

const BOT = /bot\b|crawler|spider|slurp|bandersnatch|artifactory|nexus|renovate|dependabot|pingdom|uptime|monitor|prometheus|blackbox|headless/i;

const EMPTY: ClientInfo = { client_name: null, client_version: null, os: null, arch: null, ci: null, bot: false };

/** Registry, package-manager and download clients, most specific first. */
const SIMPLE_CLIENTS: Array<[RegExp, string]> = [
  [/\bcrane\/(v?[\w.+-]+)/, 'crane'],
  [/\bkaniko\/(v?[\w.+-]+)/i, 'kaniko'],
  [/\bgo-containerregistry\/(v?[\w.+-]+)/, 'go-containerregistry'],
  [/\bbuildkit\/(v?[\w.+-]+)/, 'buildkit'],
  [/\bcontainerd\/(v?[\w.+-]+)/, 'containerd'],
  [/\bcri-?o\/(v?[\w.+-]+)/i, 'cri-o'],
  [/\bskopeo\/(v?[\w.+-]+)/i, 'skopeo'],
  [/\bbuildah\/(v?[\w.+-]+)/i, 'buildah'],
  [/\bpodman\/(v?[\w.+-]+)/i, 'podman'],
  [/^containers\/(v?[\w.+-]+) \(github\.com\/containers\/image\)/, 'containers-image'],
  [/^poetry\/(v?[\w.+-]+)/i, 'poetry'],
  [/^curl\/(v?[\w.+-]+)/i, 'curl'],
  [/^wget\/(v?[\w.+-]+)/i, 'wget'],
  [/^Go-http-client\/([\w.]+)/, 'go-http-client'],
  [/^python-requests\/([\w.]+)/, 'python-requests'],
];

function parseDocker(ua: string): ClientInfo | null {
  let m = /^docker\/(\S+)/.exec(ua);
  if (m) {
    return {
      ...EMPTY, client_name: 'docker', client_version: version(m[1]),
      os: normOs(/\bos\/(\w+)/.exec(ua)?.[1]), arch: normArch(/\barch\/(\w+)/.exec(ua)?.[1]),
    };
  }
  m = /Docker-Client\/(\S+?)(?:\s|\\|\)|$)/.exec(ua);
  if (m || ua.includes('Docker-Client')) return { ...EMPTY, client_name: 'docker', client_version: version(m?.[1]), os: normOs(/\((\w+)\)/.exec(ua)?.[1]) };
  return null;
}

/** pip and uv send `name/version {json}` with the platform in the JSON. */
function parsePythonInstaller(ua: string): ClientInfo | null {
  const m = /^(pip|uv)\/(\S+)\s+(\{.*\})\s*$/s.exec(ua);
  if (!m) {
    const bare = /^(pip|uv)\/(\S+)/.exec(ua);
    return bare ? { ...EMPTY, client_name: bare[1], client_version: version(bare[2]) } : null;
  }
  let data: Record<string, unknown> = {};
  try {
    const parsed = JSON.parse(m[3]);
    if (parsed && typeof parsed === 'object') data = parsed as Record<string, unknown>;
  } catch {
    // The prefix alone still names the client.
  }
  const system = (data.system ?? {}) as Record<string, unknown>;
  return {
    ...EMPTY,
    client_name: m[1],
    client_version: version(m[2]),
    os: normOs(typeof system.name === 'string' ? system.name : null),
    arch: normArch(typeof data.cpu === 'string' ? data.cpu : null),
    ci: data.ci === true ? true : null,
  };
}

/** npm, pnpm and yarn: `npm/10.2.4 node/v20.11.0 linux x64 workspaces/false ci/github-actions`. */
function parseNodeInstaller(ua: string): ClientInfo | null {
  const m = /^(npm|pnpm|yarn|bun)\/(\S+)/.exec(ua);
  if (!m) return null;
  const platform = /node\/\S+\s+(\w+)\s+(\w+)/.exec(ua);
  const ci = /\bci\/(\S+)/.exec(ua);
  return {
    ...EMPTY, client_name: m[1], client_version: version(m[2]),
    os: normOs(platform?.[1]), arch: normArch(platform?.[2]),
    ci: ci ? ci[1] !== 'false' : null,
  };
}

function parseBrowser(ua: string): ClientInfo | null {
  if (!ua.startsWith('Mozilla/')) return null;
  const pick = (re: RegExp, name: string) => {
    const m = re.exec(ua);
    return m ? { name, v: m[1] } : null;
  };
  const b = pick(/Edg\/([\d.]+)/, 'edge') ?? pick(/OPR\/([\d.]+)/, 'opera') ?? pick(/Firefox\/([\d.]+)/, 'firefox')
    ?? pick(/Chrom(?:e|ium)\/([\d.]+)/, 'chrome') ?? pick(/Version\/([\d.]+).*Safari\//, 'safari');
  const os = /Android/.test(ua) ? 'android' : /iPhone|iPad|iPod/.test(ua) ? 'ios' : /Windows/.test(ua) ? 'windows'
    : /Mac OS X|Macintosh/.test(ua) ? 'darwin' : /Linux|X11/.test(ua) ? 'linux' : null;
  return { ...EMPTY, client_name: b?.name ?? 'browser', client_version: b ? b.v.split('.')[0] : null, os };
}

export function parseUserAgent(userAgent: string | undefined): ClientInfo {
  if (!userAgent) return EMPTY;
  const ua = userAgent.trim().slice(0, 2048);
  const bot = BOT.test(ua);
  const parsed = parseDocker(ua) ?? parsePythonInstaller(ua) ?? parseNodeInstaller(ua) ?? parseBrowser(ua) ?? parseSimple(ua);
  return { ...(parsed ?? EMPTY), bot };
}

function parseSimple(ua: string): ClientInfo | null {
  for (const [re, name] of SIMPLE_CLIENTS) {
    const m = re.exec(ua);
    if (m) {
      return {
        ...EMPTY, client_name: name, client_version: version(m[1]),
        os: normOs(/\bos\/(\w+)/.exec(ua)?.[1]), arch: normArch(/\barch\/(\w+)/.exec(ua)?.[1]),
      };
    }
  }
  if (ua === 'crio' || /^cri-?o\b/i.test(ua)) return { ...EMPTY, client_name: 'cri-o' };
  return null;
}
