/**
 * Completing the engine's event drafts once the response is known: status, time, client fields,
 * coarse origin and visitor id. Shared by every adapter so events are the same everywhere.
 */
import type { EventDraft, GatewayEvent } from './events';
import { parseUserAgent } from './user-agent';
import type { ViewerOrigin } from './viewer-origin';

export type { ViewerOrigin } from './viewer-origin';

export interface EventContext {
  readonly domain: string;
  readonly method: string;
  readonly path: string;
  readonly status: number;
  readonly time: Date;
  readonly userAgent: string | undefined;
  /** From the CDN's viewer headers when deployed (viewerOrigin()); null locally (never derived from the IP). */
  readonly origin: ViewerOrigin | null;
  /** Visitor id for one package; null where not allowed. */
  readonly visitorIdFor: (packageId: string | null) => string | null;
  readonly newId: () => string;
}

/** A countable request is a download only when it succeeded: 2xx or a redirect, not 304. */
export function isDownload(draft: EventDraft, status: number): boolean {
  return draft.countable && status >= 200 && status < 400 && status !== 304;
}

export function completeEvents(drafts: readonly EventDraft[], ctx: EventContext): GatewayEvent[] {
  if (!drafts.length) return [];
  const client = parseUserAgent(ctx.userAgent);
  const time = isoTime(ctx.time);
  return drafts.map((d) => ({
    id: ctx.newId(),
    time,
    kind: d.kind,
    action: d.action,
    download: isDownload(d, ctx.status),
    package_id: d.package_id,
    auto_create_rule_id: d.auto_create_rule_id ?? null,
    domain: ctx.domain,
    method: ctx.method,
    path: ctx.path,
    status: ctx.status,
    target: d.target ? withoutCredentials(d.target) : null,
    image: d.image ?? null,
    reference: d.reference ?? null,
    upstream: d.upstream ?? null,
    file_name: d.file_name ?? null,
    version: d.version ?? null,
    variables: d.variables ?? {},
    body_event: d.body_event ?? null,
    pixel_id: d.pixel_id ?? null,
    ...client,
    country: ctx.origin?.country ?? null,
    region: ctx.origin?.region ?? null,
    asn: ctx.origin?.asn ?? null,
    org: ctx.origin?.org ?? null,
    visitor_id: ctx.visitorIdFor(d.package_id),
  }));
}

/** The last timestamp formatted: under load many responses complete within the same millisecond. */
let lastMs = NaN;
let lastIso = '';
function isoTime(t: Date): string {
  const ms = t.getTime();
  if (ms !== lastMs) {
    lastIso = t.toISOString();
    lastMs = ms;
  }
  return lastIso;
}

/**
 * Query parameters whose values are credentials (a client's `?access_token=`, a signed URL's
 * `X-Amz-Signature`): their values never reach analytics, though the redirect keeps them.
 */
const CREDENTIAL_PARAM = /^(?:(?:access|refresh|id|auth|session|security|upload)[-_]?token|token|auth|authorization|api[-_]?key|apikey|key|secret|client[-_]?secret|password|passwd|pwd|sig|signature|code|jwt|session(?:[-_]?id)?|x-amz-(?:signature|credential|security-token)|x-goog-(?:signature|credential)|.*(?:token|secret|signature|password))$/i;

/** The name of a raw query pair, decoded for the test (`access%5Ftoken` is `access_token`). */
function paramName(pair: string): string {
  const eq = pair.indexOf('=');
  const raw = (eq < 0 ? pair : pair.slice(0, eq)).replace(/\+/g, ' ');
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

function redactQuery(query: string): string {
  let changed = false;
  const pairs = query.split('&').map((pair) => {
    if (!CREDENTIAL_PARAM.test(paramName(pair)) || !pair.includes('=')) return pair;
    changed = true;
    return `${pair.slice(0, pair.indexOf('='))}=redacted`;
  });
  return changed ? pairs.join('&') : query;
}

/** Targets never carry userinfo, or the values of credential-like query parameters, into analytics. */
function withoutCredentials(url: string): string {
  let out = url.includes('@') ? url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#@]*@/i, '$1') : url;
  const q = out.indexOf('?');
  if (q >= 0) {
    const hash = out.indexOf('#', q);
    const query = out.slice(q + 1, hash < 0 ? undefined : hash);
    const redacted = redactQuery(query);
    if (redacted !== query) out = `${out.slice(0, q + 1)}${redacted}${hash < 0 ? '' : out.slice(hash)}`;
  }
  return out;
}
