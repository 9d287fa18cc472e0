/**
 * CloudFormation custom resource (provider framework onEvent handler): keeps the deploy-managed
 * rules of the rules table equal to the rules given to the construct. The rules travel as an S3
 * asset (a template would be too small for large manifests); they were validated at synth and
 * are validated again here, so a corrupted asset fails the deploy instead of serving bad rules.
 */
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { formatProblem, validateManifest } from '../core/validate';
import type { Rule } from '../core/schema';
import { deployRules, type RuleTableClient } from './deploy-rules';

export interface DeployRulesProperties {
  readonly TableName: string;
  readonly RulesBucket: string;
  readonly RulesKey: string;
}

export interface HandlerDeps {
  readonly table: RuleTableClient;
  readonly readObject: (bucket: string, key: string) => Promise<string>;
}

export async function onEvent(event: CloudFormationCustomResourceEvent, deps: HandlerDeps): Promise<{ PhysicalResourceId: string; Data: Record<string, string | number> }> {
  const props = event.ResourceProperties as unknown as DeployRulesProperties;
  const physicalId = `deploy-rules:${props.TableName}`;
  let rules: Rule[] = [];
  if (event.RequestType !== 'Delete') {
    const v = validateManifest(JSON.parse(await deps.readObject(props.RulesBucket, props.RulesKey)));
    if (v.errors.length) throw new Error(`the deployed rules are invalid: ${v.errors.map(formatProblem).join('; ')}`);
    rules = v.rules;
  } else if (event.PhysicalResourceId !== physicalId) {
    return { PhysicalResourceId: event.PhysicalResourceId, Data: {} };
  }
  const r = await deployRules(deps.table, props.TableName, rules);
  if (r.skipped.length) console.warn(JSON.stringify({ message: 'rules kept by run-time items', keys: r.skipped }));
  return { PhysicalResourceId: physicalId, Data: { Written: r.written, Deleted: r.deleted, Skipped: r.skipped.length } };
}

