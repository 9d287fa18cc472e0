/**
 * The local gateway's upstream proxy: forwards a request to an upstream registry or server and
 * streams the answer back with backpressure. Used where the engine decides `proxy`.
 */
import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import type { Decision } from '../core/request';
import type { RegistryHttpResponse } from '../core/registry-auth';
import { checkLiteralHost, guardedLookup, guardNamedBy, type HopGuard } from './address-guard';

/** Hop-by-hop headers (RFC 9110 7.6.1) and headers that must not travel upstream. */
const DROP_REQUEST = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host',
  // Privacy: the client's address and cookies stay with us; the upstream does not need our public host either.
  'x-forwarded-for', 'forwarded', 'x-real-ip', 'cookie', 'x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-port',
  'cloudfront-viewer-address', 'true-client-ip', 'cf-connecting-ip',
]);
const DROP_RESPONSE = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'trailer', 'upgrade', 'proxy-authenticate']);
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export interface ProxyOptions {
  /** `host[:port]` -> base URL overrides (`--upstream`). */
  readonly upstreams: ReadonlyMap<string, string>;
  /** Time to the upstream's response headers. */
  readonly headersTimeoutMs: number;
  /** Longest silence on an open upstream connection. */
  readonly idleTimeoutMs: number;
  readonly maxHops: number;
}

export const DEFAULT_PROXY_OPTIONS: Omit<ProxyOptions, 'upstreams'> = { headersTimeoutMs: 30_000, idleTimeoutMs: 60_000, maxHops: 10 };

export type ProxyTarget = Pick<Extract<Decision, { type: 'proxy' }>, 'url' | 'followRedirectsTo' | 'errorStyle' | 'rewrite' | 'authorization' | 'challenge'>;

export interface ProxyResult {
  /** Status sent to the client. */
  readonly status: number;
  /** Why the gateway answered itself (502/504), for the log; never contains headers or credentials. */
  readonly error?: string;
}

const agents = {
  http: new http.Agent({ keepAlive: true, maxSockets: 64 }),
  https: new https.Agent({ keepAlive: true, maxSockets: 64 }),
};

/** Where the gateway really connects for a public URL: the `--upstream` base URL for its host, if any. */
export function resolveUpstream(publicUrl: URL, upstreams: ReadonlyMap<string, string>): URL {
  const base = upstreams.get(publicUrl.host.toLowerCase());
  if (!base) return publicUrl;
  return new URL(`${base.replace(/\/+$/, '')}${publicUrl.pathname}${publicUrl.search}`);
}

/** Names listed in `Connection` are hop-by-hop too (RFC 9110 7.6.1). */
function connectionTokens(rawHeaders: readonly string[]): Set<string> {
  const tokens = new Set<string>();
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i].toLowerCase() === 'connection') rawHeaders[i + 1].split(',').forEach((t) => tokens.add(t.trim().toLowerCase()));
  }
  return tokens;
}

/**
 * Request headers for the upstream. `authorization`: the value to send instead of the client's
 * (null: none; undefined: the client's, if any), and only where `keepAuthorization` allows.
 */
function forwardHeaders(rawHeaders: readonly string[], target: URL, keepAuthorization: boolean, authorization?: string | null): Record<string, string | string[]> {
  const hopByHop = connectionTokens(rawHeaders);
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    if (DROP_REQUEST.has(name) || hopByHop.has(name)) continue;
    if (name === 'authorization' && (!keepAuthorization || authorization !== undefined)) continue;
    // Repeated headers (several Accept lines) reach the upstream in order.
    const prev = out[name];
    out[name] = prev === undefined ? rawHeaders[i + 1] : [...(Array.isArray(prev) ? prev : [prev]), rawHeaders[i + 1]];
  }
  if (keepAuthorization && authorization) out.authorization = authorization;
  out.host = target.host;
  return out;
}

/**
 * A URL the upstream handed out (`Location`, a `Link` target), resolved against the URL that
 * answered: under the repository's upstream prefix it becomes a gateway path under the public
 * name (so an upload or the next page comes back through the gateway); otherwise it stays
 * absolute, untouched (a signed CDN URL).
 */
function clientUrl(value: string, answeredBy: URL, rewrite: UrlRewrite | null): string | null {
  let u: URL;
  try {
    u = new URL(value, answeredBy);
  } catch {
    return null;
  }
  const prefix = rewrite?.upstreamPrefixes.find((p) => u.href.startsWith(p));
  return prefix !== undefined ? rewrite!.publicPrefix + u.href.slice(prefix.length) : u.href;
}

/** The repository's URL prefixes at the upstream (as the rule names it, and as contacted via `--upstream`) and its public path. */
interface UrlRewrite {
  readonly upstreamPrefixes: readonly string[];
  readonly publicPrefix: string;
}

/**
 * Response headers for the client, from the upstream's raw headers: names, order and repeated
 * headers (several `WWW-Authenticate` challenges) as the upstream sent them, minus hop-by-hop ones.
 */
function responseHeaders(upstreamRes: http.IncomingMessage, answeredBy: URL, target: ProxyTarget, rewrite: UrlRewrite | null): string[] {
  const raw = upstreamRes.rawHeaders;
  const hopByHop = connectionTokens(raw);
  const replaceChallenge = upstreamRes.statusCode === 401 && target.challenge !== undefined;
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    let value = raw[i + 1];
    if (DROP_RESPONSE.has(name) || hopByHop.has(name)) continue;
    if (name === 'www-authenticate' && replaceChallenge) continue;
    if (name === 'location') {
      const v = clientUrl(value, answeredBy, rewrite);
      if (v === null) continue;
      value = v;
    } else if (name === 'link' && rewrite) {
      value = value.replace(/<([^>]*)>/g, (all, ref: string) => {
        const v = clientUrl(ref, answeredBy, rewrite);
        return v !== null && v.startsWith(rewrite.publicPrefix) ? `<${v}>` : all;
      });
    }
    out.push(raw[i], value);
  }
  if (replaceChallenge) out.push('WWW-Authenticate', target.challenge!);
  return out;
}

function errorBody(style: 'oci' | 'json', status: number, message: string): string {
  return style === 'oci'
    ? JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message, detail: {} }] })
    : JSON.stringify({ error: status === 504 ? 'upstream_timeout' : 'bad_gateway', message });
}


/** The raw path and query of an absolute URL, without the normalisation of `new URL()` (which resolves `..` and `%2e%2e`). */
function rawPathOf(url: string): string {
  const p = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*([^#]*)/i.exec(url)?.[1] ?? '';
  return p === '' ? '/' : p;
}

/** The path prefix of the `--upstream` base URL for a host ('' when none). */
function overridePathPrefix(host: string, upstreams: ReadonlyMap<string, string>): string {
  const base = upstreams.get(host.toLowerCase());
  return base ? new URL(base).pathname.replace(/\/+$/, '') : '';
}

/** Responses cut off because the upstream fell silent mid-body for longer than the idle timeout. */
const timedOut = new WeakSet<http.IncomingMessage>();

/** Whether an upstream response was cut off because the upstream fell silent mid-body (not because it broke the connection). */
export function upstreamFellSilent(res: http.IncomingMessage): boolean {
  return timedOut.has(res);
}

/**
 * The guard for a URL an upstream named (a token realm): none when the configuration names its
 * host too (the upstream's own host, an `--upstream` override), else public addresses only
 * (address-guard.ts).
 */
export function guardForNamedUrl(url: URL, namedBy: URL, upstreams: ReadonlyMap<string, string>): HopGuard | undefined {
  const host = url.host.toLowerCase();
  if (host === namedBy.host.toLowerCase() || upstreams.has(host)) return undefined;
  return guardNamedBy(resolveUpstream(namedBy, upstreams));
}

/**
 * One upstream exchange; resolves with the response (headers received) or rejects. After the
 * headers, an upstream silent for `idleTimeoutMs` while the body is being read has the
 * connection destroyed, so the body errors. `rawPath`,
 * when given, is sent exactly as it is instead of the URL's (normalised) path and query.
 * `guard`: the host was named by an upstream, not by the configuration (address-guard.ts).
 */
export function exchange(url: URL, method: string, headers: Record<string, string | string[]>, body: Readable | null, opts: ProxyOptions, rawPath?: string, guard?: HopGuard, signal?: AbortSignal): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const secure = url.protocol === 'https:';
    if (guard) {
      try {
        checkLiteralHost(url.hostname, guard);
      } catch (e) {
        reject(e);
        return;
      }
    }
    const req = (secure ? https : http).request({
      protocol: url.protocol, hostname: url.hostname.replace(/^\[|\]$/g, ''), port: url.port || undefined,
      path: rawPath ?? `${url.pathname}${url.search}`, method, headers, agent: secure ? agents.https : agents.http, signal,
      ...(guard ? { lookup: guardedLookup(guard) } : {}),
    });
    const timer = setTimeout(() => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT_HEADERS' })), opts.headersTimeoutMs);
    let response: http.IncomingMessage | null = null;
    req.setTimeout(opts.idleTimeoutMs);
    req.on('timeout', () => {
      // Silence while bytes wait unread on our side (the client reads slowly: backpressure) is not the upstream's fault.
      if (response && response.readableLength > 0 && !response.destroyed) {
        req.setTimeout(opts.idleTimeoutMs);
        return;
      }
      if (response) timedOut.add(response);
      req.destroy(Object.assign(new Error('idle timeout'), { code: 'ETIMEDOUT_IDLE' }));
    });
    req.once('response', (r) => {
      clearTimeout(timer);
      response = r;
      resolve(r);
    });
    req.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    if (body) {
      body.pipe(req);
      body.once('error', (e) => req.destroy(e));
    } else {
      req.end();
    }
  });
}

const isRegistryPath = (p: string) => p === '/v2' || p.startsWith('/v2/');

/** What the gateway forwards upstream: method, the client's raw header list and its body. */
export interface UpstreamRequest {
  readonly method: string;
  /** Name/value pairs as received (Node's `rawHeaders` layout). */
  readonly rawHeaders: readonly string[];
  /** The request body, or null when it has none. */
  readonly body: Readable | null;
}

/**
 * The upstream's answer (headers received, body still to read), or the gateway's own error
 * answer when the upstream could not be reached. Every adapter that proxies (the local server,
 * the Lambda function URL adapter) relays exactly these headers and errors.
 */
export type UpstreamAnswer =
  | {
      readonly kind: 'response';
      readonly status: number;
      readonly statusMessage: string | undefined;
      /** Name/value pairs in the upstream's order and spelling (repeated WWW-Authenticate lines kept). */
      readonly rawHeaders: string[];
      readonly body: http.IncomingMessage;
    }
  | { readonly kind: 'error'; readonly status: number; readonly headers: Record<string, string>; readonly body: string; readonly error: string }
  | { readonly kind: 'client-gone' };

function errorAnswer(style: 'oci' | 'json', status: number, message: string): UpstreamAnswer {
  const body = errorBody(style, status, message);
  return { kind: 'error', status, headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'cache-control': 'no-store' }, body, error: message };
}

/** A response that carries no body whatever its headers say (RFC 9110 6.4.1). */
export function bodyless(method: string, status: number): boolean {
  return method.toUpperCase() === 'HEAD' || status === 204 || status === 304;
}

/**
 * Forwards a request to the decision's upstream, following registry-to-registry redirects, and
 * returns the answer to relay. `clientGone` tells whether the client went away meanwhile;
 * `signal` aborts the upstream request (when the client has gone).
 */
export async function forwardToUpstream(req: UpstreamRequest, target: ProxyTarget, opts: ProxyOptions, clientGone: () => boolean = () => false, signal?: AbortSignal): Promise<UpstreamAnswer> {
  const method = req.method.toUpperCase();
  const hasBody = req.body !== null;
  let publicUrl = new URL(target.url);
  const originHost = publicUrl.host.toLowerCase();
  const originProtocol = publicUrl.protocol;
  let upstreamRes: http.IncomingMessage;
  let contacted: URL;
  for (let hop = 0; ; hop++) {
    contacted = resolveUpstream(publicUrl, opts.upstreams);
    // Credentials go only to the configured upstream host (and never over a downgrade to http), never to a third host or a CDN.
    const sameOrigin = publicUrl.host.toLowerCase() === originHost && publicUrl.protocol === originProtocol;
    const headers = forwardHeaders(req.rawHeaders, contacted, sameOrigin, target.authorization);
    try {
      // The first request carries the raw path the engine built, byte for byte; later hops follow upstream Locations.
      const rawPath = hop === 0 ? `${overridePathPrefix(publicUrl.host, opts.upstreams)}${rawPathOf(target.url)}` : undefined;
      upstreamRes = await exchange(contacted, method, headers, hop === 0 ? req.body : null, opts, rawPath, undefined, signal);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? '';
      if (clientGone()) return { kind: 'client-gone' };
      if (code.startsWith('ETIMEDOUT')) return errorAnswer(target.errorStyle, 504, `upstream ${publicUrl.host} did not answer in time`);
      return errorAnswer(target.errorStyle, 502, `upstream ${publicUrl.host} is unreachable (${code || 'connection failed'})`);
    }
    const status = upstreamRes.statusCode ?? 502;
    const location = upstreamRes.headers.location;
    if (!REDIRECTS.has(status) || !location || hasBody || hop >= opts.maxHops) break;
    let next: URL;
    try {
      next = new URL(location, publicUrl);
    } catch {
      break;
    }
    // Registry-to-registry hops (a repository moved) are followed internally; anything else (a signed blob URL) goes to the client.
    const known = next.host.toLowerCase() === originHost || target.followRedirectsTo.includes(next.host.toLowerCase());
    if (!isRegistryPath(next.pathname) || !known) break;
    upstreamRes.resume();
    publicUrl = next;
  }
  const rewrite: UrlRewrite | null = target.rewrite
    ? {
        upstreamPrefixes: [new URL(target.rewrite.upstreamPrefix).href, resolveUpstream(new URL(target.rewrite.upstreamPrefix), opts.upstreams).href],
        publicPrefix: target.rewrite.publicPrefix,
      }
    : null;
  // A relative Location is resolved against the URL that answered it.
  return {
    kind: 'response', status: upstreamRes.statusCode ?? 502, statusMessage: upstreamRes.statusMessage,
    rawHeaders: responseHeaders(upstreamRes, contacted, target, rewrite), body: upstreamRes,
  };
}

/** The local server's proxy: forwards the request and relays the answer on the client's response. */
export async function proxyRequest(clientReq: http.IncomingMessage, clientRes: http.ServerResponse, target: ProxyTarget, opts: ProxyOptions): Promise<ProxyResult> {
  const method = (clientReq.method ?? 'GET').toUpperCase();
  const hasBody = clientReq.headers['content-length'] !== undefined ? clientReq.headers['content-length'] !== '0' : clientReq.headers['transfer-encoding'] !== undefined;
  // A client that goes away before the upstream answers frees the upstream connection at once,
  // instead of holding it (and a place in the agent's pool) until the upstream timeout.
  const abort = new AbortController();
  clientRes.once('close', () => {
    if (!clientRes.writableFinished) abort.abort();
  });
  const answer = await forwardToUpstream({ method, rawHeaders: clientReq.rawHeaders, body: hasBody ? clientReq : null }, target, opts, () => clientRes.destroyed || clientReq.destroyed, abort.signal);
  if (answer.kind === 'client-gone') return { status: 499, error: 'client went away' };
  if (answer.kind === 'error') {
    if (!clientRes.headersSent) {
      clientRes.writeHead(answer.status, answer.headers);
      clientRes.end(method === 'HEAD' ? undefined : answer.body);
    } else {
      clientRes.destroy();
    }
    return { status: answer.status, error: answer.error };
  }
  clientRes.writeHead(answer.status, answer.statusMessage, answer.rawHeaders);
  if (bodyless(method, answer.status)) {
    answer.body.resume();
    clientRes.end();
    return { status: answer.status };
  }
  await relayBody(answer.body, clientRes);
  return { status: answer.status };
}

/**
 * Streams the upstream body to the client with backpressure; resolves true once the client has
 * it all. When either side goes away mid-body, both are destroyed (the client sees the answer cut
 * off, the upstream connection is freed) and it resolves false. Plain `pipe` rather than
 * `stream.pipeline`: pipeline's AbortController, aborted when it finishes, builds a DOMException
 * with a stack trace for every response, a measurable part of a proxied request's CPU.
 */
function relayBody(body: http.IncomingMessage, res: http.ServerResponse): Promise<boolean> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (complete: boolean) => {
      if (settled) return;
      settled = true;
      if (!complete) {
        body.unpipe(res);
        body.destroy();
        res.destroy();
      }
      resolve(complete);
    };
    res.once('finish', () => settle(true));
    res.once('close', () => settle(res.writableFinished));
    body.once('error', () => settle(false));
    body.once('close', () => {
      if (!body.complete) settle(false);
    });
    body.pipe(res);
  });
}

const FETCH_LIMIT = 1024 * 1024;

/**
 * A small GET to an upstream registry or its token service (the gateway's token endpoint), with
 * the `--upstream` override applied; no redirects followed. Rejects when unreachable or too large.
 * `namedBy`: the configured upstream whose answer named this URL (a token realm), which limits
 * where it may lead (address-guard.ts).
 */
export async function fetchUpstream(url: string, headers: Readonly<Record<string, string>>, opts: ProxyOptions, namedBy?: string): Promise<RegistryHttpResponse> {
  const contacted = resolveUpstream(new URL(url), opts.upstreams);
  const guard = namedBy === undefined ? undefined : guardForNamedUrl(new URL(url), new URL(namedBy), opts.upstreams);
  const res = await exchange(contacted, 'GET', { ...headers, host: contacted.host }, null, opts, undefined, guard);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of res as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > FETCH_LIMIT) {
      res.destroy();
      throw new Error(`answer from ${contacted.host} is larger than ${FETCH_LIMIT} bytes`);
    }
    chunks.push(c);
  }
  return { status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') };
}
