/**
 * npm through the local gateway in front of a real verdaccio (the npm registry the tests start),
 * with no network. Packages are published to verdaccio directly as setup; then npm installs,
 * views and fails through the gateway, with a temp project, a temp cache and a temp userconfig
 * so this machine's npm configuration is never read or changed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import zlib from 'node:zlib';
import { canConnect, curl, delay, freePort, Gateway, LOCAL, makeTempDir, removeDir, ROOT, startGateway, writeJson } from './helpers';
import { cleanEnv, run, settledEvents, type Run } from './package-fixtures';

jest.setTimeout(180_000);

const DOMAIN = '127.0.0.1'; // npm sends the registry's host as Host; rules route on it
let dir: string;
let events: string;
let verdaccio: ChildProcess | null = null;
let verdaccioPort: number;
let gw: Gateway;
let registry: string;
let slowUpstream: http.Server | null = null;
let releaseSlowBody: (() => void) | null = null;

/** npm with only the given userconfig, a temp cache and no global config of this machine. */
function npm(args: string[], cwd: string, userconfig: string, cache = path.join(dir, 'npm-cache')): Promise<Run> {
  const env = cleanEnv({ NO_UPDATE_NOTIFIER: '1' });
  const audit = args.includes('--audit') ? [] : ['--no-audit'];
  return run('npm', [...args, '--userconfig', userconfig, '--globalconfig', path.join(dir, 'no-global-npmrc'), '--cache', cache, ...audit, '--no-fund', '--no-update-notifier'], { cwd, env });
}

async function startVerdaccio(): Promise<void> {
  verdaccioPort = await freePort();
  const home = path.join(dir, 'verdaccio');
  fs.mkdirSync(home);
  fs.writeFileSync(path.join(home, 'config.yaml'), [
    `storage: ${path.join(home, 'storage')}`,
    'auth:',
    '  htpasswd:',
    `    file: ${path.join(home, 'htpasswd')}`,
    'uplinks: {}',
    'packages:',
    "  '**':",
    '    access: $all',
    '    publish: $authenticated',
    'web:',
    '  enable: false',
    'log: { type: stdout, format: json, level: warn }',
    '',
  ].join('\n'));
  verdaccio = spawn(process.execPath, [path.join(ROOT, 'node_modules', 'verdaccio', 'bin', 'verdaccio'), '--config', path.join(home, 'config.yaml'), '--listen', `${LOCAL}:${verdaccioPort}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  verdaccio.stdout!.on('data', (d) => (output += d));
  verdaccio.stderr!.on('data', (d) => (output += d));
  const deadline = Date.now() + 30_000;
  while (!(await canConnect(verdaccioPort))) {
    if (Date.now() > deadline || verdaccio.exitCode !== null) throw new Error(`verdaccio did not start: ${output}`);
    await delay(50);
  }
}

/** Registers a verdaccio user (CouchDB-style PUT, as `npm adduser` does) and returns its token. */
async function verdaccioToken(): Promise<string> {
  const body = JSON.stringify({ name: 'publisher', password: 'not-a-secret-test-password', type: 'user', roles: [], date: new Date().toISOString() });
  const res = await fetch(`http://${LOCAL}:${verdaccioPort}/-/user/org.couchdb.user:publisher`, { method: 'PUT', body, headers: { 'content-type': 'application/json', connection: 'close' } });
  const json = (await res.json()) as { token?: string };
  if (!res.ok || !json.token) throw new Error(`verdaccio user creation failed: ${res.status} ${JSON.stringify(json)}`);
  return json.token;
}

async function publish(userconfig: string, name: string, version: string, extra: Record<string, unknown> = {}): Promise<void> {
  const pkgDir = path.join(dir, 'src', `${name.replace('/', '__')}-${version}`);
  fs.mkdirSync(pkgDir, { recursive: true });
  writeJson(path.join(pkgDir, 'package.json'), { name, version, description: 'artifact-gateway test package', main: 'index.js', license: 'MIT', ...extra });
  fs.writeFileSync(path.join(pkgDir, 'index.js'), `module.exports = ${JSON.stringify(`${name}@${version}`)};\n`);
  // Its own cache: npm keeps what it packs, and an install sharing that cache would never download.
  const r = await npm(['publish', '--registry', `http://${LOCAL}:${verdaccioPort}/`], pkgDir, userconfig, path.join(dir, 'publisher-cache'));
  if (r.code !== 0) throw new Error(`npm publish ${name}@${version} failed: ${r.stderr}`);
}

/** An upstream registry that holds back the second half of a packument until the test says so. */
async function startSlowUpstream(): Promise<number> {
  slowUpstream = http.createServer((_req, res) => {
    const versions: Record<string, unknown> = {};
    for (let i = 0; i < 2000; i++) versions[`1.0.${i}`] = { name: 'slow-pkg', version: `1.0.${i}`, readme: 'x'.repeat(200), dist: { tarball: `http://slow.test/slow-pkg/-/slow-pkg-1.0.${i}.tgz`, shasum: 'a'.repeat(40) } };
    const doc = Buffer.from(JSON.stringify({ name: 'slow-pkg', 'dist-tags': { latest: '1.0.1999' }, versions }));
    res.writeHead(200, { 'content-type': 'application/json' });
    const half = Math.floor(doc.length / 2);
    res.write(doc.subarray(0, half));
    releaseSlowBody = () => res.end(doc.subarray(half));
  });
  await new Promise<void>((resolve) => slowUpstream!.listen(0, LOCAL, resolve));
  return (slowUpstream.address() as { port: number }).port;
}

let userconfig: string;

beforeAll(async () => {
  dir = makeTempDir('gw-e2e-npm-');
  events = path.join(dir, 'events');
  fs.writeFileSync(path.join(dir, 'no-global-npmrc'), '');
  await startVerdaccio();
  const publisherrc = path.join(dir, 'publisher.npmrc');
  fs.writeFileSync(publisherrc, `//${LOCAL}:${verdaccioPort}/:_authToken=${await verdaccioToken()}\n`);
  await publish(publisherrc, 'rocket-demo', '1.0.0');
  await publish(publisherrc, 'rocket-demo', '1.1.0');
  await publish(publisherrc, '@acme/widget', '1.0.0', { dependencies: { 'rocket-demo': '^1.0.0' } });
  await publish(publisherrc, 'plain-dep', '2.0.0');

  const slowPort = await startSlowUpstream();
  const deadPort = await freePort();
  const verdaccioUrl = `http://${LOCAL}:${verdaccioPort}`;
  const manifest = writeJson(path.join(dir, 'manifest.json'), {
    rules: [
      { type: 'npm-v1', domain: DOMAIN, 'package-name': 'rocket-demo', registry: verdaccioUrl, 'package-id': 'rocket-npm' },
      { type: 'npm-v1', domain: DOMAIN, 'package-name': '@acme/*', registry: verdaccioUrl, 'package-id': 'acme-npm' },
      { type: 'npm-v1', domain: DOMAIN, 'package-name': 'slow-pkg', registry: `http://${LOCAL}:${slowPort}`, 'package-id': 'slow' },
      { type: 'npm-v1', domain: DOMAIN, 'package-name': 'dead-pkg', registry: `http://${LOCAL}:${deadPort}`, 'package-id': 'dead' },
      // Every other package, from the default registry (registry.npmjs.org), which --upstream points at verdaccio.
      { type: 'npm-v1', domain: DOMAIN, 'package-name': '*', 'package-id': 'npm-dependencies' },
    ],
  });
  gw = await startGateway({ manifest, events, upstreams: [`registry.npmjs.org=${verdaccioUrl}`] });
  registry = `http://${DOMAIN}:${gw.port}/`;
  // Users' users have no credentials for the gateway: an empty userconfig.
  userconfig = path.join(dir, 'user.npmrc');
  fs.writeFileSync(userconfig, '');
});

afterAll(async () => {
  releaseSlowBody?.();
  await gw?.kill();
  if (verdaccio && verdaccio.exitCode === null) {
    const exited = new Promise((r) => verdaccio!.once('exit', r));
    verdaccio.kill('SIGTERM');
    await Promise.race([exited, delay(5_000)]);
    if (verdaccio.exitCode === null) {
      verdaccio.kill('SIGKILL');
      await exited;
    }
  }
  if (slowUpstream) {
    const s = slowUpstream;
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
  removeDir(dir);
});

const settled = () => settledEvents(gw, events, DOMAIN);

test('npm install of an unscoped and a scoped package: lockfile resolved URLs point at the gateway, one download per tarball', async () => {
  const project = path.join(dir, 'project');
  fs.mkdirSync(project);
  writeJson(path.join(project, 'package.json'), { name: 'consumer', version: '0.0.0', private: true });
  const r = await npm(['install', '--registry', registry, 'rocket-demo', '@acme/widget'], project, userconfig);
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: expect.any(String) });

  expect(require(path.join(project, 'node_modules', 'rocket-demo'))).toBe('rocket-demo@1.1.0');
  expect(require(path.join(project, 'node_modules', '@acme', 'widget'))).toBe('@acme/widget@1.0.0');
  const lock = JSON.parse(fs.readFileSync(path.join(project, 'package-lock.json'), 'utf8'));
  expect(lock.packages['node_modules/rocket-demo'].resolved).toBe(`${registry}rocket-demo/-/rocket-demo-1.1.0.tgz`);
  expect(lock.packages['node_modules/@acme/widget'].resolved).toBe(`${registry}@acme/widget/-/widget-1.0.0.tgz`);
  expect(lock.packages['node_modules/rocket-demo'].integrity).toMatch(/^sha512-/);

  const evs = await settled();
  const downloads = evs.filter((e) => e.download);
  expect(downloads.map((e) => [e.package_id, e.file_name, e.version, e.status, e.client_name]).sort()).toEqual([
    ['acme-npm', 'widget-1.0.0.tgz', '1.0.0', 307, 'npm'],
    ['rocket-npm', 'rocket-demo-1.1.0.tgz', '1.1.0', 307, 'npm'],
  ]);
  expect(downloads.find((e) => e.package_id === 'acme-npm')!.target).toBe(`http://${LOCAL}:${verdaccioPort}/@acme/widget/-/widget-1.0.0.tgz`);
  // Packuments were proxied (npm asks for /@acme%2fwidget) and never counted.
  const packuments = evs.filter((e) => e.kind === 'npm' && e.action === 'proxy');
  expect([...new Set(packuments.map((e) => e.path))].sort()).toEqual(['/@acme%2fwidget', '/rocket-demo']);
  expect(packuments.every((e) => !e.download && e.status === 200)).toBe(true);
});

test('npm ci (with audit on) from the lockfile downloads through the gateway again (a fresh cache), one download each', async () => {
  const project = path.join(dir, 'project');
  const before = (await settled()).filter((e) => e.download).length;
  fs.rmSync(path.join(project, 'node_modules'), { recursive: true });
  fs.rmSync(path.join(dir, 'npm-cache'), { recursive: true, force: true });
  // With npm's audit on: the gateway does not forward the audit request, and npm installs anyway.
  const r = await npm(['ci', '--audit', '--registry', registry], project, userconfig);
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
  expect((await settled()).filter((e) => e.download).length).toBe(before + 2);
});

test('npm view works for unscoped and scoped packages (full packuments, all forms of the scoped path)', async () => {
  const v = await npm(['view', 'rocket-demo', 'versions', '--json', '--registry', registry], dir, userconfig);
  expect(JSON.parse(v.stdout)).toEqual(['1.0.0', '1.1.0']);
  const s = await npm(['view', '@acme/widget', 'dist.tarball', '--registry', registry], dir, userconfig);
  expect(s.stdout.trim()).toBe(`${registry}@acme/widget/-/widget-1.0.0.tgz`);
  // Compressed for clients that accept gzip (npm does), decoded from whatever the upstream sent.
  const gz = await curl(gw.url('/rocket-demo'), ['-H', `Host: ${DOMAIN}`, '-H', 'Accept-Encoding: gzip']);
  expect(gz.headers['content-encoding']).toBe('gzip');
  expect(JSON.parse(zlib.gunzipSync(gz.body).toString())['dist-tags']).toEqual({ latest: '1.1.0' });
  for (const p of ['/@acme%2fwidget', '/@acme%2Fwidget', '/@acme/widget']) {
    const r = await curl(gw.url(p), ['-H', `Host: ${DOMAIN}`]);
    expect({ p, status: r.status }).toEqual({ p, status: 200 });
    expect(JSON.parse(r.body.toString()).versions['1.0.0'].dist.tarball).toBe(`http://${DOMAIN}/@acme/widget/-/widget-1.0.0.tgz`);
  }
});

test('--upstream overrides apply to packument fetches; tarball redirects name the rule\'s registry (the contract)', async () => {
  const v = await npm(['view', 'plain-dep', 'dist.tarball', '--registry', registry], dir, userconfig);
  expect(v.stdout.trim()).toBe(`${registry}plain-dep/-/plain-dep-2.0.0.tgz`);
  const t = await curl(gw.url('/plain-dep/-/plain-dep-2.0.0.tgz'), ['-H', `Host: ${DOMAIN}`]);
  expect(t.status).toBe(307);
  expect(t.headers.location).toBe('https://registry.npmjs.org/plain-dep/-/plain-dep-2.0.0.tgz');
});

test('unknown packages: 404 in npm\'s JSON error shape', async () => {
  for (const name of ['left-pad-nowhere', '@acme/missing']) {
    const r = await npm(['view', name, '--registry', registry], dir, userconfig);
    expect({ name, code: r.code }).toEqual({ name, code: 1 });
    expect(r.stderr).toMatch(/E404/);
  }
  const direct = await curl(gw.url('/@acme%2fmissing'), ['-H', `Host: ${DOMAIN}`]);
  expect(direct.status).toBe(404);
  expect(direct.headers['content-type']).toBe('application/json');
  expect(JSON.parse(direct.body.toString())).toEqual({ error: 'Not found' });
});

test('an unreachable registry: 502 with an npm error body naming the upstream only', async () => {
  const r = await curl(gw.url('/dead-pkg'), ['-H', `Host: ${DOMAIN}`]);
  expect(r.status).toBe(502);
  expect(JSON.parse(r.body.toString())).toEqual({ error: expect.stringMatching(/^upstream 127\.0\.0\.1:\d+ is unreachable/) });
  const v = await npm(['view', 'dead-pkg', '--registry', registry, '--fetch-retries', '0'], dir, userconfig);
  expect(v.code).not.toBe(0);
  expect(v.stderr).toMatch(/502 Bad Gateway/);
});

test('packuments are streamed: the client gets rewritten bytes before the upstream has sent the whole document', async () => {
  const firstBytes = await new Promise<{ text: string; res: http.IncomingMessage }>((resolve, reject) => {
    // X-Forwarded-Proto (set by a TLS-terminating front) makes the tarball URLs https.
    const req = http.get({ host: LOCAL, port: gw.port, path: '/slow-pkg', headers: { host: `${DOMAIN}:${gw.port}`, 'x-forwarded-proto': 'https' } }, (res) => {
      res.setEncoding('utf8');
      res.once('data', (text: string) => resolve({ text, res }));
      res.once('end', () => reject(new Error(`the gateway answered ${res.statusCode} with no body`)));
    });
    req.once('error', reject);
  });
  // The upstream still holds back half the document here: these bytes were streamed.
  expect(firstBytes.res.statusCode).toBe(200);
  const origin = `https://${DOMAIN}:${gw.port}`;
  expect(firstBytes.text).toContain(`"tarball":"${origin}/slow-pkg/-/slow-pkg-1.0.0.tgz"`);
  let rest = firstBytes.text;
  firstBytes.res.on('data', (t: string) => (rest += t));
  const ended = new Promise((r) => firstBytes.res.once('end', r));
  releaseSlowBody!();
  await ended;
  const doc = JSON.parse(rest);
  expect(Object.keys(doc.versions)).toHaveLength(2000);
  expect(doc.versions['1.0.1999'].dist.tarball).toBe(`${origin}/slow-pkg/-/slow-pkg-1.0.1999.tgz`);
});
