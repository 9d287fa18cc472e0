/**
 * Registry proxy behaviour a real distribution registry does not show on its own: rate limits
 * (429 + Retry-After), upstream errors, several challenges, signed CDN redirects for blobs,
 * repositories that moved to another registry, paging links and upload URLs of renamed
 * repositories, and what never reaches an upstream. The upstreams are node HTTP servers that
 * answer like the registries that do these things (Docker Hub, GHCR, S3/CDN-backed registries),
 * reached through `--upstream` as in an air-gapped deployment.
 */
import path from 'node:path';
import {
  Gateway, headerValues, makeTempDir, markerPath, readEvents, readEventText, removeDir, request, startGateway, startUpstream, waitForEvents, writeJson, type Upstream,
} from './helpers';
import { encodeGatewayToken } from '../../lambda/core/registry-auth';

jest.setTimeout(60_000);

const OCI_JSON = 'application/json; charset=utf-8';
const TOO_MANY = JSON.stringify({ errors: [{ code: 'TOOMANYREQUESTS', message: 'You have reached your pull rate limit.', detail: null }] });
const UNAVAILABLE = JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: 'service unavailable', detail: null }] });

let dir: string;
let registry: Upstream; // registry.test
let other: Upstream; // other.test
let cdn: Upstream;
let gw: Gateway;
const events = () => path.join(dir, 'events');

beforeAll(async () => {
  dir = makeTempDir('gw-e2e-proxy-');
  cdn = await startUpstream((_req, res) => res.end('blob bytes from the CDN'));
  registry = await startUpstream((req, res) => {
    const url = req.url ?? '';
    if (url === '/v2/acme/app/manifests/ratelimited') {
      res.writeHead(429, { 'Content-Type': OCI_JSON, 'Retry-After': '17', 'Docker-Distribution-Api-Version': 'registry/2.0' });
      res.end(TOO_MANY);
    } else if (url === '/v2/acme/app/manifests/broken') {
      res.writeHead(503, { 'Content-Type': OCI_JSON });
      res.end(UNAVAILABLE);
    } else if (url === '/v2/acme/app/manifests/challenge') {
      res.writeHead(401, [
        'Content-Type', OCI_JSON,
        'WWW-Authenticate', 'Basic realm="Registry Realm"',
        'WWW-Authenticate', 'Bearer realm="https://auth.registry.test/token",service="registry.test",scope="repository:acme/app:pull"',
      ]);
      res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}');
    } else if (url.startsWith('/v2/acme/app/blobs/sha256:')) {
      // A registry that keeps its blobs on a CDN: a signed, short-lived URL on another host.
      res.writeHead(307, { Location: `${cdn.base}/blobs/abc?X-Amz-Signature=f00d&X-Amz-Expires=600` });
      res.end();
    } else if (url.startsWith('/v2/acme-corp/renamed/tags/list')) {
      res.writeHead(200, { 'Content-Type': OCI_JSON, Link: '</v2/acme-corp/renamed/tags/list?last=b&n=2>; rel="next"' });
      res.end('{"name":"acme-corp/renamed","tags":["a","b"]}');
    } else if (url === '/v2/acme-corp/renamed/blobs/uploads/' && req.method === 'POST') {
      // distribution builds absolute upload URLs from the Host it was asked with.
      res.writeHead(202, { Location: `http://${req.headers.host}/v2/acme-corp/renamed/blobs/uploads/1234?_state=xyz`, 'Docker-Upload-Uuid': '1234', 'Content-Length': '0' });
      res.end();
    } else {
      res.writeHead(200, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json', 'Docker-Content-Digest': 'sha256:0123' });
      res.end('{}');
    }
  });
  other = await startUpstream((req, res) => {
    // The repository moved to registry.test: a registry-to-registry redirect the gateway follows itself.
    if (req.url === '/v2/acme/moved/manifests/1') {
      res.writeHead(307, { Location: 'https://registry.test/v2/acme/app/manifests/moved-here' });
      res.end();
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  const manifest = writeJson(path.join(dir, 'manifest.json'), {
    rules: [
      { type: 'docker-v1', domain: 'one.localhost', 'repository-name': 'acme/app', registry: 'registry.test', 'package-id': 'app' },
      // Two registries and a rename: the gateway's own token realm.
      { type: 'docker-v1', domain: 'multi.localhost', 'repository-name': 'acme/moved', registry: 'other.test', 'package-id': 'moved' },
      { type: 'docker-v1', domain: 'multi.localhost', 'repository-name': 'acme/renamed', 'upstream-repository-name': 'acme-corp/renamed', registry: 'registry.test', 'package-id': 'renamed' },
    ],
  });
  gw = await startGateway({ manifest, events: events(), upstreams: [`registry.test=${registry.base}`, `other.test=${other.base}`] });
});

afterAll(async () => {
  await gw?.kill();
  await Promise.all([registry?.close(), other?.close(), cdn?.close()]);
  removeDir(dir);
});

const ONE = { host: 'one.localhost', 'user-agent': 'skopeo/1.9.3' };
const last = (u: Upstream) => u.seen[u.seen.length - 1];

async function allEvents() {
  const marker = markerPath();
  await request(gw.port, { path: marker, headers: { host: 'one.localhost' } });
  await waitForEvents(events(), (e) => e.path === marker);
  return readEvents(events());
}

test('429 with Retry-After and upstream 5xx errors reach the client unchanged, as OCI error JSON; neither is a download', async () => {
  const limited = await request(gw.port, { path: '/v2/acme/app/manifests/ratelimited', headers: ONE });
  expect(limited.status).toBe(429);
  expect(limited.headers['retry-after']).toBe('17');
  expect(limited.headers['content-type']).toBe(OCI_JSON);
  expect(limited.body.toString()).toBe(TOO_MANY);
  const broken = await request(gw.port, { path: '/v2/acme/app/manifests/broken', headers: ONE });
  expect(broken.status).toBe(503);
  expect(broken.body.toString()).toBe(UNAVAILABLE);
  const evs = await allEvents();
  expect(evs.find((e) => e.path === '/v2/acme/app/manifests/ratelimited')).toMatchObject({ status: 429, action: 'proxy', download: false });
  expect(evs.find((e) => e.path === '/v2/acme/app/manifests/broken')).toMatchObject({ status: 503, download: false });
});

test('every Accept line and value reaches the upstream in order; the tag-list query is kept byte for byte', async () => {
  await request(gw.port, {
    path: '/v2/acme/app/manifests/latest',
    headers: { ...ONE, accept: ['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json'] },
  });
  expect(headerValues(last(registry), 'accept')).toEqual(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json']);
  await request(gw.port, { path: '/v2/acme/app/tags/list?n=10&last=v1.2%2Brc', headers: ONE });
  expect(last(registry).url).toBe('/v2/acme/app/tags/list?n=10&last=v1.2%2Brc');
});

test('several challenges come back as separate WWW-Authenticate lines, in order, byte for byte', async () => {
  const r = await request(gw.port, { path: '/v2/acme/app/manifests/challenge', headers: ONE });
  expect(r.status).toBe(401);
  const challenges: string[] = [];
  for (let i = 0; i < r.rawHeaders.length; i += 2) if (r.rawHeaders[i] === 'WWW-Authenticate') challenges.push(r.rawHeaders[i + 1]);
  expect(challenges).toEqual(['Basic realm="Registry Realm"', 'Bearer realm="https://auth.registry.test/token",service="registry.test",scope="repository:acme/app:pull"']);
});

test('a blob\'s signed CDN redirect goes back to the client untouched; the gateway never contacts the CDN or sends it credentials', async () => {
  const r = await request(gw.port, { path: '/v2/acme/app/blobs/sha256:1111', headers: { ...ONE, authorization: 'Bearer client-token' } });
  expect(r.status).toBe(307);
  expect(r.headers.location).toBe(`${cdn.base}/blobs/abc?X-Amz-Signature=f00d&X-Amz-Expires=600`);
  expect(r.body.length).toBe(0);
  expect(cdn.seen).toEqual([]);
  // The configured upstream got the client's token; that is the only place it went.
  expect(headerValues(last(registry), 'authorization')).toEqual(['Bearer client-token']);
  const evs = await allEvents();
  expect(evs.find((e) => e.path === '/v2/acme/app/blobs/sha256:1111')).toMatchObject({ status: 307, action: 'proxy', download: false });
});

test('client addresses, cookies and forwarding headers never reach the upstream; tokens never reach an event', async () => {
  await request(gw.port, {
    path: '/v2/acme/app/manifests/private',
    headers: { ...ONE, authorization: 'Bearer secret-token-123', cookie: 'session=s3', 'x-forwarded-for': '203.0.113.9', forwarded: 'for=203.0.113.9', 'x-real-ip': '203.0.113.9' },
  });
  const seen = last(registry);
  expect(seen.url).toBe('/v2/acme/app/manifests/private');
  for (const name of ['cookie', 'x-forwarded-for', 'forwarded', 'x-real-ip', 'x-forwarded-host']) expect({ name, v: headerValues(seen, name) }).toEqual({ name, v: [] });
  expect(headerValues(seen, 'host')).toEqual([registry.base.replace('http://', '')]);
  await allEvents();
  expect(readEventText(events())).not.toMatch(/secret-token-123|203\.0\.113\.9|session=s3/);
});

test('an unreachable upstream is a 502 with an OCI error naming it', async () => {
  const down = await startUpstream(() => undefined);
  const port = down.port;
  await down.close();
  const manifest = writeJson(path.join(dir, 'down.json'), { rules: [{ type: 'docker-v1', domain: 'down.localhost', 'repository-name': 'acme/app', registry: `http://127.0.0.1:${port}`, 'package-id': 'x' }] });
  const g = await startGateway({ manifest, events: path.join(dir, 'down-events') });
  try {
    const r = await request(g.port, { path: '/v2/acme/app/manifests/1', headers: { host: 'down.localhost' } });
    expect(r.status).toBe(502);
    expect(JSON.parse(r.body.toString())).toEqual({ errors: [{ code: 'UNAVAILABLE', message: expect.stringContaining(`127.0.0.1:${port}`), detail: {} }] });
  } finally {
    await g.kill();
  }
});

describe('two registries and a renamed repository on one domain (the gateway realm)', () => {
  const token = encodeGatewayToken({ 'other.test': 'Bearer other-token', 'registry.test': 'Bearer registry-token' });
  const MULTI = { host: 'multi.localhost', 'user-agent': 'skopeo/1.9.3', authorization: `Bearer ${token}` };

  test('each upstream gets its own part of the gateway token; a move to another configured registry is followed without it', async () => {
    const r = await request(gw.port, { path: '/v2/acme/moved/manifests/1', headers: MULTI });
    expect(r.status).toBe(200);
    expect(last(other).url).toBe('/v2/acme/moved/manifests/1');
    expect(headerValues(last(other), 'authorization')).toEqual(['Bearer other-token']);
    // Followed internally to registry.test, with no credentials: they were other.test's.
    expect(last(registry).url).toBe('/v2/acme/app/manifests/moved-here');
    expect(headerValues(last(registry), 'authorization')).toEqual([]);
  });

  test('paging links and upload URLs of a renamed repository come back as gateway paths under the public name', async () => {
    const tags = await request(gw.port, { path: '/v2/acme/renamed/tags/list?n=2', headers: MULTI });
    expect(last(registry).url).toBe('/v2/acme-corp/renamed/tags/list?n=2');
    expect(headerValues(last(registry), 'authorization')).toEqual(['Bearer registry-token']);
    expect(tags.headers.link).toBe('</v2/acme/renamed/tags/list?last=b&n=2>; rel="next"');
    const upload = await request(gw.port, { method: 'POST', path: '/v2/acme/renamed/blobs/uploads/', headers: { ...MULTI, 'content-length': '0' } });
    expect(upload.status).toBe(202);
    expect(upload.headers.location).toBe('/v2/acme/renamed/blobs/uploads/1234?_state=xyz');
    expect(upload.headers['docker-upload-uuid']).toBe('1234');
  });
});
