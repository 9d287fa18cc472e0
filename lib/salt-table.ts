/**
 * The visitor-id salt table (lambda/analytics/dynamodb-salt-store.ts, docs/ANALYTICS.md "The salt
 * store"): one single-region table that the gateways of every region read, and the hourly
 * function that creates tomorrow's salt and deletes older ones, so no salt lives past 48 hours.
 */
import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import { Construct } from 'constructs';
import { SALT_TABLE } from '../lambda/analytics/dynamodb-salt-store';
import { bundlingProps, GATEWAY_RUNTIME, handlerEntry } from './bundling';
import { acknowledge, scopedLambdaRole } from './nag';

export interface SaltTableProps {
  /** Physical table name (gateways in other regions name it). */
  readonly tableName: string;
  /** Names the maintenance alarm. */
  readonly gatewayName: string;
  readonly logRetention: logs.RetentionDays;
}

export class SaltTable extends Construct {
  readonly table: dynamodb.Table;
  readonly maintenanceFunction: nodejs.NodejsFunction;
  /** Maintenance failing: salts may outlive 48 hours (only the TTL backstop deletes them). */
  readonly alarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: SaltTableProps) {
    super(scope, id);
    // Not a global table: every region reads the one copy, so a day has exactly one salt (see dynamodb-salt-store.ts).
    this.table = new dynamodb.Table(this, 'Table', {
      tableName: props.tableName,
      partitionKey: { name: SALT_TABLE.partitionKey, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      // A backstop only: DynamoDB TTL deletes "within a few days"; the maintenance function deletes on time.
      timeToLiveAttribute: SALT_TABLE.ttlAttribute,
      // No point-in-time recovery: a salt restored from a backup could link visitor ids to addresses after 48 hours.
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: false },
      // Salts are disposable by design: a new table just starts new salts.
      removalPolicy: RemovalPolicy.DESTROY,
    });
    acknowledge(this.table, { id: 'AwsSolutions-DDB3', reason: 'Point-in-time recovery is off on purpose: visitor-id salts must be gone within 48 hours, and a backup would keep them for 35 days.' });

    const logGroup = new logs.LogGroup(this, 'MaintenanceLogs', { retention: props.logRetention, removalPolicy: RemovalPolicy.DESTROY });
    const role = scopedLambdaRole(this, 'MaintenanceRole', logGroup);
    // What maintainSalts() does: a conditional PutItem of tomorrow's salt, a Scan of the days, DeleteItem of old ones.
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'MaintainSalts',
      actions: ['dynamodb:PutItem', 'dynamodb:Scan', 'dynamodb:DeleteItem'],
      resources: [this.table.tableArn],
    }));
    this.maintenanceFunction = new nodejs.NodejsFunction(this, 'MaintenanceFunction', {
      entry: handlerEntry('analytics/salt-maintenance'),
      handler: 'handler',
      runtime: GATEWAY_RUNTIME,
      architecture: lambda.Architecture.ARM_64,
      memorySize: 128,
      timeout: Duration.minutes(1),
      role,
      logGroup,
      description: 'artifact-gateway: creates tomorrow\'s visitor-id salt and deletes those of past days',
      environment: { SALT_TABLE_NAME: this.table.tableName },
      ...bundlingProps(GATEWAY_RUNTIME),
    });
    // Hourly: a salt is deleted at most an hour after its day ends, and a failed run is retried soon.
    new events.Rule(this, 'MaintenanceSchedule', {
      description: 'artifact-gateway: hourly visitor-id salt maintenance',
      schedule: events.Schedule.rate(Duration.hours(1)),
      targets: [new targets.LambdaFunction(this.maintenanceFunction)],
    });
    this.alarm = new cloudwatch.Alarm(this, 'MaintenanceAlarm', {
      alarmName: `${props.gatewayName}-${Stack.of(this).region}-SaltMaintenance`,
      alarmDescription: `artifact-gateway ${props.gatewayName}: salt maintenance failed in 2 of the last 3 hours; old visitor-id salts may outlive 48 hours`,
      metric: this.maintenanceFunction.metricErrors({ period: Duration.hours(1) }),
      threshold: 1,
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
  }
}
