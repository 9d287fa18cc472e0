/**
 * npm-v1: npm packages served from an upstream registry. Packuments (and single-version
 * manifests) are fetched and streamed to the client with every `dist.tarball` pointing at the
 * gateway's own origin, at the domain root (npm keeps only the host of a tarball URL when it
 * maps tarballs to the configured registry, so a path prefix would be lost); tarball requests
 * answer 307 to the registry, which is the download that counts.
 */
import type { NpmV1Rule } from './schema';
import { upstreamOf, type Upstream } from './upstream';
import { header, REDIRECT_CACHE_CONTROL, requestOrigin, type GatewayRequest, type Outcome } from './request';
import type { EventDraft } from './events';
import { GATEWAY_USER_AGENT, type FetchPlan, type TransformResult, type UpstreamHead, type UpstreamTransform } from './fetch';
import { createJsonValueRewriter } from './json-rewrite';
import { encodePathSegment } from './encoding';
import { packumentPath, parseNpmPackagePattern, parseNpmRequestPath, versionFromTarball, type NpmRequestPath } from './npm-names';

export const DEFAULT_NPM_REGISTRY = 'https://registry.npmjs.org';
export const ABBREVIATED_PACKUMENT = 'application/vnd.npm.install-v1+json';

interface NpmTarget {
  readonly registry: Upstream;
  readonly packageId: string;
  readonly cacheSeconds: number;
}

export interface NpmIndex {
  /** Exact package names. */
  readonly packages: ReadonlyMap<string, NpmTarget>;
  /** `@scope/*` patterns by lower-case scope. */
  readonly scopes: ReadonlyMap<string, NpmTarget>;
  /** The `*` rule: every other package (so dependencies resolve through the same registry URL). */
  readonly any: NpmTarget | null;
}

/** Rules in manifest order, all of one domain; for a name or scope listed twice the later rule wins. */
export function compileNpm(rules: NpmV1Rule[]): NpmIndex | null {
  if (!rules.length) return null;
  const packages = new Map<string, NpmTarget>();
  const scopes = new Map<string, NpmTarget>();
  let any: NpmTarget | null = null;
  for (const r of rules) {
    const p = parseNpmPackagePattern(r['package-name']);
    if ('problem' in p) throw new Error(`npm-v1 rule not validated: ${p.problem}`);
    const target = { registry: upstreamOf(r.registry ?? DEFAULT_NPM_REGISTRY), packageId: r['package-id'], cacheSeconds: r['cache-seconds'] ?? 0 };
    if (p.kind === 'name') packages.set(p.name, target);
    else if (p.kind === 'scope') scopes.set(p.scope, target);
    else any = target;
  }
  return { packages, scopes, any };
}

/** The client asked for the abbreviated ("corgi") packument that npm install uses. */
function wantsAbbreviated(accept: string | undefined): boolean {
  if (!accept) return false;
  return accept.split(',').some((part) => {
    const [type, ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    if (type !== ABBREVIATED_PACKUMENT) return false;
    const q = params.map((p) => /^q=([0-9.]+)$/.exec(p)).find(Boolean);
    return !q || Number(q[1]) > 0;
  });
}

const NPM_JSON = { 'content-type': 'application/json', 'cache-control': 'no-store' };

/** npm's registry error shape: `{"error": "..."}`, which npm prints after the status. */
export function npmError(status: number, message: string): TransformResult['decision'] {
  return { type: 'respond', status, headers: NPM_JSON, body: JSON.stringify({ error: message }) };
}

/**
 * Where a tarball URL from the upstream goes: `<origin>/<name>/-/<file>` when it has the
 * registry layout (`.../<name>/-/<file>.tgz`, the name's slash possibly encoded), else null
 * (left unchanged: the client then downloads from the upstream directly, uncounted).
 */
export function gatewayTarballUrl(upstreamUrl: string, name: string, origin: string): string | null {
  let u: URL;
  try {
    u = new URL(upstreamUrl);
  } catch {
    return null;
  }
  const at = u.pathname.lastIndexOf('/-/');
  if (at < 0) return null;
  const file = u.pathname.slice(at + 3);
  if (!/^[^/]+\.tgz$/.test(file)) return null;
  let owner: string;
  try {
    owner = decodeURIComponent(u.pathname.slice(0, at));
  } catch {
    return null;
  }
  if (!owner.endsWith(`/${name}`)) return null;
  return `${origin}/${name}/-/${file}`;
}

function packumentTransform(p: NpmRequestPath, t: NpmTarget, origin: string, event: EventDraft): UpstreamTransform {
  return {
    onHead(up: UpstreamHead): FetchPlan {
      if (up.status === 404 || up.status === 410) {
        return { type: 'answer', decision: npmError(404, 'Not found'), events: [{ ...event, action: 'not-found' }] };
      }
      if (up.status !== 200) {
        return {
          type: 'answer',
          decision: npmError(502, `upstream registry ${t.registry.host} answered ${up.status}`),
          events: [{ ...event, action: 'proxy' }],
        };
      }
      const headers: Record<string, string> = {
        'content-type': up.headers['content-type'] ?? 'application/json',
        vary: 'Accept',
        'cache-control': up.headers['cache-control'] ?? 'no-cache',
      };
      if (up.headers['last-modified']) headers['last-modified'] = up.headers['last-modified'];
      return {
        type: 'stream',
        status: 200,
        headers,
        rewriter: createJsonValueRewriter('dist', 'tarball', (url) => gatewayTarballUrl(url, p.name, origin)),
        events: [event],
      };
    },
    onFailure(failure, message): TransformResult {
      return { decision: npmError(failure === 'timeout' ? 504 : 502, message), events: [{ ...event, action: 'proxy' }] };
    },
  };
}

/** Handles GET and HEAD of packuments, version manifests and tarballs of the rules' packages; null for anything else. */
export function handleNpm(index: NpmIndex, req: GatewayRequest, segments: readonly string[] | null, domain: string): Omit<Outcome, 'domain'> | null {
  if (req.method !== 'GET' && req.method !== 'HEAD') return null;
  const p = parseNpmRequestPath(segments);
  if (!p) return null;
  const t = index.packages.get(p.name) ?? (p.scope ? index.scopes.get(p.scope) : undefined) ?? index.any;
  if (!t) return null;
  if (p.what.kind === 'tarball') {
    const location = `${t.registry.baseUrl}/${p.name}/-/${encodePathSegment(p.what.file)}`;
    return {
      decision: { type: 'redirect', status: 307, location, headers: { 'cache-control': REDIRECT_CACHE_CONTROL } },
      events: [{
        kind: 'npm', action: 'redirect',
        // A full GET of a tarball is a download; HEAD and Range requests are not.
        countable: req.method === 'GET' && header(req.headers, 'range') === undefined,
        package_id: t.packageId, file_name: p.what.file, version: versionFromTarball(p.name, p.what.file), target: location,
      }],
    };
  }
  const abbreviated = p.what.kind === 'packument' && wantsAbbreviated(header(req.headers, 'accept'));
  const url = `${t.registry.baseUrl}${packumentPath(p.name)}${p.what.kind === 'version' ? `/${encodeURIComponent(p.what.version)}` : ''}`;
  const event: EventDraft = {
    kind: 'npm', action: 'proxy', countable: false, package_id: t.packageId,
    file_name: null, version: p.what.kind === 'version' ? p.what.version : null, target: url,
  };
  return {
    decision: {
      type: 'fetch',
      url,
      upstreamHost: t.registry.host,
      headers: {
        accept: abbreviated ? `${ABBREVIATED_PACKUMENT}; q=1.0, application/json; q=0.8, */*` : 'application/json',
        'user-agent': GATEWAY_USER_AGENT,
      },
      cacheSeconds: t.cacheSeconds,
      transform: packumentTransform(p, t, requestOrigin(req, domain), event),
    },
    events: [],
  };
}
