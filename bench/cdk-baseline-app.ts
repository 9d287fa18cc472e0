/**
 * Baseline for the synth benchmark: the smallest CDK app with one esbuild-bundled function, so
 * `cdk synth` of the gateway is reported as a ratio to the fixed cost of CDK, tsx and esbuild.
 */
import path from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';

const app = new App();
const stack = new Stack(app, 'Baseline', { env: { region: 'us-east-1' } });
new nodejs.NodejsFunction(stack, 'Fn', {
  entry: path.join(__dirname, '..', 'lambda', 'edge', 'payload-hash.ts'),
  runtime: lambda.Runtime.NODEJS_22_X,
  depsLockFilePath: path.join(__dirname, '..', 'package-lock.json'),
  bundling: { minify: true, externalModules: ['@aws-sdk/*'] },
});
