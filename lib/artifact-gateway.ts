/**
 * ArtifactGateway: the whole deployment of the gateway on your own domains.
 *
 *   viewer ─▶ CloudFront (your domains, TLS 1.2+, HTTP/2 and 3)
 *               │ viewer-request CloudFront Function: X-Forwarded-Host, private Authorization,
 *               │   nearest region + failover, docker blobs of streaming registries straight to them
 *               ▼
 *             gateway function URL (IAM auth via origin access control, response streaming),
 *             one per region, each reading its replica of the global rules table
 *               ▼
 *             events ─▶ Firehose ─▶ S3 (Parquet, dt=) ─▶ Glue table ─▶ Athena workgroup
 *             visitor ids ◀─ daily salt table (primary region; an hourly function rotates it)
 *
 * The construct lives in a stack in us-east-1 (CloudFront's certificate and Lambda@Edge region)
 * that has `crossRegionReferences: true`; it adds one stack per gateway region next to it.
 * See docs/ARCHITECTURE.md and docs/DEPLOYING.md.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { Annotations, Aws, CfnOutput, CfnResource, CrossStackReferences, Duration, Fn, Names, ReferenceStrength, RemovalPolicy, Stack, Stage, Token } from 'aws-cdk-lib';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as route53 from 'aws-cdk-lib/aws-route53';
import * as targets from 'aws-cdk-lib/aws-route53-targets';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { normaliseDomain, type Rule } from '../lambda/core/schema';
import { formatProblem } from '../lambda/core/validate';
import { PRIVATE_AUTHORIZATION_HEADER, RAW_PATH_HEADER } from '../lambda/aws/function-url';
import { METRIC } from '../lambda/aws/metric-names';
import { MAX_FUNCTION_BYTES, renderViewerRequestFunction } from '../lambda/edge/viewer-request';
import { GatewayAnalytics } from './analytics';
import { bundlingProps, EDGE_RUNTIME, handlerEntry } from './bundling';
import { CertificateIssued, CertificateRequest } from './certificate';
import { buildEdgeConfig } from './edge-config';
import { acknowledge, acknowledgeAwsCustomResourceSingleton, finding } from './nag';
import { RegionalGateway } from './regional-gateway';
import { RulesTable } from './rules-table';
import { SaltTable } from './salt-table';
import type { GatewayRules } from './rules';

export interface ArtifactGatewayProps {
  /** Public host names the gateway serves, e.g. `['dl.example.com', 'cr.example.com']`. Every rule's domain should be one of them. */
  readonly domains: string[];
  /** The rules deployed with the gateway (`GatewayRules.of(...)` or `GatewayRules.fromManifestFile(...)`); validated at synth time. */
  readonly rules: GatewayRules;
  /**
   * Regions that run a gateway function, e.g. `['us-east-1', 'eu-west-1']`. The first is the
   * primary region: it holds the rules table (replicated to the others) and the analytics.
   */
  readonly regions: string[];
  /** A certificate in us-east-1 covering every domain. @default - one is created (see `hostedZone`) */
  readonly certificate?: acm.ICertificate;
  /**
   * The hosted zone of the domains: the certificate is validated through it and alias records
   * point the domains at the distribution. Without it (and without `certificate`), the DNS
   * validation records are printed as outputs of a separate certificate stack, and you create
   * them and the domains' CNAMEs yourself. @default - no zone
   */
  readonly hostedZone?: route53.IHostedZone;
  /**
   * Upstream registries that answer blob requests with the bytes themselves (a plain
   * distribution registry, most self-hosted ones), written as rules write them. CloudFront
   * fetches blobs of images served from them directly, so layer bytes never pass through Lambda.
   * @default - every registry named by a docker rule except those known to redirect blob
   * requests to a CDN (Docker Hub, GHCR, ECR, GCR/Artifact Registry, Quay, MCR, GitLab, NVCR, registry.k8s.io)
   */
  readonly streamingRegistries?: string[];
  /**
   * CloudFront path patterns of requests that carry a body (telemetry endpoints). A Lambda@Edge
   * function adds the body hash that origin access control needs for POST and PUT.
   * @default - the incoming paths of the telemetry rules
   */
  readonly bodyPathPatterns?: string[];
  /**
   * How long CloudFront may serve redirects and other download answers from its cache. Cached
   * answers are not seen, so not counted, by the gateway. @default - never cached
   */
  readonly cacheDownloads?: Duration;
  /** Longest time CloudFront keeps answers that say they are cacheable (index pages, packuments). @default Duration.days(1) */
  readonly maxCacheTtl?: Duration;
  /** Record download events in S3/Athena. @default true */
  readonly analytics?: boolean;
  /** How long event data is kept in S3. @default - kept until you delete it */
  readonly analyticsRetention?: Duration;
  /** Firehose buffering time (larger: fewer, bigger Parquet files). @default Duration.minutes(5) */
  readonly analyticsBufferInterval?: Duration;
  /** What happens to the rules table and the analytics bucket when the gateway is removed. @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
  /** Protect the rules table against deletion. @default true */
  readonly rulesTableDeletionProtection?: boolean;
  /** Gateway function memory (MB). @default 512 */
  readonly memorySize?: number;
  /** Gateway function timeout (proxied requests wait for their upstream). @default Duration.seconds(60) */
  readonly timeout?: Duration;
  /** Retention of the functions' logs (they also hold the events when analytics are off). @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** CloudFront price class. @default cloudfront.PriceClass.PRICE_CLASS_ALL */
  readonly priceClass?: cloudfront.PriceClass;
  /** ARN of a WAF web ACL (global scope) to attach to the distribution. @default - none */
  readonly webAclArn?: string;
}

/** Origin statuses that make CloudFront try the next region (what an origin group allows for failover). */
const FAILOVER_STATUS_CODES = [500, 502, 503, 504];
const REGION_FORMAT = /^[a-z]{2}(-[a-z]+)+-\d+$/;
const ANALYTICS_FIRST_DAY = '2025-01-01';

interface RegionalParts {
  readonly region: string;
  readonly stack: Stack;
  readonly gateway: RegionalGateway;
  readonly originId: string;
}

export class ArtifactGateway extends Construct {
  /** The CloudFront distribution on the gateway domains. */
  readonly distribution: cloudfront.IDistribution;
  /** The distribution's own domain name (target of your CNAME or alias records). */
  readonly distributionDomainName: string;
  /** The global rules table (in the primary region, replicated to every gateway region). */
  readonly rulesTable: dynamodb.ITableV2;
  /** Analytics bucket (Parquet events under `events/`, Athena results under `athena-results/`); undefined without analytics. */
  readonly analyticsBucket?: s3.IBucket;
  /** Glue database of the `events` table; undefined without analytics. */
  readonly analyticsDatabaseName?: string;
  /** Athena workgroup for analytics queries; undefined without analytics. */
  readonly analyticsWorkgroupName?: string;
  /** The visitor-id salt table (primary region, one item per UTC day, deleted within 48 hours); undefined without analytics. */
  readonly saltTable?: dynamodb.ITable;
  /** The regional gateway functions, by region. */
  readonly gatewayFunctions: Readonly<Record<string, lambda.IFunction>>;
  /** The stacks this construct added, one per region (the primary region's also holds the table and analytics). */
  readonly regionalStacks: Readonly<Record<string, Stack>>;
  /** Without a hosted zone or certificate: the stack that requests the certificate and prints its DNS validation records. */
  readonly certificateStack?: Stack;
  /** Alarms: error rate, latency, throttles, stale rules and dropped events per region; Firehose delivery and salt maintenance. */
  readonly alarms: cloudwatch.IAlarm[];
  readonly dashboard: cloudwatch.Dashboard;
  /** The validated rules deployed with the gateway. */
  readonly rules: readonly Rule[];
  /** Name that tells this gateway's metrics apart (the `gateway` dimension). */
  readonly gatewayName: string;

  private readonly primaryRegion: string;
  private readonly regional: RegionalParts[];
  private readonly table: RulesTable;
  private readonly analytics?: GatewayAnalytics;
  private readonly salts?: SaltTable;
  private readonly cfnDistribution: cloudfront.CfnDistribution;

  constructor(scope: Construct, id: string, props: ArtifactGatewayProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const regions = validateRegions(props.regions);
    const domains = validateDomains(props.domains);
    if (stack.region !== 'us-east-1') {
      throw new Error(`ArtifactGateway must be in a stack in us-east-1 (CloudFront certificates and Lambda@Edge live there), but ${stack.stackName} is in ${stack.region}; the gateway regions may be anywhere (regions: [...])`);
    }
    const resolved = props.rules.resolve();
    this.rules = resolved.rules;
    for (const w of resolved.warnings) Annotations.of(this).addWarningV2('artifact-gateway:rule', `${resolved.source}: ${formatProblem(w)}`);
    const served = new Set(domains);
    for (const d of new Set(this.rules.map((r) => r.domain.toLowerCase()))) {
      if (!served.has(d)) Annotations.of(this).addWarningV2('artifact-gateway:unserved-domain', `rules for ${d} are deployed but ${d} is not in domains, so no request reaches them`);
    }

    this.gatewayName = Token.isUnresolved(stack.stackName) ? Names.uniqueResourceName(this, { maxLength: 48 }) : `${stack.stackName}-${id}`.slice(0, 48);
    const rulesFile = writeRulesFile(this, this.rules);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    const logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;
    this.primaryRegion = regions[0];

    // One stack per region, next to this one.
    const stage = Stage.of(this) ?? this.node.root;
    const stacks: Record<string, Stack> = {};
    for (const region of regions) {
      stacks[region] = new Stack(stage as Construct, `${stack.node.id}-${id}-${region}`, {
        env: { account: Token.isUnresolved(stack.account) ? undefined : stack.account, region },
        // Lets the regional stacks name each other's resources; values still travel as weak references (Fn::GetStackOutput).
        crossRegionReferences: true,
        description: `artifact-gateway ${this.gatewayName}: gateway function in ${region}${region === regions[0] ? ', rules table, analytics and salt table' : ''}`,
      });
      // Values cross stacks as outputs read with Fn::GetStackOutput (also across regions): no export
      // locks between the stacks, no reader/writer custom resources. See weakly() for the other direction.
      CrossStackReferences.of(stacks[region]).consume(ReferenceStrength.WEAK);
    }
    this.regionalStacks = stacks;
    const primary = stacks[this.primaryRegion];
    this.table = new RulesTable(primary, 'Rules', {
      tableName: `${this.gatewayName}-rules`.replace(/[^A-Za-z0-9_.-]/g, '-'),
      replicaRegions: regions.slice(1),
      rulesFile,
      removalPolicy,
      deletionProtection: props.rulesTableDeletionProtection ?? true,
      logRetention,
    });
    this.rulesTable = this.table.table;
    if (props.analytics ?? true) {
      this.analytics = new GatewayAnalytics(primary, 'Analytics', {
        databaseName: `${this.gatewayName.toLowerCase().replace(/[^a-z0-9]+/g, '_')}_analytics`,
        workgroupName: `${this.gatewayName.replace(/[^A-Za-z0-9._-]+/g, '-')}-analytics`,
        streamName: `${this.gatewayName.replace(/[^A-Za-z0-9._-]+/g, '-')}-events`,
        removalPolicy,
        retention: props.analyticsRetention,
        bufferInterval: props.analyticsBufferInterval ?? Duration.minutes(5),
        firstDay: ANALYTICS_FIRST_DAY,
      });
      this.analyticsBucket = this.analytics.bucket;
      this.analyticsDatabaseName = this.analytics.databaseName;
      this.analyticsWorkgroupName = this.analytics.workgroupName;
      this.salts = new SaltTable(primary, 'Salts', {
        tableName: `${this.gatewayName}-salts`.replace(/[^A-Za-z0-9_.-]/g, '-'),
        gatewayName: this.gatewayName,
        logRetention,
      });
      this.saltTable = this.salts.table;
    }
    const stream = this.analytics?.deliveryStream;
    const salts = this.salts?.table;
    this.regional = regions.map((region) => {
      const gateway = new RegionalGateway(stacks[region], 'Gateway', {
        gatewayName: this.gatewayName,
        rulesFile,
        rulesTableName: this.table.table.tableName,
        eventsStream: stream && { name: stream.deliveryStreamName, arn: stream.deliveryStreamArn, region: this.primaryRegion },
        saltTable: salts && { name: salts.tableName, arn: salts.tableArn, region: this.primaryRegion },
        cacheDownloadsSeconds: props.cacheDownloads ? props.cacheDownloads.toSeconds() : null,
        memorySize: props.memorySize ?? 512,
        timeout: props.timeout ?? Duration.seconds(60),
        logRetention,
      });
      return { region, stack: stacks[region], gateway, originId: `gateway-${region}` };
    });
    this.gatewayFunctions = Object.fromEntries(this.regional.map((r) => [r.region, r.gateway.function]));

    // The edge.
    const certificate = this.certificateFor(domains, props);
    this.certificateStack = certificate.stack;
    const viewerRequest = this.viewerRequestFunction(props.streamingRegistries ?? null);
    const oac = new cloudfront.CfnOriginAccessControl(this, 'OriginAccessControl', {
      originAccessControlConfig: {
        name: `${this.gatewayName}-gateway`.slice(0, 64),
        description: 'Signs CloudFront requests to the gateway function URLs',
        originAccessControlOriginType: 'lambda',
        signingBehavior: 'always',
        signingProtocol: 'sigv4',
      },
    });
    const gatewayCachePolicy = new cloudfront.CachePolicy(this, 'GatewayCachePolicy', {
      comment: 'artifact-gateway: only what the gateway marks cacheable (never redirects, downloads); keyed by domain, Accept, credentials',
      minTtl: Duration.seconds(0),
      defaultTtl: Duration.seconds(0),
      maxTtl: props.maxCacheTtl ?? Duration.days(1),
      headerBehavior: cloudfront.CacheHeaderBehavior.allowList('accept', 'x-forwarded-host', PRIVATE_AUTHORIZATION_HEADER),
      queryStringBehavior: cloudfront.CacheQueryStringBehavior.all(),
      cookieBehavior: cloudfront.CacheCookieBehavior.none(),
      enableAcceptEncodingGzip: true,
      enableAcceptEncodingBrotli: true,
    });
    const blobCachePolicy = new cloudfront.CachePolicy(this, 'BlobCachePolicy', {
      comment: 'artifact-gateway: docker blobs (content-addressed), per domain and credentials',
      // Only what the registry marks cacheable (blob bytes are; redirects to signed CDN URLs are not).
      minTtl: Duration.seconds(0),
      defaultTtl: Duration.seconds(0),
      maxTtl: Duration.days(365),
      headerBehavior: cloudfront.CacheHeaderBehavior.allowList('authorization', PRIVATE_AUTHORIZATION_HEADER, 'x-forwarded-host'),
      queryStringBehavior: cloudfront.CacheQueryStringBehavior.all(),
      cookieBehavior: cloudfront.CacheCookieBehavior.none(),
    });
    // Blob requests may go straight to an upstream registry: it gets what a registry needs, nothing about the viewer.
    const blobOriginRequestPolicy = new cloudfront.OriginRequestPolicy(this, 'BlobOriginRequestPolicy', {
      comment: 'artifact-gateway: docker blobs (no viewer address, location or cookies)',
      // DNT and Sec-GPC: blob requests that reach the gateway are recorded, unless the viewer opted out.
      headerBehavior: cloudfront.OriginRequestHeaderBehavior.allowList('user-agent', 'range', 'if-none-match', 'if-modified-since', 'docker-distribution-api-version', 'dnt', 'sec-gpc', RAW_PATH_HEADER),
      queryStringBehavior: cloudfront.OriginRequestQueryStringBehavior.all(),
      cookieBehavior: cloudfront.OriginRequestCookieBehavior.none(),
    });
    const viewerOriginRequestPolicy = cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER;
    const allMethods = ['GET', 'HEAD', 'OPTIONS', 'PUT', 'PATCH', 'POST', 'DELETE'];
    const functionAssociations = [{ eventType: 'viewer-request', functionArn: viewerRequest.functionArn }];
    const behavior = (cachePolicyId: string, originRequestPolicyId: string, compress: boolean) => ({
      targetOriginId: this.regional[0].originId,
      viewerProtocolPolicy: 'redirect-to-https',
      allowedMethods: allMethods,
      cachedMethods: ['GET', 'HEAD'],
      cachePolicyId,
      originRequestPolicyId,
      compress,
      functionAssociations,
    });
    const bodyPatterns = this.bodyPatterns(props.bodyPathPatterns);
    const payloadHash = bodyPatterns.length ? this.payloadHashFunction() : undefined;
    const cacheBehaviors = [
      ...bodyPatterns.map((pathPattern) => ({
        ...behavior(cloudfront.CachePolicy.CACHING_DISABLED.cachePolicyId, viewerOriginRequestPolicy.originRequestPolicyId, false),
        pathPattern,
        lambdaFunctionAssociations: [{ eventType: 'origin-request', lambdaFunctionArn: payloadHash!.currentVersion.functionArn, includeBody: true }],
      })),
      { ...behavior(blobCachePolicy.cachePolicyId, blobOriginRequestPolicy.originRequestPolicyId, false), pathPattern: '/v2/*/blobs/*' },
    ];
    if (cacheBehaviors.length > 25) throw new Error(`ArtifactGateway: ${bodyPatterns.length} body path patterns exceed CloudFront's 25 cache behaviors; give fewer, broader bodyPathPatterns`);
    this.cfnDistribution = new cloudfront.CfnDistribution(this, 'Distribution', {
      distributionConfig: {
        enabled: true,
        comment: `artifact-gateway ${this.gatewayName}`.slice(0, 128),
        aliases: domains,
        httpVersion: 'http2and3',
        ipv6Enabled: true,
        priceClass: props.priceClass ?? cloudfront.PriceClass.PRICE_CLASS_ALL,
        webAclId: props.webAclArn,
        viewerCertificate: { acmCertificateArn: certificate.arn, sslSupportMethod: 'sni-only', minimumProtocolVersion: 'TLSv1.2_2021' },
        origins: this.regional.map((r) => ({
          id: r.originId,
          domainName: Fn.select(2, Fn.split('/', r.gateway.functionUrl.url)),
          originAccessControlId: oac.attrId,
          customOriginConfig: { originProtocolPolicy: 'https-only', originSslProtocols: ['TLSv1.2'], originReadTimeout: 60, originKeepaliveTimeout: 5 },
        })),
        defaultCacheBehavior: behavior(gatewayCachePolicy.cachePolicyId, viewerOriginRequestPolicy.originRequestPolicyId, true),
        cacheBehaviors,
      },
    });
    acknowledge(this.cfnDistribution,
      { id: 'AwsSolutions-CFR1', reason: 'A package gateway serves users everywhere; restrict countries with a WAF web ACL (webAclArn) if you must.' },
      { id: 'AwsSolutions-CFR2', reason: 'WAF is optional: pass webAclArn to attach a web ACL; none is created by default to avoid its fixed monthly cost.' },
      { id: 'AwsSolutions-CFR3', reason: 'CloudFront access logs record every viewer\'s IP address; the gateway promises that no address is stored. Events (without addresses) are the access record.' },
    );
    if (certificate.waitFor) this.cfnDistribution.node.addDependency(certificate.waitFor);
    this.distributionDomainName = this.cfnDistribution.attrDomainName;
    this.distribution = cloudfront.Distribution.fromDistributionAttributes(this, 'DistributionRef', {
      distributionId: this.cfnDistribution.ref,
      domainName: this.cfnDistribution.attrDomainName,
    });
    this.grantCloudFrontInvoke();
    if (props.hostedZone) this.aliasRecords(props.hostedZone, domains);

    this.alarms = [...this.regional.flatMap((r) => r.gateway.alarms), ...this.analyticsAlarms()];
    this.dashboard = this.createDashboard();
    new CfnOutput(this, 'DistributionDomainName', { value: this.distributionDomainName, description: 'Point your domains here (CNAME, or alias records in Route 53)' });
    new CfnOutput(this, 'DistributionId', { value: this.cfnDistribution.ref });
    new CfnOutput(this, 'RulesTableName', { value: this.table.table.tableName, description: `Global rules table (primary in ${this.primaryRegion})` });
    if (this.analytics) {
      new CfnOutput(this, 'AnalyticsWorkgroup', { value: this.analytics.workgroupName, description: `Athena workgroup in ${this.primaryRegion}` });
      new CfnOutput(this, 'AnalyticsDatabase', { value: this.analytics.databaseName, description: 'Glue database holding the events table' });
      new CfnOutput(this, 'AnalyticsBucketName', { value: (this.analytics.bucket.node.defaultChild as s3.CfnBucket).ref });
    }
    for (const added of [...Object.values(stacks), ...(this.certificateStack ? [this.certificateStack] : [])]) weakly(added);
  }

  /** Allows reading and changing rules in the rules table (what the `rules` commands need). */
  grantManageRules(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:Scan', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:BatchGetItem', 'dynamodb:BatchWriteItem', 'dynamodb:ConditionCheckItem', 'dynamodb:DescribeTable'],
      resourceArns: [this.table.table.tableArn],
    });
  }

  /** Allows running Athena queries on the events (workgroup, Glue table, event data, query results). */
  grantQueryAnalytics(grantee: iam.IGrantable): iam.Grant {
    if (!this.analytics) throw new Error('ArtifactGateway: analytics are disabled (analytics: false), there is nothing to query');
    return this.analytics.grantQuery(grantee);
  }

  /** Requests handled by the gateway function of a region. @param region default: the primary region */
  metricRequests(region?: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.gatewayIn(region).gatewayMetric(METRIC.requests, props);
  }

  /** Requests that counted as downloads. */
  metricDownloads(region?: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.gatewayIn(region).gatewayMetric(METRIC.downloads, props);
  }

  /** Answers the gateway made itself because an upstream failed (502/504). */
  metricUpstreamErrors(region?: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.gatewayIn(region).gatewayMetric(METRIC.upstreamErrors, props);
  }

  /** 1 while a region serves rules it could not refresh (stale-rules mode). */
  metricRulesStale(region?: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.gatewayIn(region).gatewayMetric(METRIC.rulesStale, { statistic: 'Maximum', ...props });
  }

  /** Events the gateway gave up on. */
  metricDroppedEvents(region?: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.gatewayIn(region).gatewayMetric(METRIC.eventsDropped, props);
  }

  /** Gateway function errors (uncaught failures; upstream errors are answers, see metricUpstreamErrors). */
  metricErrors(region?: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.gatewayIn(region).function.metricErrors({ region: this.gatewayIn(region).region, ...props });
  }

  /** Gateway function duration (default statistic p99). */
  metricLatency(region?: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.gatewayIn(region).function.metricDuration({ statistic: 'p99', region: this.gatewayIn(region).region, ...props });
  }

  /** Gateway function throttles. */
  metricThrottles(region?: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.gatewayIn(region).function.metricThrottles({ region: this.gatewayIn(region).region, ...props });
  }

  /** Age of the oldest record not yet delivered to S3 by Firehose (seconds). */
  metricEventDeliveryFreshness(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    if (!this.analytics) throw new Error('ArtifactGateway: analytics are disabled (analytics: false)');
    return this.analytics.deliveryStream.metric('DeliveryToS3.DataFreshness', { statistic: 'Maximum', region: this.primaryRegion, period: Duration.minutes(5), ...props });
  }

  /** Share of viewer requests answered with a 5xx by CloudFront (percent). */
  metricCloudFront5xxErrorRate(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: 'AWS/CloudFront', metricName: '5xxErrorRate', dimensionsMap: { DistributionId: this.cfnDistribution.ref, Region: 'Global' },
      region: 'us-east-1', statistic: 'Average', period: Duration.minutes(5), ...props,
    });
  }

  private gatewayIn(region?: string): RegionalGateway {
    const r = region ?? this.primaryRegion;
    const found = this.regional.find((x) => x.region === r);
    if (!found) throw new Error(`ArtifactGateway: no gateway in ${r} (regions: ${this.regional.map((x) => x.region).join(', ')})`);
    return found.gateway;
  }

  private certificateFor(domains: string[], props: ArtifactGatewayProps): { arn: string; stack?: Stack; waitFor?: Construct } {
    if (props.certificate) {
      const region = Token.isUnresolved(props.certificate.certificateArn) ? undefined : props.certificate.certificateArn.split(':')[3];
      if (region !== undefined && region !== 'us-east-1') throw new Error(`ArtifactGateway: CloudFront needs a certificate in us-east-1, the given one is in ${region}`);
      return { arn: props.certificate.certificateArn };
    }
    if (props.hostedZone) {
      const cert = new acm.Certificate(this, 'Certificate', {
        domainName: domains[0],
        subjectAlternativeNames: domains.length > 1 ? domains.slice(1) : undefined,
        validation: acm.CertificateValidation.fromDns(props.hostedZone),
      });
      return { arn: cert.certificateArn };
    }
    // No zone: the request lives in its own stack, which prints the DNS validation records as outputs.
    const stack = Stack.of(this);
    const certStack = new Stack(Stage.of(this) ?? (this.node.root as Construct), `${stack.node.id}-${this.node.id}-certificate`, {
      env: { account: Token.isUnresolved(stack.account) ? undefined : stack.account, region: 'us-east-1' },
      description: `artifact-gateway ${this.gatewayName}: certificate request for ${domains.join(', ')}`.slice(0, 1024),
    });
    CrossStackReferences.of(certStack).consume(ReferenceStrength.WEAK);
    const request = new CertificateRequest(certStack, 'Certificate', { domains });

    const issued = new CertificateIssued(this, 'CertificateIssued', { certificateArn: request.certificateArn });
    return { arn: issued.certificateArn, stack: certStack, waitFor: issued };
  }

  private viewerRequestFunction(streamingRegistries: string[] | null): cloudfront.IFunction {
    const { config, skipped } = buildEdgeConfig({
      regions: this.regional.map((r) => r.region),
      originIds: this.regional.map((r) => r.originId),
      rules: this.rules,
      streamingRegistries,
      failoverStatusCodes: FAILOVER_STATUS_CODES,
    });
    for (const s of skipped) {
      Annotations.of(this).addWarningV2('artifact-gateway:blob-origin', `blobs of ${s.registry} go through the gateway function, not CloudFront: ${s.problem}`);
    }
    const code = renderViewerRequestFunction(config);
    if (Buffer.byteLength(code) > MAX_FUNCTION_BYTES) {
      throw new Error(`ArtifactGateway: the viewer-request function is ${Buffer.byteLength(code)} bytes, over CloudFront's ${MAX_FUNCTION_BYTES}-byte limit; too many docker images on streaming registries (use docker-v2 patterns, or fewer streamingRegistries)`);
    }
    return new cloudfront.Function(this, 'ViewerRequest', {
      runtime: cloudfront.FunctionRuntime.JS_2_0,
      code: cloudfront.FunctionCode.fromInline(code),
      comment: 'artifact-gateway: host, private Authorization, nearest region, failover, blob origins',
    });
  }

  private bodyPatterns(given?: string[]): string[] {
    const patterns = given ?? [...new Set(this.rules.filter((r) => r.type === 'telemetry-v1').map((r) => r['incoming-path'].split('?')[0]))];
    for (const p of patterns) {
      if (!/^\/[A-Za-z0-9_\-.*$/~"'@:+&]*$/.test(p)) throw new Error(`ArtifactGateway: ${JSON.stringify(p)} cannot be a CloudFront path pattern (allowed: A-Z a-z 0-9 _ - . * $ / ~ " ' @ : + &); give bodyPathPatterns explicitly`);
    }
    return patterns;
  }

  private payloadHashFunction(): nodejs.NodejsFunction {
    const functionName = `${this.gatewayName}-payload-hash`.replace(/[^A-Za-z0-9-_]/g, '-').slice(0, 64);
    const role = new iam.Role(this, 'PayloadHashRole', {
      assumedBy: new iam.CompositePrincipal(new iam.ServicePrincipal('lambda.amazonaws.com'), new iam.ServicePrincipal('edgelambda.amazonaws.com')),
    });
    // Lambda@Edge writes its logs in the region of each edge location that runs it.
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['logs:CreateLogGroup', 'logs:CreateLogStream', 'logs:PutLogEvents'],
      resources: [`arn:${Aws.PARTITION}:logs:*:${Aws.ACCOUNT_ID}:log-group:/aws/lambda/us-east-1.${functionName}:*`],
    }));
    acknowledge(role, finding('AwsSolutions-IAM5', `Resource::arn:<AWS::Partition>:logs:*:<AWS::AccountId>:log-group:/aws/lambda/us-east-1.${functionName}:*`,
      'Lambda@Edge replicas log to /aws/lambda/us-east-1.<function> in whichever region serves the viewer, so the region (and the stream) cannot be named.'));
    const fn = new nodejs.NodejsFunction(this, 'PayloadHash', {
      functionName,
      entry: handlerEntry('edge/payload-hash'),
      handler: 'handler',
      runtime: EDGE_RUNTIME,
      memorySize: 128,
      timeout: Duration.seconds(5),
      role,
      description: 'artifact-gateway: adds x-amz-content-sha256 to requests with a body (origin access control for function URLs needs it)',
      ...bundlingProps(EDGE_RUNTIME),
    });
    acknowledge(fn, { id: 'AwsSolutions-L1', reason: 'Lambda@Edge supports Node.js 22 at most; the regional functions run the latest runtime.' });
    return fn;
  }

  /** CloudFront (this distribution only) may invoke each gateway through its function URL. */
  private grantCloudFrontInvoke(): void {
    const here = Stack.of(this);
    const sourceArn = `arn:${Aws.PARTITION}:cloudfront::${Aws.ACCOUNT_ID}:distribution/${this.cfnDistribution.ref}`;
    for (const r of this.regional) {
      const functionArn = r.gateway.function.functionArn;
      const suffix = r.region.replace(/-/g, '');
      if (r.region === here.region) {
        new lambda.CfnPermission(this, `InvokeUrlPermission${suffix}`, {
          action: 'lambda:InvokeFunctionUrl', principal: 'cloudfront.amazonaws.com', functionName: functionArn, sourceArn, functionUrlAuthType: 'AWS_IAM',
        });
        new lambda.CfnPermission(this, `InvokePermission${suffix}`, {
          action: 'lambda:InvokeFunction', principal: 'cloudfront.amazonaws.com', functionName: functionArn, sourceArn, invokedViaFunctionUrl: true,
        });
        continue;
      }
      // A permission is a resource of the function's region; this stack is not there, and the
      // regional stack cannot name the distribution (it is created after it), so an API call adds it.
      for (const [kind, extra] of [['Url', { Action: 'lambda:InvokeFunctionUrl', FunctionUrlAuthType: 'AWS_IAM' }], ['', { Action: 'lambda:InvokeFunction', InvokedViaFunctionUrl: true }]] as const) {
        const statementId = `cloudfront-${kind ? 'url-' : ''}${this.cfnDistribution.ref}`;
        const call = (action: string, parameters: Record<string, unknown>): cr.AwsSdkCall => ({
          service: 'Lambda', action, region: r.region, parameters: { FunctionName: functionArn, StatementId: statementId, ...parameters },
          physicalResourceId: cr.PhysicalResourceId.of(`${r.region}-${statementId}`),
        });
        const permission = new cr.AwsCustomResource(this, `Invoke${kind}Permission${suffix}`, {
          onCreate: call('addPermission', { Principal: 'cloudfront.amazonaws.com', SourceArn: sourceArn, ...extra }),
          onUpdate: call('addPermission', { Principal: 'cloudfront.amazonaws.com', SourceArn: sourceArn, ...extra }),
          onDelete: { ...call('removePermission', {}), ignoreErrorCodesMatching: 'ResourceNotFoundException' },
          policy: cr.AwsCustomResourcePolicy.fromStatements([new iam.PolicyStatement({ actions: ['lambda:AddPermission', 'lambda:RemovePermission'], resources: [functionArn] })]),
          installLatestAwsSdk: false,
        });
        permission.node.addDependency(this.cfnDistribution);
      }
    }
    acknowledgeAwsCustomResourceSingleton(here);
  }

  private aliasRecords(zone: route53.IHostedZone, domains: string[]): void {
    const target = route53.RecordTarget.fromAlias(new targets.CloudFrontTarget(this.distribution));
    domains.forEach((domain, i) => {
      new route53.ARecord(this, `AliasA${i}`, { zone, recordName: domain, target });
      new route53.AaaaRecord(this, `AliasAaaa${i}`, { zone, recordName: domain, target });
    });
  }

  private analyticsAlarms(): cloudwatch.IAlarm[] {
    if (!this.analytics) return [];
    const stream = this.analytics.deliveryStream;
    return [new cloudwatch.Alarm(this.analytics, 'DeliveryAlarm', {
      alarmName: `${this.gatewayName}-${this.primaryRegion}-EventDelivery`,
      alarmDescription: `artifact-gateway ${this.gatewayName}: Firehose has not delivered events to S3 for over 15 minutes (delivery failures)`,
      metric: stream.metric('DeliveryToS3.DataFreshness', { statistic: 'Maximum', period: Duration.minutes(5) }),
      threshold: 900,
      evaluationPeriods: 3,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    }), ...(this.salts ? [this.salts.alarm] : [])];
  }

  private createDashboard(): cloudwatch.Dashboard {
    const dashboard = new cloudwatch.Dashboard(this, 'Dashboard', { dashboardName: `${this.gatewayName}-gateway`.replace(/[^A-Za-z0-9-_]/g, '-').slice(0, 255) });
    const perRegion = (title: string, metric: (region: string) => cloudwatch.IMetric) =>
      new cloudwatch.GraphWidget({ title, width: 8, left: this.regional.map((r) => metric(r.region)) });
    dashboard.addWidgets(
      perRegion('Requests', (r) => this.metricRequests(r, { label: r })),
      perRegion('Downloads', (r) => this.metricDownloads(r, { label: r })),
      new cloudwatch.GraphWidget({ title: 'CloudFront 5xx error rate (%)', width: 8, left: [this.metricCloudFront5xxErrorRate()] }),
    );
    dashboard.addWidgets(
      perRegion('Function errors', (r) => this.metricErrors(r, { label: r })),
      perRegion('Duration p99 (ms)', (r) => this.metricLatency(r, { label: r })),
      perRegion('Throttles', (r) => this.metricThrottles(r, { label: r })),
    );
    dashboard.addWidgets(
      perRegion('Upstream errors (502/504)', (r) => this.metricUpstreamErrors(r, { label: r })),
      perRegion('Stale rules (1 = serving a stale copy)', (r) => this.metricRulesStale(r, { label: r })),
      perRegion('Dropped events', (r) => this.metricDroppedEvents(r, { label: r })),
    );
    if (this.analytics) dashboard.addWidgets(new cloudwatch.GraphWidget({ title: 'Firehose delivery freshness (s)', width: 8, left: [this.metricEventDeliveryFreshness()] }));
    dashboard.addWidgets(new cloudwatch.AlarmStatusWidget({ title: 'Alarms', width: 24, alarms: this.alarms }));
    return dashboard;
  }
}

/**
 * References from the distribution's stack (the user's, whose context cannot be changed here) to
 * the resources of the stacks this construct adds are weak: read with Fn::GetStackOutput, so a
 * replaced certificate or function URL never deadlocks the stacks the way CloudFormation exports
 * (or cross-region export readers) do.
 */
function weakly(stack: Stack): void {
  for (const c of stack.node.findAll()) if (CfnResource.isCfnResource(c)) CrossStackReferences.of(c).produce(ReferenceStrength.WEAK);
}

function validateRegions(regions: string[]): string[] {
  if (!regions.length) throw new Error('ArtifactGateway: regions must name at least one region, e.g. ["us-east-1"]');
  const seen = new Set<string>();
  for (const r of regions) {
    if (Token.isUnresolved(r)) throw new Error('ArtifactGateway: regions must be literal region names (each gets its own stack)');
    if (!REGION_FORMAT.test(r)) throw new Error(`ArtifactGateway: ${JSON.stringify(r)} is not a region name such as "eu-west-1"`);
    if (seen.has(r)) throw new Error(`ArtifactGateway: region ${r} is listed twice`);
    seen.add(r);
  }
  return regions;
}

function validateDomains(domains: string[]): string[] {
  if (!domains.length) throw new Error('ArtifactGateway: domains must name at least one host, e.g. ["dl.example.com"]');
  return domains.map((d) => {
    const n = normaliseDomain(d);
    if (!n.ok) throw new Error(`ArtifactGateway: domain ${n.problem}`);
    if (n.value.includes(':')) throw new Error(`ArtifactGateway: domain ${JSON.stringify(d)} has a port; CloudFront serves 443 (and 80)`);
    return n.value;
  });
}

/** The validated rules, written once per distinct rule set into the cloud assembly (bundled into the functions, uploaded for the table). */
function writeRulesFile(scope: Construct, rules: readonly Rule[]): string {
  const text = `${JSON.stringify({ rules }, null, 1)}\n`;
  const hash = createHash('sha256').update(text).digest('hex').slice(0, 16);
  const stage = Stage.of(scope);
  const dir = path.join(stage ? stage.outdir : fs.mkdtempSync(path.join(os.tmpdir(), 'artifact-gateway-')), 'artifact-gateway-rules');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `rules-${hash}.json`);
  if (!fs.existsSync(file)) fs.writeFileSync(file, text);
  return file;
}
