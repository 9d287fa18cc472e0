/**
 * Entry point of the regional gateway function (bundled by the construct with esbuild).
 *
 * Rules: the DynamoDB rule store on this region's replica of the rules table (RULES_TABLE_NAME),
 * so rules changed at run time (`artifact-gateway rules ...`) are served within the TTL; without
 * the variable, the rules shipped in the bundle. Events: the Firehose sink (EVENTS_STREAM_NAME in
 * EVENTS_STREAM_REGION) when analytics are on, else JSON log lines. Visitor-id salts: the shared
 * daily salt table when SALT_TABLE_NAME is set, else a salt per instance and day.
 *
 * Cold start: loading `@aws-sdk/client-dynamodb` alone takes about 40 ms of CPU, more than the
 * rest of the function. So the modules that need the AWS SDK (rule store, Firehose sink, salt
 * store) are required on first use, not at module scope: a function that serves bundled rules
 * never loads the SDK, the rule store loads DynamoDB's client on the first request that needs a
 * domain's rules, and the Firehose and salt-table clients load after the first response has been
 * sent (events are completed and written after the answer). `npm run bench -- --only cold`.
 */
/// <reference types="aws-lambda" />
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { InMemorySaltStore } from '../local/daily-salt';
import { DailySaltCache, type DailySaltStore } from '../analytics/daily-salt';
import type { DropReason, FirehoseEventSink } from '../analytics/firehose-sink';
import type { GatewayEvent } from '../core/events';
import type { RuleStore } from '../rule-store';
import { BundledRuleSource } from './bundled-rules';
import { LogEventSink } from './log-sink';
import { createStreamingHandler } from './streaming-handler';
import type { EventSink, RuleSource } from './ports';
import { GATEWAY_DIMENSION, METRIC_NAMESPACE, SERVICE_NAME } from './metric-names';

const logger = new Logger({ serviceName: SERVICE_NAME });
const metrics = new Metrics({ namespace: METRIC_NAMESPACE, serviceName: SERVICE_NAME, defaultDimensions: { [GATEWAY_DIMENSION]: process.env.GATEWAY_NAME ?? 'default' } });
const env = process.env;

// Required on first use (see above); esbuild bundles them as modules initialised on that call.
const ruleStoreModule = () => require('../rule-store') as typeof import('../rule-store');
const firehoseSinkModule = () => require('../analytics/firehose-sink') as typeof import('../analytics/firehose-sink');
const saltStoreModule = () => require('../analytics/dynamodb-salt-store') as typeof import('../analytics/dynamodb-salt-store');
const firehoseModule = () => require('@aws-sdk/client-firehose') as typeof import('@aws-sdk/client-firehose');
const dynamoDbModule = () => require('@aws-sdk/client-dynamodb') as typeof import('@aws-sdk/client-dynamodb');

/**
 * Firehose and the salt table must not hold an invocation when they hang: without a request
 * timeout the SDK waits as long as the connection stays open. The sink retries (and counts)
 * failed sends itself, so its client makes one attempt per send.
 */
const FIREHOSE_CLIENT = { maxAttempts: 1, requestHandler: { connectionTimeout: 1_000, requestTimeout: 2_000, throwOnRequestTimeout: true } } as const;
const SALT_CLIENT = { maxAttempts: 2, requestHandler: { connectionTimeout: 1_000, requestTimeout: 2_000, throwOnRequestTimeout: true } } as const;
/** Drops are logged at most this often (with the counts since the last line); the metric has every one. */
const DROP_LOG_INTERVAL_MS = 60_000;

function ruleSource(): RuleSource {
  const tableName = env.RULES_TABLE_NAME;
  if (tableName) {
    let stale = 0;
    let store: RuleStore | null = null;
    const createStore = () => ruleStoreModule().createDynamoRuleStore({
      tableName,
      ttlMs: Number(env.RULES_TTL_SECONDS ?? '5') * 1000,
      log: { info: (m, f) => logger.info(m, f ?? {}), warn: (m, f) => logger.warn(m, f ?? {}), error: (m, f) => logger.error(m, f ?? {}) },
      metric: (name, value) => {
        if (name === 'StaleRulesServed') stale += value;
        metrics.addMetric(name, MetricUnit.Count, value);
      },
    }).store;
    return {
      rulesFor: (host) => (store ??= createStore()).rulesFor(host),
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

/**
 * The Firehose sink behind the adapter's EventSink port. Drops are counted in the `EventsDropped`
 * metric per invocation, and logged at most once a minute with the count per reason: while
 * Firehose is down, a line per dropped event (or per request) would flood the log at the request rate.
 */
function eventSink(): EventSink {
  const deliveryStreamName = env.EVENTS_STREAM_NAME;
  if (!deliveryStreamName) return new LogEventSink();
  let dropped = 0;
  let unlogged: Partial<Record<DropReason, number>> = {};
  let loggedAt = -Infinity;
  let sink: FirehoseEventSink | null = null;
  const createSink = (): FirehoseEventSink => {
    const { FirehoseEventSink: Sink, flushOnSigterm } = firehoseSinkModule();
    const created = new Sink({
      deliveryStreamName,
      client: new (firehoseModule().FirehoseClient)({ ...FIREHOSE_CLIENT, region: env.EVENTS_STREAM_REGION ?? env.AWS_REGION }),
      onError: (message) => logger.warn(message),
      onDropped: (count: number, reason: DropReason) => {
        dropped += count;
        unlogged[reason] = (unlogged[reason] ?? 0) + count;
      },
    });
    // Records still queued after a failed flush are sent when Lambda shuts the environment down.
    flushOnSigterm(created);
    return created;
  };
  return {
    write: (events: readonly GatewayEvent[]) => (sink ??= createSink()).write(events),
    // Nothing written yet: nothing to send, and no reason to load the client. While Firehose
    // fails, an invocation makes at most one attempt and never sleeps through a backoff (firehose-sink.ts).
    flush: () => (sink ? sink.flush(5_000, { waitForBackoff: false }) : Promise.resolve()),
    takeDropped: () => {
      const count = dropped;
      dropped = 0;
      const now = Date.now();
      if (Object.keys(unlogged).length && now - loggedAt >= DROP_LOG_INTERVAL_MS) {
        const reasons = unlogged;
        unlogged = {};
        loggedAt = now;
        logger.warn('analytics events dropped', { count: Object.values(reasons).reduce((a, b) => a + b, 0), reasons, queued: sink?.stats().buffered ?? 0 });
      }
      return count;
    },
  };
}

function dailySaltStore(): DailySaltStore {
  const tableName = env.SALT_TABLE_NAME;
  if (!tableName) return new InMemorySaltStore();
  let store: DailySaltStore | null = null;
  return {
    saltFor: (day) => (store ??= new (saltStoreModule().DynamoDbSaltStore)({
      tableName,
      client: new (dynamoDbModule().DynamoDBClient)({ ...SALT_CLIENT, region: env.SALT_TABLE_REGION ?? env.AWS_REGION }),
    })).saltFor(day),
  };
}

const saltStore = dailySaltStore();
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
