/**
 * The Lambda function URL adapter: a function URL event (payload format 2.0) behind CloudFront
 * becomes a GatewayRequest, the engine decides, and the decision is carried out on a response
 * stream. Rules and events come in through the RuleSource and EventSink seams (ports.ts).
 *
 * What CloudFront's viewer-request function (lambda/edge/viewer-request.ts) did before the
 * request got here, and what this adapter undoes:
 * - the viewer's Host is in X-Forwarded-Host (the function URL's own Host is meaningless here);
 * - the viewer's Authorization travelled in a private header, because origin access control
 *   signs the origin request and overwrites Authorization; it is restored, and CloudFront's
 *   signature headers are dropped;
 * - the raw request path travelled in a private header, because the function URL front end
 *   decodes some escapes in `rawPath` (`%2F` arrives as `/`).
 */
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { randomUUID } from 'node:crypto';
import type { LambdaFunctionURLEvent } from 'aws-lambda';
import type { CompiledRuleSet } from '../core/compile';
import type { GatewayEvent } from '../core/events';
import { cloudFrontViewerIp, viewerOrigin } from '../core/viewer-origin';
import type { GatewayRequest, Outcome } from '../core/request';
import { requestHost, REDIRECT_CACHE_CONTROL } from '../core/request';
import { answerFor } from '../core/answer';
import { decide, eventsOf, type Viewer } from '../core/run';
import { bodyless, DEFAULT_PROXY_OPTIONS, fetchUpstream, forwardToUpstream, type ProxyOptions } from '../local/proxy';
import { issueGatewayToken, type ChallengeCache } from '../core/registry-auth';
import type { FinalDecision } from '../core/fetch';
import { carryOutFetch } from '../local/upstream-fetch';
import { UpstreamCache } from '../local/upstream-cache';
import type { EventSink, RuleSource } from './ports';

/** Where the edge function puts the viewer's Authorization (origin access control overwrites the real one). */
export const PRIVATE_AUTHORIZATION_HEADER = 'x-gateway-authorization';
/** Where the edge function puts the raw request path as the viewer sent it. */
export const RAW_PATH_HEADER = 'x-gateway-raw-path';

/**
 * Headers that describe the hop from CloudFront to the function URL, not the viewer's request:
 * CloudFront's SigV4 signature (origin access control), the function URL's own Host, forwarding
 * headers that carry addresses. None of them reaches the engine, an upstream or an event.
 */
const HOP_HEADERS = new Set([
  'authorization', 'host', 'x-amz-date', 'x-amz-security-token', 'x-amz-content-sha256', 'x-amz-source-account', 'x-amz-source-arn',
  'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-port', 'x-amzn-trace-id', 'x-amz-cf-id', 'via', 'forwarded', 'x-real-ip', 'true-client-ip',
  RAW_PATH_HEADER, PRIVATE_AUTHORIZATION_HEADER,
]);

export interface AdaptedRequest {
  readonly request: GatewayRequest;
  /** The decoded request body (function URL bodies are complete, at most 6 MB); null when empty. */
  readonly body: Buffer | null;
  readonly viewer: Viewer;
}

/** Viewer facts from CloudFront's viewer headers (trusted here: CloudFront sets them). The address is used for the visitor id only and never stored. */
export function viewerOf(headers: Readonly<Record<string, string | undefined>>): Viewer {
  return { ip: cloudFrontViewerIp(headers, { trusted: true }), origin: viewerOrigin(headers, { trusted: true }) };
}

/** Translates a function URL event; the raw path and query reach the engine exactly as the viewer sent them. */
export function adaptEvent(event: LambdaFunctionURLEvent): AdaptedRequest {
  const incoming: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(event.headers ?? {})) incoming[k.toLowerCase()] = v;
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined || HOP_HEADERS.has(name) || name.startsWith('cloudfront-')) continue;
    headers[name] = value;
  }
  const auth = incoming[PRIVATE_AUTHORIZATION_HEADER];
  if (auth !== undefined) headers.authorization = auth;
  // The engine routes by X-Forwarded-Host (set by the edge from the viewer's Host); never by the function URL's host.
  headers.host = incoming['x-forwarded-host'] ?? '';
  const rawPathHeader = incoming[RAW_PATH_HEADER];
  const rawPath = rawPathHeader && rawPathHeader.startsWith('/') ? rawPathHeader : event.rawPath || '/';
  const rawQuery = event.rawQueryString ? `?${event.rawQueryString}` : '';
  const body = event.body ? Buffer.from(event.body, event.isBase64Encoded ? 'base64' : 'utf8') : null;
  const request: GatewayRequest = {
    method: (event.requestContext?.http?.method ?? 'GET').toUpperCase(),
    rawPath,
    rawQuery,
    headers,
    hasBody: body !== null && body.length > 0,
  };
  return { request, body: body && body.length ? body : null, viewer: viewerOf(incoming) };
}

/** Status line and headers of a streamed response (what `awslambda.HttpResponseStream.from` takes). */
export interface ResponseHead {
  statusCode: number;
  headers: Record<string, string>;
  cookies: string[];
}

/** Opens the response: sends the head, returns the stream the body is written to. */
export type OpenResponse = (head: ResponseHead) => Writable;

export interface GatewayDeps {
  readonly rules: RuleSource;
  readonly sink: EventSink;
  /** The day's visitor-id salt; null while it cannot be had (events then carry no visitor id). */
  readonly salt: () => string | null | Promise<string | null>;
  readonly proxy?: Partial<ProxyOptions>;
  /** Upstream documents (Python indexes, npm packuments), kept across invocations of one instance. */
  readonly upstreamCache?: UpstreamCache;
  /** Upstream registry challenges learned by the gateway's token endpoint, kept across invocations. */
  readonly challenges?: ChallengeCache;
  /**
   * Seconds CloudFront may keep redirects and other download answers; null (the default) keeps
   * them out of every cache, so the gateway sees (and counts) every download.
   */
  readonly cacheDownloadsSeconds?: number | null;
  readonly log?: (level: 'warn' | 'error', message: string, fields: Record<string, unknown>) => void;
  readonly now?: () => Date;
  readonly newId?: () => string;
}

export interface HandledRequest {
  readonly status: number;
  readonly events: GatewayEvent[];
  /** The gateway answered 502/504 because the upstream failed. */
  readonly upstreamError: boolean;
}

function jsonAnswer(status: number, error: string, message: string): { status: number; headers: Record<string, string>; body: Buffer } {
  const body = Buffer.from(JSON.stringify({ error, message }));
  return { status, headers: { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': String(body.length) }, body };
}

/** Splits response headers into the function URL shape: single string values, Set-Cookie as `cookies`. */
export function toResponseHead(status: number, headers: Readonly<Record<string, string | readonly string[]>>): ResponseHead {
  const out: Record<string, string> = {};
  const cookies: string[] = [];
  for (const [name, value] of Object.entries(headers)) {
    const key = name.toLowerCase();
    if (key === 'set-cookie') cookies.push(...(typeof value === 'string' ? [value] : value));
    else out[key] = typeof value === 'string' ? value : value.join(', ');
  }
  return { statusCode: status, headers: out, cookies };
}

/**
 * Downloads are counted by the gateway, so their answers must not be replayed by CloudFront (or
 * by any shared cache) unless the operator opted in with a cache time.
 */
export function downloadCacheControl(outcome: Outcome, headers: Record<string, string | readonly string[]>, cacheSeconds: number | null): void {
  const counted = outcome.events.some((e) => e.countable) || outcome.decision.type === 'redirect';
  if (!counted) return;
  headers['cache-control'] = cacheSeconds && cacheSeconds > 0 ? `max-age=0, s-maxage=${Math.floor(cacheSeconds)}` : REDIRECT_CACHE_CONTROL;
}

async function writeAll(stream: Writable, body: Uint8Array): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    stream.once('error', reject);
    stream.end(body.length ? body : undefined, () => resolve());
  });
}

/**
 * Handles one function URL request end to end: decides, answers on the stream, records events.
 * Never throws for a bad request or a failing dependency: those become 4xx/5xx answers.
 */
export async function handleFunctionUrlEvent(event: LambdaFunctionURLEvent, open: OpenResponse, deps: GatewayDeps): Promise<HandledRequest> {
  const now = deps.now ?? (() => new Date());
  let adapted: AdaptedRequest;
  try {
    adapted = adaptEvent(event);
  } catch {
    const a = jsonAnswer(400, 'bad_request', 'the request could not be read');
    await writeAll(open(toResponseHead(a.status, a.headers)), a.body);
    return { status: 400, events: [], upstreamError: false };
  }
  const { request, body, viewer } = adapted;
  let rules: CompiledRuleSet;
  try {
    rules = await deps.rules.rulesFor(requestHost(request.headers));
  } catch (e) {
    deps.log?.('error', 'rules unavailable', { error: e instanceof Error ? e.message : String(e) });
    const a = jsonAnswer(503, 'rules_unavailable', 'the gateway cannot load its rules right now; try again shortly');
    await writeAll(open(toResponseHead(a.status, { ...a.headers, 'retry-after': '5' })), request.method === 'HEAD' ? new Uint8Array(0) : a.body);
    return { status: 503, events: [], upstreamError: false };
  }
  const { outcome, request: decided } = await decide(rules, request, async (limit) => {
    const bytes = body ?? Buffer.alloc(0);
    return { body: bytes.subarray(0, limit), truncated: bytes.length > limit };
  });
  const cacheSeconds = deps.cacheDownloadsSeconds ?? null;
  const proxyOpts: ProxyOptions = { ...DEFAULT_PROXY_OPTIONS, ...deps.proxy, upstreams: deps.proxy?.upstreams ?? new Map() };
  let events = outcome.events;
  /** Writes one of the engine's own answers (redirect, respond). */
  const answer = async (d: FinalDecision): Promise<number> => {
    const a = answerFor(d, request.method);
    const headers: Record<string, string> = { ...a.headers };
    downloadCacheControl({ ...outcome, decision: d, events }, headers, cacheSeconds);
    await writeAll(open(toResponseHead(a.status, headers)), a.body);
    return a.status;
  };
  const d = outcome.decision;
  let status: number;
  let upstreamError = false;
  switch (d.type) {
    case 'redirect':
    case 'respond':
      status = await answer(d);
      break;
    case 'registry-token': {
      const t = await issueGatewayToken(d, { get: (url, headers, namedBy) => fetchUpstream(url, headers, proxyOpts, namedBy) }, deps.challenges ?? new Map(), now());
      if (t.error) deps.log?.('warn', 'registry token not issued', { status: t.status, error: t.error });
      await writeAll(open(toResponseHead(t.status, t.headers)), request.method === 'HEAD' ? new Uint8Array(0) : Buffer.from(t.body));
      status = t.status;
      break;
    }
    case 'fetch': {
      const r = await carryOutFetch(d, {
        method: request.method,
        acceptEncoding: typeof request.headers['accept-encoding'] === 'string' ? request.headers['accept-encoding'] : undefined,
        open: (st, headers) => open(toResponseHead(st, headers)),
      }, {
        upstreams: proxyOpts.upstreams, cache: deps.upstreamCache ?? new UpstreamCache(),
        headersTimeoutMs: proxyOpts.headersTimeoutMs, idleTimeoutMs: proxyOpts.idleTimeoutMs, maxRedirects: 5,
      }, (final) => answer(final));
      if (r.error) {
        deps.log?.('warn', 'upstream error', { upstream: d.upstreamHost, status: r.status, error: r.error });
        upstreamError = r.status >= 500;
      }
      status = r.status;
      // The transform, not the engine, knows what this request was (a download, a miss, ...).
      events = r.events;
      break;
    }
    case 'proxy': {
      const rawHeaders: string[] = [];
      for (const [name, value] of Object.entries(request.headers)) {
        if (value === undefined || name === 'host') continue;
        for (const v of typeof value === 'string' ? [value] : value) rawHeaders.push(name, v);
      }
      const up = await forwardToUpstream({ method: request.method, rawHeaders, body: body ? Readable.from([body]) : null }, d, proxyOpts);
      if (up.kind === 'response') {
        const headers: Record<string, string | string[]> = {};
        for (let i = 0; i < up.rawHeaders.length; i += 2) {
          const name = up.rawHeaders[i].toLowerCase();
          const prev = headers[name];
          headers[name] = prev === undefined ? up.rawHeaders[i + 1] : [...(Array.isArray(prev) ? prev : [prev]), up.rawHeaders[i + 1]];
        }
        // An upstream redirect usually points at a signed, short-lived URL: no cache may replay it.
        if (up.status >= 300 && up.status < 400 && up.status !== 304) headers['cache-control'] = REDIRECT_CACHE_CONTROL;
        downloadCacheControl(outcome, headers, cacheSeconds);
        const stream = open(toResponseHead(up.status, headers));
        if (bodyless(request.method, up.status)) {
          up.body.resume();
          await writeAll(stream, new Uint8Array(0));
        } else {
          try {
            await pipeline(up.body, stream);
          } catch {
            // The upstream or the viewer went away mid-body; the status line has been sent already.
            stream.destroy();
          }
        }
        status = up.status;
      } else {
        // 'client-gone' cannot happen here: the function URL keeps the viewer connection.
        const error = up.kind === 'error' ? up : { status: 502, headers: { 'content-type': 'application/json' }, body: '', error: 'upstream failed' };
        deps.log?.('warn', 'upstream error', { upstream: d.upstreamHost, status: error.status, error: error.error });
        await writeAll(open(toResponseHead(error.status, error.headers)), request.method === 'HEAD' ? new Uint8Array(0) : Buffer.from(error.body));
        status = error.status;
        upstreamError = true;
      }
      break;
    }
    case 'read-body':
      throw new Error('unexpected read-body decision');
  }
  const completed = eventsOf({ ...outcome, events }, decided, status, viewer, { salt: (await deps.salt()) ?? '', time: now(), newId: deps.newId ?? randomUUID });
  if (completed.length) deps.sink.write(completed);
  return { status, events: completed, upstreamError };
}
