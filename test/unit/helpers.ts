import { compileRules, type CompiledRuleSet } from '../../lambda/core/compile';
import { handleRequest } from '../../lambda/core/engine';
import type { GatewayRequest, Outcome } from '../../lambda/core/request';
import { validateManifest } from '../../lambda/core/validate';

/** Validates (failing the test on any error) and compiles rules. */
export function ruleSet(rules: unknown[]): CompiledRuleSet {
  const v = validateManifest({ rules });
  if (v.errors.length) throw new Error(`test manifest invalid: ${JSON.stringify(v.errors)}`);
  return compileRules(v.rules);
}

export interface TestRequest {
  method?: string;
  headers?: Record<string, string | string[]>;
  body?: string;
}

/** A request as an adapter would build it; a body is supplied when the engine asks for it. */
export function request(host: string, target: string, opts: TestRequest = {}): GatewayRequest {
  const q = target.indexOf('?');
  const headers: Record<string, string | string[]> = { host };
  for (const [k, v] of Object.entries(opts.headers ?? {})) headers[k.toLowerCase()] = v;
  return {
    method: opts.method ?? 'GET',
    rawPath: q < 0 ? target : target.slice(0, q),
    rawQuery: q < 0 ? '' : target.slice(q),
    headers,
    hasBody: opts.body !== undefined && opts.body.length > 0,
  };
}

/** Runs the engine like an adapter: reads the body when asked. */
export function handle(set: CompiledRuleSet, host: string, target: string, opts: TestRequest = {}): Outcome {
  const req = request(host, target, opts);
  const first = handleRequest(set, req);
  if (first.decision.type !== 'read-body') return first;
  const bytes = Buffer.from(opts.body ?? '', 'utf8');
  const limit = first.decision.limit;
  return handleRequest(set, { ...req, body: bytes.subarray(0, limit), bodyTruncated: bytes.length > limit });
}

export function location(o: Outcome): string | undefined {
  return o.decision.type === 'redirect' ? o.decision.location : undefined;
}

export function status(o: Outcome): number | 'proxy' | 'read-body' | 'registry-token' | 'fetch' {
  const d = o.decision;
  return d.type === 'proxy' || d.type === 'read-body' || d.type === 'registry-token' || d.type === 'fetch' ? d.type : d.status;
}

export function bodyText(o: Outcome): string {
  if (o.decision.type !== 'respond') return '';
  const b = o.decision.body;
  return typeof b === 'string' ? b : Buffer.from(b).toString('utf8');
}
