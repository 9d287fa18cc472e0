/**
 * Carries out the engine's `fetch` decisions (local gateway and Lambda adapter alike): fetches the upstream document
 * (with the `--upstream` overrides, following redirects, decoding gzip/deflate/br), reuses it
 * from the cache while the rule allows, and answers with what the decision's pure transform
 * makes of it: a buffered page, a redirect, an error, or a body streamed through a rewriter
 * (npm packuments, never held whole).
 */
import type http from 'node:http';
import { Readable, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import type { EventDraft } from '../core/events';
import { fetchCacheKey, type FetchDecision, type FetchFailure, type FetchPlan, type FinalDecision, type UpstreamHead } from '../core/fetch';
import { exchange, guardForNamedUrl, resolveUpstream, upstreamFellSilent, type ProxyOptions } from './proxy';
import type { CachedUpstream, UpstreamCache } from './upstream-cache';

export interface FetchOptions {
  /** `host[:port]` -> base URL overrides (`--upstream`). */
  readonly upstreams: ReadonlyMap<string, string>;
  readonly cache: UpstreamCache;
  readonly headersTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly maxRedirects: number;
}

export interface FetchResult {
  readonly status: number;
  readonly events: EventDraft[];
  /** Why the upstream could not be used, for the log; names the upstream host only. */
  readonly error?: string;
}

/** Writes a final decision (redirect or respond) to the client; resolves with the status sent. */
export type Answer = (d: FinalDecision) => Promise<number>;

/** The client side of a streamed answer: sends the status and headers, returns where the body goes. */
export interface FetchClient {
  readonly method: string;
  /** The client's Accept-Encoding (a streamed answer is gzipped when it allows). */
  readonly acceptEncoding: string | undefined;
  open(status: number, headers: Record<string, string>): Writable;
}

class FetchError extends Error {
  constructor(readonly failure: FetchFailure, message: string) {
    super(message);
  }
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** Statuses worth remembering: the document, and its absence (clients ask again for unknown names). */
const CACHEABLE = new Set([200, 404, 410]);

function headersOf(res: http.IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(res.headers)) {
    if (v === undefined || k === 'content-encoding' || k === 'content-length' || k === 'transfer-encoding' || k === 'connection') continue;
    out[k] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

function decoded(res: http.IncomingMessage): Readable {
  const enc = (res.headers['content-encoding'] ?? '').trim().toLowerCase();
  const decoder = enc === 'gzip' || enc === 'x-gzip' ? zlib.createGunzip() : enc === 'deflate' ? zlib.createInflate() : enc === 'br' ? zlib.createBrotliDecompress() : null;
  if (!decoder) return res;
  res.once('error', (e) => decoder.destroy(e));
  return res.pipe(decoder);
}

async function fetchUpstream(d: FetchDecision, opts: FetchOptions): Promise<{ head: UpstreamHead; body: Readable; response: http.IncomingMessage }> {
  const configured = new URL(d.url);
  let publicUrl = configured;
  const exchangeOpts: ProxyOptions = { upstreams: opts.upstreams, headersTimeoutMs: opts.headersTimeoutMs, idleTimeoutMs: opts.idleTimeoutMs, maxHops: opts.maxRedirects };
  for (let hop = 0; ; hop++) {
    const contacted = resolveUpstream(publicUrl, opts.upstreams);
    // A redirect to a host the configuration does not name may only lead to a public address (address-guard.ts).
    const guard = hop === 0 ? undefined : guardForNamedUrl(publicUrl, configured, opts.upstreams);
    let res: http.IncomingMessage;
    try {
      res = await exchange(contacted, 'GET', { ...d.headers, 'accept-encoding': 'gzip, deflate, br', host: contacted.host }, null, exchangeOpts, undefined, guard);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? '';
      if (code === 'EADDRBLOCKED') throw new FetchError('bad-response', `upstream ${configured.host} redirected to ${publicUrl.host}, which is not a public address`);
      if (code.startsWith('ETIMEDOUT')) throw new FetchError('timeout', `upstream ${publicUrl.host} did not answer in time`);
      throw new FetchError('unreachable', `upstream ${publicUrl.host} is unreachable (${code || 'connection failed'})`);
    }
    const status = res.statusCode ?? 502;
    const location = res.headers.location;
    if (REDIRECTS.has(status) && location) {
      res.resume();
      if (hop >= opts.maxRedirects) throw new FetchError('bad-response', `upstream ${publicUrl.host} redirected more than ${opts.maxRedirects} times`);
      let next: URL;
      try {
        next = new URL(location, publicUrl);
      } catch {
        throw new FetchError('bad-response', `upstream ${publicUrl.host} redirected to an invalid URL`);
      }
      if (next.protocol !== 'http:' && next.protocol !== 'https:') throw new FetchError('bad-response', `upstream ${publicUrl.host} redirected to a non-http URL`);
      publicUrl = next;
      continue;
    }
    return { head: { status, headers: headersOf(res), url: publicUrl.toString() }, body: decoded(res), response: res };
  }
}

/** The whole body, or null when it exceeds `limit` bytes (the stream is then destroyed). */
async function readBounded(body: Readable, limit: number): Promise<Uint8Array | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of body) {
    size += (c as Buffer).length;
    if (size > limit) {
      body.destroy();
      return null;
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

const asBuffer = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.length);

export async function carryOutFetch(d: FetchDecision, client: FetchClient, opts: FetchOptions, answer: Answer): Promise<FetchResult> {
  const key = fetchCacheKey(d);
  const cached = d.cacheSeconds > 0 ? opts.cache.get(key) : undefined;
  let head: UpstreamHead;
  let body: Readable;
  let response: http.IncomingMessage | null = null;
  if (cached) {
    head = cached.head;
    body = Readable.from([cached.body]);
  } else {
    try {
      ({ head, body, response } = await fetchUpstream(d, opts));
    } catch (e) {
      if (!(e instanceof FetchError)) throw e;
      const r = d.transform.onFailure(e.failure, e.message);
      return { status: await answer(r.decision), events: r.events, error: e.message };
    }
  }
  const store = (value: CachedUpstream) => {
    if (!cached && CACHEABLE.has(value.head.status)) opts.cache.set(key, value, d.cacheSeconds);
  };
  const plan: FetchPlan = d.transform.onHead(head);
  switch (plan.type) {
    case 'answer':
      body.destroy();
      store({ head, body: new Uint8Array(0) });
      return { status: await answer(plan.decision), events: plan.events };
    case 'buffer': {
      let bytes: Uint8Array | null;
      try {
        bytes = cached ? cached.body : await readBounded(body, plan.limit);
      } catch {
        // Silent mid-body for longer than the idle timeout is a timeout (504); a broken connection or body is not (502).
        const silent = response !== null && upstreamFellSilent(response);
        const message = silent ? `upstream ${d.upstreamHost} stopped sending the answer` : `upstream ${d.upstreamHost} broke off the answer`;
        const r = d.transform.onFailure(silent ? 'timeout' : 'unreachable', message);
        return { status: await answer(r.decision), events: r.events, error: message };
      }
      if (bytes === null) {
        const message = `upstream ${d.upstreamHost} sent a document larger than ${plan.limit} bytes`;
        const r = d.transform.onFailure('too-large', message);
        return { status: await answer(r.decision), events: r.events, error: message };
      }
      store({ head, body: bytes });
      const r = plan.finish(bytes);
      return { status: await answer(r.decision), events: r.events };
    }
    case 'stream':
      return streamPlan(plan, head, body, client, (bytes) => store({ head, body: bytes }), opts.cache.options.maxEntryBytes);
  }
}

async function streamPlan(
  plan: Extract<FetchPlan, { type: 'stream' }>, head: UpstreamHead, body: Readable, client: FetchClient,
  store: (bytes: Uint8Array) => void, keepUpTo: number,
): Promise<FetchResult> {
  const method = client.method;
  const gzip = method !== 'HEAD' && /\bgzip\b/i.test(client.acceptEncoding ?? '');
  const headers: Record<string, string> = { ...plan.headers };
  if (gzip) {
    headers['content-encoding'] = 'gzip';
    headers.vary = headers.vary ? `${headers.vary}, Accept-Encoding` : 'Accept-Encoding';
  }
  const clientRes = client.open(plan.status, headers);
  if (method === 'HEAD') {
    body.destroy();
    clientRes.end();
    return { status: plan.status, events: plan.events };
  }
  // The upstream bytes are kept for the cache only while they stay small.
  let kept: Buffer[] | null = head.status === 200 ? [] : null;
  let keptSize = 0;
  const rewrite = new Transform({
    transform(chunk: Buffer, _enc, done) {
      if (kept) {
        keptSize += chunk.length;
        if (keptSize > keepUpTo) kept = null;
        else kept.push(chunk);
      }
      done(null, asBuffer(plan.rewriter.push(chunk)));
    },
    flush(done) {
      done(null, asBuffer(plan.rewriter.end()));
    },
  });
  try {
    await (gzip ? pipeline(body, rewrite, zlib.createGzip(), clientRes) : pipeline(body, rewrite, clientRes));
  } catch {
    // The upstream or the client went away mid-body: the status is already sent, so the client sees a cut-off body.
    clientRes.destroy();
    return { status: plan.status, events: plan.events, error: `upstream ${new URL(head.url).host} broke off the answer, or the client went away` };
  }
  if (kept) store(Buffer.concat(kept));
  return { status: plan.status, events: plan.events };
}
