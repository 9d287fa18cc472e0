/**
 * docker-v1 and docker-v2: the OCI distribution API (`/v2/...`) of one registry domain.
 */
import type { DockerMode, DockerV1Rule, DockerV2Rule } from './schema';
import { ImagePattern, matchImagePattern, parseImagePattern } from './image-pattern';
import { registryLabel, Upstream, upstreamOf } from './upstream';
import { followsRegistryRedirects } from './docker-clients';
import { header, REDIRECT_CACHE_CONTROL, type GatewayRequest, type Outcome } from './request';
import type { EventDraft } from './events';

interface DockerTarget {
  readonly upstream: Upstream;
  /** Registry as the rule names it (recorded in events). */
  readonly label: string;
  readonly mode: DockerMode;
  readonly packageId: string | null;
  readonly ruleId: string | null;
  /** Raw (encoded) image path at the upstream, when it differs from the public one. */
  readonly upstreamPath: string | null;
}

export interface DockerIndex {
  /** docker-v1 images by exact name (`library/hello-world`). */
  readonly images: Map<string, DockerTarget>;
  /** docker-v2 patterns, in the order they are tried. */
  readonly patterns: ReadonlyArray<{ pattern: ImagePattern; target: DockerTarget }>;
  /** Where `/v2/` version checks go. */
  readonly ping: DockerTarget;
  /** Upstream hosts the proxy may follow `/v2` redirects to. */
  readonly upstreamHosts: readonly string[];
}

const modeOf = (r: DockerV1Rule | DockerV2Rule): DockerMode => (r['always-proxy'] ? 'proxy' : r.mode ?? 'auto');

/** Rules are given in manifest order, all of one domain. */
export function compileDocker(v1: DockerV1Rule[], v2: DockerV2Rule[]): DockerIndex | null {
  if (!v1.length && !v2.length) return null;
  const images = new Map<string, DockerTarget>();
  for (const r of v1) {
    // Scarf: for an image listed twice, the earlier manifest entry wins (validation warns).
    if (images.has(r['repository-name'])) continue;
    const upstreamName = r['upstream-repository-name'];
    images.set(r['repository-name'], {
      upstream: upstreamOf(r.registry),
      label: registryLabel(r.registry),
      mode: modeOf(r),
      packageId: r['package-id'],
      ruleId: null,
      upstreamPath: upstreamName && upstreamName !== r['repository-name'] ? upstreamName.split('/').map(encodeURIComponent).join('/') : null,
    });
  }
  // Scarf tries docker-v2 rules with equal sort keys in reverse manifest order: the later rule wins.
  const patterns = [...v2].reverse().map((r) => ({
    pattern: parseImagePattern(r.pattern),
    target: { upstream: upstreamOf(r.registry), label: registryLabel(r.registry), mode: modeOf(r), packageId: null, ruleId: r['rule-id'], upstreamPath: null },
  }));
  const ping: DockerTarget = v1.length ? images.get(v1[0]['repository-name'])! : patterns[patterns.length - 1].target;
  const upstreamHosts = [...new Set([...images.values(), ...patterns.map((p) => p.target)].map((t) => t.upstream.host))];
  return { images, patterns, ping: { ...ping, packageId: null, ruleId: null, upstreamPath: null }, upstreamHosts };
}

/** The API parts after the image name that identify a registry request. OCI `referrers` is ours, not Scarf's. */
const ENDPOINTS = new Set(['manifests', 'blobs', 'tags', 'referrers']);

interface ParsedPath {
  image: string[];
  endpoint: string;
  reference: string;
  /** Raw path after the image, starting with `/` (`/manifests/latest`). */
  rawRest: string;
}

function parseRegistryPath(segments: readonly string[] | null, rawPath: string): ParsedPath | null {
  if (!segments || segments[0] !== 'v2') return null;
  // No OCI name, tag or digest is "." or "..": such segments could only walk to another repository upstream.
  if (segments.some((s) => s === '.' || s === '..')) return null;
  for (let k = 2; k < segments.length - 1; k++) {
    if (ENDPOINTS.has(segments[k])) {
      const rawSegs = rawPath.slice(1).split('/');
      return { image: segments.slice(1, k), endpoint: segments[k], reference: segments[k + 1], rawRest: `/${rawSegs.slice(k).join('/')}` };
    }
  }
  return null;
}

function decide(t: DockerTarget, req: GatewayRequest, path: string, followRedirectsTo: readonly string[]): Outcome['decision'] {
  const url = `${t.upstream.baseUrl}${path}${req.rawQuery}`;
  const basicAuth = header(req.headers, 'authorization')?.startsWith('Basic') ?? false;
  const redirect = t.mode === 'redirect' || (t.mode === 'auto' && !basicAuth && followsRegistryRedirects(header(req.headers, 'user-agent')));
  if (redirect) return { type: 'redirect', status: 307, location: url, headers: { 'cache-control': REDIRECT_CACHE_CONTROL } };
  return { type: 'proxy', url, upstreamHost: t.upstream.host, followRedirectsTo, errorStyle: 'oci' };
}

const targetOf = (d: Outcome['decision']): string | null => (d.type === 'redirect' ? d.location : d.type === 'proxy' ? d.url : null);

/** Handles a request on a domain with docker rules; null when no docker rule takes it. */
export function handleDocker(index: DockerIndex, req: GatewayRequest, segments: readonly string[] | null): Omit<Outcome, 'domain'> | null {
  const emptyEvent = (action: EventDraft['action']): EventDraft => ({
    kind: 'docker', action, countable: false, package_id: null, auto_create_rule_id: null,
    image: '', reference: '', upstream: index.ping.label,
  });
  if (req.rawPath === '/v2/_catalog') {
    // Scarf's answer; listing the upstream's repositories would also reveal images that have no rule.
    return {
      decision: { type: 'respond', status: 404, headers: {}, body: '' },
      events: [emptyEvent('not-found')],
    };
  }
  if (req.rawPath === '/v2/') {
    const decision = decide(index.ping, req, '/v2/', index.upstreamHosts);
    const ev = emptyEvent(decision.type === 'redirect' ? 'redirect' : 'proxy');
    ev.target = targetOf(decision);
    return { decision, events: [ev] };
  }
  const p = parseRegistryPath(segments, req.rawPath);
  if (!p) return null;
  const name = p.image.join('/');
  let target = index.images.get(name);
  if (!target) target = index.patterns.find((x) => matchImagePattern(x.pattern, p.image))?.target;
  if (!target) return null;
  const rawImage = req.rawPath.slice('/v2/'.length, req.rawPath.length - p.rawRest.length);
  const path = `/v2/${target.upstreamPath ?? rawImage}${p.rawRest}`;
  const decision = decide(target, req, path, index.upstreamHosts);
  const event: EventDraft = {
    kind: 'docker',
    action: decision.type === 'redirect' ? 'redirect' : 'proxy',
    // Docker Hub's definition: a pull is a GET of a manifest; HEAD, blobs and 401 round trips are not.
    countable: req.method === 'GET' && p.endpoint === 'manifests',
    package_id: target.packageId,
    auto_create_rule_id: target.ruleId,
    image: name,
    reference: p.reference,
    upstream: target.label,
    target: targetOf(decision),
  };
  return { decision, events: [event] };
}
