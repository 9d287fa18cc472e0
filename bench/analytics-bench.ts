/**
 * What analytics cost, as ratios against a baseline measured in the same run:
 *
 * - on the request path: completing a request's event (User-Agent parsing, visitor-id HMAC) and
 *   encoding it as a Firehose record, against the engine's own decision for the same request;
 * - locally: a named query by DuckDB over N events, against reading and JSON-parsing the same
 *   files in Node (the least any local query needs to do).
 *
 *   node --import tsx bench/analytics-bench.ts [--quick] [--events N]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { compileRules } from '../lambda/core/compile';
import { handleRequest } from '../lambda/core/engine';
import type { GatewayRequest } from '../lambda/core/request';
import { parseManifest } from '../lambda/core/validate';
import { completeEvents } from '../lambda/core/complete-event';
import { parseUserAgent } from '../lambda/core/user-agent';
import { visitorId } from '../lambda/core/visitor';
import { encodeRecord } from '../lambda/analytics/firehose-sink';
import { loadNamedQueries } from '../lambda/analytics/named-queries';
import { runLocalQuery } from '../lambda/local/duckdb-query';
import { NdjsonEventSink } from '../lambda/local/ndjson-sink';
import { generateEvents } from '../test/e2e/analytics-fixtures';
import { median, runPairs, sinkValue, type Bench } from './measure';

const quick = process.argv.includes('--quick');
const eventsArg = process.argv.indexOf('--events');
const eventCount = eventsArg > 0 ? Number(process.argv[eventsArg + 1]) : quick ? 20_000 : 100_000;

const PIP_UA = 'pip/23.2.1 {"ci":null,"cpu":"x86_64","distro":{"id":"bookworm","libc":{"lib":"glibc","version":"2.36"},"name":"Debian GNU/Linux","version":"12"},"implementation":{"name":"CPython","version":"3.11.7"},"installer":{"name":"pip","version":"23.2.1"},"openssl_version":"OpenSSL 3.0.11 19 Sep 2023","python":"3.11.7","setuptools_version":"65.5.0","system":{"name":"Linux","release":"6.1.0-18-amd64"}}';

const manifest = parseManifest(JSON.stringify({
  rules: [
    { type: 'file-v1', domain: 'get.test', 'package-id': 'rocket', 'incoming-path': '/rocket/{version}/rocket-{os}-{arch}.tar.gz', 'outgoing-url': 'https://github.com/acme/rocket/releases/download/v{version}/rocket-{os}-{arch}.tar.gz' },
    { type: 'python-v1', domain: 'py.test', 'package-id': 'rocket-py', 'package-name': 'rocket', 'file-name': 'rocket-1.0-py3-none-any.whl', version: '1.0', 'backend-url': 'https://files.test/rocket.whl' },
  ],
}));
if (manifest.errors.length) throw new Error(`bench manifest invalid: ${JSON.stringify(manifest.errors)}`);
const rules = compileRules(manifest.rules);
const req: GatewayRequest = { method: 'GET', rawPath: '/simple/rocket/rocket-1.0-py3-none-any.whl', rawQuery: '', headers: { host: 'py.test', 'user-agent': PIP_UA }, hasBody: false };
const drafts = handleRequest(rules, req).events;
const salt = 'c2FsdC1vZi10aGUtZGF5LWZvci10aGUtYmVuY2htYXJr';
let n = 0;

const engine: Bench = { name: 'engine: handleRequest (python file)', fn: () => handleRequest(rules, req).events.length };
const pairs = [
  {
    name: 'event: completeEvents + Firehose record',
    baseline: engine,
    subject: {
      name: 'completeEvents + encodeRecord',
      fn: () => completeEvents(drafts, {
        domain: 'py.test', method: 'GET', path: req.rawPath, status: 307, time: new Date(), userAgent: PIP_UA, origin: null,
        visitorIdFor: (p) => visitorId(salt, `192.0.2.${n++ & 255}`, PIP_UA, 'py.test', p), newId: () => 'id',
      }).reduce((acc, e) => acc + encodeRecord(e).byteLength, 0),
    },
  },
  { name: 'parseUserAgent (pip JSON)', baseline: engine, subject: { name: 'parseUserAgent', fn: () => (parseUserAgent(PIP_UA).client_name ?? '').length } },
  { name: 'visitorId (HMAC-SHA256)', baseline: engine, subject: { name: 'visitorId', fn: () => visitorId(salt, `192.0.2.${n++ & 255}`, PIP_UA, 'py.test', 'rocket-py')!.length } },
];

async function main(): Promise<void> {
  process.stderr.write(`in-process pairs (${quick ? 'quick' : 'full'})...\n`);
  const results = runPairs(pairs, quick ? { rounds: 5, batchMs: 50, warmupMs: 100 } : { rounds: 15, batchMs: 100, warmupMs: 300 }, (m) => process.stderr.write(`  ${m}\n`));
  const rows = results.map((r) => `| ${r.name} | ${r.medianRatio.toFixed(2)} (${r.ratioQ1.toFixed(2)}-${r.ratioQ3.toFixed(2)}) | ${(r.medianSubjectNs / 1000).toFixed(2)} µs | ${(r.medianBaselineNs / 1000).toFixed(2)} µs |`);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-bench-analytics-'));
  try {
    process.stderr.write(`writing ${eventCount} events...\n`);
    const sink = new NdjsonEventSink(dir);
    for (let i = 0; i < eventCount; i += 10_000) sink.write(generateEvents(Math.min(10_000, eventCount - i), 1000 + i));
    await sink.close();
    const files = fs.readdirSync(dir).flatMap((d) => fs.readdirSync(path.join(dir, d)).map((f) => path.join(dir, d, f)));
    const query = loadNamedQueries().find((q) => q.name === 'unique_visitors_per_package_per_day')!;
    const ratios: number[] = [];
    const duck: number[] = [];
    const scan: number[] = [];
    for (let r = 0; r < (quick ? 3 : 7); r++) {
      process.stderr.write(`  duckdb round ${r + 1}\n`);
      let t = performance.now();
      await runLocalQuery(query, { eventsDir: dir, from: '0000-01-01', to: '9999-12-31' });
      const d = performance.now() - t;
      t = performance.now();
      let rowsRead = 0;
      for (const f of files) for (const line of fs.readFileSync(f, 'utf8').split('\n')) if (line) rowsRead += JSON.parse(line).download ? 1 : 0;
      const s = performance.now() - t;
      if (rowsRead < 0) throw new Error('unreachable');
      duck.push(d);
      scan.push(s);
      ratios.push(d / s);
    }
    rows.push(`| DuckDB \`unique_visitors_per_package_per_day\` over ${eventCount} events | ${median(ratios).toFixed(2)} | ${median(duck).toFixed(0)} ms | ${median(scan).toFixed(0)} ms (read + JSON.parse in Node) |`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(`| measure | ratio to baseline, median (IQR) | subject | baseline |\n|---|---|---|---|\n${rows.join('\n')}\n`);
  process.stderr.write(`(sink ${sinkValue()})\n`);
}

void main();
