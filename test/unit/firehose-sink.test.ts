/**
 * The Firehose sink against a stand-in for the SDK client: batching within the PutRecordBatch
 * limits, retrying exactly the failed records, bounded memory, no I/O on write().
 * (test/e2e/firehose-sink.test.ts runs the real SDK client against a local Firehose API stub.)
 */
import type { PutRecordBatchCommand, PutRecordBatchCommandOutput } from '@aws-sdk/client-firehose';
import { FirehoseEventSink, PUT_RECORD_BATCH_LIMITS, emfDroppedEvents, encodeRecord, type DropReason, type FirehoseApi } from '../../lambda/analytics/firehose-sink';
import type { GatewayEvent } from '../../lambda/core/events';
import { tableRow } from '../../lambda/core/event-table';

function event(i: number, extra: Partial<GatewayEvent> = {}): GatewayEvent {
  return {
    id: `e${i}`, time: '2024-05-01T10:00:00.000Z', kind: 'file', action: 'redirect', download: true, package_id: 'rocket',
    auto_create_rule_id: null, domain: 'get.acme.test', method: 'GET', path: `/f/${i}`, status: 307, target: null, image: null,
    reference: null, upstream: null, file_name: null, version: null, variables: { v: String(i) }, body_event: null, pixel_id: null,
    client_name: 'curl', client_version: '8.4.0', os: null, arch: null, ci: null, bot: false,
    country: null, region: null, asn: null, org: null, visitor_id: null, ...extra,
  };
}

const decode = (d: Uint8Array) => Buffer.from(d).toString('utf8');
const idOf = (d: Uint8Array) => (JSON.parse(decode(d)) as { id: string }).id;

type Behaviour = (records: Uint8Array[], call: number) => PutRecordBatchCommandOutput | Error | 'hang';

/** Records every call; answers with `behaviour` (default: everything accepted). */
class FakeFirehose implements FirehoseApi {
  readonly calls: Array<{ stream: string; records: Uint8Array[] }> = [];
  constructor(private readonly behaviour: Behaviour = () => ok()) {}
  async send(command: PutRecordBatchCommand): Promise<PutRecordBatchCommandOutput> {
    const records = (command.input.Records ?? []).map((r) => r.Data as Uint8Array);
    this.calls.push({ stream: command.input.DeliveryStreamName!, records });
    const out = this.behaviour(records, this.calls.length);
    if (out === 'hang') return new Promise(() => undefined);
    if (out instanceof Error) throw out;
    return out;
  }
  sentIds(): string[] {
    return this.calls.flatMap((c) => c.records.map(idOf));
  }
}

function ok(failed: number[] = [], total?: number): PutRecordBatchCommandOutput {
  const n = total ?? 0;
  return {
    $metadata: {},
    FailedPutCount: failed.length,
    Encrypted: false,
    RequestResponses: Array.from({ length: Math.max(n, ...failed.map((i) => i + 1)) }, (_, i) =>
      failed.includes(i) ? { ErrorCode: 'ServiceUnavailableException', ErrorMessage: 'Slow down.' } : { RecordId: `r${i}` }),
  };
}

function sinkWith(client: FirehoseApi, extra: Partial<ConstructorParameters<typeof FirehoseEventSink>[0]> = {}) {
  const sleeps: number[] = [];
  const drops: Array<[number, DropReason]> = [];
  const sink = new FirehoseEventSink({
    deliveryStreamName: 'gw-events', client, random: () => 1, sleep: async (ms) => void sleeps.push(ms),
    onDropped: (n, r) => drops.push([n, r]), maxDelayMs: 60_000, ...extra,
  });
  return { sink, sleeps, drops };
}

test('records are the table rows as JSON lines (JSON fields as JSON text)', () => {
  const e = event(1, { body_event: { a: 1 } });
  const line = decode(encodeRecord(e));
  expect(line.endsWith('\n')).toBe(true);
  expect(JSON.parse(line)).toEqual(tableRow(e));
  expect(JSON.parse(line).variables).toBe('{"v":"1"}');
  expect(JSON.parse(line).body_event).toBe('{"a":1}');
});

test('write() queues without calling Firehose; flush() sends in batches of at most 500, in order', async () => {
  const fake = new FakeFirehose((records) => ok([], records.length));
  const { sink } = sinkWith(fake);
  const events = Array.from({ length: 1234 }, (_, i) => event(i));
  sink.write(events.slice(0, 10));
  expect(fake.calls).toHaveLength(0); // nothing on the request path
  sink.write(events.slice(10));
  await sink.flush();
  expect(fake.calls.map((c) => c.records.length)).toEqual([500, 500, 234]);
  expect(fake.calls.every((c) => c.stream === 'gw-events')).toBe(true);
  expect(fake.sentIds()).toEqual(events.map((e) => e.id));
  expect(sink.stats()).toMatchObject({ delivered: 1234, buffered: 0, bufferedBytes: 0, calls: 3, failedCalls: 0, retried: 0 });
});

test('a call never carries more than 4 MiB; a record over 1,000 KiB is dropped and counted, never sent', async () => {
  const fake = new FakeFirehose((records) => ok([], records.length));
  const { sink, drops } = sinkWith(fake);
  const big = (i: number, kib: number) => event(i, { body_event: { pad: 'x'.repeat(kib * 1024) } });
  sink.write([big(0, 300), big(1, 1001), ...Array.from({ length: 30 }, (_, i) => big(i + 2, 300))]);
  await sink.flush();
  for (const c of fake.calls) {
    expect(c.records.reduce((n, r) => n + r.byteLength, 0)).toBeLessThanOrEqual(PUT_RECORD_BATCH_LIMITS.bytesPerCall);
    for (const r of c.records) expect(r.byteLength).toBeLessThanOrEqual(PUT_RECORD_BATCH_LIMITS.bytesPerRecord);
  }
  expect(fake.calls.length).toBe(3); // 31 records of ~300 KiB: 13 + 13 + 5
  expect(fake.sentIds()).not.toContain('e1');
  expect(fake.sentIds()).toHaveLength(31);
  expect(drops).toEqual([[1, 'oversized']]);
});

test('a partial failure retries exactly the failed records, after a backoff', async () => {
  // First call: records 1, 4 and 7 fail; then everything is accepted.
  const fake = new FakeFirehose((records, call) => (call === 1 ? ok([1, 4, 7], records.length) : ok([], records.length)));
  const { sink, sleeps } = sinkWith(fake);
  sink.write(Array.from({ length: 10 }, (_, i) => event(i)));
  await sink.flush();
  expect(fake.calls.map((c) => c.records.map(idOf))).toEqual([
    ['e0', 'e1', 'e2', 'e3', 'e4', 'e5', 'e6', 'e7', 'e8', 'e9'],
    ['e1', 'e4', 'e7'],
  ]);
  expect(sleeps).toEqual([100]); // base backoff before the second attempt (jitter fixed at 1)
  expect(sink.stats()).toMatchObject({ delivered: 10, retried: 3, buffered: 0 });
});

test('a failed call (throttling, network) retries its whole batch with growing backoff', async () => {
  const throttled = Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
  const fake = new FakeFirehose((records, call) => (call <= 3 ? throttled : ok([], records.length)));
  const errors: string[] = [];
  const { sink, sleeps } = sinkWith(fake, { onError: (m) => errors.push(m) });
  sink.write([event(1), event(2)]);
  await sink.flush();
  expect(fake.calls.map((c) => c.records.map(idOf))).toEqual([['e1', 'e2'], ['e1', 'e2'], ['e1', 'e2'], ['e1', 'e2']]);
  expect(sleeps).toEqual([100, 200, 400]);
  expect(sink.stats()).toMatchObject({ delivered: 2, failedCalls: 3, buffered: 0 });
  expect(errors[0]).toMatch(/PutRecordBatch to gw-events failed \(2 records will be retried\): ThrottlingException: Rate exceeded/);
});

test('a record that keeps failing gives up after maxAttempts and is counted as dropped', async () => {
  const fake = new FakeFirehose((records) => ok([0], records.length));
  const { sink, drops } = sinkWith(fake, { maxAttempts: 4 });
  sink.write([event(1), event(2)]);
  await sink.flush();
  expect(fake.calls.map((c) => c.records.map(idOf))).toEqual([['e1', 'e2'], ['e1'], ['e1'], ['e1']]);
  expect(drops).toEqual([[1, 'undeliverable']]);
  expect(sink.stats()).toMatchObject({ delivered: 1, buffered: 0, dropped: { undeliverable: 1 } });
});

test('bounded memory: events beyond maxBufferedEvents or maxBufferedBytes are dropped and counted', async () => {
  const fake = new FakeFirehose(() => 'hang'); // Firehose unreachable: nothing leaves the queue
  const { sink, drops } = sinkWith(fake, { maxBufferedEvents: 100 });
  sink.write(Array.from({ length: 150 }, (_, i) => event(i)));
  expect(sink.stats()).toMatchObject({ buffered: 100, dropped: { 'buffer-full': 50 } });
  expect(drops).toEqual([[50, 'buffer-full']]);

  const bySize = sinkWith(new FakeFirehose(() => 'hang'), { maxBufferedBytes: 10 * encodeRecord(event(0)).byteLength + 5 });
  bySize.sink.write(Array.from({ length: 25 }, (_, i) => event(i)));
  expect(bySize.sink.stats().buffered).toBe(10);
  expect(bySize.sink.stats().dropped['buffer-full']).toBe(15);
  expect(bySize.sink.stats().bufferedBytes).toBeLessThanOrEqual(10 * encodeRecord(event(0)).byteLength + 5);
});

test('a full batch goes out in the background without flush(); a partial one waits for maxDelayMs', async () => {
  const fake = new FakeFirehose((records) => ok([], records.length));
  const { sink } = sinkWith(fake, { maxDelayMs: 20 });
  sink.write(Array.from({ length: 500 }, (_, i) => event(i)));
  await new Promise((r) => setImmediate(r));
  expect(fake.calls.length).toBe(1);
  sink.write([event(900)]);
  expect(fake.calls.length).toBe(1);
  const deadline = Date.now() + 2_000;
  while (fake.calls.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  expect(fake.calls.map((c) => c.records.length)).toEqual([500, 1]);
});

test('flush() returns by its deadline when Firehose keeps failing; the records stay queued for the next flush', async () => {
  let failing = true;
  const fake = new FakeFirehose((records) => (failing ? new Error('unreachable') : ok([], records.length)));
  const sink = new FirehoseEventSink({ deliveryStreamName: 's', client: fake, baseBackoffMs: 400, random: () => 1, maxDelayMs: 60_000 });
  sink.write([event(1)]);
  const started = Date.now();
  await sink.flush(150);
  expect(Date.now() - started).toBeLessThan(400); // it did not sleep through the 400 ms backoff
  expect(sink.stats().buffered).toBe(1);
  failing = false;
  await sink.flush(3_000);
  expect(sink.stats()).toMatchObject({ buffered: 0, delivered: 1 });
  await sink.close();
});

test('flush(…, { waitForBackoff: false }) (a Lambda invocation): one attempt while Firehose fails, no sleeping, none before the backoff has passed', async () => {
  let failing = true;
  const fake = new FakeFirehose((records) => (failing ? new Error('unreachable') : ok([], records.length)));
  const { sink, sleeps } = sinkWith(fake, { baseBackoffMs: 150 });
  sink.write([event(1), event(2)]);
  await sink.flush(5_000, { waitForBackoff: false });
  expect(fake.calls).toHaveLength(1);
  expect(sleeps).toEqual([]);
  expect(sink.stats().buffered).toBe(2);
  // Within the backoff: no call at all.
  sink.write([event(3)]);
  await sink.flush(5_000, { waitForBackoff: false });
  expect(fake.calls).toHaveLength(1);
  // Once the backoff has passed (the background timer or the next flush), the retry goes out.
  failing = false;
  await new Promise((r) => setTimeout(r, 250));
  await sink.flush(5_000, { waitForBackoff: false });
  expect(fake.calls.map((c) => c.records.map(idOf))).toEqual([['e1', 'e2'], ['e1', 'e2', 'e3']]);
  expect(sink.stats()).toMatchObject({ buffered: 0, delivered: 3, retried: 2 });
  expect(sleeps).toEqual([]);
});

test('flush() returns by its deadline even when a call never returns (Firehose not answering)', async () => {
  const fake = new FakeFirehose(() => 'hang');
  const { sink } = sinkWith(fake);
  sink.write([event(1)]);
  const started = Date.now();
  await sink.flush(100);
  expect(Date.now() - started).toBeLessThan(2_000);
  expect(fake.calls).toHaveLength(1);
});

test('close() flushes, then refuses new events and counts them', async () => {
  const fake = new FakeFirehose((records) => ok([], records.length));
  const { sink, drops } = sinkWith(fake);
  sink.write([event(1)]);
  await sink.close();
  expect(fake.sentIds()).toEqual(['e1']);
  sink.write([event(2)]);
  expect(drops).toEqual([[1, 'closed']]);
});

test('the dropped-events metric is CloudWatch embedded metric format', () => {
  const lines: string[] = [];
  emfDroppedEvents('ArtifactGateway', (l) => lines.push(l))(7, 'buffer-full');
  const m = JSON.parse(lines[0]);
  expect(m).toMatchObject({
    _aws: { CloudWatchMetrics: [{ Namespace: 'ArtifactGateway', Dimensions: [['Reason']], Metrics: [{ Name: 'DroppedEvents', Unit: 'Count' }] }] },
    Reason: 'buffer-full',
    DroppedEvents: 7,
  });
  expect(typeof m._aws.Timestamp).toBe('number');
});
