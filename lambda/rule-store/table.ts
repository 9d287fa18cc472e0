/**
 * The rule table through the AWS SDK v3 document client: one Query per domain, conditional
 * single-item writes (optimistic concurrency on `revision`), batch writes that retry unprocessed
 * items, and AWS errors turned into messages that say what to fix.
 */
import { CreateTableCommand, DescribeTableCommand, DynamoDBClient, type DynamoDBClientConfig } from '@aws-sdk/client-dynamodb';
import {
  BatchWriteCommand,
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  ScanCommand,
  type BatchWriteCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { RULE_TABLE_KEY, type ManagedBy, type RuleItem } from './items';

export interface RuleTableConfig {
  readonly tableName: string;
  /** Default: AWS_REGION / AWS_DEFAULT_REGION / the profile's region; `us-east-1` for a loopback endpoint. */
  readonly region?: string;
  /** e.g. `http://127.0.0.1:8000` for DynamoDB Local. */
  readonly endpoint?: string;
  /** Per-attempt timeouts and attempts. The gateway keeps these short: a slow table must not hold requests. */
  readonly requestTimeoutMs?: number;
  readonly connectTimeoutMs?: number;
  readonly maxAttempts?: number;
  /** Use strongly consistent reads (twice the read cost). Default false. */
  readonly consistentRead?: boolean;
  /** An existing client (tests, or a Lambda that shares one). */
  readonly client?: DynamoDBDocumentClient;
}

export function isLoopbackEndpoint(endpoint: string | undefined): boolean {
  if (!endpoint) return false;
  try {
    const host = new URL(endpoint).hostname.replace(/^\[|\]$/g, '');
    return host === 'localhost' || host === '::1' || /^127\./.test(host);
  } catch {
    return false;
  }
}

function hasCredentialConfig(env: NodeJS.ProcessEnv): boolean {
  return ['AWS_ACCESS_KEY_ID', 'AWS_PROFILE', 'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_CONTAINER_CREDENTIALS_FULL_URI', 'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI'].some((k) => env[k]);
}

/** The region the client will use, or undefined (the SDK then looks in the profile). */
export function resolveRegion(config: Pick<RuleTableConfig, 'region' | 'endpoint'>, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return config.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? (isLoopbackEndpoint(config.endpoint) ? 'us-east-1' : undefined);
}

export function createDocumentClient(config: Omit<RuleTableConfig, 'tableName' | 'client' | 'consistentRead'>, env: NodeJS.ProcessEnv = process.env): DynamoDBDocumentClient {
  const c: DynamoDBClientConfig = {
    region: resolveRegion(config, env),
    maxAttempts: config.maxAttempts ?? 3,
    requestHandler: { connectionTimeout: config.connectTimeoutMs ?? 3_000, requestTimeout: config.requestTimeoutMs ?? 10_000, throwOnRequestTimeout: true },
  };
  if (config.endpoint) c.endpoint = config.endpoint;
  if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) {
    c.credentials = { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, sessionToken: env.AWS_SESSION_TOKEN || undefined };
  } else if (isLoopbackEndpoint(config.endpoint) && !hasCredentialConfig(env)) {
    // DynamoDB Local accepts any credentials; do not make people invent some.
    c.credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
  }
  return DynamoDBDocumentClient.from(new DynamoDBClient(c), {
    marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: false },
    unmarshallOptions: { wrapNumbers: false },
  });
}

/** A write lost a race: the item changed (or appeared, or vanished) since it was read. */
export class ConcurrentChangeError extends Error {
  constructor(readonly domain: string, readonly ruleId: string, detail: string) {
    super(`rule ${domain} ${ruleId} ${detail}`);
    this.name = 'ConcurrentChangeError';
  }
}

export interface WriteCondition {
  /** null: the item must not exist yet; a number: the stored revision must be this. */
  readonly revision: number | null;
  /** The stored item must be managed by this side (checked with the revision). */
  readonly source?: ManagedBy;
}

export interface BatchProgress {
  (done: number, total: number): void;
}

const BATCH_SIZE = 25; // BatchWriteItem's limit
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class RuleTable {
  readonly tableName: string;
  readonly region: string | undefined;
  readonly endpoint: string | undefined;
  readonly client: DynamoDBDocumentClient;
  private readonly consistentRead: boolean;

  constructor(config: RuleTableConfig) {
    this.tableName = config.tableName;
    this.region = resolveRegion(config);
    this.endpoint = config.endpoint;
    this.client = config.client ?? createDocumentClient(config);
    this.consistentRead = config.consistentRead ?? false;
  }

  /** Every item of one domain: one Query (more pages only past 1 MB). */
  async queryDomain(domain: string, consistent = this.consistentRead): Promise<Record<string, unknown>[]> {
    const items: Record<string, unknown>[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const r = await this.client.send(new QueryCommand({
        TableName: this.tableName,
        KeyConditionExpression: '#pk = :domain',
        ExpressionAttributeNames: { '#pk': RULE_TABLE_KEY.partitionKey },
        ExpressionAttributeValues: { ':domain': domain },
        ConsistentRead: consistent,
        ExclusiveStartKey: start,
      }));
      items.push(...((r.Items ?? []) as Record<string, unknown>[]));
      start = r.LastEvaluatedKey;
    } while (start);
    return items;
  }

  /** Every item of the table (CLI `list` and `export` without `--domain`, the deploy's sync). Never on the request path. */
  async scanAll(): Promise<Record<string, unknown>[]> {
    const items: Record<string, unknown>[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const r = await this.client.send(new ScanCommand({ TableName: this.tableName, ConsistentRead: true, ExclusiveStartKey: start }));
      items.push(...((r.Items ?? []) as Record<string, unknown>[]));
      start = r.LastEvaluatedKey;
    } while (start);
    return items;
  }

  async get(domain: string, ruleId: string): Promise<Record<string, unknown> | null> {
    const r = await this.client.send(new GetCommand({ TableName: this.tableName, Key: { [RULE_TABLE_KEY.partitionKey]: domain, [RULE_TABLE_KEY.sortKey]: ruleId }, ConsistentRead: true }));
    return (r.Item as Record<string, unknown> | undefined) ?? null;
  }

  private condition(c: WriteCondition): { ConditionExpression: string; ExpressionAttributeNames: Record<string, string>; ExpressionAttributeValues?: Record<string, unknown> } {
    if (c.revision === null) return { ConditionExpression: 'attribute_not_exists(#sk)', ExpressionAttributeNames: { '#sk': RULE_TABLE_KEY.sortKey } };
    const names: Record<string, string> = { '#rev': 'revision' };
    const values: Record<string, unknown> = { ':rev': c.revision };
    let expr = '#rev = :rev';
    if (c.source) {
      names['#src'] = 'source';
      values[':src'] = c.source;
      expr += ' AND #src = :src';
    }
    return { ConditionExpression: expr, ExpressionAttributeNames: names, ExpressionAttributeValues: values };
  }

  /** Writes one item if the stored one is as expected; else `ConcurrentChangeError`. */
  async putIf(item: RuleItem, expected: WriteCondition): Promise<void> {
    try {
      await this.client.send(new PutCommand({ TableName: this.tableName, Item: item, ...this.condition(expected) }));
    } catch (e) {
      if ((e as Error).name === 'ConditionalCheckFailedException') {
        throw new ConcurrentChangeError(item.domain, item.rule_id, expected.revision === null ? 'was created by someone else meanwhile' : `changed since it was read (expected revision ${expected.revision}${expected.source ? `, managed by ${expected.source}` : ''})`);
      }
      throw e;
    }
  }

  async deleteIf(domain: string, ruleId: string, expected: WriteCondition & { revision: number }): Promise<void> {
    try {
      await this.client.send(new DeleteCommand({ TableName: this.tableName, Key: { [RULE_TABLE_KEY.partitionKey]: domain, [RULE_TABLE_KEY.sortKey]: ruleId }, ...this.condition(expected) }));
    } catch (e) {
      if ((e as Error).name === 'ConditionalCheckFailedException') throw new ConcurrentChangeError(domain, ruleId, `changed or was deleted since it was read (expected revision ${expected.revision})`);
      throw e;
    }
  }

  /**
   * Puts and deletes in batches of 25, retrying unprocessed items with exponential backoff.
   * Unconditional (BatchWriteItem has no conditions): callers plan from a fresh read.
   */
  async batchWrite(puts: readonly RuleItem[], deletes: readonly { domain: string; rule_id: string }[], onProgress?: BatchProgress, maxAttempts = 8): Promise<void> {
    type Req = NonNullable<BatchWriteCommandInput['RequestItems']>[string][number];
    const requests: Req[] = [
      ...puts.map((Item) => ({ PutRequest: { Item } })),
      ...deletes.map((d) => ({ DeleteRequest: { Key: { [RULE_TABLE_KEY.partitionKey]: d.domain, [RULE_TABLE_KEY.sortKey]: d.rule_id } } })),
    ];
    let done = 0;
    for (let i = 0; i < requests.length; i += BATCH_SIZE) {
      let pending = requests.slice(i, i + BATCH_SIZE);
      for (let attempt = 1; pending.length; attempt++) {
        const r = await this.client.send(new BatchWriteCommand({ RequestItems: { [this.tableName]: pending } }));
        const left = (r.UnprocessedItems?.[this.tableName] ?? []) as Req[];
        done += pending.length - left.length;
        onProgress?.(done, requests.length);
        pending = left;
        if (!pending.length) break;
        if (attempt >= maxAttempts) {
          throw new Error(`${pending.length} item(s) were still unprocessed after ${maxAttempts} attempts (the table is throttling writes); run the same command again, it only writes what is missing`);
        }
        await sleep(Math.min(2_000, 50 * 2 ** attempt) * (0.5 + Math.random() / 2));
      }
    }
  }

  /** On-demand table with the rule table's keys (DynamoDB Local, or an account without the construct). */
  async create(): Promise<'created' | 'exists'> {
    try {
      await this.client.send(new CreateTableCommand({
        TableName: this.tableName,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [
          { AttributeName: RULE_TABLE_KEY.partitionKey, AttributeType: 'S' },
          { AttributeName: RULE_TABLE_KEY.sortKey, AttributeType: 'S' },
        ],
        KeySchema: [
          { AttributeName: RULE_TABLE_KEY.partitionKey, KeyType: 'HASH' },
          { AttributeName: RULE_TABLE_KEY.sortKey, KeyType: 'RANGE' },
        ],
      }));
    } catch (e) {
      if ((e as Error).name === 'ResourceInUseException') return 'exists';
      throw e;
    }
    for (let i = 0; i < 120; i++) {
      const d = await this.client.send(new DescribeTableCommand({ TableName: this.tableName }));
      if (d.Table?.TableStatus === 'ACTIVE') return 'created';
      await sleep(500);
    }
    throw new Error(`table ${this.tableName} was created but did not become ACTIVE within 60 s`);
  }

  /** Where this table is, for messages: `table "rules" in us-east-1 at http://127.0.0.1:8000`. */
  describe(): string {
    return `table "${this.tableName}"${this.region ? ` in ${this.region}` : ''}${this.endpoint ? ` at ${this.endpoint}` : ''}`;
  }
}

/** Walks `cause` and AggregateError members for a Node system error code (ECONNREFUSED, ...). */
function systemCode(e: unknown, depth = 0): string | undefined {
  if (!e || typeof e !== 'object' || depth > 4) return undefined;
  const o = e as { code?: unknown; cause?: unknown; errors?: unknown[] };
  if (typeof o.code === 'string' && /^E[A-Z]+$/.test(o.code)) return o.code;
  for (const inner of [o.cause, ...(Array.isArray(o.errors) ? o.errors : [])]) {
    const c = systemCode(inner, depth + 1);
    if (c) return c;
  }
  return undefined;
}

/** An AWS or network error as one sentence that says what to fix. */
export function explainAwsError(e: unknown, table: Pick<RuleTable, 'tableName' | 'region' | 'endpoint' | 'describe'>): string {
  const err = e as Error & { name?: string; message?: string };
  const name = err?.name ?? '';
  const msg = err?.message ?? String(e);
  const where = table.describe();
  const code = systemCode(e);
  if (name === 'ResourceNotFoundException') {
    return `${where} does not exist: check --table and --region${table.endpoint ? '' : ' (or AWS_REGION)'}; for DynamoDB Local create it with "artifact-gateway rules create-table --table ${table.tableName} --endpoint URL"`;
  }
  if (name === 'CredentialsProviderError' || /Could not load credentials|credential/i.test(msg) && !/security token|signature/i.test(msg)) {
    return 'no AWS credentials found: set AWS_PROFILE (after "aws sso login" or "aws configure"), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; for DynamoDB Local any values work (e.g. AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local)';
  }
  if (/Region is missing/i.test(msg)) return 'no AWS region: pass --region or set AWS_REGION';
  if (name === 'UnrecognizedClientException' || name === 'InvalidSignatureException' || name === 'ExpiredTokenException') {
    return `AWS rejected the credentials (${name}): check AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN (expired session? run "aws sso login")`;
  }
  if (name === 'AccessDeniedException') return `not allowed on ${where}: ${msg} (the identity needs dynamodb:Query, GetItem, PutItem, DeleteItem, BatchWriteItem and Scan on the table)`;
  if (name === 'ThrottlingException' || name === 'ProvisionedThroughputExceededException' || name === 'RequestLimitExceeded') {
    return `${where} is throttling requests (${name}): try again in a moment, or raise the table's capacity`;
  }
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'ECONNRESET' || code === 'ETIMEDOUT' || name === 'TimeoutError') {
    const what = code === 'ENOTFOUND' || code === 'EAI_AGAIN' ? 'the host name does not resolve' : code === 'ECONNREFUSED' ? 'connection refused' : 'no answer in time';
    return table.endpoint
      ? `cannot reach DynamoDB at ${table.endpoint} (${what}): is DynamoDB Local running there? Start it or fix --endpoint`
      : `cannot reach DynamoDB${table.region ? ` in ${table.region}` : ''} (${what}): check the network and --region`;
  }
  if (name === 'ValidationException') return `DynamoDB refused the request for ${where}: ${msg}`;
  return `${where}: ${name && name !== 'Error' ? `${name}: ` : ''}${msg}`;
}
