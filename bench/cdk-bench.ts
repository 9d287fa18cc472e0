/**
 * `npm run bench:cdk`: what the construct costs at build time, measured in one run.
 *
 * - Synth time of the bundled app (`npx cdk synth`, offline, cdk-nag on) for one region and for
 *   three regions with a hosted zone, each as a ratio to a one-function CDK app synthesized in
 *   the same run (interleaved rounds; median of the per-round ratios).
 * - Sizes of the function bundles esbuild produces (raw, and deflated as in the deployment zip),
 *   and of the CloudFront Function (limit 10 KB).
 *
 *   npm run bench:cdk                 5 rounds
 *   npm run bench:cdk -- --rounds 3
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { median } from './measure';

const ROOT = path.resolve(__dirname, '..');
const rounds = (() => {
  const i = process.argv.indexOf('--rounds');
  const n = i >= 0 ? Number(process.argv[i + 1]) : 5;
  if (!Number.isInteger(n) || n < 1) throw new Error('--rounds takes a positive integer');
  return n;
})();

const ENV = { ...process.env, AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '', AWS_PROFILE: '', AWS_EC2_METADATA_DISABLED: 'true', CDK_DISABLE_VERSION_CHECK: '1' };
const GATEWAY = ['-c', 'manifest=./examples/gateway-manifest.json', '-c', 'domains=dl.example.com'];
const CASES: Record<string, string[]> = {
  baseline: ['--app', 'node --import tsx bench/cdk-baseline-app.ts'],
  'gateway, 1 region, no hosted zone (adds the certificate stack)': [...GATEWAY, '-c', 'regions=us-east-1'],
  'gateway, 3 regions + hosted zone': [...GATEWAY, '-c', 'regions=us-east-1,eu-west-1,ap-southeast-2', '-c', 'hostedZone=example.com', '-c', 'hostedZoneId=Z0123456789EXAMPLE'],
};

function synth(args: string[], outdir: string): number {
  fs.rmSync(outdir, { recursive: true, force: true });
  const t0 = process.hrtime.bigint();
  execFileSync('npx', ['--no-install', 'cdk', 'synth', '-q', '--no-notices', '-o', outdir, ...args], { cwd: ROOT, env: ENV, stdio: ['ignore', 'ignore', 'pipe'] });
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-cdk-bench-'));
try {
  const names = Object.keys(CASES);
  const times: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  const ratios: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = 0; r < rounds; r++) {
    process.stderr.write(`round ${r + 1}/${rounds}\n`);
    const order = r % 2 === 0 ? names : [...names].reverse();
    const round: Record<string, number> = {};
    for (const n of order) round[n] = synth(CASES[n], path.join(tmp, n.replace(/\W+/g, '-')));
    for (const n of names) {
      times[n].push(round[n]);
      ratios[n].push(round[n] / round.baseline);
    }
  }
  const out: string[] = [];
  out.push(`node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? 'unknown'}), ${rounds} rounds`);
  out.push('');
  out.push('| synth | median wall time | ratio to baseline (median of rounds) |');
  out.push('|---|---:|---:|');
  for (const n of names) out.push(`| ${n} | ${(median(times[n]) / 1000).toFixed(2)} s | ${median(ratios[n]).toFixed(2)} |`);
  // Bundles of both gateway synths.
  const rows: string[] = [];
  const seen = new Set<string>();
  for (const n of names.slice(1)) {
  const dir = path.join(tmp, n.replace(/\W+/g, '-'));
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { artifacts: Record<string, { type: string; properties?: { templateFile?: string } }> };
  for (const a of Object.values(manifest.artifacts)) {
    if (a.type !== 'aws:cloudformation:stack' || !a.properties?.templateFile) continue;
    const template = JSON.parse(fs.readFileSync(path.join(dir, a.properties.templateFile), 'utf8')) as { Resources: Record<string, { Type: string; Properties: Record<string, any> }> };
    for (const [id, res] of Object.entries(template.Resources)) {
      if (res.Type === 'AWS::CloudFront::Function') {
        rows.push(`| CloudFront Function (viewer request), ${n} | ${Buffer.byteLength(res.Properties.FunctionCode)} B | - | limit 10 KB |`);
        continue;
      }
      if (res.Type !== 'AWS::Lambda::Function' || typeof res.Properties.Code?.S3Key !== 'string') continue;
      const asset = path.join(dir, `asset.${res.Properties.Code.S3Key.replace(/\.zip$/, '')}`);
      if (!fs.existsSync(asset) || seen.has(asset)) continue;
      seen.add(asset);
      const files = fs.readdirSync(asset);
      const raw = files.reduce((s, f) => s + fs.statSync(path.join(asset, f)).size, 0);
      const deflated = files.reduce((s, f) => s + zlib.deflateRawSync(fs.readFileSync(path.join(asset, f)), { level: 9 }).length, 0);
      const what = id.startsWith('AWS679f53fac002430cb0da5b7982bd2287') ? 'AwsCustomResource singleton (aws-cdk-lib)' : id.replace(/[0-9A-F]{8}$/, '');
      rows.push(`| ${what} (${files.join(', ')}) | ${(raw / 1024).toFixed(1)} KiB | ${(deflated / 1024).toFixed(1)} KiB | ${res.Properties.Runtime ?? ''} |`);
    }
  }
  }
  out.push('');
  out.push('| bundle | raw | deflated | note |');
  out.push('|---|---:|---:|---|');
  out.push(...[...new Set(rows)].sort());
  process.stdout.write(`${out.join('\n')}\n`);
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
