/**
 * Blob streaming through the local gateway's registry proxy, against fetching the same blob from
 * the same upstream directly, interleaved round by round; and the gateway's memory while it
 * streams (backpressure keeps it flat whatever the blob size).
 *
 *   node --import tsx bench/blob-stream.ts [--mib 1024] [--rounds 5]
 *
 * The upstream is a separate Node process that streams the blob from a 1 MiB buffer (the fastest
 * a registry could serve it); the gateway runs as users start it (bin/cli.ts serve); the client
 * reads and discards. Everything on 127.0.0.1.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../test/e2e/helpers';

const ROOT = path.resolve(__dirname, '..');

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} needs a positive integer`);
  return v;
}

const UPSTREAM_SOURCE = `
const http = require('node:http');
const total = Number(process.argv[1]) * 1024 * 1024;
const chunk = Buffer.alloc(1024 * 1024, 7);
http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total, 'docker-content-digest': 'sha256:bench' });
  let sent = 0;
  const pump = () => {
    while (sent < total) {
      const n = Math.min(chunk.length, total - sent);
      sent += n;
      if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return res.once('drain', pump);
    }
    res.end();
  };
  pump();
}).listen(0, '127.0.0.1', function () { process.stdout.write(String(this.address().port) + '\\n'); });
`;


async function waitPort(port: number, proc: ChildProcess): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error('process exited before listening');
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ port, host: '127.0.0.1' });
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`nothing listening on ${port}`);
}

/** GETs the URL, discards the body; returns seconds and bytes. */
function fetchSeconds(port: number, pathname: string, host: string): Promise<{ seconds: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const req = http.request({ host: '127.0.0.1', port, path: pathname, headers: { host, 'user-agent': 'skopeo/1.9.3' }, agent: false }, (res) => {
      let bytes = 0;
      res.on('data', (c: Buffer) => (bytes += c.length));
      res.once('end', () => resolve({ seconds: Number(process.hrtime.bigint() - started) / 1e9, bytes }));
      res.once('error', reject);
    });
    req.once('error', reject);
    req.end();
  });
}

const rssMiB = (pid: number) => Number(/^VmRSS:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const mib = arg('mib', 1024);
  const rounds = arg('rounds', 5);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-bench-blob-'));
  const children: ChildProcess[] = [];
  try {
    const upstream = spawn(process.execPath, ['-e', UPSTREAM_SOURCE, String(mib)], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(upstream);
    const upstreamPort = await new Promise<number>((resolve) => upstream.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
    const manifest = path.join(dir, 'manifest.json');
    fs.writeFileSync(manifest, JSON.stringify({ rules: [{ type: 'docker-v1', domain: 'cr.bench', 'repository-name': 'acme/big', registry: `http://127.0.0.1:${upstreamPort}`, 'package-id': 'big' }] }));
    const gwPort = await freePort();
    const gateway = spawn(process.execPath, ['--import', 'tsx', 'bin/cli.ts', 'serve', '--manifest', manifest, '--port', String(gwPort), '--events', path.join(dir, 'events')], { cwd: ROOT, stdio: 'ignore' });
    children.push(gateway);
    await waitPort(gwPort, gateway);
    const blobPath = '/v2/acme/big/blobs/sha256:bench';
    const idle = rssMiB(gateway.pid!);
    process.stderr.write(`blob ${mib} MiB, ${rounds} rounds; gateway idle RSS ${idle.toFixed(0)} MiB\n`);
    const direct: number[] = [];
    const proxied: number[] = [];
    let peak = idle;
    // One warm-up of each, then interleaved rounds.
    await fetchSeconds(upstreamPort, blobPath, `127.0.0.1:${upstreamPort}`);
    await fetchSeconds(gwPort, blobPath, 'cr.bench');
    for (let r = 0; r < rounds; r++) {
      const d = await fetchSeconds(upstreamPort, blobPath, `127.0.0.1:${upstreamPort}`);
      const sampler = setInterval(() => (peak = Math.max(peak, rssMiB(gateway.pid!))), 20);
      const g = await fetchSeconds(gwPort, blobPath, 'cr.bench');
      clearInterval(sampler);
      if (d.bytes !== mib * 1024 * 1024 || g.bytes !== d.bytes) throw new Error(`short read: direct ${d.bytes}, gateway ${g.bytes}`);
      direct.push(mib / d.seconds);
      proxied.push(mib / g.seconds);
      process.stderr.write(`  round ${r + 1}: direct ${direct[r].toFixed(0)} MiB/s, through the gateway ${proxied[r].toFixed(0)} MiB/s\n`);
    }
    const ratios = proxied.map((p, i) => p / direct[i]);
    process.stdout.write(`\nblob streaming, ${mib} MiB, median of ${rounds} interleaved rounds\n`);
    process.stdout.write(`direct from the upstream     ${median(direct).toFixed(0)} MiB/s\n`);
    process.stdout.write(`through the gateway proxy    ${median(proxied).toFixed(0)} MiB/s\n`);
    process.stdout.write(`ratio (gateway / direct)     ${median(ratios).toFixed(2)}\n`);
    process.stdout.write(`gateway RSS                  ${idle.toFixed(0)} MiB idle, ${peak.toFixed(0)} MiB peak while streaming\n`);
  } finally {
    for (const c of children) c.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`blob-stream: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
