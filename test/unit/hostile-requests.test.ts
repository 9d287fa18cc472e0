/**
 * Fuzz: generated hostile requests (fast-check, seeded) through the engine and the shared request
 * cycle (decide, eventsOf), and through the Lambda function URL adapter. Every answer must be a
 * well-formed non-5xx response, every redirect an absolute http(s) URL on a host the manifest
 * names, every header writable without injection, and no event may carry a secret of the request.
 * A failure prints the seed and the shrunk counterexample: rerun with FUZZ_SEED=<seed>.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import fc from 'fast-check';
import { compileRules } from '../../lambda/core/compile';
import { validateManifest } from '../../lambda/core/validate';
import { decide, eventsOf } from '../../lambda/core/run';
import { answerFor } from '../../lambda/core/answer';
import type { Decision, GatewayRequest } from '../../lambda/core/request';
import { splitTarget } from '../../lambda/local/server';
import { handleFunctionUrlEvent, type ResponseHead } from '../../lambda/aws/function-url';
import { BundledRuleSource } from '../../lambda/aws/bundled-rules';
import type { GatewayEvent } from '../../lambda/core/events';
import { HOSTILE_MANIFEST, UPSTREAM_HOSTS, leakedSecret, locationProblem, redirectHostProblem, requestArb, SECRET_IP, type FuzzRequest } from '../fixtures/hostile';
import { functionUrlEvent } from './aws-fixtures';

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : 20260808;
const IN_PROCESS_RUNS = 120_000;
const LAMBDA_RUNS = 6_000;

const validated = validateManifest(HOSTILE_MANIFEST);
const rules = compileRules(validated.rules);

/** Headers as Node's parser would hand them over, but with every duplicate kept (harder for the engine). */
function headersOf(r: FuzzRequest): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [n, v] of r.headers) {
    const k = n.toLowerCase();
    const prev = out[k];
    out[k] = prev === undefined ? v : [...(Array.isArray(prev) ? prev : [prev]), v];
  }
  if (r.body) out[r.chunked ? 'transfer-encoding' : 'content-length'] = r.chunked ? 'chunked' : String(r.body.length);
  return out;
}

/** Every header of an answer must be writable by Node (no CR/LF/NUL: no header injection). */
function headerProblem(headers: Readonly<Record<string, string | readonly string[]>>): string | null {
  for (const [name, value] of Object.entries(headers)) {
    try {
      http.validateHeaderName(name);
      for (const v of typeof value === 'string' ? [value] : value) http.validateHeaderValue(name, v);
    } catch (e) {
      return `header ${JSON.stringify(name)}: ${(e as Error).message}`;
    }
  }
  return null;
}

const CONFIGURED_UPSTREAMS = new Set(['ghcr.io', 'registry-1.docker.io', UPSTREAM_HOSTS.npm, UPSTREAM_HOSTS.pypi]);

function decisionProblem(d: Decision, method: string): string | null {
  switch (d.type) {
    case 'redirect': {
      if ((d.status as number) !== 307) return `redirect status ${String(d.status)}`;
      const p = locationProblem(d.location) ?? redirectHostProblem(d.location);
      if (p) return p;
      break;
    }
    case 'respond':
      if (d.status >= 500) return `the gateway answered ${d.status}: ${String(d.body).slice(0, 200)}`;
      break;
    case 'proxy':
    case 'fetch': {
      const host = new URL(d.url).hostname;
      if (!CONFIGURED_UPSTREAMS.has(host)) return `${d.type} to an unconfigured host ${host}`;
      return null;
    }
    case 'registry-token':
      return null;
    case 'read-body':
      return 'read-body after decide()';
  }
  const a = answerFor(d, method);
  return headerProblem(a.headers);
}

describe('hostile requests, in process (engine + request cycle)', () => {
  test(`${IN_PROCESS_RUNS} generated requests: no exception, no 5xx, safe redirects and headers, no secret in any event`, async () => {
    expect(validated.errors).toEqual([]);
    const seen = { redirect: 0, respond: 0, proxy: 0, fetch: 0, badTarget: 0, events: 0, rejected: 0 };
    await fc.assert(
      fc.asyncProperty(requestArb({ socketSafe: false }), async (r) => {
        const target = splitTarget(r.target);
        if (!target) {
          seen.badTarget++;
          return;
        }
        const method = r.method.toUpperCase();
        const headers = headersOf(r);
        const req: GatewayRequest = { method, rawPath: target.rawPath, rawQuery: target.rawQuery, headers, hasBody: r.body !== null && r.body.length > 0, scheme: 'http' };
        const { outcome, request } = await decide(rules, req, async (limit) => {
          const body = r.body ?? Buffer.alloc(0);
          return { body: body.subarray(0, limit), truncated: body.length > limit };
        });
        const d = outcome.decision;
        seen[d.type as 'redirect']++;
        const problem = decisionProblem(d, method);
        if (problem) throw new Error(problem);
        const status = d.type === 'redirect' || d.type === 'respond' ? d.status : 200;
        const events = eventsOf(outcome, request, status, { ip: SECRET_IP, origin: null }, { salt: 'salt', time: new Date(0), newId: () => 'id' });
        seen.events += events.length;
        seen.rejected += events.filter((e) => e.action === 'rejected').length;
        const leak = leakedSecret(JSON.stringify(events));
        if (leak) throw new Error(`secret in an event: ${leak}`);
      }),
      { seed: SEED, numRuns: IN_PROCESS_RUNS, endOnFailure: true },
    );
    // The generator reaches every kind of answer (else the fuzz proves little).
    expect(seen.redirect).toBeGreaterThan(IN_PROCESS_RUNS / 20);
    expect(seen.respond).toBeGreaterThan(IN_PROCESS_RUNS / 20);
    expect(seen.fetch).toBeGreaterThan(0);
    expect(seen.events).toBeGreaterThan(IN_PROCESS_RUNS / 10);
    expect(seen.rejected).toBeGreaterThan(0);
  }, 120_000);
});

describe('hostile requests, Lambda function URL adapter', () => {
  let upstream: http.Server;
  let upstreamBase: string;
  beforeAll(async () => {
    // Stands in for the npm registry and the Python index: small answers, never an error.
    upstream = http.createServer((req, res) => {
      req.resume();
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"error":"not found"}');
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    upstreamBase = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    upstream.closeAllConnections();
    await new Promise((r) => upstream.close(r));
  });

  test(`${LAMBDA_RUNS} generated function URL events: no exception, no 5xx, safe heads, no secret in events or logs`, async () => {
    const source = new BundledRuleSource(HOSTILE_MANIFEST);
    const upstreams = new Map([[UPSTREAM_HOSTS.npm, upstreamBase], [UPSTREAM_HOSTS.pypi, upstreamBase]]);
    const logs: string[] = [];
    let answered = 0;
    await fc.assert(
      fc.asyncProperty(requestArb({ socketSafe: false }), fc.boolean(), async (r, base64) => {
        const target = splitTarget(r.target) ?? { rawPath: r.target, rawQuery: '' };
        const headers: Record<string, string> = {};
        // Function URL events carry repeated headers joined with ",".
        for (const [n, v] of r.headers) headers[n.toLowerCase()] = headers[n.toLowerCase()] ? `${headers[n.toLowerCase()]},${v}` : v;
        const host = headers.host ?? '';
        delete headers.host;
        headers['cloudfront-viewer-address'] = `${SECRET_IP}:443`;
        const event = functionUrlEvent({ method: r.method, rawPath: target.rawPath, rawQueryString: target.rawQuery.replace(/^\?/, ''), host, headers, body: r.body ?? undefined, base64 });
        let head: ResponseHead | undefined;
        const stream = new PassThrough();
        stream.resume();
        const events: GatewayEvent[] = [];
        const result = await handleFunctionUrlEvent(event, (h) => {
          head = h;
          return stream;
        }, {
          rules: source, sink: { write: (e) => void events.push(...e), flush: async () => undefined }, salt: () => 'salt',
          proxy: { upstreams, headersTimeoutMs: 5_000, idleTimeoutMs: 5_000 },
          log: (level, message, fields) => void logs.push(`${level} ${message} ${JSON.stringify(fields)}`),
        });
        answered++;
        if (!head) throw new Error('no response head');
        if (head.statusCode >= 500) throw new Error(`status ${head.statusCode}`);
        if (result.status !== head.statusCode) throw new Error(`reported ${result.status}, sent ${head.statusCode}`);
        const hp = headerProblem(head.headers);
        if (hp) throw new Error(hp);
        if (head.statusCode === 307) {
          const p = locationProblem(head.headers.location ?? '') ?? redirectHostProblem(head.headers.location);
          if (p) throw new Error(p);
        }
        const leak = leakedSecret(JSON.stringify(events));
        if (leak) throw new Error(`secret in an event: ${leak}`);
      }),
      { seed: SEED + 1, numRuns: LAMBDA_RUNS, endOnFailure: true },
    );
    expect(answered).toBe(LAMBDA_RUNS);
    expect(leakedSecret(logs.join('\n'))).toBeNull();
  }, 120_000);
});
