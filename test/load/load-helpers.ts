/**
 * Helpers of the load and fault tests: wrk as the load generator (with a Lua script that checks
 * every answer), a Node keep-alive load client for checks per response, and what the tests read
 * from /proc about the gateway process (resident memory, open file descriptors and sockets).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { LOCAL, delay } from '../e2e/helpers';

// ---------------------------------------------------------------------------------------------
// wrk

/**
 * Counts the answers that are exactly the expected redirect (status 307 and `Location`); wrk
 * itself counts socket errors and statuses >= 400. One line of totals at the end, over all threads.
 */
const WRK_SCRIPT = `
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) expected = args[1]; good = 0; bad = 0 end
function response(status, headers, body)
  local location = headers["location"] or headers["Location"]
  if status == 307 and location == expected then good = good + 1 else bad = bad + 1 end
end
function done(summary, latency, requests)
  local g, b = 0, 0
  for _, t in ipairs(threads) do g = g + t:get("good"); b = b + t:get("bad") end
  local e = summary.errors
  io.write(string.format("WRK_RESULT %d %d %d %d %d %d %d %d %d\\n", summary.requests, summary.duration, g, b, e.connect, e.read, e.write, e.status, e.timeout))
end
`;

export interface WrkResult {
  /** Responses wrk read completely. */
  requests: number;
  durationS: number;
  requestsPerSecond: number;
  /** Answers that were the expected 307 with the expected Location, and the others. */
  good: number;
  bad: number;
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
  output: string;
}

export interface WrkOptions {
  url: string;
  host: string;
  expectLocation: string;
  connections: number;
  threads: number;
  durationS: number;
  /** Where the Lua script is written. */
  scriptDir: string;
}

export function runWrk(o: WrkOptions): Promise<WrkResult> {
  const script = path.join(o.scriptDir, 'check-redirect.lua');
  fs.writeFileSync(script, WRK_SCRIPT);
  const args = ['-t', String(o.threads), '-c', String(o.connections), '-d', `${o.durationS}s`, '--timeout', '5s', '-s', script, '-H', `Host: ${o.host}`, o.url, '--', o.expectLocation];
  return new Promise((resolve, reject) => {
    execFile('wrk', args, { timeout: (o.durationS + 30) * 1000 }, (err, stdout, stderr) => {
      const m = /^WRK_RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)$/m.exec(stdout);
      if (err || !m) return reject(new Error(`wrk failed (${err?.message ?? 'no result line'}): ${stdout} ${stderr}`));
      const [requests, durationUs, good, bad, connect, read, write, status, timeout] = m.slice(1).map(Number);
      resolve({
        requests, durationS: durationUs / 1e6, requestsPerSecond: requests / (durationUs / 1e6), good, bad,
        errors: { connect, read, write, status, timeout }, output: stdout,
      });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// /proc

/** Resident memory of a process in bytes (VmRSS). */
export function rssOf(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** Samples a process's RSS every `everyMs` until stopped; `samples[i]` is taken about i * everyMs after start. */
export class RssSampler {
  readonly samples: number[] = [];
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly pid: number, everyMs = 1_000) {
    this.samples.push(rssOf(pid));
    this.timer = setInterval(() => {
      try {
        this.samples.push(rssOf(this.pid));
      } catch {
        // The process is gone; the test notices elsewhere.
      }
    }, everyMs);
  }

  stop(): number[] {
    clearInterval(this.timer);
    return this.samples;
  }
}

export interface FdCount {
  /** Every open file descriptor. */
  total: number;
  /** Those that are sockets (listening, client and upstream connections). */
  sockets: number;
}

export function fdsOf(pid: number): FdCount {
  const dir = `/proc/${pid}/fd`;
  let total = 0;
  let sockets = 0;
  for (const fd of fs.readdirSync(dir)) {
    let target: string;
    try {
      target = fs.readlinkSync(path.join(dir, fd));
    } catch {
      continue; // closed between readdir and readlink
    }
    total++;
    if (target.startsWith('socket:')) sockets++;
  }
  return { total, sockets };
}

/**
 * Waits until the process has at most `baseline + slack` descriptors and sockets (connections
 * close asynchronously: the last ones a moment after the last answer), and returns the count
 * then, or the last count seen after `timeoutMs`.
 */
export async function settledFds(pid: number, baseline: FdCount, slack: number, timeoutMs = 10_000): Promise<FdCount> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const now = fdsOf(pid);
    if ((now.total <= baseline.total + slack && now.sockets <= baseline.sockets + slack) || Date.now() > deadline) return now;
    await delay(100);
  }
}

// ---------------------------------------------------------------------------------------------
// A Node load client

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/**
 * `connections` loops, each on its own keep-alive connection, sending requests back to back
 * until `stop()`. `next(i)` gives the i-th request's path and headers; `check` returns null for a
 * right answer or a description of what is wrong. Every answer and every failure is counted.
 */
export class LoadClient {
  answered = 0;
  readonly failures: string[] = [];
  private running = true;
  private readonly loops: Promise<void>[];
  private readonly agent: http.Agent;
  private seq = 0;

  constructor(
    readonly port: number,
    connections: number,
    private readonly next: (i: number) => { path: string; headers: http.OutgoingHttpHeaders },
    private readonly check: (answer: Answer, path: string) => string | null,
    private readonly timeoutMs = 10_000,
  ) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets: connections });
    this.loops = Array.from({ length: connections }, () => this.loop());
  }

  private async loop(): Promise<void> {
    while (this.running) {
      const i = this.seq++;
      const { path: p, headers } = this.next(i);
      try {
        const a = await this.send(p, headers);
        const wrong = this.check(a, p);
        if (wrong === null) this.answered++;
        else this.failures.push(`${p}: ${wrong}`);
      } catch (e) {
        this.failures.push(`${p}: ${(e as Error).message}`);
      }
    }
  }

  private send(p: string, headers: http.OutgoingHttpHeaders): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const req = http.request({ host: LOCAL, port: this.port, path: p, headers, agent: this.agent });
      req.setTimeout(this.timeoutMs, () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.once('error', reject);
      req.once('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.once('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
        res.once('error', reject);
      });
      req.end();
    });
  }

  /** Stops sending; resolves when every loop's last request is answered. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    this.agent.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// Events

/** Lines of every NDJSON event file under `dir` that contain `needle`, read in chunks (the files reach hundreds of MB). */
export async function countEventLines(dir: string, needle: string): Promise<number> {
  let count = 0;
  const files: string[] = [];
  if (fs.existsSync(dir)) {
    for (const day of fs.readdirSync(dir)) {
      const d = path.join(dir, day);
      if (fs.statSync(d).isDirectory()) for (const f of fs.readdirSync(d)) files.push(path.join(d, f));
    }
  }
  for (const f of files) {
    let rest = '';
    for await (const chunk of fs.createReadStream(f, { encoding: 'utf8', highWaterMark: 1 << 20 })) {
      const text = rest + (chunk as string);
      const lines = text.split('\n');
      rest = lines.pop()!;
      for (const l of lines) if (l.includes(needle)) count++;
    }
  }
  return count;
}
