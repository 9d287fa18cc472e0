/**
 * The `fetch` decision: the answer depends on a document the gateway must fetch from an upstream
 * (a Python project page, an npm packument). The engine stays pure: it names the URL and hands
 * the adapter a transform, a set of pure functions that turn the upstream's answer into the
 * client's answer and the request's events. The adapter does the I/O (fetching, `--upstream`
 * overrides, redirects, decompression, caching, streaming, timeouts) and nothing else, so every
 * adapter (local server, Lambda) produces the same answers.
 */
import type { EventDraft } from './events';
import type { Decision } from './request';

/** Decisions a transform may end in: anything but another fetch or a body read. */
export type FinalDecision = Extract<Decision, { type: 'redirect' | 'respond' }>;

export interface TransformResult {
  readonly decision: FinalDecision;
  readonly events: EventDraft[];
}

/** The upstream's answer as the transform sees it. */
export interface UpstreamHead {
  readonly status: number;
  /** Header names lower case; the body is already decoded (no Content-Encoding, no Content-Length). */
  readonly headers: Readonly<Record<string, string>>;
  /** The public URL that answered, after redirects: relative links in the body resolve against it. */
  readonly url: string;
}

/** A pure byte-stream rewriter: output for each input chunk, then the rest at the end. */
export interface ByteRewriter {
  push(chunk: Uint8Array): Uint8Array;
  end(): Uint8Array;
}

/** What the adapter does with the upstream body, decided from the status and headers. */
export type FetchPlan =
  /** Answer without reading the body (upstream errors, not found). */
  | ({ readonly type: 'answer' } & TransformResult)
  /** Read the whole decoded body, at most `limit` bytes (more: `onFailure('too-large')`), then call `finish`. */
  | { readonly type: 'buffer'; readonly limit: number; finish(body: Uint8Array): TransformResult }
  /**
   * Send `status` and `headers` now and stream the decoded body through `rewriter` to the
   * client (no body for HEAD). The adapter may compress the output for the client.
   */
  | { readonly type: 'stream'; readonly status: number; readonly headers: Readonly<Record<string, string>>; readonly rewriter: ByteRewriter; readonly events: EventDraft[] };

export type FetchFailure =
  /** No connection, or the connection broke before the headers. */
  | 'unreachable'
  /** No response headers within the adapter's time limit. */
  | 'timeout'
  /** A `buffer` plan's body exceeded its limit. */
  | 'too-large'
  /** Too many redirects, or a redirect to something that is not http(s). */
  | 'bad-response';

export interface UpstreamTransform {
  onHead(head: UpstreamHead): FetchPlan;
  /** The client's answer when the fetch failed; `message` names the upstream host and nothing of the request. */
  onFailure(failure: FetchFailure, message: string): TransformResult;
}

export interface FetchDecision {
  readonly type: 'fetch';
  /** Absolute public URL of the document, always fetched with GET (the `--upstream` override applies to its host). */
  readonly url: string;
  /** `host[:port]` of `url`. */
  readonly upstreamHost: string;
  /** Request headers for the upstream (names lower case). Nothing of the client's request travels unless listed here. */
  readonly headers: Readonly<Record<string, string>>;
  /**
   * How long the adapter may reuse an upstream answer (200 or 404) fetched with the same URL and
   * headers; 0: never. The cache holds upstream bytes, never a client's answer, so answers that
   * depend on the request (its host, its Accept) stay correct.
   */
  readonly cacheSeconds: number;
  readonly transform: UpstreamTransform;
}

/** How the gateway names itself to upstreams (some refuse requests without a User-Agent); the client's is never passed on. */
export const GATEWAY_USER_AGENT = 'artifact-gateway';

/** The cache key of a fetch: URL plus the request headers that select a representation. */
export function fetchCacheKey(d: Pick<FetchDecision, 'url' | 'headers'>): string {
  const h = Object.keys(d.headers).sort().map((k) => `${k}: ${d.headers[k]}`).join('\n');
  return `${d.url}\n${h}`;
}
