/**
 * Stopping: events of requests answered just before SIGTERM are on disk after exit (exit status
 * 0); a request in flight at SIGTERM is finished and recorded; `--events -` writes NDJSON to stdout.
 */
import http from 'node:http';
import path from 'node:path';
import {
  curl, LOCAL, makeTempDir, parseNdjson, pollUntil, readEvents, removeDir, request, startGateway, startUpstream,
  Gateway, Upstream, writeJson,
} from './helpers';

jest.setTimeout(60_000);

const MANIFEST = {
  rules: [
    { type: 'file-v1', domain: 'files.test', 'incoming-path': '/dl/{n}', 'outgoing-url': 'https://downloads.example.com/{n}', 'package-id': 'tool' },
    { type: 'docker-v1', domain: 'cr.test', 'repository-name': 'acme/slow', registry: 'ghcr.io', 'package-id': 'slow-image' },
  ],
};

let dir: string;
let manifest: string;
const started: Gateway[] = [];

beforeAll(() => {
  dir = makeTempDir('gw-e2e-shutdown-');
  manifest = writeJson(path.join(dir, 'manifest.json'), MANIFEST);
});

afterAll(async () => {
  for (const g of started) await g.kill();
  removeDir(dir);
});

async function start(events: string, upstreams: string[] = []): Promise<Gateway> {
  const g = await startGateway({ manifest, events, upstreams });
  started.push(g);
  return g;
}

test('events of requests answered just before SIGTERM are on disk after exit, exit status 0', async () => {
  const events = path.join(dir, 'burst');
  const gw = await start(events);
  const N = 60;
  const statuses = await Promise.all(
    Array.from({ length: N }, (_, i) => request(gw.port, { path: `/dl/burst-${i}`, headers: { host: 'files.test', 'user-agent': 'curl/8.5.0' } }).then((r) => r.status)),
  );
  expect(statuses).toEqual(Array(N).fill(307));
  gw.proc.kill('SIGTERM'); // at once, without waiting for the files
  expect(await gw.waitExit()).toEqual({ code: 0, signal: null });
  const evs = readEvents(events).filter((e) => e.path.startsWith('/dl/burst-'));
  expect(evs.map((e) => e.path).sort()).toEqual(Array.from({ length: N }, (_, i) => `/dl/burst-${i}`).sort());
  for (const e of evs) expect(e).toMatchObject({ kind: 'file', action: 'redirect', status: 307, package_id: 'tool' });
  // No torn last line.
  expect(new Set(evs.map((e) => e.id)).size).toBe(N);
});

test('a request in flight at SIGTERM is finished and recorded; new connections are refused', async () => {
  const events = path.join(dir, 'inflight');
  let upstream: Upstream | undefined;
  try {
    upstream = await startUpstream((_req, res) => {
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json', 'docker-content-digest': 'sha256:slow' });
        res.end('{"slow":true}');
      }, 800);
    });
    const gw = await start(events, [`ghcr.io=${upstream.base}`]);
    const pending = request(gw.port, { path: '/v2/acme/slow/manifests/1.0', headers: { host: 'cr.test', 'user-agent': 'skopeo/1.9.3' } });
    await pollUntil('the upstream to receive the request', () => (upstream!.seen.length === 1 ? true : undefined));
    gw.proc.kill('SIGTERM');
    // Once it stops listening, a new connection is refused while the old one is still being answered.
    await pollUntil('the listener to close', async () => {
      const ok = await new Promise<boolean>((resolve) => {
        const r = http.get({ host: LOCAL, port: gw.port, path: '/dl/late', headers: { host: 'files.test' }, agent: false }, (res) => {
          res.resume();
          resolve(false);
        });
        r.once('error', () => resolve(true));
      });
      return ok ? true : undefined;
    }, 2_000);
    const r = await pending;
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('{"slow":true}');
    expect(await gw.waitExit()).toEqual({ code: 0, signal: null });
    const evs = readEvents(events).filter((e) => e.path === '/v2/acme/slow/manifests/1.0');
    expect(evs).toHaveLength(1);
    expect(evs[0]).toMatchObject({ kind: 'docker', action: 'proxy', status: 200, download: true, package_id: 'slow-image' });
  } finally {
    await upstream?.close();
  }
});

test('SIGINT stops it cleanly too', async () => {
  const events = path.join(dir, 'sigint');
  const gw = await start(events);
  expect((await curl(gw.url('/dl/sigint'), ['-H', 'Host: files.test'])).status).toBe(307);
  gw.proc.kill('SIGINT');
  expect(await gw.waitExit()).toEqual({ code: 0, signal: null });
  expect(readEvents(events).map((e) => e.path)).toContain('/dl/sigint');
});

test('--events - writes the events to stdout as NDJSON (and nothing else), flushed at SIGTERM', async () => {
  const gw = await start('-');
  const r = await curl(gw.url('/dl/stdout-1'), ['-H', 'Host: files.test']);
  expect(r.status).toBe(307);
  const answered = Date.now();
  await pollUntil('the event on stdout', () => (parseNdjson(gw.stdout).some((e) => e.path === '/dl/stdout-1') ? true : undefined), 1_000, 5);
  expect(Date.now() - answered).toBeLessThanOrEqual(1_000);
  // A burst right before SIGTERM.
  await Promise.all(Array.from({ length: 20 }, (_, i) => request(gw.port, { path: `/dl/stdout-burst-${i}`, headers: { host: 'files.test' } })));
  gw.proc.kill('SIGTERM');
  expect(await gw.waitExit()).toEqual({ code: 0, signal: null });
  const lines = gw.stdout.split('\n').filter((l) => l !== '');
  expect(gw.stdout.endsWith('\n')).toBe(true);
  const evs = lines.map((l) => JSON.parse(l) as { path: string; kind: string; target: string; package_id: string });
  expect(evs).toHaveLength(21);
  expect(evs[0]).toMatchObject({ path: '/dl/stdout-1', kind: 'file', package_id: 'tool', target: 'https://downloads.example.com/stdout-1' });
  expect(evs.slice(1).map((e) => e.path).sort()).toEqual(Array.from({ length: 20 }, (_, i) => `/dl/stdout-burst-${i}`).sort());
  // Logs go to stderr only.
  expect(gw.stderr).toMatch(/listening on/);
  expect(gw.stdout).not.toMatch(/listening on|SIGTERM/);
});
