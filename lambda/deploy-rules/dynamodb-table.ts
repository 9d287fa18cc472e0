/** RuleTableClient over DynamoDB: conditional puts and deletes, so run-time rules are never touched. */
import { ConditionalCheckFailedException, DeleteItemCommand, PutItemCommand, ScanCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DEPLOY_SOURCE, type RuleItem, type RuleItemKey, type RuleTableClient } from './deploy-rules';

const ONLY_DEPLOY_MANAGED = 'attribute_not_exists(#domain) OR #source = :deploy';

export class DynamoDbRuleTable implements RuleTableClient {
  constructor(private readonly ddb: DynamoDBClient) {}

  async listDeployManaged(table: string): Promise<RuleItemKey[]> {
    const keys: RuleItemKey[] = [];
    let start: Record<string, import('@aws-sdk/client-dynamodb').AttributeValue> | undefined;
    do {
      const page = await this.ddb.send(new ScanCommand({
        TableName: table,
        ProjectionExpression: '#domain, rule_id',
        FilterExpression: '#source = :deploy',
        ExpressionAttributeNames: { '#domain': 'domain', '#source': 'source' },
        ExpressionAttributeValues: { ':deploy': { S: DEPLOY_SOURCE } },
        ExclusiveStartKey: start,
        ConsistentRead: true,
      }));
      for (const item of page.Items ?? []) {
        if (item.domain?.S !== undefined && item.rule_id?.S !== undefined) keys.push({ domain: item.domain.S, rule_id: item.rule_id.S });
      }
      start = page.LastEvaluatedKey;
    } while (start);
    return keys;
  }

  async putDeployManaged(table: string, item: RuleItem): Promise<boolean> {
    try {
      await this.ddb.send(new PutItemCommand({
        TableName: table,
        Item: {
          domain: { S: item.domain },
          rule_id: { S: item.rule_id },
          source: { S: item.source },
          position: { N: String(item.position) },
          rule: { S: item.rule },
        },
        ConditionExpression: ONLY_DEPLOY_MANAGED,
        ExpressionAttributeNames: { '#domain': 'domain', '#source': 'source' },
        ExpressionAttributeValues: { ':deploy': { S: DEPLOY_SOURCE } },
      }));
      return true;
    } catch (e) {
      if (e instanceof ConditionalCheckFailedException) return false;
      throw e;
    }
  }

  async deleteDeployManaged(table: string, key: RuleItemKey): Promise<boolean> {
    try {
      await this.ddb.send(new DeleteItemCommand({
        TableName: table,
        Key: { domain: { S: key.domain }, rule_id: { S: key.rule_id } },
        ConditionExpression: '#source = :deploy',
        ExpressionAttributeNames: { '#source': 'source' },
        ExpressionAttributeValues: { ':deploy': { S: DEPLOY_SOURCE } },
      }));
      return true;
    } catch (e) {
      if (e instanceof ConditionalCheckFailedException) return false;
      throw e;
    }
  }
}
