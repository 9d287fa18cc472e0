/**
 * Carrying out a plan (plan.ts) on the rule table, and the deploy's sync built on it.
 */
import { itemMeta, toItems } from './items';
import { planWrite, type Plan } from './plan';
import { ConcurrentChangeError, type BatchProgress, type RuleTable } from './table';
import type { Problem } from '../core/validate';

export interface ApplyOptions {
  /**
   * `batch`: BatchWriteItem, 25 items per call, unprocessed items retried (fast; last writer wins
   * against a concurrent change, because batch writes cannot be conditional).
   * `conditional`: one conditional write per item on the revision and owner that were read
   * (a concurrent change is reported, not overwritten).
   */
  readonly mode: 'batch' | 'conditional';
  readonly onProgress?: BatchProgress;
  /** Conditional mode: writes in flight at once. Default 8. */
  readonly concurrency?: number;
}

export interface ApplyResult {
  readonly written: number;
  readonly removed: number;
  /** Conditional mode: items that changed between the read and the write (left as they are). */
  readonly raced: readonly { domain: string; ruleId: string; message: string }[];
}

export async function applyPlan(table: RuleTable, plan: Plan, opts: ApplyOptions): Promise<ApplyResult> {
  const writes = plan.steps.filter((s) => s.action === 'add' || s.action === 'change');
  const removals = plan.steps.filter((s) => s.action === 'remove');
  if (opts.mode === 'batch') {
    await table.batchWrite(writes.map((s) => s.after!), removals.map((s) => ({ domain: s.domain, rule_id: s.ruleId })), opts.onProgress);
    return { written: writes.length, removed: removals.length, raced: [] };
  }
  const raced: { domain: string; ruleId: string; message: string }[] = [];
  const jobs = [
    ...writes.map((s) => () => {
      const before = s.before ? itemMeta(s.before) : null;
      return table.putIf(s.after!, before ? { revision: before.revision, source: before.source } : { revision: null });
    }),
    ...removals.map((s) => () => {
      const before = itemMeta(s.before!);
      return table.deleteIf(s.domain, s.ruleId, { revision: before.revision, source: before.source });
    }),
  ];
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const job = jobs[next++];
      try {
        await job();
      } catch (e) {
        if (!(e instanceof ConcurrentChangeError)) throw e;
        raced.push({ domain: e.domain, ruleId: e.ruleId, message: e.message });
      }
      opts.onProgress?.(++done, jobs.length);
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.concurrency ?? 8, jobs.length) }, worker));
  const failed = (s: { domain: string; ruleId: string }) => raced.some((r) => r.domain === s.domain && r.ruleId === s.ruleId);
  return { written: writes.filter((s) => !failed(s)).length, removed: removals.filter((s) => !failed(s)).length, raced };
}

export interface DeploySyncResult {
  readonly plan: Plan;
  readonly result: ApplyResult;
  readonly warnings: Problem[];
}

/**
 * For the CDK construct's deploy step: makes the deploy-managed items of the table exactly the
 * given rules (validated as the engine validates them; `ManifestError` on a problem). Adds and
 * changes deploy-managed items, removes deploy-managed items no longer in `rules`, and leaves
 * every run-time item alone, including one that overrides a deploy rule (a `conflict` step).
 * Conditional writes: an operator's concurrent change is never overwritten.
 */
export async function syncDeployRules(table: RuleTable, rules: unknown, now = new Date()): Promise<DeploySyncResult> {
  const { items, warnings } = toItems(rules, { source: 'deploy', now });
  const existing = await table.scanAll();
  const plan = planWrite(existing, items, { writer: 'deploy', prune: true, now });
  const result = await applyPlan(table, plan, { mode: 'conditional' });
  return { plan, result, warnings };
}
