/**
 * The functions as esbuild bundles them (NodejsFunction, local bundling): the gateway bundle
 * carries the validated rules and, run with the Lambda runtime's streaming API stood in, answers
 * a real function URL event; the Lambda@Edge, custom resource and salt maintenance bundles are complete.
 */
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { createHash } from 'node:crypto';
import type { Template } from 'aws-cdk-lib/assertions';
import { synthGateway, resourcesOf, tempOutdir, type Synthesized } from './helpers';
import { functionUrlEvent, originRequestEvent } from '../unit/aws-fixtures';

let outdir: string;
let s: Synthesized;
beforeAll(() => {
  outdir = tempOutdir();
  s = synthGateway({ regions: ['us-east-1'] }, { bundle: true, outdir });
  s.app.synth();
});
afterAll(() => {
  delete (globalThis as { awslambda?: unknown }).awslambda;
});

/** The bundle directory of the function whose logical id starts with `prefix`. */
function assetDir(t: Template, match: (id: string, fn: { Properties: Record<string, any> }) => boolean): string {
  const [[, fn]] = resourcesOf(t, 'AWS::Lambda::Function').filter(([id, f]) => match(id, f));
  const key: string = fn.Properties.Code.S3Key;
  return path.join(outdir, `asset.${key.replace(/\.zip$/, '')}`);
}

test('the gateway bundle holds the handler and the validated rules, and answers a function URL event', async () => {
  const dir = assetDir(s.regional['us-east-1'], (_id, f) => f.Properties.FunctionName === 'Gw-Gateway-us-east-1');
  expect(fs.readdirSync(dir).sort()).toEqual(['index.js', 'rules.json']);
  expect(JSON.parse(fs.readFileSync(path.join(dir, 'rules.json'), 'utf8'))).toEqual({ rules: s.gateway.rules });
  // Powertools is bundled; the AWS SDK is left to the runtime.
  const code = fs.readFileSync(path.join(dir, 'index.js'), 'utf8');
  expect(code).toContain('POWERTOOLS');
  expect(code).not.toMatch(/require\("@aws-lambda-powertools/);

  // The Lambda runtime provides the AWS SDK the bundle leaves out; here, the project's copy does.
  fs.symlinkSync(path.resolve(__dirname, '../../node_modules'), path.join(dir, 'node_modules'), 'dir');
  const heads: unknown[] = [];
  (globalThis as { awslambda?: unknown }).awslambda = {
    streamifyResponse: (fn: unknown) => fn,
    HttpResponseStream: { from: (stream: unknown, head: unknown) => (heads.push(head), stream) },
  };
  const lines: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => (lines.push(String(chunk)), true));
  try {
    const { handler } = require(path.join(dir, 'index.js')) as { handler: (e: unknown, s: PassThrough, c: unknown) => Promise<void> };
    const out = new PassThrough();
    out.resume();
    await handler(functionUrlEvent({ rawPath: '/rocket/2.0.0/rocket-darwin-arm64.tar.gz', headers: { 'user-agent': 'curl/8.5.0' } }), out, { functionName: 'Gw-Gateway-us-east-1', awsRequestId: 'req-1' });
  } finally {
    spy.mockRestore();
    void write;
  }
  expect(heads).toEqual([expect.objectContaining({ statusCode: 307, headers: expect.objectContaining({ location: 'https://github.com/acme/rocket/releases/download/v2.0.0/rocket-darwin-arm64.tar.gz', 'cache-control': 'private, no-store' }) })]);
  const logged = lines.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  expect(logged.find((l) => l.message === 'gateway event')?.event).toMatchObject({ kind: 'file', package_id: 'rocket-cli', download: true, country: 'DE' });
  // Powertools metrics, in embedded metric format, with the names the alarms use.
  const emf = logged.find((l) => l._aws?.CloudWatchMetrics);
  expect(emf).toMatchObject({ Requests: 1, Downloads: 1, RulesStale: 0, service: 'artifact-gateway', gateway: 'default' });
  expect(lines.join('')).not.toContain('203.0.113.9');
});

test('the Lambda@Edge bundle hashes bodies as deployed', async () => {
  const dir = assetDir(s.global, (id) => id.startsWith('GatewayPayloadHash'));
  const { handler } = require(path.join(dir, 'index.js')) as { handler: (e: unknown) => Promise<{ headers: Record<string, Array<{ value: string }>> }> };
  const body = Buffer.from('{"event":"install"}');
  const out = await handler(originRequestEvent({ method: 'POST', uri: '/events', body }));
  expect(out.headers['x-amz-content-sha256'][0].value).toBe(createHash('sha256').update(body).digest('hex'));
  expect(fs.statSync(path.join(dir, 'index.js')).size).toBeLessThan(1024 * 1024);
});

test('the custom resource bundles leave the AWS SDK to the runtime', () => {
  const dir = assetDir(s.regional['us-east-1'], (id) => id.startsWith('RulesDeployRulesFunction'));
  const code = fs.readFileSync(path.join(dir, 'index.js'), 'utf8');
  expect(code).toMatch(/require\("@aws-sdk\/client-dynamodb"\)/);
  expect(code).toMatch(/require\("@aws-sdk\/client-s3"\)/);
});

test('the salt maintenance bundle leaves the AWS SDK to the runtime and refuses to run without its table', async () => {
  const dir = assetDir(s.regional['us-east-1'], (id) => id.startsWith('SaltsMaintenanceFunction'));
  const code = fs.readFileSync(path.join(dir, 'index.js'), 'utf8');
  expect(code).toMatch(/require\("@aws-sdk\/client-dynamodb"\)/);
  // The Lambda runtime provides the AWS SDK the bundle leaves out; here, the project's copy does.
  fs.symlinkSync(path.resolve(__dirname, '../../node_modules'), path.join(dir, 'node_modules'), 'dir');
  const { handler } = require(path.join(dir, 'index.js')) as { handler: () => Promise<unknown> };
  const saved = process.env.SALT_TABLE_NAME;
  delete process.env.SALT_TABLE_NAME;
  try {
    await expect(handler()).rejects.toThrow('salt maintenance: SALT_TABLE_NAME is not set');
  } finally {
    if (saved !== undefined) process.env.SALT_TABLE_NAME = saved;
  }
});
