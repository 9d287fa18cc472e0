/**
 * npm packument rewriting: `node --import tsx bench/packument-bench.ts [--quick]`.
 *
 * 1. In process: the streaming `dist.tarball` rewriter against the baseline JSON.parse +
 *    rewrite + JSON.stringify of the whole document, on the same generated packument, interleaved.
 * 2. Through the local gateway: a generated packument of about 100 MB streamed from a local
 *    upstream to curl; the gateway's peak RSS before and after, against the document size.
 */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createJsonValueRewriter } from '../lambda/core/json-rewrite';

const quick = process.argv.includes('--quick');

function packument(versions: number): Buffer {
  const v: Record<string, unknown> = {};
  for (let i = 0; i < versions; i++) {
    v[`1.0.${i}`] = { name: 'big', version: `1.0.${i}`, readme: 'x'.repeat(1200), dist: { tarball: `https://registry.npmjs.org/big/-/big-1.0.${i}.tgz`, shasum: 'a'.repeat(40) } };
  }
  return Buffer.from(JSON.stringify({ name: 'big', versions: v }));
}

const swap = (u: string) => u.replace('https://registry.npmjs.org', 'https://npm.example.com');

function streamed(doc: Buffer): number {
  const r = createJsonValueRewriter('dist', 'tarball', swap);
  let n = 0;
  for (let i = 0; i < doc.length; i += 65_536) n += r.push(doc.subarray(i, i + 65_536)).length;
  return n + r.end().length;
}

function parsed(doc: Buffer): number {
  const o = JSON.parse(doc.toString()) as { versions: Record<string, { dist: { tarball: string } }> };
  for (const v of Object.values(o.versions)) v.dist.tarball = swap(v.dist.tarball);
  return Buffer.byteLength(JSON.stringify(o));
}

function inProcess(): void {
  const doc = packument(quick ? 5_000 : 20_000);
  const rounds = quick ? 3 : 7;
  const times: Record<string, number[]> = { stream: [], baseline: [] };
  streamed(doc);
  parsed(doc);
  for (let r = 0; r < rounds; r++) {
    for (const [name, f] of [['stream', streamed], ['baseline', parsed]] as const) {
      const t = process.hrtime.bigint();
      f(doc);
      times[name].push(Number(process.hrtime.bigint() - t) / 1e6);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const s = median(times.stream);
  const b = median(times.baseline);
  const mb = doc.length / 1e6;
  console.log(`packument ${mb.toFixed(1)} MB, median of ${rounds}:`);
  console.log(`  streaming rewriter     ${s.toFixed(0)} ms (${(mb / (s / 1000)).toFixed(0)} MB/s)`);
  console.log(`  JSON.parse+stringify   ${b.toFixed(0)} ms (${(mb / (b / 1000)).toFixed(0)} MB/s)  [baseline]`);
  console.log(`  time ratio stream/baseline: ${(s / b).toFixed(2)}`);
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

async function throughGateway(): Promise<void> {
  const doc = packument(quick ? 20_000 : 80_000);
  const upstream = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    let i = 0;
    const write = () => {
      while (i < doc.length) {
        const ok = res.write(doc.subarray(i, i + 65_536));
        i += 65_536;
        if (!ok) return void res.once('drain', write);
      }
      res.end();
    };
    write();
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-bench-npm-'));
  const manifest = path.join(dir, 'manifest.json');
  fs.writeFileSync(manifest, JSON.stringify({ rules: [{ type: 'npm-v1', domain: '127.0.0.1', 'package-name': 'big', registry: `http://127.0.0.1:${(upstream.address() as net.AddressInfo).port}`, 'package-id': 'big' }] }));
  const port = await freePort();
  const gw = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, '..', 'bin', 'cli.ts'), 'serve', '--manifest', manifest, '--port', String(port), '--events', path.join(dir, 'events')], { stdio: 'ignore' });
  try {
    for (let t = 0; t < 300; t++) {
      if (await new Promise<boolean>((r) => net.connect(port, '127.0.0.1').once('connect', function (this: net.Socket) { this.destroy(); r(true); }).once('error', () => r(false)))) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const peak = () => Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${gw.pid}/status`, 'utf8'))![1]) / 1024;
    console.log(`\nthrough the local gateway (packument ${(doc.length / 1e6).toFixed(1)} MB):`);
    console.log(`  gateway peak RSS before: ${peak().toFixed(0)} MiB`);
    for (const gzip of [false, true]) {
      // Asynchronously: the upstream server runs in this process.
      const { stdout } = await promisify(execFile)('curl', ['-s', ...(gzip ? ['-H', 'Accept-Encoding: gzip'] : []), `http://127.0.0.1:${port}/big`, '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{time_total}']);
      const out = stdout.split(' ');
      console.log(`  ${gzip ? 'gzip    ' : 'identity'}: ${out[0]}, ${(Number(out[1]) / 1e6).toFixed(1)} MB sent in ${Number(out[2]).toFixed(2)} s; gateway peak RSS now ${peak().toFixed(0)} MiB`);
    }
  } finally {
    gw.kill('SIGTERM');
    upstream.closeAllConnections();
    upstream.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

inProcess();
void throughGateway();
