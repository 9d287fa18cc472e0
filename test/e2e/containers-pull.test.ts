/**
 * Container pulls through the local gateway with real software and no network: the distribution
 * registry from Debian (`docker-registry`), without auth and with token auth (a test token
 * server), images built offline with buildah and pushed straight to the registry, then pulled
 * through the gateway by skopeo and podman (proxied clients). Checks the pulled bytes, the
 * events (one download per manifest GET), the registry headers the proxy passes on, pushes
 * through the gateway, and a domain that fronts two registries and a renamed repository (the
 * gateway's own token realm).
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  Gateway, GatewayEventJson, makeTempDir, markerPath, readEvents, readEventText, removeDir, request, startGateway, waitForEvents, writeJson, type NodeResponse,
} from './helpers';
import {
  buildImage, containersEnv, pushImage, readImageDir, requireTools, run, sha256, startRegistry, startTokenServer, verifyDirCopy,
  type ContainersEnv, type ImageDir, type Registry, type TokenServer,
} from './registry';

jest.setTimeout(120_000);

const PUSHER = 'pusher:s3cret-pass';
const [PUSH_USER, PUSH_PASSWORD] = PUSHER.split(':');

/** Reads a gateway's events step by step: `take()` returns the events of the requests answered since the last call. */
class EventCursor {
  private seen = 0;
  constructor(private readonly gw: Gateway, private readonly dir: string) {}

  async take(): Promise<GatewayEventJson[]> {
    // Events are written in response order: once the marker's is on disk, every earlier one is.
    const marker = markerPath();
    await request(this.gw.port, { path: marker, headers: { host: '127.0.0.1' } });
    await waitForEvents(this.dir, (e) => e.path === marker);
    const all = readEvents(this.dir);
    const out = all.slice(this.seen).filter((e) => e.path !== marker);
    this.seen = all.length;
    return out;
  }
}

/**
 * The events of one pull: exactly one download, for the manifest GET; the /v2/ ping, 401 round
 * trips, HEADs and blobs are not downloads.
 */
function expectOnePull(events: GatewayEventJson[], want: { image: string; reference: string; packageId: string; upstream: string; client: string; blobs: number }): void {
  const downloads = events.filter((e) => e.download);
  expect(downloads).toHaveLength(1);
  expect(downloads[0]).toMatchObject({
    kind: 'docker', action: 'proxy', method: 'GET', status: 200, path: `/v2/${want.image}/manifests/${want.reference}`,
    image: want.image, reference: want.reference, package_id: want.packageId, upstream: want.upstream, client_name: want.client,
  });
  expect(downloads[0].client_version).toMatch(/^\d+\.\d+/);
  const manifestGets = events.filter((e) => e.method === 'GET' && e.path.includes('/manifests/') && e.status === 200);
  expect(manifestGets).toHaveLength(1);
  const blobs = events.filter((e) => e.path.includes('/blobs/') && e.status === 200);
  expect(blobs.length).toBe(want.blobs);
  expect(blobs.every((e) => !e.download && e.image === want.image && e.reference?.startsWith('sha256:'))).toBe(true);
  for (const e of events.filter((x) => x !== downloads[0])) expect({ path: e.path, status: e.status, download: e.download }).toEqual({ path: e.path, status: e.status, download: false });
}

async function skopeoPull(ctx: ContainersEnv, gw: Gateway, ref: string, out: string, extra: string[] = []): Promise<void> {
  await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', ...extra, `docker://127.0.0.1:${gw.port}/${ref}`, `dir:${out}`], ctx.env);
}

/** `podman pull` through the gateway; checks the image's digest, its layers and a file's content. */
async function podmanPullAndCheck(ctx: ContainersEnv, gw: Gateway, ref: string, image: ImageDir, file: [string, string]): Promise<void> {
  const name = `127.0.0.1:${gw.port}/${ref}`;
  await run('podman', ['pull', '--quiet', name], ctx.env);
  const [inspected] = JSON.parse((await run('podman', ['image', 'inspect', name], ctx.env)).stdout) as Array<{ Digest: string; RootFS: { Layers: string[] } }>;
  expect(inspected.Digest).toBe(image.manifestDigest);
  expect(inspected.RootFS.Layers).toEqual(image.diffIds);
  const mount = (await run('podman', ['image', 'mount', name], ctx.env)).stdout.trim();
  try {
    expect(fs.readFileSync(path.join(mount, file[0]), 'utf8')).toBe(file[1]);
  } finally {
    await run('podman', ['image', 'unmount', name], ctx.env);
  }
}

/** Headers as [name, value] lines in order, without the per-connection ones. */
function headerLines(r: NodeResponse): string[] {
  const out: string[] = [];
  for (let i = 0; i < r.rawHeaders.length; i += 2) {
    if (!['date', 'connection', 'keep-alive'].includes(r.rawHeaders[i].toLowerCase())) out.push(`${r.rawHeaders[i]}: ${r.rawHeaders[i + 1]}`);
  }
  return out;
}

let root: string;
beforeAll(() => {
  requireTools('docker-registry', 'skopeo', 'podman', 'buildah', 'openssl');
  root = makeTempDir('gw-e2e-containers-');
});
afterAll(() => removeDir(root));

/** One registry (with token auth when `tokens` is given), one image pushed to it as acme/rocket:1.0, a gateway in front. */
interface OneRegistry {
  dir: string;
  registry: Registry;
  gw: Gateway;
  log: EventCursor;
  image: ImageDir;
  content: string;
  builder: ContainersEnv;
  client: ContainersEnv;
  events: string;
}

/** Fills `s` step by step, so that `stopOneRegistry(s)` stops whatever started even if a step failed. */
async function startOneRegistry(s: Partial<OneRegistry>, name: string, format: 'oci' | 'docker', tokens?: TokenServer): Promise<void> {
  s.dir = fs.mkdtempSync(path.join(root, `${name}-`));
  s.events = path.join(s.dir, 'events');
  s.registry = await startRegistry(path.join(s.dir, 'registry'), { token: tokens });
  s.builder = containersEnv(path.join(s.dir, 'builder'), [s.registry.host]);
  s.content = `${name} layer ${Date.now()}\n`;
  s.image = await buildImage(s.builder, { 'hello.txt': s.content }, format);
  await pushImage(s.builder, s.image, `${s.registry.host}/acme/rocket:1.0`, tokens ? PUSHER : undefined);
  const manifest = writeJson(path.join(s.dir, 'manifest.json'), {
    rules: [{ type: 'docker-v1', domain: '127.0.0.1', 'repository-name': 'acme/rocket', registry: s.registry.base, 'package-id': 'rocket' }],
  });
  s.gw = await startGateway({ manifest, events: s.events });
  s.log = new EventCursor(s.gw, s.events);
  s.client = containersEnv(path.join(s.dir, 'client'), [`127.0.0.1:${s.gw.port}`]);
}

async function stopOneRegistry(s: Partial<OneRegistry>): Promise<void> {
  await s.gw?.kill();
  await s.registry?.close();
}

describe('one registry without auth: skopeo and podman pull through the gateway', () => {
  const s = {} as OneRegistry;
  beforeAll(() => startOneRegistry(s, 'noauth', 'oci'));
  afterAll(() => stopOneRegistry(s));

  test('skopeo copy gets the pushed manifest and blobs; one download event', async () => {
    const out = path.join(s.dir, 'skopeo-out');
    await skopeoPull(s.client, s.gw, 'acme/rocket:1.0', out);
    verifyDirCopy(out, s.image);
    const evs = await s.log.take();
    expectOnePull(evs, { image: 'acme/rocket', reference: '1.0', packageId: 'rocket', upstream: s.registry.base, client: 'skopeo', blobs: 2 });
    // One registry, no auth: the ping is proxied to it and answered 200.
    expect(evs.find((e) => e.path === '/v2/')).toMatchObject({ action: 'proxy', status: 200, download: false, target: `${s.registry.base}/v2/` });
  });

  test('podman pull stores the same image, layers and file; one download event', async () => {
    await s.log.take();
    await podmanPullAndCheck(s.client, s.gw, 'acme/rocket:1.0', s.image, ['hello.txt', s.content]);
    expectOnePull(await s.log.take(), { image: 'acme/rocket', reference: '1.0', packageId: 'rocket', upstream: s.registry.base, client: 'containers-image', blobs: 2 });
  });
});

describe('one registry with token auth: the upstream challenge passes through unchanged', () => {
  const s = {} as OneRegistry;
  let tokens: TokenServer;
  beforeAll(async () => {
    fs.mkdirSync(path.join(root, 'token-server'));
    tokens = await startTokenServer(path.join(root, 'token-server'), { service: 'test-registry', users: { [PUSH_USER]: PUSH_PASSWORD } });
    await startOneRegistry(s, 'token', 'docker', tokens);
  });
  afterAll(async () => {
    await stopOneRegistry(s);
    await tokens?.close();
  });

  test('skopeo copy: anonymous token from the upstream realm, pushed bytes, one download', async () => {
    const seen = tokens.seen.length;
    const out = path.join(s.dir, 'skopeo-out');
    await skopeoPull(s.client, s.gw, 'acme/rocket:1.0', out);
    verifyDirCopy(out, s.image);
    // The client went to the registry's own token server (reachable here), anonymously.
    expect(tokens.seen.slice(seen)).toEqual([{ service: 'test-registry', scopes: ['repository:acme/rocket:pull'], user: null, authorization: false }]);
    const evs = await s.log.take();
    expectOnePull(evs, { image: 'acme/rocket', reference: '1.0', packageId: 'rocket', upstream: s.registry.base, client: 'skopeo', blobs: 2 });
    expect(evs.filter((e) => e.status === 401).every((e) => !e.download)).toBe(true);
    expect(evs.some((e) => e.path === '/v2/' && e.status === 401)).toBe(true);
  });

  test('podman pull: same image, layers and file; one download', async () => {
    await s.log.take();
    await podmanPullAndCheck(s.client, s.gw, 'acme/rocket:1.0', s.image, ['hello.txt', s.content]);
    expectOnePull(await s.log.take(), { image: 'acme/rocket', reference: '1.0', packageId: 'rocket', upstream: s.registry.base, client: 'containers-image', blobs: 2 });
  });

  test('the proxy answers what the registry answers: challenges, HEAD, 304, errors, blobs, tag lists', async () => {
    const token = JSON.parse((await request(tokens.port, { path: '/token?service=test-registry&scope=repository:acme/rocket:pull' })).body.toString()).token as string;
    const auth = { authorization: `Bearer ${token}` };
    const accept = { accept: ['application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json'] };
    const cases: Array<{ method: string; path: string; headers: Record<string, string | string[]>; status: number }> = [
      { method: 'GET', path: '/v2/', headers: {}, status: 401 },
      { method: 'GET', path: '/v2/acme/rocket/manifests/1.0', headers: accept, status: 401 },
      { method: 'HEAD', path: '/v2/acme/rocket/manifests/1.0', headers: { ...auth, ...accept }, status: 200 },
      { method: 'GET', path: '/v2/acme/rocket/manifests/1.0', headers: { ...auth, ...accept }, status: 200 },
      { method: 'GET', path: '/v2/acme/rocket/manifests/1.0', headers: { ...auth, ...accept, 'if-none-match': `"${s.image.manifestDigest}"` }, status: 304 },
      { method: 'GET', path: '/v2/acme/rocket/manifests/2.0', headers: { ...auth, ...accept }, status: 404 },
      { method: 'HEAD', path: `/v2/acme/rocket/blobs/${s.image.layerDigests[0]}`, headers: auth, status: 200 },
      { method: 'GET', path: `/v2/acme/rocket/blobs/${s.image.layerDigests[0]}`, headers: auth, status: 200 },
      { method: 'GET', path: '/v2/acme/rocket/tags/list?n=1', headers: auth, status: 200 },
    ];
    for (const c of cases) {
      const direct = await request(s.registry.port, { method: c.method, path: c.path, headers: c.headers });
      const proxied = await request(s.gw.port, { method: c.method, path: c.path, headers: { ...c.headers, host: '127.0.0.1' } });
      const what = `${c.method} ${c.path}`;
      expect({ what, direct: direct.status, proxied: proxied.status }).toEqual({ what, direct: c.status, proxied: c.status });
      // Header names, values and order as the registry sent them (WWW-Authenticate byte for byte,
      // Docker-Distribution-API-Version, Content-Type, Docker-Content-Digest, Content-Length, ETag).
      expect({ what, headers: headerLines(proxied) }).toEqual({ what, headers: headerLines(direct) });
      expect({ what, body: proxied.body.toString('latin1') }).toEqual({ what, body: direct.body.toString('latin1') });
    }
    // HEAD keeps the real length without a body; errors are the registry's OCI JSON.
    const head = await request(s.gw.port, { method: 'HEAD', path: '/v2/acme/rocket/manifests/1.0', headers: { ...auth, ...accept, host: '127.0.0.1' } });
    expect(Number(head.headers['content-length'])).toBe(s.image.manifest.length);
    expect(head.headers['docker-content-digest']).toBe(s.image.manifestDigest);
    expect(head.body.length).toBe(0);
    const missing = await request(s.gw.port, { path: '/v2/acme/rocket/manifests/2.0', headers: { ...auth, ...accept, host: '127.0.0.1' } });
    expect(JSON.parse(missing.body.toString()).errors[0].code).toBe('MANIFEST_UNKNOWN');
    const blob = await request(s.gw.port, { path: `/v2/acme/rocket/blobs/${s.image.layerDigests[0]}`, headers: { ...auth, host: '127.0.0.1' } });
    expect(sha256(blob.body)).toBe(s.image.layerDigests[0]);
  });

  test('skopeo pushes a new image through the gateway (uploads come back through it), with credentials', async () => {
    const pushed = await buildImage(s.builder, { 'pushed.txt': `pushed ${Date.now()}\n` }, 'oci');
    await s.log.take();
    await pushImage(s.client, pushed, `127.0.0.1:${s.gw.port}/acme/rocket:pushed`, PUSHER);
    const evs = await s.log.take();
    // The blob bytes went through the gateway (upload sessions resolve to gateway paths), and a push is no download.
    const uploads = evs.filter((e) => e.path.startsWith('/v2/acme/rocket/blobs/uploads/'));
    expect(uploads.some((e) => e.method === 'POST' && e.status === 202)).toBe(true);
    expect(uploads.some((e) => (e.method === 'PUT' || e.method === 'PATCH') && e.status < 300)).toBe(true);
    expect(evs.find((e) => e.method === 'PUT' && e.path === '/v2/acme/rocket/manifests/pushed')).toMatchObject({ status: 201, download: false });
    expect(evs.every((e) => !e.download)).toBe(true);
    // The registry has exactly the pushed image.
    const out = path.join(s.dir, 'pushed-back');
    await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', '--src-creds', PUSHER, `docker://${s.registry.host}/acme/rocket:pushed`, `dir:${out}`], s.builder.env);
    verifyDirCopy(out, pushed);
    // Credentials went only to the token server, never into an event.
    expect(readEventText(s.events)).not.toMatch(new RegExp(`${PUSH_PASSWORD}|Bearer|Basic`));
  });
});

describe('two registries with their own token services and a renamed repository behind one domain', () => {
  let dir: string;
  let tokensA: TokenServer;
  let tokensB: TokenServer;
  let registryA: Registry;
  let registryB: Registry;
  let gw: Gateway;
  let log: EventCursor;
  let rocket: ImageDir;
  let skates: ImageDir;
  let builder: ContainersEnv;
  let client: ContainersEnv;
  const events = () => path.join(dir, 'events');
  const skatesContent = `skates ${Date.now()}\n`;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(root, 'multi-'));
    fs.mkdirSync(path.join(dir, 'a'));
    fs.mkdirSync(path.join(dir, 'b'));
    [tokensA, tokensB] = await Promise.all([
      startTokenServer(path.join(dir, 'a'), { service: 'registry-a', users: { [PUSH_USER]: PUSH_PASSWORD } }),
      startTokenServer(path.join(dir, 'b'), { service: 'registry-b', users: { [PUSH_USER]: PUSH_PASSWORD } }),
    ]);
    [registryA, registryB] = await Promise.all([
      startRegistry(path.join(dir, 'a', 'registry'), { token: tokensA }),
      startRegistry(path.join(dir, 'b', 'registry'), { token: tokensB }),
    ]);
    builder = containersEnv(path.join(dir, 'builder'), [registryA.host, registryB.host]);
    [rocket, skates] = await Promise.all([
      buildImage(builder, { 'rocket.txt': `rocket ${Date.now()}\n` }, 'oci'),
      buildImage(builder, { 'skates.txt': skatesContent }, 'docker'),
    ]);
    await pushImage(builder, rocket, `${registryA.host}/acme/rocket:1.0`, PUSHER);
    await pushImage(builder, skates, `${registryB.host}/acme-corp/rocket-skates:2.0`, PUSHER);
    const manifest = writeJson(path.join(dir, 'manifest.json'), {
      rules: [
        { type: 'docker-v1', domain: '127.0.0.1', 'repository-name': 'acme/rocket', registry: registryA.base, 'package-id': 'rocket' },
        { type: 'docker-v1', domain: '127.0.0.1', 'repository-name': 'acme/skates', 'upstream-repository-name': 'acme-corp/rocket-skates', registry: registryB.base, 'package-id': 'skates' },
      ],
    });
    gw = await startGateway({ manifest, events: events() });
    log = new EventCursor(gw, events());
    client = containersEnv(path.join(dir, 'client'), [`127.0.0.1:${gw.port}`]);
  });
  afterAll(async () => {
    await gw?.kill();
    await Promise.all([registryA?.close(), registryB?.close()]);
    await Promise.all([tokensA?.close(), tokensB?.close()]);
  });

  test('skopeo pulls from both registries; each token service is asked for its own repository, by the gateway', async () => {
    const [seenA, seenB] = [tokensA.seen.length, tokensB.seen.length];
    const outA = path.join(dir, 'out-rocket');
    const outB = path.join(dir, 'out-skates');
    await skopeoPull(client, gw, 'acme/rocket:1.0', outA);
    verifyDirCopy(outA, rocket);
    const first = await log.take();
    await skopeoPull(client, gw, 'acme/skates:2.0', outB);
    verifyDirCopy(outB, skates);
    expect(tokensA.seen.slice(seenA)).toEqual([{ service: 'registry-a', scopes: ['repository:acme/rocket:pull'], user: null, authorization: false }]);
    expect(tokensB.seen.slice(seenB)).toEqual([{ service: 'registry-b', scopes: ['repository:acme-corp/rocket-skates:pull'], user: null, authorization: false }]);

    const second = await log.take();
    const all = [...first, ...second];
    expectOnePull(first, { image: 'acme/rocket', reference: '1.0', packageId: 'rocket', upstream: registryA.base, client: 'skopeo', blobs: 2 });
    expectOnePull(second, { image: 'acme/skates', reference: '2.0', packageId: 'skates', upstream: registryB.base, client: 'skopeo', blobs: 2 });
    // The gateway answers the ping itself with its own realm; the renamed repository is proxied under its upstream name.
    expect(first.find((e) => e.path === '/v2/')).toMatchObject({ action: 'unauthorized', status: 401, target: null, upstream: null, download: false });
    expect(second.find((e) => e.download)!.target).toBe(`${registryB.base}/v2/acme-corp/rocket-skates/manifests/2.0`);
    // The token endpoint records nothing.
    expect(all.some((e) => e.path === '/v2/token')).toBe(false);
  });

  test('the gateway challenge names its own realm; without a token the upstream\'s 401 comes back with the gateway\'s challenge', async () => {
    const ping = await request(gw.port, { path: '/v2/', headers: { host: `127.0.0.1:${gw.port}` } });
    expect(ping.status).toBe(401);
    expect(ping.headers['www-authenticate']).toBe(`Bearer realm="http://127.0.0.1:${gw.port}/v2/token",service="127.0.0.1"`);
    expect(ping.headers['docker-distribution-api-version']).toBe('registry/2.0');
    const manifest = await request(gw.port, { path: '/v2/acme/skates/manifests/2.0', headers: { host: `127.0.0.1:${gw.port}` } });
    expect(manifest.status).toBe(401);
    expect(manifest.rawHeaders.filter((h) => h.toLowerCase() === 'www-authenticate')).toHaveLength(1);
    expect(manifest.headers['www-authenticate']).toBe(`Bearer realm="http://127.0.0.1:${gw.port}/v2/token",service="127.0.0.1",scope="repository:acme/skates:pull"`);
    expect(JSON.parse(manifest.body.toString()).errors[0].code).toBe('UNAUTHORIZED');
  });

  test('podman pulls the renamed repository: same image, layers and file', async () => {
    await log.take();
    await podmanPullAndCheck(client, gw, 'acme/skates:2.0', skates, ['skates.txt', skatesContent]);
    expectOnePull(await log.take(), { image: 'acme/skates', reference: '2.0', packageId: 'skates', upstream: registryB.base, client: 'containers-image', blobs: 2 });
  });

  test('skopeo pushes to the renamed repository through the gateway with credentials; they reach only registry B\'s token service', async () => {
    const [seenA, seenB] = [tokensA.seen.length, tokensB.seen.length];
    const pushed = await buildImage(builder, { 'new.txt': `new ${Date.now()}\n` }, 'oci');
    await pushImage(client, pushed, `127.0.0.1:${gw.port}/acme/skates:pushed`, PUSHER);
    expect(tokensA.seen.length).toBe(seenA);
    const asked = tokensB.seen.slice(seenB);
    expect(asked.length).toBeGreaterThan(0);
    expect(asked.every((t) => t.user === PUSH_USER && t.scopes.every((s) => s.startsWith('repository:acme-corp/rocket-skates:')))).toBe(true);
    expect(asked.some((t) => t.scopes.some((s) => s.includes('push')))).toBe(true);
    const out = path.join(dir, 'pushed-back');
    await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', '--src-creds', PUSHER, `docker://${registryB.host}/acme-corp/rocket-skates:pushed`, `dir:${out}`], builder.env);
    verifyDirCopy(out, pushed);
    expect(readImageDir(out).manifestDigest).toBe(pushed.manifestDigest);
  });

  test('wrong credentials get 401 from the gateway\'s token endpoint, naming the upstream and not the password', async () => {
    const r = await request(gw.port, {
      path: '/v2/token?service=127.0.0.1&scope=repository:acme/skates:pull,push',
      headers: { host: '127.0.0.1', authorization: `Basic ${Buffer.from(`${PUSH_USER}:wrong-password`).toString('base64')}` },
    });
    expect(r.status).toBe(401);
    expect(JSON.parse(r.body.toString()).errors[0]).toMatchObject({ code: 'UNAUTHORIZED', message: expect.stringContaining(registryB.host) });
    expect(r.body.toString()).not.toMatch(/wrong-password/);
    expect(gw.stderr).not.toMatch(/wrong-password|s3cret/);
  });
});
