/**
 * `npm run bench`: performance of the rule engine, the local gateway and the Lambda function,
 * each figure a ratio against a baseline measured in the same run, interleaved. See
 * docs/BENCHMARKS.md.
 *
 *   npm run bench                      full run (about 4-5 minutes, up to ~8 on a busy machine)
 *   npm run bench -- --quick           fewer, shorter rounds (about 1 minute)
 *   npm run bench -- --json out.json   also write the raw results
 *   npm run bench -- --only decisions,engine,scaling,compile,cold,http,proxy,rules
 *   npm run bench -- --client node     HTTP load from the built-in Node client even if wrk is installed
 *   npm run bench -- --connections 16  concurrent HTTP connections
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { benchCompile, benchEngine, benchScaling, BASELINE_URL, type CompileRow, type EngineResults, type ScalingResults } from './engine-bench';
import { benchHttp, killChildren, nginxVersion, wrkVersion, type HttpOptions, type HttpResults } from './http-bench';
import type { PairResult, SuiteOptions } from './measure';
import { benchDecisions, type DecisionResults } from './decisions-bench';
import { benchColdStart, type ColdStartResults } from './cold-start-bench';
import { benchProxy, type ProxyOptions, type ProxyResults } from './proxy-bench';
import { benchRules, DEFAULT_RULES_TTL_S, PROPAGATION_GOAL_MS, type PropagationResult } from './rule-propagation';

const SECTIONS = ['decisions', 'engine', 'scaling', 'compile', 'cold', 'http', 'proxy', 'rules'] as const;
type Section = (typeof SECTIONS)[number];

interface Args {
  quick: boolean;
  json: string | null;
  only: Set<Section>;
  client: HttpOptions['client'];
  connections: number;
}

const USAGE = `usage: npm run bench -- [--quick] [--json FILE] [--only ${SECTIONS.join(',')}] [--client node] [--connections N]

  --quick          fewer and shorter rounds (about 1 minute; the full run takes 4-5)
  --json FILE      also write every raw sample, the settings and the machine to FILE
  --only LIST      sections, comma-separated:
                     decisions  engine decisions/s, p50/p99 per decision, heap of 10k compiled rules
                     engine     engine cost per request type
                     scaling    cost against the number of rules; linear scan
                     compile    compile and load time of large manifests
                     cold       Lambda bundle size and cold initialisation in fresh processes
                     http       gateway redirects/s and latency vs a bare Node server and nginx
                     proxy      proxied manifest GET vs the registry directly and a bare Node proxy (docker-registry)
                     rules      rule-change propagation from DynamoDB Local at the default TTL
  --client node    HTTP load from the built-in Node client even if wrk is installed
  --connections N  concurrent HTTP connections (default 16)

Tables go to stdout, progress to stderr. Run with node --expose-gc (npm run bench does) for the heap figure.`;

function parseArgs(argv: string[]): Args {
  const a: Args = { quick: false, json: null, only: new Set(SECTIONS), client: 'auto', connections: 16 };
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${x} needs a value\n${USAGE}`);
      return argv[++i];
    };
    if (x === '--quick') a.quick = true;
    else if (x === '--json') a.json = value();
    else if (x === '--only') {
      const list = value().split(',').map((s) => s.trim()).filter(Boolean);
      const bad = list.filter((s) => !(SECTIONS as readonly string[]).includes(s));
      if (bad.length || !list.length) throw new Error(`--only takes a list of ${SECTIONS.join(', ')}; got ${bad.join(', ') || 'nothing'}`);
      a.only = new Set(list as Section[]);
    } else if (x === '--client') {
      const v = value();
      if (v !== 'node' && v !== 'auto') throw new Error('--client is "node" or "auto"');
      a.client = v;
    } else if (x === '--connections') {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 1 || n > 1000) throw new Error('--connections must be an integer from 1 to 1000');
      a.connections = n;
    } else if (x === '--help' || x === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else throw new Error(`unknown argument ${JSON.stringify(x)}\n${USAGE}`);
  }
  return a;
}

// ---------------------------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------------------------

function table(title: string, headers: string[], rows: string[][], note?: string): string {
  const widths = headers.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  // Left-align the first column, right-align the numbers.
  const line = (cells: string[]) => cells.map((s, c) => (c === 0 ? s.padEnd(widths[c]) : s.padStart(widths[c]))).join('  ');
  const out = [`\n${title}`, line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)];
  if (note) out.push(note);
  return `${out.join('\n')}\n`;
}

function ns(x: number): string {
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)} ms`;
  if (x >= 1e4) return `${(x / 1e3).toFixed(1)} us`;
  return `${Math.round(x).toLocaleString('en-US')} ns`;
}

function ratio(x: number | null): string {
  if (x === null || !Number.isFinite(x)) return '-';
  if (x >= 100) return `${Math.round(x).toLocaleString('en-US')}x`;
  if (x >= 10) return `${x.toFixed(1)}x`;
  return `${x.toFixed(2)}x`;
}

const spread = (r: PairResult) => `${ratio(r.ratioQ1)}-${ratio(r.ratioQ3)}`;
const ms = (x: number | null) => (x === null ? '-' : `${x.toFixed(2)} ms`);
const int = (x: number) => Math.round(x).toLocaleString('en-US');

const us1 = (nsValue: number) => `${(nsValue / 1000).toFixed(1)} us`;
const kib = (b: number) => `${(b / 1024).toFixed(1)} KiB`;
const mib = (b: number) => `${(b / 1024 / 1024).toFixed(1)} MiB`;
const met = (ok: boolean | null) => (ok === null ? 'n/a' : ok ? 'met' : 'MISSED');

function decisionsTable(r: DecisionResults): string {
  const t = r.throughput;
  const rows = [
    ['decisions/s, one core (mix, one decision per call)', int(r.decisionsPerSecond), `${int(r.urlParsesPerSecond)} URL/s`, ratio(t.medianRatio), spread(t), '>= 200,000/s', met(r.decisionsPerSecond >= 200_000)],
    ['p50 per decision', ns(r.engine.p50Ns), ns(r.baseline.p50Ns), ratio(r.p50Ratio), '', '', ''],
    ['p90 per decision', ns(r.engine.p90Ns), ns(r.baseline.p90Ns), '', '', '', ''],
    ['p99 per decision', ns(r.engine.p99Ns), ns(r.baseline.p99Ns), ratio(r.p99Ratio), '', '<= 20 us', met(r.engine.p99Ns <= 20_000)],
    ['p99.9 per decision', ns(r.engine.p999Ns), ns(r.baseline.p999Ns), '', '', '', ''],
    ['heap of the compiled rules', r.heap ? mib(r.heap.compiledBytes) : '- (no --expose-gc)', r.heap ? `${mib(r.heap.parsedJsonBytes)} JSON.parse` : '', r.heap ? ratio(r.heap.ratio) : '', '', '', ''],
  ];
  const cats = r.byCategory.map((c) => [c.category, c.decision, ns(c.p50Ns), ns(c.p90Ns), ns(c.p99Ns)]);
  return table(
    `1. Engine decisions on a mix: ${int(r.rules)} rules on ${int(r.domains)} domains, ${int(r.mixSize)} requests in ${Object.keys(r.categories).length} equal shares, shuffled\n` +
      '   baseline: new URL() of the same requests (throughput: batches; latency: every call timed alone, process.hrtime.bigint)',
    ['figure', 'engine', 'baseline', 'ratio', 'IQR', 'goal', ''],
    rows,
    `   timer overhead (two hrtime.bigint calls) ${int(r.timerOverheadNs)} ns, included in every latency; ${r.latencyRounds} latency rounds, medians of per-round quantiles.`,
  ) + table('   per request type (latency, engine only)', ['request', 'decision', 'p50', 'p90', 'p99'], cats);
}

function coldTable(r: ColdStartResults): string {
  const b = r.bundle;
  const rows = r.variants.map((v) => [
    v.name, `${v.medianRequireMs.toFixed(1)} ms`, `${v.p90RequireMs.toFixed(1)} ms`, `${v.medianReadyMs.toFixed(1)} ms`, `${v.medianBaselineReadyMs.toFixed(1)} ms`,
    ratio(v.medianRatio), `${ratio(v.ratioQ1)}-${ratio(v.ratioQ3)}`, v.firstUsePackages.length ? `${v.medianFirstUseMs.toFixed(1)} ms` : '-', met(v.medianRequireMs <= r.goalMs),
  ]);
  return table(
    `4. Regional handler (Lambda): bundle ${kib(b.bytes)} (${int(b.bytes)} bytes; deflated ${kib(b.deflatedBytes)}), goal <= 250 KB: ${met(b.bytes <= b.goalBytes)} (${ratio(b.ratioToGoal)} of the goal)\n` +
      `   esbuild as the construct bundles it (lib/bundling.ts: ${JSON.stringify(b.esbuild)})\n` +
      `   largest parts: ${b.largestInputs.map((x) => `${x.input} ${kib(x.bytes)}`).join(', ')}\n` +
      `   cold init in fresh node ${r.node} processes, ${r.rounds} rounds, interleaved with a fresh process loading an empty module; goal init <= ${r.goalMs} ms`,
    ['configuration', 'init (require)', 'p90', 'process ready', 'empty module', 'ready/empty', 'IQR', 'SDK on first use', 'goal'],
    rows,
    '   init: require() of the bundle, i.e. module load plus everything at module scope (clients, rules), in the process.\n' +
      '   process ready: process start to handler ready (performance.now()); the baseline process loads an empty module instead.\n' +
      '   SDK on first use: loading the AWS SDK clients the handler defers to first use (rule store before the first answer; Firehose after it).',
  );
}

function proxyTable(r: ProxyResults): string {
  if (r.skipped) return `\n5. Proxied manifest GET: skipped: ${r.skipped}\n`;
  const q = r.ratios;
  const iqr = (lo: number | null, hi: number | null) => (lo === null || hi === null ? '' : `${ratio(lo)}-${ratio(hi)}`);
  const us = (x: number | null, plus = false) => (x === null ? '-' : `${plus ? '+' : ''}${x.toFixed(0)} us`);
  const cpuRatio = (a: number | null, b: number | null) => (a !== null && b ? ratio(a / b) : '');
  const seqCpu = r.cpuUsPerRequest;
  const rows = [
    ['sequential, one keep-alive connection: p50', ms(r.direct.p50Ms), ms(r.bareProxy.p50Ms), ms(r.gateway.p50Ms),
      ratio(q.gatewayToDirect.medianP50Ratio), iqr(q.gatewayToDirect.p50RatioQ1, q.gatewayToDirect.p50RatioQ3),
      ratio(q.gatewayToBareProxy.medianP50Ratio), iqr(q.gatewayToBareProxy.p50RatioQ1, q.gatewayToBareProxy.p50RatioQ3),
      ratio(q.bareProxyToDirect.medianP50Ratio), iqr(q.bareProxyToDirect.p50RatioQ1, q.bareProxyToDirect.p50RatioQ3),
      '<= 1.2x', met(q.gatewayToDirect.medianP50Ratio <= 1.2)],
    ['sequential: p90', ms(r.direct.p90Ms), ms(r.bareProxy.p90Ms), ms(r.gateway.p90Ms), '', '', '', '', '', '', '', ''],
    ['sequential: p99', ms(r.direct.p99Ms), ms(r.bareProxy.p99Ms), ms(r.gateway.p99Ms),
      ratio(q.gatewayToDirect.medianP99Ratio), iqr(q.gatewayToDirect.p99RatioQ1, q.gatewayToDirect.p99RatioQ3),
      ratio(q.gatewayToBareProxy.medianP99Ratio), iqr(q.gatewayToBareProxy.p99RatioQ1, q.gatewayToBareProxy.p99RatioQ3),
      ratio(q.bareProxyToDirect.medianP99Ratio), iqr(q.bareProxyToDirect.p99RatioQ1, q.bareProxyToDirect.p99RatioQ3), '', ''],
    ['sequential: CPU per request (process, /proc)', us(seqCpu.registry), us(seqCpu.bareProxy, true), us(seqCpu.gateway, true),
      '', '', cpuRatio(seqCpu.gateway, seqCpu.bareProxy), '', '', '', '', ''],
  ];
  if (r.concurrent) {
    const c = r.concurrent;
    const w = c.ratios;
    rows.push(
      [`wrk, ${c.connections} connections: req/s`, int(c.direct.rps), int(c.bareProxy.rps), int(c.gateway.rps),
        ratio(w.gatewayToDirect.rpsRatio), iqr(w.gatewayToDirect.rpsRatioQ1, w.gatewayToDirect.rpsRatioQ3),
        ratio(w.gatewayToBareProxy.rpsRatio), iqr(w.gatewayToBareProxy.rpsRatioQ1, w.gatewayToBareProxy.rpsRatioQ3),
        ratio(w.bareProxyToDirect.rpsRatio), iqr(w.bareProxyToDirect.rpsRatioQ1, w.bareProxyToDirect.rpsRatioQ3), '', ''],
      [`wrk, ${c.connections} connections: p50`, ms(c.direct.p50Ms), ms(c.bareProxy.p50Ms), ms(c.gateway.p50Ms),
        ratio(w.gatewayToDirect.p50Ratio), iqr(w.gatewayToDirect.p50RatioQ1, w.gatewayToDirect.p50RatioQ3),
        ratio(w.gatewayToBareProxy.p50Ratio), iqr(w.gatewayToBareProxy.p50RatioQ1, w.gatewayToBareProxy.p50RatioQ3),
        ratio(w.bareProxyToDirect.p50Ratio), iqr(w.bareProxyToDirect.p50RatioQ1, w.bareProxyToDirect.p50RatioQ3), '', ''],
      [`wrk, ${c.connections} connections: p99`, ms(c.direct.p99Ms), ms(c.bareProxy.p99Ms), ms(c.gateway.p99Ms),
        ratio(w.gatewayToDirect.p99Ratio), '', ratio(w.gatewayToBareProxy.p99Ratio), '', ratio(w.bareProxyToDirect.p99Ratio), '', '', ''],
      [`wrk: CPU per request (process, /proc)`, us(c.direct.cpuUsPerRequest), us(c.bareProxy.cpuUsPerRequest), us(c.gateway.cpuUsPerRequest),
        '', '', cpuRatio(c.gateway.cpuUsPerRequest, c.bareProxy.cpuUsPerRequest), '', '', '', '', ''],
    );
  }
  return table(
    `5. Proxied manifest GET (${int(r.manifestBytes)}-byte OCI manifest): directly from the registry, through a bare Node reverse proxy, and through the gateway (docker-v1, mode proxy)\n` +
      `   registry: ${r.registry}; ${r.rounds} rounds of ${r.requestsPerRound} request triples, order rotating${r.concurrent ? `; wrk: ${r.concurrent.rounds} rounds of ${r.concurrent.durationS} s per subject, order rotating, errors ${r.concurrent.errors}` : ''}`,
    ['figure', 'registry', 'bare proxy', 'via gateway', 'gateway/registry', 'IQR', 'gateway/bare', 'IQR', 'bare/registry', 'IQR', 'goal', ''],
    rows,
    '   bare proxy: bench/baseline-proxy.ts, http.createServer + http.request with a keep-alive agent, bodies piped: the extra hop alone.\n' +
      '   CPU per request: user+system CPU time of the process / requests it answered; sequential: the registry answers all three subjects,\n' +
      '   and each proxy adds its own (+); wrk: each subject\'s own process during its runs (registry: the direct runs).',
  );
}

function rulesTable(results: PropagationResult[]): string {
  const f = (x: number) => `${Math.round(x).toLocaleString('en-US')} ms`;
  return table(
    '6. Rule-change propagation: `rules put` on DynamoDB Local until a polled gateway (serve --rules-table) serves the change\n' +
      '   baseline: a write + read round trip of the same table access (and the TTL itself)',
    ['TTL', 'changes', 'p50', 'p90', 'max', 'write+read p50', 'p50/round trip', 'max/TTL', 'goal', ''],
    results.map((r) => [
      `${r.ttlS} s`, String(r.delay.n), f(r.delay.p50), f(r.delay.p90), f(r.delay.max), `${r.writeReadRoundTrip.p50.toFixed(1)} ms`,
      ratio(r.p50OverRoundTrip), ratio(r.delayOverTtl.max), `<= ${PROPAGATION_GOAL_MS / 1000} s`, met(r.delay.max <= PROPAGATION_GOAL_MS),
    ]),
    `   client errors while polling: ${results.map((r) => `${r.pollErrors} of ${int(r.pollRequests)}`).join(', ')}`,
  );
}

/** Every goal of the issue in one table, from whatever sections ran. */
function headline(results: Record<string, unknown>): string {
  const rows: string[][] = [];
  const d = results.decisions as DecisionResults | undefined;
  if (d) {
    rows.push(['engine decisions/s, mix, 10k rules, one core', int(d.decisionsPerSecond), 'new URL', ratio(d.throughput.medianRatio), '>= 200,000/s', met(d.decisionsPerSecond >= 200_000)]);
    rows.push(['engine p50 / p99 per decision', `${us1(d.engine.p50Ns)} / ${us1(d.engine.p99Ns)}`, 'new URL', `${ratio(d.p50Ratio)} / ${ratio(d.p99Ratio)}`, 'p99 <= 20 us', met(d.engine.p99Ns <= 20_000)]);
    if (d.heap) rows.push(['heap of 10k compiled rules', mib(d.heap.compiledBytes), 'JSON.parse', ratio(d.heap.ratio), '-', '']);
  }
  const h = results.http as HttpResults | undefined;
  if (h) {
    const gw = h.subjects.find((x) => x.key === 'gateway')!;
    rows.push(['gateway redirects/s vs bare Node 307', int(gw.medianRps), 'Node 307', ratio(gw.medianRatio), '>= 0.8x', met(gw.medianRatio >= 0.8)]);
    rows.push(['gateway redirects/s vs nginx return 307', int(gw.medianRps), 'nginx', gw.medianNginxRatio === null ? `skipped` : ratio(gw.medianNginxRatio), '>= 0.5x', gw.medianNginxRatio === null ? 'n/a' : met(gw.medianNginxRatio >= 0.5)]);
    rows.push(['gateway CPU per redirect vs bare Node 307', gw.medianCpuUsPerRequest === null ? '-' : `${gw.medianCpuUsPerRequest.toFixed(1)} us`, 'Node 307', ratio(gw.medianCpuRatio), '-', '']);
  }
  const p = results.proxy as ProxyResults | undefined;
  if (p && !p.skipped) {
    const g = p.ratios.gatewayToDirect;
    rows.push(['proxied manifest GET p50 (p99)', `${ms(p.gateway.p50Ms)} (${ms(p.gateway.p99Ms)})`, 'registry direct', `${ratio(g.medianP50Ratio)} (${ratio(g.medianP99Ratio)})`, '<= 1.2x', met(g.medianP50Ratio <= 1.2)]);
    const b = p.ratios.gatewayToBareProxy;
    rows.push(['proxied manifest GET p50 (p99) vs a bare Node proxy', `${ms(p.gateway.p50Ms)} (${ms(p.gateway.p99Ms)})`, 'bare Node proxy', `${ratio(b.medianP50Ratio)} (${ratio(b.medianP99Ratio)})`, '-', '']);
  }
  const c = results.cold as ColdStartResults | undefined;
  if (c) {
    rows.push(['regional handler bundle (SDK external)', kib(c.bundle.bytes), '250 KB goal', ratio(c.bundle.ratioToGoal), '<= 250 KB', met(c.bundle.bytes <= c.bundle.goalBytes)]);
    for (const v of c.variants) rows.push([`cold init, ${v.name}`, `${v.medianRequireMs.toFixed(1)} ms`, 'empty module', `${ratio(v.medianRatio)} (process ready)`, `<= ${c.goalMs} ms`, met(v.medianRequireMs <= c.goalMs)]);
  }
  const rules = results.rules as PropagationResult[] | undefined;
  for (const r of rules ?? []) rows.push([`rule change served, TTL ${r.ttlS} s: p50 / max`, `${(r.delay.p50 / 1000).toFixed(2)} s / ${(r.delay.max / 1000).toFixed(2)} s`, 'write+read', ratio(r.p50OverRoundTrip), `<= ${PROPAGATION_GOAL_MS / 1000} s`, met(r.delay.max <= PROPAGATION_GOAL_MS)]);
  return rows.length ? table('Summary: the goals of issue 8', ['figure', 'value', 'baseline', 'ratio', 'goal', ''], rows) : '';
}

function engineTable(r: EngineResults): string {
  return table(
    `2. Engine cost per request (in-process handleRequest; baseline: new URL("${BASELINE_URL}"))\n` +
      `   mixed manifest: ${int(r.mixedRules)} rules on ${int(r.mixedDomains)} domains; python manifest: ${int(r.pythonRules)} rules`,
    ['request', 'engine', 'new URL', 'engine/URL', 'IQR', 'answer'],
    r.cases.map((c) => [c.name, ns(c.medianSubjectNs), ns(c.medianBaselineNs), ratio(c.medianRatio), spread(c), c.answer.length > 60 ? `${c.answer.slice(0, 57)}...` : c.answer]),
  );
}

function scalingTable(r: ScalingResults): string {
  return table(
    '2b. Scaling with the number of file-v1 rules on one domain (request: the last rule; baseline: new URL)',
    ['rules', 'engine', 'engine/URL', 'vs 10 rules', 'linear scan', 'scan/URL', 'scan/engine'],
    r.rows.map((x) => [
      `${int(x.rules)}${x.layout === 'shared' ? ' (one shared first segment)' : ''}`,
      ns(x.engine.medianSubjectNs),
      ratio(x.engine.medianRatio),
      ratio(x.engineGrowth),
      x.linear ? ns(x.linear.medianSubjectNs) : '-',
      x.linear ? ratio(x.linear.medianRatio) : '-',
      ratio(x.linearOverEngine),
    ]),
    '   templates /pkg{k}/{version}/file.tar.gz (shared: /dl/pkg{k}/...; request: the rule the engine tries last).\n' +
      '   "linear scan": matchTemplate on every rule in manifest order, then expandTemplate of the match.',
  );
}

function compileTable(rows: CompileRow[]): string {
  return table(
    '2c. Compile time (baseline: JSON.parse of the same manifest text)',
    ['manifest', 'rules', 'JSON.parse', 'compileRules', 'compile/parse', 'IQR', 'validate+compile', 'load/parse', 'IQR'],
    rows.map((x) => [
      x.manifest,
      int(x.rules),
      ns(x.compile.medianBaselineNs),
      ns(x.compile.medianSubjectNs),
      ratio(x.compile.medianRatio),
      spread(x.compile),
      ns(x.load.medianSubjectNs),
      ratio(x.load.medianRatio),
      spread(x.load),
    ]),
    '   validate+compile = parseManifest(text) (JSON.parse + schema checks) + compileRules: loading a manifest file.',
  );
}

function httpTable(r: HttpResults): string {
  const us = (x: number | null) => (x === null ? '-' : `${x.toFixed(1)} us`);
  const split = (x: number | null) => (x === null ? '-' : x.toFixed(1));
  const rows: string[][] = [];
  const hasNginx = r.subjects.some((x) => x.key === 'nginx');
  for (const x of r.subjects) {
    const isBase = x.key === 'baseline';
    x.runs.forEach((run, i) => {
      rows.push([`${x.label}, round ${i + 1}`, int(run.rps), isBase ? '' : ratio(x.ratios[i]), x.nginxRatios && x.key !== 'nginx' ? ratio(x.nginxRatios[i]) : '', us(run.cpuUsPerRequest), isBase ? '' : ratio(x.cpuRatios[i]), ms(run.p50Ms), ms(run.p99Ms), String(run.errors)]);
    });
  }
  for (const x of r.subjects) {
    const isBase = x.key === 'baseline';
    rows.push([`median: ${x.label}`, int(x.medianRps), isBase ? '1' : ratio(x.medianRatio), x.key === 'nginx' ? '1' : ratio(x.medianNginxRatio), `${us(x.medianCpuUsPerRequest)} (${split(x.medianUserUsPerRequest)} + ${split(x.medianSystemUsPerRequest)})`, isBase ? '1' : ratio(x.medianCpuRatio), ms(x.medianP50Ms), ms(x.medianP99Ms), '']);
  }
  return table(
    `3. End to end over HTTP: ${r.request} (file-v1 307, manifest of ${int(r.manifestRules)} rules)\n` +
      `   baselines: plain http.createServer answering the same 307; ${hasNginx ? `nginx ${r.nginx.version} return 307 (1 worker)` : `no nginx (${r.nginx.skipped})`}\n` +
      `   client: ${r.client}, ${r.connections} connections, ${r.durationS} s per run; goals: gateway >= 0.8x the Node server, >= 0.5x nginx (req/s)`,
    ['', 'req/s', 'vs Node 307', 'vs nginx', 'server CPU/req', 'CPU vs Node', 'p50', 'p99', 'errors'],
    rows,
    '   server CPU/req: user+system CPU time of the server process (all threads) during the run / answered requests;\n' +
      '   medians also split it (user + system): user is JavaScript, V8 and libuv, system the kernel (sockets, event file writes).\n' +
      '   "DNT: 1": the same gateway and request, served without recording an event (diagnostic: the cost of events).\n' +
      `   events written by the gateway: ${int(r.eventsWritten)} for ${int(r.gatewayRecordedRequests)} answered requests without DNT (warm-up included)`,
  );
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`bench: ${(e as Error).message}\n`);
    return 2;
  }
  const micro: SuiteOptions = args.quick ? { rounds: 5, batchMs: 5, warmupMs: 50 } : { rounds: 21, batchMs: 20, warmupMs: 200 };
  const decisions = { ...micro, latencyRounds: args.quick ? 3 : 11 };
  const cold = { rounds: args.quick ? 6 : 20 };
  const proxy: ProxyOptions = args.quick
    ? { rounds: 3, requestsPerRound: 100, concurrent: { rounds: 2, durationS: 1, connections: 8 } }
    : { rounds: 9, requestsPerRound: 300, concurrent: { rounds: 5, durationS: 2, connections: 8 } };
  const rules = { ttls: [DEFAULT_RULES_TTL_S], samples: args.quick ? 4 : 20 };
  const compile: SuiteOptions = args.quick ? { rounds: 3, batchMs: 20, warmupMs: 20 } : { rounds: 9, batchMs: 100, warmupMs: 300 };
  const http: HttpOptions = args.quick
    ? { rounds: 3, durationS: 1, warmupS: 1, connections: args.connections, client: args.client }
    : { rounds: 8, durationS: 2, warmupS: 2, connections: args.connections, client: args.client };

  const wrk = wrkVersion();
  const meta = {
    date: new Date().toISOString(),
    node: process.version,
    v8: process.versions.v8,
    nproc: os.availableParallelism(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    loadavgAtStart: os.loadavg(),
    quick: args.quick,
    wrk,
    nginx: nginxVersion(),
    exposeGc: typeof (globalThis as { gc?: unknown }).gc === 'function',
    settings: { micro, decisions, compile, http, cold, proxy, rules },
  };
  process.stdout.write(
    `artifact-gateway benchmarks${args.quick ? ' (--quick)' : ''}: ${meta.date}, node ${meta.node}, ${meta.nproc} CPUs (${meta.cpu}), load ${meta.loadavgAtStart.map((x) => x.toFixed(2)).join(' ')}\n` +
      'Figures are medians over interleaved rounds; ratios are per-round subject/baseline, then the median.\n',
  );
  if (args.only.has('http') && wrk === null && args.client === 'auto') {
    process.stderr.write('bench: wrk is not installed, using the built-in Node HTTP client (slower, so the HTTP ratio is compressed).\n' +
      '       Install wrk for better HTTP figures: sudo apt-get install -y wrk   (macOS: brew install wrk)\n');
  }

  const results: Record<string, unknown> = { meta };
  const started = performance.now();
  const progress = (section: string) => (m: string) => process.stderr.write(`  [${section}] ${m} (${((performance.now() - started) / 1000).toFixed(0)} s)\n`);

  if (args.only.has('decisions')) {
    const r = benchDecisions(decisions, progress('decisions'));
    results.decisions = r;
    process.stdout.write(decisionsTable(r));
  }
  if (args.only.has('engine')) {
    const r = benchEngine(micro, progress('engine'));
    results.engine = r;
    process.stdout.write(engineTable(r));
  }
  if (args.only.has('scaling')) {
    const r = benchScaling(micro, progress('scaling'));
    results.scaling = r;
    process.stdout.write(scalingTable(r));
  }
  if (args.only.has('compile')) {
    const r = benchCompile(compile, progress('compile'));
    results.compile = r;
    process.stdout.write(compileTable(r));
  }
  if (args.only.has('cold')) {
    const r = await benchColdStart(cold, progress('cold'));
    results.cold = r;
    process.stdout.write(coldTable(r));
  }
  if (args.only.has('http')) {
    const r = await benchHttp(http, progress('http'));
    results.http = r;
    process.stdout.write(httpTable(r));
  }
  if (args.only.has('proxy')) {
    const r = await benchProxy(proxy, progress('proxy'));
    results.proxy = r;
    process.stdout.write(proxyTable(r));
  }
  if (args.only.has('rules')) {
    const r = await benchRules(rules, progress('rules'));
    results.rules = r;
    process.stdout.write(rulesTable(r));
  }
  process.stdout.write(headline(results));
  const total = (performance.now() - started) / 1000;
  (meta as Record<string, unknown>).seconds = total;
  (meta as Record<string, unknown>).loadavgAtEnd = os.loadavg();
  process.stdout.write(`\ndone in ${total.toFixed(0)} s; load average at the end: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}\n`);
  if (args.json) {
    const file = path.resolve(args.json);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
    process.stdout.write(`raw results: ${file}\n`);
  }
  return 0;
}

process.once('SIGINT', () => {
  killChildren();
  process.exit(130);
});
process.once('SIGTERM', () => {
  killChildren();
  process.exit(143);
});
process.once('exit', killChildren);

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    killChildren();
    process.stderr.write(`bench: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
