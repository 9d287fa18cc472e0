/**
 * The request cycle every adapter runs around the engine: decide (reading the body when the
 * engine asks for it), and, once the response is sent, turn the event drafts into events.
 * Adapters supply only their I/O: how to read the body, who the viewer is, where events go.
 */
import type { CompiledRuleSet } from './compile';
import { handleRequest } from './engine';
import { completeEvents, type ViewerOrigin } from './complete-event';
import type { GatewayEvent } from './events';
import { header, optedOut, type GatewayRequest, type Outcome } from './request';
import { visitorId, type VisitorIdFn } from './visitor';

export type BodyReader = (limit: number) => Promise<{ body: Uint8Array; truncated: boolean }>;

export interface Decided {
  readonly outcome: Outcome;
  readonly request: GatewayRequest;
}

/**
 * Runs the engine; when it asks for the body, reads at most the asked number of bytes and runs it
 * again. Without a body to read the answer is there at once, not a promise (the local server's
 * fast path); `await` works on both.
 */
export function decide(rules: CompiledRuleSet, request: GatewayRequest, readBody: BodyReader): Decided | Promise<Decided> {
  const first = handleRequest(rules, request);
  if (first.decision.type !== 'read-body') return { outcome: first, request };
  return decideWithBody(rules, request, first.decision.limit, readBody);
}

async function decideWithBody(rules: CompiledRuleSet, request: GatewayRequest, limit: number, readBody: BodyReader): Promise<Decided> {
  const { body, truncated } = await readBody(limit);
  const withBody: GatewayRequest = { ...request, body, bodyTruncated: truncated };
  const outcome = handleRequest(rules, withBody);
  if (outcome.decision.type === 'read-body') throw new Error('engine asked for the body twice');
  return { outcome, request: withBody };
}

export interface Viewer {
  /** The client's address as the adapter knows it for sure (socket peer, CDN viewer header); used for the visitor id only, never stored. */
  readonly ip: string | null;
  /** Coarse origin from the CDN; null locally. */
  readonly origin: ViewerOrigin | null;
}

export interface RecordContext {
  readonly salt: string;
  readonly time: Date;
  readonly newId: () => string;
  /** How to compute visitor ids (default `visitorId`; the local server remembers the last one per connection). */
  readonly visitorId?: VisitorIdFn;
}

// Returned rather than written inline: a closure with no inferred name costs nothing extra under tsx/esbuild's keepNames.
function visitorIdsFor(idOf: VisitorIdFn, salt: string, ip: string | null, userAgent: string | undefined, domain: string): (packageId: string | null) => string | null {
  return (packageId) => idOf(salt, ip, userAgent, domain, packageId);
}

/** The events of a finished request; none for an unknown host or a request that opted out (DNT, Sec-GPC). */
export function eventsOf(outcome: Outcome, request: GatewayRequest, status: number, viewer: Viewer, ctx: RecordContext): GatewayEvent[] {
  if (!outcome.events.length || outcome.domain === null || optedOut(request.headers)) return [];
  const userAgent = header(request.headers, 'user-agent');
  const domain = outcome.domain;
  const idOf = ctx.visitorId ?? visitorId;
  return completeEvents(outcome.events, {
    domain,
    method: request.method,
    path: request.rawPath,
    status,
    time: ctx.time,
    userAgent,
    origin: viewer.origin,
    visitorIdFor: visitorIdsFor(idOf, ctx.salt, viewer.ip, userAgent, domain),
    newId: ctx.newId,
  });
}
