/**
 * Redirect mode against the real distribution registry with token auth: the exact request
 * sequences Docker Engine and containerd send (their User-Agents and Accept lists; Docker's `/v2/`
 * ping and its challenge, containerd's HEAD-401-token-HEAD-GET), scripted with node's http the
 * way their Go clients behave (redirects followed, `Authorization` dropped on a host change and
 * re-added only for hosts whose challenge the client learned). Checks the gateway's `Location`s,
 * that following them with the learned token pulls the pushed bytes, and the events. Also: the
 * same clients on a domain that uses the gateway's own token realm (proxied), and real skopeo
 * failing on a forced redirect, which is why such clients are proxied.
 */
import fs from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import { Gateway, GatewayEventJson, makeTempDir, markerPath, readEvents, removeDir, request, startGateway, waitForEvents, writeJson } from './helpers';
import { buildImage, containersEnv, pushImage, requireTools, run, sha256, startRegistry, startTokenServer, type ImageDir, type Registry, type TokenServer } from './registry';
import { parseChallenges } from '../../lambda/core/registry-auth';

jest.setTimeout(120_000);

const DOCKER_UA = 'docker/24.0.7 go/go1.20.10 git-commit/311b9ff kernel/6.1.0-18-amd64 os/linux arch/amd64 UpstreamClient(Docker-Client/24.0.7 \\(linux\\))';
const CONTAINERD_UA = 'containerd/v1.7.13';
/** Docker Engine sends one Accept line per media type; containerd one comma-separated line. */
const DOCKER_ACCEPT = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
  'application/json',
];
const CONTAINERD_ACCEPT = 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, */*';

interface Exchange {
  method: string;
  url: string;
  status: number;
  location: string | null;
  /** The Authorization scheme sent, if any. */
  auth: string | null;
}

interface Answer {
  url: string;
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/**
 * A registry client that behaves like Go's http.Client under Docker's and containerd's auth
 * handlers: it follows redirects itself, and sets `Authorization` on each request (the first one
 * and every redirected one) only for a host whose token it has, so a redirect to another host
 * never carries the previous host's credentials. Every host here is on 127.0.0.1; the URL's host
 * goes in the Host header, as after name resolution.
 */
class ScriptedClient {
  readonly log: Exchange[] = [];
  private readonly tokens = new Map<string, string>();

  constructor(readonly userAgent: string) {}

  async send(method: string, url: string, headers: http.OutgoingHttpHeaders = {}): Promise<Answer> {
    let u = new URL(url);
    for (let hop = 0; hop < 10; hop++) {
      const token = this.tokens.get(u.host);
      const h: http.OutgoingHttpHeaders = { ...headers, 'user-agent': this.userAgent, host: u.host, ...(token ? { authorization: `Bearer ${token}` } : {}) };
      const r = await request(Number(u.port), { method, path: `${u.pathname}${u.search}`, headers: h });
      const location = typeof r.headers.location === 'string' ? r.headers.location : null;
      this.log.push({ method, url: u.href, status: r.status, location, auth: token ? 'Bearer' : null });
      if ([301, 302, 303, 307, 308].includes(r.status) && location) {
        u = new URL(location, u);
        continue;
      }
      return { url: u.href, status: r.status, headers: r.headers, body: r.body };
    }
    throw new Error(`too many redirects from ${url}`);
  }

  /**
   * Learns the Bearer challenge of a 401 for the host that answered it and fetches a token from
   * its realm: Docker with the repository scope it pulls, containerd with the challenge's scope.
   */
  async authenticate(answer: Answer, scope?: string): Promise<void> {
    expect(answer.status).toBe(401);
    const challenge = parseChallenges(String(answer.headers['www-authenticate'])).find((c) => c.scheme === 'bearer');
    expect(challenge?.params.realm).toBeTruthy();
    const realm = new URL(challenge!.params.realm);
    if (challenge!.params.service) realm.searchParams.set('service', challenge!.params.service);
    realm.searchParams.set('scope', scope ?? challenge!.params.scope);
    const r = await this.send('GET', realm.href);
    expect(r.status).toBe(200);
    this.tokens.set(new URL(answer.url).host, JSON.parse(r.body.toString()).token);
  }
}

let dir: string;
let tokens: TokenServer;
let registry: Registry;
let gw: Gateway;
let image: ImageDir;
const events = () => path.join(dir, 'events');

beforeAll(async () => {
  requireTools('docker-registry', 'skopeo', 'buildah', 'openssl');
  dir = makeTempDir('gw-e2e-redirect-');
  tokens = await startTokenServer(dir, { service: 'test-registry', users: { pusher: 'push-pass' } });
  registry = await startRegistry(path.join(dir, 'registry'), { token: tokens });
  const builder = containersEnv(path.join(dir, 'builder'), [registry.host]);
  image = await buildImage(builder, { 'a.txt': `first layer ${Date.now()}\n`, 'b.txt': 'second layer\n' }, 'docker');
  await pushImage(builder, image, `${registry.host}/acme/rocket:1.0`, 'pusher:push-pass');
  await pushImage(builder, image, `${registry.host}/acme/forced:1.0`, 'pusher:push-pass');
  const manifest = writeJson(path.join(dir, 'manifest.json'), {
    rules: [
      // One registry on the domain: capable clients are redirected to it (registry given as a base URL clients can reach).
      { type: 'docker-v1', domain: 'cr.localhost', 'repository-name': 'acme/rocket', registry: registry.base, 'package-id': 'rocket' },
      { type: 'docker-v1', domain: '127.0.0.1', 'repository-name': 'acme/forced', registry: registry.base, 'package-id': 'forced', mode: 'redirect' },
      // A renamed repository: the gateway's own token realm, everyone proxied.
      { type: 'docker-v1', domain: 'realm.localhost', 'repository-name': 'acme/renamed', 'upstream-repository-name': 'acme/rocket', registry: registry.base, 'package-id': 'renamed' },
    ],
  });
  gw = await startGateway({ manifest, events: events() });
});

afterAll(async () => {
  await gw?.kill();
  await registry?.close();
  await tokens?.close();
  removeDir(dir);
});

/** Events of the requests answered so far on a domain, once they are all on disk. */
async function domainEvents(domain: string): Promise<GatewayEventJson[]> {
  const marker = markerPath();
  await request(gw.port, { path: marker, headers: { host: domain } });
  await waitForEvents(events(), (e) => e.path === marker);
  return readEvents(events()).filter((e) => e.domain === domain && !e.path.startsWith('/__marker__/'));
}

const blobsOf = (img: ImageDir) => [img.configDigest, ...img.layerDigests];

test('Docker Engine: ping, challenge, token, manifest and blobs, redirected to the registry', async () => {
  const gwUrl = (p: string) => `http://cr.localhost:${gw.port}${p}`;
  const docker = new ScriptedClient(DOCKER_UA);

  // The ping follows the redirect; Docker learns the registry's challenge for the registry host.
  const ping = await docker.send('GET', gwUrl('/v2/'));
  expect(docker.log.slice(0, 2)).toEqual([
    { method: 'GET', url: gwUrl('/v2/'), status: 307, location: `${registry.base}/v2/`, auth: null },
    { method: 'GET', url: `${registry.base}/v2/`, status: 401, location: null, auth: null },
  ]);
  await docker.authenticate(ping, 'repository:acme/rocket:pull');

  const manifest = await docker.send('GET', gwUrl('/v2/acme/rocket/manifests/1.0'), { accept: DOCKER_ACCEPT });
  expect(manifest.status).toBe(200);
  expect(sha256(manifest.body)).toBe(image.manifestDigest);
  expect(manifest.headers['docker-content-digest']).toBe(image.manifestDigest);
  expect(manifest.headers['content-type']).toBe('application/vnd.docker.distribution.manifest.v2+json');
  for (const digest of blobsOf(image)) {
    const blob = await docker.send('GET', gwUrl(`/v2/acme/rocket/blobs/${digest}`));
    expect({ digest, status: blob.status, got: sha256(blob.body) }).toEqual({ digest, status: 200, got: digest });
  }
  // The gateway only redirected (no token ever went to it); the registry got every request with the token.
  const toGateway = docker.log.filter((x) => x.url.startsWith(gwUrl('/')));
  expect(toGateway.map((x) => [x.status, x.location])).toEqual([
    [307, `${registry.base}/v2/`],
    [307, `${registry.base}/v2/acme/rocket/manifests/1.0`],
    ...blobsOf(image).map((d) => [307, `${registry.base}/v2/acme/rocket/blobs/${d}`]),
  ]);
  expect(docker.log.filter((x) => x.url.startsWith(registry.base) && x.status === 200).every((x) => x.auth === 'Bearer')).toBe(true);

  const evs = await domainEvents('cr.localhost');
  expect(evs.map((e) => [e.method, e.path, e.status, e.action, e.download])).toEqual([
    ['GET', '/v2/', 307, 'redirect', false],
    ['GET', '/v2/acme/rocket/manifests/1.0', 307, 'redirect', true],
    ...blobsOf(image).map((d) => ['GET', `/v2/acme/rocket/blobs/${d}`, 307, 'redirect', false]),
  ]);
  expect(evs[1]).toMatchObject({ image: 'acme/rocket', reference: '1.0', package_id: 'rocket', upstream: registry.base, target: `${registry.base}/v2/acme/rocket/manifests/1.0`, client_name: 'docker', client_version: '24.0.7', os: 'linux', arch: 'amd64' });
});

test('containerd: HEAD, 401 after the redirect, token, HEAD again, GET by digest, blobs', async () => {
  const gwUrl = (p: string) => `http://cr.localhost:${gw.port}${p}`;
  const before = (await domainEvents('cr.localhost')).length;
  const containerd = new ScriptedClient(CONTAINERD_UA);

  // No ping: the first HEAD is redirected, and the registry's 401 teaches containerd its realm for the registry host.
  const first = await containerd.send('HEAD', gwUrl('/v2/acme/rocket/manifests/1.0'), { accept: CONTAINERD_ACCEPT });
  expect(containerd.log).toEqual([
    { method: 'HEAD', url: gwUrl('/v2/acme/rocket/manifests/1.0'), status: 307, location: `${registry.base}/v2/acme/rocket/manifests/1.0`, auth: null },
    { method: 'HEAD', url: `${registry.base}/v2/acme/rocket/manifests/1.0`, status: 401, location: null, auth: null },
  ]);
  await containerd.authenticate(first);
  expect(tokens.seen.at(-1)).toMatchObject({ scopes: ['repository:acme/rocket:pull'], user: null });

  const head = await containerd.send('HEAD', gwUrl('/v2/acme/rocket/manifests/1.0'), { accept: CONTAINERD_ACCEPT });
  expect(head.status).toBe(200);
  const digest = String(head.headers['docker-content-digest']);
  expect(digest).toBe(image.manifestDigest);
  expect(Number(head.headers['content-length'])).toBe(image.manifest.length);

  const manifest = await containerd.send('GET', gwUrl(`/v2/acme/rocket/manifests/${digest}`), { accept: CONTAINERD_ACCEPT });
  expect(manifest.status).toBe(200);
  expect(sha256(manifest.body)).toBe(digest);
  for (const d of blobsOf(image)) {
    const blob = await containerd.send('GET', gwUrl(`/v2/acme/rocket/blobs/${d}`));
    expect({ d, status: blob.status, got: sha256(blob.body) }).toEqual({ d, status: 200, got: d });
  }

  const evs = (await domainEvents('cr.localhost')).slice(before);
  expect(evs.map((e) => [e.method, e.path, e.status, e.action, e.download])).toEqual([
    ['HEAD', '/v2/acme/rocket/manifests/1.0', 307, 'redirect', false],
    ['HEAD', '/v2/acme/rocket/manifests/1.0', 307, 'redirect', false],
    ['GET', `/v2/acme/rocket/manifests/${digest}`, 307, 'redirect', true],
    ...blobsOf(image).map((d) => ['GET', `/v2/acme/rocket/blobs/${d}`, 307, 'redirect', false]),
  ]);
  expect(evs[2]).toMatchObject({ image: 'acme/rocket', reference: digest, client_name: 'containerd', client_version: '1.7.13' });
});

test('on a domain with the gateway\'s realm, Docker and containerd are proxied and pull with the gateway\'s token', async () => {
  const gwUrl = (p: string) => `http://realm.localhost:${gw.port}${p}`;

  const docker = new ScriptedClient(DOCKER_UA);
  const ping = await docker.send('GET', gwUrl('/v2/'));
  expect(ping.headers['www-authenticate']).toBe(`Bearer realm="${gwUrl('/v2/token')}",service="realm.localhost"`);
  await docker.authenticate(ping, 'repository:acme/renamed:pull');
  // The gateway asked the registry's token service for the upstream name.
  expect(tokens.seen.at(-1)).toMatchObject({ scopes: ['repository:acme/rocket:pull'], user: null });
  const manifest = await docker.send('GET', gwUrl('/v2/acme/renamed/manifests/1.0'), { accept: DOCKER_ACCEPT });
  expect(manifest.status).toBe(200);
  expect(sha256(manifest.body)).toBe(image.manifestDigest);
  for (const d of blobsOf(image)) expect(sha256((await docker.send('GET', gwUrl(`/v2/acme/renamed/blobs/${d}`))).body)).toBe(d);
  // Nothing was redirected: every answer came from the gateway.
  expect(docker.log.every((x) => x.location === null && new URL(x.url).host !== registry.host)).toBe(true);

  const containerd = new ScriptedClient(CONTAINERD_UA);
  const first = await containerd.send('HEAD', gwUrl('/v2/acme/renamed/manifests/1.0'), { accept: CONTAINERD_ACCEPT });
  expect(first.headers['www-authenticate']).toBe(`Bearer realm="${gwUrl('/v2/token')}",service="realm.localhost",scope="repository:acme/renamed:pull"`);
  await containerd.authenticate(first);
  const head = await containerd.send('HEAD', gwUrl('/v2/acme/renamed/manifests/1.0'), { accept: CONTAINERD_ACCEPT });
  expect(head.status).toBe(200);
  expect(head.headers['docker-content-digest']).toBe(image.manifestDigest);
  const byDigest = await containerd.send('GET', gwUrl(`/v2/acme/renamed/manifests/${image.manifestDigest}`), { accept: CONTAINERD_ACCEPT });
  expect(sha256(byDigest.body)).toBe(image.manifestDigest);

  const evs = await domainEvents('realm.localhost');
  expect(evs.filter((e) => e.download).map((e) => [e.method, e.path, e.action, e.client_name])).toEqual([
    ['GET', '/v2/acme/renamed/manifests/1.0', 'proxy', 'docker'],
    ['GET', `/v2/acme/renamed/manifests/${image.manifestDigest}`, 'proxy', 'containerd'],
  ]);
  expect(evs.every((e) => e.action === 'proxy' || (e.path === '/v2/' && e.action === 'unauthorized') || e.status === 401)).toBe(true);
});

test('real skopeo cannot follow a forced redirect to a registry that needs a token: why it is proxied', async () => {
  const client = containersEnv(path.join(dir, 'skopeo'), [`127.0.0.1:${gw.port}`, registry.host]);
  const out = path.join(dir, 'forced-out');
  const attempt = run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://127.0.0.1:${gw.port}/acme/forced:1.0`, `dir:${out}`], client.env);
  // Go drops Authorization on the redirect to another host:port and containers/image never asks that host for a token.
  await expect(attempt).rejects.toThrow(/unauthorized|401/i);
  expect(fs.existsSync(path.join(out, 'manifest.json'))).toBe(false);
  const evs = await domainEvents('127.0.0.1');
  expect(evs.find((e) => e.path === '/v2/acme/forced/manifests/1.0')).toMatchObject({ action: 'redirect', status: 307, client_name: 'skopeo' });
});
