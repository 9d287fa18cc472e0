/**
 * The gateway's rule store: per-domain rules loaded from the rule table on first use (one Query,
 * never a table scan), compiled once, and cached.
 *
 * The TTL is the oldest rules a request is answered with while DynamoDB answers, so a change is
 * served by every request that comes later than the TTL (plus one Query) after the write:
 * - younger than half the TTL: served from memory;
 * - between half the TTL and the TTL: served from memory while one background load refreshes
 *   them (loads of one domain are coalesced), so a domain with a request at least every half TTL
 *   never waits on DynamoDB;
 * - older than the TTL (a domain without recent traffic, a thawed Lambda): the request waits for
 *   the reload, at most `reloadWaitMs`, then is answered from the rules it has.
 * - DynamoDB failing or throttling: the last good rules keep serving without waiting
 *   (stale-if-error) for at most `maxStaleMs`, with a log line and a metric; retries back off up
 *   to one attempt per TTL, so a failing table is asked no more often than a healthy one.
 * - An invalid item is skipped with a log line naming the item and the problem; the domain's other
 *   rules are served.
 * - "No rules for this host" is cached too (`negativeTtlMs`), and unknown hosts live in their own
 *   LRU, so a flood of unknown hosts neither grows memory without bound nor evicts real domains.
 *
 * Time and the loader are injected (unit tests use a fake clock and a fake loader).
 */
import { compileRules, type CompiledRuleSet } from '../core/compile';
import { RulesUnavailableError, type RuleSource } from '../core/rule-source';
import { normaliseDomain, type Rule } from '../core/schema';
import { checkItem, compareItems, formatItemProblem, itemMeta } from './items';

export interface StoreLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export type RuleStoreMetric =
  /** A domain's items were loaded (one Query). */
  | 'RuleLoads'
  /** A load failed (DynamoDB error, throttling, timeout). */
  | 'RuleLoadFailures'
  /** A request was answered from rules whose refresh is failing (stale-if-error). */
  | 'StaleRulesServed'
  /** A request got 503: no rules could be loaded and none may be served. */
  | 'RulesUnavailable'
  /** An item failed validation and was skipped (counted once per item revision). */
  | 'InvalidRuleItems'
  /** A domain was dropped from the cache to stay within its size limit. */
  | 'RuleDomainsEvicted';

export interface RuleStoreOptions {
  /** Every item of one domain (the partition `domain`), e.g. `RuleTable.queryDomain`. */
  readonly load: (domain: string) => Promise<readonly object[]>;
  /** Oldest rules served while DynamoDB answers; from half of it on, requests trigger a background refresh. Default 5 s. */
  readonly ttlMs?: number;
  /** The same for hosts without rules. Default: `ttlMs`. */
  readonly negativeTtlMs?: number;
  /** Longest a request waits for the reload of rules older than the TTL before it is answered from them. Default 500 ms. */
  readonly reloadWaitMs?: number;
  /** Stale-if-error limit: older rules are not served, requests get 503. Default 24 h. */
  readonly maxStaleMs?: number;
  /** Domains with rules kept in memory (LRU). Default 10,000. */
  readonly maxDomains?: number;
  /** Hosts without rules (or not loadable) remembered (LRU). Default 10,000. */
  readonly maxUnknownHosts?: number;
  /** Minimum pause between failure log lines of one domain. Default 60 s. */
  readonly failureLogIntervalMs?: number;
  /** Milliseconds clock. Default `Date.now`. */
  readonly now?: () => number;
  readonly log?: StoreLogger;
  readonly metric?: (name: RuleStoreMetric, value: number) => void;
}

export const RULE_STORE_DEFAULTS = {
  ttlMs: 5_000,
  reloadWaitMs: 500,
  maxStaleMs: 24 * 60 * 60_000,
  maxDomains: 10_000,
  maxUnknownHosts: 10_000,
  failureLogIntervalMs: 60_000,
} as const;

interface Entry {
  readonly domain: string;
  /** Last good rules (possibly empty), or null if no load has succeeded yet. */
  set: CompiledRuleSet | null;
  /** When the load that produced `set` started. */
  loadedAt: number;
  /** No load before this (backoff after failures). */
  nextAttemptAt: number;
  failures: number;
  lastFailureLogAt: number;
  loading: Promise<void> | null;
  /** Invalid items already reported (`rule_id@revision`), so each is logged once. */
  reportedInvalid: Set<string>;
}

const EMPTY: CompiledRuleSet = { domains: new Map(), ruleCount: 0 };

/** A Map used as an LRU: reads move the key to the end, inserts past the limit drop the oldest. */
class Lru<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly max: number, private readonly onEvict: () => void) {}
  get(key: string): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }
  set(key: string, v: V): void {
    this.map.delete(key);
    this.map.set(key, v);
    while (this.map.size > this.max) {
      this.map.delete(this.map.keys().next().value as string);
      this.onEvict();
    }
  }
  delete(key: string): void {
    this.map.delete(key);
  }
  get size(): number {
    return this.map.size;
  }
}

const errorText = (e: unknown): string => {
  const err = e as Error;
  const name = err?.name && err.name !== 'Error' ? `${err.name}: ` : '';
  return `${name}${err?.message ?? String(e)}`.slice(0, 300);
};

const seconds = (ms: number) => (ms >= 3_600_000 ? `${+(ms / 3_600_000).toFixed(1)} h` : ms >= 60_000 ? `${+(ms / 60_000).toFixed(1)} min` : `${+(ms / 1000).toFixed(1)} s`);

export interface RuleStoreStats {
  readonly domains: number;
  readonly unknownHosts: number;
  readonly counters: Readonly<Record<RuleStoreMetric, number>>;
}

export class RuleStore implements RuleSource {
  private readonly ttlMs: number;
  private readonly negativeTtlMs: number;
  private readonly reloadWaitMs: number;
  private readonly maxStaleMs: number;
  private readonly failureLogIntervalMs: number;
  private readonly now: () => number;
  private readonly known: Lru<Entry>;
  private readonly unknown: Lru<Entry>;
  private readonly counters: Record<RuleStoreMetric, number> = {
    RuleLoads: 0, RuleLoadFailures: 0, StaleRulesServed: 0, RulesUnavailable: 0, InvalidRuleItems: 0, RuleDomainsEvicted: 0,
  };

  constructor(private readonly opts: RuleStoreOptions) {
    this.ttlMs = opts.ttlMs ?? RULE_STORE_DEFAULTS.ttlMs;
    this.negativeTtlMs = opts.negativeTtlMs ?? this.ttlMs;
    this.reloadWaitMs = opts.reloadWaitMs ?? RULE_STORE_DEFAULTS.reloadWaitMs;
    this.maxStaleMs = opts.maxStaleMs ?? RULE_STORE_DEFAULTS.maxStaleMs;
    this.failureLogIntervalMs = opts.failureLogIntervalMs ?? RULE_STORE_DEFAULTS.failureLogIntervalMs;
    this.now = opts.now ?? Date.now;
    const evicted = () => this.count('RuleDomainsEvicted');
    this.known = new Lru(opts.maxDomains ?? RULE_STORE_DEFAULTS.maxDomains, evicted);
    this.unknown = new Lru(opts.maxUnknownHosts ?? RULE_STORE_DEFAULTS.maxUnknownHosts, evicted);
  }

  stats(): RuleStoreStats {
    return { domains: this.known.size, unknownHosts: this.unknown.size, counters: { ...this.counters } };
  }

  /**
   * The rules for a request host. A host with a port (`get.localhost:8081`) is served by rules of
   * `host:port` if there are any, else by those of the bare host, as `findDomain()` does.
   */
  rulesFor(host: string): CompiledRuleSet | Promise<CompiledRuleSet> {
    if (!host || !normaliseDomain(host).ok) return EMPTY; // not a host name: no rule can match, no query
    const bare = host.replace(/:\d+$/, '');
    if (bare === host) return this.domainRules(host);
    const withPort = this.settle(host);
    const without = this.settle(bare);
    const pick = (a: Settled, b: Settled): CompiledRuleSet => {
      if ('set' in a && a.set.ruleCount) return a.set;
      if ('set' in b) return b.set;
      throw (b as { error: unknown }).error;
    };
    if (withPort instanceof Promise || without instanceof Promise) return Promise.all([withPort, without]).then(([a, b]) => pick(a, b));
    return pick(withPort, without);
  }

  private settle(domain: string): Settled | Promise<Settled> {
    try {
      const r = this.domainRules(domain);
      return r instanceof Promise ? r.then((set) => ({ set }), (error: unknown) => ({ error })) : { set: r };
    } catch (error) {
      return { error };
    }
  }

  private entry(domain: string): Entry {
    let e = this.known.get(domain) ?? this.unknown.get(domain);
    if (!e) {
      e = { domain, set: null, loadedAt: -Infinity, nextAttemptAt: -Infinity, failures: 0, lastFailureLogAt: -Infinity, loading: null, reportedInvalid: new Set() };
      this.unknown.set(domain, e);
    }
    return e;
  }

  /** One domain's rules, from memory when possible. */
  private domainRules(domain: string): CompiledRuleSet | Promise<CompiledRuleSet> {
    const e = this.entry(domain);
    const now = this.now();
    if (e.set) {
      const age = now - e.loadedAt;
      const ttl = e.set.ruleCount ? this.ttlMs : this.negativeTtlMs;
      if (age < ttl / 2) return e.set;
      const mayLoad = now >= e.nextAttemptAt || e.loading !== null;
      // Past the TTL the request waits for fresh rules, unless DynamoDB is failing: then waiting would only add latency.
      if (age >= ttl && mayLoad && e.failures === 0) return this.waitForReload(e);
      if (age >= this.maxStaleMs) return mayLoad ? this.waitForReload(e) : this.servable(e);
      if (mayLoad) void this.refresh(e);
      return this.servable(e);
    }
    if (now < e.nextAttemptAt && e.loading === null) return this.unavailable(e);
    return this.refresh(e).then(() => this.servable(e));
  }

  /** Reloads, waiting at most `reloadWaitMs`; a slower load goes on in the background while the request gets the rules there are. */
  private waitForReload(e: Entry): Promise<CompiledRuleSet> {
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.reloadWaitMs);
      timer.unref?.();
    });
    return Promise.race([this.refresh(e), waited]).then(() => {
      clearTimeout(timer);
      return this.servable(e);
    });
  }

  /** After a load attempt: the rules if they are young enough to serve, else 503. */
  private servable(e: Entry): CompiledRuleSet {
    if (!e.set || this.now() - e.loadedAt >= this.maxStaleMs) return this.unavailable(e);
    if (e.failures > 0) this.count('StaleRulesServed');
    return e.set;
  }

  private unavailable(e: Entry): never {
    this.count('RulesUnavailable');
    throw new RulesUnavailableError(e.domain, e.set ? `the last good rules are older than ${seconds(this.maxStaleMs)} and DynamoDB is failing` : 'they could not be loaded from DynamoDB');
  }

  private count(name: RuleStoreMetric, n = 1): void {
    this.counters[name] += n;
    this.opts.metric?.(name, n);
  }

  /** Starts (or joins) the load of a domain. Never rejects: failures are recorded on the entry. */
  private refresh(e: Entry): Promise<void> {
    if (e.loading) return e.loading;
    const started = this.now();
    e.loading = this.opts.load(e.domain).then(
      (items) => this.loaded(e, items, started),
      (err: unknown) => this.failed(e, err),
    ).catch((err: unknown) => this.failed(e, err)).finally(() => {
      e.loading = null;
    });
    return e.loading;
  }

  private loaded(e: Entry, stored: readonly object[], started: number): void {
    const items = stored as readonly Record<string, unknown>[];
    this.count('RuleLoads');
    const rules: Array<{ rule: Rule; item: Record<string, unknown> }> = [];
    const invalidNow = new Set<string>();
    items.forEach((item) => {
      const { rule, errors } = checkItem(item);
      if (rule) {
        rules.push({ rule, item });
        return;
      }
      const problems = errors.map((p) => formatItemProblem(item, p));
      const signature = `${String(item.rule_id)}@${itemMeta(item).revision}`;
      invalidNow.add(signature);
      if (!e.reportedInvalid.has(signature)) {
        this.count('InvalidRuleItems');
        this.opts.log?.warn(`rules: skipping invalid ${problems.join('; ')}; the other rules of ${e.domain} are served`, { domain: e.domain, rule_id: item.rule_id ?? null });
      }
    });
    e.reportedInvalid = invalidNow;
    rules.sort((a, b) => compareItems(a.item, b.item));
    // Validation passed, so compiling cannot fail on input; if it throws anyway, it is a load failure.
    const set = compileRules(rules.map((r) => r.rule));
    if (e.failures > 0) this.opts.log?.info(`rules: ${e.domain} loaded again after ${e.failures} failed attempt${e.failures === 1 ? '' : 's'}`, { domain: e.domain });
    const wasKnown = (e.set?.ruleCount ?? 0) > 0;
    e.set = set;
    e.loadedAt = started;
    e.failures = 0;
    e.nextAttemptAt = -Infinity;
    const isKnown = set.ruleCount > 0;
    if (isKnown !== wasKnown) {
      (wasKnown ? this.known : this.unknown).delete(e.domain);
      (isKnown ? this.known : this.unknown).set(e.domain, e);
    }
  }

  private failed(e: Entry, err: unknown): void {
    this.count('RuleLoadFailures');
    e.failures++;
    const now = this.now();
    // 250 ms, 500 ms, 1 s, ... at most one attempt per TTL: a failing table gets no more load than a healthy one.
    e.nextAttemptAt = now + Math.min(250 * 2 ** (e.failures - 1), Math.max(this.ttlMs, 250));
    if (now - e.lastFailureLogAt < this.failureLogIntervalMs) return;
    e.lastFailureLogAt = now;
    const fields = { domain: e.domain, failures: e.failures, error: errorText(err) };
    if (e.set && now - e.loadedAt < this.maxStaleMs) {
      this.opts.log?.warn(`rules: cannot refresh ${e.domain} from DynamoDB (${errorText(err)}); serving the last good rules, loaded ${seconds(now - e.loadedAt)} ago (stale-if-error, for at most ${seconds(this.maxStaleMs)})`, fields);
    } else {
      this.opts.log?.error(`rules: cannot load ${e.domain} from DynamoDB (${errorText(err)}); its requests get 503 until a load succeeds`, fields);
    }
  }
}

type Settled = { set: CompiledRuleSet } | { error: unknown };
