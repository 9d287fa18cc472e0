/**
 * `artifact-gateway rules import|list|get|put|delete|export|create-table`: operating the rules in
 * the DynamoDB rule table at run time. Every write is validated exactly as the engine validates a
 * manifest. Exit status: 0 success, 1 the operation failed or was refused (the reason says what
 * to fix), 2 usage error.
 *
 * cli.ts hands in its error classes (no import cycle): a UsageError exits 2, a Failure exits 1.
 */
import fs from 'node:fs';
import type { CommandSpec, OptionSpec } from './cli';
import { formatProblem, parseManifest, type Problem } from '../lambda/core/validate';
import type { Rule } from '../lambda/core/schema';
import {
  applyPlan,
  canonicalItem,
  checkItem,
  compareItems,
  ConcurrentChangeError,
  explainAwsError,
  formatItemProblem,
  itemMeta,
  itemsToManifest,
  planWrite,
  ruleFields,
  ruleId,
  ruleLabel,
  rulesToItems,
  RuleTable,
  sameContent,
  type PlanStep,
  type RuleItem,
} from '../lambda/rule-store';

type Opts = Record<string, string | string[] | boolean>;
type ErrorClass = new (message: string) => Error;

export const TABLE_ENV = 'ARTIFACT_GATEWAY_RULES_TABLE';

export const TABLE_OPTIONS: readonly OptionSpec[] = [
  { name: 'table', value: 'NAME', help: `The rule table. Default: $${TABLE_ENV}.` },
  { name: 'region', value: 'REGION', help: 'AWS region of the table. Default: $AWS_REGION, or the profile\'s region (us-east-1 with a local --endpoint).' },
  { name: 'endpoint', value: 'URL', help: 'DynamoDB endpoint, e.g. http://127.0.0.1:8000 for DynamoDB Local (which takes any credentials). Default: $AWS_ENDPOINT_URL_DYNAMODB, else AWS.' },
];

const CREDENTIALS_NOTE = 'Credentials and region come from the usual AWS sources (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_REGION, ...).';

function readText(file: string, Failure: ErrorClass): string {
  try {
    return file === '-' ? fs.readFileSync(0, 'utf8') : fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Failure(`cannot read ${file === '-' ? 'standard input' : file}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (e as Error).message}`);
  }
}

const out = (s: string) => process.stdout.write(s);
const err = (s: string) => process.stderr.write(s);
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

function printProblems(list: Problem[], label: string, write: (s: string) => void): void {
  for (const p of list) write(`  ${label} ${formatProblem(p)}\n`);
}

/** Where a rule sends requests, for listings. */
function targetOf(rule: object): string {
  const r = rule as Record<string, unknown>;
  switch (r.type) {
    case 'docker-v1':
      return `-> ${String(r.registry)}${r['upstream-repository-name'] ? `/${String(r['upstream-repository-name'])}` : ''}`;
    case 'docker-v2':
      return `-> ${String(r.registry)}`;
    case 'file-v1':
    case 'file-v2':
      return r['outgoing-url'] == null ? '(record only)' : `-> ${String(r['outgoing-url'])}`;
    case 'python-v1':
      return `-> ${String(r['backend-url'])}`;
    case 'catch-all-v1':
      return r['redirect-target-domain'] == null ? '(record only)' : `-> https://${String(r['redirect-target-domain'])}`;
    case 'telemetry-v1':
      return '(telemetry endpoint)';
    case 'pixel-v1':
      return '(pixel)';
    default:
      return '';
  }
}

function describeRule(item: object): string {
  const { rule } = checkItem(item);
  return rule ? `${ruleLabel(rule)} ${targetOf(item)}` : '(invalid)';
}

function formatTable(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd()).join('\n') + '\n';
}

/** One line per plan step that writes, refuses or keeps something. */
function stepLine(s: PlanStep): string {
  const item = (s.after ?? s.before)!;
  const what = `${s.domain} ${s.ruleId}  ${describeRule(item)}`;
  switch (s.action) {
    case 'add':
      return `+ add     ${what}`;
    case 'change':
      return `~ change  ${what}  (${s.fields.join(', ')}${itemMeta(s.before!).source !== 'runtime' ? '; taken over from the deploy' : ''})`;
    case 'remove':
      return `- remove  ${what}`;
    case 'conflict':
      return `! refuse  ${what}  (${s.fields.join(', ')} differ: ${s.reason})`;
    case 'keep':
      return `= keep    ${what}  (${s.reason}, not in the file)`;
    default:
      return `  same    ${what}`;
  }
}

/** Progress on stderr for imports longer than one batch: at most one line a second, and the last. */
function progressPrinter(label: string): (done: number, total: number) => void {
  let last = 0;
  return (done, total) => {
    if (total <= 25) return;
    const now = Date.now();
    if (done < total && now - last < 1_000) return;
    last = now;
    err(`${label}: ${done}/${total} items written\n`);
  };
}

export function rulesTableCommands({ UsageError, Failure }: { UsageError: ErrorClass; Failure: ErrorClass }): Record<string, CommandSpec> {
  function openTable(opts: Opts): RuleTable {
    const tableName = (opts.table as string | undefined) ?? process.env[TABLE_ENV];
    if (!tableName) throw new UsageError(`--table is required (or set ${TABLE_ENV})`);
    const endpoint = (opts.endpoint as string | undefined) ?? process.env.AWS_ENDPOINT_URL_DYNAMODB ?? process.env.AWS_ENDPOINT_URL;
    if (endpoint !== undefined) {
      let u: URL | null = null;
      try {
        u = new URL(endpoint);
      } catch {
        u = null;
      }
      if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:')) throw new UsageError(`--endpoint must be an http(s) URL such as http://127.0.0.1:8000, got ${JSON.stringify(endpoint)}`);
    }
    return new RuleTable({ tableName, region: opts.region as string | undefined, endpoint });
  }

  /** Runs a table command; AWS and network errors become one sentence that says what to fix. */
  function withTable(run: (table: RuleTable, opts: Opts, args: string[]) => Promise<number>): CommandSpec['run'] {
    return async (opts, args) => {
      const table = openTable(opts);
      try {
        return await run(table, opts, args);
      } catch (e) {
        if (e instanceof UsageError || e instanceof Failure) throw e;
        if (e instanceof ConcurrentChangeError) throw new Failure(`${e.message}: someone changed it meanwhile; run "rules get ${e.domain} ${e.ruleId}" to see it and apply your change again (or put with --ignore-revision to overwrite it)`);
        throw new Failure(explainAwsError(e, table));
      }
    };
  }

  function parseRules(file: string): Rule[] {
    const v = parseManifest(readText(file, Failure));
    if (v.errors.length) {
      err(`${file}: invalid manifest (${plural(v.errors.length, 'problem')}); nothing was written\n`);
      printProblems(v.errors, 'error:', err);
      printProblems(v.warnings, 'warning:', err);
      throw new Failure(`fix the problems above in ${file}, then import again (check with "rules validate ${file}")`);
    }
    printProblems(v.warnings, 'warning:', err);
    return v.rules;
  }

  const importCmd: CommandSpec = {
    usage: 'artifact-gateway rules import FILE --table NAME [--dry-run] [--prune] [--take-over] [--region R] [--endpoint URL]',
    summary: `Write the rules of a manifest (Scarf's format or this project's) to the table as run-time rules.
Idempotent: a rule is keyed by its domain and identity, so importing the same file twice writes
nothing the second time. Every rule is validated first; an invalid file writes nothing.
Output: "+ add", "~ change" (with the fields that differ), "- remove", "! refuse", "= keep".
Deploy-managed rules (written by the CDK construct) are never changed or removed: a rule in the
file that differs from one refuses the whole import unless --take-over is given.
Exit status: 0 done (or, with --dry-run, would succeed), 1 failed or refused, 2 usage error.
${CREDENTIALS_NOTE}`,
    options: [
      { name: 'dry-run', help: 'Show what would be added, changed and removed; write nothing.' },
      { name: 'prune', help: 'Also remove the run-time rules of the domains in FILE that FILE no longer has.' },
      { name: 'take-over', help: 'Overwrite deploy-managed rules that differ; they become run-time rules, which later deploys leave alone.' },
      ...TABLE_OPTIONS,
    ],
    positionals: 1,
    run: withTable(async (table, opts, [file]) => {
      const rules = parseRules(file);
      const now = new Date();
      const { items, duplicates } = rulesToItems(rules, { source: 'runtime', now });
      for (const d of duplicates) err(`  warning: rule ${d.index} (${d.domain}) is the same rule as rule ${d.keptIndex} (${d.ruleId}); importing rule ${d.keptIndex}, the one the gateway serves\n`);
      const domains = [...new Set(items.map((i) => i.domain))].sort();
      const existing: Record<string, unknown>[] = [];
      for (const d of domains) existing.push(...(await table.queryDomain(d, true)));
      const plan = planWrite(existing, items, { writer: 'runtime', prune: opts.prune === true, takeOver: opts['take-over'] === true, now });
      for (const s of plan.steps) if (s.action !== 'unchanged') out(`${stepLine(s)}\n`);
      const summary = `${plan.count('add')} to add, ${plan.count('change')} to change, ${plan.count('remove')} to remove, ${plan.count('unchanged')} unchanged` +
        `${plan.count('keep') ? `, ${plan.count('keep')} deploy-managed kept` : ''}${plan.count('conflict') ? `, ${plan.count('conflict')} refused` : ''}`;
      if (plan.count('conflict')) {
        err(`${file}: ${summary}\n`);
        throw new Failure(`${plural(plan.count('conflict'), 'rule')} in ${file} differ from deploy-managed rules (marked "!" above); nothing was written. Change them in the construct's rules and deploy, or pass --take-over to make them run-time rules`);
      }
      if (opts['dry-run']) {
        out(`dry run, nothing written: ${summary} in ${table.describe()}\n`);
        return 0;
      }
      await applyPlan(table, plan, { mode: 'batch', onProgress: progressPrinter('import') });
      out(`imported ${file} into ${table.describe()}: ${plan.count('add')} added, ${plan.count('change')} changed, ${plan.count('remove')} removed, ${plan.count('unchanged')} unchanged\n`);
      return 0;
    }),
  };

  const listCmd: CommandSpec = {
    usage: 'artifact-gateway rules list --table NAME [--domain D] [--json] [--region R] [--endpoint URL]',
    summary: `List the rules in the table (one Query with --domain, else a Scan), in the order the
gateway applies them: domain, then position. An item that fails validation is marked INVALID
(the gateway skips it). ${CREDENTIALS_NOTE}`,
    options: [
      { name: 'domain', value: 'D', help: 'Only this domain.' },
      { name: 'json', help: 'Print the items as a JSON array.' },
      ...TABLE_OPTIONS,
    ],
    positionals: 0,
    run: withTable(async (table, opts) => {
      const domain = (opts.domain as string | undefined)?.trim().toLowerCase();
      const items = (domain ? await table.queryDomain(domain, true) : await table.scanAll()).sort(compareItems);
      if (opts.json) {
        out(`${JSON.stringify(items.map(canonicalItem), null, 2)}\n`);
        return 0;
      }
      if (!items.length) {
        out(`no rules${domain ? ` for ${domain}` : ''} in ${table.describe()}\n`);
        return 0;
      }
      const rows = [['DOMAIN', 'RULE_ID', 'SOURCE', 'REV', 'UPDATED', 'RULE']];
      for (const it of items) {
        const m = itemMeta(it);
        const { errors } = checkItem(it);
        rows.push([String(it.domain), m.rule_id, m.source, String(m.revision), m.updated_at.replace(/\.\d+Z$/, 'Z'), errors.length ? `INVALID: ${errors.map((p) => formatItemProblem(it, p)).join('; ')}` : describeRule(it)]);
      }
      out(formatTable(rows));
      return 0;
    }),
  };

  const getCmd: CommandSpec = {
    usage: 'artifact-gateway rules get DOMAIN RULE_ID --table NAME [--region R] [--endpoint URL]',
    summary: `Print one stored rule as JSON: its fields and rule_id, position, revision, updated_at, source.
Edit it and give it to "rules put": the put then only succeeds if nobody changed the rule meanwhile.
Exit status 1 if there is no such rule. ${CREDENTIALS_NOTE}`,
    options: [...TABLE_OPTIONS],
    positionals: 2,
    run: withTable(async (table, _opts, [domainArg, id]) => {
      const domain = domainArg.trim().toLowerCase();
      const item = await table.get(domain, id);
      if (!item) throw new Failure(`no rule ${id} on ${domain} in ${table.describe()} (list the domain's rules with "rules list --domain ${domain}")`);
      out(`${JSON.stringify(canonicalItem(item), null, 2)}\n`);
      return 0;
    }),
  };

  const putCmd: CommandSpec = {
    usage: 'artifact-gateway rules put [FILE|-] --table NAME [--take-over] [--region R] [--endpoint URL]',
    summary: `Add or change one rule, given as a JSON object in FILE or on standard input. It is validated
exactly as a manifest rule. A rule with the same domain and identity (image, path, file, ...) is
replaced; it keeps its position (a new rule comes last in its domain; a "position" in the JSON
moves it). If the JSON carries a "revision" (as "rules get" prints it),
the write only succeeds if the stored rule still has that revision (--ignore-revision: write anyway).
A deploy-managed rule is not overwritten unless --take-over is given.
Exit status: 0 written or unchanged, 1 invalid, refused or failed, 2 usage error. ${CREDENTIALS_NOTE}`,
    options: [
      { name: 'ignore-revision', help: 'Ignore a "revision" in the JSON: write even if the rule changed since (e.g. to put back an old copy).' },
      { name: 'take-over', help: 'Overwrite a deploy-managed rule; it becomes a run-time rule, which later deploys leave alone.' },
      ...TABLE_OPTIONS,
    ],
    run: withTable(async (table, opts, args) => {
      if (args.length > 1) throw new UsageError(`unexpected argument ${JSON.stringify(args[1])}`);
      const source = args[0] ?? '-';
      if (source === '-' && process.stdin.isTTY) throw new UsageError('put needs one rule as JSON: a FILE argument, or the JSON on standard input');
      const text = readText(source, Failure);
      let raw: unknown;
      try {
        raw = JSON.parse(text);
      } catch (e) {
        throw new Failure(`${source === '-' ? 'standard input' : source} is not valid JSON: ${(e as Error).message}`);
      }
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Failure('put takes one rule: a JSON object such as {"type": "file-v1", "domain": ..., ...}');
      const given = raw as Record<string, unknown>;
      const check = checkItem(given);
      if (!check.rule) {
        err(`invalid rule (${plural(check.errors.length, 'problem')}); nothing was written\n`);
        for (const p of check.errors) err(`  error: ${formatProblem({ ...p, index: null })}\n`);
        throw new Failure('fix the rule and put it again');
      }
      for (const p of check.warnings) err(`  warning: ${formatProblem({ ...p, index: null })}\n`);
      const rule = check.rule;
      const id = ruleId(rule);
      if (given.rule_id !== undefined && given.rule_id !== id) {
        throw new Failure(`the rule's identity changed: rule_id ${JSON.stringify(given.rule_id)} was given, but this rule is ${id} (its ${ruleLabel(rule)} differs). Remove "rule_id" to add it as a new rule, and delete ${String(given.rule_id)} if it replaces that one`);
      }
      const stored = await table.get(rule.domain, id);
      const before = stored ? itemMeta(stored) : null;
      let position = typeof given.position === 'number' && Number.isInteger(given.position) && given.position >= 0 ? given.position : before?.position;
      if (position === undefined) {
        const siblings = await table.queryDomain(rule.domain, true);
        position = siblings.reduce((max, it) => Math.max(max, itemMeta(it).position === Number.MAX_SAFE_INTEGER ? -1 : itemMeta(it).position), -1) + 1;
      }
      const wanted = { ...ruleFields(rule), position };
      if (stored && sameContent(stored, wanted)) {
        out(`unchanged: ${rule.domain} ${id} (revision ${before!.revision}, ${before!.source})\n`);
        return 0;
      }
      if (before?.source === 'deploy' && opts['take-over'] !== true) {
        throw new Failure(`${rule.domain} ${id} is managed by the deployment (the construct's rules); change it there and deploy, or pass --take-over to make it a run-time rule`);
      }
      const readRevision = opts['ignore-revision'] === true ? undefined : given.revision;
      const expected = typeof readRevision === 'number' ? readRevision : before ? before.revision : null;
      if (typeof readRevision === 'number' && !stored) throw new Failure(`${rule.domain} ${id} was deleted since revision ${readRevision} was read; put it with --ignore-revision to create it again`);
      const item = { ...wanted, rule_id: id, revision: (expected ?? 0) + 1, updated_at: new Date().toISOString(), source: 'runtime' } as RuleItem;
      await table.putIf(item, { revision: expected });
      out(`${stored ? 'changed' : 'added'}: ${rule.domain} ${id} ${describeRule(item)} (revision ${item.revision}, run-time rule)\n`);
      return 0;
    }),
  };

  const deleteCmd: CommandSpec = {
    usage: 'artifact-gateway rules delete DOMAIN RULE_ID --table NAME [--force] [--region R] [--endpoint URL]',
    summary: `Remove one rule. The removed item is printed on standard output as JSON, so that
"rules put" can bring it back. A deploy-managed rule is only removed with --force (and the next
deploy puts it back: remove it from the construct's rules to remove it for good).
Exit status: 0 removed, 1 no such rule, refused or failed, 2 usage error. ${CREDENTIALS_NOTE}`,
    options: [
      { name: 'force', help: 'Also remove a deploy-managed rule.' },
      ...TABLE_OPTIONS,
    ],
    positionals: 2,
    run: withTable(async (table, opts, [domainArg, id]) => {
      const domain = domainArg.trim().toLowerCase();
      const item = await table.get(domain, id);
      if (!item) throw new Failure(`no rule ${id} on ${domain} in ${table.describe()} (list the domain's rules with "rules list --domain ${domain}")`);
      const m = itemMeta(item);
      if (m.source === 'deploy' && opts.force !== true) {
        throw new Failure(`${domain} ${id} is managed by the deployment; remove it from the construct's rules and deploy, or pass --force to remove it now (the next deploy puts it back)`);
      }
      await table.deleteIf(domain, id, { revision: m.revision });
      const copy = Object.fromEntries(Object.entries(canonicalItem(item)).filter(([k]) => k !== 'revision'));
      out(`${JSON.stringify(copy, null, 2)}\n`);
      err(`deleted: ${domain} ${id} (was revision ${m.revision}, ${m.source}); to undo, pipe the JSON above to "rules put"\n`);
      return 0;
    }),
  };

  const exportCmd: CommandSpec = {
    usage: 'artifact-gateway rules export --table NAME [--domain D] [--source deploy|runtime] [--output FILE] [--region R] [--endpoint URL]',
    summary: `Write the table's rules as a manifest ({"rules": [...]}, domain by domain in the order the
gateway applies them, "outgoing-url": null written out) that "rules import" reads back to the
same items: a backup, and the way to roll back. Items that fail validation are reported on
stderr and left out (exit status 1). ${CREDENTIALS_NOTE}`,
    options: [
      { name: 'domain', value: 'D', help: 'Only this domain.' },
      { name: 'source', value: 'deploy|runtime', help: 'Only rules managed by the deployment, or only run-time rules. Default: both.' },
      { name: 'output', value: 'FILE', help: 'Write to FILE instead of standard output.' },
      ...TABLE_OPTIONS,
    ],
    positionals: 0,
    run: withTable(async (table, opts) => {
      const only = opts.source as string | undefined;
      if (only !== undefined && only !== 'deploy' && only !== 'runtime') throw new UsageError(`--source must be deploy or runtime, got ${JSON.stringify(only)}`);
      const domain = (opts.domain as string | undefined)?.trim().toLowerCase();
      const items = (domain ? await table.queryDomain(domain, true) : await table.scanAll()).filter((it) => !only || itemMeta(it).source === only);
      const valid: Record<string, unknown>[] = [];
      let invalid = 0;
      for (const it of items) {
        const { errors } = checkItem(it);
        if (!errors.length) valid.push(it);
        else {
          invalid++;
          err(`  error: ${errors.map((p) => formatItemProblem(it, p)).join('; ')} (left out)\n`);
        }
      }
      const text = `${JSON.stringify(itemsToManifest(valid), null, 2)}\n`;
      if (opts.output) fs.writeFileSync(opts.output as string, text);
      else out(text);
      err(`exported ${plural(valid.length, 'rule')} from ${table.describe()}${opts.output ? ` to ${String(opts.output)}` : ''}\n`);
      if (invalid) throw new Failure(`${plural(invalid, 'invalid item')} left out (listed above): fix them with "rules put" or remove them with "rules delete"`);
      return 0;
    }),
  };

  const createTableCmd: CommandSpec = {
    usage: 'artifact-gateway rules create-table --table NAME [--region R] [--endpoint URL]',
    summary: `Create the rule table (on-demand capacity; partition key "domain", sort key "rule_id") and
wait until it is active. Meant for DynamoDB Local and trials: deployed, the CDK construct creates
the table. Exit status 0 also when it already exists. ${CREDENTIALS_NOTE}`,
    options: [...TABLE_OPTIONS],
    positionals: 0,
    run: withTable(async (table) => {
      const r = await table.create();
      out(r === 'created' ? `created ${table.describe()}\n` : `${table.describe()} already exists\n`);
      return 0;
    }),
  };

  return {
    'rules import': importCmd,
    'rules list': listCmd,
    'rules get': getCmd,
    'rules put': putCmd,
    'rules delete': deleteCmd,
    'rules export': exportCmd,
    'rules create-table': createTableCmd,
  };
}

/** Lines for the top-level help and `rules --help`. */
export const RULES_TABLE_HELP: readonly [string, string][] = [
  ['import FILE', 'Write a manifest\'s rules to the rule table (--dry-run, --prune).'],
  ['list', 'List the rules in the table.'],
  ['get DOMAIN RULE_ID', 'Print one rule as JSON.'],
  ['put [FILE|-]', 'Add or change one rule (JSON).'],
  ['delete DOMAIN RULE_ID', 'Remove one rule.'],
  ['export', 'Write the table\'s rules as a manifest.'],
  ['create-table', 'Create the rule table (DynamoDB Local, trials).'],
];
