/**
 * Names shared by the gateway function (which emits the metrics in CloudWatch embedded metric
 * format) and the construct (which graphs and alarms on them). Change both sides together.
 */
export const METRIC_NAMESPACE = 'ArtifactGateway';
/** Powertools' service dimension, and the name of the dimension that tells gateways apart. */
export const SERVICE_NAME = 'artifact-gateway';
export const GATEWAY_DIMENSION = 'gateway';

export const METRIC = {
  /** Requests handled. */
  requests: 'Requests',
  /** Events that count as downloads. */
  downloads: 'Downloads',
  /** Answers the gateway made itself because an upstream failed (502, 504). */
  upstreamErrors: 'UpstreamErrors',
  /** 1 while the rule source serves rules it could not refresh. */
  rulesStale: 'RulesStale',
  /** Events given up on by the sink. */
  eventsDropped: 'EventsDropped',
} as const;
