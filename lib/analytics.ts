/**
 * The analytics pipeline's resources: an S3 bucket, a Firehose stream that converts the JSON
 * events to Parquet under `events/dt=YYYY-MM-DD/`, a Glue table with partition projection (no
 * crawler) whose columns come from the event schema, and an Athena workgroup.
 *
 * The gateway functions write their events to the stream (lambda/analytics/firehose-sink.ts),
 * partitioned by each event's own UTC day (dynamic partitioning on its `time`).
 */
import { FIREHOSE_PARTITIONING, glueColumns as eventTableColumns, PARTITION_KEYS, partitionProjection } from '../lambda/core/event-table';
import { Aws, Duration, RemovalPolicy, Size } from 'aws-cdk-lib';
import * as athena from 'aws-cdk-lib/aws-athena';
import * as firehose from 'aws-cdk-lib/aws-kinesisfirehose';
import * as glue from 'aws-cdk-lib/aws-glue';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { acknowledge, finding, objectsOf } from './nag';

export interface GlueColumn {
  readonly name: string;
  readonly type: string;
  readonly comment: string;
}

/**
 * Glue columns from the event schema, exactly as the Firehose sink writes records
 * (lambda/core/event-table.ts: JSON fields such as `variables` and `body_event` are JSON text).
 */
export function glueColumns(): GlueColumn[] {
  return eventTableColumns().map((c) => ({ name: c.name, type: c.type, comment: c.comment }));
}

export interface GatewayAnalyticsProps {
  /** Glue database name (lower-case letters, digits, underscores). */
  readonly databaseName: string;
  /** Athena workgroup name (letters, digits, `.`, `_`, `-`). */
  readonly workgroupName: string;
  /** Firehose stream name (letters, digits, `.`, `_`, `-`). */
  readonly streamName: string;
  readonly removalPolicy: RemovalPolicy;
  /** How long event data is kept; undefined: forever. */
  readonly retention?: Duration;
  readonly bufferInterval: Duration;
  /** Oldest day partition projection offers (yyyy-MM-dd). */
  readonly firstDay: string;
}

export class GatewayAnalytics extends Construct {
  readonly bucket: s3.Bucket;
  readonly databaseName: string;
  readonly tableName = 'events';
  readonly workgroupName: string;
  readonly deliveryStream: firehose.DeliveryStream;
  readonly table: glue.CfnTable;
  readonly workgroup: athena.CfnWorkGroup;

  constructor(scope: Construct, id: string, props: GatewayAnalyticsProps) {
    super(scope, id);
    this.bucket = new s3.Bucket(this, 'Bucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      removalPolicy: props.removalPolicy,
      lifecycleRules: [
        ...(props.retention ? [{ id: 'events-retention', prefix: 'events/', expiration: props.retention }] : []),
        { id: 'query-results', prefix: 'athena-results/', expiration: Duration.days(7) },
        { id: 'delivery-errors', prefix: 'errors/', expiration: Duration.days(30) },
        { id: 'abort-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
    });
    acknowledge(this.bucket, { id: 'AwsSolutions-S1', reason: 'Only Firehose writes and Athena reads this bucket; server access logs would record requester addresses for no analytic gain (use CloudTrail data events for an audit trail).' });

    this.databaseName = props.databaseName;
    const database = new glue.CfnDatabase(this, 'Database', {
      catalogId: Aws.ACCOUNT_ID,
      databaseInput: { name: this.databaseName, description: 'artifact-gateway download events' },
    });
    const location = `s3://${this.bucket.bucketName}/events/`;
    this.table = new glue.CfnTable(this, 'EventsTable', {
      catalogId: Aws.ACCOUNT_ID,
      databaseName: this.databaseName,
      tableInput: {
        name: this.tableName,
        description: 'One row per gateway event (docs/EVENTS.md); partitioned by the event\'s UTC day',
        tableType: 'EXTERNAL_TABLE',
        partitionKeys: PARTITION_KEYS.map((k) => ({ name: k.name, type: k.type, comment: k.comment })),
        parameters: { classification: 'parquet', ...partitionProjection(location, props.firstDay) },
        storageDescriptor: {
          location,
          columns: glueColumns(),
          inputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat',
          outputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat',
          serdeInfo: { serializationLibrary: 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe', parameters: { 'serialization.format': '1' } },
        },
      },
    });
    this.table.addResourceDependency(database);

    this.deliveryStream = new firehose.DeliveryStream(this, 'Stream', {
      // Named, so the distribution's stack (another region) can graph and alarm on it.
      deliveryStreamName: props.streamName,
      encryption: firehose.StreamEncryption.awsOwnedKey(),
      destination: new firehose.S3Bucket(this.bucket, {
        // Dynamic partitioning on the event's own time: an event answered just before midnight and
        // delivered after it still lands in its day (the named queries select days by `dt`).
        dynamicPartitioning: { enabled: true },
        processors: [firehose.MetadataExtractionProcessor.jq16({ ...FIREHOSE_PARTITIONING.jqKeys })],
        dataOutputPrefix: `events/${FIREHOSE_PARTITIONING.prefix}`,
        errorOutputPrefix: FIREHOSE_PARTITIONING.errorOutputPrefix,
        bufferingInterval: props.bufferInterval,
        // Record format conversion needs at least 64 MiB.
        bufferingSize: Size.mebibytes(64),
        dataFormatConversion: {
          schemaConfiguration: firehose.SchemaConfiguration.fromCfnTable(this.table),
          inputFormat: firehose.InputFormat.OPENX_JSON,
          outputFormat: firehose.OutputFormat.PARQUET,
        },
      }),
    });
    this.deliveryStream.node.addDependency(this.table);
    const destinationGrant = 'Firehose\'s S3 destination role as aws-cdk-lib grants it: object actions on the analytics bucket only';
    acknowledge(this.deliveryStream,
      ...['s3:GetObject*', 's3:GetBucket*', 's3:List*', 's3:DeleteObject*', 's3:Abort*'].map((a) => finding('AwsSolutions-IAM5', `Action::${a}`, destinationGrant)),
      finding('AwsSolutions-IAM5', objectsOf(this.bucket), `${destinationGrant} (it writes objects under generated names).`),
      finding('AwsSolutions-IAM5', 'Resource::*', 'glue:GetSchemaVersion for record format conversion: aws-cdk-lib grants it on all schema versions; the stream reads only its own table\'s schema.'));

    this.workgroupName = props.workgroupName;
    this.workgroup = new athena.CfnWorkGroup(this, 'Workgroup', {
      name: this.workgroupName,
      description: 'artifact-gateway analytics queries',
      state: 'ENABLED',
      recursiveDeleteOption: true,
      workGroupConfiguration: {
        enforceWorkGroupConfiguration: true,
        publishCloudWatchMetricsEnabled: true,
        bytesScannedCutoffPerQuery: 10 * 1024 ** 3,
        resultConfiguration: {
          outputLocation: `s3://${this.bucket.bucketName}/athena-results/`,
          encryptionConfiguration: { encryptionOption: 'SSE_S3' },
        },
      },
    });
  }

  /** Run Athena queries on the events: the workgroup, the Glue table, reading events and writing query results. */
  grantQuery(grantee: iam.IGrantable): iam.Grant {
    const stack = this.bucket.stack;
    // The L1 attribute, so grantees in stacks of other regions get a (weak) reference rather than an error.
    const bucketArn = (this.bucket.node.defaultChild as s3.CfnBucket).attrArn;
    const workgroupArn = stack.formatArn({ service: 'athena', resource: 'workgroup', resourceName: this.workgroupName });
    const catalog = stack.formatArn({ service: 'glue', resource: 'catalog' });
    const database = stack.formatArn({ service: 'glue', resource: 'database', resourceName: this.databaseName });
    const table = stack.formatArn({ service: 'glue', resource: 'table', resourceName: `${this.databaseName}/${this.tableName}` });
    const grant = iam.Grant.addToPrincipal({
      grantee,
      actions: ['athena:StartQueryExecution', 'athena:GetQueryExecution', 'athena:GetQueryResults', 'athena:StopQueryExecution', 'athena:GetWorkGroup'],
      resourceArns: [workgroupArn],
    });
    grant.combine(iam.Grant.addToPrincipal({ grantee, actions: ['glue:GetDatabase', 'glue:GetTable', 'glue:GetPartitions'], resourceArns: [catalog, database, table] }));
    grant.combine(iam.Grant.addToPrincipal({ grantee, actions: ['s3:GetBucketLocation', 's3:ListBucket'], resourceArns: [bucketArn] }));
    grant.combine(iam.Grant.addToPrincipal({ grantee, actions: ['s3:GetObject'], resourceArns: [`${bucketArn}/events/*`] }));
    grant.combine(iam.Grant.addToPrincipal({ grantee, actions: ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload'], resourceArns: [`${bucketArn}/athena-results/*`] }));
    return grant;
  }
}
