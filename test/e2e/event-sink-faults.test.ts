/**
 * The events directory failing under load: the gateway's `dt=` directory is replaced by a regular
 * file (so every write fails, even as root) while clients keep downloading. Every request must
 * still be answered correctly; events are held up to `--events-buffer`, the newest past it are
 * dropped and counted, the held ones are written once the directory can be made again, and the
 * gateway's memory stays bounded. One warning per failure episode, never with event contents.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { LOCAL, makeTempDir, pollUntil, readEvents, removeDir, rssBytes, runCli, startGateway, writeJson, type Gateway } from './helpers';

jest.setTimeout(120_000);

const HOST = 'files.test';
const CAP = 1_000;
/** Long paths make each event about 6 KB, so holding every event of the fault phase would take ~60 MB. */
const FILLER = 'a'.repeat(2_000);

let dir: string;
let events: string;
let gw: Gateway | undefined;

beforeAll(() => {
  dir = makeTempDir('gw-e2e-sink-faults-');
  events = path.join(dir, 'events');
});

afterAll(async () => {
  await gw?.kill();
  removeDir(dir);
});

const utcDay = (t: number) => new Date(t).toISOString().slice(0, 10);

/**
 * Sends `paths` over `connections` keep-alive connections, each request as soon as the previous
 * answer on its connection ended; returns the paths whose answer was not the expected redirect.
 */
async function load(port: number, paths: string[], connections = 16, onProgress?: () => void): Promise<string[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const wrong: string[] = [];
  let next = 0;
  const one = (p: string) =>
    new Promise<void>((resolve) => {
      const req = http.get({ host: LOCAL, port, path: p, agent, headers: { host: HOST, 'user-agent': 'curl/8.5.0' } }, (res) => {
        res.resume();
        res.once('end', () => {
          if (res.statusCode !== 307 || res.headers.location !== `https://downloads.example.com${p.slice('/dl'.length)}`) wrong.push(`${p}: ${res.statusCode}`);
          resolve();
        });
      });
      req.once('error', (e) => {
        wrong.push(`${p}: ${e.message}`);
        resolve();
      });
    });
  const worker = async () => {
    while (next < paths.length) {
      await one(paths[next++]);
      if (next % 500 === 0) onProgress?.();
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
  agent.destroy();
  return wrong;
}

const pathsOf = (phase: string, n: number) => Array.from({ length: n }, (_, i) => `/dl/${phase}-${i}-${FILLER}`);

test('events directory replaced by a file under load: all requests answered, events held up to the cap and written after recovery, drops counted, memory bounded', async () => {
  const manifest = writeJson(path.join(dir, 'manifest.json'), {
    rules: [{ type: 'file-v1', domain: HOST, 'incoming-path': '/dl/{n}', 'outgoing-url': 'https://downloads.example.com/{n}', 'package-id': 'tool' }],
  });
  gw = await startGateway({ manifest, events, extraArgs: ['--events-buffer', String(CAP)] });

  // Warm-up with the same load shape, so the heap has grown to its working size before RSS is compared.
  const warm = pathsOf('warm', 4_000);
  expect(await load(gw.port, warm)).toEqual([]);
  await pollUntil('the warm-up events on disk', () => (readEvents(events).length === warm.length ? true : undefined), 10_000);
  const rssBefore = rssBytes(gw.pid);

  // The fault: every dt= directory the gateway may write (today, and tomorrow should the test
  // cross midnight UTC) becomes a regular file. Nothing is in flight: all warm-up events are on disk.
  const now = Date.now();
  const dayDirs = [...new Set([utcDay(now), utcDay(now + 86_400_000)])].map((d) => path.join(events, `dt=${d}`));
  for (const d of dayDirs) {
    fs.rmSync(d, { recursive: true, force: true });
    fs.writeFileSync(d, 'not a directory\n');
  }
  const stderrAtFault = gw.stderr.length;
  const faulty = pathsOf('fault', 10_000);
  let rssMax = 0;
  expect(await load(gw.port, faulty, 16, () => (rssMax = Math.max(rssMax, rssBytes(gw!.pid))))).toEqual([]);
  rssMax = Math.max(rssMax, rssBytes(gw.pid));
  // The held events are at most CAP of about 6 KB each; holding all 10,000 would add about 60 MB.
  expect(rssMax - rssBefore).toBeLessThan(40 * 1024 * 1024);
  await gw.waitForStderr(/cannot write under .*: (EEXIST|ENOTDIR)/, 5_000, stderrAtFault);
  expect(gw.stderr.slice(stderrAtFault).match(/cannot write under/g)).toHaveLength(1);
  expect(gw.stderr.slice(stderrAtFault)).toMatch(/dropping new ones/);

  // Recovery: the files go away, the gateway makes the directory again and writes what it held.
  for (const d of dayDirs) fs.rmSync(d, { force: true });
  await gw.waitForStderr(/writing under .* again after [\d.]+ s \(9000 dropped so far\)/, 10_000, stderrAtFault);
  const held = await pollUntil('the held events on disk', () => {
    const evs = readEvents(events);
    return evs.length === CAP ? evs : undefined;
  }, 10_000);
  const faultyPaths = new Set(faulty);
  for (const e of held) {
    expect(faultyPaths.has(e.path)).toBe(true);
    expect(e).toMatchObject({ kind: 'file', action: 'redirect', status: 307, package_id: 'tool' });
  }
  expect(new Set(held.map((e) => e.id)).size).toBe(CAP);

  // After recovery, new events are written again.
  const after = pathsOf('after', 500);
  expect(await load(gw.port, after)).toEqual([]);
  await pollUntil('the events after recovery', () => (readEvents(events).length === CAP + after.length ? true : undefined), 10_000);

  expect(await gw.stop()).toEqual({ code: 0, signal: null });
  // warm-up (written, then deleted by the test) + held + after; the rest of the fault phase dropped.
  expect(gw.stderr).toMatch(new RegExp(`events: ${warm.length + CAP + after.length} written, ${CAP} retried, ${faulty.length - CAP} dropped`));
  // Nothing of an event in the logs.
  expect(gw.stderr).not.toMatch(/\/dl\/|aaaa|curl|files\.test|127\.0\.0\.1:\d+\//);
});

test('--events-buffer takes a positive number of events; anything else is a usage error (exit 2, one line)', async () => {
  for (const bad of ['0', '-5', '1e3', 'lots']) {
    const r = await runCli(['serve', '--events', path.join(dir, 'unused'), '--port', '0', '--events-buffer', bad]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/--events-buffer must be a number of events between 1 and 10000000/);
  }
});
