/**
 * Fixtures for the pip and npm end-to-end tests: a wheel built by hand, a static HTTP server that
 * plays a file host and an upstream simple index, and child-process runners that keep pip and
 * npm away from this machine's own configuration.
 */
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { curl, LOCAL, markerPath, readEvents, waitForEvents, type Gateway, type GatewayEventJson } from './helpers';

// ---------------------------------------------------------------------------------------------
// Events

/** Every event answered so far: once a marker request's event is on disk, every earlier one is. */
export async function settledEvents(gw: Gateway, events: string, host: string): Promise<GatewayEventJson[]> {
  const marker = markerPath();
  await curl(gw.url(marker), ['-H', `Host: ${host}`]);
  await waitForEvents(events, (e) => e.path === marker);
  return readEvents(events);
}

// ---------------------------------------------------------------------------------------------
// Processes

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: opts.cwd, env: opts.env, timeout: opts.timeoutMs ?? 90_000, maxBuffer: 32 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException).code === 'number' ? Number((err as NodeJS.ErrnoException).code) : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** The environment without any pip or npm configuration of this machine (PIP_*, npm_config_*). */
export function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(pip_|npm_config_|npm_package_|npm_lifecycle_)/i.test(k)) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

/** pip isolated from the machine's config files and PIP_* variables; no cache, no prompts. */
export function pip(args: string[], cwd: string): Promise<Run> {
  const env = cleanEnv({ PIP_CONFIG_FILE: '/dev/null', PIP_DISABLE_PIP_VERSION_CHECK: '1', PIP_NO_INPUT: '1', PYTHONNOUSERSITE: '1' });
  return run('python3', ['-m', 'pip', ...args, '--no-cache-dir'], { cwd, env });
}

// ---------------------------------------------------------------------------------------------
// A wheel built by hand: a zip with the module, METADATA, WHEEL and RECORD.

export interface Wheel {
  readonly fileName: string;
  readonly bytes: Buffer;
  readonly sha256: string;
  /** The METADATA file (served as `<wheel>.metadata`, PEP 658). */
  readonly metadata: Buffer;
  readonly metadataSha256: string;
}

const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

const WHEEL_SCRIPT = `
import base64, hashlib, sys, zipfile
project, version, out_dir = sys.argv[1:4]
module = project.replace('-', '_')
dist = f"{module}-{version}.dist-info"
files = {
    f"{module}/__init__.py": f"VERSION = {version!r}\\n".encode(),
    f"{dist}/METADATA": f"Metadata-Version: 2.1\\nName: {project}\\nVersion: {version}\\nSummary: artifact-gateway test package\\n".encode(),
    f"{dist}/WHEEL": b"Wheel-Version: 1.0\\nGenerator: artifact-gateway-tests\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
}
record = []
for name, data in files.items():
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record.append(f"{name},sha256={digest},{len(data)}")
record.append(f"{dist}/RECORD,,")
files[f"{dist}/RECORD"] = ("\\n".join(record) + "\\n").encode()
path = f"{out_dir}/{module}-{version}-py3-none-any.whl"
with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
    for name, data in files.items():
        z.writestr(name, data)
with open(path + ".metadata", "wb") as f:
    f.write(files[f"{dist}/METADATA"])
print(path)
`;

export async function buildWheel(project: string, version: string, dir: string): Promise<Wheel> {
  const r = await run('python3', ['-c', WHEEL_SCRIPT, project, version, dir]);
  if (r.code !== 0) throw new Error(`building the ${project} wheel failed: ${r.stderr}`);
  const file = r.stdout.trim();
  const bytes = fs.readFileSync(file);
  const metadata = fs.readFileSync(`${file}.metadata`);
  return { fileName: path.basename(file), bytes, sha256: sha256(bytes), metadata, metadataSha256: sha256(metadata) };
}

// ---------------------------------------------------------------------------------------------
// A static HTTP server: exact paths, recorded requests.

export interface StaticResponse {
  status?: number;
  headers?: Record<string, string>;
  body: Buffer | string;
}

export interface Recorded {
  method: string;
  path: string;
  range: string | undefined;
  accept: string | undefined;
}

export class StaticServer {
  readonly requests: Recorded[] = [];
  private readonly routes = new Map<string, StaticResponse>();
  private server: http.Server | null = null;
  port = 0;

  route(p: string, r: StaticResponse): this {
    this.routes.set(p, r);
    return this;
  }

  get base(): string {
    return `http://${LOCAL}:${this.port}`;
  }

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => {
      const p = (req.url ?? '/').split('?')[0];
      this.requests.push({ method: req.method ?? 'GET', path: p, range: req.headers.range, accept: req.headers.accept });
      const r = this.routes.get(p);
      if (!r) {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('not found\n');
        return;
      }
      const body = typeof r.body === 'string' ? Buffer.from(r.body) : r.body;
      res.writeHead(r.status ?? 200, { 'content-length': String(body.length), ...r.headers });
      res.end(req.method === 'HEAD' ? undefined : body);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, LOCAL, resolve));
    this.port = (this.server.address() as { port: number }).port;
    return this;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  /** GETs (full or ranged) of a path so far. */
  gets(p: string): Recorded[] {
    return this.requests.filter((r) => r.method === 'GET' && r.path === p);
  }
}
