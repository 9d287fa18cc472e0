/**
 * SIGTERM under load: many keep-alive connections sending redirects and slow proxied requests
 * (the upstream takes 800 ms) when the gateway gets SIGTERM. Every request that got a response
 * got a complete, correct one; every proxied request the upstream had received by the signal is
 * answered; the process exits 0 within its grace period; every answered request's event is on
 * disk. (test/e2e/shutdown.test.ts covers a single request in flight.)
 */
import http from 'node:http';
import path from 'node:path';
import { delay, Gateway, LOCAL, makeTempDir, pollUntil, readEvents, removeDir, startGateway, startUpstream, Upstream, writeJson } from '../e2e/helpers';

jest.setTimeout(60_000);

/** LocalGateway.stop()'s default grace (lambda/local/server.ts) and what the process needs to flush and exit after it. */
const GRACE_MS = 3_000;
const EXIT_SLACK_MS = 5_000;
const UPSTREAM_DELAY_MS = 800;
const REDIRECT_CONNECTIONS = 24;
const PROXY_CONNECTIONS = 8;
const MANIFEST_BODY = '{"schemaVersion":2,"slow":true}';

let dir: string;
let gw: Gateway | undefined;
let upstream: Upstream | undefined;

beforeAll(() => {
  dir = makeTempDir('gw-load-sigterm-');
});

afterAll(async () => {
  await gw?.kill();
  await upstream?.close();
  removeDir(dir);
});

interface Sent {
  path: string;
  kind: 'redirect' | 'proxy';
  /** What the client got: nothing (refused, reset before any answer), or a response, complete or cut off. */
  result: 'none' | 'complete' | 'cut-off';
  status?: number;
  wrong?: string;
}

function send(agent: http.Agent, port: number, kind: Sent['kind'], p: string): Promise<Sent> {
  const headers = kind === 'redirect' ? { host: 'files.test', 'user-agent': 'curl/8.5.0' } : { host: 'cr.test', 'user-agent': 'skopeo/1.9.3' };
  return new Promise((resolve) => {
    const out: Sent = { path: p, kind, result: 'none' };
    const req = http.request({ host: LOCAL, port, path: p, headers, agent });
    req.setTimeout(30_000, () => req.destroy(new Error('no answer in 30 s')));
    req.on('error', () => resolve(out)); // before a response: nothing was answered
    req.once('response', (res) => {
      out.status = res.statusCode;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('error', () => undefined);
      res.once('close', () => {
        if (!res.complete) {
          out.result = 'cut-off';
          return resolve(out);
        }
        out.result = 'complete';
        const body = Buffer.concat(chunks).toString('utf8');
        const want = kind === 'redirect'
          ? res.statusCode === 307 && res.headers.location === `https://downloads.example.com/${p.slice('/dl/'.length)}` && body === ''
          : res.statusCode === 200 && body === MANIFEST_BODY;
        if (!want) out.wrong = `${res.statusCode} ${res.headers.location ?? ''} ${body.slice(0, 100)}`;
        resolve(out);
      });
    });
    req.end();
  });
}

test('SIGTERM under load: answers complete and correct, requests in flight finished, exit 0 within the grace period, every answered request recorded', async () => {
  upstream = await startUpstream((_req, res) => {
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'application/json', 'docker-content-digest': 'sha256:slow' });
      res.end(MANIFEST_BODY);
    }, UPSTREAM_DELAY_MS);
  });
  const events = path.join(dir, 'events');
  const manifest = writeJson(path.join(dir, 'manifest.json'), {
    rules: [
      { type: 'file-v1', domain: 'files.test', 'incoming-path': '/dl/{n}', 'outgoing-url': 'https://downloads.example.com/{n}', 'package-id': 'tool' },
      { type: 'docker-v1', domain: 'cr.test', 'repository-name': 'acme/slow', registry: 'ghcr.io', 'package-id': 'slow-image' },
    ],
  });
  gw = await startGateway({ manifest, events, upstreams: [`ghcr.io=${upstream.base}`] });
  const port = gw.port;

  const agent = new http.Agent({ keepAlive: true, maxSockets: REDIRECT_CONNECTIONS + PROXY_CONNECTIONS });
  const sent: Sent[] = [];
  let seq = 0;
  let running = true;
  const loop = async (kind: Sent['kind']) => {
    while (running) {
      const n = seq++;
      const p = kind === 'redirect' ? `/dl/${n}` : `/v2/acme/slow/manifests/t${n}`;
      const s = await send(agent, port, kind, p);
      sent.push(s);
      // Refused: the gateway has stopped listening; pause so the loop does not spin.
      if (s.result === 'none') await delay(20);
    }
  };
  const loops = [
    ...Array.from({ length: REDIRECT_CONNECTIONS }, () => loop('redirect')),
    ...Array.from({ length: PROXY_CONNECTIONS }, () => loop('proxy')),
  ];
  try {
    // Enough proxied requests under way that some are in flight at the signal.
    await pollUntil('load to build up', () => (sent.filter((s) => s.kind === 'proxy').length >= PROXY_CONNECTIONS * 2 && sent.length > 2_000 ? true : undefined), 20_000, 20);
    // Proxied requests the upstream has received and the client has no answer for yet: in flight.
    const waitingAtUpstream = () => {
      const done = new Set(sent.map((s) => s.path));
      return upstream!.seen.map((s) => s.url).filter((u) => !done.has(u));
    };
    await pollUntil('proxied requests in flight', () => (waitingAtUpstream().length >= PROXY_CONNECTIONS / 2 ? true : undefined), 5_000, 5);
    const signalled = Date.now();
    const inFlightAtSignal = waitingAtUpstream();
    gw.proc.kill('SIGTERM');
    const exit = await gw.waitExit(GRACE_MS + EXIT_SLACK_MS);
    const exitedAfter = Date.now() - signalled;
    running = false;
    await Promise.all(loops);
    agent.destroy();

    expect(exit).toEqual({ code: 0, signal: null });
    expect(exitedAfter).toBeLessThanOrEqual(GRACE_MS + EXIT_SLACK_MS);

    const answered = sent.filter((s) => s.result !== 'none');
    console.log(`SIGTERM under load: ${sent.length} requests sent, ${answered.length} answered, ${inFlightAtSignal.length} proxied requests in flight when signalled, exit after ${exitedAfter} ms`);
    // Every response is complete and correct.
    expect(answered.filter((s) => s.result === 'cut-off' || s.wrong).map((s) => `${s.path}: ${s.result} ${s.wrong ?? ''}`)).toEqual([]);
    // Requests in flight at the signal (at the upstream, waiting for its answer) were finished.
    expect(inFlightAtSignal.length).toBeGreaterThan(0);
    const outcome = (p: string) => {
      const s = sent.find((x) => x.path === p);
      return `${p} ${s ? `${s.result} ${s.status ?? ''}` : 'never finished'}`;
    };
    expect(inFlightAtSignal.map(outcome)).toEqual(inFlightAtSignal.map((p) => `${p} complete 200`));

    // Every answered request's event is on disk (the process has exited: nothing more will come).
    const recorded = new Set(readEvents(events).map((e) => e.path));
    expect(answered.filter((s) => !recorded.has(s.path)).map((s) => s.path)).toEqual([]);
    expect(answered.length).toBeGreaterThan(2_000);
  } finally {
    running = false;
    await Promise.all(loops);
    agent.destroy();
  }
});
