/**
 * The deployed gateway function's entry point (lambda/aws/handler.ts), wired as the construct
 * configures it (RULES_TABLE_NAME, EVENTS_STREAM_NAME), against AWS's DynamoDB Local and a local
 * stub of the Firehose API: it answers from the rules in the table, serves a rule changed with
 * the `rules` CLI within the TTL, and delivers its events through Firehose.
 */
import http from 'node:http';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { DynamoDbLocal } from './dynamodb-local';
import { makeTempDir, pollUntil, removeDir, runCli, writeJson, type CliResult } from './helpers';
import { functionUrlEvent } from '../unit/aws-fixtures';

jest.setTimeout(90_000);

const TABLE = 'gw-rules';
const DOMAIN = 'dl.example.com';
const rule = (target: string) => ({ type: 'file-v1', domain: DOMAIN, 'incoming-path': '/tool/{version}.tgz', 'outgoing-url': `${target}/{version}.tgz`, 'package-id': 'tool' });

let dir: string;
let ddb: DynamoDbLocal;
let firehose: http.Server;
const delivered: Array<{ stream: string; records: Array<Record<string, unknown>> }> = [];
type Handler = (event: unknown, stream: PassThrough, context: unknown) => Promise<void>;
let handler: Handler;
const heads: Array<{ statusCode: number; headers: Record<string, string> }> = [];
const savedEnv = { ...process.env };

function cli(args: string[], input?: string): Promise<CliResult> {
  return runCli([...args, '--table', TABLE, '--endpoint', ddb.endpoint, '--region', 'us-east-1'], { input, env: { ...process.env, AWS_ACCESS_KEY_ID: 'local', AWS_SECRET_ACCESS_KEY: 'local' } });
}

async function request(rawPath: string): Promise<{ statusCode: number; headers: Record<string, string> }> {
  const before = heads.length;
  const out = new PassThrough();
  out.resume();
  await handler(functionUrlEvent({ rawPath, host: DOMAIN, headers: { 'user-agent': 'curl/8.5.0' } }), out, { functionName: 'Gw-Gateway-us-east-1', awsRequestId: 'req' });
  expect(heads.length).toBe(before + 1);
  return heads[heads.length - 1];
}

beforeAll(async () => {
  dir = makeTempDir('gw-e2e-lambda-');
  ddb = await DynamoDbLocal.start();
  // Firehose's JSON 1.1 API: PutRecordBatch, every record accepted.
  firehose = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { DeliveryStreamName: string; Records: Array<{ Data: string }> };
      const records = body.Records.map((r) => JSON.parse(Buffer.from(r.Data, 'base64').toString('utf8')) as Record<string, unknown>);
      delivered.push({ stream: body.DeliveryStreamName, records });
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(JSON.stringify({ FailedPutCount: 0, Encrypted: false, RequestResponses: records.map((_, i) => ({ RecordId: `r${i}` })) }));
    });
  });
  await new Promise<void>((r) => firehose.listen(0, '127.0.0.1', r));

  expect((await cli(['rules', 'create-table'])).code).toBe(0);
  const imported = await cli(['rules', 'import', writeJson(path.join(dir, 'rules.json'), { rules: [rule('https://old.example.net')] })]);
  expect(imported).toMatchObject({ code: 0 });

  Object.assign(process.env, {
    AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'local', AWS_SECRET_ACCESS_KEY: 'local',
    AWS_ENDPOINT_URL_DYNAMODB: ddb.endpoint,
    AWS_ENDPOINT_URL_FIREHOSE: `http://127.0.0.1:${(firehose.address() as AddressInfo).port}`,
    RULES_TABLE_NAME: TABLE, RULES_TTL_SECONDS: '1',
    EVENTS_STREAM_NAME: 'gw-events', EVENTS_STREAM_REGION: 'us-east-1',
    POWERTOOLS_DEV: 'false', POWERTOOLS_LOG_LEVEL: 'ERROR',
  });
  (globalThis as { awslambda?: unknown }).awslambda = {
    streamifyResponse: (fn: unknown) => fn,
    HttpResponseStream: { from: (stream: unknown, head: { statusCode: number; headers: Record<string, string> }) => (heads.push(head), stream) },
  };
  jest.isolateModules(() => {
    handler = (require('../../lambda/aws/handler') as { handler: Handler }).handler;
  });
});

afterAll(async () => {
  process.env = savedEnv;
  await ddb?.kill();
  await new Promise((r) => firehose?.close(r));
  removeDir(dir);
});

test('answers from the rules table, and serves a rule changed with the CLI within the TTL', async () => {
  expect(await request('/tool/1.2.tgz')).toMatchObject({ statusCode: 307, headers: { location: 'https://old.example.net/1.2.tgz', 'cache-control': 'private, no-store' } });
  const put = await cli(['rules', 'put', '-'], JSON.stringify(rule('https://new.example.net')));
  expect(put.code).toBe(0);
  const changedAt = Date.now();
  await pollUntil('the changed rule', async () => ((await request('/tool/1.3.tgz')).headers.location === 'https://new.example.net/1.3.tgz' ? true : undefined), 10_000, 100);
  // TTL 1 s: the change is served within the TTL plus one Query (and this loop's own pace).
  expect(Date.now() - changedAt).toBeLessThan(5_000);
});

test('an unknown host gets 404 from the table without failing', async () => {
  const out = new PassThrough();
  out.resume();
  await handler(functionUrlEvent({ rawPath: '/x', host: 'nobody.example.com' }), out, { functionName: 'f', awsRequestId: 'r' });
  expect(heads[heads.length - 1].statusCode).toBe(404);
});

test('events go to the Firehose stream, one JSON row per event, with no client address', async () => {
  await pollUntil('a delivered download', () => (delivered.some((d) => d.records.some((r) => r.path === '/tool/1.2.tgz')) ? true : undefined), 10_000, 50);
  expect(new Set(delivered.map((d) => d.stream))).toEqual(new Set(['gw-events']));
  const row = delivered.flatMap((d) => d.records).find((r) => r.path === '/tool/1.2.tgz')!;
  expect(row).toMatchObject({ kind: 'file', action: 'redirect', download: true, package_id: 'tool', domain: DOMAIN, client_name: 'curl', status: 307 });
  expect(typeof row.visitor_id).toBe('string');
  // The fixture's viewer address (CloudFront-Viewer-Address) and X-Forwarded-For never reach a record.
  expect(JSON.stringify(delivered)).not.toMatch(/203\.0\.113\.9|130\.176\.1\.2/);
});
