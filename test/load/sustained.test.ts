/**
 * Sustained load: the local gateway (the CLI, with a file-v1 manifest and --events DIR) at its
 * measured maximum for 60 s. First wrk finds the maximum (3 s, 16 connections: more connections
 * only queue on one Node thread); then the same closed-loop load runs for 60 s, so the gateway
 * stays saturated throughout. Every answer must be the right 307, memory must stay flat, and
 * every answered request must have its event on disk.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Gateway, makeTempDir, pollUntil, removeDir, request, startGateway, writeJson } from '../e2e/helpers';
import { countEventLines, RssSampler, runWrk } from './load-helpers';

jest.setTimeout(180_000);

const CONNECTIONS = 16;
const THREADS = 2;
const SUSTAIN_S = 60;
const MiB = 1024 * 1024;
/**
 * Memory in the last 10 s may exceed memory at 10 to 20 s by at most this much, comparing the
 * median of each window's samples (one a second). By 10 s the heap has reached its working size
 * (V8 sizes its generations within seconds under a steady load) and write buffers their steady
 * state; afterwards RSS moves with GC timing, a sawtooth of up to ~20 MiB here, which the
 * medians smooth out. A leak of only 100 bytes per request at this load (>1,000 req/s even on a
 * slow CI machine, so >40,000 requests between the windows; ~25k req/s here, a million) is 4 MiB
 * to 100 MiB, so 30 MiB catches per-request leaks yet does not flake on GC timing.
 */
const RSS_GROWTH_LIMIT = 30 * MiB;

const HOST = 'files.test';
const target = (n: string) => `https://downloads.example.com/${n}`;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

let dir: string;
let gw: Gateway | undefined;

beforeAll(() => {
  dir = makeTempDir('gw-load-sustained-');
});

afterAll(async () => {
  await gw?.kill();
  removeDir(dir);
});

/** Events of every request answered before `marker` are on disk once the marker's is (one writer, in answer order). */
async function waitForMarker(events: string, marker: string): Promise<void> {
  await pollUntil(`the event of ${marker}`, () => {
    for (const day of fs.existsSync(events) ? fs.readdirSync(events) : []) {
      for (const f of fs.readdirSync(path.join(events, day))) {
        const file = path.join(events, day, f);
        const size = fs.statSync(file).size;
        const fd = fs.openSync(file, 'r');
        const tail = Buffer.alloc(Math.min(size, 64 * 1024));
        fs.readSync(fd, tail, 0, tail.length, size - tail.length);
        fs.closeSync(fd);
        if (tail.toString('utf8').includes(`"path":"${marker}"`)) return true;
      }
    }
    return undefined;
  }, 30_000, 100);
}

test(`at the measured maximum for ${SUSTAIN_S} s: no errors, every answer the right 307, flat memory, one event per answered request`, async () => {
  const events = path.join(dir, 'events');
  const manifest = writeJson(path.join(dir, 'manifest.json'), {
    rules: [{ type: 'file-v1', domain: HOST, 'incoming-path': '/dl/{n}', 'outgoing-url': 'https://downloads.example.com/{n}', 'package-id': 'tool' }],
  });
  gw = await startGateway({ manifest, events });
  const wrk = { host: HOST, connections: CONNECTIONS, threads: THREADS, scriptDir: dir };

  const probe = await runWrk({ ...wrk, url: gw.url('/dl/probe'), expectLocation: target('probe'), durationS: 3 });
  expect({ bad: probe.bad, errors: probe.errors }).toEqual({ bad: 0, errors: { connect: 0, read: 0, write: 0, status: 0, timeout: 0 } });
  expect(probe.good).toBe(probe.requests);

  const rss = new RssSampler(gw.pid);
  const run = await runWrk({ ...wrk, url: gw.url('/dl/sustained'), expectLocation: target('sustained'), durationS: SUSTAIN_S });
  const samples = rss.stop();
  const early = median(samples.slice(10, 20));
  const late = median(samples.slice(-10));
  console.log(`sustained load: maximum ${Math.round(probe.requestsPerSecond)} req/s (wrk, ${CONNECTIONS} connections, 3 s); `
    + `${run.requests} requests in ${run.durationS.toFixed(1)} s = ${Math.round(run.requestsPerSecond)} req/s; `
    + `RSS MiB at 0/20/40/end s: ${[0, 20, 40, samples.length - 1].map((i) => (samples[Math.min(i, samples.length - 1)] / MiB).toFixed(1)).join('/')}, `
    + `medians at 10-20 s and the last 10 s: ${(early / MiB).toFixed(1)}/${(late / MiB).toFixed(1)}`);

  expect(gw.running()).toBe(true);
  expect({ bad: run.bad, errors: run.errors }).toEqual({ bad: 0, errors: { connect: 0, read: 0, write: 0, status: 0, timeout: 0 } });
  expect(run.good).toBe(run.requests);
  expect(run.requests).toBeGreaterThan(0);

  expect(samples.length).toBeGreaterThanOrEqual(SUSTAIN_S - 5);
  expect(late).toBeLessThanOrEqual(early + RSS_GROWTH_LIMIT);

  // Every request wrk saw answered has its event; wrk stops with up to one request per connection
  // in flight, which the gateway may still answer (and record) without wrk counting it.
  const marker = '/dl/marker-after-sustained';
  expect((await request(gw.port, { path: marker, headers: { host: HOST } })).status).toBe(307);
  await waitForMarker(events, marker);
  const written = await countEventLines(events, '"path":"/dl/sustained"');
  expect(written).toBeGreaterThanOrEqual(run.requests);
  expect(written).toBeLessThanOrEqual(run.requests + CONNECTIONS);

  expect(await gw.stop()).toEqual({ code: 0, signal: null });
});
