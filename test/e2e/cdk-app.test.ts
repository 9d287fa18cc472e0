/**
 * The bundled CDK app as an operator runs it: `npx cdk synth` with the example manifest, three
 * regions, a custom domain and a hosted zone, offline, with cdk-nag's AwsSolutions checks on.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { makeTempDir, removeDir, ROOT, writeJson } from './helpers';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function cdkSynth(args: string[], outdir: string): Promise<Run> {
  return new Promise((resolve) => {
    // No credentials and no AWS endpoint: the synth must not need the network.
    const env = { ...process.env, AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '', AWS_PROFILE: '', AWS_EC2_METADATA_DISABLED: 'true', CDK_DISABLE_VERSION_CHECK: '1' };
    execFile('npx', ['--no-install', 'cdk', 'synth', '-q', '--no-notices', '-o', outdir, ...args], { cwd: ROOT, env, timeout: 120_000, maxBuffer: 32 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('bundled CDK app', () => {
  let dir: string;
  beforeAll(() => {
    dir = makeTempDir('gw-cdk-');
  });
  afterAll(() => removeDir(dir));

  test('synthesizes three regions, a domain and a hosted zone offline with no unacknowledged cdk-nag finding', async () => {
    const out = path.join(dir, 'ok');
    const r = await cdkSynth(['-c', 'manifest=./examples/gateway-manifest.json', '-c', 'domains=dl.example.com', '-c', 'regions=us-east-1,eu-west-1,ap-southeast-2', '-c', 'hostedZone=example.com', '-c', 'hostedZoneId=Z0123456789EXAMPLE'], out);
    expect({ code: r.code, errors: `${r.stdout}${r.stderr}`.split('\n').filter((l) => /^ERROR|Error/.test(l)) }).toEqual({ code: 0, errors: [] });
    const templates = fs.readdirSync(out).filter((f) => f.endsWith('.template.json')).sort();
    expect(templates).toEqual(['ArtifactGateway-Gateway-ap-southeast-2.template.json', 'ArtifactGateway-Gateway-eu-west-1.template.json', 'ArtifactGateway-Gateway-us-east-1.template.json', 'ArtifactGateway.template.json']);
    const report = JSON.parse(fs.readFileSync(path.join(out, 'validation-report.json'), 'utf8'));
    expect(report.pluginReports).toEqual([]);
    // cdk-nag ran: the acknowledgements are written into the templates as its audit trail.
    const global = JSON.parse(fs.readFileSync(path.join(out, 'ArtifactGateway.template.json'), 'utf8'));
    const types = Object.values(global.Resources as Record<string, { Type: string }>).map((x) => x.Type);
    expect(types).toEqual(expect.arrayContaining(['AWS::CloudFront::Distribution', 'AWS::CertificateManager::Certificate', 'AWS::Route53::RecordSet', 'AWS::CloudFront::Function']));
    const acknowledged = Object.values(global.Resources as Record<string, { Metadata?: { cdk_nag?: { rules_to_suppress: Array<{ id: string; reason: string }> } } }>)
      .flatMap((x) => x.Metadata?.cdk_nag?.rules_to_suppress ?? []);
    expect(acknowledged.map((a) => a.id)).toEqual(expect.arrayContaining(['AwsSolutions-CFR1', 'AwsSolutions-CFR2', 'AwsSolutions-CFR3']));
  }, 120_000);

  test('a bad manifest fails the synth with the engine\'s message; missing options are usage errors', async () => {
    const bad = writeJson(path.join(dir, 'bad.json'), { rules: [{ type: 'docker-v1', domain: 'dl.example.com', 'repository-name': 'acme/rocket', registry: 'ghcr.io' }] });
    const r = await cdkSynth(['-c', `manifest=${bad}`, '-c', 'domains=dl.example.com', '-c', 'regions=us-east-1'], path.join(dir, 'bad'));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`${bad}: invalid manifest, 1 problem:`);
    expect(r.stderr).toContain('rule 0 (docker-v1, dl.example.com), field "package-id": is required');
    const usage = await cdkSynth(['-c', 'manifest=./examples/manifest.json'], path.join(dir, 'usage'));
    expect(usage.code).not.toBe(0);
    expect(usage.stderr).toContain('-c domains=HOST[,HOST...] is required');
  }, 120_000);
});
