#!/usr/bin/env node
/**
 * The bundled CDK app: deploys a gateway from a manifest without writing code.
 *
 *   npx cdk deploy --all -c manifest=./examples/manifest.json -c domains=dl.example.com \
 *     -c regions=us-east-1,eu-west-1 [-c hostedZone=example.com [-c hostedZoneId=Z123...]]
 *     [-c certificateArn=arn:aws:acm:us-east-1:...] [-c stackName=ArtifactGateway] [-c nag=false]
 *
 * The gateway stack is in us-east-1 (CloudFront); one more stack per region holds that region's
 * gateway function (the first region also the rules table, analytics and the salt table). cdk-nag's AwsSolutions
 * checks run on every synth unless `-c nag=false`.
 */
import { App, Stack, Validations } from 'aws-cdk-lib';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as route53 from 'aws-cdk-lib/aws-route53';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ArtifactGateway, GatewayRules } from '../lib';

const app = new App();
const context = (name: string): string | undefined => {
  const v = app.node.tryGetContext(name);
  return v === undefined || v === null || v === '' ? undefined : String(v);
};
const list = (name: string): string[] => (context(name) ?? '').split(',').map((s) => s.trim()).filter(Boolean);

function usage(problem: string): never {
  process.stderr.write(`artifact-gateway app: ${problem}\nusage: npx cdk synth -c manifest=FILE -c domains=HOST[,HOST...] -c regions=REGION[,REGION...] [-c hostedZone=ZONE_NAME [-c hostedZoneId=ID]] [-c certificateArn=ARN] [-c stackName=NAME] [-c nag=false]\n`);
  process.exit(2);
}

const manifest = context('manifest') ?? usage('-c manifest=FILE is required (a Scarf manifest or this project\'s superset)');
const domains = list('domains');
if (!domains.length) usage('-c domains=HOST[,HOST...] is required');
const regions = list('regions');
if (!regions.length) usage('-c regions=REGION[,REGION...] is required (the first holds the rules table and analytics)');

const stack = new Stack(app, context('stackName') ?? 'ArtifactGateway', {
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: 'us-east-1' },
  description: `artifact-gateway for ${domains.join(', ')}`,
});
const zoneName = context('hostedZone');
const zoneId = context('hostedZoneId');
// With an id the zone is referenced without a lookup, so synth works offline; with a name only, CDK looks it up (needs credentials once, then cdk.context.json).
const hostedZone = zoneName
  ? zoneId
    ? route53.HostedZone.fromHostedZoneAttributes(stack, 'Zone', { zoneName, hostedZoneId: zoneId })
    : route53.HostedZone.fromLookup(stack, 'Zone', { domainName: zoneName })
  : undefined;
const certificateArn = context('certificateArn');

new ArtifactGateway(stack, 'Gateway', {
  domains,
  regions,
  rules: GatewayRules.fromManifestFile(manifest),
  hostedZone,
  certificate: certificateArn ? acm.Certificate.fromCertificateArn(stack, 'Certificate', certificateArn) : undefined,
});

// The acknowledgements also go into the templates' metadata (cdk_nag.rules_to_suppress), as an audit trail.
if (context('nag') !== 'false') Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { writeSuppressionsToCloudFormation: true }));
