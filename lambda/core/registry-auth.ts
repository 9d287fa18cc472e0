/**
 * The gateway's own registry token realm.
 *
 * A client learns where to get registry tokens from the `WWW-Authenticate` challenge of the `/v2/`
 * ping, once per registry host, and asks for scopes named after the repositories it pulls. That
 * breaks when one public registry domain fronts several upstream registries (each with its own
 * token service) or serves a repository under another name upstream (the upstream's token names
 * the upstream repository). On such domains the gateway answers the ping with its own realm
 * (`/v2/token` on the same domain); its token endpoint maps each requested scope to the rule's
 * upstream and repository, obtains the upstream tokens (anonymously, or with the client's Basic
 * credentials), and hands them back packed into one gateway token. Proxied requests then carry the
 * token of their own upstream, and upstream 401s get the gateway's challenge with the public scope.
 *
 * Pure: the upstream exchanges go through the `RegistryHttp` port an adapter provides.
 */
import { queryPairs } from './encoding';
import { requestOrigin, type GatewayRequest } from './request';

/** Path of the gateway's token endpoint on a registry domain that uses the gateway's realm. */
export const TOKEN_PATH = '/v2/token';

/** Gateway tokens: this prefix, then base64url JSON `{"a": {"<upstream host>": "<Authorization value>"}}`. */
const TOKEN_PREFIX = 'agw1.';

export interface Challenge {
  /** Lower case: `bearer`, `basic`, ... */
  readonly scheme: string;
  /** Parameter names in lower case, values unquoted. */
  readonly params: Readonly<Record<string, string>>;
}

const TOKEN_CHARS = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+/;

/** Parses a `WWW-Authenticate` value into its challenges (RFC 9110 section 11.6.1). Never throws. */
export function parseChallenges(value: string): Challenge[] {
  const out: Array<{ scheme: string; params: Record<string, string> }> = [];
  let current: { scheme: string; params: Record<string, string> } | null = null;
  let i = 0;
  const skipSpace = () => {
    while (i < value.length && (value[i] === ' ' || value[i] === '\t')) i++;
  };
  const token = (): string | null => {
    const m = TOKEN_CHARS.exec(value.slice(i));
    if (!m) return null;
    i += m[0].length;
    return m[0];
  };
  while (i < value.length) {
    skipSpace();
    if (value[i] === ',') {
      i++;
      continue;
    }
    const name = token();
    if (name === null) {
      i++;
      continue;
    }
    skipSpace();
    if (value[i] === '=' && current) {
      i++;
      skipSpace();
      let v = '';
      if (value[i] === '"') {
        for (i++; i < value.length && value[i] !== '"'; i++) {
          if (value[i] === '\\' && i + 1 < value.length) i++;
          v += value[i];
        }
        i++;
      } else {
        v = token() ?? '';
      }
      current.params[name.toLowerCase()] = v;
    } else {
      current = { scheme: name.toLowerCase(), params: {} };
      out.push(current);
    }
  }
  return out;
}

const quote = (s: string) => `"${s.replace(/["\\]/g, '\\$&')}"`;

/** A Bearer challenge naming the gateway's realm; `scope` only on repository requests. */
export function gatewayChallenge(realm: string, service: string, scope?: string): string {
  return `Bearer realm=${quote(realm)},service=${quote(service)}${scope ? `,scope=${quote(scope)}` : ''}`;
}

/** The realm URL of a request's domain, as the client reached it (scheme, host and port). */
export function realmOf(req: GatewayRequest, domain: string): string {
  return `${requestOrigin(req, domain)}${TOKEN_PATH}`;
}

export interface Scope {
  readonly type: string;
  readonly name: string;
  readonly actions: readonly string[];
}

/** `repository:acme/rocket:pull,push` -> its parts; null when malformed. */
export function parseScope(s: string): Scope | null {
  const first = s.indexOf(':');
  const last = s.lastIndexOf(':');
  if (first <= 0 || last === first || last === s.length - 1) return null;
  const actions = s.slice(last + 1).split(',').filter((a) => a !== '');
  // `repository(plugin):name` is an old resource-class form; the class does not matter here.
  return { type: s.slice(0, first).replace(/\(.*\)$/, ''), name: s.slice(first + 1, last), actions };
}

/** Every `scope` of a token request (repeated parameters, or several separated by spaces). */
export function requestedScopes(rawQuery: string): Scope[] {
  return queryPairs(rawQuery)
    .filter((p) => p.key === 'scope' && p.value)
    .flatMap((p) => p.value!.split(' '))
    .map((s) => parseScope(s))
    .filter((s): s is Scope => s !== null);
}

export const formatScope = (s: Scope): string => `${s.type}:${s.name}:${s.actions.join(',')}`;

/** Packs the Authorization value to send to each upstream host into one gateway token. */
export function encodeGatewayToken(byHost: Readonly<Record<string, string>>): string {
  return TOKEN_PREFIX + Buffer.from(JSON.stringify({ a: byHost }), 'utf8').toString('base64url');
}

/** The per-upstream Authorization values of a gateway token (`Authorization: Bearer agw1...`); null when the header carries none. */
export function decodeGatewayToken(authorization: string | undefined): Record<string, string> | null {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
  if (!m || !m[1].startsWith(TOKEN_PREFIX)) return null;
  try {
    const doc = JSON.parse(Buffer.from(m[1].slice(TOKEN_PREFIX.length), 'base64url').toString('utf8')) as { a?: unknown };
    if (typeof doc.a !== 'object' || doc.a === null || Array.isArray(doc.a)) return null;
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(doc.a as Record<string, unknown>)) if (typeof v === 'string') out[k] = v;
    return out;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Issuing a gateway token (the adapter provides the HTTP exchanges)

export interface RegistryHttpResponse {
  readonly status: number;
  /** Header names in lower case. */
  readonly headers: Readonly<Record<string, string | readonly string[] | undefined>>;
  readonly body: string;
}

/** GET requests to upstream registries and their token services; rejects when the host cannot be reached. */
export interface RegistryHttp {
  /** `namedBy`: the upstream base URL whose challenge named `url` (a token realm): the adapter limits where such a URL may lead. */
  get(url: string, headers: Readonly<Record<string, string>>, namedBy?: string): Promise<RegistryHttpResponse>;
}

/** What an upstream's `/v2/` ping asks for: a Bearer token service, Basic credentials, or nothing. */
export type UpstreamAuth = { readonly kind: 'bearer'; readonly realm: string; readonly service: string | null } | { readonly kind: 'basic' } | { readonly kind: 'none' };

/** Upstream challenges by base URL, with an expiry time (ms); owned by the adapter, shared across requests. */
export type ChallengeCache = Map<string, { readonly auth: UpstreamAuth; readonly until: number }>;

const CHALLENGE_TTL_MS = 10 * 60_000;
/** Lifetime the distribution token spec assumes when a token service does not say. */
const DEFAULT_TOKEN_SECONDS = 60;

export interface TokenPlan {
  readonly upstreams: ReadonlyArray<{ readonly host: string; readonly baseUrl: string; readonly scopes: readonly string[] }>;
  readonly credentials: string | null;
}

export interface TokenAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  /** Why no token was issued, for the log (names the upstream, never credentials). */
  readonly error?: string;
}

class TokenFailure extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

async function upstreamAuth(baseUrl: string, http: RegistryHttp, cache: ChallengeCache, now: number): Promise<UpstreamAuth> {
  const hit = cache.get(baseUrl);
  if (hit && hit.until > now) return hit.auth;
  let r: RegistryHttpResponse;
  try {
    r = await http.get(`${baseUrl}/v2/`, {});
  } catch {
    throw new TokenFailure(502, `upstream registry ${new URL(baseUrl).host} is unreachable`);
  }
  let auth: UpstreamAuth = { kind: 'none' };
  if (r.status === 401) {
    const raw = r.headers['www-authenticate'];
    const challenges = (Array.isArray(raw) ? raw : raw === undefined ? [] : [raw as string]).flatMap((v) => parseChallenges(v));
    const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params.realm);
    if (bearer) auth = { kind: 'bearer', realm: bearer.params.realm, service: bearer.params.service ?? null };
    else if (challenges.some((c) => c.scheme === 'basic')) auth = { kind: 'basic' };
    else throw new TokenFailure(502, `upstream registry ${new URL(baseUrl).host} answered 401 without a usable challenge`);
  } else if (r.status >= 400) {
    throw new TokenFailure(502, `upstream registry ${new URL(baseUrl).host} answered ${r.status} to /v2/`);
  }
  cache.set(baseUrl, { auth, until: now + CHALLENGE_TTL_MS });
  return auth;
}

async function upstreamToken(host: string, baseUrl: string, auth: { realm: string; service: string | null }, scopes: readonly string[], credentials: string | null, http: RegistryHttp): Promise<{ token: string; seconds: number }> {
  let url: URL;
  try {
    url = new URL(auth.realm);
  } catch {
    throw new TokenFailure(502, `upstream registry ${host} names an invalid token realm`);
  }
  if (auth.service !== null) url.searchParams.append('service', auth.service);
  for (const s of scopes) url.searchParams.append('scope', s);
  let r: RegistryHttpResponse;
  try {
    r = await http.get(url.toString(), credentials ? { authorization: credentials } : {}, baseUrl);
  } catch {
    throw new TokenFailure(502, `the token service of upstream registry ${host} is unreachable`);
  }
  if (r.status === 401 || r.status === 403) throw new TokenFailure(401, `the token service of upstream registry ${host} refused ${credentials ? 'the credentials' : 'an anonymous token'}`);
  if (r.status !== 200) throw new TokenFailure(502, `the token service of upstream registry ${host} answered ${r.status}`);
  let doc: { token?: unknown; access_token?: unknown; expires_in?: unknown };
  try {
    doc = JSON.parse(r.body);
  } catch {
    throw new TokenFailure(502, `the token service of upstream registry ${host} did not answer JSON`);
  }
  const token = typeof doc.token === 'string' && doc.token ? doc.token : typeof doc.access_token === 'string' ? doc.access_token : '';
  if (!token) throw new TokenFailure(502, `the token service of upstream registry ${host} answered without a token`);
  const seconds = typeof doc.expires_in === 'number' && doc.expires_in > 0 ? doc.expires_in : DEFAULT_TOKEN_SECONDS;
  return { token, seconds };
}

const JSON_HEADERS = { 'content-type': 'application/json', 'cache-control': 'no-store' };

/**
 * Carries out a `registry-token` decision: for each upstream, learns its challenge (cached), asks
 * its token service for the mapped scopes, and answers the distribution token JSON with a gateway
 * token. Errors name the upstream, never the request's credentials.
 */
export async function issueGatewayToken(plan: TokenPlan, http: RegistryHttp, cache: ChallengeCache, now: Date): Promise<TokenAnswer> {
  const byHost: Record<string, string> = {};
  let seconds = 300;
  try {
    for (const u of plan.upstreams) {
      const auth = await upstreamAuth(u.baseUrl, http, cache, now.getTime());
      if (auth.kind === 'basic') {
        // A registry that takes Basic credentials directly: the client's own credentials are the token.
        if (plan.credentials) byHost[u.host] = plan.credentials;
      } else if (auth.kind === 'bearer') {
        const t = await upstreamToken(u.host, u.baseUrl, auth, u.scopes, plan.credentials, http);
        byHost[u.host] = `Bearer ${t.token}`;
        seconds = Math.min(seconds, t.seconds);
      }
    }
  } catch (e) {
    if (!(e instanceof TokenFailure)) throw e;
    const code = e.status === 401 ? 'UNAUTHORIZED' : 'UNAVAILABLE';
    return { status: e.status, headers: JSON_HEADERS, body: JSON.stringify({ errors: [{ code, message: e.message, detail: {} }] }), error: e.message };
  }
  const token = encodeGatewayToken(byHost);
  return {
    status: 200,
    headers: JSON_HEADERS,
    body: JSON.stringify({ token, access_token: token, expires_in: seconds, issued_at: now.toISOString() }),
  };
}
