/**
 * The two seams of the AWS gateway adapter: where the rules come from and where the events go.
 * The handler takes both by dependency injection, so the DynamoDB rule store (run-time rules)
 * and the Firehose event sink replace the implementations shipped here without touching it.
 */
import type { CompiledRuleSet } from '../core/compile';
import type { GatewayEvent } from '../core/events';

export interface RuleSource {
  /**
   * The compiled rules that apply to requests for `host` (lower case, as routed: the viewer's
   * Host, with any port). A source may return one set for every host or load per domain.
   */
  rulesFor(host: string): CompiledRuleSet | Promise<CompiledRuleSet>;
  /**
   * True while the source serves rules it could not refresh (the store is unreachable and the
   * last good copy is in use). Reported as the `RulesStale` metric. Absent: never stale.
   */
  isStale?(): boolean;
}

export interface EventSink {
  /** Queues completed events; never throws (a sink that cannot keep up counts drops instead). */
  write(events: readonly GatewayEvent[]): void;
  /** Delivers everything queued; called once per invocation after the response has been sent. */
  flush(): Promise<void>;
  /** Events given up on since the last call (full buffer, delivery failure); reported as `EventsDropped`. */
  takeDropped?(): number;
}
