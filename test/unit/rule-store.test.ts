/**
 * The gateway's rule cache (lambda/rule-store/store.ts) with a fake table and a fake clock:
 * first-request loads, TTL, background refresh, coalescing, stale-if-error and its bound,
 * invalid items, the negative cache and the LRU bounds.
 */
import { RuleStore, type RuleStoreOptions, type StoreLogger } from '../../lambda/rule-store/store';
import { toItems } from '../../lambda/rule-store/items';
import { RulesUnavailableError } from '../../lambda/core/rule-source';
import type { CompiledRuleSet } from '../../lambda/core/compile';
import { handle, location, status } from './helpers';

const GET = 'get.example.test';

function fileRule(domain: string, path: string, target: string, packageId = 'pkg') {
  return { type: 'file-v1', domain, 'incoming-path': path, 'outgoing-url': target, 'package-id': packageId };
}

interface Deferred {
  resolve(items: Record<string, unknown>[]): void;
  reject(e: unknown): void;
}

/** A fake table: items per domain, a call log, and optionally held or failing loads. */
class FakeTable {
  readonly items = new Map<string, Record<string, unknown>[]>();

  readonly calls: string[] = [];
  failWith: unknown = null;
  hold = false;
  readonly held: Array<{ domain: string } & Deferred> = [];

  put(rules: unknown[]): void {
    this.items.clear();
    for (const it of toItems(rules, { source: 'runtime' }).items) this.items.set(it.domain, [...(this.items.get(it.domain) ?? []), it as unknown as Record<string, unknown>]);
  }

  load = (domain: string): Promise<Record<string, unknown>[]> => {
    this.calls.push(domain);
    if (this.hold) return new Promise((resolve, reject) => this.held.push({ domain, resolve, reject }));
    if (this.failWith) return Promise.reject(this.failWith);
    return Promise.resolve(structuredClone(this.items.get(domain) ?? []));
  };

  /** Answers every held load from the current items. */
  release(): void {
    for (const h of this.held.splice(0)) h.resolve(structuredClone(this.items.get(h.domain) ?? []));
  }

  count(domain: string): number {
    return this.calls.filter((d) => d === domain).length;
  }
}

class Clock {
  t = 1_000_000;
  now = () => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

function recordingLog(): StoreLogger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (m) => lines.push(`info ${m}`),
    warn: (m) => lines.push(`warn ${m}`),
    error: (m) => lines.push(`error ${m}`),
  };
}

function setup(opts: Partial<RuleStoreOptions> = {}) {
  const table = new FakeTable();
  const clock = new Clock();
  const log = recordingLog();
  const store = new RuleStore({ load: table.load, now: clock.now, log, ttlMs: 5_000, ...opts });
  return { table, clock, log, store };
}

/** Lets pending promise callbacks (a finished background load) run. */
const settle = () => new Promise<void>((r) => setImmediate(r));

async function rules(store: RuleStore, host: string): Promise<CompiledRuleSet> {
  return store.rulesFor(host);
}

function target(set: CompiledRuleSet, host: string, path: string): string | undefined | number | 'proxy' | 'read-body' {
  const o = handle(set, host, path);
  return location(o) ?? status(o);
}

describe('first request and TTL', () => {
  test('the first request for a domain waits for one load of that domain only; later requests within half the TTL are served from memory', async () => {
    const { table, store, clock } = setup();
    table.put([fileRule(GET, '/a', 'https://one.example.test/a'), fileRule('other.example.test', '/b', 'https://x.example.test/b')]);
    const first = store.rulesFor(GET);
    expect(first).toBeInstanceOf(Promise);
    expect(target(await first, GET, '/a')).toBe('https://one.example.test/a');
    expect(table.calls).toEqual([GET]);
    clock.advance(2_499);
    const again = store.rulesFor(GET);
    expect(again).not.toBeInstanceOf(Promise);
    expect(table.calls).toEqual([GET]);
  });

  test('concurrent first requests share one load', async () => {
    const { table, store } = setup();
    table.put([fileRule(GET, '/a', 'https://one.example.test/a')]);
    table.hold = true;
    const waiting = Array.from({ length: 50 }, () => rules(store, GET));
    await settle();
    expect(table.count(GET)).toBe(1);
    table.release();
    const sets = await Promise.all(waiting);
    expect(new Set(sets).size).toBe(1);
    expect(target(sets[0], GET, '/a')).toBe('https://one.example.test/a');
  });

  test('from half the TTL on, a request is answered at once from memory while one background load refreshes; the next request sees the change', async () => {
    const { table, store, clock } = setup();
    table.put([fileRule(GET, '/a', 'https://one.example.test/a')]);
    await rules(store, GET);
    table.put([fileRule(GET, '/a', 'https://two.example.test/a')]);
    clock.advance(2_500);
    table.hold = true;
    const stale = store.rulesFor(GET);
    expect(stale).not.toBeInstanceOf(Promise);
    expect(target(stale as CompiledRuleSet, GET, '/a')).toBe('https://one.example.test/a');
    // More requests while the refresh is in flight: still from memory, still one load.
    for (let i = 0; i < 20; i++) expect(store.rulesFor(GET)).not.toBeInstanceOf(Promise);
    expect(table.count(GET)).toBe(2);
    table.release();
    await settle();
    const fresh = store.rulesFor(GET);
    expect(fresh).not.toBeInstanceOf(Promise);
    expect(target(fresh as CompiledRuleSet, GET, '/a')).toBe('https://two.example.test/a');
  });

  test('rules older than the TTL are never served while the table answers: the request waits for the reload', async () => {
    const { table, store, clock } = setup();
    table.put([fileRule(GET, '/a', 'https://one.example.test/a')]);
    await rules(store, GET);
    table.put([fileRule(GET, '/a', 'https://two.example.test/a')]);
    clock.advance(5_000);
    const r = store.rulesFor(GET);
    expect(r).toBeInstanceOf(Promise);
    expect(target(await r, GET, '/a')).toBe('https://two.example.test/a');
  });

  test('a reload slower than reloadWaitMs does not hold the request: it gets the rules there are, the load goes on', async () => {
    const { table, store, clock } = setup({ reloadWaitMs: 20 });
    table.put([fileRule(GET, '/a', 'https://one.example.test/a')]);
    await rules(store, GET);
    table.put([fileRule(GET, '/a', 'https://two.example.test/a')]);
    clock.advance(5_000);
    table.hold = true;
    expect(target(await rules(store, GET), GET, '/a')).toBe('https://one.example.test/a');
    expect(table.held).toHaveLength(1);
    table.release();
    await settle();
    expect(target(store.rulesFor(GET) as CompiledRuleSet, GET, '/a')).toBe('https://two.example.test/a');
  });

  test('the TTL is configurable', async () => {
    const { table, store, clock } = setup({ ttlMs: 200 });
    table.put([fileRule(GET, '/a', 'https://one.example.test/a')]);
    await rules(store, GET);
    clock.advance(99);
    store.rulesFor(GET);
    expect(table.count(GET)).toBe(1);
    clock.advance(1);
    store.rulesFor(GET);
    expect(table.count(GET)).toBe(2);
  });
});

describe('stale-if-error', () => {
  test('a failing refresh keeps the last good rules, logs once with the domain, counts the stale answers, and recovers', async () => {
    const metrics: string[] = [];
    const { table, store, clock, log } = setup({ metric: (name) => metrics.push(name) });
    table.put([fileRule(GET, '/a', 'https://one.example.test/a')]);
    await rules(store, GET);
    table.failWith = Object.assign(new Error('Rate of requests exceeds the allowed throughput'), { name: 'ThrottlingException' });
    for (let i = 0; i < 10; i++) {
      clock.advance(5_000);
      const r = store.rulesFor(GET);
      // Only the first request past the TTL waits (for a load that fails); once failing, nobody waits.
      if (i > 0) expect(r).not.toBeInstanceOf(Promise);
      expect(target(await r, GET, '/a')).toBe('https://one.example.test/a');
      await settle();
    }
    const warnings = log.lines.filter((l) => l.startsWith('warn'));
    expect(warnings).toHaveLength(1); // rate-limited: one line per minute per domain
    expect(warnings[0]).toMatch(new RegExp(`cannot refresh ${GET.replace(/\./g, '\\.')} .*ThrottlingException.*serving the last good rules, loaded \\d+(\\.\\d)? s ago`));
    expect(metrics.filter((m) => m === 'RuleLoadFailures').length).toBeGreaterThan(0);
    expect(metrics.filter((m) => m === 'StaleRulesServed').length).toBeGreaterThan(0);
    expect(store.stats().counters.StaleRulesServed).toBe(metrics.filter((m) => m === 'StaleRulesServed').length);

    table.failWith = null;
    table.put([fileRule(GET, '/a', 'https://two.example.test/a')]);
    clock.advance(5_000);
    store.rulesFor(GET);
    await settle();
    expect(target(store.rulesFor(GET) as CompiledRuleSet, GET, '/a')).toBe('https://two.example.test/a');
    expect(log.lines.some((l) => /^info rules: get\.example\.test loaded again after \d+ failed attempts?/.test(l))).toBe(true);
  });

  test('retries back off: a failing table is asked at most once per TTL per domain', async () => {
    const { table, store, clock } = setup({ ttlMs: 5_000 });
    table.put([fileRule(GET, '/a', 'https://one.example.test/a')]);
    await rules(store, GET);
    table.failWith = new Error('connect ECONNREFUSED 127.0.0.1:8000');
    clock.advance(5_000);
    const before = table.count(GET);
    // 60 s of requests every 100 ms.
    for (let i = 0; i < 600; i++) {
      store.rulesFor(GET);
      await settle();
      clock.advance(100);
    }
    const attempts = table.count(GET) - before;
    expect(attempts).toBeGreaterThan(5);
    expect(attempts).toBeLessThanOrEqual(60_000 / 5_000 + 5); // backoff 250 ms, 500 ms, ... then one per TTL
  });

  test('beyond maxStaleMs the stale rules are no longer served: RulesUnavailableError (503)', async () => {
    const { table, store, clock } = setup({ maxStaleMs: 30_000 });
    table.put([fileRule(GET, '/a', 'https://one.example.test/a')]);
    await rules(store, GET);
    table.failWith = new Error('boom');
    clock.advance(29_000);
    expect(target(await rules(store, GET), GET, '/a')).toBe('https://one.example.test/a');
    expect(target(store.rulesFor(GET) as CompiledRuleSet, GET, '/a')).toBe('https://one.example.test/a');
    clock.advance(1_000);
    await expect(Promise.resolve().then(() => store.rulesFor(GET))).rejects.toBeInstanceOf(RulesUnavailableError);
    expect(store.stats().counters.RulesUnavailable).toBeGreaterThan(0);
  });

  test('a domain that cannot be loaded at all gets RulesUnavailableError, without a load per request during the backoff', async () => {
    const { table, store, clock, log } = setup();
    table.failWith = new Error('connect ECONNREFUSED 127.0.0.1:8000');
    await expect(rules(store, GET)).rejects.toThrow(/rules of get\.example\.test are unavailable/);
    expect(log.lines.some((l) => /^error rules: cannot load get\.example\.test .*ECONNREFUSED.*503/.test(l))).toBe(true);
    for (let i = 0; i < 20; i++) await expect(rules(store, GET)).rejects.toBeInstanceOf(RulesUnavailableError);
    expect(table.count(GET)).toBe(1);
    table.failWith = null;
    table.put([fileRule(GET, '/a', 'https://one.example.test/a')]);
    clock.advance(300);
    expect(target(await rules(store, GET), GET, '/a')).toBe('https://one.example.test/a');
  });
});

describe('invalid items', () => {
  test('an invalid item is skipped with a log line naming it and the problem; the other rules serve; logged once per revision', async () => {
    const { table, store, clock, log } = setup();
    table.put([fileRule(GET, '/a', 'https://one.example.test/a'), fileRule(GET, '/b', 'https://one.example.test/b')]);
    const bad = table.items.get(GET)![1];
    bad['incoming-path'] = '/b/{unclosed';
    await rules(store, GET);
    const set = await rules(store, GET);
    expect(target(set, GET, '/a')).toBe('https://one.example.test/a');
    expect(target(set, GET, '/b')).toBe(404);
    const lines = log.lines.filter((l) => l.includes('skipping invalid item'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`item ${GET}/${String(bad.rule_id)}, field "incoming-path"`);
    expect(lines[0]).toMatch(/unclosed '\{'/);
    expect(store.stats().counters.InvalidRuleItems).toBe(1);

    // The next refreshes do not repeat the line...
    clock.advance(5_000);
    store.rulesFor(GET);
    await settle();
    expect(log.lines.filter((l) => l.includes('skipping invalid item'))).toHaveLength(1);
    // ...a new revision of the bad item is reported again.
    bad.revision = 2;
    clock.advance(5_000);
    store.rulesFor(GET);
    await settle();
    expect(log.lines.filter((l) => l.includes('skipping invalid item'))).toHaveLength(2);
  });

  test('an item of an unknown type is skipped too', async () => {
    const { table, store, log } = setup();
    table.put([fileRule(GET, '/a', 'https://one.example.test/a')]);
    table.items.get(GET)!.push({ domain: GET, rule_id: 'file-v9:0000', type: 'file-v9', position: 5, revision: 1, source: 'runtime' });
    expect(target(await rules(store, GET), GET, '/a')).toBe('https://one.example.test/a');
    expect(log.lines.some((l) => l.includes(`item ${GET}/file-v9:0000, field "type": unknown rule type "file-v9"`))).toBe(true);
  });
});

describe('negative cache and memory bounds', () => {
  test('a host without rules is remembered for negativeTtlMs', async () => {
    const { table, store, clock } = setup({ negativeTtlMs: 2_000 });
    const set = await rules(store, 'unknown.example.test');
    expect(set.ruleCount).toBe(0);
    for (let i = 0; i < 10; i++) expect(store.rulesFor('unknown.example.test')).not.toBeInstanceOf(Promise);
    expect(table.count('unknown.example.test')).toBe(1);
    clock.advance(2_000);
    store.rulesFor('unknown.example.test');
    expect(table.count('unknown.example.test')).toBe(2);
  });

  test('a domain that gets rules is picked up after the negative TTL', async () => {
    const { table, store, clock } = setup({ negativeTtlMs: 1_000 });
    expect((await rules(store, GET)).ruleCount).toBe(0);
    table.put([fileRule(GET, '/a', 'https://one.example.test/a')]);
    clock.advance(1_000);
    store.rulesFor(GET);
    await settle();
    expect(target(store.rulesFor(GET) as CompiledRuleSet, GET, '/a')).toBe('https://one.example.test/a');
  });

  test('a flood of unknown hosts stays within maxUnknownHosts and never evicts a domain with rules', async () => {
    const { table, store } = setup({ maxUnknownHosts: 100, maxDomains: 10 });
    table.put([fileRule(GET, '/a', 'https://one.example.test/a')]);
    await rules(store, GET);
    for (let i = 0; i < 2_000; i++) await rules(store, `h${i}.flood.example.test`);
    const s = store.stats();
    expect(s.unknownHosts).toBe(100);
    expect(s.domains).toBe(1);
    expect(s.counters.RuleDomainsEvicted).toBe(1_900);
    expect(store.rulesFor(GET)).not.toBeInstanceOf(Promise); // still cached
    expect(table.count(GET)).toBe(1);
  });

  test('domains with rules are bounded by maxDomains (least recently used first)', async () => {
    const { table, store } = setup({ maxDomains: 3 });
    const domains = ['a', 'b', 'c', 'd'].map((x) => `${x}.example.test`);
    table.put(domains.map((d) => fileRule(d, '/x', `https://${d}/x`)));
    for (const d of domains.slice(0, 3)) await rules(store, d);
    await rules(store, domains[0]); // a is now the most recent
    await rules(store, domains[3]); // evicts b
    expect(store.stats().domains).toBe(3);
    expect(store.rulesFor(domains[0])).not.toBeInstanceOf(Promise);
    expect(store.rulesFor(domains[1])).toBeInstanceOf(Promise);
  });

  test('a host that is not a host name costs no load', async () => {
    const { table, store } = setup();
    for (const h of ['', 'a b', 'x..y', 'evil.example.test, get.example.test', '[::1]:80', 'a/b']) {
      const r = store.rulesFor(h);
      expect(r).not.toBeInstanceOf(Promise);
      expect((r as CompiledRuleSet).ruleCount).toBe(0);
    }
    expect(table.calls).toEqual([]);
  });
});

describe('hosts with a port', () => {
  test('get.example.test:8081 is served by the rules of get.example.test unless rules name that port', async () => {
    const { table, store } = setup();
    table.put([fileRule(GET, '/a', 'https://bare.example.test/a'), fileRule(`${GET}:9000`, '/a', 'https://port.example.test/a')]);
    expect(target(await rules(store, `${GET}:8081`), `${GET}:8081`, '/a')).toBe('https://bare.example.test/a');
    expect(target(await rules(store, `${GET}:9000`), `${GET}:9000`, '/a')).toBe('https://port.example.test/a');
  });
});

describe('order', () => {
  test('rules compile in position order whatever order the table returns them in (ties go to the later rule, as in a manifest)', async () => {
    const { table, store } = setup();
    table.put([fileRule(GET, '/{name}.zip', 'https://one.example.test/{name}.zip'), fileRule(GET, '/{file}.zip', 'https://two.example.test/{file}.zip')]);
    table.items.get(GET)!.reverse();
    expect(target(await rules(store, GET), GET, '/x.zip')).toBe('https://two.example.test/x.zip');
  });
});
