/**
 * A certificate for domains whose DNS the construct cannot write (no hosted zone given). The
 * request lives in its own small stack, which finishes as soon as ACM has published the DNS
 * validation records and prints them as outputs; the gateway stack then waits (up to 2 hours)
 * until the operator has added them and ACM has issued the certificate.
 */
import { CfnOutput, CustomResource, Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as cr from 'aws-cdk-lib/custom-resources';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { REQUEST_RESOURCE_TYPE, WAIT_RESOURCE_TYPE } from '../lambda/certificate/resource-types';
import { bundlingProps, GATEWAY_RUNTIME, handlerEntry } from './bundling';
import { acknowledge, acknowledgeProviderFramework, finding, scopedLambdaRole } from './nag';

function certificateProvider(scope: Construct, actions: string[], withWait: boolean): cr.Provider {
  const logGroup = new logs.LogGroup(scope, 'Logs', { retention: logs.RetentionDays.ONE_MONTH, removalPolicy: RemovalPolicy.DESTROY });
  const role = scopedLambdaRole(scope, 'Role', logGroup);
  role.addToPrincipalPolicy(new iam.PolicyStatement({ actions, resources: ['*'] }));
  acknowledge(role, finding('AwsSolutions-IAM5', 'Resource::*',
    'acm:RequestCertificate has no resource-level permissions; DescribeCertificate/DeleteCertificate target a certificate whose ARN exists only after the request.'));
  const common = {
    runtime: GATEWAY_RUNTIME,
    architecture: lambda.Architecture.ARM_64,
    entry: handlerEntry('certificate/handler'),
    timeout: Duration.minutes(2),
    role,
    logGroup,
    ...bundlingProps(GATEWAY_RUNTIME),
  };
  const onEvent = new nodejs.NodejsFunction(scope, 'OnEvent', { ...common, handler: 'onEventHandler', description: 'artifact-gateway: requests the certificate and returns its DNS validation records' });
  const isComplete = withWait
    ? new nodejs.NodejsFunction(scope, 'IsComplete', { ...common, handler: 'isCompleteHandler', description: 'artifact-gateway: waits until ACM has issued the certificate' })
    : undefined;
  const provider = new cr.Provider(scope, 'Provider', {
    onEventHandler: onEvent,
    ...(isComplete && {
      isCompleteHandler: isComplete,
      queryInterval: Duration.seconds(30),
      totalTimeout: Duration.hours(2),
      disableWaiterStateMachineLogging: false,
      waiterStateMachineLogOptions: { destination: logGroup, level: sfn.LogLevel.ALL, includeExecutionData: false },
    }),
  });
  acknowledgeProviderFramework(provider, isComplete ? [onEvent, isComplete] : [onEvent]);
  if (isComplete) {
    acknowledge(provider,
      { id: 'AwsSolutions-SF2', reason: 'The provider framework\'s waiter state machine (aws-cdk-lib) offers no X-Ray setting; it only polls ACM.' },
      finding('AwsSolutions-IAM5', 'Resource::*', 'Step Functions log delivery (logs:CreateLogDelivery and related actions) has no resource-level permissions.'));
  }
  return provider;
}

export interface CertificateRequestProps {
  readonly domains: readonly string[];
}

/** Requests the certificate and prints its DNS validation records as stack outputs. */
export class CertificateRequest extends Construct {
  readonly certificateArn: string;
  readonly resource: CustomResource;

  constructor(scope: Construct, id: string, props: CertificateRequestProps) {
    super(scope, id);
    const provider = certificateProvider(this, ['acm:RequestCertificate', 'acm:DescribeCertificate', 'acm:DeleteCertificate'], false);
    const request = this.resource = new CustomResource(this, 'Request', {
      serviceToken: provider.serviceToken,
      resourceType: REQUEST_RESOURCE_TYPE,
      properties: { Domains: [...props.domains] },
    });
    this.certificateArn = request.getAttString('CertificateArn');
    new CfnOutput(this, 'CertificateArn', { value: this.certificateArn, description: 'ACM certificate for the gateway domains (pending until the DNS records below exist)' });
    props.domains.forEach((domain, k) => {
      new CfnOutput(this, `ValidationRecord${k}`, {
        description: `Add this DNS record so ACM can validate ${domain}`,
        value: `${request.getAttString(`Record${k}Name`)} ${request.getAttString(`Record${k}Type`)} ${request.getAttString(`Record${k}Value`)}`,
      });
    });
  }
}

/** Completes once the certificate is issued; the distribution depends on it. */
export class CertificateIssued extends Construct {
  readonly certificateArn: string;

  constructor(scope: Construct, id: string, props: { certificateArn: string }) {
    super(scope, id);
    const provider = certificateProvider(this, ['acm:DescribeCertificate'], true);
    const wait = new CustomResource(this, 'Wait', {
      serviceToken: provider.serviceToken,
      resourceType: WAIT_RESOURCE_TYPE,
      properties: { CertificateArn: props.certificateArn },
    });
    this.certificateArn = props.certificateArn;
    this.node.defaultChild = wait;
  }
}
