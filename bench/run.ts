/**
 * `npm run bench`: performance of the rule engine and of the local gateway, each figure a ratio
 * against a baseline measured in the same run, interleaved. See docs/BENCHMARKS.md.
 *
 *   npm run bench                      full run (about 100 s)
 *   npm run bench -- --quick           fewer, shorter rounds (under 30 s)
 *   npm run bench -- --json out.json   also write the raw results
 *   npm run bench -- --only engine,scaling,compile,http
 *   npm run bench -- --client node     HTTP load from the built-in Node client even if wrk is installed
 *   npm run bench -- --connections 16  concurrent HTTP connections
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { benchCompile, benchEngine, benchScaling, BASELINE_URL, type CompileRow, type EngineResults, type ScalingResults } from './engine-bench';
import { benchHttp, killChildren, wrkVersion, type HttpOptions, type HttpResults } from './http-bench';
import type { PairResult, SuiteOptions } from './measure';

const SECTIONS = ['engine', 'scaling', 'compile', 'http'] as const;
type Section = (typeof SECTIONS)[number];

interface Args {
  quick: boolean;
  json: string | null;
  only: Set<Section>;
  client: HttpOptions['client'];
  connections: number;
}

const USAGE = `usage: npm run bench -- [--quick] [--json FILE] [--only ${SECTIONS.join(',')}] [--client node] [--connections N]`;

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

function engineTable(r: EngineResults): string {
  return table(
    `1. Engine cost per request (in-process handleRequest; baseline: new URL("${BASELINE_URL}"))\n` +
      `   mixed manifest: ${int(r.mixedRules)} rules on ${int(r.mixedDomains)} domains; python manifest: ${int(r.pythonRules)} rules`,
    ['request', 'engine', 'new URL', 'engine/URL', 'IQR', 'answer'],
    r.cases.map((c) => [c.name, ns(c.medianSubjectNs), ns(c.medianBaselineNs), ratio(c.medianRatio), spread(c), c.answer.length > 60 ? `${c.answer.slice(0, 57)}...` : c.answer]),
  );
}

function scalingTable(r: ScalingResults): string {
  return table(
    '2a. Scaling with the number of file-v1 rules on one domain (request: the last rule; baseline: new URL)',
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
    '2b. Compile time (baseline: JSON.parse of the same manifest text)',
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
  const rows: string[][] = [];
  for (const x of r.subjects) {
    const isBase = x.key === 'baseline';
    x.runs.forEach((run, i) => {
      rows.push([`${x.label}, round ${i + 1}`, int(run.rps), isBase ? '' : ratio(x.ratios[i]), us(run.cpuUsPerRequest), isBase ? '' : ratio(x.cpuRatios[i]), ms(run.p50Ms), ms(run.p99Ms), String(run.errors)]);
    });
  }
  for (const x of r.subjects) {
    const isBase = x.key === 'baseline';
    rows.push([`median: ${x.label}`, int(x.medianRps), isBase ? '1' : ratio(x.medianRatio), us(x.medianCpuUsPerRequest), isBase ? '1' : ratio(x.medianCpuRatio), ms(x.medianP50Ms), ms(x.medianP99Ms), '']);
  }
  return table(
    `3. End to end over HTTP: ${r.request} (file-v1 307, manifest of ${int(r.manifestRules)} rules)\n` +
      `   baseline: plain http.createServer answering the same 307; client: ${r.client}, ${r.connections} connections, ${r.durationS} s per run`,
    ['', 'req/s', 'vs baseline', 'server CPU/req', 'vs baseline', 'p50', 'p99', 'errors'],
    rows,
    '   server CPU/req: user+system CPU time of the server process (all threads) during the run / answered requests.\n' +
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
    settings: { micro, compile, http },
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
  if (args.only.has('http')) {
    const r = await benchHttp(http, progress('http'));
    results.http = r;
    process.stdout.write(httpTable(r));
  }
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
