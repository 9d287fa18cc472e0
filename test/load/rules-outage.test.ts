/**
 * DynamoDB unavailable mid-load: the gateway serves from the rule table (`serve --rules-table`,
 * TTL 1 s) under continuous load on 16 keep-alive connections; a rule changed with the CLI is
 * served, then DynamoDB Local is killed for several TTLs: not one request fails, and the changed
 * rule (not the one before it) keeps being served. Then DynamoDB Local comes back and the next
 * change is served. Then it is frozen (SIGSTOP: connections accepted, never answered, as in a
 * network partition) for as long: still no failed request. (test/e2e/rules-dynamodb.test.ts
 * covers the kill at a low rate.)
 */
import fs from 'node:fs';
import path from 'node:path';
import { delay, Gateway, makeTempDir, pollUntil, removeDir, runCli, startGateway, writeJson, type CliResult } from '../e2e/helpers';
import { DynamoDbLocal } from '../e2e/dynamodb-local';
import { LoadClient } from './load-helpers';

jest.setTimeout(150_000);

const AWS_ENV = { AWS_ACCESS_KEY_ID: 'local', AWS_SECRET_ACCESS_KEY: 'local', AWS_REGION: 'us-east-1', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
// The gateway this file starts inherits them.
Object.assign(process.env, AWS_ENV);

const TTL_S = 1;
const CONNECTIONS = 16;
const OUTAGE_MS = 6_000;
const HOSTS = ['a.example.test', 'b.example.test', 'c.example.test'];
const TABLE = 'rules-outage';

let dir: string;
let ddb: DynamoDbLocal | undefined;
let gw: Gateway | undefined;

beforeAll(async () => {
  dir = makeTempDir('gw-load-rules-outage-');
  fs.mkdirSync(path.join(dir, 'db'));
  ddb = await DynamoDbLocal.start({ dbPath: path.join(dir, 'db') });
});

afterAll(async () => {
  await gw?.kill();
  await ddb?.kill();
  removeDir(dir);
});

function cli(args: string[], input?: string): Promise<CliResult> {
  return runCli([...args, '--table', TABLE, '--endpoint', ddb!.endpoint], { input, env: { ...process.env, ...AWS_ENV } });
}

async function ok(args: string[], input?: string): Promise<string> {
  const r = await cli(args, input);
  if (r.code !== 0) throw new Error(`rules ${args.join(' ')} exited ${r.code}: ${r.stdout} ${r.stderr}`);
  return r.stdout;
}

const fileRule = (host: string, target: string) => ({ type: 'file-v1', domain: host, 'incoming-path': '/f/{v}', 'outgoing-url': `https://${target}/dl/{v}`, 'package-id': 'pkg' });

test('DynamoDB Local killed, then frozen, under load: 0 failed requests, the change made before the kill keeps being served; after it is back, the next change is served', async () => {
  await ok(['rules', 'create-table']);
  await ok(['rules', 'import', writeJson(path.join(dir, 'rules.json'), { rules: HOSTS.map((h) => fileRule(h, h)) })]);
  gw = await startGateway({ events: path.join(dir, 'events'), extraArgs: ['--rules-table', TABLE, '--dynamodb-endpoint', ddb!.endpoint, '--rules-ttl', String(TTL_S)] });

  /** Where a.example.test may send its requests now: the rule's target before a change, both while one propagates. */
  let allowedForA = new Set(['a.example.test']);
  const seenForA = new Set<string>();
  let answeredInOutage = 0;
  let inOutage = false;
  const load = new LoadClient(gw.port, CONNECTIONS, (i) => {
    const host = HOSTS[i % HOSTS.length];
    return { path: `/f/${host[0]}-${i}`, headers: { host, 'user-agent': 'curl/8.5.0' } };
  }, (a, p) => {
    const [letter, n] = p.slice('/f/'.length).split('-');
    const host = `${letter}.example.test`;
    const m = /^https:\/\/([^/]+)\/dl\/(.+)$/.exec(String(a.headers.location ?? ''));
    if (a.status !== 307 || !m || m[2] !== `${letter}-${n}`) return `${a.status} ${a.headers.location ?? ''} ${a.body.toString('utf8').slice(0, 200)}`;
    if (letter === 'a') {
      seenForA.add(m[1]);
      if (!allowedForA.has(m[1])) return `served by ${m[1]}, expected one of ${[...allowedForA]}`;
    } else if (m[1] !== host) return `served by ${m[1]}`;
    if (inOutage) answeredInOutage++;
    return null;
  });

  try {
    await pollUntil('load to build up', () => (load.answered > 2_000 ? true : undefined), 20_000, 20);
    // A rule change before the outage; once served, the old target must never come back.
    allowedForA = new Set(['a.example.test', 'moved.example.test']);
    await ok(['rules', 'put', '-'], JSON.stringify(fileRule('a.example.test', 'moved.example.test')));
    await pollUntil('the change to be served', () => (seenForA.has('moved.example.test') ? true : undefined), TTL_S * 1000 + 10_000, 20);
    await delay(200); // requests answered just before the swap are still arriving
    allowedForA = new Set(['moved.example.test']);

    const stderrBefore = gw.stderr.length;
    await ddb!.kill();
    inOutage = true;
    await delay(OUTAGE_MS);
    inOutage = false;
    // Several TTLs without DynamoDB: refreshes failed, and stale-if-error answered.
    await gw.waitForStderr(/warn: rules: cannot refresh [abc]\.example\.test from DynamoDB .*serving the last good rules/, 5_000, stderrBefore);
    expect(answeredInOutage).toBeGreaterThan(1_000);

    await ddb!.launch();
    allowedForA = new Set(['moved.example.test', 'again.example.test']);
    await ok(['rules', 'put', '-'], JSON.stringify(fileRule('a.example.test', 'again.example.test')));
    await pollUntil('the change after recovery', () => (seenForA.has('again.example.test') ? true : undefined), 20_000, 20);
    await gw.waitForStderr(/rules: a\.example\.test loaded again after \d+ failed attempts?/, 10_000, stderrBefore);
    await delay(200);
    allowedForA = new Set(['again.example.test']);

    // A partition: DynamoDB accepts connections and never answers (the rule store's requests time out).
    const beforeFreeze = load.answered;
    const stderrBeforeFreeze = gw.stderr.length;
    ddb!.freeze();
    await delay(OUTAGE_MS);
    expect(load.answered - beforeFreeze).toBeGreaterThan(1_000);
    ddb!.thaw();
    // Loads failed meanwhile (failure lines are logged at most once a minute per domain; recoveries always).
    await gw.waitForStderr(/rules: [abc]\.example\.test loaded again after \d+ failed attempts?/, 15_000, stderrBeforeFreeze);
  } finally {
    ddb?.thaw();
    await load.stop();
  }
  console.log(`rules outage: ${load.answered} requests answered, ${answeredInOutage} during the ${OUTAGE_MS} ms outage, ${load.failures.length} failed`);
  expect(load.failures.slice(0, 20)).toEqual([]);
  expect(load.failures).toHaveLength(0);
  expect(gw.running()).toBe(true);
  expect(await gw.stop()).toEqual({ code: 0, signal: null });
});
