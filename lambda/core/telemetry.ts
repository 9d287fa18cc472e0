/**
 * telemetry-v1: an endpoint that accepts POSTed JSON events. Tokens are compared in constant
 * time, and may be stored as `sha256:<hex>` so a manifest need not hold the secret itself.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { TelemetryV1Rule } from './schema';
import { pathSegments } from './encoding';
import { header, type GatewayRequest, type Outcome } from './request';
import { BODY_LIMIT, parseBodyEvents } from './body-events';

interface TelemetryCompiled {
  readonly packageId: string;
  /** SHA-256 digests of the accepted tokens; null: open endpoint. */
  readonly tokenDigests: readonly Buffer[] | null;
}

export type TelemetryIndex = Map<string, TelemetryCompiled>;

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest();
const segmentKey = (segments: readonly string[]) => segments.join('/');

export function compileTelemetry(rules: TelemetryV1Rule[]): TelemetryIndex | null {
  if (!rules.length) return null;
  const index: TelemetryIndex = new Map();
  for (const r of rules) {
    const segments = pathSegments(r['incoming-path'].split('?')[0]) ?? [];
    const tokens = r['access-tokens'];
    index.set(segmentKey(segments), {
      packageId: r['package-id'],
      tokenDigests: tokens == null ? null : tokens.map((t) => {
        const m = /^sha256:([0-9a-f]{64})$/i.exec(t);
        return m ? Buffer.from(m[1], 'hex') : sha256(t);
      }),
    });
  }
  return index;
}

/** Constant time in the token and in which stored token matches. */
function tokenAccepted(digests: readonly Buffer[], presented: string): boolean {
  const d = sha256(presented);
  let ok = false;
  for (const stored of digests) ok = timingSafeEqual(stored, d) || ok;
  return ok;
}

type TelemetryResult = Omit<Outcome, 'domain'>;

export function handleTelemetry(index: TelemetryIndex, req: GatewayRequest, segments: readonly string[] | null, domain: string): TelemetryResult | 'read-body' | null {
  if (req.method !== 'POST' || !segments) return null;
  const rule = index.get(segmentKey(segments));
  if (!rule) return null;
  if (rule.tokenDigests !== null) {
    const auth = header(req.headers, 'authorization') ?? '';
    const m = /^Bearer (.*)$/is.exec(auth);
    if (!m || !tokenAccepted(rule.tokenDigests, m[1].trim())) {
      return {
        decision: {
          type: 'respond', status: 401,
          // Scarf answers with an empty body; the challenge header tells clients what is expected.
          headers: { 'www-authenticate': `Bearer realm="${domain}"`, 'cache-control': 'no-store' },
          body: '',
        },
        // Named package ids stay out of refused requests (they could be probes).
        events: [{ kind: 'telemetry', action: 'unauthorized', countable: false, package_id: null }],
      };
    }
  }
  if (req.hasBody && req.body === undefined) return 'read-body';
  if (req.bodyTruncated) {
    return {
      decision: { type: 'respond', status: 413, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ error: 'payload_too_large', message: `telemetry bodies are limited to ${BODY_LIMIT} bytes` }) },
      events: [{ kind: 'telemetry', action: 'rejected', countable: false, package_id: null }],
    };
  }
  const parsed = parseBodyEvents(req.body);
  return {
    decision: { type: 'respond', status: 200, headers: { 'cache-control': 'no-store' }, body: '' },
    events: parsed.events.map((e) => ({ kind: 'telemetry', action: 'respond', countable: false, package_id: rule.packageId, body_event: e })),
  };
}
