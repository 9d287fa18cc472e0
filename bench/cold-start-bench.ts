/**
 * The regional gateway function as Lambda gets it: its bundle size (esbuild with the construct's
 * own options, lib/bundling.ts, the AWS SDK v3 left to the runtime) and its cold initialisation in
 * fresh `node` processes, against fresh processes that load an empty module.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import * as esbuild from 'esbuild';
import { bundlingProps, GATEWAY_RUNTIME, handlerEntry } from '../lib/bundling';
import { BUNDLED_RULES_FILE } from '../lambda/aws/bundled-rules';
import { median, quantile } from './measure';

const ROOT = path.resolve(__dirname, '..');
/** Goal of the issue: 250 KB excluding what the runtime provides. */
export const BUNDLE_GOAL_BYTES = 250 * 1000;
export const COLD_INIT_GOAL_MS = 50;

/**
 * Loads the module named in argv[2] as Lambda's runtime would load the handler (with a stand-in
 * for the runtime's `awslambda` global), and prints how long `require` took and how long since
 * the process started (performance.now() counts from the process's time origin).
 */
const LOADER = `
globalThis.awslambda = { streamifyResponse: (f) => f, HttpResponseStream: { from: (s) => s } };
const t0 = performance.now();
const m = require(process.argv[2]);
const t1 = performance.now();
if (process.argv[3] === 'handler' && typeof m.handler !== 'function') throw new Error('no handler export');
// What the handler loads later, on first use (the AWS SDK clients), timed on its own.
const later = (process.argv[4] || '').split(',').filter(Boolean);
const t2 = performance.now();
for (const name of later) require(name);
const t3 = performance.now();
process.stdout.write(JSON.stringify({ requireMs: t1 - t0, readyMs: t1, firstUseMs: t3 - t2 }));
`;

export interface BundleResult {
  readonly entry: string;
  readonly esbuild: Record<string, unknown>;
  readonly bytes: number;
  readonly deflatedBytes: number;
  readonly goalBytes: number;
  readonly ratioToGoal: number;
  /** Largest inputs of the bundle, by bytes in the output. */
  readonly largestInputs: Array<{ readonly input: string; readonly bytes: number }>;
}

export interface ColdVariant {
  readonly name: string;
  readonly env: Record<string, string>;
  /** `require` of the bundle: module load + everything the handler does at module scope. */
  readonly requireMs: number[];
  /** Process start to handler ready, and the same for the empty module (baseline), per round. */
  readonly readyMs: number[];
  readonly baselineReadyMs: number[];
  readonly baselineRequireMs: number[];
  readonly ratios: number[];
  readonly medianRequireMs: number;
  readonly p90RequireMs: number;
  readonly medianReadyMs: number;
  readonly medianBaselineReadyMs: number;
  readonly medianRatio: number;
  readonly ratioQ1: number;
  readonly ratioQ3: number;
  /** medianRequireMs minus the empty module's. */
  readonly initOverBaselineMs: number;
  /** AWS SDK packages the handler loads on first use (after init), and how long loading them takes. */
  readonly firstUsePackages: readonly string[];
  readonly firstUseMs: number[];
  readonly medianFirstUseMs: number;
}

export interface ColdStartResults {
  readonly bundle: BundleResult;
  readonly rounds: number;
  readonly goalMs: number;
  readonly variants: ColdVariant[];
  readonly node: string;
}

/** Bundles lambda/aws/handler.ts exactly as the construct's NodejsFunction does (same options), into `dir`. */
export async function bundleHandler(dir: string): Promise<BundleResult> {
  const b = bundlingProps(GATEWAY_RUNTIME).bundling ?? {};
  const entry = handlerEntry('aws/handler');
  const options = {
    bundle: true,
    platform: 'node' as const,
    target: b.target,
    minify: b.minify,
    sourcemap: b.sourceMap ?? false,
    format: 'cjs' as const,
    external: b.externalModules,
  };
  const outfile = path.join(dir, 'index.js');
  const r = await esbuild.build({ ...options, entryPoints: [entry], outfile, metafile: true, logLevel: 'silent' });
  const bytes = fs.statSync(outfile).size;
  const deflated = zlib.deflateRawSync(fs.readFileSync(outfile), { level: 9 }).length;
  const inputs = Object.values(r.metafile.outputs)[0]?.inputs ?? {};
  // Group node_modules inputs by package, our own files by directory.
  const groups = new Map<string, number>();
  for (const [file, info] of Object.entries(inputs)) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(file);
    const key = m ? m[1] : path.dirname(path.relative(ROOT, path.resolve(file)));
    groups.set(key, (groups.get(key) ?? 0) + info.bytesInOutput);
  }
  return {
    entry: path.relative(ROOT, entry),
    esbuild: options,
    bytes,
    deflatedBytes: deflated,
    goalBytes: BUNDLE_GOAL_BYTES,
    ratioToGoal: bytes / BUNDLE_GOAL_BYTES,
    largestInputs: [...groups].sort((x, y) => y[1] - x[1]).slice(0, 8).map(([input, n]) => ({ input, bytes: n })),
  };
}

interface LoadTimes {
  readonly requireMs: number;
  readonly readyMs: number;
  readonly firstUseMs: number;
}

function loadOnce(loader: string, file: string, env: Record<string, string>, what: 'handler' | 'empty', later: readonly string[] = []): Promise<LoadTimes> {
  return new Promise((resolve, reject) => {
    // Only what a Lambda environment has: no NODE_OPTIONS (tsx), the SDK resolvable as the runtime's.
    const childEnv: Record<string, string> = { PATH: process.env.PATH ?? '', NODE_PATH: path.join(ROOT, 'node_modules'), AWS_REGION: 'us-east-1', ...env };
    const child = spawn(process.execPath, [loader, file, what, later.join(',')], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`loading ${file} failed (${code}): ${err}`));
      try {
        resolve(JSON.parse(out) as LoadTimes);
      } catch {
        reject(new Error(`loading ${file}: unexpected output ${out} ${err}`));
      }
    });
  });
}

/** The configurations the function runs in: as deployed by the construct, and with the rules in the bundle. */
export function coldVariants(rulesFile: string): Array<{ name: string; env: Record<string, string>; rules: string | null; firstUse: string[] }> {
  return [
    {
      name: 'as deployed: rule store, Firehose sink, salt table',
      env: {
        GATEWAY_NAME: 'bench', RULES_TABLE_NAME: 'bench-rules', EVENTS_STREAM_NAME: 'bench-events', EVENTS_STREAM_REGION: 'us-east-1',
        SALT_TABLE_NAME: 'bench-salts', SALT_TABLE_REGION: 'us-east-1', POWERTOOLS_LOG_LEVEL: 'INFO',
      },
      rules: null,
      // The rule store's client on the first request (before its answer); Firehose after it.
      firstUse: ['@aws-sdk/client-dynamodb', '@aws-sdk/lib-dynamodb', '@aws-sdk/client-firehose'],
    },
    {
      name: `bundled rules (${path.relative(ROOT, rulesFile)}), log sink`,
      env: { GATEWAY_NAME: 'bench', POWERTOOLS_LOG_LEVEL: 'INFO' },
      rules: rulesFile,
      firstUse: [],
    },
  ];
}

export async function benchColdStart(opts: { rounds: number }, progress: (m: string) => void): Promise<ColdStartResults> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'artifact-gateway-cold-'));
  try {
    progress('bundling lambda/aws/handler.ts with the construct\'s esbuild options');
    const bundle = await bundleHandler(tmp);
    const loader = path.join(tmp, 'load.js');
    fs.writeFileSync(loader, LOADER);
    const empty = path.join(tmp, 'empty.js');
    fs.writeFileSync(empty, '\n');
    const rulesFile = path.join(ROOT, 'examples', 'gateway-manifest.json');
    const variants = coldVariants(rulesFile);
    const samples = variants.map(() => ({ require: [] as number[], ready: [] as number[], baseReady: [] as number[], baseRequire: [] as number[], firstUse: [] as number[] }));
    // One bundle directory per variant: rules.json next to index.js only where the variant ships it.
    const dirs = variants.map((v, i) => {
      const d = path.join(tmp, `variant-${i}`);
      fs.mkdirSync(d);
      fs.copyFileSync(path.join(tmp, 'index.js'), path.join(d, 'index.js'));
      if (v.rules) fs.copyFileSync(v.rules, path.join(d, BUNDLED_RULES_FILE));
      return d;
    });
    // Warm the file system cache once, untimed.
    for (const d of dirs) await loadOnce(loader, path.join(d, 'index.js'), variants[0].env, 'handler');
    for (let r = 0; r < opts.rounds; r++) {
      if (r % 5 === 0) progress(`round ${r + 1}/${opts.rounds}`);
      for (let k = 0; k < variants.length; k++) {
        const i = (k + r) % variants.length;
        const subject = () => loadOnce(loader, path.join(dirs[i], 'index.js'), variants[i].env, 'handler', variants[i].firstUse);
        const base = () => loadOnce(loader, empty, variants[i].env, 'empty');
        let s: LoadTimes;
        let b: LoadTimes;
        if (r % 2 === 0) {
          b = await base();
          s = await subject();
        } else {
          s = await subject();
          b = await base();
        }
        samples[i].require.push(s.requireMs);
        samples[i].ready.push(s.readyMs);
        samples[i].baseReady.push(b.readyMs);
        samples[i].baseRequire.push(b.requireMs);
        samples[i].firstUse.push(s.firstUseMs);
      }
    }
    return {
      bundle,
      rounds: opts.rounds,
      goalMs: COLD_INIT_GOAL_MS,
      node: process.version,
      variants: variants.map((v, i) => {
        const s = samples[i];
        const ratios = s.ready.map((x, r) => x / s.baseReady[r]);
        return {
          name: v.name,
          env: v.env,
          requireMs: s.require,
          readyMs: s.ready,
          baselineReadyMs: s.baseReady,
          baselineRequireMs: s.baseRequire,
          ratios,
          medianRequireMs: median(s.require),
          p90RequireMs: quantile(s.require, 0.9),
          medianReadyMs: median(s.ready),
          medianBaselineReadyMs: median(s.baseReady),
          medianRatio: median(ratios),
          ratioQ1: quantile(ratios, 0.25),
          ratioQ3: quantile(ratios, 0.75),
          initOverBaselineMs: median(s.require) - median(s.baseRequire),
          firstUsePackages: v.firstUse,
          firstUseMs: s.firstUse,
          medianFirstUseMs: median(s.firstUse),
        };
      }),
    };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
