/**
 * The global rules table (DynamoDB TableV2 with a replica in every gateway region) and the
 * custom resource that writes the rules given to the construct into it as deploy-managed items.
 */
import { CustomResource, Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { bundlingProps, GATEWAY_RUNTIME, handlerEntry } from './bundling';
import { acknowledgeProviderFramework, scopedLambdaRole } from './nag';

export interface RulesTableProps {
  /** Physical table name (the same in every replica region). */
  readonly tableName: string;
  /** Regions other than this stack's that get a replica. */
  readonly replicaRegions: readonly string[];
  /** The validated rules as a manifest file (written at synth time). */
  readonly rulesFile: string;
  readonly removalPolicy: RemovalPolicy;
  readonly deletionProtection: boolean;
  readonly logRetention: logs.RetentionDays;
}

export class RulesTable extends Construct {
  readonly table: dynamodb.TableV2;

  constructor(scope: Construct, id: string, props: RulesTableProps) {
    super(scope, id);
    this.table = new dynamodb.TableV2(this, 'Table', {
      // A name known at synth time, so stacks in other regions (and grants) can name the table and its replicas.
      tableName: props.tableName,
      partitionKey: { name: 'domain', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'rule_id', type: dynamodb.AttributeType.STRING },
      billing: dynamodb.Billing.onDemand(),
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: props.deletionProtection,
      removalPolicy: props.removalPolicy,
      replicas: props.replicaRegions.map((region) => ({ region })),
    });

    const asset = new s3assets.Asset(this, 'RulesAsset', { path: props.rulesFile });
    const logGroup = new logs.LogGroup(this, 'DeployRulesLogs', { retention: props.logRetention, removalPolicy: RemovalPolicy.DESTROY });
    const role = scopedLambdaRole(this, 'DeployRulesRole', logGroup);
    const onEvent = new nodejs.NodejsFunction(this, 'DeployRulesFunction', {
      entry: handlerEntry('deploy-rules/handler'),
      handler: 'handler',
      runtime: GATEWAY_RUNTIME,
      architecture: lambda.Architecture.ARM_64,
      memorySize: 256,
      timeout: Duration.minutes(5),
      role,
      logGroup,
      description: 'artifact-gateway: writes the deployed rules into the rules table as deploy-managed items',
      ...bundlingProps(GATEWAY_RUNTIME),
    });
    // Only the rules object itself, not the whole asset bucket.
    role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: [asset.bucket.arnForObjects(asset.s3ObjectKey)] }));
    // Scan (to find deploy-managed items), conditional PutItem and DeleteItem on the primary table only.
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['dynamodb:Scan', 'dynamodb:PutItem', 'dynamodb:DeleteItem'],
      resources: [this.table.tableArn],
    }));
    const provider = new cr.Provider(this, 'DeployRulesProvider', { onEventHandler: onEvent });
    acknowledgeProviderFramework(provider, [onEvent]);
    const resource = new CustomResource(this, 'DeployRules', {
      serviceToken: provider.serviceToken,
      resourceType: 'Custom::GatewayDeployRules',
      properties: {
        TableName: this.table.tableName,
        RulesBucket: asset.s3BucketName,
        RulesKey: asset.s3ObjectKey,
      },
    });
    resource.node.addDependency(this.table);
  }
}
