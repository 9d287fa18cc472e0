/**
 * The local gateway's upstream proxy: forwards a request to an upstream registry or server and
 * streams the answer back with backpressure. Used where the engine decides `proxy`.
 */
import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

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

export interface ProxyTarget {
  readonly url: string;
  readonly followRedirectsTo: readonly string[];
  readonly errorStyle: 'oci' | 'json';
}

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

function forwardHeaders(rawHeaders: readonly string[], target: URL, keepAuthorization: boolean): Record<string, string | string[]> {
  const connectionTokens = new Set<string>();
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i].toLowerCase() === 'connection') rawHeaders[i + 1].split(',').forEach((t) => connectionTokens.add(t.trim().toLowerCase()));
  }
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    if (DROP_REQUEST.has(name) || connectionTokens.has(name)) continue;
    if (name === 'authorization' && !keepAuthorization) continue;
    // Repeated headers (several Accept lines) reach the upstream in order.
    const prev = out[name];
    out[name] = prev === undefined ? rawHeaders[i + 1] : [...(Array.isArray(prev) ? prev : [prev]), rawHeaders[i + 1]];
  }
  out.host = target.host;
  return out;
}

function errorBody(style: 'oci' | 'json', status: number, message: string): string {
  return style === 'oci'
    ? JSON.stringify({ errors: [{ code: status === 504 ? 'UNAVAILABLE' : 'UNKNOWN', message, detail: {} }] })
    : JSON.stringify({ error: status === 504 ? 'upstream_timeout' : 'bad_gateway', message });
}

/** One upstream exchange; resolves with the response (headers received) or rejects. */
function exchange(url: URL, method: string, headers: Record<string, string | string[]>, body: Readable | null, opts: ProxyOptions): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const mod = url.protocol === 'https:' ? https : http;
    const req = mod.request(url, { method, headers, agent: url.protocol === 'https:' ? agents.https : agents.http });
    const timer = setTimeout(() => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT_HEADERS' })), opts.headersTimeoutMs);
    req.setTimeout(opts.idleTimeoutMs, () => req.destroy(Object.assign(new Error('idle timeout'), { code: 'ETIMEDOUT_IDLE' })));
    req.once('response', (r) => {
      clearTimeout(timer);
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
 * answer when the upstream could not be reached. Shared by every adapter that proxies (the local
 * server, the Lambda function URL adapter), so both relay exactly the same headers and errors.
 */
export type UpstreamAnswer =
  | { readonly kind: 'response'; readonly status: number; readonly statusMessage: string | undefined; readonly headers: Record<string, string | string[]>; readonly body: http.IncomingMessage }
  | { readonly kind: 'error'; readonly status: number; readonly headers: Record<string, string>; readonly body: string; readonly error: string }
  | { readonly kind: 'client-gone' };

function errorAnswer(style: 'oci' | 'json', status: number, message: string): UpstreamAnswer {
  const body = errorBody(style, status, message);
  return { kind: 'error', status, headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'cache-control': 'no-store' }, body, error: message };
}

/**
 * Forwards the request to the decision's upstream, following registry-to-registry redirects,
 * and returns the answer to relay. `clientGone` tells whether the client went away meanwhile.
 */
export async function fetchUpstream(req: UpstreamRequest, target: ProxyTarget, opts: ProxyOptions, clientGone: () => boolean = () => false): Promise<UpstreamAnswer> {
  const method = req.method.toUpperCase();
  const hasBody = req.body !== null;
  let publicUrl = new URL(target.url);
  const originHost = publicUrl.host.toLowerCase();
  let upstreamRes: http.IncomingMessage;
  let contacted: URL;
  for (let hop = 0; ; hop++) {
    contacted = resolveUpstream(publicUrl, opts.upstreams);
    // Credentials go only to the configured upstream host, never to a third host or a CDN.
    const headers = forwardHeaders(req.rawHeaders, contacted, publicUrl.host.toLowerCase() === originHost);
    try {
      upstreamRes = await exchange(contacted, method, headers, hop === 0 ? req.body : null, opts);
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
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(upstreamRes.headers)) {
    if (value === undefined || DROP_RESPONSE.has(name)) continue;
    out[name] = value;
  }
  if (typeof out.location === 'string') {
    try {
      // A relative Location is resolved against the URL that answered it.
      out.location = new URL(out.location, contacted).toString();
    } catch {
      delete out.location;
    }
  }
  return { kind: 'response', status: upstreamRes.statusCode ?? 502, statusMessage: upstreamRes.statusMessage, headers: out, body: upstreamRes };
}

/** A response that carries no body whatever its headers say (RFC 9110 6.4.1). */
export function bodyless(method: string, status: number): boolean {
  return method.toUpperCase() === 'HEAD' || status === 204 || status === 304;
}

export async function proxyRequest(clientReq: http.IncomingMessage, clientRes: http.ServerResponse, target: ProxyTarget, opts: ProxyOptions): Promise<ProxyResult> {
  const method = (clientReq.method ?? 'GET').toUpperCase();
  const hasBody = clientReq.headers['content-length'] !== undefined ? clientReq.headers['content-length'] !== '0' : clientReq.headers['transfer-encoding'] !== undefined;
  const answer = await fetchUpstream({ method, rawHeaders: clientReq.rawHeaders, body: hasBody ? clientReq : null }, target, opts, () => clientRes.destroyed || clientReq.destroyed);
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
  clientRes.writeHead(answer.status, answer.statusMessage, answer.headers);
  if (bodyless(method, answer.status)) {
    answer.body.resume();
    clientRes.end();
    return { status: answer.status };
  }
  try {
    await pipeline(answer.body, clientRes);
  } catch {
    // The client or the upstream went away mid-body: nothing more can be sent.
    clientRes.destroy();
  }
  return { status: answer.status };
}
