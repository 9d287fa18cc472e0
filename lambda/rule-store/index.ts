/**
 * The DynamoDB rule store: the table's item design (items.ts), the gateway's cache (store.ts),
 * table access (table.ts), and the write paths (plan.ts, writes.ts) shared by the `rules` CLI
 * and the CDK construct.
 */
import { RuleStore, type RuleStoreOptions } from './store';
import { RuleTable, type RuleTableConfig } from './table';

export * from './items';
export * from './plan';
export * from './store';
export * from './table';
export * from './writes';

export interface DynamoRuleStoreConfig extends Omit<RuleTableConfig, 'client'>, Omit<RuleStoreOptions, 'load'> {
  readonly table?: RuleTable;
}

/**
 * A rule store reading `tableName` (the gateway's entry point). DynamoDB calls use short timeouts
 * and two attempts: a slow table must not hold requests, and stale-if-error covers the rest.
 */
export function createDynamoRuleStore(config: DynamoRuleStoreConfig): { store: RuleStore; table: RuleTable } {
  const table = config.table ?? new RuleTable({ requestTimeoutMs: 2_000, connectTimeoutMs: 1_000, maxAttempts: 2, ...config });
  const store = new RuleStore({ ...config, load: (domain) => table.queryDomain(domain) });
  return { store, table };
}
