/**
 * Every other prop of ArtifactGateway, each pinned by what it changes in the templates, and the
 * errors for props and rules that cannot work (the rules with the engine's own messages).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { App, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import { ArtifactGateway, DockerServeMode, GatewayRule, GatewayRules, ManifestError } from '../../lib';
import { resourcesOf, synthGateway, tempOutdir } from './helpers';

const ONE_REGION = { regions: ['eu-west-1'] };

function distributionConfig(t: ReturnType<typeof synthGateway>['global']): Record<string, any> {
  const [[, d]] = resourcesOf(t, 'AWS::CloudFront::Distribution');
  return d.Properties.DistributionConfig;
}

describe('certificate given', () => {
  const arn = 'arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555';
  const s = synthGateway((stack) => ({ ...ONE_REGION, certificate: acm.Certificate.fromCertificateArn(stack, 'Cert', arn) }));

  test('is used as is: no certificate, no DNS records, no certificate stack', () => {
    expect(distributionConfig(s.global).ViewerCertificate.AcmCertificateArn).toBe(arn);
    s.global.resourceCountIs('AWS::CertificateManager::Certificate', 0);
    s.global.resourceCountIs('AWS::Route53::RecordSet', 0);
    expect(s.gateway.certificateStack).toBeUndefined();
  });

  test('one outside us-east-1 is refused', () => {
    expect(() => synthGateway((stack) => ({ ...ONE_REGION, certificate: acm.Certificate.fromCertificateArn(stack, 'Cert', arn.replace('us-east-1', 'eu-west-1')) })))
      .toThrow(/certificate in us-east-1, the given one is in eu-west-1/);
  });
});

describe('certificate created without a hosted zone', () => {
  const s = synthGateway(ONE_REGION);
  const cert = s.gateway.certificateStack!;
  const certTemplate = () => Template.fromStack(cert);

  test('a certificate stack in us-east-1 requests it and prints the DNS validation records as outputs', () => {
    expect(cert.region).toBe('us-east-1');
    const t = certTemplate();
    t.hasResourceProperties('Custom::GatewayCertificateRequest', { Domains: ['dl.example.com', 'cr.example.com'] });
    const outputs = t.toJSON().Outputs;
    const records = Object.entries(outputs).filter(([id]) => id.includes('ValidationRecord'));
    expect(records).toHaveLength(2);
    expect(records.map(([, o]) => (o as { Description: string }).Description)).toEqual([
      'Add this DNS record so ACM can validate dl.example.com',
      'Add this DNS record so ACM can validate cr.example.com',
    ]);
    expect(JSON.stringify(records[0][1])).toMatch(/Record0Name.*Record0Type.*Record0Value/);
    t.hasResourceProperties('AWS::IAM::Policy', { PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Action: ['acm:RequestCertificate', 'acm:DescribeCertificate', 'acm:DeleteCertificate'] })]) } });
  });

  test('the distribution waits until ACM has issued it; no DNS records are written', () => {
    const [[waitId]] = resourcesOf(s.global, 'Custom::GatewayCertificateWait');
    const [[, dist]] = resourcesOf(s.global, 'AWS::CloudFront::Distribution');
    expect(dist.DependsOn).toEqual(expect.arrayContaining([waitId]));
    expect(JSON.stringify(distributionConfig(s.global).ViewerCertificate.AcmCertificateArn)).toContain('Fn::GetStackOutput');
    s.global.resourceCountIs('AWS::Route53::RecordSet', 0);
    s.global.hasResourceProperties('AWS::StepFunctions::StateMachine', { LoggingConfiguration: Match.objectLike({ Level: 'ALL' }) });
  });
});

describe('options', () => {
  const s = synthGateway((stack) => ({
    ...ONE_REGION,
    certificate: acm.Certificate.fromCertificateArn(stack, 'Cert', 'arn:aws:acm:us-east-1:123456789012:certificate/x'),
    cacheDownloads: Duration.minutes(5),
    maxCacheTtl: Duration.hours(2),
    removalPolicy: RemovalPolicy.DESTROY,
    rulesTableDeletionProtection: false,
    memorySize: 1024,
    timeout: Duration.seconds(30),
    logRetention: logs.RetentionDays.ONE_WEEK,
    priceClass: cloudfront.PriceClass.PRICE_CLASS_100,
    webAclArn: 'arn:aws:wafv2:us-east-1:123456789012:global/webacl/gw/abc',
    bodyPathPatterns: ['/telemetry/*', '/events'],
    streamingRegistries: ['registry.acme.example.net'],
    analyticsRetention: Duration.days(400),
    analyticsBufferInterval: Duration.seconds(60),
    rules: GatewayRules.of(
      GatewayRule.docker({ domain: 'cr.example.com', repositoryName: 'acme/rocket', registry: 'ghcr.io', packageId: 'r', mode: DockerServeMode.PROXY }),
      GatewayRule.docker({ domain: 'cr.example.com', repositoryName: 'acme/agent', registry: 'registry.acme.example.net', packageId: 'a' }),
      GatewayRule.telemetry({ domain: 'dl.example.com', incomingPath: '/events', packageId: 'x' }),
    ),
  }));
  const regional = s.regional['eu-west-1'];

  test('cacheDownloads reaches the function; maxCacheTtl the cache policy', () => {
    regional.hasResourceProperties('AWS::Lambda::Function', { FunctionName: 'Gw-Gateway-eu-west-1', Environment: { Variables: Match.objectLike({ CACHE_DOWNLOADS_SECONDS: '300' }) } });
    s.global.hasResourceProperties('AWS::CloudFront::CachePolicy', { CachePolicyConfig: Match.objectLike({ DefaultTTL: 0, MaxTTL: 7200 }) });
  });

  test('removalPolicy and deletion protection reach the table and the bucket', () => {
    regional.hasResource('AWS::DynamoDB::GlobalTable', { DeletionPolicy: 'Delete' });
    regional.hasResourceProperties('AWS::DynamoDB::GlobalTable', { Replicas: [Match.objectLike({ Region: 'eu-west-1', DeletionProtectionEnabled: false })] });
    regional.hasResource('AWS::S3::Bucket', { DeletionPolicy: 'Delete' });
  });

  test('function size, time, log retention; distribution price class and web ACL', () => {
    regional.hasResourceProperties('AWS::Lambda::Function', { FunctionName: 'Gw-Gateway-eu-west-1', MemorySize: 1024, Timeout: 30 });
    regional.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 7 });
    const d = distributionConfig(s.global);
    expect(d.PriceClass).toBe('PriceClass_100');
    expect(d.WebACLId).toBe('arn:aws:wafv2:us-east-1:123456789012:global/webacl/gw/abc');
  });

  test('bodyPathPatterns replace the telemetry paths; streamingRegistries the default blob origins', () => {
    expect(distributionConfig(s.global).CacheBehaviors.map((b: { PathPattern: string }) => b.PathPattern)).toEqual(['/telemetry/*', '/events', '/v2/*/blobs/*']);
    const [[, fn]] = resourcesOf(s.global, 'AWS::CloudFront::Function');
    expect(fn.Properties.FunctionCode).toContain('"upstreams":[{"host":"registry.acme.example.net","port":443,"protocol":"https","path":""}]');
    expect(fn.Properties.FunctionCode).toContain('"acme/rocket":[-1,null],"acme/agent":[0,null]');
  });

  test('analytics retention and buffering', () => {
    regional.hasResourceProperties('AWS::S3::Bucket', { LifecycleConfiguration: { Rules: Match.arrayWith([Match.objectLike({ Prefix: 'events/', ExpirationInDays: 400 })]) } });
    regional.hasResourceProperties('AWS::KinesisFirehose::DeliveryStream', { ExtendedS3DestinationConfiguration: Match.objectLike({ BufferingHints: { IntervalInSeconds: 60, SizeInMBs: 64 } }) });
  });
});

describe('without analytics and without body paths', () => {
  const s = synthGateway({
    ...ONE_REGION,
    analytics: false,
    rules: GatewayRules.of(GatewayRule.file({ domain: 'dl.example.com', incomingPath: '/a', outgoingUrl: 'https://example.net/a', packageId: 'a' })),
  });
  const t = s.regional['eu-west-1'];

  test('no stream, Glue table, workgroup or salt table; the gateway role cannot write to any stream', () => {
    for (const type of ['AWS::KinesisFirehose::DeliveryStream', 'AWS::Glue::Table', 'AWS::Athena::WorkGroup', 'AWS::S3::Bucket']) t.resourceCountIs(type, 0);
    expect(JSON.stringify(t.toJSON())).not.toContain('firehose:');
    const env = resourcesOf(t, 'AWS::Lambda::Function').find(([, f]) => f.Properties.FunctionName === 'Gw-Gateway-eu-west-1')![1].Properties.Environment.Variables;
    expect(env.EVENTS_STREAM_NAME).toBeUndefined();
    // No salt table (nor its maintenance function and schedule): without events there are no visitor ids.
    for (const type of ['AWS::DynamoDB::Table', 'AWS::Events::Rule']) t.resourceCountIs(type, 0);
    expect(env.SALT_TABLE_NAME).toBeUndefined();
    expect(env.SALT_TABLE_REGION).toBeUndefined();
    expect(s.gateway.saltTable).toBeUndefined();
    expect(() => s.gateway.grantQueryAnalytics(new iam.AnyPrincipal())).toThrow(/analytics are disabled/);
  });

  test('no telemetry rule: no Lambda@Edge and no body behavior', () => {
    expect(distributionConfig(s.global).CacheBehaviors.map((b: { PathPattern: string }) => b.PathPattern)).toEqual(['/v2/*/blobs/*']);
    s.global.resourceCountIs('AWS::Lambda::Function', resourcesOf(s.global, 'AWS::Lambda::Function').filter(([id]) => !id.includes('PayloadHash')).length);
    expect(resourcesOf(s.global, 'AWS::Lambda::Function').some(([id]) => id.includes('PayloadHash'))).toBe(false);
  });

  test('one region: one origin, chosen without a failover group', () => {
    expect(distributionConfig(s.global).Origins).toHaveLength(1);
    t.hasResourceProperties('AWS::DynamoDB::GlobalTable', { Replicas: [Match.objectLike({ Region: 'eu-west-1' })] });
  });
});

describe('grants', () => {
  test('grantManageRules: item reads and writes on the rules table; grantQueryAnalytics: the workgroup, the table and the data', () => {
    const s = synthGateway(ONE_REGION, {
      extend: (stack, gw) => {
        const role = new iam.Role(stack, 'Operator', { assumedBy: new iam.AccountRootPrincipal() });
        gw.grantManageRules(role);
        gw.grantQueryAnalytics(role);
      },
    });
    const [[, policy]] = resourcesOf(s.global, 'AWS::IAM::Policy').filter(([id]) => id.startsWith('OperatorDefaultPolicy'));
    const statements = policy.Properties.PolicyDocument.Statement as Array<{ Action: string[]; Resource: unknown }>;
    const text = JSON.stringify(statements);
    expect(statements[0].Action).toEqual(expect.arrayContaining(['dynamodb:PutItem', 'dynamodb:DeleteItem', 'dynamodb:Query']));
    expect(JSON.stringify(statements[0].Resource)).toContain(':dynamodb:eu-west-1:123456789012:table/Gw-Gateway-rules');
    expect(text).toContain('athena:StartQueryExecution');
    expect(text).toContain(':workgroup/Gw-Gateway-analytics');
    expect(text).toContain(':table/gw_gateway_analytics/events');
    expect(text).toContain('/athena-results/*');
    expect(text).not.toContain('"Resource":"*"');
  });
});

describe('validation at synth time', () => {
  test('a bad rule fails synth with the engine\'s message', () => {
    const bad = GatewayRules.of(GatewayRule.file({ domain: 'dl.example.com', incomingPath: '/{unclosed', packageId: 'p' }));
    let error: unknown;
    try {
      synthGateway({ ...ONE_REGION, rules: bad });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ManifestError);
    expect((error as Error).message).toMatch(/^the rules given to ArtifactGateway: invalid manifest, 1 problem:\n {2}- rule 0 \(file-v1, dl\.example\.com\), field "incoming-path": "\/\{unclosed": .+; expected RFC 6570 URI template$/);
  });

  test('a manifest file is validated the same way; a missing or broken file says so', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-rules-'));
    try {
      const file = path.join(dir, 'manifest.json');
      fs.writeFileSync(file, JSON.stringify({ rules: [{ type: 'docker-v1', domain: 'cr.example.com', 'repository-name': 'a/b', registry: 'ghcr.io' }] }));
      expect(() => synthGateway({ ...ONE_REGION, rules: GatewayRules.fromManifestFile(file) })).toThrow(`${file}: invalid manifest, 1 problem:\n  - rule 0 (docker-v1, cr.example.com), field "package-id": is required; expected string (your package id, recorded in events)`);
      fs.writeFileSync(file, '{"rules": [');
      expect(() => synthGateway({ ...ONE_REGION, rules: GatewayRules.fromManifestFile(file) })).toThrow(/manifest\.json: invalid manifest, 1 problem:\n {2}- not valid JSON/);
      expect(() => synthGateway({ ...ONE_REGION, rules: GatewayRules.fromManifestFile(path.join(dir, 'nope.json')) })).toThrow(/cannot read the rules manifest .*nope\.json: no such file/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('rule warnings and rules for domains the gateway does not serve become synth warnings', () => {
    const s = synthGateway({
      ...ONE_REGION,
      rules: GatewayRules.fromManifest({ rules: [{ type: 'pixel-v1', domain: 'other.example.org', 'incoming-path': '/p.png', 'package-id': 'p', colour: 'red' }] }),
    });
    const warnings = Annotations.fromStack(s.stack).findWarning('*', Match.stringLikeRegexp('.*')).map((w) => String(w.entry.data));
    expect(warnings).toEqual(expect.arrayContaining([
      expect.stringMatching(/field "colour": unknown field, ignored/),
      expect.stringMatching(/rules for other\.example\.org are deployed but other\.example\.org is not in domains/),
    ]));
  });

  test.each([
    [{ regions: [] }, /regions must name at least one region/],
    [{ regions: ['eu-west-1', 'eu-west-1'] }, /region eu-west-1 is listed twice/],
    [{ regions: ['Europe'] }, /"Europe" is not a region name/],
    [{ domains: [] }, /domains must name at least one host/],
    [{ domains: ['dl.example.com:8443'] }, /has a port/],
    [{ domains: ['not a host'] }, /"not a host" is not a valid host name/],
  ])('props %j are refused', (props, message) => {
    expect(() => synthGateway({ ...ONE_REGION, ...props })).toThrow(message);
  });

  test('the construct\'s own stack must be in us-east-1', () => {
    expect(() => synthGateway(ONE_REGION, { stackRegion: 'eu-central-1' })).toThrow(/must be in a stack in us-east-1 .* but Gw is in eu-central-1/);
  });

  test('factories produce the manifest format the engine validates', () => {
    const app = new App({ outdir: tempOutdir(), context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new Stack(app, 'S', { env: { region: 'us-east-1' } });
    const gw = new ArtifactGateway(stack, 'G', {
      domains: ['dl.example.com', 'cr.example.com', 'py.example.com'],
      regions: ['us-east-1'],
      rules: GatewayRules.of(
        GatewayRule.dockerPattern({ domain: 'cr.example.com', pattern: 'acme/*', ruleId: 'acme', registry: 'ghcr.io', mode: DockerServeMode.REDIRECT }),
        GatewayRule.fileRegex({ domain: 'dl.example.com', incomingPath: '^/n/(?<f>.+)$', outgoingUrl: 'https://x.example.net/{f}', packageId: 'n' }),
        GatewayRule.python({ domain: 'py.example.com', packageName: 'rocket', fileName: 'rocket-1.0.tar.gz', version: '1.0', backendUrl: 'https://files.example.net/rocket-1.0.tar.gz', packageId: 'r', sha256: 'ab'.repeat(32), requiresPython: '>=3.9' }),
        GatewayRule.catchAll({ domain: 'dl.example.com', packageId: 'all', redirectTargetDomain: 'www.example.net' }),
        GatewayRule.pixel({ domain: 'dl.example.com', incomingPath: '/p.png' }),
        GatewayRule.fromManifestRule({ type: 'file-v1', domain: 'dl.example.com', 'incoming-path': '/beacon', 'outgoing-url': null, 'package-id': 'b' }),
      ),
    });
    expect(gw.rules.map((r) => r.type)).toEqual(['docker-v2', 'file-v2', 'python-v1', 'catch-all-v1', 'pixel-v1', 'file-v1']);
    expect(gw.rules[2]).toMatchObject({ 'hash-value': { type: 'sha256', hash: 'ab'.repeat(32) }, 'requires-python': '>=3.9' });
    expect(gw.rules[4]).toMatchObject({ 'package-id': null });
  });
});

