/**
 * The engine's view of a request and of its answer. Adapters (local HTTP server, Lambda function
 * URL, ...) translate their own request objects into a GatewayRequest and carry out the Decision.
 */
import type { EventDraft } from './events';
import type { FetchDecision } from './fetch';

export type Headers = Readonly<Record<string, string | readonly string[] | undefined>>;

export interface GatewayRequest {
  /** Upper-case method. */
  readonly method: string;
  /** Raw path exactly as received, still percent-encoded, starting with `/`, without the query. */
  readonly rawPath: string;
  /** Raw query including its leading `?`, or `''`. */
  readonly rawQuery: string;
  /** Header names in lower case. Repeated headers may be arrays. */
  readonly headers: Headers;
  /** True when the request carries a body (Content-Length > 0 or chunked). */
  readonly hasBody: boolean;
  /** The first bytes of the body, once the engine asked for them (Decision `read-body`). */
  readonly body?: Uint8Array;
  /** The body was longer than the limit the engine asked for. */
  readonly bodyTruncated?: boolean;
  /** Scheme the client used to reach the adapter, when no `X-Forwarded-Proto` says otherwise (default https). */
  readonly scheme?: 'http' | 'https';
}

/** Headers on every redirect: a CDN or a client cache must not replay it (the gateway would stop seeing downloads). */
export const REDIRECT_CACHE_CONTROL = 'private, no-store';

export type Decision =
  /** Answer 307 with an absolute Location. */
  | { readonly type: 'redirect'; readonly status: 307; readonly location: string; readonly headers: Readonly<Record<string, string>> }
  /** Forward the request to `url` (an absolute URL on a configured upstream) and relay the answer. */
  | {
      readonly type: 'proxy';
      readonly url: string;
      /** `host[:port]` of `url`, the key of `--upstream` overrides. */
      readonly upstreamHost: string;
      /** Follow upstream 3xx to `/v2/...` on these hosts internally (registry-to-registry hops); hand back every other redirect. */
      readonly followRedirectsTo: readonly string[];
      /** Shape of gateway-generated errors (502/504): OCI registry errors or plain JSON. */
      readonly errorStyle: 'oci' | 'json';
      /**
       * Registry repositories: `Location` and `Link` URLs under `upstreamPrefix` (an absolute URL on the
       * upstream) go back to the client as paths under `publicPrefix`, so uploads and paging return
       * through the gateway under the public repository name.
       */
      readonly rewrite?: { readonly upstreamPrefix: string; readonly publicPrefix: string };
      /** Replaces the client's `Authorization` toward the upstream (null: send none); absent: forward the client's. */
      readonly authorization?: string | null;
      /** On an upstream 401, the `WWW-Authenticate` the client gets instead of the upstream's (the gateway's own token realm). */
      readonly challenge?: string;
    }
  /** The gateway's registry token endpoint: obtain tokens from these upstreams' token services (registry-auth.ts). */
  | {
      readonly type: 'registry-token';
      readonly upstreams: ReadonlyArray<{ readonly host: string; readonly baseUrl: string; readonly scopes: readonly string[] }>;
      /** The client's `Authorization: Basic ...`, passed to the upstream's token service; null: ask anonymously. */
      readonly credentials: string | null;
    }
  /** Answer with these bytes (an empty body for HEAD, with the headers of GET). */
  | { readonly type: 'respond'; readonly status: number; readonly headers: Readonly<Record<string, string>>; readonly body: Uint8Array | string }
  /** The matched rule needs the request body: read at most `limit` bytes and call the engine again. */
  | { readonly type: 'read-body'; readonly limit: number }
  /** Fetch an upstream document and answer with what its transform makes of it (fetch.ts). */
  | FetchDecision;

export interface Outcome {
  readonly decision: Decision;
  /** Events of this request, to complete and record once the response is sent. */
  readonly events: EventDraft[];
  /** The matched domain (lower case, no port), or null for an unknown host. */
  readonly domain: string | null;
}

/** One header value; repeated headers are joined with ", " (RFC 9110 list semantics). */
export function header(headers: Headers, name: string): string | undefined {
  const v = headers[name];
  if (v === undefined) return undefined;
  return typeof v === 'string' ? v : v.join(', ');
}

/** Routing host: X-Forwarded-Host when present (taken whole), else Host; lower case. */
export function requestHost(headers: Headers): string {
  const xfh = header(headers, 'x-forwarded-host');
  return (xfh !== undefined ? xfh : header(headers, 'host') ?? '').trim().toLowerCase();
}

const ORIGIN_HOST = /^(?:[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*|\[[0-9a-f:.]+\])(?::\d{1,5})?$/;

/**
 * The gateway's own origin as the client addressed it (`scheme://host[:port]`), for absolute URLs
 * in answers (npm tarball URLs, redirects). Host: the first `X-Forwarded-Host` value, else `Host`,
 * port kept; a malformed value falls back to `fallbackHost` (the matched domain). Scheme: the first
 * `X-Forwarded-Proto` value, else the adapter's `scheme`, else https.
 */
export function requestOrigin(req: GatewayRequest, fallbackHost: string): string {
  const proto = header(req.headers, 'x-forwarded-proto')?.split(',')[0].trim().toLowerCase();
  const scheme = proto === 'http' || proto === 'https' ? proto : req.scheme ?? 'https';
  const raw = (header(req.headers, 'x-forwarded-host') ?? header(req.headers, 'host') ?? '').split(',')[0].trim().toLowerCase();
  return `${scheme}://${ORIGIN_HOST.test(raw) ? raw : fallbackHost}`;
}

/** The request opted out of tracking (`DNT: 1` or `Sec-GPC: 1`): serve it, record nothing. */
export function optedOut(headers: Headers): boolean {
  return header(headers, 'dnt')?.trim() === '1' || header(headers, 'sec-gpc')?.trim() === '1';
}
