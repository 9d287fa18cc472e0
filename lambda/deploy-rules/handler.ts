/** Entry point of the deploy-rules custom resource: the AWS SDK wiring around custom-resource.ts. */
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { RuleTable, syncDeployRules } from '../rule-store';
import { onEvent } from './custom-resource';

const s3 = new S3Client({});

export const handler = (event: CloudFormationCustomResourceEvent) => onEvent(event, {
  sync: async (tableName, rules) => {
    const { plan, result } = await syncDeployRules(new RuleTable({ tableName }), { rules });
    const kept = plan.steps.filter((s) => s.action === 'conflict').map((s) => ({ domain: s.domain, ruleId: s.ruleId, reason: s.reason ?? '' }));
    return { written: result.written, removed: result.removed, kept };
  },
  readObject: async (bucket, key) => {
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return out.Body ? out.Body.transformToString('utf8') : '';
  },
});
