/**
 * Least-privilege roles for the construct's functions, and the cdk-nag (AwsSolutions)
 * acknowledgements for what cannot be narrowed further, each with its reason. Users who run
 * cdk-nag over their app see no finding from this construct that is not explained here.
 * Findings of rules that report details (IAM4, IAM5) are acknowledged one by one.
 */
import { type CfnElement, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as cr from 'aws-cdk-lib/custom-resources';
import type { Construct, IConstruct } from 'constructs';

export interface Acknowledgement {
  readonly id: string;
  readonly reason: string;
}

export function acknowledge(scope: IConstruct, ...acks: Acknowledgement[]): void {
  for (const a of acks) Validations.of(scope).acknowledge(a);
}

/** One finding of a rule that reports findings, e.g. `AwsSolutions-IAM5[Resource::*]`. */
export function finding(rule: string, detail: string, reason: string): Acknowledgement {
  return { id: `${rule}[${detail}]`, reason };
}

/** How cdk-nag names a function's ARN with every version/alias (`<LogicalId.Arn>:*`). */
export function versionsOf(resource: IConstruct): string {
  const cfn = (resource.node.defaultChild ?? resource) as CfnElement;
  return `Resource::<${Stack.of(cfn).getLogicalId(cfn)}.Arn>:*`;
}

/** How cdk-nag names every object of a bucket (`<LogicalId.Arn>/*`). */
export function objectsOf(bucket: IConstruct): string {
  const cfn = (bucket.node.defaultChild ?? bucket) as CfnElement;
  return `Resource::<${Stack.of(cfn).getLogicalId(cfn)}.Arn>/*`;
}

export const BASIC_EXECUTION_ROLE = 'Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole';

/** A role that can only write to its function's own log group (no AWSLambdaBasicExecutionRole, which allows every log group). */
export function scopedLambdaRole(scope: Construct, id: string, logGroup: logs.ILogGroup): iam.Role {
  const role = new iam.Role(scope, id, { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
  role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [logGroup.logGroupArn] }));
  return role;
}

/** The provider framework's own functions (created by aws-cdk-lib) cannot be configured further. */
export function acknowledgeProviderFramework(provider: cr.Provider, handlers: IConstruct[]): void {
  const framework = ['framework-onEvent', 'framework-isComplete', 'framework-onTimeout'].map((id) => provider.node.tryFindChild(id)).filter((c): c is IConstruct => c !== undefined);
  acknowledge(provider,
    finding('AwsSolutions-IAM4', BASIC_EXECUTION_ROLE, 'The custom resource provider framework functions (aws-cdk-lib) use AWSLambdaBasicExecutionRole for their own logs; they handle no data.'),
    ...[...handlers, ...framework].map((fn) => finding('AwsSolutions-IAM5', versionsOf(fn),
      'The provider framework invokes its handler functions by ARN with any version qualifier (ARN:*); no other function.')),
    { id: 'AwsSolutions-L1', reason: 'The provider framework function\'s runtime is chosen by aws-cdk-lib and updated with it.' },
  );
}

/** The singleton function behind AwsCustomResource (created by aws-cdk-lib). */
export function acknowledgeAwsCustomResourceSingleton(stack: Stack): void {
  const singleton = stack.node.tryFindChild('AWS679f53fac002430cb0da5b7982bd2287');
  if (!singleton) return;
  acknowledge(singleton,
    finding('AwsSolutions-IAM4', BASIC_EXECUTION_ROLE, 'The AwsCustomResource singleton function (aws-cdk-lib) uses AWSLambdaBasicExecutionRole for its own logs; its API permissions are scoped per call.'),
    { id: 'AwsSolutions-L1', reason: 'The AwsCustomResource singleton\'s runtime is chosen by aws-cdk-lib and updated with it.' });
}
