/**
 * The rule engine: a pure function from a request and a compiled rule set to a decision and the
 * analytics events of that request. Every entry point (local server, Lambda function URL, ...)
 * calls this and only carries out the decision.
 */
import { findDomain, type CompiledRuleSet, type DomainIndex } from './compile';
import { pathSegments, percentDecode } from './encoding';
import { handleDocker } from './docker';
import { handleCatchAll, handleFiles } from './files';
import { handlePython } from './python';
import { handleTelemetry } from './telemetry';
import { handlePixel } from './pixel';
import { handleNpm, npmError } from './npm';
import { BODY_LIMIT } from './body-events';
import { requestHost, type GatewayRequest, type Outcome } from './request';
import type { EventDraft, EventKind } from './events';

/** Longest raw path plus query the engine looks at; longer requests get 414. */
export const MAX_TARGET_LENGTH = 16 * 1024;

const NAME_UNKNOWN = JSON.stringify({ errors: [{ code: 'NAME_UNKNOWN', detail: {}, message: 'repository name not known to registry' }] });

function jsonError(status: number, error: string, message: string): Outcome['decision'] {
  return { type: 'respond', status, headers: { 'content-type': 'application/json', 'cache-control': 'no-store' }, body: JSON.stringify({ error, message }) };
}

/** Scarf's no-match answer: the OCI NAME_UNKNOWN error under /v2/ (except the catalog), else an empty 404. */
function notFound(rawPath: string): Outcome['decision'] {
  // Raw segments, so a malformed escape later in the path still gets the registry's answer.
  const [first, second] = rawPath.slice(1).split('/');
  const registryPath = first === 'v2' && percentDecode(second ?? '') !== '_catalog';
  return registryPath
    ? { type: 'respond', status: 404, headers: { 'content-type': 'application/json' }, body: NAME_UNKNOWN }
    : { type: 'respond', status: 404, headers: {}, body: '' };
}

function guessKind(d: DomainIndex, segments: readonly string[] | null): EventKind {
  if (segments?.[0] === 'v2') return 'docker';
  if (segments?.[0] === 'simple') return 'python';
  return d.npm ? 'npm' : 'file';
}

function route(d: DomainIndex, req: GatewayRequest, segments: readonly string[] | null): Omit<Outcome, 'domain'> | 'read-body' | null {
  if (d.docker) {
    const r = handleDocker(d.docker, req, segments);
    if (r) return r;
  }
  if (d.pixels) {
    const r = handlePixel(d.pixels, req);
    if (r) return r;
  }
  if (d.telemetry) {
    const r = handleTelemetry(d.telemetry, req, segments, d.domain);
    if (r) return r;
  }
  if (d.npm) {
    const r = handleNpm(d.npm, req, segments, d.domain);
    if (r) return r;
  }
  if (d.files) {
    const r = handleFiles(d.files, req);
    if (r) return r;
  }
  if (d.python) {
    const r = handlePython(d.python, req, segments, d.domain);
    if (r) return r;
  }
  if (d.catchAll) return handleCatchAll(d.catchAll, req);
  return null;
}

export function handleRequest(set: CompiledRuleSet, req: GatewayRequest): Outcome {
  if (!req.rawPath.startsWith('/')) {
    return { decision: jsonError(400, 'bad_request', 'the request target must be an absolute path'), events: [], domain: null };
  }
  if (req.rawPath.length + req.rawQuery.length > MAX_TARGET_LENGTH) {
    return { decision: jsonError(414, 'uri_too_long', `request targets are limited to ${MAX_TARGET_LENGTH} bytes`), events: [], domain: null };
  }
  const d = findDomain(set, requestHost(req.headers));
  if (!d) return { decision: notFound(req.rawPath), events: [], domain: null };
  const segments = pathSegments(req.rawPath);
  const domain = d.hostName;
  const r = route(d, req, segments);
  if (r === 'read-body') return { decision: { type: 'read-body', limit: BODY_LIMIT }, events: [], domain };
  if (r) return { ...r, domain };
  // Recorded without a package, so mistyped install commands show up in analytics.
  const miss: EventDraft = { kind: guessKind(d, segments), action: 'not-found', countable: false, package_id: null };
  // npm reads the registry's JSON error shape; everything else keeps Scarf's answer.
  const decision = miss.kind === 'npm' ? npmError(404, 'Not found') : notFound(req.rawPath);
  return { decision, events: [miss], domain };
}
