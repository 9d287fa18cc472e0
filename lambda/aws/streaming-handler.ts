/**
 * The gateway function's handler, assembled from its parts: the adapter (function-url.ts), a
 * rule source, an event sink, Powertools logging and metrics. `handler.ts` wires in the
 * implementations deployed today; tests and the later DynamoDB/Firehose wiring build their own.
 */
import type { Writable } from 'node:stream';
import type { Context, LambdaFunctionURLEvent } from 'aws-lambda';
import type { Logger } from '@aws-lambda-powertools/logger';
import { MetricUnit, type Metrics } from '@aws-lambda-powertools/metrics';
import { handleFunctionUrlEvent, type OpenResponse, type ResponseHead } from './function-url';
import type { EventSink, RuleSource } from './ports';
import { METRIC } from './metric-names';

export interface StreamingHandlerDeps {
  readonly rules: RuleSource;
  readonly sink: EventSink;
  readonly salt: () => string | null | Promise<string | null>;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly cacheDownloadsSeconds: number | null;
  /** Wraps the runtime's response stream with the status and headers (`awslambda.HttpResponseStream.from`). */
  readonly withHead: (stream: Writable, head: ResponseHead) => Writable;
}

export type StreamingHandler = (event: LambdaFunctionURLEvent, responseStream: Writable, context: Context) => Promise<void>;

export function createStreamingHandler(deps: StreamingHandlerDeps): StreamingHandler {
  return async (event, responseStream, context) => {
    deps.logger.addContext(context);
    let opened = false;
    const open: OpenResponse = (head) => {
      opened = true;
      return deps.withHead(responseStream, head);
    };
    try {
      const result = await handleFunctionUrlEvent(event, open, {
        rules: deps.rules,
        sink: deps.sink,
        salt: deps.salt,
        cacheDownloadsSeconds: deps.cacheDownloadsSeconds,
        log: (level, message, fields) => deps.logger[level](message, fields),
      });
      deps.metrics.addMetric(METRIC.requests, MetricUnit.Count, 1);
      deps.metrics.addMetric(METRIC.downloads, MetricUnit.Count, result.events.filter((e) => e.download).length);
      if (result.upstreamError) deps.metrics.addMetric(METRIC.upstreamErrors, MetricUnit.Count, 1);
    } catch (e) {
      // Our own bug: the message names no header value (it comes from our code, not the request).
      deps.logger.error('request failed', { error: e instanceof Error ? e.message : String(e) });
      if (!opened) {
        const body = JSON.stringify({ error: 'internal_error', message: 'the gateway failed to handle this request' });
        open({ statusCode: 500, headers: { 'content-type': 'application/json', 'cache-control': 'no-store' }, cookies: [] }).end(body);
      } else {
        responseStream.destroy();
      }
      throw e;
    } finally {
      deps.metrics.addMetric(METRIC.rulesStale, MetricUnit.Count, deps.rules.isStale?.() ? 1 : 0);
      try {
        await deps.sink.flush();
      } catch (e) {
        deps.logger.warn('event sink flush failed', { error: e instanceof Error ? e.message : String(e) });
      }
      deps.metrics.addMetric(METRIC.eventsDropped, MetricUnit.Count, deps.sink.takeDropped?.() ?? 0);
      deps.metrics.publishStoredMetrics();
    }
  };
}
