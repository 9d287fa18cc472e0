/**
 * Rules as table items (lambda/rule-store/items.ts) and write plans (plan.ts): stable ids,
 * validation on the write path, the manifest round trip, and who may change what (deploy vs
 * run time).
 */
import fs from 'node:fs';
import path from 'node:path';
import { checkItem, itemsToManifest, ruleId, toItems, IDENTITY_FIELDS, type RuleItem } from '../../lambda/rule-store/items';
import { planWrite, type PlanAction } from '../../lambda/rule-store/plan';
import { RuleStore } from '../../lambda/rule-store/store';
import { ManifestError, validateManifest } from '../../lambda/core/validate';
import { compileRules, type CompiledRuleSet } from '../../lambda/core/compile';
import { RULE_TYPE_NAMES, type Rule } from '../../lambda/core/schema';
import { handle } from './helpers';

const FIXTURE = path.join(__dirname, '..', 'fixtures', 'rule-store', 'every-type.json');
const fixture = JSON.parse(fs.readFileSync(FIXTURE, 'utf8')) as { rules: Record<string, unknown>[] };
const NOW = new Date('2026-01-02T03:04:05.678Z');

const file = (domain: string, p: string, target: string | null, packageId = 'pkg') => ({ type: 'file-v1', domain, 'incoming-path': p, 'outgoing-url': target, 'package-id': packageId });

describe('rule ids', () => {
  test('the fixture covers every rule type', () => {
    expect(new Set(fixture.rules.map((r) => r.type))).toEqual(new Set(RULE_TYPE_NAMES));
    expect(Object.keys(IDENTITY_FIELDS).sort()).toEqual([...RULE_TYPE_NAMES].sort());
  });

  test('are <type>:<16 hex>, deterministic, and depend only on the identity fields', () => {
    const a = toItems([file('get.example.test', '/a/{v}', 'https://x.example.test/{v}')], { source: 'runtime' }).items[0];
    const b = toItems([file('get.example.test', '/a/{v}', 'https://y.example.test/{v}', 'other')], { source: 'runtime' }).items[0];
    const c = toItems([file('get.example.test', '/b/{v}', 'https://x.example.test/{v}')], { source: 'runtime' }).items[0];
    expect(a.rule_id).toMatch(/^file-v1:[0-9a-f]{16}$/);
    expect(b.rule_id).toBe(a.rule_id); // same path: the same rule, changed
    expect(c.rule_id).not.toBe(a.rule_id);
    // Fixed values (sha256 of '["acme/api"]', computed with sha256sum), so an accidental change of the derivation (which would orphan every stored item) fails here.
    expect(a.rule_id).toBe(ruleId({ type: 'file-v1', domain: 'whatever', 'incoming-path': '/a/{v}', 'outgoing-url': null, 'package-id': '' } as Rule));
    expect(ruleId({ type: 'docker-v1', domain: 'cr.example.test', 'repository-name': 'acme/api', registry: 'ghcr.io', 'package-id': 'x' } as Rule)).toBe('docker-v1:80a02c3c34b726ee');
  });

  test('every rule of the fixture has a distinct id within its domain', () => {
    const { items, duplicates } = toItems(fixture, { source: 'runtime' });
    expect(duplicates).toEqual([]);
    expect(new Set(items.map((i) => `${i.domain} ${i.rule_id}`)).size).toBe(fixture.rules.length);
  });
});

describe('toItems (the write path of the CDK construct)', () => {
  test('validates like the engine and throws ManifestError listing every problem', () => {
    const bad = [file('get.example.test', '/a/{v', 'https://x.example.test/'), { type: 'docker-v1', domain: 'cr.example.test', registry: 'ftp://x', 'package-id': 'p' }];
    let thrown: unknown;
    try {
      toItems(bad, { source: 'deploy' });
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(ManifestError);
    const fields = (thrown as ManifestError).errors.map((p) => `${p.index} ${p.field}`);
    expect(fields).toEqual(expect.arrayContaining(['0 incoming-path', '1 repository-name', '1 registry']));
  });

  test('makes items with the rule fields, rule_id, per-domain position, revision 1, updated_at and source', () => {
    const { items } = toItems({ rules: [file('A.example.test', '/a', null), file('b.example.test', '/b', null), file('a.example.test', '/c', 'https://x.example.test/c')] }, { source: 'deploy', now: NOW });
    expect(items).toEqual([
      { type: 'file-v1', domain: 'a.example.test', 'incoming-path': '/a', 'outgoing-url': null, 'package-id': 'pkg', rule_id: expect.stringMatching(/^file-v1:/), position: 0, revision: 1, updated_at: NOW.toISOString(), source: 'deploy' },
      expect.objectContaining({ domain: 'b.example.test', position: 0 }),
      expect.objectContaining({ domain: 'a.example.test', position: 1 }),
    ]);
    expect(items.every((it) => checkItem(it).errors.length === 0)).toBe(true);
  });

  test('two rules with one identity become the one the gateway serves: docker-v1 the earlier, others the later', () => {
    const docker = (registry: string) => ({ type: 'docker-v1', domain: 'cr.example.test', 'repository-name': 'acme/api', registry, 'package-id': 'p' });
    const d = toItems([docker('ghcr.io'), docker('quay.io')], { source: 'runtime' });
    expect(d.items.map((i) => (i as unknown as Record<string, unknown>).registry)).toEqual(['ghcr.io']);
    expect(d.duplicates).toEqual([{ index: 1, keptIndex: 0, domain: 'cr.example.test', ruleId: d.items[0].rule_id }]);
    const f = toItems([file('get.example.test', '/a', 'https://one.example.test/'), file('get.example.test', '/b', null), file('get.example.test', '/a', 'https://two.example.test/')], { source: 'runtime' });
    expect(f.items.map((i) => [(i as unknown as Record<string, unknown>)['incoming-path'], i.position])).toEqual([['/b', 0], ['/a', 1]]);
    expect((f.items[1] as unknown as Record<string, unknown>)['outgoing-url']).toBe('https://two.example.test/');
  });
});

describe('manifest round trip', () => {
  test('items -> manifest keeps every field, writes outgoing-url null explicitly, and imports back to the same items', () => {
    const first = toItems(fixture, { source: 'runtime', now: NOW }).items;
    const manifest = itemsToManifest(first);
    const text = JSON.stringify(manifest);
    expect(text).toContain('"outgoing-url":null');
    expect(manifest.rules.filter((r) => r['outgoing-url'] === null)).toHaveLength(2);
    expect(manifest.rules.find((r) => r.type === 'docker-v1' && r['repository-name'] === 'acme/web')).toHaveProperty('owner', null);
    // The same rules, grouped by domain, each domain in manifest order.
    const validated = validateManifest(fixture).rules as unknown as Record<string, unknown>[];
    const byDomain = [...validated].sort((a, b) => (String(a.domain) < String(b.domain) ? -1 : String(a.domain) > String(b.domain) ? 1 : 0));
    expect(manifest.rules).toEqual(byDomain);
    // Re-importing gives identical items, and exporting again identical text.
    const second = toItems(manifest, { source: 'runtime', now: NOW }).items;
    expect([...second].sort(byKey)).toEqual([...first].sort(byKey));
    expect(JSON.stringify(itemsToManifest(second))).toBe(text);
  });

  test('the gateway answers the same from stored items as from the manifest', async () => {
    const direct = compileRules(validateManifest(fixture).rules);
    const items = toItems(itemsToManifest(toItems(fixture, { source: 'runtime' }).items), { source: 'runtime' }).items;
    const store = new RuleStore({ load: async (d) => items.filter((i) => i.domain === d).reverse() });
    const requests: Array<[string, string, Record<string, string>?]> = [
      ['get.example.test', '/rocket/1.2.0/rocket-linux-amd64.tar.gz'],
      ['get.example.test', '/beacon/42'],
      ['get.example.test', '/search?lang=en&q=rocket'],
      ['get.example.test', '/nightly/2026-01-02/rocket.tar.gz'],
      ['get.example.test', '/ping/7'],
      ['get.example.test', '/a.png'],
      ['get.example.test', '/nope'],
      ['cr.example.test', '/v2/', { 'user-agent': 'docker/27.0.1' }],
      ['cr.example.test', '/v2/acme/api/manifests/latest', { 'user-agent': 'docker/27.0.1' }],
      ['cr.example.test', '/v2/acme/web/manifests/latest', { 'user-agent': 'docker/27.0.1' }],
      ['cr.example.test', '/v2/library/hello-world/manifests/latest', { 'user-agent': 'skopeo/1.9.3' }],
      ['cr.example.test', '/v2/acme/tools/manifests/1.0', { 'user-agent': 'docker/27.0.1' }],
      ['cr.example.test', '/v2/acme/other/blobs/sha256:00', { 'user-agent': 'docker/27.0.1' }],
      ['py.example.test', '/simple/'],
      ['py.example.test', '/simple/rocket/'],
      ['py.example.test', '/simple/rocket/rocket-1.0.0.tar.gz'],
      ['docs.example.test', '/guide/intro?x=1'],
      ['track.example.test', '/anything'],
      ['static.example.test', '/b.png'],
      ['tie.example.test', '/x.zip'],
    ];
    for (const [host, target, headers] of requests) {
      const set = (await store.rulesFor(host)) as CompiledRuleSet;
      const a = handle(direct, host, target, { headers });
      const b = handle(set, host, target, { headers });
      expect({ host, target, decision: b.decision, events: b.events }).toEqual({ host, target, decision: a.decision, events: a.events });
    }
    const tie = handle((await store.rulesFor('tie.example.test')) as CompiledRuleSet, 'tie.example.test', '/x.zip').decision;
    expect(tie).toMatchObject({ type: 'redirect', location: 'https://two.example.test/x.zip' });
  });
});

const byKey = (a: RuleItem, b: RuleItem) => `${a.domain} ${a.rule_id}`.localeCompare(`${b.domain} ${b.rule_id}`);

describe('write plans: deploy-managed and run-time rules are kept apart', () => {
  const D = 'get.example.test';
  const stored = (rules: unknown[], source: 'deploy' | 'runtime', revision = 3) =>
    toItems(rules, { source, now: NOW }).items.map((it) => ({ ...it, revision }) as Record<string, unknown>);
  const actions = (plan: ReturnType<typeof planWrite>) => plan.steps.map((s) => [s.action, String(((s.after ?? s.before) as Record<string, unknown>)['incoming-path'])] as [PlanAction, string]);

  test('CLI import: add, change (revision + 1), unchanged; without --prune other run-time rules stay', () => {
    const existing = stored([file(D, '/a', 'https://x.example.test/a'), file(D, '/b', 'https://x.example.test/b'), file(D, '/c', null)], 'runtime');
    const desired = toItems([file(D, '/a', 'https://x.example.test/a'), file(D, '/b', 'https://y.example.test/b'), file(D, '/d', null)], { source: 'runtime', now: NOW }).items;
    const plan = planWrite(existing, desired, { writer: 'runtime', prune: false, now: NOW });
    expect(actions(plan)).toEqual([['unchanged', '/a'], ['change', '/b'], ['add', '/d']]);
    const change = plan.steps[1];
    expect(change.fields).toEqual(['outgoing-url']);
    expect(change.after).toMatchObject({ revision: 4, source: 'runtime', updated_at: NOW.toISOString() });
    expect(plan.steps[2].after).toMatchObject({ revision: 1, source: 'runtime' });
  });

  test('CLI import --prune removes run-time rules the file no longer has, never deploy-managed ones', () => {
    const existing = [...stored([file(D, '/a', null), file(D, '/old', null)], 'runtime'), ...stored([file(D, '/deployed', null)], 'deploy')];
    const plan = planWrite(existing, toItems([file(D, '/a', null)], { source: 'runtime' }).items, { writer: 'runtime', prune: true, now: NOW });
    expect(actions(plan)).toEqual([['unchanged', '/a'], ['keep', '/deployed'], ['remove', '/old']]);
  });

  test('CLI import refuses to change a deploy-managed rule unless --take-over', () => {
    const existing = stored([file(D, '/a', 'https://deploy.example.test/a')], 'deploy');
    const desired = toItems([file(D, '/a', 'https://ops.example.test/a')], { source: 'runtime' }).items;
    const refused = planWrite(existing, desired, { writer: 'runtime', prune: false, now: NOW });
    expect(actions(refused)).toEqual([['conflict', '/a']]);
    expect(refused.steps[0].reason).toMatch(/managed by the deployment.*--take-over/);
    const taken = planWrite(existing, desired, { writer: 'runtime', prune: false, takeOver: true, now: NOW });
    expect(actions(taken)).toEqual([['change', '/a']]);
    expect(taken.steps[0].after).toMatchObject({ source: 'runtime', revision: 4 });
    // The same content is not a conflict.
    expect(actions(planWrite(existing, toItems([file(D, '/a', 'https://deploy.example.test/a')], { source: 'runtime' }).items, { writer: 'runtime', prune: false, now: NOW }))).toEqual([['unchanged', '/a']]);
  });

  test('a deploy adds, changes and removes only deploy-managed rules; run-time rules win and are never removed', () => {
    const existing = [
      ...stored([file(D, '/a', 'https://v1.example.test/a'), file(D, '/gone', null)], 'deploy'),
      ...stored([file(D, '/ops', null), file(D, '/override', 'https://ops.example.test/o')], 'runtime'),
    ];
    const desired = toItems([file(D, '/a', 'https://v2.example.test/a'), file(D, '/override', 'https://deploy.example.test/o'), file(D, '/new', null)], { source: 'deploy' }).items;
    const plan = planWrite(existing, desired, { writer: 'deploy', prune: true, now: NOW });
    expect(actions(plan)).toEqual([['change', '/a'], ['conflict', '/override'], ['add', '/new'], ['keep', '/ops'], ['remove', '/gone']]);
    expect(plan.steps[1].reason).toMatch(/changed at run time/);
    expect(plan.steps[2].after).toMatchObject({ source: 'deploy' });
  });
});
