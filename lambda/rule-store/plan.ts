/**
 * What a write of many rules (CLI `import`, the deploy's sync) changes in the table, worked out
 * before anything is written, so `--dry-run` shows exactly what a real run does. Pure.
 *
 * Ownership: a deploy writes and removes only deploy-managed items and never touches a rule an
 * operator added or changed at run time; the CLI never silently overwrites a deploy-managed
 * rule (it refuses unless told to take the rule over) and never removes one.
 */
import { changedFields, compareItems, itemMeta, sameContent, type ManagedBy, type RuleItem } from './items';

export type PlanAction =
  /** A new item. */
  | 'add'
  /** The item exists with other content: it is overwritten (revision + 1). */
  | 'change'
  /** The item exists with this content: nothing to write. */
  | 'unchanged'
  /** The item is removed (`--prune`, or a deploy-managed rule no longer in the deploy's rules). */
  | 'remove'
  /** The writer may not change this item: it belongs to the other side. Nothing is written. */
  | 'conflict'
  /** An item the writer leaves alone although it is not in its rules (it belongs to the other side). */
  | 'keep';

export interface PlanStep {
  readonly action: PlanAction;
  readonly domain: string;
  readonly ruleId: string;
  /** The item as stored, if any. */
  readonly before: Record<string, unknown> | null;
  /** The item to write (for add and change), or the desired one (conflict). */
  readonly after: RuleItem | null;
  /** add/change/conflict: the rule fields (and `position`) that differ. */
  readonly fields: readonly string[];
  /** Why a conflict or keep happened. */
  readonly reason?: string;
}

export interface Plan {
  readonly steps: readonly PlanStep[];
  count(action: PlanAction): number;
}

export interface PlanOptions {
  /** Who writes: `runtime` (the `rules` CLI) or `deploy` (the CDK construct's sync). */
  readonly writer: ManagedBy;
  /**
   * Remove items of the writer's own kind that the desired rules no longer have: for the CLI,
   * run-time rules of the domains in the file (`--prune`); for a deploy, every deploy-managed item.
   */
  readonly prune: boolean;
  /** CLI only: overwrite deploy-managed rules that differ, making them run-time rules (`--take-over`). */
  readonly takeOver?: boolean;
  /** `updated_at` of written items. */
  readonly now: Date;
}

const key = (domain: string, id: string) => `${domain}\n${id}`;

/**
 * `existing`: every stored item in scope (for the CLI: the items of the domains in the file; for
 * a deploy: every item of the table). `desired`: the writer's items (`toItems`).
 */
export function planWrite(existing: readonly Record<string, unknown>[], desired: readonly RuleItem[], opts: PlanOptions): Plan {
  const stored = new Map(existing.map((it) => [key(String(it.domain), String(it.rule_id)), it]));
  const wanted = new Set<string>();
  const steps: PlanStep[] = [];
  const updatedAt = opts.now.toISOString();
  for (const d of desired) {
    const k = key(d.domain, d.rule_id);
    wanted.add(k);
    const before = stored.get(k) ?? null;
    if (!before) {
      steps.push({ action: 'add', domain: d.domain, ruleId: d.rule_id, before: null, after: { ...d, source: opts.writer, revision: 1, updated_at: updatedAt }, fields: [] });
      continue;
    }
    if (sameContent(before, d)) {
      steps.push({ action: 'unchanged', domain: d.domain, ruleId: d.rule_id, before, after: null, fields: [] });
      continue;
    }
    const meta = itemMeta(before);
    const fields = changedFields(before, d);
    const after: RuleItem = { ...d, source: opts.writer, revision: meta.revision + 1, updated_at: updatedAt };
    if (meta.source !== opts.writer) {
      if (opts.writer === 'deploy') {
        steps.push({ action: 'conflict', domain: d.domain, ruleId: d.rule_id, before, after, fields, reason: 'changed at run time; the deploy leaves it alone (delete the run-time rule to hand it back to the deploy)' });
        continue;
      }
      if (!opts.takeOver) {
        steps.push({ action: 'conflict', domain: d.domain, ruleId: d.rule_id, before, after, fields, reason: 'managed by the deployment; change it in the construct\'s rules, or pass --take-over to make it a run-time rule' });
        continue;
      }
    }
    steps.push({ action: 'change', domain: d.domain, ruleId: d.rule_id, before, after, fields });
  }
  const leftOver = existing.filter((it) => !wanted.has(key(String(it.domain), String(it.rule_id)))).sort(compareItems);
  for (const before of leftOver) {
    const domain = String(before.domain);
    const ruleId = String(before.rule_id);
    const mine = itemMeta(before).source === opts.writer;
    if (mine && opts.prune) steps.push({ action: 'remove', domain, ruleId, before, after: null, fields: [] });
    else if (!mine) steps.push({ action: 'keep', domain, ruleId, before, after: null, fields: [], reason: opts.writer === 'deploy' ? 'run-time rule' : 'deploy-managed rule' });
  }
  return { steps, count: (a) => steps.filter((s) => s.action === a).length };
}
