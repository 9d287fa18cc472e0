/**
 * The deployed path's event sink failing: the gateway function's handler (lambda/aws/handler.ts,
 * wired as the construct configures it: rules from the table on DynamoDB Local, events to a
 * Firehose API stub) under sustained back-to-back invocations, as one Lambda environment runs
 * them, while the stub answers 500s, throttles, fails part of each batch, and hangs. Requests are
 * still answered; failed records are retried, at most one call per invocation while Firehose
 * fails; the queue stays within the sink's cap (10,000 records) with drops counted in the
 * `EventsDropped` metric; and once the stub recovers, the retried events arrive, once each.
 * Every event is either delivered or counted as dropped.
 */
import http from 'node:http';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { DynamoDbLocal } from '../e2e/dynamodb-local';
import { makeTempDir, pollUntil, removeDir, runCli, writeJson, type CliResult } from '../e2e/helpers';
import { functionUrlEvent } from '../unit/aws-fixtures';

jest.setTimeout(150_000);

const TABLE = 'gw-rules';
const DOMAIN = 'dl.example.com';
/** FirehoseEventSink's default cap on queued records (lambda/analytics/firehose-sink.ts). */
const MAX_BUFFERED_EVENTS = 10_000;
/** Back-to-back invocations during the long outage: more than the cap, so it must drop. */
const LONG_OUTAGE_INVOCATIONS = 12_000;

type Mode = 'ok' | 'error-500' | 'throttle' | 'partial' | 'hang';

let dir: string;
let ddb: DynamoDbLocal;
let firehose: http.Server;
let mode: Mode = 'ok';
const calls: Record<Mode, number> = { ok: 0, 'error-500': 0, throttle: 0, partial: 0, hang: 0 };
/** Delivered rows by event id, and how often each id arrived. */
const delivered = new Map<string, { path: string; times: number }>();
const hanging = new Set<http.ServerResponse>();
type Handler = (event: unknown, stream: PassThrough, context: unknown) => Promise<void>;
let handler: Handler;
const heads: Array<{ statusCode: number; headers: Record<string, string> }> = [];
/** What the function wrote to stdout and stderr: Powertools' JSON log lines and EMF metric lines. */
const stdoutLines: string[] = [];
const savedEnv = { ...process.env };

function cli(args: string[]): Promise<CliResult> {
  return runCli([...args, '--table', TABLE, '--endpoint', ddb.endpoint, '--region', 'us-east-1'], { env: { ...process.env, AWS_ACCESS_KEY_ID: 'local', AWS_SECRET_ACCESS_KEY: 'local' } });
}

/** Firehose's JSON 1.1 API (PutRecordBatch), failing as `mode` says. */
function firehoseStub(req: http.IncomingMessage, res: http.ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const m = mode;
    calls[m]++;
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { Records: Array<{ Data: string }> };
    const rows = body.Records.map((r) => JSON.parse(Buffer.from(r.Data, 'base64').toString('utf8')) as { id: string; path: string });
    const error = (status: number, type: string, message: string) => {
      res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-errortype': type });
      res.end(JSON.stringify({ __type: type, message }));
    };
    const accept = (failed: (i: number) => boolean) => {
      rows.forEach((row, i) => {
        if (failed(i)) return;
        const d = delivered.get(row.id);
        if (d) d.times++;
        else delivered.set(row.id, { path: row.path, times: 1 });
      });
      const responses = rows.map((_, i) => (failed(i) ? { ErrorCode: 'ServiceUnavailableException', ErrorMessage: 'Slow down.' } : { RecordId: `r${i}` }));
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(JSON.stringify({ FailedPutCount: responses.filter((r) => 'ErrorCode' in r).length, Encrypted: false, RequestResponses: responses }));
    };
    switch (m) {
      case 'ok':
        return accept(() => false);
      case 'error-500':
        return error(500, 'InternalFailure', 'We encountered an internal error. Please try again.');
      case 'throttle':
        return error(400, 'ThrottlingException', 'Rate exceeded');
      case 'partial':
        return accept((i) => i % 2 === 0);
      case 'hang':
        hanging.add(res); // never answered (the client's request timeout ends it)
        res.once('close', () => hanging.delete(res));
    }
  });
}

let seq = 0;
/** One invocation, as the Lambda runtime makes it; resolves when the handler has returned. */
async function invoke(label: string): Promise<void> {
  const before = heads.length;
  const out = new PassThrough();
  let ended = false;
  out.on('end', () => (ended = true)).resume();
  await handler(functionUrlEvent({ rawPath: `/tool/${label}-${seq++}.tgz`, host: DOMAIN, headers: { 'user-agent': 'curl/8.5.0' } }), out, { functionName: 'Gw-Gateway-us-east-1', awsRequestId: `req-${seq}` });
  await new Promise((r) => setImmediate(r));
  if (heads.length !== before + 1 || heads[before].statusCode !== 307 || !ended) {
    throw new Error(`invocation ${label} was not answered with a complete 307: ${JSON.stringify(heads.slice(before))}, ended ${ended}`);
  }
}

const totalCalls = () => Object.values(calls).reduce((a, b) => a + b, 0);
const jsonLines = () => stdoutLines.flatMap((l) => l.split('\n')).filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
/** Sum of the EventsDropped metric over every invocation's EMF line. */
const droppedMetric = () => jsonLines().filter((l) => '_aws' in l && 'EventsDropped' in l).reduce((sum, l) => sum + [l.EventsDropped].flat().reduce((a: number, b) => a + Number(b), 0), 0);
const dropLines = () => jsonLines().filter((l) => l.message === 'analytics events dropped') as Array<{ count: number; reasons: Record<string, number>; queued: number }>;

beforeAll(async () => {
  dir = makeTempDir('gw-load-firehose-');
  ddb = await DynamoDbLocal.start();
  firehose = http.createServer(firehoseStub);
  await new Promise<void>((r) => firehose.listen(0, '127.0.0.1', r));
  expect((await cli(['rules', 'create-table'])).code).toBe(0);
  const rule = { type: 'file-v1', domain: DOMAIN, 'incoming-path': '/tool/{version}.tgz', 'outgoing-url': 'https://files.example.net/{version}.tgz', 'package-id': 'tool' };
  expect(await cli(['rules', 'import', writeJson(path.join(dir, 'rules.json'), { rules: [rule] })])).toMatchObject({ code: 0 });

  Object.assign(process.env, {
    AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'local', AWS_SECRET_ACCESS_KEY: 'local',
    AWS_ENDPOINT_URL_DYNAMODB: ddb.endpoint,
    AWS_ENDPOINT_URL_FIREHOSE: `http://127.0.0.1:${(firehose.address() as AddressInfo).port}`,
    RULES_TABLE_NAME: TABLE, RULES_TTL_SECONDS: '60',
    EVENTS_STREAM_NAME: 'gw-events', EVENTS_STREAM_REGION: 'us-east-1',
    POWERTOOLS_DEV: 'false', POWERTOOLS_LOG_LEVEL: 'WARN', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  });
  (globalThis as { awslambda?: unknown }).awslambda = {
    streamifyResponse: (fn: unknown) => fn,
    HttpResponseStream: { from: (stream: unknown, head: { statusCode: number; headers: Record<string, string> }) => (heads.push(head), stream) },
  };
  // Powertools writes EMF metrics to stdout and warnings to stderr, as JSON lines: keep those for the assertions, out of the test output.
  for (const stream of [process.stdout, process.stderr]) {
    const write = stream.write.bind(stream) as (chunk: string | Uint8Array, ...rest: unknown[]) => boolean;
    jest.spyOn(stream, 'write').mockImplementation(((chunk: string | Uint8Array, ...rest: unknown[]) => {
      const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
      if (!text.startsWith('{')) return write(chunk, ...rest);
      stdoutLines.push(text);
      return true;
    }) as typeof stream.write);
  }
  jest.isolateModules(() => {
    handler = (require('../../lambda/aws/handler') as { handler: Handler }).handler;
  });
});

afterAll(async () => {
  jest.restoreAllMocks();
  process.env = savedEnv;
  for (const res of hanging) res.destroy();
  await ddb?.kill();
  firehose?.closeAllConnections();
  await new Promise((r) => firehose?.close(r));
  removeDir(dir);
});

test('Firehose failing under sustained invocations: every request answered, records retried, the queue capped with drops counted, everything delivered or counted once it recovers', async () => {
  // Healthy: each invocation delivers its own event before it ends.
  mode = 'ok';
  for (let i = 0; i < 100; i++) await invoke('healthy');
  expect([...delivered.values()].filter((d) => d.path.startsWith('/tool/healthy-')).length).toBe(100);

  // Each fault for a few hundred invocations, then recovery: every event of it arrives, none is dropped.
  const phases: Record<string, { invocations: number; maxCallsPerInvocation: number; calls: number }> = {};
  for (const m of ['error-500', 'throttle', 'partial', 'hang'] as const) {
    mode = m;
    const before = calls[m];
    let maxCalls = 0;
    const n = m === 'hang' ? 100 : 300;
    for (let i = 0; i < n; i++) {
      const callsBefore = totalCalls();
      await invoke(m);
      maxCalls = Math.max(maxCalls, totalCalls() - callsBefore);
    }
    phases[m] = { invocations: n, maxCallsPerInvocation: maxCalls, calls: calls[m] - before };
    // The fault was met; and while failing, an invocation made at most one call (a hanging one ends at the client's timeout).
    expect({ m, met: phases[m].calls > 0, maxCallsPerInvocation: maxCalls }).toEqual({ m, met: true, maxCallsPerInvocation: 1 });
    mode = 'ok';
    await pollUntil(`the events of the ${m} phase to arrive`, async () => {
      await invoke('recovered');
      return delivered.size + droppedMetric() === seq ? true : undefined;
    }, 20_000, 50);
    expect({ m, dropped: droppedMetric(), delivered: [...delivered.values()].filter((d) => d.path.startsWith(`/tool/${m}-`)).length }).toEqual({ m, dropped: 0, delivered: n });
  }

  // A long outage: more events than the queue may hold.
  mode = 'error-500';
  for (let i = 0; i < LONG_OUTAGE_INVOCATIONS; i++) await invoke('long-outage');

  // Recovery: the next invocations deliver what is still queued (after the backoff, at most 2 s).
  mode = 'ok';
  await pollUntil('every event delivered or counted as dropped', async () => {
    await invoke('recovered');
    return delivered.size + droppedMetric() === seq ? true : undefined;
  }, 20_000, 50);

  const rows = [...delivered.values()];
  console.log(`firehose faults: ${seq} invocations (${JSON.stringify(phases)}); ${delivered.size} events delivered, ${droppedMetric()} dropped; stub calls ${JSON.stringify(calls)}`);
  // Delivered once each (a failed record is retried, never duplicated by a retry of its whole batch).
  expect(rows.filter((d) => d.times !== 1)).toEqual([]);
  // Retried events arrived: events of every failing phase were delivered after all.
  // The queue never held more than its cap: nothing was delivered during the long outage, so its delivered events were all queued at once.
  const longDelivered = rows.filter((d) => d.path.startsWith('/tool/long-outage-')).length;
  expect(longDelivered).toBeGreaterThan(0);
  expect(longDelivered).toBeLessThanOrEqual(MAX_BUFFERED_EVENTS);
  expect(droppedMetric()).toBeGreaterThanOrEqual(LONG_OUTAGE_INVOCATIONS - MAX_BUFFERED_EVENTS);
  // Drops are logged at most once a minute (with the counts by reason since the last line), not per event or per request.
  const lines = dropLines();
  expect(lines.length).toBeGreaterThanOrEqual(1);
  expect(lines.length).toBeLessThanOrEqual(2);
  expect(lines.reduce((a, l) => a + l.count, 0)).toBeLessThanOrEqual(droppedMetric());
  for (const l of lines) expect(l.queued).toBeLessThanOrEqual(MAX_BUFFERED_EVENTS);
});
