/**
 * Upstream faults: an upstream that hangs (no answer; headers then a stalled body), resets the
 * connection (before the headers, mid-body) or answers garbage (not HTTP, a bad status line, bad
 * chunked encoding, a Content-Length it does not keep), behind the three kinds of upstream
 * request the gateway makes: the docker proxy (docker-v1, proxied for skopeo), a buffered fetch
 * (python-index-v1 project pages) and a streamed fetch (npm-v1 packuments).
 *
 * Each gets a clean 502 or 504 within --upstream-timeout plus slack, or, once the headers have
 * been relayed, a cut-off response (never a hang); the gateway keeps serving; and after a few
 * hundred faulty requests its file descriptors and sockets are back to where they were, and the
 * faulty upstream has no connection from it left open.
 */
import net from 'node:net';
import http from 'node:http';
import path from 'node:path';
import { Gateway, LOCAL, makeTempDir, pollUntil, removeDir, request, startGateway, writeJson } from '../e2e/helpers';
import { fdsOf, settledFds } from './load-helpers';

jest.setTimeout(120_000);

const TIMEOUT_S = 1;
/** Generous: a loaded 2-CPU CI machine, plus the client's own connection. */
const SLACK_MS = 4_000;
/** Keep-alive connections the gateway may keep to its healthy upstream, and descriptors Node opens lazily. */
const FD_SLACK = 8;

type Fault = 'hang' | 'stall-body' | 'reset-before-headers' | 'reset-mid-body' | 'not-http' | 'bad-status-line' | 'bad-chunked' | 'short-body' | 'long-body';
const FAULTS: Fault[] = ['hang', 'stall-body', 'reset-before-headers', 'reset-mid-body', 'not-http', 'bad-status-line', 'bad-chunked', 'short-body', 'long-body'];

/**
 * What the upstream does, by the fault named in the request path. `ok` answers a small valid
 * document of the kind asked for (a manifest, a project page, a packument).
 */
function startFaultyUpstream(): Promise<{ port: number; open: Map<net.Socket, string>; close: () => Promise<void> }> {
  /** Connections from the gateway still open, with the fault they were answered with. */
  const open = new Map<net.Socket, string>();
  const server = net.createServer((socket) => {
    open.set(socket, 'no request yet');
    socket.once('close', () => open.delete(socket));
    socket.on('error', () => undefined);
    let head = '';
    const onData = (d: Buffer) => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      socket.resume();
      const target = /^[A-Z]+ (\S+)/.exec(head)?.[1] ?? '/';
      if (target.endsWith('/big')) {
        open.set(socket, `big ${target}`);
        sendBig(socket);
        return;
      }
      const fault = FAULTS.find((f) => target.includes(`/${f}`)) ?? 'ok';
      open.set(socket, `${fault} ${target}`);
      answer(socket, fault, target);
    };
    socket.on('data', onData);
  });
  return new Promise((resolve) => server.listen(0, LOCAL, () => resolve({
    port: (server.address() as net.AddressInfo).port,
    open,
    close: () => new Promise<void>((r) => {
      for (const s of open.keys()) s.destroy();
      server.close(() => r());
    }),
  })));
}

const BIG = 8 * 1024 * 1024;

/** A healthy upstream with a large body, sent as fast as the gateway takes it. */
function sendBig(socket: net.Socket): void {
  socket.write(`HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${BIG}\r\n\r\n`);
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  let sent = 0;
  const pump = () => {
    while (sent < BIG) {
      sent += chunk.length;
      if (sent >= BIG) {
        socket.end(chunk);
        return;
      }
      if (!socket.write(chunk)) {
        socket.once('drain', pump);
        return;
      }
    }
  };
  pump();
}

function okBody(target: string): { type: string; body: string } {
  if (target.startsWith('/v2/')) return { type: 'application/vnd.oci.image.manifest.v1+json', body: '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}' };
  if (target.startsWith('/simple/')) return { type: 'text/html', body: '<!DOCTYPE html><html><body><a href="https://files.example/ok-1.0.tar.gz#sha256=00">ok-1.0.tar.gz</a></body></html>' };
  return { type: 'application/json', body: JSON.stringify({ name: 'ok', versions: { '1.0.0': { name: 'ok', version: '1.0.0', dist: { tarball: 'http://faulty-npm.test/ok/-/ok-1.0.0.tgz' } } } }) };
}

function answer(socket: net.Socket, fault: Fault | 'ok', target: string): void {
  const { type, body } = okBody(target);
  const headers = (length: number | 'chunked') => `HTTP/1.1 200 OK\r\nContent-Type: ${type}\r\n${length === 'chunked' ? 'Transfer-Encoding: chunked' : `Content-Length: ${length}`}\r\n\r\n`;
  switch (fault) {
    case 'ok':
      socket.end(`${headers(Buffer.byteLength(body))}${body}`);
      return;
    case 'hang':
      return; // reads the request, never answers
    case 'stall-body':
      socket.write(`${headers(Buffer.byteLength(body) + 1000)}${body.slice(0, 20)}`);
      return; // and nothing more
    case 'reset-before-headers':
      socket.resetAndDestroy();
      return;
    case 'reset-mid-body':
      socket.write(`${headers(Buffer.byteLength(body) + 1000)}${body.slice(0, 20)}`, () => setTimeout(() => socket.resetAndDestroy(), 20));
      return;
    case 'not-http':
      socket.end('SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n\r\n');
      return;
    case 'bad-status-line':
      socket.end(`HTTP/1.1 2x0 Maybe\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      return;
    case 'bad-chunked':
      socket.end(`${headers('chunked')}14\r\n${body.slice(0, 20)}\r\nzz-not-hex\r\n${body.slice(20)}\r\n0\r\n\r\n`);
      return;
    case 'short-body':
      socket.end(`${headers(Buffer.byteLength(body) + 1000)}${body}`);
      return;
    case 'long-body':
      // Content-Length covers only the start: the rest arrives as if it were a second answer, on a connection left open.
      socket.write(`${headers(20)}${body}${'x'.repeat(1000)}`);
  }
}

interface Outcome {
  status: number;
  /** The body ended as the headers said (false: the connection was cut mid-body). */
  complete: boolean;
  body: string;
  ms: number;
}

/** One request on a fresh connection; resolves with what the client saw (never rejects after the headers). */
function fetchOnce(port: number, p: string, headers: http.OutgoingHttpHeaders): Promise<Outcome> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const req = http.request({ host: LOCAL, port, path: p, headers, agent: false });
    req.setTimeout(60_000, () => req.destroy(new Error(`no answer to ${p} within 60 s`)));
    let responded = false;
    // After the headers, a connection error shows as a cut-off body (below), not as a failed request.
    req.on('error', (e) => (responded ? undefined : reject(e)));
    req.once('response', (res) => {
      responded = true;
      const chunks: Buffer[] = [];
      let done = false;
      const finish = (complete: boolean) => {
        if (done) return;
        done = true;
        resolve({ status: res.statusCode!, complete, body: Buffer.concat(chunks).toString('utf8'), ms: Date.now() - started });
      };
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('end', () => finish(!res.aborted));
      res.once('aborted', () => finish(false));
      res.once('error', () => finish(false));
      res.once('close', () => finish(res.complete));
    });
    req.end();
  });
}

type Kind = 'docker' | 'python' | 'npm';
const KINDS: Kind[] = ['docker', 'python', 'npm'];

const ask = (kind: Kind, fault: Fault | 'ok'): { path: string; headers: http.OutgoingHttpHeaders } => {
  switch (kind) {
    case 'docker':
      return { path: `/v2/acme/app/manifests/${fault}`, headers: { host: 'cr.test', 'user-agent': 'skopeo/1.9.3', accept: 'application/vnd.oci.image.manifest.v1+json' } };
    case 'python':
      return { path: `/simple/${fault}/`, headers: { host: 'py.test', 'user-agent': 'pip/24.0', accept: 'text/html' } };
    case 'npm':
      return { path: `/${fault}`, headers: { host: 'npm.test', 'user-agent': 'npm/11.0.0 node/v20.20.0 linux x64', accept: 'application/json' } };
  }
};

/** What a fault may lead to, per kind: a gateway error (502/504), or a cut-off response once headers were relayed. */
function expectClean(kind: Kind, fault: Fault, o: Outcome): void {
  const label = `${kind} ${fault}: ${o.status} ${o.complete ? 'complete' : 'cut off'} after ${o.ms} ms: ${o.body.slice(0, 200)}`;
  expect({ label, inTime: o.ms <= TIMEOUT_S * 1000 + SLACK_MS }).toEqual({ label, inTime: true });
  const headersFirst = fault === 'stall-body' || fault === 'reset-mid-body' || fault === 'bad-chunked' || fault === 'short-body';
  if (fault === 'long-body') {
    // What the Content-Length announced is a complete answer; the extra bytes must not reach the client.
    if (kind !== 'python') expect({ label, ok: o.status === 200 && o.complete && Buffer.byteLength(o.body) <= 20 }).toEqual({ label, ok: true });
    else expect({ label, ok: o.complete && o.status < 500 || o.status === 502 }).toEqual({ label, ok: true });
  } else if (headersFirst && kind !== 'python') {
    // The status line was relayed before the fault: the client must see the body cut off, not a complete answer.
    expect({ label, status: o.status, complete: o.complete }).toEqual({ label, status: 200, complete: false });
  } else {
    const want = fault === 'hang' || (fault === 'stall-body' && kind === 'python') ? 504 : 502;
    expect({ label, status: o.status, complete: o.complete }).toEqual({ label, status: want, complete: true });
    expect(o.body).not.toMatch(/skopeo|pip\/|npm\//);
  }
}

/** Waits until the gateway has closed every connection to the faulty upstream; the error lists those left open. */
async function noUpstreamConnections(after: string, timeoutMs: number): Promise<void> {
  try {
    await pollUntil('', () => (upstream!.open.size === 0 ? true : undefined), timeoutMs, 50);
  } catch {
    throw new Error(`after ${after}, the gateway still holds ${upstream!.open.size} upstream connection(s) open: ${[...upstream!.open.values()].join('; ')}`);
  }
}

let dir: string;
let gw: Gateway | undefined;
let upstream: Awaited<ReturnType<typeof startFaultyUpstream>> | undefined;

beforeAll(async () => {
  dir = makeTempDir('gw-load-faults-');
  upstream = await startFaultyUpstream();
  const base = `http://${LOCAL}:${upstream.port}`;
  const manifest = writeJson(path.join(dir, 'manifest.json'), {
    rules: [
      { type: 'docker-v1', domain: 'cr.test', 'repository-name': 'acme/app', registry: 'faulty-cr.test', 'package-id': 'app' },
      { type: 'python-index-v1', domain: 'py.test', 'package-name': '*', 'backend-simple-index-url': 'http://faulty-py.test/simple/', 'package-id': 'py', 'cache-seconds': 0 },
      { type: 'npm-v1', domain: 'npm.test', 'package-name': '*', registry: 'http://faulty-npm.test', 'package-id': 'npm', 'cache-seconds': 0 },
      { type: 'file-v1', domain: 'files.test', 'incoming-path': '/dl/{n}', 'outgoing-url': 'https://downloads.example.com/{n}', 'package-id': 'tool' },
    ],
  });
  gw = await startGateway({
    manifest,
    events: path.join(dir, 'events'),
    upstreams: [`faulty-cr.test=${base}`, `faulty-py.test=${base}`, `faulty-npm.test=${base}`],
    extraArgs: ['--upstream-timeout', String(TIMEOUT_S)],
  });
});

afterAll(async () => {
  await gw?.kill();
  await upstream?.close();
  removeDir(dir);
});

describe.each(KINDS)('%s', (kind) => {
  test.each(FAULTS)(`%s: a clean 502/504 within --upstream-timeout ${TIMEOUT_S} s + slack, or a cut-off body once the headers were relayed`, async (fault) => {
    const a = ask(kind, fault);
    expectClean(kind, fault, await fetchOnce(gw!.port, a.path, a.headers));
    // And the same upstream still works for the next request.
    const ok = ask(kind, 'ok');
    const good = await fetchOnce(gw!.port, ok.path, ok.headers);
    expect({ status: good.status, complete: good.complete }).toEqual({ status: 200, complete: true });
  });
});

test('a client that stops reading for longer than --upstream-timeout is not cut off: the silence is its own, not the upstream\'s', async () => {
  const { headers } = ask('docker', 'ok');
  const got = await new Promise<{ status: number; length: number; complete: boolean }>((resolve, reject) => {
    const req = http.request({ host: LOCAL, port: gw!.port, path: '/v2/acme/app/blobs/big', headers, agent: false });
    req.once('error', reject);
    req.once('response', (res) => {
      let length = 0;
      res.pause();
      // Three idle timeouts without reading: the gateway's buffers and the upstream's socket fill up and wait.
      setTimeout(() => {
        res.on('data', (c: Buffer) => (length += c.length));
        res.resume();
      }, TIMEOUT_S * 3000);
      res.once('end', () => resolve({ status: res.statusCode!, length, complete: res.complete }));
      res.once('error', () => resolve({ status: res.statusCode!, length, complete: false }));
    });
    req.end();
  });
  expect(got).toEqual({ status: 200, length: BIG, complete: true });
});

test('clients that give up on a hanging upstream free its connections at once, not at the upstream timeout', async () => {
  // A gateway that would wait 60 s for the upstream's headers.
  const patient = await startGateway({
    manifest: path.join(dir, 'manifest.json'),
    events: path.join(dir, 'events-patient'),
    upstreams: [`faulty-cr.test=http://${LOCAL}:${upstream!.port}`],
    extraArgs: ['--upstream-timeout', '60'],
  });
  try {
    const { path: p, headers } = ask('docker', 'hang');
    const hangingNow = () => [...upstream!.open.values()].filter((v) => v.startsWith('hang ')).length;
    const clients = Array.from({ length: 20 }, () => {
      const req = http.request({ host: LOCAL, port: patient.port, path: p, headers, agent: false });
      req.on('error', () => undefined);
      req.end();
      return req;
    });
    await pollUntil('the upstream to hold 20 hanging requests', () => (hangingNow() >= 20 ? true : undefined), 10_000, 20);
    for (const req of clients) req.destroy();
    // Well within the 60 s the gateway would otherwise wait.
    await pollUntil(`the gateway to close its upstream connections (${hangingNow()} open)`, () => (hangingNow() === 0 ? true : undefined), 10_000, 50);
    const ok = ask('docker', 'ok');
    const good = await fetchOnce(patient.port, ok.path, ok.headers);
    expect({ status: good.status, complete: good.complete }).toEqual({ status: 200, complete: true });
    expect(await patient.stop()).toEqual({ code: 0, signal: null });
  } finally {
    await patient.kill();
  }
});

test('a few hundred faulty requests, many at once: every one answered in time, the gateway keeps serving, no descriptor or socket leaked', async () => {
  const pid = gw!.pid;
  // Warm up every path once (lazily opened descriptors, the healthy upstream's keep-alive pool).
  for (const kind of KINDS) expect((await fetchOnce(gw!.port, ask(kind, 'ok').path, ask(kind, 'ok').headers)).status).toBe(200);
  await noUpstreamConnections('the warm-up', 10_000);
  const baseline = fdsOf(pid);

  const ROUNDS = 10;
  const jobs = Array.from({ length: ROUNDS }, () => KINDS.flatMap((kind) => FAULTS.map((fault) => ({ kind, fault })))).flat();
  const outcomes: Array<{ kind: Kind; fault: Fault; o: Outcome }> = [];
  // 30 at a time: hanging requests overlap, as they would in production.
  for (let i = 0; i < jobs.length; i += 30) {
    const batch = jobs.slice(i, i + 30);
    outcomes.push(...(await Promise.all(batch.map(async ({ kind, fault }) => ({ kind, fault, o: await fetchOnce(gw!.port, ask(kind, fault).path, ask(kind, fault).headers) })))));
  }
  expect(outcomes).toHaveLength(ROUNDS * KINDS.length * FAULTS.length);
  for (const { kind, fault, o } of outcomes) expectClean(kind, fault, o);

  expect(gw!.running()).toBe(true);
  const redirect = await request(gw!.port, { path: '/dl/after-faults', headers: { host: 'files.test' } });
  expect([redirect.status, redirect.headers.location]).toEqual([307, 'https://downloads.example.com/after-faults']);

  // Every upstream connection closed by the gateway (long-body's open one included), and the gateway back to its baseline.
  await noUpstreamConnections('the faulty requests', 15_000);
  const after = await settledFds(pid, baseline, FD_SLACK);
  console.log(`upstream faults: ${outcomes.length} faulty requests; gateway fds before ${JSON.stringify(baseline)}, after ${JSON.stringify(after)}`);
  expect(after.total).toBeLessThanOrEqual(baseline.total + FD_SLACK);
  expect(after.sockets).toBeLessThanOrEqual(baseline.sockets + FD_SLACK);

  expect(await gw!.stop()).toEqual({ code: 0, signal: null });
});
