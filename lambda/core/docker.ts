/**
 * docker-v1 and docker-v2: the OCI distribution API (`/v2/...`) of one registry domain.
 */
import { encodeUnsafe } from './encoding';
import type { DockerMode, DockerV1Rule, DockerV2Rule } from './schema';
import { ImagePattern, matchImagePattern, parseImagePattern } from './image-pattern';
import { registryLabel, Upstream, upstreamOf } from './upstream';
import { followsRegistryRedirects } from './docker-clients';
import { header, REDIRECT_CACHE_CONTROL, requestHost, type GatewayRequest, type Outcome } from './request';
import type { EventDraft } from './events';
import { decodeGatewayToken, formatScope, gatewayChallenge, realmOf, requestedScopes, TOKEN_PATH } from './registry-auth';

interface DockerTarget {
  readonly upstream: Upstream;
  /** Registry as the rule names it (recorded in events). */
  readonly label: string;
  readonly mode: DockerMode;
  readonly packageId: string | null;
  readonly ruleId: string | null;
  /** Raw (encoded) image path at the upstream, when it differs from the public one. */
  readonly upstreamPath: string | null;
  /** The same, decoded (`acme-corp/rocket-skates`), for token scopes. */
  readonly upstreamName: string | null;
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
  /**
   * The domain fronts several upstream registries or renames repositories: the gateway answers
   * the `/v2/` challenge with its own token realm (registry-auth.ts) and proxies every request.
   */
  readonly ownRealm: boolean;
}

const modeOf = (r: DockerV1Rule | DockerV2Rule): DockerMode => (r['always-proxy'] ? 'proxy' : r.mode ?? 'auto');

/**
 * True when a domain's docker rules need the gateway's own token realm: they name more than one
 * upstream registry, or serve a repository under another name upstream. Rules must be valid.
 */
export function usesGatewayRealm(rules: ReadonlyArray<DockerV1Rule | DockerV2Rule>): boolean {
  const bases = new Set(rules.map((r) => upstreamOf(r.registry).baseUrl));
  const renamed = rules.some((r) => r.type === 'docker-v1' && r['upstream-repository-name'] && r['upstream-repository-name'] !== r['repository-name']);
  return bases.size > 1 || renamed;
}

/** Rules are given in manifest order, all of one domain. */
export function compileDocker(v1: DockerV1Rule[], v2: DockerV2Rule[]): DockerIndex | null {
  if (!v1.length && !v2.length) return null;
  const images = new Map<string, DockerTarget>();
  for (const r of v1) {
    // Scarf: for an image listed twice, the earlier manifest entry wins (validation warns).
    if (images.has(r['repository-name'])) continue;
    const upstreamName = r['upstream-repository-name'];
    const renamed = upstreamName && upstreamName !== r['repository-name'] ? upstreamName : null;
    images.set(r['repository-name'], {
      upstream: upstreamOf(r.registry),
      label: registryLabel(r.registry),
      mode: modeOf(r),
      packageId: r['package-id'],
      ruleId: null,
      upstreamPath: renamed ? renamed.split('/').map(encodeURIComponent).join('/') : null,
      upstreamName: renamed,
    });
  }
  // Scarf tries docker-v2 rules with equal sort keys in reverse manifest order: the later rule wins.
  const patterns = [...v2].reverse().map((r) => ({
    pattern: parseImagePattern(r.pattern),
    target: { upstream: upstreamOf(r.registry), label: registryLabel(r.registry), mode: modeOf(r), packageId: null, ruleId: r['rule-id'], upstreamPath: null, upstreamName: null },
  }));
  const ping: DockerTarget = v1.length ? images.get(v1[0]['repository-name'])! : patterns[patterns.length - 1].target;
  const upstreamHosts = [...new Set([...images.values(), ...patterns.map((p) => p.target)].map((t) => t.upstream.host))];
  const ownRealm = usesGatewayRealm([...v1, ...v2]);
  return { images, patterns, ping: { ...ping, packageId: null, ruleId: null, upstreamPath: null, upstreamName: null }, upstreamHosts, ownRealm };
}

/** The rule target serving an image (decoded segments): docker-v1 by exact name, else the first matching docker-v2 pattern. */
function targetFor(index: DockerIndex, image: readonly string[], name: string): DockerTarget | undefined {
  const named = index.images.get(name);
  if (named) return named;
  for (const x of index.patterns) if (matchImagePattern(x.pattern, image)) return x.target;
  return undefined;
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
  for (const s of segments) if (s === '.' || s === '..') return null;
  for (let k = 2; k < segments.length - 1; k++) {
    if (ENDPOINTS.has(segments[k])) {
      const rawSegs = rawPath.slice(1).split('/');
      return { image: segments.slice(1, k), endpoint: segments[k], reference: segments[k + 1], rawRest: `/${rawSegs.slice(k).join('/')}` };
    }
  }
  return null;
}

/** The Authorization to send upstream on a domain with the gateway's realm: the upstream's part of a gateway token. */
function realmAuthorization(t: DockerTarget, req: GatewayRequest): string | null | undefined {
  const auth = header(req.headers, 'authorization');
  if (auth === undefined) return undefined;
  const tokens = decodeGatewayToken(auth);
  if (tokens) return tokens[t.upstream.host] ?? null;
  // Basic credentials go to the rule's upstream as they are; a foreign Bearer token belongs to no upstream we know.
  return /^Basic\s/i.test(auth) ? undefined : null;
}

const serviceOf = (req: GatewayRequest) => requestHost(req.headers).replace(/:\d+$/, '');

interface RepositoryRequest {
  /** Raw public image path (`acme/rocket`) and its decoded form. */
  readonly rawImage: string;
  readonly name: string;
}

function decide(index: DockerIndex, t: DockerTarget, req: GatewayRequest, path: string, repo: RepositoryRequest | null): Outcome['decision'] {
  // Raw bytes a URL cannot carry (a space, CR/LF from a non-HTTP front end) are escaped; valid escapes stay as sent.
  const url = encodeUnsafe(`${t.upstream.baseUrl}${path}${req.rawQuery}`);
  if (!index.ownRealm) {
    const basicAuth = header(req.headers, 'authorization')?.startsWith('Basic') ?? false;
    const redirect = t.mode === 'redirect' || (t.mode === 'auto' && !basicAuth && followsRegistryRedirects(header(req.headers, 'user-agent')));
    if (redirect) return { type: 'redirect', status: 307, location: url, headers: { 'cache-control': REDIRECT_CACHE_CONTROL } };
  }
  const rewrite = repo ? { upstreamPrefix: `${t.upstream.baseUrl}/v2/${t.upstreamPath ?? repo.rawImage}/`, publicPrefix: `/v2/${repo.rawImage}/` } : undefined;
  const realm = index.ownRealm && repo
    ? {
        authorization: realmAuthorization(t, req),
        challenge: gatewayChallenge(realmOf(req, serviceOf(req)), serviceOf(req), `repository:${repo.name}:${req.method === 'GET' || req.method === 'HEAD' ? 'pull' : 'pull,push'}`),
      }
    : {};
  return { type: 'proxy', url, upstreamHost: t.upstream.host, followRedirectsTo: index.upstreamHosts, errorStyle: 'oci', ...(rewrite ? { rewrite } : {}), ...realm };
}

const REGISTRY_JSON = { 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0', 'cache-control': 'no-store' };
const ociError = (code: string, message: string) => JSON.stringify({ errors: [{ code, message, detail: {} }] });

/** `/v2/` on a domain with the gateway's realm: the gateway's own challenge, or 200 with a gateway token. */
function realmPing(req: GatewayRequest): Omit<Outcome, 'domain'> {
  const authorized = decodeGatewayToken(header(req.headers, 'authorization')) !== null;
  const decision: Outcome['decision'] = authorized
    ? { type: 'respond', status: 200, headers: REGISTRY_JSON, body: '{}' }
    : {
        type: 'respond', status: 401,
        headers: { ...REGISTRY_JSON, 'www-authenticate': gatewayChallenge(realmOf(req, serviceOf(req)), serviceOf(req)) },
        body: ociError('UNAUTHORIZED', 'authentication required'),
      };
  const event: EventDraft = { kind: 'docker', action: authorized ? 'respond' : 'unauthorized', countable: false, package_id: null, auto_create_rule_id: null, image: '', reference: '', upstream: null };
  return { decision, events: [event] };
}

/**
 * The gateway's token endpoint: each requested repository scope is mapped to its rule's upstream
 * and upstream name; the adapter obtains the upstream tokens. Not an analytics event.
 */
function realmToken(index: DockerIndex, req: GatewayRequest): Omit<Outcome, 'domain'> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    // containerd and docker fall back from an OAuth2 POST to this GET form.
    return { decision: { type: 'respond', status: 405, headers: { ...REGISTRY_JSON, allow: 'GET' }, body: ociError('UNSUPPORTED', 'the token endpoint answers GET requests') }, events: [] };
  }
  const byUpstream = new Map<string, { host: string; baseUrl: string; scopes: string[] }>();
  for (const scope of requestedScopes(req.rawQuery)) {
    if (scope.type !== 'repository') continue;
    const t = targetFor(index, scope.name.split('/'), scope.name);
    if (!t) continue; // like a registry: no access to unknown repositories
    let entry = byUpstream.get(t.upstream.baseUrl);
    if (!entry) byUpstream.set(t.upstream.baseUrl, (entry = { host: t.upstream.host, baseUrl: t.upstream.baseUrl, scopes: [] }));
    entry.scopes.push(formatScope({ ...scope, name: t.upstreamName ?? scope.name }));
  }
  const auth = header(req.headers, 'authorization');
  const basic = auth !== undefined && /^Basic\s/i.test(auth) ? auth : null;
  if (byUpstream.size === 0 && basic) {
    // A login (no scope): check the credentials with the upstream when there is only one.
    const bases = new Set([...index.images.values(), ...index.patterns.map((p) => p.target)].map((t) => t.upstream.baseUrl));
    if (bases.size === 1) {
      const t = index.ping;
      byUpstream.set(t.upstream.baseUrl, { host: t.upstream.host, baseUrl: t.upstream.baseUrl, scopes: [] });
    }
  }
  // Credentials given for this domain go to the token service of the one upstream the request is about, never to several.
  const credentials = byUpstream.size === 1 ? basic : null;
  return { decision: { type: 'registry-token', upstreams: [...byUpstream.values()], credentials }, events: [] };
}

const targetOf = (d: Outcome['decision']): string | null => (d.type === 'redirect' ? d.location : d.type === 'proxy' ? d.url : null);

/** Handles a request on a domain with docker rules; null when no docker rule takes it. */
function emptyEvent(index: DockerIndex, action: EventDraft['action']): EventDraft {
  return { kind: 'docker', action, countable: false, package_id: null, auto_create_rule_id: null, image: '', reference: '', upstream: index.ping.label };
}

export function handleDocker(index: DockerIndex, req: GatewayRequest, segments: readonly string[] | null): Omit<Outcome, 'domain'> | null {
  if (req.rawPath === '/v2/_catalog') {
    // Scarf's answer; listing the upstream's repositories would also reveal images that have no rule.
    return {
      decision: { type: 'respond', status: 404, headers: {}, body: '' },
      events: [emptyEvent(index, 'not-found')],
    };
  }
  if (index.ownRealm) {
    if (req.rawPath === TOKEN_PATH) return realmToken(index, req);
    if (req.rawPath === '/v2/') return realmPing(req);
  }
  if (req.rawPath === '/v2/') {
    const decision = decide(index, index.ping, req, '/v2/', null);
    const ev = emptyEvent(index, decision.type === 'redirect' ? 'redirect' : 'proxy');
    ev.target = targetOf(decision);
    return { decision, events: [ev] };
  }
  const p = parseRegistryPath(segments, req.rawPath);
  if (!p) return null;
  const name = p.image.join('/');
  const target = targetFor(index, p.image, name);
  if (!target) return null;
  const rawImage = req.rawPath.slice('/v2/'.length, req.rawPath.length - p.rawRest.length);
  const path = `/v2/${target.upstreamPath ?? rawImage}${p.rawRest}`;
  const decision = decide(index, target, req, path, { rawImage, name });
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
