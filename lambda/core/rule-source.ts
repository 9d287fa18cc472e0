/**
 * Where an adapter gets the rules for a request: a manifest compiled once (every domain in one
 * set), or a store that loads and caches one domain at a time (lambda/rule-store). Types only and
 * a trivial adapter: no I/O here.
 */
import type { CompiledRuleSet } from './compile';

export interface RuleSource {
  /**
   * The rules that can answer a request for `host` (the routing host of request.ts
   * `requestHost()`: lower case, maybe with a `:port`). The set may hold more domains than the
   * host's; the engine picks the domain with `findDomain()`. A store that must load the domain
   * first returns a promise; it rejects with `RulesUnavailableError` when it has no usable rules.
   */
  rulesFor(host: string): CompiledRuleSet | Promise<CompiledRuleSet>;
}

/** The rule store could not load a domain's rules and has no earlier copy it may serve. Adapters answer 503. */
export class RulesUnavailableError extends Error {
  constructor(readonly domain: string, reason: string) {
    super(`rules of ${domain} are unavailable: ${reason}`);
    this.name = 'RulesUnavailableError';
  }
}

/** A source over one compiled set that may be swapped (a manifest file that is reloaded). */
export function staticRuleSource(current: () => CompiledRuleSet): RuleSource {
  return { rulesFor: () => current() };
}
