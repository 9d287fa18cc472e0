/**
 * Shared helpers of the end-to-end tests: the gateway runs as a real child process exactly as
 * users start it (`node --import tsx bin/cli.ts serve ...`), clients are curl and node's http/net.
 * Every server listens on 127.0.0.1 only and is stopped by the test that started it.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');
export const CLI = 'bin/cli.ts';
export const LOCAL = '127.0.0.1';

// ---------------------------------------------------------------------------------------------
// Temp dirs, ports, polling

export function makeTempDir(prefix = 'gw-e2e-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function removeDir(dir: string | undefined): void {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}

export function writeJson(file: string, value: unknown): string {
  fs.writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
  return file;
}

/** A port that was free a moment ago (bound on 127.0.0.1, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, LOCAL, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export function canConnect(port: number, host = LOCAL): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

export const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `probe` until it returns a non-undefined value, or throws after `timeoutMs` with `what`. */
export async function pollUntil<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 5_000, everyMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(everyMs);
  }
}

// ---------------------------------------------------------------------------------------------
// The CLI as a one-shot command

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the CLI once. `input`: its standard input (none when undefined); `env`: the environment
 * (default: this process's); killed after `timeoutMs`.
 */
export function runCli(args: string[], opts: { cwd?: string; timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, CLI), ...args], {
      cwd: opts.cwd ?? ROOT,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: { ...(opts.env ?? process.env), NO_COLOR: '1' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 20_000);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// The gateway as a long-running process

export interface GatewayOptions {
  /** Omit to use the bundled example manifest (no --manifest). */
  manifest?: string;
  /** Directory or '-' (stdout). */
  events: string;
  /** `HOST=BASE` values for --upstream. */
  upstreams?: string[];
  extraArgs?: string[];
  /** Use this port instead of finding a free one. */
  port?: number;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class Gateway {
  stdout = '';
  stderr = '';
  exit: Exit | null = null;
  private readonly exited: Promise<Exit>;

  constructor(readonly proc: ChildProcess, readonly port: number) {
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => (this.stdout += d));
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.exited = new Promise((resolve) => {
      // 'close': the process exited and its stdout/stderr are fully read.
      proc.once('close', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
  }

  get pid(): number {
    return this.proc.pid!;
  }

  get base(): string {
    return `http://${LOCAL}:${this.port}`;
  }

  url(p: string): string {
    return `${this.base}${p}`;
  }

  running(): boolean {
    return this.exit === null;
  }

  /** Waits for a line of stderr matching `re` (counting only output after `fromOffset`). */
  waitForStderr(re: RegExp, timeoutMs = 5_000, fromOffset = 0): Promise<string> {
    return pollUntil(`stderr matching ${re} (stderr so far: ${JSON.stringify(this.stderr.slice(fromOffset))})`, () => {
      const m = re.exec(this.stderr.slice(fromOffset));
      return m ? m[0] : undefined;
    }, timeoutMs);
  }

  waitExit(timeoutMs = 10_000): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`gateway (pid ${this.pid}) did not exit within ${timeoutMs} ms`)), timeoutMs);
    });
    return Promise.race([this.exited, timeout]).finally(() => clearTimeout(timer));
  }

  /** SIGTERM and wait for the exit (the caller asserts the status). */
  async stop(timeoutMs = 10_000): Promise<Exit> {
    if (this.exit) return this.exit;
    this.proc.kill('SIGTERM');
    return this.waitExit(timeoutMs);
  }

  /** Last resort in afterAll: SIGKILL this process if it is still running. */
  async kill(): Promise<void> {
    if (this.exit) return;
    this.proc.kill('SIGKILL');
    await this.exited;
  }
}

export function serveArgs(o: GatewayOptions, port: number): string[] {
  const args = ['serve'];
  if (o.manifest !== undefined) args.push('--manifest', o.manifest);
  args.push('--port', String(port), '--host', LOCAL, '--events', o.events);
  for (const u of o.upstreams ?? []) args.push('--upstream', u);
  args.push(...(o.extraArgs ?? []));
  return args;
}

/**
 * Starts `node --import tsx bin/cli.ts serve ...` (cwd = project root) on a free port and waits
 * until the port accepts TCP connections (at most 15 s, the contract's limit).
 */
export async function startGateway(o: GatewayOptions): Promise<Gateway> {
  for (let attempt = 0; ; attempt++) {
    const port = o.port ?? (await freePort());
    const proc = spawn(process.execPath, ['--import', 'tsx', CLI, ...serveArgs(o, port)], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1' },
    });
    const gw = new Gateway(proc, port);
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline && gw.running()) {
      if (await canConnect(port)) return gw;
      await delay(25);
    }
    if (gw.running()) {
      await gw.kill();
      throw new Error(`gateway not ready within 15 s; stderr: ${gw.stderr}`);
    }
    // Lost a race for the port with another process: try another one (only when we chose it).
    if (o.port === undefined && /already in use/.test(gw.stderr) && attempt < 3) continue;
    throw new Error(`gateway exited before it was ready (${JSON.stringify(gw.exit)}); stderr: ${gw.stderr}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Events

export interface GatewayEventJson {
  id: string;
  time: string;
  kind: string;
  action: string;
  download: boolean;
  package_id: string | null;
  auto_create_rule_id: string | null;
  domain: string;
  method: string;
  path: string;
  status: number;
  target: string | null;
  image: string | null;
  reference: string | null;
  upstream: string | null;
  file_name: string | null;
  version: string | null;
  variables: Record<string, string>;
  body_event: Record<string, unknown> | null;
  pixel_id: string | null;
  client_name: string | null;
  client_version: string | null;
  os: string | null;
  arch: string | null;
  ci: boolean | null;
  visitor_id: string | null;
  [k: string]: unknown;
}

/** Every event file under DIR (`DIR/dt=YYYY-MM-DD/*.ndjson`), with its path. */
export function eventFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  const out: string[] = [];
  for (const day of fs.readdirSync(dir).sort()) {
    const d = path.join(dir, day);
    if (!fs.statSync(d).isDirectory()) continue;
    for (const f of fs.readdirSync(d).sort()) out.push(path.join(d, f));
  }
  return out;
}

export function parseNdjson(text: string): GatewayEventJson[] {
  // Only complete lines: a line still being written is picked up by the next poll.
  const complete = text.slice(0, text.lastIndexOf('\n') + 1);
  return complete.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as GatewayEventJson);
}

export function readEvents(dir: string): GatewayEventJson[] {
  return eventFiles(dir).flatMap((f) => parseNdjson(fs.readFileSync(f, 'utf8')));
}

/** Raw text of every event file (for privacy checks). */
export function readEventText(dir: string): string {
  return eventFiles(dir).map((f) => fs.readFileSync(f, 'utf8')).join('');
}

/** Waits until at least `count` events satisfy `pred`; returns them. */
export function waitForEvents(dir: string, pred: (e: GatewayEventJson) => boolean, count = 1, timeoutMs = 5_000): Promise<GatewayEventJson[]> {
  return pollUntil(`${count} event(s) in ${dir} (have: ${JSON.stringify(readEvents(dir).map((e) => `${e.method} ${e.domain}${e.path} ${e.kind}/${e.action}`))})`, () => {
    const found = readEvents(dir).filter(pred);
    return found.length >= count ? found : undefined;
  }, timeoutMs, 10);
}

let markerSeq = 0;
/**
 * A unique path for a "marker" request. Events are written in response order by one process, so
 * once the marker's event is on disk, the events of every request answered before it are too:
 * absence of an event can be checked without sleeping.
 */
export function markerPath(): string {
  return `/__marker__/${process.pid}-${Date.now()}-${markerSeq++}`;
}

// ---------------------------------------------------------------------------------------------
// Clients

export interface CurlResponse {
  status: number;
  /** Header names lower case; repeated headers joined in order with ", " (see rawHeaders). */
  headers: Record<string, string>;
  /** [name, value] in order as received. */
  rawHeaders: Array<[string, string]>;
  body: Buffer;
  /** The status line and header lines exactly as received. */
  head: string;
}

/** Runs curl (never following redirects unless `-L` is passed) and returns its raw results. */
export function curlRaw(args: string[], timeoutMs = 20_000): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['--max-time', String(Math.ceil(timeoutMs / 1000)), ...args], { encoding: 'buffer', maxBuffer: 256 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException).code === 'number' ? Number((err as NodeJS.ErrnoException).code) : 1) : 0;
      resolve({ code, stdout: stdout as Buffer, stderr: (stderr as Buffer).toString('utf8') });
    });
  });
}

export function parseHttpHead(headText: string): Pick<CurlResponse, 'status' | 'headers' | 'rawHeaders'> {
  const lines = headText.split('\r\n');
  const m = /^HTTP\/[\d.]+ (\d{3})/.exec(lines[0]);
  if (!m) throw new Error(`not an HTTP status line: ${JSON.stringify(lines[0])}`);
  const rawHeaders: Array<[string, string]> = [];
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    if (line === '') continue;
    const i = line.indexOf(':');
    const name = line.slice(0, i).trim().toLowerCase();
    const value = line.slice(i + 1).trim();
    rawHeaders.push([name, value]);
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return { status: Number(m[1]), headers, rawHeaders };
}

/** `curl -s -i [args] url`: status, headers and body of the (single) response. */
export async function curl(url: string, args: string[] = [], timeoutMs = 20_000): Promise<CurlResponse> {
  const r = await curlRaw(['-s', '-i', ...args, url], timeoutMs);
  if (r.code !== 0) throw new Error(`curl ${args.join(' ')} ${url} failed with exit ${r.code}: ${r.stderr}`);
  let out = r.stdout;
  // Skip interim 1xx responses.
  for (;;) {
    const end = out.indexOf('\r\n\r\n');
    if (end < 0) throw new Error(`no header block in curl output: ${out.toString('utf8').slice(0, 200)}`);
    const head = out.subarray(0, end).toString('latin1');
    const rest = out.subarray(end + 4);
    const parsed = parseHttpHead(head);
    if (parsed.status >= 100 && parsed.status < 200) {
      out = rest;
      continue;
    }
    return { ...parsed, body: rest, head };
  }
}

/** `curl -s -o /dev/null -w '%{http_code}'`: just the status. */
export async function curlStatus(url: string, args: string[] = []): Promise<number> {
  const r = await curlRaw(['-s', '-o', '/dev/null', '-w', '%{http_code}', ...args, url]);
  if (r.code !== 0) throw new Error(`curl ${url} failed with exit ${r.code}: ${r.stderr}`);
  return Number(r.stdout.toString('utf8'));
}

export interface NodeResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
}

/**
 * One request with node's http module. `headers` may repeat a name through an array value
 * (sent as separate header lines, in order). A fresh connection per request (agent: false).
 */
export function request(port: number, opts: { method?: string; path: string; headers?: http.OutgoingHttpHeaders; body?: string | Buffer; timeoutMs?: number }): Promise<NodeResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: LOCAL, port, method: opts.method ?? 'GET', path: opts.path, headers: opts.headers, agent: false });
    req.setTimeout(opts.timeoutMs ?? 20_000, () => req.destroy(new Error(`request ${opts.path} timed out`)));
    req.once('error', reject);
    req.once('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('end', () => resolve({ status: res.statusCode!, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks) }));
      res.once('error', reject);
    });
    req.end(opts.body);
  });
}

/** Writes raw bytes to a TCP connection and collects everything until the server closes it (or `timeoutMs`). */
export function rawExchange(port: number, bytes: string | Buffer, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host: LOCAL });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(Buffer.concat(chunks).toString('latin1'));
    }, timeoutMs);
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.once('error', (e) => {
      // A reset after the answer still counts as an answer.
      clearTimeout(timer);
      if (chunks.length) resolve(Buffer.concat(chunks).toString('latin1'));
      else reject(e);
    });
    sock.once('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
    sock.once('connect', () => sock.write(bytes));
  });
}

// ---------------------------------------------------------------------------------------------
// A real upstream HTTP server for the proxy tests

export interface SeenRequest {
  method: string;
  /** Request target exactly as received (raw path and raw query). */
  url: string;
  /** [name, value] pairs exactly as received, in order. */
  rawHeaders: Array<[string, string]>;
  body: Buffer;
}

export interface Upstream {
  port: number;
  base: string;
  seen: SeenRequest[];
  close(): Promise<void>;
}

export function headerValues(req: SeenRequest, name: string): string[] {
  return req.rawHeaders.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
}

/** Starts an HTTP server on 127.0.0.1 that records every request and answers with `handler`. */
export async function startUpstream(handler: (req: http.IncomingMessage, res: http.ServerResponse, seen: SeenRequest) => void): Promise<Upstream> {
  const seen: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    const rawHeaders: Array<[string, string]> = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2) rawHeaders.push([req.rawHeaders[i], req.rawHeaders[i + 1]]);
    const chunks: Buffer[] = [];
    // Bodies are collected for the log; handlers that stream must not depend on 'end' here.
    req.on('data', (c: Buffer) => chunks.push(c));
    const s: SeenRequest = { method: req.method!, url: req.url!, rawHeaders, body: Buffer.alloc(0) };
    req.once('end', () => (s.body = Buffer.concat(chunks)));
    seen.push(s);
    handler(req, res, s);
  });
  await new Promise<void>((resolve) => server.listen(0, LOCAL, resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    base: `http://${LOCAL}:${port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** RSS of a process in bytes, from /proc/PID/status (VmRSS). */
export function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}
