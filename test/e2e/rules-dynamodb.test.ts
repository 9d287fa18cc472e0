/**
 * Run-time rules against AWS's DynamoDB Local: the `rules` CLI (import/export round trip, dry
 * runs, pruning, put/get/delete with optimistic concurrency, errors that say what to fix), the
 * split between deploy-managed and run-time rules, and a real gateway (`serve --rules-table`)
 * that picks up a change within the TTL, skips an invalid item, and keeps answering from its last
 * good rules while DynamoDB Local is killed, recovering when it is back.
 */
import fs from 'node:fs';
import path from 'node:path';
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { freePort, Gateway, makeTempDir, pollUntil, removeDir, request, ROOT, runCli, startGateway, writeJson, type CliResult } from './helpers';
import { DynamoDbLocal } from './dynamodb-local';
import { createDocumentClient, createDynamoRuleStore, RuleTable, syncDeployRules, toItems } from '../../lambda/rule-store';
import { validateManifest } from '../../lambda/core/validate';

jest.setTimeout(120_000);
// This project pins SDK versions that support Node 20 (bin/cli.ts says the same for the CLI).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

/** DynamoDB Local takes any credentials; these make the runs independent of the machine's AWS setup. */
const AWS_ENV = { AWS_ACCESS_KEY_ID: 'local', AWS_SECRET_ACCESS_KEY: 'local', AWS_REGION: 'us-east-1' };
// The gateways this file starts inherit them too.
Object.assign(process.env, AWS_ENV);
const FIXTURE = path.join(ROOT, 'test', 'fixtures', 'rule-store', 'every-type.json');
/** Rules in the fixture (one or more of every rule type). */
const RULE_COUNT = (JSON.parse(fs.readFileSync(FIXTURE, 'utf8')) as { rules: unknown[] }).rules.length;

let dir: string;
let ddb: DynamoDbLocal;
const gateways: Gateway[] = [];

beforeAll(async () => {
  dir = makeTempDir('gw-e2e-rules-ddb-');
  fs.mkdirSync(path.join(dir, 'db'));
  ddb = await DynamoDbLocal.start({ dbPath: path.join(dir, 'db') });
});

afterAll(async () => {
  for (const g of gateways) await g.kill();
  await ddb?.kill();
  removeDir(dir);
});

/** The CLI as a user runs it, with optional standard input; `env` replaces the AWS variables. */
function cli(args: string[], input?: string, env: NodeJS.ProcessEnv = AWS_ENV, timeoutMs = 30_000): Promise<CliResult> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AWS_')));
  return runCli(args, { input, env: { ...base, ...env }, timeoutMs });
}

/** Fails with the command's output when the exit status is not the expected one. */
async function ok(args: string[], input?: string, expected = 0): Promise<CliResult> {
  const r = await cli(args, input);
  if (r.code !== expected) throw new Error(`artifact-gateway ${args.join(' ')} exited ${r.code} (expected ${expected})\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

let tableSeq = 0;
const at = (table: string) => ['--table', table, '--endpoint', ddb.endpoint];
async function newTable(): Promise<string> {
  const name = `rules-${process.pid}-${tableSeq++}`;
  const r = await ok(['rules', 'create-table', ...at(name)]);
  expect(r.stdout).toMatch(new RegExp(`created table "${name}" in us-east-1 at ${ddb.endpoint.replace(/\./g, '\\.')}`));
  return name;
}

/** Direct table access for what the CLI must not do (write an invalid item) and for the deploy's sync. */
function directTable(name: string): RuleTable {
  return new RuleTable({ tableName: name, endpoint: ddb.endpoint, client: createDocumentClient({ endpoint: ddb.endpoint, region: 'us-east-1' }, { ...process.env, ...AWS_ENV }) });
}

const fileRule = (domain: string, p: string, target: string | null, packageId = 'pkg') => ({ type: 'file-v1', domain, 'incoming-path': p, 'outgoing-url': target, 'package-id': packageId });
const manifestFile = (name: string, rules: unknown[]) => writeJson(path.join(dir, name), { rules });

interface ItemJson { domain: string; rule_id: string; revision: number; source: string; position: number; [k: string]: unknown }

async function listItems(table: string, domain?: string): Promise<ItemJson[]> {
  const r = await ok(['rules', 'list', '--json', ...(domain ? ['--domain', domain] : []), ...at(table)]);
  return JSON.parse(r.stdout) as ItemJson[];
}

describe('rules commands: help and errors that say what to fix', () => {
  test.each(['import', 'list', 'get', 'put', 'delete', 'export', 'create-table'])('rules %s --help documents --table, --region, --endpoint and exit status', async (sub) => {
    const r = await ok(['rules', sub, '--help']);
    expect(r.stdout).toMatch(new RegExp(`^usage: artifact-gateway rules ${sub}`));
    for (const opt of ['--table NAME', '--region REGION', '--endpoint URL', '--help']) expect(r.stdout).toMatch(new RegExp(`^\\s+${opt.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s+\\S`, 'm'));
    if (sub !== 'list' && sub !== 'create-table') expect(r.stdout).toMatch(/[Ee]xit status/);
  });

  test('rules --help lists every subcommand', async () => {
    const r = await ok(['rules', '--help']);
    for (const sub of ['validate FILE', 'import FILE', 'list', 'get DOMAIN RULE_ID', 'put', 'delete DOMAIN RULE_ID', 'export', 'create-table']) expect(r.stdout).toContain(`  ${sub}`);
  });

  test('no --table: usage error (exit 2) naming the option and its variable', async () => {
    const r = await cli(['rules', 'list', '--endpoint', ddb.endpoint]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('artifact-gateway: --table is required (or set ARTIFACT_GATEWAY_RULES_TABLE)');
  });

  test('a table that does not exist: exit 1, naming the table, the region and how to create it', async () => {
    const r = await cli(['rules', 'list', ...at('no-such-table')]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/table "no-such-table" in us-east-1 at http:\/\/127\.0\.0\.1:\d+ does not exist: check --table and --region.*rules create-table --table no-such-table/);
  });

  test('nothing listening at --endpoint: exit 1, saying so', async () => {
    const port = await freePort();
    const r = await cli(['rules', 'list', '--table', 'rules', '--endpoint', `http://127.0.0.1:${port}`]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(`artifact-gateway: cannot reach DynamoDB at http://127.0.0.1:${port} (connection refused): is DynamoDB Local running there? Start it or fix --endpoint`);
  });

  test('no credentials, no region: exit 1, saying how to provide them', async () => {
    // An empty HOME (no ~/.aws) and no instance metadata lookup: nothing to find, nothing sent anywhere.
    const home = makeTempDir('gw-e2e-home-');
    try {
      const noCreds = await cli(['rules', 'list', '--table', 'rules', '--endpoint', 'http://dynamodb.invalid:8000'], undefined, { HOME: home, AWS_EC2_METADATA_DISABLED: 'true', AWS_REGION: 'eu-west-1' });
      expect(noCreds.code).toBe(1);
      expect(noCreds.stderr.trim()).toMatch(/^artifact-gateway: no AWS credentials found: set AWS_PROFILE .*or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; for DynamoDB Local any values work/);
      const noRegion = await cli(['rules', 'list', '--table', 'rules'], undefined, { HOME: home, AWS_EC2_METADATA_DISABLED: 'true', AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'y' });
      expect(noRegion.code).toBe(1);
      expect(noRegion.stderr.trim()).toBe('artifact-gateway: no AWS region: pass --region or set AWS_REGION');
    } finally {
      removeDir(home);
    }
  });

  test('an invalid rule is refused before anything is written, naming the field', async () => {
    const table = await newTable();
    const r = await cli(['rules', 'put', '-', ...at(table)], JSON.stringify(fileRule('get.example.test', '/a/{v', 'https://x.example.test/{v}')));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error: .*field "incoming-path": "\/a\/\{v": unclosed '\{'/);
    expect(r.stderr).toMatch(/nothing was written/);
    const bad = manifestFile('bad.json', [fileRule('get.example.test', '/ok', null), { type: 'docker-v1', domain: 'cr.example.test', registry: 'ghcr.io', 'package-id': 'p' }]);
    const i = await cli(['rules', 'import', bad, ...at(table)]);
    expect(i.code).toBe(1);
    expect(i.stderr).toMatch(/rule 1 \(docker-v1, cr\.example\.test\), field "repository-name": is required/);
    expect(await listItems(table)).toEqual([]);
  });
});

describe('import and export', () => {
  test('a manifest with every rule type round-trips: export re-imports with no change and exports identically', async () => {
    const table = await newTable();
    const dry = await ok(['rules', 'import', FIXTURE, '--dry-run', ...at(table)]);
    expect(dry.stdout.split('\n').filter((l) => l.startsWith('+ add'))).toHaveLength(RULE_COUNT);
    expect(dry.stdout).toContain(`dry run, nothing written: ${RULE_COUNT} to add, 0 to change, 0 to remove, 0 unchanged`);
    expect(await listItems(table)).toEqual([]);

    const first = await ok(['rules', 'import', FIXTURE, ...at(table)]);
    expect(first.stdout).toContain(`${RULE_COUNT} added, 0 changed, 0 removed, 0 unchanged`);
    const again = await ok(['rules', 'import', FIXTURE, ...at(table)]);
    expect(again.stdout.trim()).toMatch(new RegExp(`^imported .*: 0 added, 0 changed, 0 removed, ${RULE_COUNT} unchanged$`));

    const exported = await ok(['rules', 'export', ...at(table)]);
    expect(exported.stderr).toContain(`exported ${RULE_COUNT} rules`);
    expect(exported.stdout).toContain('"outgoing-url": null');
    // The fixture's rules as validated, domain by domain, each domain in file order.
    const fixtureRules = validateManifest(JSON.parse(fs.readFileSync(FIXTURE, 'utf8'))).rules as unknown as Array<Record<string, unknown>>;
    const domains = [...new Set(fixtureRules.map((r) => String(r.domain)))].sort();
    expect(JSON.parse(exported.stdout)).toEqual({ rules: domains.flatMap((d) => fixtureRules.filter((r) => r.domain === d)) });

    // Into another table and back out: the same text.
    const exportFile = path.join(dir, 'exported.json');
    fs.writeFileSync(exportFile, exported.stdout);
    const again2 = await ok(['rules', 'import', exportFile, ...at(table)]);
    expect(again2.stdout.trim()).toMatch(new RegExp(`0 added, 0 changed, 0 removed, ${RULE_COUNT} unchanged$`));
    const other = await newTable();
    await ok(['rules', 'import', exportFile, ...at(other)]);
    const exportedOther = await ok(['rules', 'export', '--output', path.join(dir, 'exported-2.json'), ...at(other)]);
    expect(exportedOther.stdout).toBe('');
    expect(fs.readFileSync(path.join(dir, 'exported-2.json'), 'utf8')).toBe(exported.stdout);
    const oneDomain = JSON.parse((await ok(['rules', 'export', '--domain', 'tie.example.test', ...at(other)])).stdout) as { rules: unknown[] };
    expect(oneDomain.rules).toEqual(fixtureRules.filter((r) => r.domain === 'tie.example.test'));
  });

  test('--dry-run shows changes and removals with the fields that differ; --prune removes run-time rules the file dropped', async () => {
    const table = await newTable();
    const D = 'get.example.test';
    await ok(['rules', 'import', manifestFile('v1.json', [fileRule(D, '/a', 'https://one.example.test/a'), fileRule(D, '/b', null), fileRule('other.example.test', '/c', null)]), ...at(table)]);
    const v2 = manifestFile('v2.json', [fileRule(D, '/a', 'https://two.example.test/a'), fileRule(D, '/new', null)]);
    const dry = await ok(['rules', 'import', v2, '--prune', '--dry-run', ...at(table)]);
    const lines = dry.stdout.split('\n');
    expect(lines.find((l) => l.startsWith('~ change'))).toMatch(/get\.example\.test file-v1:[0-9a-f]{16}\s+\/a -> https:\/\/two\.example\.test\/a\s+\(outgoing-url\)$/);
    expect(lines.find((l) => l.startsWith('+ add'))).toMatch(/\/new \(record only\)/);
    expect(lines.find((l) => l.startsWith('- remove'))).toMatch(/\/b \(record only\)/);
    expect(dry.stdout).toMatch(/1 to add, 1 to change, 1 to remove, 0 unchanged/);
    // Without --prune nothing is removed; with it, only in the file's domains.
    expect((await ok(['rules', 'import', v2, '--dry-run', ...at(table)])).stdout).toMatch(/1 to add, 1 to change, 0 to remove/);
    await ok(['rules', 'import', v2, '--prune', ...at(table)]);
    const items = await listItems(table);
    expect(items.map((i) => [i.domain, i['incoming-path'], i.revision])).toEqual([
      [D, '/a', 2],
      [D, '/new', 1],
      ['other.example.test', '/c', 1],
    ]);
  });

  test('a long import batches its writes and reports progress', async () => {
    const table = await newTable();
    const rules = Array.from({ length: 260 }, (_, i) => fileRule(`d${i % 7}.example.test`, `/f${i}/{v}`, `https://files.example.test/${i}/{v}`));
    const r = await ok(['rules', 'import', manifestFile('big.json', rules), ...at(table)]);
    expect(r.stderr).toMatch(/^import: 260\/260 items written$/m);
    expect(r.stdout).toMatch(/260 added/);
    expect(await listItems(table)).toHaveLength(260);
  });
});

describe('one rule at a time: put, get, delete', () => {
  test('put from stdin, get, put with the revision read, refusal of a stale revision, delete and undo', async () => {
    const table = await newTable();
    const D = 'cr.example.test';
    const rule = { type: 'docker-v1', domain: D, 'repository-name': 'acme/api', registry: 'ghcr.io', 'package-id': 'api' };
    const added = await ok(['rules', 'put', ...at(table)], JSON.stringify(rule));
    const id = /added: cr\.example\.test (docker-v1:[0-9a-f]{16}) acme\/api -> ghcr\.io \(revision 1, run-time rule\)/.exec(added.stdout)?.[1];
    expect(id).toBeDefined();
    expect((await ok(['rules', 'put', '-', ...at(table)], JSON.stringify(rule))).stdout).toMatch(/^unchanged: /);

    const got = JSON.parse((await ok(['rules', 'get', D, id!, ...at(table)])).stdout) as ItemJson;
    expect(got).toMatchObject({ ...rule, rule_id: id, revision: 1, source: 'runtime', position: 0 });
    // Move the image to another registry, based on what was read.
    const moved = await ok(['rules', 'put', ...at(table)], JSON.stringify({ ...got, registry: 'quay.io' }));
    expect(moved.stdout).toMatch(/changed: .*-> quay\.io \(revision 2/);
    // A second edit of the same old copy is refused: someone changed it meanwhile.
    const stale = await cli(['rules', 'put', ...at(table)], JSON.stringify({ ...got, registry: 'registry.example.test' }));
    expect(stale.code).toBe(1);
    expect(stale.stderr).toMatch(/changed since it was read \(expected revision 1\).*rules get cr\.example\.test docker-v1:/);
    // Changing the identity with a rule_id is refused with what to do instead.
    const renamed = await cli(['rules', 'put', ...at(table)], JSON.stringify({ ...got, 'repository-name': 'acme/other', revision: 2 }));
    expect(renamed.code).toBe(1);
    expect(renamed.stderr).toMatch(/identity changed.*Remove "rule_id" to add it as a new rule/);

    const deleted = await ok(['rules', 'delete', D, id!, ...at(table)]);
    expect(deleted.stderr).toMatch(/deleted: cr\.example\.test docker-v1:\S+ \(was revision 2, runtime\)/);
    expect(await listItems(table)).toEqual([]);
    expect((await cli(['rules', 'get', D, id!, ...at(table)])).stderr).toMatch(/no rule docker-v1:\S+ on cr\.example\.test .*rules list --domain cr\.example\.test/);
    // Undo: the printed item goes back in as it was.
    await ok(['rules', 'put', ...at(table)], deleted.stdout);
    expect(await listItems(table)).toEqual([expect.objectContaining({ rule_id: id, registry: 'quay.io', revision: 1, source: 'runtime' })]);
  });
});

describe('deploy-managed and run-time rules are kept apart', () => {
  test('the deploy sync and the CLI never overwrite or remove each other\'s rules', async () => {
    const table = await newTable();
    const direct = directTable(table);
    const D = 'get.example.test';
    const deployRules = [fileRule(D, '/deployed', 'https://deploy.example.test/a'), fileRule(D, '/also-deployed', null)];
    const first = await syncDeployRules(direct, deployRules);
    expect(first.plan.count('add')).toBe(2);
    // An operator adds a run-time rule on the same domain.
    await ok(['rules', 'put', ...at(table)], JSON.stringify(fileRule(D, '/ops', 'https://ops.example.test/')));
    const items = await listItems(table);
    expect(items.map((i) => [i['incoming-path'], i.source])).toEqual([['/deployed', 'deploy'], ['/also-deployed', 'deploy'], ['/ops', 'runtime']]);
    const deployedId = items[0].rule_id;

    // The CLI refuses to change a deploy-managed rule, as a whole import and as one put.
    const changed = manifestFile('override.json', [fileRule(D, '/deployed', 'https://ops.example.test/a'), fileRule(D, '/ops', 'https://ops.example.test/')]);
    const refused = await cli(['rules', 'import', changed, ...at(table)]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/^! refuse\s+get\.example\.test file-v1:\S+\s+\/deployed .*managed by the deployment/m);
    expect(refused.stderr).toMatch(/nothing was written.*--take-over/);
    const putRefused = await cli(['rules', 'put', ...at(table)], JSON.stringify(fileRule(D, '/deployed', 'https://ops.example.test/a')));
    expect(putRefused.code).toBe(1);
    expect(putRefused.stderr).toMatch(/managed by the deployment.*--take-over/);
    const delRefused = await cli(['rules', 'delete', D, deployedId, ...at(table)]);
    expect(delRefused.code).toBe(1);
    expect(delRefused.stderr).toMatch(/managed by the deployment; remove it from the construct's rules and deploy, or pass --force/);
    expect((await listItems(table)).map((i) => i.revision)).toEqual([1, 1, 1]);

    // --prune leaves deploy-managed rules alone.
    const pruned = await ok(['rules', 'import', manifestFile('only-ops.json', [fileRule(D, '/ops', 'https://ops.example.test/')]), '--prune', ...at(table)]);
    expect(pruned.stdout).toMatch(/^= keep\s+get\.example\.test .*\/deployed .*deploy-managed rule, not in the file/m);
    expect(await listItems(table)).toHaveLength(3);

    // --take-over makes it a run-time rule; the next deploy leaves it alone, and removes only its own stale rule.
    await ok(['rules', 'import', changed, '--take-over', ...at(table)]);
    const second = await syncDeployRules(direct, [deployRules[0]]);
    expect(second.plan.steps.map((s) => [s.action, ((s.after ?? s.before) as Record<string, unknown>)['incoming-path']])).toEqual(expect.arrayContaining([['conflict', '/deployed'], ['remove', '/also-deployed'], ['keep', '/ops']]));
    const after = await listItems(table);
    expect(after.map((i) => [i['incoming-path'], i.source, i['outgoing-url']])).toEqual([
      ['/deployed', 'runtime', 'https://ops.example.test/a'],
      ['/ops', 'runtime', 'https://ops.example.test/'],
    ]);
    // toItems is the same validation: an invalid deploy rule throws before anything is written.
    expect(() => toItems([fileRule(D, 'no-slash{', null)], { source: 'deploy' })).toThrow(/field "incoming-path"/);
  });
});

describe('the rule store against the table', () => {
  test('a cold start reads one domain with one Query (no Scan), shared by concurrent requests; unknown hosts are cached', async () => {
    const table = await newTable();
    await ok(['rules', 'import', FIXTURE, ...at(table)]);
    const direct = directTable(table);
    const sent: string[] = [];
    direct.client.middlewareStack.add((next, context) => async (args) => {
      sent.push(String(context.commandName));
      return next(args);
    }, { step: 'initialize', name: 'countCommands' });
    const { store } = createDynamoRuleStore({ tableName: table, table: direct, ttlMs: 60_000 });
    const sets = await Promise.all(Array.from({ length: 50 }, () => store.rulesFor('cr.example.test')));
    expect(new Set(sets).size).toBe(1);
    expect(sets[0].domains.get('cr.example.test')?.ruleCount).toBe(5);
    expect(sent).toEqual(['QueryCommand']);
    for (let i = 0; i < 20; i++) await store.rulesFor('unknown.example.test');
    expect(sent).toEqual(['QueryCommand', 'QueryCommand']);
  });
});

describe('the gateway serving from the table', () => {
  async function gatewayOn(table: string, ttlSeconds: number): Promise<Gateway> {
    const gw = await startGateway({ events: path.join(dir, `events-${table}`), extraArgs: ['--rules-table', table, '--dynamodb-endpoint', ddb.endpoint, '--rules-ttl', String(ttlSeconds)] });
    gateways.push(gw);
    expect(gw.stderr).toMatch(new RegExp(`listening on http://127\\.0\\.0\\.1:\\d+ \\(rules from table "${table}" in us-east-1 at ${ddb.endpoint.replace(/\./g, '\\.')}, at most ${ttlSeconds} s old`));
    return gw;
  }

  const locationOf = async (gw: Gateway, host: string, p: string) => {
    const r = await request(gw.port, { path: p, headers: { host } });
    return `${r.status} ${r.headers.location ?? ''}`.trim();
  };

  test('a rule changed with the CLI is served within the TTL', async () => {
    const table = await newTable();
    const D = 'get.example.test';
    await ok(['rules', 'import', manifestFile('live.json', [fileRule(D, '/tool/{v}', 'https://old.example.test/{v}')]), ...at(table)]);
    const ttl = 2;
    const gw = await gatewayOn(table, ttl);
    expect(await locationOf(gw, D, '/tool/1')).toBe('307 https://old.example.test/1');
    const written = await ok(['rules', 'put', ...at(table)], JSON.stringify(fileRule(D, '/tool/{v}', 'https://new.example.test/{v}')));
    const writtenAt = Date.now();
    expect(written.stdout).toMatch(/^changed: /);
    await pollUntil('the new rule', async () => ((await locationOf(gw, D, '/tool/1')) === '307 https://new.example.test/1' ? true : undefined), ttl * 1000 + 3_000, 20);
    // The bound is the TTL plus one Query (3 s of slack for a loaded machine); the measured distribution is in docs/BENCHMARKS.md.
    expect(Date.now() - writtenAt).toBeLessThan(ttl * 1000 + 3_000);
    // A domain added at run time is served too (after the negative cache of its host expires).
    await ok(['rules', 'put', ...at(table)], JSON.stringify(fileRule('new.example.test', '/x', 'https://x.example.test/')));
    await pollUntil('the new domain', async () => ((await locationOf(gw, 'new.example.test', '/x')) === '307 https://x.example.test/' ? true : undefined), ttl * 1000 + 3_000, 20);
  });

  test('an invalid item is skipped and reported; the domain\'s other rules are served', async () => {
    const table = await newTable();
    const D = 'get.example.test';
    await ok(['rules', 'import', manifestFile('valid.json', [fileRule(D, '/good', 'https://good.example.test/')]), ...at(table)]);
    // Written behind the CLI's back (the console, a script): a template that does not parse.
    const bad = { ...toItems([fileRule(D, '/bad/{x}', 'https://bad.example.test/{x}')], { source: 'runtime' }).items[0], 'incoming-path': '/bad/{x', position: 1 };
    await directTable(table).client.send(new PutCommand({ TableName: table, Item: bad }));
    const gw = await gatewayOn(table, 1);
    expect(await locationOf(gw, D, '/good')).toBe('307 https://good.example.test/');
    expect(await locationOf(gw, D, '/bad/1')).toBe('404');
    await gw.waitForStderr(new RegExp(`warn: rules: skipping invalid item ${D.replace(/\./g, '\\.')}/${bad.rule_id}, field "incoming-path": "/bad/\\{x": unclosed`));
    const list = await ok(['rules', 'list', '--domain', D, ...at(table)]);
    expect(list.stdout).toMatch(new RegExp(`${bad.rule_id}.*INVALID: item .*field "incoming-path"`));
    const exported = await cli(['rules', 'export', ...at(table)]);
    expect(exported.code).toBe(1);
    expect(JSON.parse(exported.stdout)).toEqual({ rules: [fileRule(D, '/good', 'https://good.example.test/')] });
    expect(exported.stderr).toMatch(new RegExp(`error: item ${D.replace(/\./g, '\\.')}/${bad.rule_id}, field "incoming-path".*\\(left out\\)`));
  });

  test('DynamoDB Local killed mid-run: every request is still answered from the last good rules, and changes flow again once it is back', async () => {
    const table = await newTable();
    const hosts = ['a.example.test', 'b.example.test', 'c.example.test'];
    await ok(['rules', 'import', manifestFile('outage.json', hosts.map((h) => fileRule(h, '/f/{v}', `https://${h}/dl/{v}`))), ...at(table)]);
    const gw = await gatewayOn(table, 1);
    for (const h of hosts) expect(await locationOf(gw, h, '/f/1')).toBe(`307 https://${h}/dl/1`);

    let running = true;
    let answered = 0;
    const failures: string[] = [];
    const load = async (worker: number) => {
      for (let i = 0; running; i++) {
        const h = hosts[(i + worker) % hosts.length];
        try {
          const got = await locationOf(gw, h, `/f/${i}`);
          const okOld = got === `307 https://${h}/dl/${i}`;
          const okNew = h === 'a.example.test' && got === `307 https://moved.example.test/dl/${i}`;
          if (okOld || okNew) answered++;
          else failures.push(`${h}: ${got}`);
        } catch (e) {
          failures.push(`${h}: ${(e as Error).message}`);
        }
      }
    };
    const workers = [0, 1, 2, 3].map(load);
    try {
      await pollUntil('some answers before the outage', async () => (answered > 50 ? true : undefined), 10_000, 20);
      await ddb.kill();
      const during = answered;
      // Several TTLs without DynamoDB: refreshes fail, stale-if-error answers.
      await gw.waitForStderr(/warn: rules: cannot refresh [abc]\.example\.test from DynamoDB .*serving the last good rules/, 10_000);
      await pollUntil('answers during the outage', async () => (answered > during + 200 ? true : undefined), 20_000, 50);
      // A host the gateway has never loaded has no rules to fall back on: 503, which clients retry.
      const cold = await request(gw.port, { path: '/f/1', headers: { host: 'never-seen.example.test' } });
      expect([cold.status, cold.headers['retry-after'], JSON.parse(cold.body.toString('utf8')).error]).toEqual([503, '1', 'rules_unavailable']);
      await gw.waitForStderr(/error: rules: cannot load never-seen\.example\.test from DynamoDB .*503/, 5_000);
      await ddb.launch();
      await ok(['rules', 'put', ...at(table)], JSON.stringify(fileRule('a.example.test', '/f/{v}', 'https://moved.example.test/dl/{v}')));
      await pollUntil('the change after recovery', async () => ((await locationOf(gw, 'a.example.test', '/f/x')) === '307 https://moved.example.test/dl/x' ? true : undefined), 15_000, 50);
      await gw.waitForStderr(/rules: a\.example\.test loaded again after \d+ failed attempts?/, 10_000);
    } finally {
      running = false;
      await Promise.all(workers);
    }
    expect(failures).toEqual([]);
    expect(answered).toBeGreaterThan(250);
  });
});
