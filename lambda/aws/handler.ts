/**
 * Entry point of the regional gateway function (bundled by the construct with esbuild).
 *
 * Rules: the DynamoDB rule store on this region's replica of the rules table (RULES_TABLE_NAME),
 * so rules changed at run time (`artifact-gateway rules ...`) are served within the TTL; without
 * the variable, the rules shipped in the bundle. Events: the Firehose sink (EVENTS_STREAM_NAME in
 * EVENTS_STREAM_REGION) when analytics are on, else JSON log lines. Visitor-id salts: the shared
 * daily salt table when SALT_TABLE_NAME is set, else a salt per instance and day.
 */
/// <reference types="aws-lambda" />
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { FirehoseClient } from '@aws-sdk/client-firehose';
import { InMemorySaltStore } from '../local/daily-salt';
import { DailySaltCache, type DailySaltStore } from '../analytics/daily-salt';
import { DynamoDbSaltStore } from '../analytics/dynamodb-salt-store';
import { FirehoseEventSink, flushOnSigterm, type DropReason } from '../analytics/firehose-sink';
import { createDynamoRuleStore } from '../rule-store';
import { BundledRuleSource } from './bundled-rules';
import { LogEventSink } from './log-sink';
import { createStreamingHandler } from './streaming-handler';
import type { EventSink, RuleSource } from './ports';
import { GATEWAY_DIMENSION, METRIC_NAMESPACE, SERVICE_NAME } from './metric-names';

const logger = new Logger({ serviceName: SERVICE_NAME });
const metrics = new Metrics({ namespace: METRIC_NAMESPACE, serviceName: SERVICE_NAME, defaultDimensions: { [GATEWAY_DIMENSION]: process.env.GATEWAY_NAME ?? 'default' } });
const env = process.env;

function ruleSource(): RuleSource {
  if (env.RULES_TABLE_NAME) {
    let stale = 0;
    const { store } = createDynamoRuleStore({
      tableName: env.RULES_TABLE_NAME,
      ttlMs: Number(env.RULES_TTL_SECONDS ?? '5') * 1000,
      log: { info: (m, f) => logger.info(m, f ?? {}), warn: (m, f) => logger.warn(m, f ?? {}), error: (m, f) => logger.error(m, f ?? {}) },
      metric: (name, value) => {
        if (name === 'StaleRulesServed') stale += value;
        metrics.addMetric(name, MetricUnit.Count, value);
      },
    });
    return {
      rulesFor: (host) => store.rulesFor(host),
      isStale: () => {
        const was = stale > 0;
        stale = 0;
        return was;
      },
    };
  }
  try {
    return BundledRuleSource.fromFile();
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    logger.error('cannot load the bundled rules', { error: message });
    return { rulesFor: () => Promise.reject(new Error(message)) };
  }
}

/** The Firehose sink behind the adapter's EventSink port (drops are reported per invocation). */
function eventSink(): EventSink {
  if (!env.EVENTS_STREAM_NAME) return new LogEventSink();
  let dropped = 0;
  const sink = new FirehoseEventSink({
    deliveryStreamName: env.EVENTS_STREAM_NAME,
    client: new FirehoseClient({ region: env.EVENTS_STREAM_REGION ?? env.AWS_REGION }),
    onError: (message) => logger.warn(message),
    onDropped: (count: number, reason: DropReason) => {
      dropped += count;
      logger.warn('analytics events dropped', { count, reason });
    },
  });
  // Records still queued after a failed flush are sent when Lambda shuts the environment down.
  flushOnSigterm(sink);
  return {
    write: (events) => sink.write(events),
    flush: () => sink.flush(),
    takeDropped: () => {
      const n = dropped;
      dropped = 0;
      return n;
    },
  };
}

const saltStore: DailySaltStore = env.SALT_TABLE_NAME
  ? new DynamoDbSaltStore({ tableName: env.SALT_TABLE_NAME, client: new DynamoDBClient({ region: env.SALT_TABLE_REGION ?? env.AWS_REGION }) })
  : new InMemorySaltStore();
const salts = new DailySaltCache(saltStore, { onError: (m) => logger.warn(m) });
const cacheSeconds = Number(env.CACHE_DOWNLOADS_SECONDS ?? '0');

export const handler = awslambda.streamifyResponse(createStreamingHandler({
  rules: ruleSource(),
  sink: eventSink(),
  salt: () => salts.current(),
  logger,
  metrics,
  cacheDownloadsSeconds: cacheSeconds > 0 ? cacheSeconds : null,
  withHead: (stream, head) => awslambda.HttpResponseStream.from(stream, { ...head }),
}));
