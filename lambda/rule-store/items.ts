/**
 * Rules as DynamoDB items: one item per rule, partition key `domain`, sort key `rule_id` (derived
 * from the rule's identity, so re-imports are idempotent), the rule's fields as in the rule schema,
 * and bookkeeping (`position`, `revision`, `updated_at`, `source`). Pure: no AWS SDK here, so the
 * CDK construct can turn its props into items at synth time (`toItems`).
 *
 * docs/RULES.md "Operating rules at run time" documents this design for operators.
 */
import { createHash } from 'node:crypto';
import { RULE_TYPES, type Rule, type RuleOf, type RuleType } from '../core/schema';
import { ManifestError, validateManifest, validateRule, type Problem } from '../core/validate';

/** Key attributes of the rule table (the CDK construct creates the table with these). */
export const RULE_TABLE_KEY = { partitionKey: 'domain', sortKey: 'rule_id' } as const;

/** Who manages a rule: the deployment (CDK props) or operators at run time (the `rules` CLI). */
export type ManagedBy = 'deploy' | 'runtime';
export const MANAGED_BY: readonly ManagedBy[] = ['deploy', 'runtime'];

/** Attributes an item has besides the rule's own fields. Snake case, so they never clash with Scarf's kebab-case field names. */
export const META_ATTRIBUTES = ['rule_id', 'position', 'revision', 'updated_at', 'source'] as const;
type MetaAttribute = (typeof META_ATTRIBUTES)[number];
const isMeta = (k: string): k is MetaAttribute => (META_ATTRIBUTES as readonly string[]).includes(k);

export interface ItemMeta {
  /** Sort key: `<type>:<16 hex digits>` of the rule's identity (see `ruleId`). */
  readonly rule_id: string;
  /** Order among the domain's rules, as in a manifest: ties between rules are won the way the manifest order decides them. */
  readonly position: number;
  /** Starts at 1, +1 on every write; writes are conditional on it (optimistic concurrency). */
  readonly revision: number;
  /** ISO-8601 time of the last write. */
  readonly updated_at: string;
  readonly source: ManagedBy;
}

/** A rule as stored: the rule's fields (`type`, `domain`, ...) plus the bookkeeping attributes. */
export type RuleItem = Rule & ItemMeta;

/**
 * The fields that identify a rule within its domain: two rules with the same identity are the
 * same rule (the gateway would serve only one of them), so they get the same item. Every rule
 * type must be listed (the type checker enforces it when a type is added to the schema).
 */
export const IDENTITY_FIELDS: { readonly [T in RuleType]: readonly (keyof RuleOf<T> & string)[] } = {
  'docker-v1': ['repository-name'],
  'docker-v2': ['pattern'],
  'file-v1': ['incoming-path'],
  'file-v2': ['incoming-path'],
  'python-v1': ['package-name', 'file-name'],
  'catch-all-v1': [],
  'telemetry-v1': ['incoming-path'],
  'pixel-v1': ['incoming-path'],
  'python-index-v1': ['package-name'],
  'npm-v1': ['package-name'],
};

/**
 * The stable id of a rule within its domain: its type and the first 16 hex digits of the SHA-256
 * of its identity fields (as a JSON array). Short, shell-safe and bounded in length whatever the
 * template or regex, and the same on every import of the same rule.
 */
export function ruleId(rule: Rule): string {
  const fields = IDENTITY_FIELDS[rule.type] as readonly string[];
  const values = fields.map((f) => (rule as Record<string, unknown>)[f]);
  return `${rule.type}:${createHash('sha256').update(JSON.stringify(values)).digest('hex').slice(0, 16)}`;
}

/** A short human description of a rule's identity for listings (`acme/app`, `/rocket/{version}`, ...). */
export function ruleLabel(rule: Rule): string {
  const fields = IDENTITY_FIELDS[rule.type] as readonly string[];
  const r = rule as Record<string, unknown>;
  return fields.length ? fields.map((f) => String(r[f])).join(' ') : '(whole domain)';
}

/** The rule's own fields, `type` first, then in schema order (what a manifest holds). `null`s are kept (scarf-compat 2.10). */
export function ruleFields(item: object): Record<string, unknown> {
  const source = item as Record<string, unknown>;
  const type = source.type;
  if (typeof type !== 'string' || !Object.prototype.hasOwnProperty.call(RULE_TYPES, type)) {
    // Not a rule this version knows (an invalid item): every non-bookkeeping attribute, by name.
    return Object.fromEntries(Object.keys(source).filter((k) => !isMeta(k)).sort().map((k) => [k, source[k]]));
  }
  const out: Record<string, unknown> = { type };
  for (const name of Object.keys(RULE_TYPES[type as RuleType].fields)) {
    if (Object.prototype.hasOwnProperty.call(source, name) && source[name] !== undefined) out[name] = source[name];
  }
  return out;
}

/** A stored item for people: the rule's fields in schema order, then any other attribute, then the bookkeeping. */
export function canonicalItem(stored: object): Record<string, unknown> {
  const item = stored as Record<string, unknown>;
  const out = ruleFields(item);
  for (const [k, v] of Object.entries(item)) if (!(k in out) && !isMeta(k)) out[k] = v;
  for (const k of META_ATTRIBUTES) if (k in item) out[k] = item[k];
  return out;
}

/** True when two items would serve the same way: same rule fields and the same position. */
export function sameContent(a: object, b: object): boolean {
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  return x.position === y.position && JSON.stringify(ruleFields(x)) === JSON.stringify(ruleFields(y));
}

/** The names of the rule fields (and `position`) that differ between two items, for `--dry-run`. */
export function changedFields(before: object, after: object): string[] {
  const x = before as Record<string, unknown>;
  const y = after as Record<string, unknown>;
  const a = ruleFields(x);
  const b = ruleFields(y);
  const names = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
  if (x.position !== y.position) names.push('position');
  return names;
}

export interface ItemCheck {
  readonly rule: Rule | null;
  readonly errors: Problem[];
  readonly warnings: Problem[];
}


/**
 * Validates a stored item exactly as the engine validates a manifest rule (the bookkeeping
 * attributes aside). `index` only appears in messages.
 */
export function checkItem(item: object, index = 0): ItemCheck {
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(item as Record<string, unknown>)) if (!isMeta(k)) fields[k] = v;
  return validateRule(fields, index);
}

/** `item get.example.com/file-v1:0123abcd...: field "x": ...`: names the item, not a manifest index. */
export function formatItemProblem(item: object, p: Problem): string {
  const it = item as Record<string, unknown>;
  const id = `${String(it.domain ?? '?')}/${String(it.rule_id ?? '?')}`;
  return `item ${id}${p.field !== null ? `, field "${p.field}"` : ''}: ${p.message}`;
}

/** The bookkeeping of an item read from the table, tolerant of hand-written items (defaults for what is missing). */
export function itemMeta(stored: object): ItemMeta {
  const item = stored as Record<string, unknown>;
  return {
    rule_id: String(item.rule_id ?? ''),
    position: typeof item.position === 'number' && Number.isFinite(item.position) ? item.position : Number.MAX_SAFE_INTEGER,
    revision: typeof item.revision === 'number' ? item.revision : 0,
    updated_at: typeof item.updated_at === 'string' ? item.updated_at : '',
    source: item.source === 'deploy' ? 'deploy' : 'runtime',
  };
}

/** Domain order, then position, then rule id: the order rules are compiled and exported in. */
export function compareItems(x: object, y: object): number {
  const a = x as Record<string, unknown>;
  const b = y as Record<string, unknown>;
  const da = String(a.domain);
  const db = String(b.domain);
  if (da !== db) return da < db ? -1 : 1;
  const pa = itemMeta(a).position;
  const pb = itemMeta(b).position;
  if (pa !== pb) return pa - pb;
  const ia = String(a.rule_id);
  const ib = String(b.rule_id);
  return ia < ib ? -1 : ia > ib ? 1 : 0;
}

export interface ToItemsOptions {
  readonly source: ManagedBy;
  /** `updated_at` of the items. Default: now. */
  readonly now?: Date;
}

export interface ToItemsResult {
  readonly items: RuleItem[];
  readonly warnings: Problem[];
  /** Rules dropped because a rule with the same identity wins (as the gateway would serve them). */
  readonly duplicates: { readonly index: number; readonly keptIndex: number; readonly domain: string; readonly ruleId: string }[];
}

/**
 * Validated rules -> items. `position` is the rule's rank among the rules of its domain in the
 * given order. Two rules with one identity become one item: the one the gateway would serve
 * (docker-v1: the earlier; every other type: the later).
 */
export function rulesToItems(rules: readonly Rule[], opts: ToItemsOptions): Omit<ToItemsResult, 'warnings'> {
  const updatedAt = (opts.now ?? new Date()).toISOString();
  const byKey = new Map<string, { index: number; item: RuleItem }>();
  const duplicates: ToItemsResult['duplicates'][number][] = [];
  const rank = new Map<string, number>();
  rules.forEach((rule, index) => {
    const id = ruleId(rule);
    const key = `${rule.domain}\n${id}`;
    const position = rank.get(rule.domain) ?? 0;
    rank.set(rule.domain, position + 1);
    const item = { ...ruleFields(rule), rule_id: id, position, revision: 1, updated_at: updatedAt, source: opts.source } as RuleItem;
    const prev = byKey.get(key);
    if (!prev) {
      byKey.set(key, { index, item });
      return;
    }
    const earlierWins = rule.type === 'docker-v1';
    const kept = earlierWins ? prev : { index, item };
    const dropped = earlierWins ? index : prev.index;
    duplicates.push({ index: dropped, keptIndex: kept.index, domain: rule.domain, ruleId: id });
    byKey.set(key, kept);
  });
  // Ranks are renumbered so positions stay 0..n-1 within each domain after duplicates are dropped.
  const items = [...byKey.values()].sort((a, b) => a.index - b.index).map((x) => x.item);
  const next = new Map<string, number>();
  const renumbered = items.map((it) => {
    const p = next.get(it.domain) ?? 0;
    next.set(it.domain, p + 1);
    return { ...it, position: p } as RuleItem;
  });
  return { items: renumbered, duplicates };
}

/**
 * For the CDK construct (and any other writer): validates rules exactly as the engine does and
 * turns them into items managed by `opts.source`. Throws `ManifestError` listing every problem.
 * Accepts a manifest (`{"rules": [...]}`) or the rules array.
 *
 *   const { items } = toItems(props.rules, { source: 'deploy' });
 */
export function toItems(rules: unknown, opts: ToItemsOptions): ToItemsResult {
  const doc = Array.isArray(rules) ? { rules } : rules;
  const v = validateManifest(doc);
  if (v.errors.length) throw new ManifestError(v.errors, v.warnings);
  return { ...rulesToItems(v.rules, opts), warnings: v.warnings };
}

/** Items -> a manifest that imports back to the same items: domain by domain, in position order, `null`s written out. */
export function itemsToManifest(items: readonly object[]): { rules: Record<string, unknown>[] } {
  return { rules: [...items].sort(compareItems).map((it) => ruleFields(it)) };
}
