/**
 * One region's gateway: the function (the engine behind a function URL with IAM auth and
 * response streaming), its log group, a role that can read the rules table's local replica, write
 * the events stream and read or create the day's visitor-id salt and nothing else, and its alarms.
 */
import * as fs from 'node:fs';
import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import { Construct } from 'constructs';
import { BUNDLED_RULES_FILE } from '../lambda/aws/bundled-rules';
import { GATEWAY_DIMENSION, METRIC, METRIC_NAMESPACE, SERVICE_NAME } from '../lambda/aws/metric-names';
import { bundlingProps, GATEWAY_RUNTIME, handlerEntry } from './bundling';
import { scopedLambdaRole } from './nag';

export interface RegionalGatewayProps {
  readonly gatewayName: string;
  /** The validated rules, copied into the bundle. */
  readonly rulesFile: string;
  /** Name of the rules table (a replica lives in this region). */
  readonly rulesTableName: string;
  /** The events stream (in the analytics region), or undefined without analytics. */
  readonly eventsStream?: { readonly name: string; readonly arn: string; readonly region: string };
  /** The visitor-id salt table (in the analytics region), or undefined without analytics. */
  readonly saltTable?: { readonly name: string; readonly arn: string; readonly region: string };
  readonly cacheDownloadsSeconds: number | null;
  readonly memorySize: number;
  readonly timeout: Duration;
  readonly logRetention: logs.RetentionDays;
}

export class RegionalGateway extends Construct {
  readonly function: nodejs.NodejsFunction;
  readonly functionUrl: lambda.FunctionUrl;
  readonly role: iam.Role;
  readonly alarms: cloudwatch.Alarm[] = [];
  readonly region: string;
  private readonly gatewayName: string;

  constructor(scope: Construct, id: string, props: RegionalGatewayProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.region = stack.region;
    this.gatewayName = props.gatewayName;
    const functionName = `${props.gatewayName}-${stack.region}`.replace(/[^A-Za-z0-9-_]/g, '-').slice(0, 64);
    // Lambda's conventional name, so the logs (and the events, when analytics are off) are where operators look for them.
    const logGroup = new logs.LogGroup(this, 'Logs', { logGroupName: `/aws/lambda/${functionName}`, retention: props.logRetention, removalPolicy: RemovalPolicy.DESTROY });
    this.role = scopedLambdaRole(this, 'Role', logGroup);
    // The local replica only: a regional gateway never reads another region's table.
    this.role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'ReadLocalRulesReplica',
      actions: ['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:BatchGetItem'],
      resources: [stack.formatArn({ service: 'dynamodb', resource: 'table', resourceName: props.rulesTableName })],
    }));
    if (props.eventsStream) {
      this.role.addToPrincipalPolicy(new iam.PolicyStatement({
        sid: 'WriteEventsStream',
        actions: ['firehose:PutRecord', 'firehose:PutRecordBatch'],
        resources: [props.eventsStream.arn],
      }));
    }
    if (props.saltTable) {
      // DynamoDbSaltStore.saltFor(): a consistent GetItem, and a conditional PutItem by the first caller of a day.
      this.role.addToPrincipalPolicy(new iam.PolicyStatement({
        sid: 'ReadOrCreateDailySalt',
        actions: ['dynamodb:GetItem', 'dynamodb:PutItem'],
        resources: [props.saltTable.arn],
      }));
    }
    const rulesFile = props.rulesFile;
    this.function = new nodejs.NodejsFunction(this, 'Function', {
      // A name known at synth time: the distribution's stack refers to it from us-east-1.
      functionName,
      entry: handlerEntry('aws/handler'),
      handler: 'handler',
      runtime: GATEWAY_RUNTIME,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memorySize,
      timeout: props.timeout,
      role: this.role,
      logGroup,
      description: `artifact-gateway ${props.gatewayName}: rule engine for ${stack.region}`,
      environment: {
        GATEWAY_NAME: props.gatewayName,
        RULES_TABLE_NAME: props.rulesTableName,
        ...(props.eventsStream && { EVENTS_STREAM_NAME: props.eventsStream.name, EVENTS_STREAM_REGION: props.eventsStream.region }),
        ...(props.saltTable && { SALT_TABLE_NAME: props.saltTable.name, SALT_TABLE_REGION: props.saltTable.region }),
        ...(props.cacheDownloadsSeconds && { CACHE_DOWNLOADS_SECONDS: String(props.cacheDownloadsSeconds) }),
        POWERTOOLS_LOG_LEVEL: 'INFO',
      },
      ...bundlingProps(GATEWAY_RUNTIME, {
        commandHooks: {
          beforeBundling: () => [],
          beforeInstall: () => [],
          // The rules travel inside the bundle, next to index.js (lambda/aws/bundled-rules.ts reads them there).
          afterBundling: (_input: string, output: string) => [`cp ${JSON.stringify(rulesFile)} ${JSON.stringify(`${output}/${BUNDLED_RULES_FILE}`)}`],
        },
      }),
    });
    if (!fs.existsSync(rulesFile)) throw new Error(`artifact-gateway: rules file ${rulesFile} is missing`);
    this.functionUrl = this.function.addFunctionUrl({
      authType: lambda.FunctionUrlAuthType.AWS_IAM,
      invokeMode: lambda.InvokeMode.RESPONSE_STREAM,
    });
    this.createAlarms();
  }

  /** A metric the gateway function emits (Powertools, embedded metric format). */
  gatewayMetric(name: string, opts: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: METRIC_NAMESPACE,
      metricName: name,
      dimensionsMap: { service: SERVICE_NAME, [GATEWAY_DIMENSION]: this.gatewayName },
      region: this.region,
      period: Duration.minutes(5),
      statistic: 'Sum',
      ...opts,
    });
  }

  private createAlarms(): void {
    const fn = this.function;
    const errorRate = new cloudwatch.MathExpression({
      expression: 'IF(invocations > 0, 100 * errors / invocations, 0)',
      usingMetrics: { errors: fn.metricErrors({ period: Duration.minutes(5) }), invocations: fn.metricInvocations({ period: Duration.minutes(5) }) },
      label: 'Error rate (%)',
      period: Duration.minutes(5),
    });
    const add = (id: string, description: string, metric: cloudwatch.IMetric, threshold: number, evaluationPeriods = 1) => {
      this.alarms.push(new cloudwatch.Alarm(this, id, {
        // Named, so the dashboard in the distribution's stack (us-east-1) can show it.
        alarmName: `${this.gatewayName}-${this.region}-${id.replace(/Alarm$/, '')}`,
        alarmDescription: `artifact-gateway ${this.gatewayName} (${this.region}): ${description}`,
        metric,
        threshold,
        evaluationPeriods,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }));
    };
    add('ErrorRateAlarm', 'function errors are at least 5% of invocations', errorRate, 5, 2);
    add('LatencyAlarm', 'p99 duration is 10 s or more (proxied upstreams are slow, or the function is)', fn.metricDuration({ statistic: 'p99', period: Duration.minutes(5) }), 10_000, 3);
    add('ThrottlesAlarm', 'invocations are being throttled (raise the concurrency limit)', fn.metricThrottles({ period: Duration.minutes(5) }), 1);
    add('StaleRulesAlarm', 'serving stale rules: the rule store cannot be read', this.gatewayMetric(METRIC.rulesStale, { statistic: 'Maximum' }), 1, 2);
    add('DroppedEventsAlarm', 'analytics events were dropped', this.gatewayMetric(METRIC.eventsDropped), 1);
  }
}
