/**
 * The synthesized gateway with three regions, two domains and a hosted zone: what each stack
 * holds, and the behaviour the templates pin (one synth, shared by every test of this file).
 */
import { Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as route53 from 'aws-cdk-lib/aws-route53';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { glueColumns } from '../../lib';
import { resourcesOf, synthGateway, type Synthesized } from './helpers';

const REGIONS = ['us-east-1', 'eu-west-1', 'ap-southeast-2'];
const ALL_VIEWER_EXCEPT_HOST = 'b689b0a8-53d0-40ab-baf2-68738e2966ac';
const CACHING_DISABLED = '4135ea2d-6df8-44a3-9df3-4b5a84be39ad';

let s: Synthesized;
beforeAll(() => {
  s = synthGateway((stack) => ({
    regions: REGIONS,
    hostedZone: route53.HostedZone.fromHostedZoneAttributes(stack, 'Zone', { zoneName: 'example.com', hostedZoneId: 'Z0123456789EXAMPLE' }),
  }));
});

function distributionConfig(t: Template): Record<string, any> {
  const [[, d]] = resourcesOf(t, 'AWS::CloudFront::Distribution');
  return d.Properties.DistributionConfig;
}

describe('stacks and regions', () => {
  test('one regional stack per region, next to the distribution\'s stack, each in its region', () => {
    expect(Object.keys(s.gateway.regionalStacks)).toEqual(REGIONS);
    for (const r of REGIONS) expect(s.gateway.regionalStacks[r].region).toBe(r);
    expect(s.gateway.regionalStacks['eu-west-1'].node.scope).toBe(s.app);
  });

  test('regions -> replicas: the rules table lives in the first region with a replica in every region, PITR on, deletion protection on, retained', () => {
    const t = s.regional['us-east-1'];
    const [[, table]] = resourcesOf(t, 'AWS::DynamoDB::GlobalTable');
    expect(table.Properties.KeySchema).toEqual([{ AttributeName: 'domain', KeyType: 'HASH' }, { AttributeName: 'rule_id', KeyType: 'RANGE' }]);
    expect(table.Properties.AttributeDefinitions).toEqual(expect.arrayContaining([{ AttributeName: 'domain', AttributeType: 'S' }, { AttributeName: 'rule_id', AttributeType: 'S' }]));
    expect(table.Properties.Replicas.map((r: { Region: string }) => r.Region).sort()).toEqual([...REGIONS].sort());
    for (const replica of table.Properties.Replicas) {
      expect(replica.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
      expect(replica.DeletionProtectionEnabled).toBe(true);
    }
    t.hasResource('AWS::DynamoDB::GlobalTable', { DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
    for (const r of REGIONS.slice(1)) s.regional[r].resourceCountIs('AWS::DynamoDB::GlobalTable', 0);
  });

  test('the deploy-managed rules are written by a custom resource that reads them from an asset', () => {
    s.regional['us-east-1'].hasResourceProperties('Custom::GatewayDeployRules', {
      TableName: { Ref: Match.stringLikeRegexp('RulesTable') },
      RulesBucket: Match.anyValue(),
      RulesKey: Match.stringLikeRegexp('\\.json$'),
    });
  });

  test('function URLs: one per region, IAM auth (for origin access control), response streaming', () => {
    for (const r of REGIONS) {
      s.regional[r].resourceCountIs('AWS::Lambda::Url', 1);
      s.regional[r].hasResourceProperties('AWS::Lambda::Url', { AuthType: 'AWS_IAM', InvokeMode: 'RESPONSE_STREAM' });
      s.regional[r].hasResourceProperties('AWS::Lambda::Function', {
        FunctionName: `Gw-Gateway-${r}`,
        Runtime: 'nodejs24.x',
        Architectures: ['arm64'],
        Environment: { Variables: Match.objectLike({ GATEWAY_NAME: 'Gw-Gateway', RULES_TABLE_NAME: Match.anyValue(), EVENTS_STREAM_REGION: 'us-east-1', EVENTS_STREAM_NAME: Match.anyValue() }) },
      });
    }
  });

  test('IAM least privilege: the gateway reads its own region\'s replica, writes the events stream and reads or creates the day\'s salt, nothing more', () => {
    for (const r of REGIONS) {
      const t = s.regional[r];
      const [[fnId, fn]] = resourcesOf(t, 'AWS::Lambda::Function').filter(([, f]) => f.Properties.FunctionName === `Gw-Gateway-${r}`);
      const roleId = fn.Properties.Role['Fn::GetAtt'][0];
      const role = t.toJSON().Resources[roleId];
      expect(role.Properties.ManagedPolicyArns).toBeUndefined();
      expect(role.Properties.Policies).toBeUndefined();
      const policies = resourcesOf(t, 'AWS::IAM::Policy').filter(([, p]) => JSON.stringify(p.Properties.Roles) === JSON.stringify([{ Ref: roleId }]));
      const statements = policies.flatMap(([, p]) => p.Properties.PolicyDocument.Statement);
      expect(statements.map((st: { Action: string[] }) => st.Action)).toEqual([
        ['logs:CreateLogStream', 'logs:PutLogEvents'],
        ['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:BatchGetItem'],
        ['firehose:PutRecord', 'firehose:PutRecordBatch'],
        ['dynamodb:GetItem', 'dynamodb:PutItem'],
      ]);
      expect(JSON.stringify(statements[3].Resource)).toMatch(/SaltsTable/);
      expect(JSON.stringify(statements)).not.toContain('"*"');
      const tableArn = JSON.stringify(statements[1].Resource);
      expect(tableArn).toContain(`:dynamodb:${r}:`);
      expect(tableArn).toContain(':table/');
      expect(statements[0].Resource).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^GatewayLogs/), 'Arn'] });
      expect(fnId).toMatch(/^GatewayFunction/);
    }
  });
});

describe('distribution', () => {
  test('serves the domains over TLS 1.2+ with HTTP/2 and HTTP/3', () => {
    const d = distributionConfig(s.global);
    expect(d.Aliases).toEqual(['dl.example.com', 'cr.example.com']);
    expect(d.HttpVersion).toBe('http2and3');
    expect(d.ViewerCertificate).toMatchObject({ MinimumProtocolVersion: 'TLSv1.2_2021', SslSupportMethod: 'sni-only' });
    expect(d.DefaultCacheBehavior.ViewerProtocolPolicy).toBe('redirect-to-https');
  });

  test('one origin per region: the function URL domain, signed by a Lambda origin access control', () => {
    const d = distributionConfig(s.global);
    expect(d.Origins.map((o: { Id: string }) => o.Id)).toEqual(REGIONS.map((r) => `gateway-${r}`));
    for (const o of d.Origins) {
      expect(o.OriginAccessControlId).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/OriginAccessControl/), 'Id'] });
      expect(o.DomainName).toEqual({ 'Fn::Select': [2, { 'Fn::Split': ['/', expect.anything()] }] });
      expect(o.CustomOriginConfig).toMatchObject({ OriginProtocolPolicy: 'https-only', OriginSSLProtocols: ['TLSv1.2'] });
    }
    s.global.hasResourceProperties('AWS::CloudFront::OriginAccessControl', {
      OriginAccessControlConfig: { OriginAccessControlOriginType: 'lambda', SigningBehavior: 'always', SigningProtocol: 'sigv4' },
    });
  });

  test('both invoke permissions, for this distribution only: a Lambda permission in us-east-1, an API call in the other regions', () => {
    const sourceArn = { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':cloudfront::', { Ref: 'AWS::AccountId' }, ':distribution/', { Ref: Match.stringLikeRegexp('GatewayDistribution') }]] };
    s.global.hasResourceProperties('AWS::Lambda::Permission', { Action: 'lambda:InvokeFunctionUrl', Principal: 'cloudfront.amazonaws.com', FunctionUrlAuthType: 'AWS_IAM', SourceArn: sourceArn });
    s.global.hasResourceProperties('AWS::Lambda::Permission', { Action: 'lambda:InvokeFunction', Principal: 'cloudfront.amazonaws.com', InvokedViaFunctionUrl: true, SourceArn: sourceArn });
    s.global.resourceCountIs('AWS::Lambda::Permission', 2);
    const calls = resourcesOf(s.global, 'Custom::AWS').map(([, r]) => JSON.stringify(r.Properties.Create));
    expect(calls).toHaveLength(4);
    for (const region of ['eu-west-1', 'ap-southeast-2']) {
      const mine = calls.filter((c) => c.includes(`\\"region\\":\\"${region}\\"`));
      expect(mine).toHaveLength(2);
      expect(mine.some((c) => c.includes('lambda:InvokeFunctionUrl') && c.includes('FunctionUrlAuthType'))).toBe(true);
      expect(mine.some((c) => c.includes('\\"lambda:InvokeFunction\\"') && c.includes('InvokedViaFunctionUrl'))).toBe(true);
      for (const c of mine) {
        expect(c).toContain('addPermission');
        expect(c).toContain(`:function:Gw-Gateway-${region}`);
        expect(c).toContain(':distribution/');
      }
    }
    // The API calls may add and remove exactly those permissions on exactly those functions.
    const statements = resourcesOf(s.global, 'AWS::IAM::Policy').flatMap(([, p]) => p.Properties.PolicyDocument.Statement);
    const lambdaCalls = statements.filter((st: { Action: unknown }) => JSON.stringify(st.Action).includes('lambda:AddPermission'));
    expect(lambdaCalls).toHaveLength(4);
    for (const st of lambdaCalls) expect(JSON.stringify(st.Resource)).toMatch(/:function:Gw-Gateway-(eu-west-1|ap-southeast-2)/);
  });

  test('the viewer-request CloudFront Function runs on every behavior', () => {
    const d = distributionConfig(s.global);
    const fnRef = { 'Fn::GetAtt': [expect.stringMatching(/ViewerRequest/), 'FunctionARN'] };
    for (const b of [d.DefaultCacheBehavior, ...d.CacheBehaviors]) {
      expect(b.FunctionAssociations).toEqual([{ EventType: 'viewer-request', FunctionARN: fnRef }]);
    }
    const [[, fn]] = resourcesOf(s.global, 'AWS::CloudFront::Function');
    expect(fn.Properties.FunctionConfig.Runtime).toBe('cloudfront-js-2.0');
    expect(fn.Properties.FunctionCode).toContain("import cf from 'cloudfront';");
    expect(fn.Properties.FunctionCode).toContain('"origins":["gateway-us-east-1","gateway-eu-west-1","gateway-ap-southeast-2"]');
  });

  test('cache policy: nothing cached unless the gateway says so (redirects are no-store), keyed by domain, Accept and the private Authorization', () => {
    const d = distributionConfig(s.global);
    const policyId = d.DefaultCacheBehavior.CachePolicyId.Ref;
    const policy = s.global.toJSON().Resources[policyId].Properties.CachePolicyConfig;
    expect(policy).toMatchObject({ MinTTL: 0, DefaultTTL: 0, MaxTTL: 86400 });
    const key = policy.ParametersInCacheKeyAndForwardedToOrigin;
    expect(key.HeadersConfig).toEqual({ HeaderBehavior: 'whitelist', Headers: ['accept', 'x-forwarded-host', 'x-gateway-authorization'] });
    expect(key.QueryStringsConfig).toEqual({ QueryStringBehavior: 'all' });
    expect(key.CookiesConfig).toEqual({ CookieBehavior: 'none' });
  });

  test('origin request policy: every viewer header (incl. the edge\'s X-Forwarded-Host and private headers) except Host, plus CloudFront viewer headers', () => {
    const d = distributionConfig(s.global);
    expect(d.DefaultCacheBehavior.OriginRequestPolicyId).toBe(ALL_VIEWER_EXCEPT_HOST);
    expect(d.DefaultCacheBehavior.AllowedMethods.sort()).toEqual(['DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT']);
  });

  test('docker blobs: a behavior that caches what the registry marks cacheable, per credentials, and sends upstreams nothing about the viewer', () => {
    const d = distributionConfig(s.global);
    const blobs = d.CacheBehaviors.find((b: { PathPattern: string }) => b.PathPattern === '/v2/*/blobs/*');
    const cache = s.global.toJSON().Resources[blobs.CachePolicyId.Ref].Properties.CachePolicyConfig;
    expect(cache.ParametersInCacheKeyAndForwardedToOrigin.HeadersConfig.Headers).toEqual(['authorization', 'x-gateway-authorization', 'x-forwarded-host']);
    expect(cache).toMatchObject({ MinTTL: 0, DefaultTTL: 0, MaxTTL: 31536000 });
    const origin = s.global.toJSON().Resources[blobs.OriginRequestPolicyId.Ref].Properties.OriginRequestPolicyConfig;
    expect(origin.HeadersConfig.Headers).toEqual(['user-agent', 'range', 'if-none-match', 'if-modified-since', 'docker-distribution-api-version', 'dnt', 'sec-gpc', 'x-gateway-raw-path']);
    expect(origin.CookiesConfig).toEqual({ CookieBehavior: 'none' });
    expect(JSON.stringify(origin)).not.toMatch(/cloudfront-viewer/i);
  });

  test('telemetry paths get a behavior whose Lambda@Edge adds the body hash origin access control needs', () => {
    const d = distributionConfig(s.global);
    const events = d.CacheBehaviors.find((b: { PathPattern: string }) => b.PathPattern === '/events');
    expect(events.CachePolicyId).toBe(CACHING_DISABLED);
    expect(events.OriginRequestPolicyId).toBe(ALL_VIEWER_EXCEPT_HOST);
    expect(events.LambdaFunctionAssociations).toEqual([{ EventType: 'origin-request', IncludeBody: true, LambdaFunctionARN: { Ref: expect.stringMatching(/PayloadHashCurrentVersion/) } }]);
    s.global.hasResourceProperties('AWS::Lambda::Function', { Runtime: 'nodejs22.x', FunctionName: 'Gw-Gateway-payload-hash' });
    const [[, role]] = resourcesOf(s.global, 'AWS::IAM::Role').filter(([id]) => id.includes('PayloadHashRole'));
    expect(JSON.stringify(role.Properties.AssumeRolePolicyDocument)).toContain('edgelambda.amazonaws.com');
    // The body behavior comes first: CloudFront matches behaviors in order.
    expect(d.CacheBehaviors.map((b: { PathPattern: string }) => b.PathPattern)).toEqual(['/events', '/v2/*/blobs/*']);
  });

  test('no access logs (they would store viewer addresses); the acknowledgement says so', () => {
    expect(distributionConfig(s.global).Logging).toBeUndefined();
  });
});

describe('certificate with a hosted zone', () => {
  test('is created in us-east-1 for every domain and validated through the zone', () => {
    s.global.hasResourceProperties('AWS::CertificateManager::Certificate', {
      DomainName: 'dl.example.com',
      SubjectAlternativeNames: ['cr.example.com'],
      ValidationMethod: 'DNS',
      DomainValidationOptions: [{ DomainName: 'dl.example.com', HostedZoneId: 'Z0123456789EXAMPLE' }, { DomainName: 'cr.example.com', HostedZoneId: 'Z0123456789EXAMPLE' }],
    });
    expect(distributionConfig(s.global).ViewerCertificate.AcmCertificateArn).toEqual({ Ref: expect.stringMatching(/GatewayCertificate/) });
    expect(s.gateway.certificateStack).toBeUndefined();
  });

  test('the domains get A and AAAA alias records pointing at the distribution', () => {
    for (const type of ['A', 'AAAA']) {
      for (const name of ['dl.example.com.', 'cr.example.com.']) {
        s.global.hasResourceProperties('AWS::Route53::RecordSet', {
          Name: name, Type: type, HostedZoneId: 'Z0123456789EXAMPLE',
          AliasTarget: { DNSName: { 'Fn::GetAtt': [Match.stringLikeRegexp('GatewayDistribution'), 'DomainName'] }, HostedZoneId: Match.anyValue() },
        });
      }
    }
  });
});

describe('analytics', () => {
  test('bucket: encrypted, private, TLS only, retained; query results expire', () => {
    const t = s.regional['us-east-1'];
    t.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
      PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
      LifecycleConfiguration: { Rules: Match.arrayWith([Match.objectLike({ Prefix: 'athena-results/', ExpirationInDays: 7 })]) },
    });
    t.hasResource('AWS::S3::Bucket', { DeletionPolicy: 'Retain' });
    t.hasResourceProperties('AWS::S3::BucketPolicy', { PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) } });
  });

  test('Firehose converts JSON events to Parquet under events/dt=YYYY-MM-DD/ using the Glue table', () => {
    const t = s.regional['us-east-1'];
    const [[, stream]] = resourcesOf(t, 'AWS::KinesisFirehose::DeliveryStream');
    const dest = stream.Properties.ExtendedS3DestinationConfiguration;
    // Partitioned by the event's own day (dynamic partitioning with jq on `time`), not by arrival.
    expect(dest.Prefix).toBe('events/dt=!{partitionKeyFromQuery:dt}/');
    expect(dest.ErrorOutputPrefix).toBe('errors/!{firehose:error-output-type}/dt=!{timestamp:yyyy-MM-dd}/');
    expect(dest.DynamicPartitioningConfiguration).toMatchObject({ Enabled: true });
    expect(dest.ProcessingConfiguration).toEqual({
      Enabled: true,
      Processors: [{ Type: 'MetadataExtraction', Parameters: expect.arrayContaining([
        { ParameterName: 'MetadataExtractionQuery', ParameterValue: '{"dt":.time[0:10]}' },
        { ParameterName: 'JsonParsingEngine', ParameterValue: 'JQ-1.6' },
      ]) }],
    });
    expect(dest.BufferingHints).toEqual({ IntervalInSeconds: 300, SizeInMBs: 64 });
    expect(dest.DataFormatConversionConfiguration).toMatchObject({
      Enabled: true,
      InputFormatConfiguration: { Deserializer: { OpenXJsonSerDe: {} } },
      OutputFormatConfiguration: { Serializer: { ParquetSerDe: {} } },
      SchemaConfiguration: { DatabaseName: 'gw_gateway_analytics', TableName: { Ref: expect.stringMatching(/EventsTable/) } },
    });
    expect(stream.Properties.DeliveryStreamEncryptionConfigurationInput).toEqual({ KeyType: 'AWS_OWNED_CMK' });
    for (const r of REGIONS.slice(1)) s.regional[r].resourceCountIs('AWS::KinesisFirehose::DeliveryStream', 0);
  });

  test('the Glue table\'s columns come from the event schema; dt is projected (no crawler)', () => {
    const [[, table]] = resourcesOf(s.regional['us-east-1'], 'AWS::Glue::Table');
    const input = table.Properties.TableInput;
    expect(input.Name).toBe('events');
    expect(input.StorageDescriptor.Columns).toEqual(glueColumns().map((c) => ({ Name: c.name, Type: c.type, Comment: c.comment })));
    expect(input.PartitionKeys).toEqual([expect.objectContaining({ Name: 'dt', Type: 'string' })]);
    expect(input.Parameters).toMatchObject({ 'projection.enabled': 'true', 'projection.dt.type': 'date', 'projection.dt.format': 'yyyy-MM-dd', 'projection.dt.range': '2025-01-01,NOW' });
    expect(JSON.stringify(input.Parameters['storage.location.template'])).toContain('/events/dt=${dt}/');
    expect(input.StorageDescriptor.SerdeInfo.SerializationLibrary).toBe('org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe');
  });

  test('an Athena workgroup that enforces its encrypted result location', () => {
    s.regional['us-east-1'].hasResourceProperties('AWS::Athena::WorkGroup', {
      Name: 'Gw-Gateway-analytics',
      WorkGroupConfiguration: {
        EnforceWorkGroupConfiguration: true,
        ResultConfiguration: { EncryptionConfiguration: { EncryptionOption: 'SSE_S3' }, OutputLocation: Match.anyValue() },
      },
    });
    expect(s.gateway.analyticsWorkgroupName).toBe('Gw-Gateway-analytics');
    expect(s.gateway.analyticsDatabaseName).toBe('gw_gateway_analytics');
  });
});

describe('visitor-id salt table', () => {
  /** Every IAM statement of the regional stacks that names the salt table, with the role it belongs to. */
  function saltStatements(): Array<{ region: string; role: string; actions: string[] }> {
    return REGIONS.flatMap((region) => resourcesOf(s.regional[region], 'AWS::IAM::Policy').flatMap(([, p]) =>
      (p.Properties.PolicyDocument.Statement as Array<{ Action: string | string[]; Resource: unknown }>)
        .filter((st) => JSON.stringify(st.Resource).includes('SaltsTable'))
        .map((st) => ({ region, role: p.Properties.Roles[0].Ref as string, actions: [st.Action].flat() }))));
  }

  test('one single-region table in the primary region: key day, TTL expires_at as a backstop, no point-in-time recovery, destroyed with the gateway', () => {
    const t = s.regional['us-east-1'];
    const [[id, table], ...more] = resourcesOf(t, 'AWS::DynamoDB::Table');
    expect(more).toEqual([]);
    expect(id).toMatch(/^SaltsTable/);
    expect(table.Properties).toMatchObject({
      TableName: 'Gw-Gateway-salts',
      KeySchema: [{ AttributeName: 'day', KeyType: 'HASH' }],
      AttributeDefinitions: [{ AttributeName: 'day', AttributeType: 'S' }],
      TimeToLiveSpecification: { AttributeName: 'expires_at', Enabled: true },
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: false },
      BillingMode: 'PAY_PER_REQUEST',
    });
    expect(table.Properties.Replicas).toBeUndefined();
    t.hasResource('AWS::DynamoDB::Table', { DeletionPolicy: 'Delete', UpdateReplacePolicy: 'Delete' });
    for (const r of REGIONS.slice(1)) s.regional[r].resourceCountIs('AWS::DynamoDB::Table', 0);
    expect(s.gateway.saltTable).toBeDefined();
  });

  test('every regional gateway function is told the table and its region', () => {
    for (const r of REGIONS) {
      const [[, fn]] = resourcesOf(s.regional[r], 'AWS::Lambda::Function').filter(([, f]) => f.Properties.FunctionName === `Gw-Gateway-${r}`);
      const env = fn.Properties.Environment.Variables;
      expect(env.SALT_TABLE_REGION).toBe('us-east-1');
      // The table itself: a Ref in its own stack, the primary stack's output elsewhere.
      expect(JSON.stringify(env.SALT_TABLE_NAME)).toMatch(r === 'us-east-1' ? /^\{"Ref":"SaltsTable/ : /"Region":"us-east-1".*RefSaltsTable/);
    }
  });

  test('on the salt table, gateways may only GetItem and PutItem, the maintenance function only PutItem, Scan and DeleteItem', () => {
    const statements = saltStatements();
    const gateways = statements.filter((st) => st.role.startsWith('GatewayRole'));
    expect(gateways.map((st) => st.region)).toEqual(REGIONS);
    for (const st of gateways) expect(st.actions).toEqual(['dynamodb:GetItem', 'dynamodb:PutItem']);
    const others = statements.filter((st) => !st.role.startsWith('GatewayRole'));
    expect(others).toEqual([{ region: 'us-east-1', role: expect.stringMatching(/^SaltsMaintenanceRole/), actions: ['dynamodb:PutItem', 'dynamodb:Scan', 'dynamodb:DeleteItem'] }]);
  });

  test('the maintenance function runs hourly on a schedule, logs to its own group with retention, and its role reaches the salt table only', () => {
    const t = s.regional['us-east-1'];
    const [[fnId, fn]] = resourcesOf(t, 'AWS::Lambda::Function').filter(([id]) => id.startsWith('SaltsMaintenanceFunction'));
    expect(fn.Properties).toMatchObject({ Runtime: 'nodejs24.x', Environment: { Variables: { SALT_TABLE_NAME: { Ref: expect.stringMatching(/^SaltsTable/) } } } });
    const [[, rule], ...moreRules] = resourcesOf(t, 'AWS::Events::Rule');
    expect(moreRules).toEqual([]);
    expect(rule.Properties).toMatchObject({ ScheduleExpression: 'rate(1 hour)', State: 'ENABLED', Targets: [{ Arn: { 'Fn::GetAtt': [fnId, 'Arn'] } }] });
    t.hasResourceProperties('AWS::Lambda::Permission', { Action: 'lambda:InvokeFunction', Principal: 'events.amazonaws.com', FunctionName: { 'Fn::GetAtt': [fnId, 'Arn'] } });
    const logGroupId = fn.Properties.LoggingConfig.LogGroup.Ref;
    expect(t.toJSON().Resources[logGroupId].Properties.RetentionInDays).toBe(30);

    const roleId = fn.Properties.Role['Fn::GetAtt'][0];
    const role = t.toJSON().Resources[roleId];
    expect(role.Properties.ManagedPolicyArns).toBeUndefined();
    const statements = resourcesOf(t, 'AWS::IAM::Policy').filter(([, p]) => JSON.stringify(p.Properties.Roles) === JSON.stringify([{ Ref: roleId }]))
      .flatMap(([, p]) => p.Properties.PolicyDocument.Statement);
    expect(statements.map((st: { Resource: unknown }) => st.Resource)).toEqual([
      { 'Fn::GetAtt': [logGroupId, 'Arn'] },
      { 'Fn::GetAtt': [expect.stringMatching(/^SaltsTable/), 'Arn'] },
    ]);
  });
});

describe('monitoring', () => {
  test('alarms per region (error rate, latency, throttles, stale rules, dropped events) and for event delivery', () => {
    for (const r of REGIONS) {
      for (const name of ['ErrorRate', 'Latency', 'Throttles', 'StaleRules', 'DroppedEvents']) {
        s.regional[r].hasResourceProperties('AWS::CloudWatch::Alarm', { AlarmName: `Gw-Gateway-${r}-${name}` });
      }
    }
    s.regional['us-east-1'].hasResourceProperties('AWS::CloudWatch::Alarm', { AlarmName: 'Gw-Gateway-us-east-1-EventDelivery', MetricName: 'DeliveryToS3.DataFreshness', Threshold: 900 });
    s.regional['eu-west-1'].hasResourceProperties('AWS::CloudWatch::Alarm', { AlarmName: 'Gw-Gateway-eu-west-1-StaleRules', Namespace: 'ArtifactGateway', MetricName: 'RulesStale', Dimensions: Match.arrayWith([{ Name: 'gateway', Value: 'Gw-Gateway' }]) });
    s.regional['us-east-1'].hasResourceProperties('AWS::CloudWatch::Alarm', { AlarmName: 'Gw-Gateway-us-east-1-SaltMaintenance', MetricName: 'Errors', Namespace: 'AWS/Lambda', Period: 3600, DatapointsToAlarm: 2 });
    expect(s.gateway.alarms).toHaveLength(REGIONS.length * 5 + 2);
    s.global.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
  });

  test('metric methods name the right namespace, dimensions and region', () => {
    const m = s.gateway.metricDownloads('ap-southeast-2');
    expect(m).toMatchObject({ namespace: 'ArtifactGateway', metricName: 'Downloads', region: 'ap-southeast-2', dimensions: { service: 'artifact-gateway', gateway: 'Gw-Gateway' } });
    expect(s.gateway.metricRulesStale().region).toBe('us-east-1');
    expect(s.gateway.metricThrottles('eu-west-1')).toMatchObject({ namespace: 'AWS/Lambda', metricName: 'Throttles', region: 'eu-west-1' });
    expect(s.gateway.metricCloudFront5xxErrorRate()).toMatchObject({ namespace: 'AWS/CloudFront', metricName: '5xxErrorRate', region: 'us-east-1' });
    expect(() => s.gateway.metricErrors('sa-east-1')).toThrow(/no gateway in sa-east-1/);
  });
});

describe('cdk-nag AwsSolutions', () => {
  test('no finding is left unacknowledged, and every acknowledgement gives a specific reason', () => {
    const report = new AwsSolutionsChecks(s.app).validateScope(s.app);
    expect(report.violations.map((v) => `${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath).join(', ')}`)).toEqual([]);
    const reasons: string[] = [];
    const visit = (c: IConstruct) => {
      for (const m of c.node.metadata) if (m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY) reasons.push(...Object.values(m.data as Record<string, string>));
      c.node.children.forEach(visit);
    };
    visit(s.app);
    expect(reasons.length).toBeGreaterThan(10);
    for (const r of reasons) expect(r.length).toBeGreaterThan(40);
  });
});

