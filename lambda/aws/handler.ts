/**
 * Entry point of the regional gateway function (bundled by the construct with esbuild).
 *
 * Wired today: rules from the bundle (the rules given to the construct; changed by a deploy) and
 * events as JSON log lines. The seams for the DynamoDB rule store (reads RULES_TABLE_NAME in this
 * region) and the Firehose sink (EVENTS_STREAM_NAME in EVENTS_STREAM_REGION) are the RuleSource
 * and EventSink interfaces in ports.ts; the function's role already allows exactly those two.
 */
/// <reference types="aws-lambda" />
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { DailySalt } from '../local/daily-salt';
import { BundledRuleSource } from './bundled-rules';
import { LogEventSink } from './log-sink';
import { createStreamingHandler } from './streaming-handler';
import type { RuleSource } from './ports';
import { GATEWAY_DIMENSION, METRIC_NAMESPACE, SERVICE_NAME } from './metric-names';

const logger = new Logger({ serviceName: SERVICE_NAME });
const metrics = new Metrics({ namespace: METRIC_NAMESPACE, serviceName: SERVICE_NAME, defaultDimensions: { [GATEWAY_DIMENSION]: process.env.GATEWAY_NAME ?? 'default' } });

function loadRules(): RuleSource {
  try {
    return BundledRuleSource.fromFile();
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    logger.error('cannot load the bundled rules', { error: message });
    return { rulesFor: () => Promise.reject(new Error(message)) };
  }
}

const salt = new DailySalt();
const cacheSeconds = Number(process.env.CACHE_DOWNLOADS_SECONDS ?? '0');

export const handler = awslambda.streamifyResponse(createStreamingHandler({
  rules: loadRules(),
  sink: new LogEventSink(),
  salt: () => salt.current(),
  logger,
  metrics,
  cacheDownloadsSeconds: cacheSeconds > 0 ? cacheSeconds : null,
  withHead: (stream, head) => awslambda.HttpResponseStream.from(stream, { ...head }),
}));
