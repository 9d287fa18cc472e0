/**
 * Writing the rules given to the construct into the global rules table as deploy-managed items,
 * and removing the deploy-managed items that are no longer given. Items whose `source` is not
 * "deploy" (rules changed at run time) are never written over or deleted: every put and delete is
 * conditional on the item being absent or deploy-managed.
 *
 * MERGE NOTE: the item format below (`ruleItem`) is this construct's placeholder. The runtime
 * rules work defines the table's item format and a function that turns validated rules into
 * deploy-managed items; at merge, `deployManagedItems` is replaced by that function and
 * `deployRules` keeps its contract (put given, delete absent, never touch source != "deploy").
 */
import { createHash } from 'node:crypto';
import type { Rule } from '../core/schema';

/** Key of the rules table: partition key `domain` (string), sort key `rule_id` (string). */
export interface RuleItemKey {
  readonly domain: string;
  readonly rule_id: string;
}

export interface RuleItem extends RuleItemKey {
  readonly source: 'deploy';
  /** The rule's index in the given rules: precedence between rules of one domain follows manifest order. */
  readonly position: number;
  /** The validated rule as JSON. */
  readonly rule: string;
}

export const DEPLOY_SOURCE = 'deploy';

/** JSON with object keys sorted, so equal rules get equal ids whatever the key order. */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** A stable id: the same rule always gets the same id, a changed rule a new one. */
export function deployRuleId(rule: Rule): string {
  return `deploy:${rule.type}:${createHash('sha256').update(canonicalJson(rule)).digest('hex').slice(0, 24)}`;
}

export function deployManagedItems(rules: readonly Rule[]): RuleItem[] {
  const seen = new Set<string>();
  const items: RuleItem[] = [];
  rules.forEach((rule, position) => {
    const domain = rule.domain.toLowerCase();
    const rule_id = deployRuleId(rule);
    // An identical rule given twice behaves as once; the first position keeps its precedence.
    if (seen.has(`${domain}\n${rule_id}`)) return;
    seen.add(`${domain}\n${rule_id}`);
    items.push({ domain, rule_id, source: DEPLOY_SOURCE, position, rule: canonicalJson(rule) });
  });
  return items;
}

/** What the deploy needs from the table; DynamoDbRuleTable implements it, tests use an in-memory one. */
export interface RuleTableClient {
  /** Keys of every item whose `source` is "deploy". */
  listDeployManaged(table: string): Promise<RuleItemKey[]>;
  /** Writes the item unless an item with its key exists with another source; false when skipped for that reason. */
  putDeployManaged(table: string, item: RuleItem): Promise<boolean>;
  /** Deletes the item if it is deploy-managed; false when it is not (or no longer) there as such. */
  deleteDeployManaged(table: string, key: RuleItemKey): Promise<boolean>;
}

export interface DeployResult {
  readonly written: number;
  readonly deleted: number;
  /** Keys held by run-time rules, left alone. */
  readonly skipped: RuleItemKey[];
}

const keyOf = (k: RuleItemKey) => `${k.domain}\n${k.rule_id}`;

async function inBatches<T>(items: readonly T[], size: number, fn: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}

export async function deployRules(client: RuleTableClient, table: string, rules: readonly Rule[]): Promise<DeployResult> {
  const items = deployManagedItems(rules);
  const wanted = new Set(items.map(keyOf));
  const existing = await client.listDeployManaged(table);
  const stale = existing.filter((k) => !wanted.has(keyOf(k)));
  const skipped: RuleItemKey[] = [];
  let written = 0;
  let deleted = 0;
  await inBatches(items, 16, async (item) => {
    if (await client.putDeployManaged(table, item)) written++;
    else skipped.push({ domain: item.domain, rule_id: item.rule_id });
  });
  await inBatches(stale, 16, async (key) => {
    if (await client.deleteDeployManaged(table, key)) deleted++;
  });
  return { written, deleted, skipped };
}
