/**
 * The Firehose sink with the real AWS SDK client against a local stub of the Firehose API
 * (JSON 1.1 protocol, `Firehose_20150804.PutRecordBatch`): the wire format, per-record partial
 * failures retried, throttled calls retried, and delivery on SIGTERM.
 */
import http from 'node:http';
import path from 'node:path';
import { spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { FirehoseClient } from '@aws-sdk/client-firehose';
import { FirehoseEventSink } from '../../lambda/analytics/firehose-sink';
import { tableRow } from '../../lambda/core/event-table';
import { generateEvents } from './analytics-fixtures';
import { pollUntil, ROOT } from './helpers';

jest.setTimeout(60_000);

interface Call {
  target: string;
  contentType: string;
  authorization: string;
  stream: string;
  records: string[];
}

/** PutRecordBatch as Firehose answers it; `decide` says per call which records fail, or that the call is throttled. */
async function startFirehoseStub(decide: (call: number, records: string[]) => number[] | 'throttle') {
  const calls: Call[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { DeliveryStreamName: string; Records: Array<{ Data: string }> };
      const records = body.Records.map((r) => Buffer.from(r.Data, 'base64').toString('utf8'));
      calls.push({
        target: String(req.headers['x-amz-target']), contentType: String(req.headers['content-type']),
        authorization: String(req.headers.authorization), stream: body.DeliveryStreamName, records,
      });
      const verdict = decide(calls.length, records);
      if (verdict === 'throttle') {
        res.writeHead(400, { 'content-type': 'application/x-amz-json-1.1' });
        res.end(JSON.stringify({ __type: 'ServiceUnavailableException', message: 'Slow down.' }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(JSON.stringify({
        FailedPutCount: verdict.length,
        Encrypted: false,
        RequestResponses: records.map((_, i) => (verdict.includes(i) ? { ErrorCode: 'ServiceUnavailableException', ErrorMessage: 'Slow down.' } : { RecordId: `rec-${calls.length}-${i}` })),
      }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    endpoint, calls,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

const clientFor = (endpoint: string) => new FirehoseClient({
  endpoint, region: 'eu-west-1', credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'test' }, maxAttempts: 1,
});

test('batches go out as signed PutRecordBatch calls; failed records and throttled calls are retried until all arrive once', async () => {
  // Call 1: every third record fails. Call 2: throttled. Afterwards everything is accepted.
  const stub = await startFirehoseStub((call, records) => (call === 1 ? records.map((_, i) => i).filter((i) => i % 3 === 0) : call === 2 ? 'throttle' : []));
  try {
    const events = generateEvents(1200, 7);
    const sink = new FirehoseEventSink({ deliveryStreamName: 'gw-events', client: clientFor(stub.endpoint), baseBackoffMs: 10, maxDelayMs: 60_000 });
    sink.write(events);
    await sink.flush(20_000);

    for (const c of stub.calls) {
      expect(c.target).toBe('Firehose_20150804.PutRecordBatch');
      expect(c.contentType).toBe('application/x-amz-json-1.1');
      expect(c.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDTEST\/\d{8}\/eu-west-1\/firehose\/aws4_request/);
      expect(c.stream).toBe('gw-events');
      expect(c.records.length).toBeLessThanOrEqual(500);
    }
    expect(stub.calls[0].records).toHaveLength(500);
    // Accepted records, each exactly once, are the table rows of the events.
    const accepted = stub.calls.flatMap((c, n) => {
      if (n === 1) return []; // throttled
      const failed = n === 0 ? new Set(c.records.map((_, i) => i).filter((i) => i % 3 === 0)) : new Set<number>();
      return c.records.filter((_, i) => !failed.has(i));
    });
    expect(accepted.map((r) => JSON.parse(r)).sort((a, b) => (a.id < b.id ? -1 : 1)))
      .toEqual(events.map(tableRow).sort((a, b) => ((a.id as string) < (b.id as string) ? -1 : 1)));
    expect(accepted.every((r) => r.endsWith('\n'))).toBe(true);
    expect(sink.stats()).toMatchObject({ delivered: 1200, buffered: 0, failedCalls: 1, dropped: { undeliverable: 0, 'buffer-full': 0, oversized: 0 } });
  } finally {
    await stub.close();
  }
});

test('SIGTERM (a Lambda environment shutting down): queued events are delivered before the process exits', async () => {
  const stub = await startFirehoseStub(() => []);
  try {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'test/e2e/fixtures/firehose-sigterm.ts'), stub.endpoint, '42'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    await pollUntil(`the child to be ready (stderr: ${stderr})`, () => (stdout.includes('ready') ? true : undefined), 15_000);
    expect(stub.calls).toHaveLength(0); // nothing sent before the signal
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stub.calls.flatMap((c) => c.records.map((r) => JSON.parse(r).id))).toEqual(Array.from({ length: 42 }, (_, i) => `sigterm-${i}`));
  } finally {
    await stub.close();
  }
});
