/** Entry point of the deploy-rules custom resource: the AWS SDK wiring around custom-resource.ts. */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { onEvent } from './custom-resource';
import { DynamoDbRuleTable } from './dynamodb-table';

const s3 = new S3Client({});
const table = new DynamoDbRuleTable(new DynamoDBClient({}));

export const handler = (event: CloudFormationCustomResourceEvent) => onEvent(event, {
  table,
  readObject: async (bucket, key) => {
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return out.Body ? out.Body.transformToString('utf8') : '';
  },
});
