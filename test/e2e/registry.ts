/**
 * Real container registry software for the end-to-end tests: the CNCF distribution registry from
 * Debian (`docker-registry`), a small token server for its `auth.token` mode, and the
 * containers/image tools (buildah, skopeo, podman) with storage and configuration isolated in a
 * temp dir. Everything listens on 127.0.0.1 on ports chosen at run time and is stopped by the
 * test that started it.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, createPrivateKey, randomUUID, sign, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { freePort, LOCAL, pollUntil, request } from './helpers';

/** Fails with a clear message when a tool the registry tests need is missing. */
export function requireTools(...names: string[]): void {
  const missing = names.filter((n) => !(process.env.PATH ?? '').split(':').some((d) => d && fs.existsSync(path.join(d, n))));
  if (missing.length) {
    throw new Error(`missing ${missing.join(', ')}: run the tests with npm test as root (scripts/test.sh installs them), or apt-get install ${missing.join(' ')}`);
  }
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command; rejects with its stderr when it fails. */
export function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 60_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed (${(err as NodeJS.ErrnoException).code ?? err.message}): ${stderr || stdout}`));
      else resolve({ code: 0, stdout, stderr });
    });
  });
}

export const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

// ---------------------------------------------------------------------------------------------
// Token server (the registry's `auth.token` realm)

export interface TokenRequest {
  service: string | null;
  scopes: string[];
  /** The Basic user name, when credentials were sent. */
  user: string | null;
  /** The client sent an Authorization header at all. */
  authorization: boolean;
}

export interface TokenServer {
  readonly port: number;
  readonly realm: string;
  readonly service: string;
  readonly issuer: string;
  readonly certFile: string;
  readonly seen: TokenRequest[];
  close(): Promise<void>;
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

/**
 * A token server as distribution expects one: RS256 JWTs whose `x5c` header carries a self-signed
 * certificate that the registry trusts (`rootcertbundle`). Anonymous requests get `pull`; the
 * users in `users` get every action they ask for; wrong credentials get 401.
 */
export async function startTokenServer(dir: string, opts: { service: string; users?: Record<string, string> }): Promise<TokenServer> {
  const keyFile = path.join(dir, 'token-key.pem');
  const certFile = path.join(dir, 'token-cert.pem');
  await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=artifact-gateway test token issuer']);
  const key = createPrivateKey(fs.readFileSync(keyFile));
  const x5c = new X509Certificate(fs.readFileSync(certFile)).raw.toString('base64');
  const issuer = 'artifact-gateway-test-issuer';
  const users = opts.users ?? {};
  const seen: TokenRequest[] = [];

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://token.invalid');
    const auth = req.headers.authorization;
    let user: string | null = null;
    if (auth?.startsWith('Basic ')) {
      const [name, ...rest] = Buffer.from(auth.slice(6), 'base64').toString('utf8').split(':');
      if (users[name] === undefined || users[name] !== rest.join(':')) {
        res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Basic realm="token"' });
        res.end(JSON.stringify({ details: 'invalid credentials' }));
        seen.push({ service: url.searchParams.get('service'), scopes: url.searchParams.getAll('scope'), user: name, authorization: true });
        return;
      }
      user = name;
    }
    const scopes = url.searchParams.getAll('scope');
    seen.push({ service: url.searchParams.get('service'), scopes, user, authorization: auth !== undefined });
    const access = scopes.flatMap((s) => {
      // repository:<name>:<actions>; the name may contain ':' only in a port, which repositories do not have.
      const m = /^([a-z]+):(.+):([a-z*,]+)$/.exec(s);
      if (!m) return [];
      const actions = m[3].split(',').filter((a) => user !== null || a === 'pull');
      return [{ type: m[1], name: m[2], actions }];
    });
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'RS256', x5c: [x5c] };
    const claims = { iss: issuer, sub: user ?? '', aud: url.searchParams.get('service') ?? opts.service, exp: now + 600, nbf: now - 30, iat: now, jti: randomUUID(), access };
    const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const token = `${signingInput}.${b64url(sign('sha256', Buffer.from(signingInput), key))}`;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token, access_token: token, expires_in: 600, issued_at: new Date(now * 1000).toISOString() }));
  });
  await new Promise<void>((resolve) => server.listen(0, LOCAL, resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    realm: `http://${LOCAL}:${port}/token`,
    service: opts.service,
    issuer,
    certFile,
    seen,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

// ---------------------------------------------------------------------------------------------
// The distribution registry (`docker-registry serve`)

export interface Registry {
  readonly port: number;
  /** `127.0.0.1:PORT`, as image references name it. */
  readonly host: string;
  readonly base: string;
  readonly proc: ChildProcess;
  log(): string;
  close(): Promise<void>;
}

/** Starts `docker-registry serve` on a free port with filesystem storage under `dir`; token auth when `token` is given. */
export async function startRegistry(dir: string, opts: { token?: TokenServer } = {}): Promise<Registry> {
  fs.mkdirSync(dir, { recursive: true });
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const lines = [
      'version: 0.1',
      'log:',
      '  level: info',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${path.join(dir, 'data')}`,
      'http:',
      `  addr: ${LOCAL}:${port}`,
      // A random secret per run: the registry signs upload state with it.
      `  secret: ${randomUUID()}`,
    ];
    if (opts.token) {
      lines.push('auth:', '  token:', `    realm: ${opts.token.realm}`, `    service: ${opts.token.service}`, `    issuer: ${opts.token.issuer}`, `    rootcertbundle: ${opts.token.certFile}`);
    }
    const config = path.join(dir, 'config.yml');
    fs.writeFileSync(config, `${lines.join('\n')}\n`);
    const proc = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => (log += d));
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => (log += d));
    let exited = false;
    const gone = new Promise<void>((resolve) => proc.once('exit', () => {
      exited = true;
      resolve();
    }));
    const registry: Registry = {
      port,
      host: `${LOCAL}:${port}`,
      base: `http://${LOCAL}:${port}`,
      proc,
      log: () => log,
      close: async () => {
        if (!exited) proc.kill('SIGTERM');
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([gone, new Promise((r) => (timer = setTimeout(r, 5_000)))]);
        clearTimeout(timer);
        if (!exited) {
          proc.kill('SIGKILL');
          await gone;
        }
      },
    };
    try {
      await pollUntil(`docker-registry on port ${port}`, async () => {
        if (exited) throw new Error(`docker-registry exited: ${log}`);
        try {
          const r = await request(port, { path: '/v2/', timeoutMs: 1_000 });
          return r.status === 200 || r.status === 401 ? true : undefined;
        } catch {
          return undefined;
        }
      }, 15_000, 25);
      return registry;
    } catch (e) {
      await registry.close();
      // Lost a race for the port with another process: try another one.
      if (/address already in use/.test(log) && attempt < 3) continue;
      throw e;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// containers/image tools, isolated from the machine's configuration

export interface ContainersEnv {
  readonly env: NodeJS.ProcessEnv;
  readonly dir: string;
}

/**
 * Environment for buildah, podman and skopeo with storage (vfs, which works as root without
 * overlay support), registries.conf (the given hosts are insecure: plain http), containers.conf
 * and the auth file all under `dir`.
 */
export function containersEnv(dir: string, insecureHosts: string[]): ContainersEnv {
  fs.mkdirSync(dir, { recursive: true });
  const storage = path.join(dir, 'storage.conf');
  fs.writeFileSync(storage, `[storage]\ndriver = "vfs"\ngraphroot = "${path.join(dir, 'graph')}"\nrunroot = "${path.join(dir, 'run')}"\n`);
  const registries = path.join(dir, 'registries.conf');
  fs.writeFileSync(registries, `unqualified-search-registries = []\n${insecureHosts.map((h) => `\n[[registry]]\nlocation = "${h}"\ninsecure = true\n`).join('')}`);
  // podman's own state (locks, events) too, so parallel runs on one machine never share it.
  const containersConf = path.join(dir, 'containers.conf');
  fs.writeFileSync(containersConf, `[engine]\ntmp_dir = "${path.join(dir, 'libpod-tmp')}"\nevents_logger = "none"\n`);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CONTAINERS_CONF: containersConf,
    CONTAINERS_STORAGE_CONF: storage,
    CONTAINERS_REGISTRIES_CONF: registries,
    REGISTRY_AUTH_FILE: path.join(dir, 'auth.json'),
    XDG_RUNTIME_DIR: path.join(dir, 'xdg-run'),
    TMPDIR: dir,
  };
  fs.mkdirSync(env.XDG_RUNTIME_DIR!, { recursive: true, mode: 0o700 });
  // buildah refuses a REGISTRY_AUTH_FILE that does not exist.
  fs.writeFileSync(env.REGISTRY_AUTH_FILE!, '{"auths":{}}\n');
  return { env, dir };
}

/** An image in a `dir:` layout (what `skopeo copy ... dir:` writes), with its digests. */
export interface ImageDir {
  readonly dir: string;
  /** Manifest bytes exactly as pushed and pulled, and their digest. */
  readonly manifest: Buffer;
  readonly manifestDigest: string;
  readonly mediaType: string;
  readonly configDigest: string;
  /** Compressed layer digests, as the manifest lists them. */
  readonly layerDigests: string[];
  /** Uncompressed layer digests (config rootfs.diff_ids), as podman reports them. */
  readonly diffIds: string[];
}

/** Reads an image from a `dir:` layout. */
export function readImageDir(dir: string): ImageDir {
  const manifest = fs.readFileSync(path.join(dir, 'manifest.json'));
  const parsed = JSON.parse(manifest.toString('utf8')) as { mediaType?: string; config: { digest: string }; layers: Array<{ digest: string }> };
  const config = JSON.parse(fs.readFileSync(path.join(dir, parsed.config.digest.slice('sha256:'.length)), 'utf8')) as { rootfs: { diff_ids: string[] } };
  return {
    dir,
    manifest,
    manifestDigest: sha256(manifest),
    mediaType: parsed.mediaType ?? '',
    configDigest: parsed.config.digest,
    layerDigests: parsed.layers.map((l) => l.digest),
    diffIds: config.rootfs.diff_ids,
  };
}

let imageSeq = 0;

/**
 * Builds an image offline with buildah (from scratch, one layer per file, committed in `format`)
 * and writes it to a `dir:` layout under the context's dir, with compressed layers as a push
 * sends them.
 */
export async function buildImage(ctx: ContainersEnv, files: Record<string, string>, format: 'oci' | 'docker'): Promise<ImageDir> {
  const id = `${process.pid}-${imageSeq++}`;
  const src = fs.mkdtempSync(path.join(ctx.dir, 'src-'));
  const container = (await run('buildah', ['from', '--quiet', 'scratch'], ctx.env)).stdout.trim();
  const local = `localhost/e2e-${id}:latest`;
  try {
    for (const [name, content] of Object.entries(files)) {
      fs.writeFileSync(path.join(src, name), content);
      await run('buildah', ['copy', '--quiet', container, path.join(src, name), `/${name}`], ctx.env);
    }
    await run('buildah', ['commit', '--quiet', '--format', format, container, local], ctx.env);
  } finally {
    await run('buildah', ['rm', container], ctx.env).catch(() => undefined);
  }
  const dir = path.join(ctx.dir, `image-${id}`);
  await run('skopeo', ['copy', '--quiet', '--dest-compress', `containers-storage:${local}`, `dir:${dir}`], ctx.env);
  await run('buildah', ['rmi', local], ctx.env);
  return readImageDir(dir);
}

/** `skopeo copy dir:IMAGE docker://REF` (plain http), optionally with credentials (`user:password`). */
export async function pushImage(ctx: ContainersEnv, image: ImageDir, ref: string, creds?: string): Promise<void> {
  await run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', ...(creds ? ['--dest-creds', creds] : []), `dir:${image.dir}`, `docker://${ref}`], ctx.env);
}

/**
 * Checks a `skopeo copy ... dir:DIR` result against what was pushed: the manifest bytes are the
 * pushed ones, and every blob file hashes to its name and is one the manifest lists.
 */
export function verifyDirCopy(dir: string, pushed: ImageDir): void {
  const manifest = fs.readFileSync(path.join(dir, 'manifest.json'));
  if (sha256(manifest) !== pushed.manifestDigest) throw new Error(`pulled manifest ${sha256(manifest)} is not the pushed ${pushed.manifestDigest}`);
  const blobs = fs.readdirSync(dir).filter((f) => /^[0-9a-f]{64}$/.test(f));
  const expected = [pushed.configDigest, ...pushed.layerDigests].map((d) => d.slice('sha256:'.length)).sort();
  if (JSON.stringify([...blobs].sort()) !== JSON.stringify(expected)) throw new Error(`pulled blobs ${JSON.stringify(blobs)} are not ${JSON.stringify(expected)}`);
  for (const b of blobs) {
    const digest = sha256(fs.readFileSync(path.join(dir, b)));
    if (digest !== `sha256:${b}`) throw new Error(`blob ${b} has content ${digest}`);
  }
}
