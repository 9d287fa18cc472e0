/**
 * Engine decisions on a realistic mix: throughput on one core, per-decision latency (p50/p99)
 * and the heap the compiled rules take. In-process, no HTTP, no I/O: `handleRequest` only
 * decides (a python page of an upstream project or an npm packument is a `fetch` decision; the
 * fetch itself is the adapter's).
 */
import { createHash } from 'node:crypto';
import { compileRules, type CompiledRuleSet } from '../lambda/core/compile';
import { handleRequest } from '../lambda/core/engine';
import type { GatewayRequest, Outcome } from '../lambda/core/request';
import { parseManifest } from '../lambda/core/validate';
import { median, quantile, runPairs, type Bench, type PairResult, type SuiteOptions } from './measure';
import { mixedHost, mixedIndex, mixedManifest, mixedNpmPackage, type MixedKind } from './manifests';
import { validRules } from './engine-bench';
import { prng } from '../test/e2e/analytics-fixtures';

const DOCKER_UA = 'docker/24.0.7 go/go1.20.10 git-commit/311b9ff kernel/6.1.0 os/linux arch/amd64 UpstreamClient(Docker-Client/24.0.7 (linux))';
const PIP_UA = 'pip/24.0 {"ci":null,"cpu":"x86_64","implementation":{"name":"CPython","version":"3.11.2"},"installer":{"name":"pip","version":"24.0"},"python":"3.11.2","system":{"name":"Linux","release":"6.1.0"}}';
const NPM_UA = 'npm/10.8.2 node/v20.20.2 linux x64 workspaces/false';
const CURL_UA = 'curl/8.5.0';

/** The categories of the mix, each an equal share of the requests. */
export const MIX_CATEGORIES = [
  'docker manifest', 'docker blob', 'python page', 'python file', 'npm packument', 'npm tarball',
  'file-v1 template', 'file-v2 regex / literal', 'catch-all', 'unknown host',
] as const;
export type MixCategory = (typeof MIX_CATEGORIES)[number];

export interface MixRequest {
  readonly category: MixCategory;
  readonly req: GatewayRequest;
  /** The same request as an absolute URL (what the baseline parses). */
  readonly url: string;
}


function gatewayRequest(host: string, target: string, headers: Record<string, string>): GatewayRequest {
  const q = target.indexOf('?');
  return {
    method: 'GET',
    rawPath: q < 0 ? target : target.slice(0, q),
    rawQuery: q < 0 ? '' : target.slice(q),
    headers: { host, accept: '*/*', ...headers },
    hasBody: false,
  };
}

/** What each category must decide (checked once per request before timing). */
const EXPECT: Record<MixCategory, (o: Outcome) => boolean> = {
  'docker manifest': (o) => o.decision.type === 'redirect' && o.decision.location.startsWith('https://ghcr.io/v2/acme/'),
  'docker blob': (o) => o.decision.type === 'redirect' && o.decision.location.includes('/blobs/sha256:'),
  'python page': (o) => o.decision.type === 'respond' && o.decision.status === 200,
  'python file': (o) => o.decision.type === 'redirect' && o.decision.location.startsWith('https://files.example.org/packages/'),
  'npm packument': (o) => o.decision.type === 'fetch',
  'npm tarball': (o) => o.decision.type === 'redirect' && o.decision.location.endsWith('.tgz'),
  'file-v1 template': (o) => o.decision.type === 'redirect',
  'file-v2 regex / literal': (o) => o.decision.type === 'redirect',
  'catch-all': (o) => o.decision.type === 'redirect' && o.decision.location.startsWith('https://docs'),
  'unknown host': (o) => o.decision.type === 'respond' && o.decision.status === 404 && o.domain === null,
};

/**
 * `count` requests, the categories in equal shares and shuffled, each on a random domain of its
 * kind of the mixed manifest of `domains` domains (so lookups spread over the whole rule set, as
 * real traffic does, rather than hitting one hot domain).
 */
export function decisionMix(domains = 1000, count = 10_000, seed = 8): MixRequest[] {
  const rnd = prng(seed);
  const pick = (n: number) => Math.floor(rnd() * n);
  const domainOf = (kind: MixedKind) => {
    const perKind = Math.floor(domains / 5);
    return mixedIndex(kind, pick(perKind));
  };
  const version = () => `${pick(4)}.${pick(20)}.${pick(10)}`;
  const hex = () => createHash('sha256').update(String(rnd())).digest('hex');
  const make = (category: MixCategory): MixRequest => {
    let host: string;
    let target: string;
    let headers: Record<string, string> = { 'user-agent': CURL_UA };
    switch (category) {
      case 'docker manifest':
      case 'docker blob': {
        const i = domainOf('docker');
        host = mixedHost.docker(i);
        // Mostly named images (docker-v1), some through the `acme/*` pattern (docker-v2).
        const image = pick(10) < 8 ? `acme/app${pick(9)}` : `acme/other${pick(50)}`;
        target = category === 'docker manifest'
          ? `/v2/${image}/manifests/${pick(2) ? 'latest' : `v${version()}`}`
          : `/v2/${image}/blobs/sha256:${hex()}`;
        headers = { 'user-agent': DOCKER_UA, accept: category === 'docker manifest' ? 'application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json' : '*/*' };
        break;
      }
      case 'python page':
      case 'python file': {
        const i = domainOf('python');
        host = mixedHost.python(i);
        const name = `pkg${i}${pick(2) ? 'a' : 'b'}`;
        target = category === 'python page' ? `/simple/${name}/` : `/simple/${name}/${name}-1.${pick(5)}.0-py3-none-any.whl`;
        headers = { 'user-agent': PIP_UA, accept: category === 'python page' ? 'application/vnd.pypi.simple.v1+json, text/html;q=0.1' : '*/*' };
        break;
      }
      case 'npm packument':
      case 'npm tarball': {
        const i = domainOf('npm');
        host = mixedHost.npm(i);
        // Named packages, scoped ones, and dependencies through `*`.
        const r = pick(10);
        const name = r < 7 ? mixedNpmPackage(i, pick(8)) : r < 8 ? `@acme/lib${pick(100)}` : `dep${pick(1000)}`;
        const encoded = name.replace('/', '%2f');
        const base = name.startsWith('@') ? name.slice(name.indexOf('/') + 1) : name;
        target = category === 'npm packument' ? `/${encoded}` : `/${name}/-/${base}-${version()}.tgz`;
        headers = { 'user-agent': NPM_UA, accept: category === 'npm packument' ? 'application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*' : '*/*' };
        break;
      }
      case 'file-v1 template': {
        const i = domainOf('files');
        host = mixedHost.files(i);
        const t = pick(3);
        target = t === 0 ? `/rocket/${version()}/rocket-linux-amd64.tar.gz` : t === 1 ? `/tool${1 + pick(6)}/${version()}/tool-${['linux', 'darwin', 'windows'][pick(3)]}.zip` : `/install.sh`;
        if (t === 1) target = target.replace(/tool-/, `tool${target.split('/')[1].slice(4)}-`);
        break;
      }
      case 'file-v2 regex / literal': {
        const i = pick(2) ? domainOf('files') : domainOf('catchAll');
        if (i % 5 === 1) {
          host = mixedHost.files(i);
          target = `/nightly/2026-0${1 + pick(9)}-1${pick(10)}/rocket-${hex().slice(0, 8)}.tar.gz`;
        } else {
          host = mixedHost.catchAll(i);
          target = `/release${pick(9)}/${version()}/app.tar.gz`;
        }
        break;
      }
      case 'catch-all': {
        const i = domainOf('catchAll');
        host = mixedHost.catchAll(i);
        target = `/docs/guide/page${pick(100)}.html${pick(2) ? '?lang=en' : ''}`;
        break;
      }
      case 'unknown host':
        host = `unknown${pick(10_000)}.example.net`;
        target = `/rocket/${version()}/rocket-linux-amd64.tar.gz`;
        break;
    }
    return { category, req: gatewayRequest(host, target, headers), url: `https://${host}${target}` };
  };
  const out: MixRequest[] = [];
  for (let k = 0; k < count; k++) out.push(make(MIX_CATEGORIES[k % MIX_CATEGORIES.length]));
  // Fisher-Yates, so consecutive decisions are of different kinds (no branch-predictor-friendly runs).
  for (let k = out.length - 1; k > 0; k--) {
    const j = pick(k + 1);
    [out[k], out[j]] = [out[j], out[k]];
  }
  return out;
}

export interface LatencyStats {
  readonly p50Ns: number;
  readonly p90Ns: number;
  readonly p99Ns: number;
  readonly p999Ns: number;
  readonly maxNs: number;
}

export interface CategoryLatency extends LatencyStats {
  readonly category: MixCategory;
  readonly decision: string;
}

export interface DecisionResults {
  readonly rules: number;
  readonly domains: number;
  readonly mixSize: number;
  readonly categories: Record<string, number>;
  /** Throughput: one decision per call over the shuffled mix vs new URL of the same requests. */
  readonly throughput: PairResult;
  readonly decisionsPerSecond: number;
  readonly urlParsesPerSecond: number;
  /** Per-decision latency: median over rounds of each round's quantiles. */
  readonly latencyRounds: number;
  readonly timerOverheadNs: number;
  readonly engine: LatencyStats;
  readonly baseline: LatencyStats;
  readonly p50Ratio: number;
  readonly p99Ratio: number;
  readonly byCategory: CategoryLatency[];
  readonly heap: HeapResult | null;
}

export interface HeapResult {
  readonly compiledBytes: number;
  readonly parsedJsonBytes: number;
  readonly ratio: number;
  readonly manifestTextBytes: number;
  readonly samples: number;
}

function statsOf(xs: Float64Array | number[]): LatencyStats {
  const s = Float64Array.from(xs).sort();
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return { p50Ns: at(0.5), p90Ns: at(0.9), p99Ns: at(0.99), p999Ns: at(0.999), maxNs: s[s.length - 1] };
}

function medianStats(rounds: LatencyStats[]): LatencyStats {
  const m = (k: keyof LatencyStats) => median(rounds.map((r) => r[k]));
  return { p50Ns: m('p50Ns'), p90Ns: m('p90Ns'), p99Ns: m('p99Ns'), p999Ns: m('p999Ns'), maxNs: m('maxNs') };
}

let sink = 0;

/** Times every decision of the mix separately; `out[k]` is the k-th call's time in ns (timer included). */
function timeEach(mix: readonly MixRequest[], set: CompiledRuleSet, out: Float64Array): void {
  for (let k = 0; k < mix.length; k++) {
    const req = mix[k].req;
    const t0 = process.hrtime.bigint();
    const o = handleRequest(set, req);
    const t1 = process.hrtime.bigint();
    sink += o.events.length;
    out[k] = Number(t1 - t0);
  }
}

function timeEachUrl(mix: readonly MixRequest[], out: Float64Array): void {
  for (let k = 0; k < mix.length; k++) {
    const url = mix[k].url;
    const t0 = process.hrtime.bigint();
    const u = new URL(url);
    const t1 = process.hrtime.bigint();
    sink += u.pathname.length;
    out[k] = Number(t1 - t0);
  }
}

function timerOverhead(): number {
  const xs = new Float64Array(10_000);
  for (let k = 0; k < xs.length; k++) {
    const t0 = process.hrtime.bigint();
    const t1 = process.hrtime.bigint();
    xs[k] = Number(t1 - t0);
  }
  return statsOf(xs).p50Ns;
}

/**
 * Heap retained by the compiled rules: `compileRules(parseManifest(text).rules)` kept alive,
 * heapUsed after a full GC minus before; baseline the same text kept as `JSON.parse` objects.
 * Needs --expose-gc (npm run bench passes it); null without it.
 */
function measureHeap(text: string, samples: number): HeapResult | null {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return null;
  const retained = (make: () => unknown): number => {
    gc();
    gc();
    const before = process.memoryUsage().heapUsed;
    let kept: unknown = make();
    gc();
    gc();
    const after = process.memoryUsage().heapUsed;
    sink += kept ? 1 : 0;
    kept = null;
    return after - before;
  };
  const compiled: number[] = [];
  const parsed: number[] = [];
  for (let k = 0; k < samples; k++) {
    compiled.push(retained(() => compileRules(parseManifest(text).rules)));
    parsed.push(retained(() => JSON.parse(text)));
  }
  const c = median(compiled);
  const p = median(parsed);
  return { compiledBytes: c, parsedJsonBytes: p, ratio: c / p, manifestTextBytes: Buffer.byteLength(text), samples };
}

function describe(o: Outcome): string {
  const d = o.decision;
  return d.type === 'respond' ? `${d.type} ${d.status}` : d.type;
}

export function benchDecisions(opts: SuiteOptions & { latencyRounds: number }, progress: (m: string) => void): DecisionResults {
  const { text, rules } = validRules(mixedManifest(1000), 'mixed');
  const set = compileRules(rules);
  const mix = decisionMix(1000, 10_000);
  const categories: Record<string, number> = {};
  const decisionByCategory = new Map<MixCategory, Set<string>>();
  for (const m of mix) {
    const o = handleRequest(set, m.req);
    if (!EXPECT[m.category](o)) {
      const d = o.decision;
      throw new Error(`decision mix: ${m.category} ${m.url} got ${describe(o)}${d.type === 'redirect' ? ` ${d.location}` : ''}`);
    }
    categories[m.category] = (categories[m.category] ?? 0) + 1;
    const seen = decisionByCategory.get(m.category) ?? new Set<string>();
    seen.add(describe(o));
    decisionByCategory.set(m.category, seen);
  }

  // Throughput: the whole mix in a loop, one decision per call, in batches (runPairs).
  let k = 0;
  let j = 0;
  const engine: Bench = { name: 'handleRequest over the mix', fn: () => handleRequest(set, mix[k++ % mix.length].req).events.length + 1 };
  const url: Bench = { name: 'new URL over the mix', fn: () => new URL(mix[j++ % mix.length].url).pathname.length };
  progress('throughput');
  const [throughput] = runPairs([{ name: 'decision mix', subject: engine, baseline: url }], opts, (m) => progress(`throughput ${m}`));

  // Latency: every decision timed on its own, engine and baseline passes interleaved.
  const overhead = timerOverhead();
  const engineRounds: LatencyStats[] = [];
  const urlRounds: LatencyStats[] = [];
  const perCategory = new Map<MixCategory, number[][]>(MIX_CATEGORIES.map((c) => [c, []]));
  const te = new Float64Array(mix.length);
  const tu = new Float64Array(mix.length);
  timeEach(mix, set, te); // warm-up
  timeEachUrl(mix, tu);
  for (let r = 0; r < opts.latencyRounds; r++) {
    progress(`latency round ${r + 1}/${opts.latencyRounds}`);
    if (r % 2 === 0) {
      timeEach(mix, set, te);
      timeEachUrl(mix, tu);
    } else {
      timeEachUrl(mix, tu);
      timeEach(mix, set, te);
    }
    engineRounds.push(statsOf(te));
    urlRounds.push(statsOf(tu));
    const byCat = new Map<MixCategory, number[]>(MIX_CATEGORIES.map((c) => [c, []]));
    for (let i = 0; i < mix.length; i++) byCat.get(mix[i].category)!.push(te[i]);
    for (const c of MIX_CATEGORIES) perCategory.get(c)!.push(byCat.get(c)!);
  }
  const engineLat = medianStats(engineRounds);
  const urlLat = medianStats(urlRounds);
  const p50Ratios = engineRounds.map((e, r) => e.p50Ns / urlRounds[r].p50Ns);
  const p99Ratios = engineRounds.map((e, r) => e.p99Ns / urlRounds[r].p99Ns);

  progress('heap');
  const heap = measureHeap(text, 5);
  return {
    rules: rules.length,
    domains: set.domains.size,
    mixSize: mix.length,
    categories,
    throughput,
    decisionsPerSecond: 1e9 / throughput.medianSubjectNs,
    urlParsesPerSecond: 1e9 / throughput.medianBaselineNs,
    latencyRounds: opts.latencyRounds,
    timerOverheadNs: overhead,
    engine: engineLat,
    baseline: urlLat,
    p50Ratio: median(p50Ratios),
    p99Ratio: median(p99Ratios),
    byCategory: MIX_CATEGORIES.map((c) => ({ category: c, decision: [...decisionByCategory.get(c)!].join(', '), ...medianStats(perCategory.get(c)!.map((xs) => statsOf(xs))) })),
    heap,
  };
}

export const decisionSink = () => sink;
export { quantile };
