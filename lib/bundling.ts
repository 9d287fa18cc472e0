/**
 * Where the handlers are and how they are bundled: esbuild through NodejsFunction, locally (no
 * Docker), from the TypeScript sources in a checkout or the compiled JavaScript of the package.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';

/** The package root: the checkout (lib/ is next to lambda/) or the installed package (dist/lib next to dist/lambda). */
const LIB_DIR = __dirname;

/** Path of a handler module, `lambda/<adapter>/<name>`, as .ts in a checkout or .js in the package. */
export function handlerEntry(relative: string): string {
  for (const ext of ['.ts', '.js']) {
    const file = path.join(LIB_DIR, '..', 'lambda', `${relative}${ext}`);
    if (fs.existsSync(file)) return file;
  }
  throw new Error(`artifact-gateway: handler lambda/${relative} not found next to ${LIB_DIR}`);
}

/** The lock file that pins the bundled dependencies: the checkout's, else NodejsFunction looks upward from the working directory. */
function lockFile(): string | undefined {
  const file = path.join(LIB_DIR, '..', 'package-lock.json');
  return fs.existsSync(file) ? file : undefined;
}

export const GATEWAY_RUNTIME = lambda.Runtime.NODEJS_24_X;
/** Lambda@Edge runs Node.js 22 at most. */
export const EDGE_RUNTIME = lambda.Runtime.NODEJS_22_X;

export function bundlingProps(runtime: lambda.Runtime, extra: Partial<nodejs.BundlingOptions> = {}): Pick<nodejs.NodejsFunctionProps, 'bundling' | 'depsLockFilePath' | 'projectRoot'> {
  const lock = lockFile();
  return {
    ...(lock && { depsLockFilePath: lock, projectRoot: path.dirname(lock) }),
    bundling: {
      minify: true,
      sourceMap: false,
      target: runtime === EDGE_RUNTIME ? 'node22' : 'node24',
      format: nodejs.OutputFormat.CJS,
      // The runtime provides the AWS SDK v3; bundling it would only grow cold starts.
      externalModules: ['@aws-sdk/*'],
      forceDockerBundling: false,
      ...extra,
    },
  };
}
