/**
 * Table access details that DynamoDB Local never exercises: BatchWriteItem's unprocessed items
 * (a throttled table) with a fake client, and AWS errors turned into what-to-fix sentences.
 */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { explainAwsError, isLoopbackEndpoint, resolveRegion, RuleTable } from '../../lambda/rule-store/table';
import { toItems } from '../../lambda/rule-store/items';

type Req = { PutRequest?: { Item: Record<string, unknown> }; DeleteRequest?: { Key: Record<string, unknown> } };

/** Answers BatchWrite calls, leaving the first `unprocessed[i]` requests of call i unprocessed. */
function fakeClient(unprocessed: number[]) {
  const calls: Req[][] = [];
  const client = {
    send: async (command: { input: { RequestItems: Record<string, Req[]> } }) => {
      const reqs = command.input.RequestItems.rules;
      calls.push(reqs);
      const left = reqs.slice(0, unprocessed[calls.length - 1] ?? 0);
      return { UnprocessedItems: left.length ? { rules: left } : {} };
    },
  };
  return { client: client as unknown as DynamoDBDocumentClient, calls };
}

const items = (n: number) => toItems(Array.from({ length: n }, (_, i) => ({ type: 'file-v1', domain: 'get.example.test', 'incoming-path': `/f${i}`, 'outgoing-url': null, 'package-id': 'p' })), { source: 'runtime' }).items;

describe('batch writes', () => {
  test('25 requests per call; unprocessed items are sent again until none is left; progress counts what was written', async () => {
    const { client, calls } = fakeClient([0, 10, 4, 0]);
    const table = new RuleTable({ tableName: 'rules', client });
    const progress: Array<[number, number]> = [];
    await table.batchWrite(items(40), [{ domain: 'get.example.test', rule_id: 'file-v1:0000000000000000' }], (d, t) => progress.push([d, t]));
    expect(calls.map((c) => c.length)).toEqual([25, 16, 10, 4]);
    // The retried requests are exactly the unprocessed ones.
    expect(calls[2]).toEqual(calls[1].slice(0, 10));
    expect(calls[1][15]).toEqual({ DeleteRequest: { Key: { domain: 'get.example.test', rule_id: 'file-v1:0000000000000000' } } });
    expect(progress).toEqual([[25, 41], [31, 41], [37, 41], [41, 41]]);
    const written = calls.flat().filter((r) => r.PutRequest).map((r) => r.PutRequest!.Item['incoming-path']);
    expect(new Set(written).size).toBe(40);
  });

  test('gives up after maxAttempts with a message that says re-running is safe', async () => {
    const { client } = fakeClient([5, 5, 5]);
    const table = new RuleTable({ tableName: 'rules', client });
    await expect(table.batchWrite(items(5), [], undefined, 3)).rejects.toThrow(/5 item\(s\) were still unprocessed after 3 attempts \(the table is throttling writes\); run the same command again/);
  });
});

describe('errors say what to fix', () => {
  const local = new RuleTable({ tableName: 'rules', endpoint: 'http://127.0.0.1:8000', client: {} as DynamoDBDocumentClient });
  const aws = new RuleTable({ tableName: 'rules', region: 'eu-west-1', client: {} as DynamoDBDocumentClient });
  const err = (name: string, message = name, extra: Record<string, unknown> = {}) => Object.assign(new Error(message), { name, ...extra });

  test.each([
    [aws, err('ResourceNotFoundException', 'Requested resource not found'), /^table "rules" in eu-west-1 does not exist: check --table and --region \(or AWS_REGION\)/],
    [aws, err('CredentialsProviderError', 'Could not load credentials from any providers'), /^no AWS credentials found: set AWS_PROFILE/],
    [aws, new Error('Region is missing'), /^no AWS region: pass --region or set AWS_REGION$/],
    [aws, err('UnrecognizedClientException', 'The security token included in the request is invalid.'), /AWS rejected the credentials \(UnrecognizedClientException\)/],
    [aws, err('ExpiredTokenException', 'The security token included in the request is expired'), /expired session\? run "aws sso login"/],
    [aws, err('AccessDeniedException', 'User: x is not authorized to perform: dynamodb:Query'), /^not allowed on table "rules" in eu-west-1: .*needs dynamodb:Query, GetItem/],
    [aws, err('ProvisionedThroughputExceededException'), /is throttling requests .*try again in a moment/],
    [local, err('Error', 'connect', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) }), /^cannot reach DynamoDB at http:\/\/127\.0\.0\.1:8000 \(connection refused\): is DynamoDB Local running there\?/],
    [local, new AggregateError([Object.assign(new Error('x'), { code: 'ECONNREFUSED' })]), /connection refused/],
    [aws, Object.assign(new Error('getaddrinfo ENOTFOUND dynamodb.eu-west-1.amazonaws.com'), { code: 'ENOTFOUND' }), /^cannot reach DynamoDB in eu-west-1 \(the host name does not resolve\)/],
    [aws, err('ValidationException', 'One or more parameter values were invalid'), /^DynamoDB refused the request for table "rules" in eu-west-1: One or more/],
  ])('%#: %s', (table, e, expected) => {
    expect(explainAwsError(e, table)).toMatch(expected);
  });
});

describe('endpoint and region defaults', () => {
  test('a loopback endpoint is DynamoDB Local: us-east-1 unless a region is set', () => {
    expect(['http://127.0.0.1:8000', 'http://localhost:8000', 'http://[::1]:8000'].map(isLoopbackEndpoint)).toEqual([true, true, true]);
    expect(isLoopbackEndpoint('https://dynamodb.eu-west-1.amazonaws.com')).toBe(false);
    expect(resolveRegion({ endpoint: 'http://127.0.0.1:8000' }, {})).toBe('us-east-1');
    expect(resolveRegion({ endpoint: 'http://127.0.0.1:8000' }, { AWS_REGION: 'eu-west-1' })).toBe('eu-west-1');
    expect(resolveRegion({}, {})).toBeUndefined();
    expect(resolveRegion({ region: 'ap-south-1' }, { AWS_REGION: 'eu-west-1' })).toBe('ap-south-1');
  });
});
