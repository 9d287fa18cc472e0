/**
 * Synthesizing gateways for the construct tests. Bundling is skipped unless asked for (esbuild
 * output is checked once, in bundle.test.ts); templates are shared by the tests of a file.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { ArtifactGateway, GatewayRule, GatewayRules, type ArtifactGatewayProps } from '../../lib';

export const RULES = GatewayRules.of(
  GatewayRule.docker({ domain: 'cr.example.com', repositoryName: 'acme/rocket', registry: 'ghcr.io', packageId: 'rocket-image' }),
  GatewayRule.file({ domain: 'dl.example.com', incomingPath: '/rocket/{version}/rocket-{os}-{arch}.tar.gz', outgoingUrl: 'https://github.com/acme/rocket/releases/download/v{version}/rocket-{os}-{arch}.tar.gz', packageId: 'rocket-cli' }),
  GatewayRule.telemetry({ domain: 'dl.example.com', incomingPath: '/events', packageId: 'rocket-cli' }),
);

/** Cloud assembly directories of this test file, removed when it ends. */
const outdirs: string[] = [];
afterAll(() => {
  for (const d of outdirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** A temporary cloud assembly directory, removed after the test file. */
export function tempOutdir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-construct-'));
  outdirs.push(d);
  return d;
}

export interface Synthesized {
  app: App;
  stack: Stack;
  gateway: ArtifactGateway;
  /** The distribution's stack (us-east-1). */
  global: Template;
  /** Regional stacks by region. */
  regional: Record<string, Template>;
}

export function synthGateway(
  props: Partial<ArtifactGatewayProps> | ((stack: Stack) => Partial<ArtifactGatewayProps>) = {},
  opts: { bundle?: boolean; outdir?: string; stackRegion?: string; extend?: (stack: Stack, gw: ArtifactGateway) => void } = {},
): Synthesized {
  const app = new App({
    outdir: opts.outdir ?? tempOutdir(),
    context: {
      '@aws-cdk/core:defaultCrossStackReferences': 'weak',
      ...(opts.bundle ? {} : { 'aws:cdk:bundling-stacks': [] }),
    },
  });
  const stack = new Stack(app, 'Gw', { env: { account: '123456789012', region: opts.stackRegion ?? 'us-east-1' } });
  const gateway = new ArtifactGateway(stack, 'Gateway', {
    domains: ['dl.example.com', 'cr.example.com'],
    regions: ['us-east-1', 'eu-west-1'],
    rules: RULES,
    ...(typeof props === 'function' ? props(stack) : props),
  });
  opts.extend?.(stack, gateway);
  const regional: Record<string, Template> = {};
  for (const [region, s] of Object.entries(gateway.regionalStacks)) regional[region] = Template.fromStack(s);
  return { app, stack, gateway, global: Template.fromStack(stack), regional };
}

/** The resources of one type in a template, as [logicalId, resource] pairs. */
export function resourcesOf(t: Template, type: string): Array<[string, { Properties: Record<string, any>; DependsOn?: string[] }]> {
  return Object.entries(t.findResources(type)) as Array<[string, { Properties: Record<string, any>; DependsOn?: string[] }]>;
}
