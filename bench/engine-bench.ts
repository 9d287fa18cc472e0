/**
 * In-process benchmarks of the rule engine: cost per request, scaling with the number of rules,
 * and compile time. No HTTP, no I/O.
 */
import { compileRules, type CompiledRuleSet } from '../lambda/core/compile';
import { handleRequest } from '../lambda/core/engine';
import { completeEvents } from '../lambda/core/complete-event';
import { visitorId } from '../lambda/core/visitor';
import { randomUUID } from 'node:crypto';
import type { GatewayRequest, Outcome } from '../lambda/core/request';
import { parseManifest } from '../lambda/core/validate';
import { expandTemplate, matchTemplate, parseTemplate, type UriTemplate } from '../lambda/core/uri-template';
import type { Rule } from '../lambda/core/schema';
import { runPairs, relativeRatio, type Bench, type PairResult, type SuiteOptions } from './measure';
import {
  BIG_PACKAGE, bigVersion, fileScalingManifest, lastMixedIndex, mixedHost, mixedManifest, PYTHON_HOST, pythonManifest, SCALING_HOST, type ManifestDoc,
} from './manifests';

/** Validated rules of a generated manifest; fails loudly if the generator and the schema disagree. */
export function validRules(doc: ManifestDoc, label: string): { text: string; rules: Rule[] } {
  const text = JSON.stringify(doc);
  const v = parseManifest(text);
  if (v.errors.length) {
    throw new Error(`bench manifest ${label} is invalid: ${v.errors.slice(0, 3).map((e) => e.message).join('; ')}`);
  }
  return { text, rules: v.rules };
}

function request(host: string, target: string, headers: Record<string, string> = {}): GatewayRequest {
  const q = target.indexOf('?');
  return {
    method: 'GET',
    rawPath: q < 0 ? target : target.slice(0, q),
    rawQuery: q < 0 ? '' : target.slice(q),
    headers: { host, 'user-agent': 'curl/8.5.0', accept: '*/*', ...headers },
    hasBody: false,
  };
}

function describeOutcome(o: Outcome): string {
  const d = o.decision;
  if (d.type === 'redirect') return `307 -> ${d.location}`;
  if (d.type === 'respond') return `${d.status} (${typeof d.body === 'string' ? d.body.length : d.body.byteLength} bytes)`;
  if (d.type === 'proxy') return `proxy -> ${d.url}`;
  return d.type;
}

/** Runs the request once and checks the engine answers as the benchmark assumes (else the figures would time a 404). */
function checked(set: CompiledRuleSet, req: GatewayRequest, expect: (o: Outcome) => boolean, label: string): Outcome {
  const o = handleRequest(set, req);
  if (!expect(o)) throw new Error(`bench case "${label}": unexpected engine answer ${describeOutcome(o)}`);
  return o;
}

const engineBench = (name: string, set: CompiledRuleSet, req: GatewayRequest): Bench => ({
  name,
  fn: () => handleRequest(set, req).events.length + 1,
});

/** The common baseline of every per-request figure: parsing one URL of the same shape with the WHATWG URL parser. */
export const BASELINE_URL = 'https://get996.example.com/rocket/1.2.3/rocket-linux-amd64.tar.gz';
export const urlBaseline: Bench = {
  name: 'new URL(...)',
  fn: () => new URL(BASELINE_URL).pathname.length,
};

export interface EngineCaseResult extends PairResult {
  readonly request: string;
  readonly answer: string;
}

export interface EngineResults {
  readonly mixedRules: number;
  readonly mixedDomains: number;
  readonly pythonRules: number;
  readonly cases: EngineCaseResult[];
}

/** 1. Engine cost per request for representative requests. */
export function benchEngine(opts: SuiteOptions, progress: (m: string) => void): EngineResults {
  const mixed = validRules(mixedManifest(1000), 'mixed');
  const mixedSet = compileRules(mixed.rules);
  const py = validRules(pythonManifest(2000, 65), 'python');
  const pySet = compileRules(py.rules);

  const dockerUA = 'docker/24.0.7 go/go1.20.10 git-commit/311b9ff kernel/6.1.0 os/linux arch/amd64 UpstreamClient(Docker-Client/24.0.7 (linux))';
  const cases: Array<{ name: string; set: CompiledRuleSet; req: GatewayRequest; expect: (o: Outcome) => boolean }> = [
    {
      name: 'docker-v1 manifest GET',
      set: mixedSet,
      req: request(mixedHost.docker(lastMixedIndex('docker')), '/v2/acme/app8/manifests/latest', { 'user-agent': dockerUA, accept: 'application/vnd.oci.image.index.v1+json' }),
      expect: (o) => o.decision.type === 'redirect' && o.decision.location === 'https://ghcr.io/v2/acme/app8/manifests/latest',
    },
    {
      name: 'file-v1 template redirect',
      set: mixedSet,
      req: request(mixedHost.files(lastMixedIndex('files')), '/rocket/1.2.3/rocket-linux-amd64.tar.gz'),
      expect: (o) => o.decision.type === 'redirect' && o.decision.location === 'https://github.com/acme/rocket/releases/download/v1.2.3/rocket-linux-amd64.tar.gz',
    },
    {
      name: 'catch-all redirect',
      set: mixedSet,
      req: request(mixedHost.catchAll(lastMixedIndex('catchAll')), '/docs/guide/install.html?lang=en'),
      expect: (o) => o.decision.type === 'redirect' && o.decision.location === `https://docs${lastMixedIndex('catchAll')}.example.org/docs/guide/install.html?lang=en`,
    },
    {
      name: 'python project page (2,000 files)',
      set: pySet,
      req: request(PYTHON_HOST, `/simple/${BIG_PACKAGE}/`, { 'user-agent': 'pip/24.0', accept: 'text/html' }),
      expect: (o) => o.decision.type === 'respond' && o.decision.status === 200 && String(o.decision.body).split('<a ').length === 2001,
    },
    {
      name: 'python file redirect (2,000 files)',
      set: pySet,
      req: request(PYTHON_HOST, `/simple/${BIG_PACKAGE}/${BIG_PACKAGE}-${bigVersion(999)}.tar.gz`, { 'user-agent': 'pip/24.0' }),
      expect: (o) => o.decision.type === 'redirect' && o.decision.location.endsWith(`/${BIG_PACKAGE}-9.9.9.tar.gz`),
    },
    {
      name: 'unknown host',
      set: mixedSet,
      req: request('unknown.example.net', '/rocket/1.2.3/rocket-linux-amd64.tar.gz'),
      expect: (o) => o.decision.type === 'respond' && o.decision.status === 404 && o.domain === null,
    },
  ];
  const answers = cases.map((c) => describeOutcome(checked(c.set, c.req, c.expect, c.name)));
  const pairs = cases.map((c) => ({ name: c.name, subject: engineBench(c.name, c.set, c.req), baseline: urlBaseline }));

  // What the local server adds per request besides HTTP: completing the events (client fields
  // from the User-Agent, visitor id HMAC, random id) and serialising them as NDJSON lines.
  const fileCase = cases[1];
  const salt = 'bench-salt-0123456789abcdefghijklmnopqrstuv';
  const withEvents: Bench = {
    name: 'file-v1 redirect + event record',
    fn: () => {
      const o = handleRequest(fileCase.set, fileCase.req);
      const ua = fileCase.req.headers['user-agent'] as string;
      const domain = o.domain!;
      const events = completeEvents(o.events, {
        domain, method: 'GET', path: fileCase.req.rawPath, status: 307, time: new Date(), userAgent: ua, origin: null,
        visitorIdFor: (pkg) => visitorId(salt, '127.0.0.1', ua, domain, pkg), newId: randomUUID,
      });
      return events.map((e) => `${JSON.stringify(e)}\n`).join('').length;
    },
  };
  pairs.push({ name: withEvents.name, subject: withEvents, baseline: urlBaseline });
  answers.push(`${answers[1].slice(0, 3)} + 1 NDJSON event line`);
  const requests = [...cases.map((c) => c.req), fileCase.req];

  const results = runPairs(pairs, opts, progress);
  return {
    mixedRules: mixed.rules.length,
    mixedDomains: mixedSet.domains.size,
    pythonRules: py.rules.length,
    cases: results.map((r, i) => ({ ...r, request: `${requests[i].method} ${requests[i].headers.host}${requests[i].rawPath}${requests[i].rawQuery}`, answer: answers[i] })),
  };
}

/**
 * The naive alternative to the compiled index: every file-v1 rule in manifest order, tried with the
 * engine's own matcher, first match wins, then the outgoing template is expanded.
 */
function linearScan(rules: readonly { incoming: UriTemplate; outgoing: UriTemplate }[], rawPath: string, rawQuery: string): string | null {
  for (const r of rules) {
    const vars = matchTemplate(r.incoming, rawPath, rawQuery);
    if (vars !== null && vars.size > 0) return expandTemplate(r.outgoing, vars);
  }
  return null;
}

export interface ScalingRow {
  readonly layout: 'distinct' | 'shared';
  readonly rules: number;
  readonly request: string;
  readonly engine: PairResult;
  readonly linear: PairResult | null;
  /** Median per-round (linear/URL) / (engine/URL). */
  readonly linearOverEngine: number | null;
  /** Median per-round (engine at N / URL) / (engine at the smallest N / URL). */
  readonly engineGrowth: number;
}

export interface ScalingResults {
  readonly rows: ScalingRow[];
}

/** 2a. Per-request cost against the number of file-v1 rules on one domain, and a linear scan. */
export function benchScaling(opts: SuiteOptions, progress: (m: string) => void, sizes = [10, 1000, 10000]): ScalingResults {
  type Setup = { layout: 'distinct' | 'shared'; n: number; set: CompiledRuleSet; req: GatewayRequest; linear: Bench | null };
  const setups: Setup[] = [];
  const variants: Array<{ layout: 'distinct' | 'shared'; n: number }> = [
    ...sizes.map((n) => ({ layout: 'distinct' as const, n })),
    // The index keys on the first path segment: rules that share it are tried one after another.
    ...sizes.filter((n) => n >= 1000).map((n) => ({ layout: 'shared' as const, n })),
  ];
  for (const { layout, n } of variants) {
    const { rules } = validRules(fileScalingManifest(n, layout), `scaling-${layout}-${n}`);
    const set = compileRules(rules);
    // distinct: the last rule of the manifest. shared: pkg0, the rule the engine tries last
    // (file-v1 precedence is by template, descending), i.e. its worst case.
    const k = layout === 'distinct' ? n - 1 : 0;
    const target = `${layout === 'distinct' ? '' : '/dl'}/pkg${k}/1.2.3/file.tar.gz`;
    const req = request(SCALING_HOST, target);
    const want = `https://cdn.example.org/pkg${k}/1.2.3/file.tar.gz`;
    checked(set, req, (o) => o.decision.type === 'redirect' && o.decision.location === want, `scaling ${layout} ${n}`);
    let linear: Bench | null = null;
    if (layout === 'distinct') {
      const parsed = rules.map((r) => {
        if (r.type !== 'file-v1' || r['outgoing-url'] == null) throw new Error('scaling manifest: file-v1 rules with an outgoing-url expected');
        return { incoming: parseTemplate(r['incoming-path']), outgoing: parseTemplate(r['outgoing-url']) };
      });
      const got = linearScan(parsed, req.rawPath, req.rawQuery);
      if (got !== want) throw new Error(`linear scan of ${n} rules found ${got}, expected ${want}`);
      linear = { name: `linear scan, ${n} rules`, fn: () => linearScan(parsed, req.rawPath, req.rawQuery)!.length };
    }
    setups.push({ layout, n, set, req, linear });
  }
  const pairs = setups.flatMap((s) => [
    { name: `engine ${s.layout} ${s.n}`, subject: engineBench(`engine, ${s.n} rules (${s.layout})`, s.set, s.req), baseline: urlBaseline },
    ...(s.linear ? [{ name: `linear ${s.n}`, subject: s.linear, baseline: urlBaseline }] : []),
  ]);
  const results = runPairs(pairs, opts, progress);
  const byName = new Map(results.map((r) => [r.name, r]));
  const smallest = byName.get(`engine distinct ${sizes[0]}`)!;
  return {
    rows: setups.map((s) => {
      const engine = byName.get(`engine ${s.layout} ${s.n}`)!;
      const linear = s.linear ? byName.get(`linear ${s.n}`)! : null;
      return {
        layout: s.layout,
        rules: s.n,
        request: `${s.req.rawPath}`,
        engine,
        linear,
        linearOverEngine: linear ? relativeRatio(linear, engine) : null,
        engineGrowth: relativeRatio(engine, smallest),
      };
    }),
  };
}

export interface CompileRow {
  readonly manifest: string;
  readonly rules: number;
  readonly textBytes: number;
  /** compileRules(validated rules) vs JSON.parse(text). */
  readonly compile: PairResult;
  /** parseManifest(text) + compileRules vs JSON.parse(text): what loading a manifest file costs. */
  readonly load: PairResult;
}

/** 2b. Compile time of large manifests, against JSON.parse of the same text. */
export function benchCompile(opts: SuiteOptions, progress: (m: string) => void): CompileRow[] {
  const manifests: Array<{ label: string; doc: ManifestDoc }> = [
    { label: 'python, 1 project x 2,000 files + 65', doc: pythonManifest(2000, 65) },
    { label: 'mixed, 10,000 rules on 1,000 domains', doc: mixedManifest(1000) },
    { label: 'file-v1, 10,000 distinct first segments', doc: fileScalingManifest(10000, 'distinct') },
    { label: 'file-v1, 10,000 under one first segment', doc: fileScalingManifest(10000, 'shared') },
  ];
  const setups = manifests.map(({ label, doc }) => {
    const { text, rules } = validRules(doc, label);
    const parse: Bench = { name: `JSON.parse (${label})`, fn: () => (JSON.parse(text) as ManifestDoc).rules.length };
    const compile: Bench = { name: `compileRules (${label})`, fn: () => compileRules(rules).ruleCount };
    const load: Bench = {
      name: `parseManifest + compileRules (${label})`,
      fn: () => compileRules(parseManifest(text).rules).ruleCount,
    };
    return { label, text, rules, parse, compile, load };
  });
  const pairs = setups.flatMap((s) => [
    { name: `compile ${s.label}`, subject: s.compile, baseline: s.parse },
    { name: `load ${s.label}`, subject: s.load, baseline: s.parse },
  ]);
  const results = runPairs(pairs, opts, progress);
  return setups.map((s, i) => ({
    manifest: s.label,
    rules: s.rules.length,
    textBytes: Buffer.byteLength(s.text),
    compile: results[2 * i],
    load: results[2 * i + 1],
  }));
}
