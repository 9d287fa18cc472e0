/**
 * The local NDJSON event sink under failure: a directory removed, replaced by a file or on a full
 * disk (/dev/full) while events keep coming. Real files in a temp directory; short backoffs.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NdjsonEventSink, type NdjsonSinkOptions } from '../../lambda/local/ndjson-sink';
import type { GatewayEvent } from '../../lambda/core/events';
import { completeEvents } from '../../lambda/core/complete-event';

const DAY = '2026-03-04';
const FAST: NdjsonSinkOptions = { flushDelayMs: 1, retryBaseMs: 5, retryMaxMs: 40, closeTimeoutMs: 300 };

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-unit-sink-'));
});
/** Sinks of the current test: closed before its directory goes, so a failed test leaves nothing writing. */
const sinks: NdjsonEventSink[] = [];
afterEach(async () => {
  for (const s of sinks.splice(0)) await s.close();
  fs.rmSync(root, { recursive: true, force: true });
});

let seq = 0;
/** An event as the gateway makes them (completeEvents), with a distinct path. */
function event(time = `${DAY}T10:00:00.000Z`, p = `/dl/secret-path-${seq++}`): GatewayEvent {
  const [e] = completeEvents([{ kind: 'file', action: 'redirect', countable: true, package_id: 'tool', target: 'https://x.test/f', variables: { n: 'é"\\\n' } }], {
    domain: 'files.test', method: 'GET', path: p, status: 307, time: new Date(time), userAgent: 'curl/8.5.0', origin: null,
    visitorIdFor: () => 'v1', newId: () => `id-${seq}`,
  });
  return e;
}

const events = (n: number) => Array.from({ length: n }, () => event());

function lines(dir: string): string[] {
  const out: string[] = [];
  if (!fs.existsSync(dir)) return out;
  for (const d of fs.readdirSync(dir).sort()) {
    const sub = path.join(dir, d);
    if (!fs.statSync(sub).isDirectory()) continue;
    for (const f of fs.readdirSync(sub).sort()) out.push(...fs.readFileSync(path.join(sub, f), 'utf8').split('\n').filter((l) => l !== ''));
  }
  return out;
}

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function sinkIn(dir: string, opts: NdjsonSinkOptions = {}) {
  const warnings: string[] = [];
  const sink = new NdjsonEventSink(dir, (m) => warnings.push(m), { ...FAST, ...opts });
  sinks.push(sink);
  return { sink, warnings };
}

test('writes each event as its JSON.stringify line under dt=DAY/, in order, one file per day', async () => {
  const { sink, warnings } = sinkIn(root);
  const evs = [...events(5), event('2026-03-05T00:00:00.001Z'), ...events(2)];
  for (const e of evs) sink.write([e]);
  await sink.close();
  expect(fs.readdirSync(root).sort()).toEqual(['dt=2026-03-04', 'dt=2026-03-05']);
  const day1 = fs.readFileSync(path.join(root, 'dt=2026-03-04', sink.fileName), 'utf8');
  const day2 = fs.readFileSync(path.join(root, 'dt=2026-03-05', sink.fileName), 'utf8');
  expect(day1).toBe([...evs.slice(0, 5), ...evs.slice(6)].map((e) => `${JSON.stringify(e)}\n`).join(''));
  expect(day2).toBe(`${JSON.stringify(evs[5])}\n`);
  expect(sink.stats()).toMatchObject({ written: 8, retried: 0, dropped: 0, failedWrites: 0, buffered: 0 });
  expect(warnings).toEqual([]);
});

test('events are on disk shortly after write(), without close()', async () => {
  const { sink } = sinkIn(root, { flushDelayMs: 10 });
  sink.write(events(3));
  await until('3 lines', () => (lines(root).length === 3 ? true : undefined), 1_000);
  await sink.close();
});

test('the events directory removed while running: recreated, and later events land in it', async () => {
  const { sink, warnings } = sinkIn(root);
  sink.write(events(3));
  await until('first lines', () => (lines(root).length === 3 ? true : undefined));
  fs.rmSync(root, { recursive: true, force: true });
  const later = events(4);
  sink.write(later);
  await until('the directory again', () => (lines(root).length === 4 ? true : undefined));
  expect(lines(root)).toEqual(later.map((e) => JSON.stringify(e)));
  await sink.close();
  expect(sink.stats()).toMatchObject({ written: 7, dropped: 0 });
  expect(warnings).toEqual([]);
});

test('dt= directory replaced by a file: held and retried with one warning, all written once it is restored', async () => {
  const { sink, warnings } = sinkIn(root);
  sink.write(events(2));
  await until('first lines', () => (lines(root).length === 2 ? true : undefined));
  const dayDir = path.join(root, `dt=${DAY}`);
  fs.rmSync(dayDir, { recursive: true });
  fs.writeFileSync(dayDir, 'not a directory');
  const held = events(20);
  for (const e of held) sink.write([e]);
  await until('a few failed attempts', () => (sink.stats().failedWrites >= 3 ? true : undefined));
  expect(sink.stats()).toMatchObject({ written: 2, buffered: 20, dropped: 0 });
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toMatch(/cannot write under .*: (ENOTDIR|EEXIST)/);
  fs.rmSync(dayDir);
  await until('the held events', () => (sink.stats().buffered === 0 ? true : undefined));
  expect(lines(root)).toEqual(held.map((e) => JSON.stringify(e)));
  expect(sink.stats()).toMatchObject({ written: 22, retried: 20, dropped: 0, buffered: 0, bufferedBytes: 0 });
  expect(warnings).toHaveLength(2);
  expect(warnings[1]).toMatch(/writing under .* again after [\d.]+ s \(0 dropped so far\)/);
  // A second episode warns again.
  fs.rmSync(root, { recursive: true });
  fs.writeFileSync(root, 'not a directory either');
  sink.write(events(1));
  await until('the second warning', () => (warnings.length === 3 ? true : undefined));
  fs.rmSync(root);
  await until('the last event', () => (sink.stats().written === 23 ? true : undefined));
  await sink.close();
  expect(sink.stats()).toMatchObject({ written: 23, retried: 21, dropped: 0 });
  // No event contents in what the sink logs.
  for (const w of warnings) expect(w).not.toMatch(/secret-path|id-\d|curl|files\.test/);
});

test('memory cap in events: the newest are dropped and counted, the held ones written after recovery', async () => {
  const { sink, warnings } = sinkIn(root, { maxBufferedEvents: 10, reportEveryMs: 20 });
  fs.writeFileSync(path.join(root, `dt=${DAY}`), 'a file where the directory should be');
  const sent = events(25);
  let most = 0;
  for (const e of sent) {
    sink.write([e]);
    most = Math.max(most, sink.stats().buffered);
  }
  expect(most).toBe(10);
  expect(sink.stats()).toMatchObject({ buffered: 10, dropped: 15, written: 0 });
  await until('the counters line', () => (warnings.some((w) => /0 written, 0 retried, 15 dropped, 10 waiting/.test(w)) ? true : undefined));
  expect(warnings.filter((w) => /dropping new ones/.test(w))).toHaveLength(1);
  fs.rmSync(path.join(root, `dt=${DAY}`));
  await until('the held events', () => (sink.stats().written === 10 ? true : undefined));
  expect(lines(root)).toEqual(sent.slice(0, 10).map((e) => JSON.stringify(e)));
  // After recovery new events are taken again.
  const after = events(3);
  sink.write(after);
  await sink.close();
  expect(lines(root).slice(10)).toEqual(after.map((e) => JSON.stringify(e)));
  expect(sink.stats()).toMatchObject({ written: 13, retried: 10, dropped: 15, buffered: 0 });
});

test('memory cap in bytes', async () => {
  const one = JSON.stringify(event()).length + 1;
  const { sink } = sinkIn(root, { maxBufferedBytes: one * 4 + 10 });
  fs.writeFileSync(path.join(root, `dt=${DAY}`), 'x');
  sink.write(events(9));
  expect(sink.stats()).toMatchObject({ buffered: 4, dropped: 5 });
  expect(sink.stats().bufferedBytes).toBeLessThanOrEqual(one * 4 + 10);
  fs.rmSync(path.join(root, `dt=${DAY}`));
  await sink.close();
  expect(lines(root)).toHaveLength(4);
  expect(sink.stats()).toMatchObject({ written: 4, dropped: 5 });
});

test('a full disk (the file is /dev/full): ENOSPC retried, written once there is room', async () => {
  const { sink, warnings } = sinkIn(root);
  const dayDir = path.join(root, `dt=${DAY}`);
  fs.mkdirSync(dayDir);
  fs.symlinkSync('/dev/full', path.join(dayDir, sink.fileName));
  const evs = events(6);
  sink.write(evs);
  await until('failed writes', () => (sink.stats().failedWrites >= 2 ? true : undefined));
  expect(warnings[0]).toMatch(/ENOSPC/);
  expect(sink.stats()).toMatchObject({ written: 0, buffered: 6 });
  fs.unlinkSync(path.join(dayDir, sink.fileName));
  await until('the events', () => (sink.stats().written === 6 ? true : undefined));
  expect(lines(root)).toEqual(evs.map((e) => JSON.stringify(e)));
  await sink.close();
});

test('close() while the directory still fails: gives up after its timeout, counts the rest as dropped, takes no more', async () => {
  const { sink, warnings } = sinkIn(root, { closeTimeoutMs: 100 });
  fs.writeFileSync(path.join(root, `dt=${DAY}`), 'x');
  sink.write(events(7));
  await until('a failed write', () => (sink.stats().failedWrites >= 1 ? true : undefined));
  await sink.close();
  expect(sink.stats()).toMatchObject({ written: 0, dropped: 7, buffered: 0 });
  expect(warnings.some((w) => /7 event\(s\) could not be written .* before shutdown/.test(w))).toBe(true);
  sink.write(events(2));
  expect(sink.stats().dropped).toBe(9);
});

test('close() flushes what is queued and resolves once it is on disk', async () => {
  const { sink } = sinkIn(root, { flushDelayMs: 60_000 });
  sink.write(events(50));
  expect(lines(root)).toHaveLength(0);
  await sink.close();
  expect(lines(root)).toHaveLength(50);
});

test('events of many days in any order: each in its day file, in order', async () => {
  const { sink, warnings } = sinkIn(root);
  const days = ['2026-03-01', '2026-03-04', '2026-02-27', '2026-03-02', '2026-03-01', '2026-03-04', '2026-02-27'];
  const evs = days.flatMap((d) => [event(`${d}T12:00:00.000Z`), event(`${d}T12:00:01.000Z`)]);
  sink.write(evs);
  await sink.close();
  expect(warnings).toEqual([]);
  for (const d of new Set(days)) {
    const text = fs.readFileSync(path.join(root, `dt=${d}`, sink.fileName), 'utf8');
    expect(text).toBe(evs.filter((e) => e.time.startsWith(d)).map((e) => `${JSON.stringify(e)}\n`).join(''));
  }
  expect(sink.stats()).toMatchObject({ written: evs.length, dropped: 0, failedWrites: 0 });
});
