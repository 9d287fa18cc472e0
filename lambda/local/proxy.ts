/**
 * The local gateway's upstream proxy: forwards a request to an upstream registry or server and
 * streams the answer back with backpressure. Used where the engine decides `proxy`.
 */
import http from 'node:http';
import https from 'node:https';
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

/**
 * An absolute URL split without normalising its path: `new URL()` would resolve `..` and `%2e%2e`
 * segments, and the upstream must receive the raw path exactly as the engine built it.
 */
export interface RawUrl {
  /** `https://host[:port]` (lower-case scheme and host). */
  readonly origin: string;
  readonly host: string;
  /** Raw path and query, starting with `/`. */
  readonly pathAndQuery: string;
}

export function splitUrl(url: string): RawUrl {
  const m = /^(https?):\/\/([^/?#]+)([^#]*)/i.exec(url);
  if (!m) throw new Error(`not an absolute http(s) URL: ${url}`);
  const host = m[2].toLowerCase();
  const rest = m[3] === '' ? '/' : m[3].startsWith('/') ? m[3] : `/${m[3]}`;
  return { origin: `${m[1].toLowerCase()}://${host}`, host, pathAndQuery: rest };
}

/** Where the gateway really connects for a public URL: the `--upstream` base URL for its host, if any. */
export function resolveUpstream(publicUrl: RawUrl, upstreams: ReadonlyMap<string, string>): RawUrl {
  const base = upstreams.get(publicUrl.host);
  if (!base) return publicUrl;
  const b = splitUrl(base);
  return { ...b, pathAndQuery: `${b.pathAndQuery.replace(/\/+$/, '')}${publicUrl.pathAndQuery}` };
}

function forwardHeaders(rawHeaders: readonly string[], target: RawUrl, keepAuthorization: boolean): Record<string, string | string[]> {
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
    ? JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message, detail: {} }] })
    : JSON.stringify({ error: status === 504 ? 'upstream_timeout' : 'bad_gateway', message });
}

function sendError(res: http.ServerResponse, style: 'oci' | 'json', status: number, message: string, head: boolean): ProxyResult {
  if (!res.headersSent) {
    const body = errorBody(style, status, message);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
    res.end(head ? undefined : body);
  } else {
    res.destroy();
  }
  return { status, error: message };
}

/** One upstream exchange; resolves with the response (headers received) or rejects. */
function exchange(url: RawUrl, method: string, headers: Record<string, string | string[]>, body: http.IncomingMessage | null, opts: ProxyOptions): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const secure = url.origin.startsWith('https:');
    const { hostname, port } = new URL(url.origin);
    const req = (secure ? https : http).request({
      protocol: secure ? 'https:' : 'http:', hostname: hostname.replace(/^\[|\]$/g, ''), port, path: url.pathAndQuery,
      method, headers, agent: secure ? agents.https : agents.http,
    });
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

export async function proxyRequest(clientReq: http.IncomingMessage, clientRes: http.ServerResponse, target: ProxyTarget, opts: ProxyOptions): Promise<ProxyResult> {
  const method = (clientReq.method ?? 'GET').toUpperCase();
  const head = method === 'HEAD';
  const hasBody = clientReq.headers['content-length'] !== undefined ? clientReq.headers['content-length'] !== '0' : clientReq.headers['transfer-encoding'] !== undefined;
  let publicUrl = splitUrl(target.url);
  const originHost = publicUrl.host;
  let upstreamRes: http.IncomingMessage;
  let contacted: RawUrl;
  for (let hop = 0; ; hop++) {
    contacted = resolveUpstream(publicUrl, opts.upstreams);
    // Credentials go only to the configured upstream host, never to a third host or a CDN.
    const headers = forwardHeaders(clientReq.rawHeaders, contacted, publicUrl.host === originHost);
    try {
      upstreamRes = await exchange(contacted, method, headers, hasBody && hop === 0 ? clientReq : null, opts);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? '';
      if (clientRes.destroyed || clientReq.destroyed) return { status: 499, error: 'client went away' };
      if (code.startsWith('ETIMEDOUT')) return sendError(clientRes, target.errorStyle, 504, `upstream ${publicUrl.host} did not answer in time`, head);
      return sendError(clientRes, target.errorStyle, 502, `upstream ${publicUrl.host} is unreachable (${code || 'connection failed'})`, head);
    }
    const status = upstreamRes.statusCode ?? 502;
    const location = upstreamRes.headers.location;
    if (!REDIRECTS.has(status) || !location || hasBody || hop >= opts.maxHops) break;
    let next: URL;
    try {
      next = new URL(location, `${publicUrl.origin}${publicUrl.pathAndQuery}`);
    } catch {
      break;
    }
    // Registry-to-registry hops (a repository moved) are followed internally; anything else (a signed blob URL) goes to the client.
    const nextHost = next.host.toLowerCase();
    const known = nextHost === originHost || target.followRedirectsTo.includes(nextHost);
    if (!isRegistryPath(next.pathname) || !known || (next.protocol !== 'https:' && next.protocol !== 'http:')) break;
    upstreamRes.resume();
    publicUrl = { origin: `${next.protocol}//${nextHost}`, host: nextHost, pathAndQuery: `${next.pathname}${next.search}` };
  }
  const status = upstreamRes.statusCode ?? 502;
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(upstreamRes.headers)) {
    if (value === undefined || DROP_RESPONSE.has(name)) continue;
    out[name] = value;
  }
  if (typeof out.location === 'string') {
    try {
      // A relative Location is resolved against the server that sent it (with --upstream, the override).
      out.location = new URL(out.location, `${contacted.origin}${contacted.pathAndQuery}`).toString();
    } catch {
      delete out.location;
    }
  }
  clientRes.writeHead(status, upstreamRes.statusMessage, out);
  if (head || status === 204 || status === 304) {
    upstreamRes.resume();
    clientRes.end();
    return { status };
  }
  try {
    await pipeline(upstreamRes, clientRes);
  } catch {
    // The client or the upstream went away mid-body: nothing more can be sent.
    clientRes.destroy();
  }
  return { status };
}
