/**
 * The deployed visitor-id salt store: one DynamoDB item per UTC day in a single-region table
 * (not a global table) that every gateway region reads.
 *
 * - Same salt everywhere: the first caller of a day creates the item with a conditional put
 *   (`attribute_not_exists`); everyone else, in any region, reads it with a strongly consistent
 *   read. A global table would replicate asynchronously with last-writer-wins, so two regions
 *   could briefly hash with two different salts for the same day.
 * - Deleted within 48 hours: `maintainSalts()`, run hourly by a schedule, creates tomorrow's salt
 *   ahead of time and deletes every salt of a day before today; a salt therefore lives from noon
 *   the day before (at the earliest) to one hour after its day ends. The `expires_at` TTL
 *   attribute is only a backstop (DynamoDB TTL deletes "within a few days", not on time).
 * - Gateways hold today's salt in memory only (DailySaltCache) and forget it at midnight.
 */
import { randomBytes } from 'node:crypto';
import {
  ConditionalCheckFailedException, DeleteItemCommand, DynamoDBClient, GetItemCommand, PutItemCommand, ScanCommand,
  type AttributeValue, type DynamoDBClientConfig,
} from '@aws-sdk/client-dynamodb';
import { utcDay, type DailySaltStore } from './daily-salt';

/** Table layout, for the construct that creates it: partition key `day` (S); TTL attribute `expires_at`. */
export const SALT_TABLE = Object.freeze({ partitionKey: 'day', ttlAttribute: 'expires_at' });

const DAY_MS = 86_400_000;
const isDay = (s: string) => /^\d{4}-\d{2}-\d{2}$/.test(s) && !Number.isNaN(Date.parse(`${s}T00:00:00Z`));
const addDays = (day: string, n: number) => utcDay(new Date(Date.parse(`${day}T00:00:00Z`) + n * DAY_MS));

export interface DynamoDbSaltStoreOptions {
  readonly tableName: string;
  /** A client for the table's region (gateways in other regions read it across regions). */
  readonly client?: DynamoDBClient;
  /** Used when `client` is not given. */
  readonly clientConfig?: DynamoDBClientConfig;
}

export class DynamoDbSaltStore implements DailySaltStore {
  private readonly client: DynamoDBClient;

  constructor(private readonly opts: DynamoDbSaltStoreOptions) {
    if (!opts.tableName) throw new Error('DynamoDbSaltStore: tableName is required');
    this.client = opts.client ?? new DynamoDBClient(opts.clientConfig ?? {});
  }

  async saltFor(day: string): Promise<string> {
    if (!isDay(day)) throw new Error(`salt day must be YYYY-MM-DD, got ${JSON.stringify(day)}`);
    const existing = await this.read(day);
    if (existing) return existing;
    const created = await this.create(day);
    if (created) return created;
    // Someone else created it between our read and our put: theirs is the day's salt.
    const theirs = await this.read(day);
    if (!theirs) throw new Error(`the salt item of ${day} vanished right after it was created`);
    return theirs;
  }

  /** Strongly consistent read of a day's salt (base64), or null. */
  async read(day: string): Promise<string | null> {
    const out = await this.client.send(new GetItemCommand({
      TableName: this.opts.tableName,
      Key: { [SALT_TABLE.partitionKey]: { S: day } },
      ConsistentRead: true,
    }));
    const salt = out.Item?.salt?.B;
    return salt ? Buffer.from(salt).toString('base64') : null;
  }

  /** Creates the day's salt unless it exists; returns it, or null when another caller was first. */
  async create(day: string): Promise<string | null> {
    const salt = randomBytes(32);
    try {
      await this.client.send(new PutItemCommand({
        TableName: this.opts.tableName,
        Item: {
          [SALT_TABLE.partitionKey]: { S: day },
          salt: { B: salt },
          // Backstop only: the day after next, 00:00 UTC.
          [SALT_TABLE.ttlAttribute]: { N: String(Math.floor(Date.parse(`${addDays(day, 2)}T00:00:00Z`) / 1000)) },
        },
        ConditionExpression: 'attribute_not_exists(#d)',
        ExpressionAttributeNames: { '#d': SALT_TABLE.partitionKey },
      }));
      return salt.toString('base64');
    } catch (e) {
      if (e instanceof ConditionalCheckFailedException || (e as Error).name === 'ConditionalCheckFailedException') return null;
      throw e;
    }
  }

  /** Every day that has a salt (the table holds two or three items; never the salts themselves). */
  async days(): Promise<string[]> {
    const days: string[] = [];
    let start: Record<string, AttributeValue> | undefined;
    do {
      const out = await this.client.send(new ScanCommand({
        TableName: this.opts.tableName,
        ProjectionExpression: '#d',
        ExpressionAttributeNames: { '#d': SALT_TABLE.partitionKey },
        ConsistentRead: true,
        ExclusiveStartKey: start,
      }));
      for (const item of out.Items ?? []) if (item[SALT_TABLE.partitionKey]?.S) days.push(item[SALT_TABLE.partitionKey].S!);
      start = out.LastEvaluatedKey;
    } while (start);
    return days.sort();
  }

  async delete(day: string): Promise<void> {
    await this.client.send(new DeleteItemCommand({ TableName: this.opts.tableName, Key: { [SALT_TABLE.partitionKey]: { S: day } } }));
  }
}

export interface SaltMaintenance {
  /** Tomorrow's salt was created by this run (false: it existed). */
  readonly createdTomorrow: boolean;
  /** Days whose salt this run deleted. */
  readonly deleted: string[];
}

/**
 * The hourly job of the deployed salt store: create tomorrow's salt ahead of time (so no region
 * ever races to create one at midnight) and delete the salt of every day before today.
 */
export async function maintainSalts(store: DynamoDbSaltStore, now: Date = new Date()): Promise<SaltMaintenance> {
  const today = utcDay(now);
  const createdTomorrow = (await store.create(addDays(today, 1))) !== null;
  const deleted = (await store.days()).filter((d) => d < today);
  for (const d of deleted) await store.delete(d);
  return { createdTomorrow, deleted };
}
