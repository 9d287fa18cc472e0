/**
 * CloudFormation custom resource (provider framework onEvent handler): keeps the deploy-managed
 * rules of the rules table equal to the rules given to the construct, in the rule store's item
 * format (lambda/rule-store: `syncDeployRules`). Rules changed at run time (`source` other than
 * "deploy") are never written over or deleted. The rules travel as an S3 asset (a template would
 * be too small for large manifests); they were validated at synth and are validated again here,
 * so a corrupted asset fails the deploy instead of serving bad rules.
 */
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { formatProblem, validateManifest } from '../core/validate';
import type { Rule } from '../core/schema';

export interface DeployRulesProperties {
  readonly TableName: string;
  readonly RulesBucket: string;
  readonly RulesKey: string;
}

/** What one sync did: rules written, deploy-managed items removed, rules left to run-time owners. */
export interface DeploySyncSummary {
  readonly written: number;
  readonly removed: number;
  readonly kept: readonly { domain: string; ruleId: string; reason: string }[];
}

export interface HandlerDeps {
  /** Makes the table's deploy-managed items exactly `rules` (the handler wires `syncDeployRules`). */
  readonly sync: (tableName: string, rules: Rule[]) => Promise<DeploySyncSummary>;
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
    // The resource moved to another table: this one is not ours to empty.
    return { PhysicalResourceId: event.PhysicalResourceId, Data: {} };
  }
  const r = await deps.sync(props.TableName, rules);
  if (r.kept.length) console.warn(JSON.stringify({ message: 'rules kept by their run-time owners', rules: r.kept }));
  return { PhysicalResourceId: physicalId, Data: { Written: r.written, Deleted: r.removed, Skipped: r.kept.length } };
}
