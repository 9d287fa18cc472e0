/**
 * End to end over HTTP: the local gateway (bin/cli.ts serve) answering a file-v1 redirect, against
 * a plain Node server answering a fixed 307 with the same headers (bench/baseline-server.ts) and
 * against nginx (`return 307`, one worker) when it is installed. All run as child processes bound
 * to 127.0.0.1 and are loaded in turn by the same client: wrk when it is installed, else a
 * keep-alive Node client with N concurrent connections.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { median } from './measure';
import { lastMixedIndex, mixedHost, mixedManifest } from './manifests';
import { freePort } from '../test/e2e/helpers';

const ROOT = path.resolve(__dirname, '..');

export interface LoadResult {
  readonly requests: number;
  readonly seconds: number;
  readonly rps: number;
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  /** Socket errors, timeouts and responses that were not the expected 307. */
  readonly errors: number;
}

/** A load run plus the CPU time the server process used during it (all its threads, user + system). */
export interface RunResult extends LoadResult {
  readonly serverCpuMs: number | null;
  /** Server CPU time per answered request: insensitive to other jobs taking turns on the CPUs. */
  readonly cpuUsPerRequest: number | null;
  /** The same, user time only (JavaScript, V8, libuv) and system time only (the kernel: sockets, file writes). */
  readonly userUsPerRequest: number | null;
  readonly systemUsPerRequest: number | null;
}

export interface HttpOptions {
  readonly rounds: number;
  readonly durationS: number;
  readonly warmupS: number;
  readonly connections: number;
  /** Use wrk if installed (default), or force the Node client. */
  readonly client: 'auto' | 'node';
}

/** One server (and request headers) under load, measured once per round. */
export interface HttpSubject {
  readonly key: 'baseline' | 'nginx' | 'gateway' | 'gateway-dnt';
  readonly label: string;
  readonly runs: RunResult[];
  /** Per round, this subject's req/s / the baseline's req/s (1 for the baseline itself). */
  readonly ratios: number[];
  readonly medianRps: number;
  readonly medianRatio: number;
  readonly medianP50Ms: number | null;
  readonly medianP99Ms: number | null;
  readonly medianCpuUsPerRequest: number | null;
  readonly medianUserUsPerRequest: number | null;
  readonly medianSystemUsPerRequest: number | null;
  /** Per round, this subject's CPU per request / the baseline's (1 for the baseline itself). */
  readonly cpuRatios: Array<number | null>;
  readonly medianCpuRatio: number | null;
  /** Per round, this subject's req/s / nginx's req/s; null when nginx is not installed. */
  readonly nginxRatios: number[] | null;
  readonly medianNginxRatio: number | null;
  readonly nginxCpuRatios: Array<number | null> | null;
  readonly medianNginxCpuRatio: number | null;
  /** Median over rounds of this subject's p50 / the baseline's p50 (and p99). */
  readonly medianP50Ratio: number | null;
  readonly medianP99Ratio: number | null;
}

export interface HttpResults {
  readonly client: string;
  readonly connections: number;
  readonly durationS: number;
  readonly rounds: number;
  readonly request: string;
  readonly manifestRules: number;
  readonly subjects: HttpSubject[];
  /** Events the gateway wrote (NDJSON lines), and the requests without DNT the client saw answered (warm-up included). */
  readonly eventsWritten: number;
  readonly gatewayRecordedRequests: number;
  /** nginx's version, or why it was left out. */
  readonly nginx: { readonly version: string | null; readonly skipped: string | null };
}

// ---------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------

const children = new Set<ChildProcess>();
let tempDir: string | null = null;

/** Last resort on an unexpected exit of the bench (Ctrl-C, crash): never leave a server or temp files behind. */
export function killChildren(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  if (tempDir !== null) {
    fs.rmSync(tempDir, { recursive: true, force: true });
    tempDir = null;
  }
}

export interface Server {
  readonly label: string;
  readonly child: ChildProcess;
  readonly port: number;
  stderr(): string;
}

/** Starts `node ARGS` from the repository root and waits for its `listening on http://127.0.0.1:PORT` line. */
export function startServer(label: string, args: string[], timeoutMs = 30_000): Promise<Server> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    children.add(child);
    child.once('exit', () => children.delete(child));
    let err = '';
    let done = false;
    const timer = setTimeout(() => finish(new Error(`${label} did not start within ${timeoutMs} ms:\n${err}`)), timeoutMs);
    const finish = (e: Error | null, port?: number) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (e) {
        child.kill('SIGKILL');
        reject(e);
      } else {
        resolve({ label, child, port: port!, stderr: () => err });
      }
    };
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (s: string) => {
      if (err.length < 64 * 1024) err += s;
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(err);
      if (m) finish(null, Number(m[1]));
    });
    child.once('error', (e) => finish(e));
    child.once('exit', (code, signal) => finish(new Error(`${label} exited (${code ?? signal}) before listening:\n${err}`)));
  });
}

export async function stopServer(s: Server): Promise<void> {
  const c = s.child;
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
  c.kill('SIGTERM');
  const timer = setTimeout(() => c.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

// ---------------------------------------------------------------------------------------------
// nginx
// ---------------------------------------------------------------------------------------------

export function nginxVersion(): string | null {
  const r = spawnSync('nginx', ['-v'], { encoding: 'utf8' });
  if (r.error) return null;
  const m = /nginx\/(\S+)/.exec(`${r.stdout}${r.stderr}`);
  return m ? m[1] : 'unknown';
}


function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

/** Pids of the children of `pid` (nginx's worker), from /proc. */
function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/**
 * nginx as the second baseline: one worker, `return 307` with the gateway's headers, no access
 * log, keep-alive without a request limit (as Node's), every path in a temp dir, in the
 * foreground as our child. nginx adds its small HTML body to a 307; the Node servers send none.
 */
async function startNginx(dir: string, location: string): Promise<Server & { workerPid: () => number | undefined }> {
  fs.mkdirSync(dir, { recursive: true });
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const t = (name: string) => path.join(dir, name);
    const conf = [
      'worker_processes 1;',
      'daemon off;',
      `pid ${t('nginx.pid')};`,
      `error_log ${t('error.log')} warn;`,
      'events { worker_connections 1024; }',
      'http {',
      '  access_log off;',
      '  server_tokens off;',
      '  keepalive_timeout 5s;',
      '  keepalive_requests 100000000;',
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((k) => `  ${k}_temp_path ${t(`${k}-temp`)};`),
      '  server {',
      `    listen 127.0.0.1:${port};`,
      '    location / {',
      '      add_header Cache-Control "private, no-store" always;',
      `      return 307 ${location};`,
      '    }',
      '  }',
      '}',
    ].join('\n');
    fs.writeFileSync(t('nginx.conf'), `${conf}\n`);
    const child = spawn('nginx', ['-p', dir, '-c', t('nginx.conf'), '-e', t('error.log')], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.add(child);
    child.once('exit', () => children.delete(child));
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (x: string) => (err += x));
    const deadline = Date.now() + 10_000;
    let up = false;
    while (Date.now() < deadline && child.exitCode === null && child.signalCode === null) {
      if (await canConnect(port)) {
        up = true;
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    const log = () => `${err}${fs.existsSync(t('error.log')) ? fs.readFileSync(t('error.log'), 'utf8') : ''}`;
    if (up) {
      const pid = child.pid!;
      return { label: 'nginx', child, port, stderr: log, workerPid: () => childPids(pid)[0] };
    }
    child.kill('SIGKILL');
    if (/Address already in use/.test(log()) && attempt < 3) continue;
    throw new Error(`nginx did not start: ${log()}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

function probe(port: number, host: string, target: string): Promise<{ status: number; location: string | undefined; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: target, headers: { host, 'user-agent': 'curl/8.5.0' }, agent: false }, (res) => {
      res.resume();
      res.once('end', () => resolve({ status: res.statusCode ?? 0, location: res.headers.location, headers: res.headers }));
    });
    req.once('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('probe timed out')));
  });
}

export function wrkVersion(): string | null {
  const r = spawnSync('wrk', ['--version'], { encoding: 'utf8' });
  if (r.error) return null;
  const m = /wrk\s+(\S+)/.exec(`${r.stdout}${r.stderr}`);
  return m ? m[1] : 'unknown';
}

function toMs(value: string, unit: string): number {
  const v = Number(value);
  return unit === 'us' ? v / 1000 : unit === 's' ? v * 1000 : unit === 'm' ? v * 60_000 : v;
}

export function parseWrk(out: string): LoadResult {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m),/.exec(out);
  if (!rps || !total) throw new Error(`cannot read wrk output:\n${out}`);
  const pct = (p: string) => {
    const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(out);
    return m ? toMs(m[1], m[2]) : null;
  };
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const errors = (sock ? sock.slice(1).reduce((n, x) => n + Number(x), 0) : 0) + (non ? Number(non[1]) : 0);
  return { requests: Number(total[1]), seconds: toMs(total[2], total[3]) / 1000, rps: Number(rps[1]), p50Ms: pct('50'), p99Ms: pct('99'), errors };
}

function runWrk(port: number, host: string, target: string, extraHeaders: Record<string, string>, connections: number, seconds: number): Promise<LoadResult> {
  return runWrkLoad(port, target, { Host: host, 'User-Agent': 'curl/8.5.0', ...extraHeaders }, connections, seconds);
}

/** Remembers a child process so that an interrupted bench kills it (killChildren). */
export function trackChild(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
}

/** wrk, one thread, `connections` connections for `seconds` on http://127.0.0.1:port/target with these headers. */
export function runWrkLoad(port: number, target: string, requestHeaders: Record<string, string>, connections: number, seconds: number): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const headers = Object.entries(requestHeaders).flatMap(([k, v]) => ['-H', `${k}: ${v}`]);
    const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '--timeout', '5s', ...headers, `http://127.0.0.1:${port}${target}`];
    const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (out += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), (seconds + 30) * 1000);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      children.delete(child);
      if (code !== 0) return reject(new Error(`wrk exited with ${code}:\n${out}`));
      try {
        resolve(parseWrk(out));
      } catch (e) {
        reject(e);
      }
    });
  });
}

/** Fallback client: `connections` keep-alive connections, each sending its next request as soon as the previous answer ends. */
async function runNodeClient(port: number, host: string, target: string, extraHeaders: Record<string, string>, connections: number, seconds: number): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections, maxFreeSockets: connections });
  const latencies: number[] = [];
  let errors = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  const one = () =>
    new Promise<void>((resolve) => {
      const t0 = performance.now();
      const req = http.request({ host: '127.0.0.1', port, path: target, method: 'GET', agent, headers: { host, 'user-agent': 'curl/8.5.0', ...extraHeaders } }, (res) => {
        res.resume();
        res.once('end', () => {
          if (res.statusCode === 307) latencies.push(performance.now() - t0);
          else errors++;
          resolve();
        });
      });
      req.once('error', () => {
        errors++;
        resolve();
      });
      req.end();
    });
  const worker = async () => {
    while (performance.now() < end) await one();
  };
  await Promise.all(Array.from({ length: connections }, worker));
  const elapsed = (performance.now() - start) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const at = (q: number) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] : null);
  return { requests: latencies.length, seconds: elapsed, rps: latencies.length / elapsed, p50Ms: at(0.5), p99Ms: at(0.99), errors };
}

let clockTicks: number | null | undefined;

/** Clock ticks per second of /proc/<pid>/stat times. */
function ticksPerSecond(): number | null {
  if (clockTicks === undefined) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    const n = Number(r.stdout?.trim());
    clockTicks = !r.error && Number.isInteger(n) && n > 0 ? n : 100;
  }
  return clockTicks;
}

/** User + system CPU time of a process (all threads) in ms, from /proc (Linux); null elsewhere. */
export function processCpuMs(pid: number | undefined): number | null {
  const t = processCpuSplitMs(pid);
  return t && t.userMs + t.systemMs;
}

/** User and system CPU time of a process (all threads) from /proc, in ms; null where unavailable. */
export function processCpuSplitMs(pid: number | undefined): { userMs: number; systemMs: number } | null {
  if (pid === undefined) return null;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which is in parentheses and may contain spaces).
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const user = Number(f[11]); // utime (field 14)
    const system = Number(f[12]); // stime (field 15)
    const hz = ticksPerSecond();
    return Number.isFinite(user) && Number.isFinite(system) && hz ? { userMs: (user * 1000) / hz, systemMs: (system * 1000) / hz } : null;
  } catch {
    return null;
  }
}

function countLines(dir: string): number {
  let n = 0;
  if (!fs.existsSync(dir)) return 0;
  const buf = Buffer.alloc(1 << 20);
  const files: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(d, e.name));
      else if (e.isFile()) files.push(path.join(d, e.name));
    }
  };
  walk(dir);
  for (const file of files) {
    const fd = fs.openSync(file, 'r');
    try {
      for (let r = fs.readSync(fd, buf); r > 0; r = fs.readSync(fd, buf)) {
        for (let i = buf.indexOf(10); i >= 0 && i < r; i = buf.indexOf(10, i + 1)) n++;
      }
    } finally {
      fs.closeSync(fd);
    }
  }
  return n;
}

const medianOrNull = (xs: Array<number | null>): number | null => {
  const v = xs.filter((x): x is number => x !== null);
  return v.length ? median(v) : null;
};

// ---------------------------------------------------------------------------------------------

export async function benchHttp(opts: HttpOptions, progress: (m: string) => void): Promise<HttpResults> {
  const useWrk = opts.client === 'auto' && wrkVersion() !== null;
  const clientName = useWrk ? `wrk ${wrkVersion()} (1 thread)` : 'node keep-alive client (in the bench process)';
  const host = mixedHost.files(lastMixedIndex('files'));
  const target = '/rocket/1.2.3/rocket-linux-amd64.tar.gz';
  const location = 'https://github.com/acme/rocket/releases/download/v1.2.3/rocket-linux-amd64.tar.gz';
  const load = (port: number, extraHeaders: Record<string, string>, seconds: number) =>
    useWrk
      ? runWrk(port, host, target, extraHeaders, opts.connections, seconds)
      : runNodeClient(port, host, target, extraHeaders, opts.connections, seconds);

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'artifact-gateway-bench-'));
  tempDir = tmp;
  const servers: Server[] = [];
  let nginxSkipped: string | null = null;
  try {
    const doc = mixedManifest(1000);
    const manifestFile = path.join(tmp, 'manifest.json');
    fs.writeFileSync(manifestFile, JSON.stringify(doc));
    const eventsDir = path.join(tmp, 'events');

    progress('starting the gateway and the baseline server');
    const gateway = await startServer('gateway', ['--import', 'tsx', 'bin/cli.ts', 'serve', '--manifest', manifestFile, '--port', '0', '--host', '127.0.0.1', '--events', eventsDir]);
    servers.push(gateway);
    const baseline = await startServer('baseline server', ['--import', 'tsx', 'bench/baseline-server.ts', '--host', '127.0.0.1', '--port', '0', '--location', location]);
    servers.push(baseline);

    const nginxVer = nginxVersion();
    let nginx: Awaited<ReturnType<typeof startNginx>> | null = null;
    if (nginxVer === null) nginxSkipped = 'nginx is not installed (apt-get install -y nginx); the nginx baseline is left out';
    else {
      try {
        nginx = await startNginx(path.join(tmp, 'nginx'), location);
        servers.push(nginx);
      } catch (e) {
        nginxSkipped = `nginx did not start, so the nginx baseline is left out: ${(e as Error).message}`;
      }
    }
    if (nginxSkipped) progress(nginxSkipped);

    for (const s of nginx ? [gateway, baseline, nginx] : [gateway, baseline]) {
      const p = await probe(s.port, host, target);
      if (p.status !== 307 || p.location !== location) {
        throw new Error(`${s.label} answered ${p.status} ${p.location ?? ''} instead of 307 ${location}\n${s.stderr()}`);
      }
    }

    const subjects: Array<{ key: HttpSubject['key']; label: string; port: number; headers: Record<string, string>; pid: () => number | undefined }> = [
      { key: 'baseline', label: 'baseline (plain 307 server)', port: baseline.port, headers: {}, pid: () => baseline.child.pid },
      ...(nginx ? [{ key: 'nginx' as const, label: 'nginx return 307 (1 worker)', port: nginx.port, headers: {}, pid: nginx.workerPid }] : []),
      { key: 'gateway', label: 'gateway', port: gateway.port, headers: {}, pid: () => gateway.child.pid },
      // Diagnostic: the same gateway and request with DNT: 1, which the gateway serves without
      // recording an event, so the difference to "gateway" is the cost of the events.
      { key: 'gateway-dnt', label: 'gateway, DNT: 1 (no event)', port: gateway.port, headers: { DNT: '1' }, pid: () => gateway.child.pid },
    ];
    const runs = subjects.map(() => [] as RunResult[]);
    const measure = async (port: number, headers: Record<string, string>, seconds: number, pid: number | undefined): Promise<RunResult> => {
      const before = processCpuSplitMs(pid);
      const res = await load(port, headers, seconds);
      const after = processCpuSplitMs(pid);
      const perRequest = (ms: number | null) => (ms !== null && res.requests > 0 ? (ms * 1000) / res.requests : null);
      const user = before && after ? after.userMs - before.userMs : null;
      const system = before && after ? after.systemMs - before.systemMs : null;
      const cpu = user !== null && system !== null ? user + system : null;
      return { ...res, serverCpuMs: cpu, cpuUsPerRequest: perRequest(cpu), userUsPerRequest: perRequest(user), systemUsPerRequest: perRequest(system) };
    };
    let recorded = 1; // the probe
    progress(`warm-up, ${opts.warmupS} s per server`);
    recorded += (await load(gateway.port, {}, opts.warmupS)).requests;
    await load(baseline.port, {}, opts.warmupS);
    if (nginx) await load(nginx.port, {}, opts.warmupS);

    for (let r = 0; r < opts.rounds; r++) {
      progress(`round ${r + 1}/${opts.rounds}`);
      // Rotate the order of the subjects from round to round.
      for (let k = 0; k < subjects.length; k++) {
        const i = (k + r) % subjects.length;
        const res = await measure(subjects[i].port, subjects[i].headers, opts.durationS, subjects[i].pid());
        runs[i].push(res);
        if (subjects[i].key === 'gateway') recorded += res.requests;
      }
    }

    for (const s of servers.splice(0)) await stopServer(s);
    const eventsWritten = countLines(eventsDir);
    const base = runs[0];
    const nginxIndex = subjects.findIndex((s) => s.key === 'nginx');
    const ref = nginxIndex >= 0 ? runs[nginxIndex] : null;
    const ratioOf = (xs: RunResult[], ys: RunResult[], f: (r: RunResult) => number | null) =>
      xs.map((x, round) => {
        const a = f(x);
        const b = f(ys[round]);
        return a !== null && b ? a / b : null;
      });
    return {
      client: clientName,
      connections: opts.connections,
      durationS: opts.durationS,
      rounds: opts.rounds,
      request: `GET http://${host}${target}`,
      manifestRules: doc.rules.length,
      subjects: subjects.map((s, i) => {
        const ratios = runs[i].map((x, round) => x.rps / base[round].rps);
        const cpuRatios = runs[i].map((x, round) => {
          const b = base[round].cpuUsPerRequest;
          return x.cpuUsPerRequest !== null && b ? x.cpuUsPerRequest / b : null;
        });
        return {
          key: s.key,
          label: s.label,
          runs: runs[i],
          ratios,
          medianRps: median(runs[i].map((x) => x.rps)),
          medianRatio: median(ratios),
          medianP50Ms: medianOrNull(runs[i].map((x) => x.p50Ms)),
          medianP99Ms: medianOrNull(runs[i].map((x) => x.p99Ms)),
          medianCpuUsPerRequest: medianOrNull(runs[i].map((x) => x.cpuUsPerRequest)),
          medianUserUsPerRequest: medianOrNull(runs[i].map((x) => x.userUsPerRequest)),
          medianSystemUsPerRequest: medianOrNull(runs[i].map((x) => x.systemUsPerRequest)),
          cpuRatios,
          medianCpuRatio: medianOrNull(cpuRatios),
          nginxRatios: ref ? runs[i].map((x, round) => x.rps / ref[round].rps) : null,
          medianNginxRatio: ref ? median(runs[i].map((x, round) => x.rps / ref[round].rps)) : null,
          nginxCpuRatios: ref ? ratioOf(runs[i], ref, (r) => r.cpuUsPerRequest) : null,
          medianNginxCpuRatio: ref ? medianOrNull(ratioOf(runs[i], ref, (r) => r.cpuUsPerRequest)) : null,
          medianP50Ratio: medianOrNull(ratioOf(runs[i], base, (r) => r.p50Ms)),
          medianP99Ratio: medianOrNull(ratioOf(runs[i], base, (r) => r.p99Ms)),
        };
      }),
      eventsWritten,
      gatewayRecordedRequests: recorded,
      nginx: { version: nginxVer, skipped: nginxSkipped },
    };
  } finally {
    for (const s of servers) await stopServer(s);
    fs.rmSync(tmp, { recursive: true, force: true });
    tempDir = null;
  }
}
