/**
 * The registry proxy against real upstream HTTP servers started here (node http on 127.0.0.1),
 * wired in with `--upstream HOST=BASE`: what reaches the upstream, what comes back, redirects,
 * streaming of large bodies with bounded memory, and the gateway's own 502.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import {
  curl, delay, freePort, Gateway, headerValues, LOCAL, makeTempDir, rawExchange, removeDir, request, rssBytes,
  SeenRequest, startGateway, startUpstream, Upstream, waitForEvents, writeJson,
} from './helpers';

jest.setTimeout(60_000);

const MANIFEST_BODY = '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}';
const DIGEST = 'sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b';
const CHALLENGE = 'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:acme/rocket:pull"';
const CDN_LOCATION = 'https://cdn.example/blob?sig=AbC%2Fd%3D%3D&expires=1700000000';
const MB = 1024 * 1024;

const MANIFEST = {
  rules: [
    { type: 'docker-v1', domain: 'cr.test', 'repository-name': 'acme/rocket', registry: 'ghcr.io', 'package-id': 'rocket-image' },
    // One upstream per domain: a domain with several registries uses the gateway's own token realm (docs/CONTAINERS.md).
    { type: 'docker-v1', domain: 'multi.test', 'repository-name': 'acme/rocket', registry: 'ghcr.io', 'package-id': 'rocket-image' },
    { type: 'docker-v1', domain: 'multi.test', 'repository-name': 'acme/mirrored', registry: 'mirror.test', 'package-id': 'mirrored-image' },
    { type: 'docker-v1', domain: 'down.cr.test', 'repository-name': 'acme/down', registry: 'down.test', 'package-id': 'down-image' },
    { type: 'docker-v1', domain: 'silent.cr.test', 'repository-name': 'acme/silent', registry: 'silent.test', 'package-id': 'silent-image' },
  ],
};

/** Bodies generated on the fly, in 64 KiB chunks, honouring backpressure; `sent` counts bytes written so far. */
const generated = new Map<string, { sent: number; sha256: string }>();
function streamBody(res: http.ServerResponse, name: string, total: number): void {
  const state = { sent: 0, sha256: '' };
  generated.set(name, state);
  const hash = createHash('sha256');
  const chunk = Buffer.alloc(64 * 1024);
  let i = 0;
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total), 'docker-content-digest': `sha256:${name}` });
  const pump = () => {
    while (state.sent < total) {
      chunk.fill(i++ % 251);
      const part = chunk.subarray(0, Math.min(chunk.length, total - state.sent));
      hash.update(part);
      state.sent += part.length;
      if (state.sent >= total) {
        state.sha256 = hash.digest('hex');
        res.end(part);
        return;
      }
      if (!res.write(part)) {
        res.once('drain', pump);
        return;
      }
    }
  };
  res.once('close', () => res.off('drain', pump));
  pump();
}

let dir: string;
let events: string;
let gw: Gateway;
let ghcr: Upstream;
let mirror: Upstream;
let cdn: Upstream;
let closedPort: number;
/** Accepts connections and never answers. */
let silent: net.Server;
const silentSockets = new Set<net.Socket>();

beforeAll(async () => {
  dir = makeTempDir('gw-e2e-proxy-');
  events = path.join(dir, 'events');
  ghcr = await startUpstream((req, res) => {
    const p = req.url!.split('?')[0];
    if (p === '/v2/acme/rocket/manifests/echo' || p === '/v2/acme/rocket/manifests/sha256:abc%3Adef') {
      res.writeHead(200, {
        'content-type': 'application/vnd.oci.image.manifest.v1+json',
        'content-length': String(Buffer.byteLength(MANIFEST_BODY)),
        'docker-content-digest': DIGEST,
        etag: `"${DIGEST}"`,
        'www-authenticate': CHALLENGE,
        'x-upstream-note': 'echo',
      });
      res.end(req.method === 'HEAD' ? undefined : MANIFEST_BODY);
    } else if (p === '/v2/acme/rocket/manifests/private') {
      const body = '{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}';
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': CHALLENGE, 'docker-distribution-api-version': 'registry/2.0' });
      res.end(body);
    } else if (p === '/v2/acme/rocket/blobs/sha256:cdn') {
      res.writeHead(307, { location: CDN_LOCATION, 'content-type': 'text/html' });
      res.end('<a href="...">Temporary Redirect</a>');
    } else if (p === '/v2/acme/rocket/manifests/moved-local') {
      res.writeHead(307, { location: '/v2/acme/rocket/manifests/echo' });
      res.end();
    } else if (p === '/v2/acme/rocket/manifests/moved-mirror') {
      res.writeHead(307, { location: 'https://mirror.test/v2/acme/rocket/manifests/from-mirror' });
      res.end();
    } else if (p === '/v2/acme/rocket/blobs/sha256:big50') {
      streamBody(res, 'big50', 50 * MB);
    } else if (p === '/v2/acme/rocket/blobs/sha256:big200') {
      streamBody(res, 'big200', 200 * MB);
    } else {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
    }
  });
  mirror = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'docker-content-digest': 'sha256:mirror' });
    res.end('from mirror');
  });
  cdn = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    res.end('cdn bytes');
  });
  closedPort = await freePort(); // nothing listens there: connections are refused
  silent = net.createServer((socket) => {
    silentSockets.add(socket);
    socket.on('close', () => silentSockets.delete(socket));
    socket.resume();
  });
  await new Promise<void>((resolve) => silent.listen(0, LOCAL, resolve));
  const manifest = writeJson(path.join(dir, 'manifest.json'), MANIFEST);
  gw = await startGateway({
    manifest,
    events,
    upstreams: [`ghcr.io=${ghcr.base}`, `mirror.test=${mirror.base}`, `cdn.example=${cdn.base}`, `down.test=http://${LOCAL}:${closedPort}`,
      `silent.test=http://${LOCAL}:${(silent.address() as net.AddressInfo).port}`],
    extraArgs: ['--upstream-timeout', '1'],
  });
});

afterAll(async () => {
  await gw?.kill();
  for (const s of silentSockets) s.destroy();
  await Promise.all([ghcr?.close(), mirror?.close(), cdn?.close(), new Promise((r) => silent?.close(r))]);
  removeDir(dir);
});

/** The requests the ghcr upstream saw after `from`. */
const seenSince = (u: Upstream, from: number): SeenRequest[] => u.seen.slice(from);

describe('what the upstream receives', () => {
  test('method, raw path and raw query unchanged; every Accept in order; Authorization unchanged; no X-Forwarded-For, Cookie or X-Forwarded-Host', async () => {
    const from = ghcr.seen.length;
    const target = '/v2/acme/rocket/manifests/echo?n=10&last=a%2Fb&ns=docker.io&q=x+y%20z';
    const accepts = ['application/vnd.oci.image.index.v1+json', 'application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json;q=0.9'];
    const r = await request(gw.port, {
      path: target,
      headers: {
        host: 'cr.test',
        'user-agent': 'skopeo/1.9.3',
        accept: accepts,
        authorization: 'Bearer eyJhbGciOi.payload.signature',
        'x-forwarded-for': '203.0.113.9',
        'x-forwarded-host': 'cr.test',
        cookie: 'session=COOKIE-456',
      },
    });
    expect(r.status).toBe(200);
    const [s] = seenSince(ghcr, from);
    expect(s.method).toBe('GET');
    expect(s.url).toBe(target);
    expect(headerValues(s, 'accept')).toEqual(accepts);
    expect(headerValues(s, 'authorization')).toEqual(['Bearer eyJhbGciOi.payload.signature']);
    expect(headerValues(s, 'user-agent')).toEqual(['skopeo/1.9.3']);
    expect(headerValues(s, 'x-forwarded-for')).toEqual([]);
    expect(headerValues(s, 'cookie')).toEqual([]);
    expect(headerValues(s, 'x-forwarded-host')).toEqual([]);
    expect(seenSince(ghcr, from)).toHaveLength(1);
  });

  test('a raw percent-encoded path segment reaches the upstream as sent', async () => {
    const from = ghcr.seen.length;
    const target = '/v2/acme/rocket/manifests/sha256:abc%3Adef';
    const r = await request(gw.port, { path: target, headers: { host: 'cr.test' } });
    expect(r.status).toBe(200);
    expect(seenSince(ghcr, from).map((s) => s.url)).toEqual([target]);
  });

  // "acme/rocket/manifests/../../../other/secret/...": the gateway matched (and records) acme/rocket;
  // the upstream must get the raw path as sent (or nothing), never /v2/other/secret/...
  test.each([
    ['literal ..', '/v2/acme/rocket/manifests/../../../other/secret/manifests/latest'],
    ['encoded %2e%2e', '/v2/acme/rocket/manifests/%2e%2e/%2e%2e/%2e%2e/other/secret/manifests/latest'],
  ])('dot segments (%s) are not resolved into another repository at the upstream', async (_name, target) => {
    const from = ghcr.seen.length;
    const r = await request(gw.port, { path: target, headers: { host: 'cr.test', 'user-agent': 'skopeo/1.9.3' } });
    expect(r.status).toBeLessThan(500);
    const urls = seenSince(ghcr, from).map((s) => s.url);
    expect(urls.filter((u) => !u.startsWith('/v2/acme/rocket/'))).toEqual([]);
    for (const u of urls) expect(u).toBe(target);
  });
});

describe('what comes back', () => {
  test('status, Content-Type, Docker-Content-Digest, ETag and WWW-Authenticate byte-identical', async () => {
    const r = await request(gw.port, { path: '/v2/acme/rocket/manifests/echo?t=back', headers: { host: 'cr.test' } });
    expect(r.status).toBe(200);
    const challenges = r.rawHeaders.filter((_v, i) => i % 2 === 1 && r.rawHeaders[i - 1].toLowerCase() === 'www-authenticate');
    expect(challenges).toEqual([CHALLENGE]);
    expect(r.headers['content-type']).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(r.headers['docker-content-digest']).toBe(DIGEST);
    expect(r.headers.etag).toBe(`"${DIGEST}"`);
    expect(r.headers['www-authenticate']).toBe(CHALLENGE);
    expect(r.headers['x-upstream-note']).toBe('echo');
    expect(r.body.toString('utf8')).toBe(MANIFEST_BODY);
    const [ev] = await waitForEvents(events, (e) => e.target === 'https://ghcr.io/v2/acme/rocket/manifests/echo?t=back');
    expect(ev).toMatchObject({ kind: 'docker', action: 'proxy', status: 200, download: true, image: 'acme/rocket', reference: 'echo', package_id: 'rocket-image', upstream: 'ghcr.io' });
  });

  test('HEAD keeps the upstream Content-Length and sends no body bytes', async () => {
    const out = await rawExchange(gw.port, 'HEAD /v2/acme/rocket/manifests/echo HTTP/1.1\r\nHost: cr.test\r\nUser-Agent: skopeo/1.9.3\r\nConnection: close\r\n\r\n');
    const end = out.indexOf('\r\n\r\n');
    expect(out.slice(0, 12)).toBe('HTTP/1.1 200');
    expect(out.slice(0, end)).toMatch(new RegExp(`\\r\\ncontent-length: ${Buffer.byteLength(MANIFEST_BODY)}\\r\\n`, 'i'));
    expect(out.slice(0, end)).toMatch(new RegExp(`\\r\\ndocker-content-digest: ${DIGEST}`, 'i'));
    expect(out.slice(end + 4)).toBe('');
    const evs = await waitForEvents(events, (e) => e.method === 'HEAD' && e.path === '/v2/acme/rocket/manifests/echo');
    expect(evs[0].download).toBe(false); // HEAD is not a pull
  });

  test('a 401 challenge passes through with its body and WWW-Authenticate', async () => {
    const r = await curl(gw.url('/v2/acme/rocket/manifests/private'), ['-H', 'Host: cr.test', '-A', 'skopeo/1.9.3']);
    expect(r.status).toBe(401);
    expect(r.rawHeaders.filter(([n]) => n === 'www-authenticate')).toEqual([['www-authenticate', CHALLENGE]]);
    expect(r.headers['docker-distribution-api-version']).toBe('registry/2.0');
    expect(JSON.parse(r.body.toString('utf8')).errors[0].code).toBe('UNAUTHORIZED');
    const [ev] = await waitForEvents(events, (e) => e.path === '/v2/acme/rocket/manifests/private');
    expect(ev).toMatchObject({ status: 401, download: false });
  });
});

describe('upstream redirects', () => {
  test('a 307 to another host (a CDN) goes to the client untouched, and that host is never contacted', async () => {
    const cdnBefore = cdn.seen.length;
    const r = await curl(gw.url('/v2/acme/rocket/blobs/sha256:cdn'), ['-H', 'Host: cr.test', '-A', 'skopeo/1.9.3', '-H', 'Authorization: Bearer TOKEN-FOR-GHCR']);
    expect(r.status).toBe(307);
    expect(r.headers.location).toBe(CDN_LOCATION);
    expect(cdn.seen.length).toBe(cdnBefore);
  });

  test('a 307 to /v2/... on the same upstream is followed internally, Authorization kept', async () => {
    const from = ghcr.seen.length;
    const r = await curl(gw.url('/v2/acme/rocket/manifests/moved-local'), ['-H', 'Host: cr.test', '-A', 'skopeo/1.9.3', '-H', 'Authorization: Bearer SAME-HOST-TOKEN']);
    expect(r.status).toBe(200);
    expect(r.headers.location).toBeUndefined();
    expect(r.headers['docker-content-digest']).toBe(DIGEST);
    expect(r.body.toString('utf8')).toBe(MANIFEST_BODY);
    const seen = seenSince(ghcr, from);
    expect(seen.map((s) => s.url)).toEqual(['/v2/acme/rocket/manifests/moved-local', '/v2/acme/rocket/manifests/echo']);
    expect(seen.map((s) => headerValues(s, 'authorization'))).toEqual([['Bearer SAME-HOST-TOKEN'], ['Bearer SAME-HOST-TOKEN']]);
  });

  test('a 307 to /v2/... on another configured registry is followed, without Authorization', async () => {
    const mirrorBefore = mirror.seen.length;
    const r = await curl(gw.url('/v2/acme/rocket/manifests/moved-mirror'), ['-H', 'Host: multi.test', '-A', 'skopeo/1.9.3', '-H', 'Authorization: Bearer GHCR-ONLY-TOKEN']);
    expect(r.status).toBe(200);
    expect(r.body.toString('utf8')).toBe('from mirror');
    const seen = mirror.seen.slice(mirrorBefore);
    expect(seen.map((s) => s.url)).toEqual(['/v2/acme/rocket/manifests/from-mirror']);
    expect(headerValues(seen[0], 'authorization')).toEqual([]);
  });
});

describe('large bodies', () => {
  test('50 MB streams through with the exact bytes, gateway RSS under 300 MB', async () => {
    const pid = gw.pid;
    let maxRss = rssBytes(pid);
    const sampler = setInterval(() => {
      maxRss = Math.max(maxRss, rssBytes(pid));
    }, 25);
    try {
      const { bytes, sha256, status } = await new Promise<{ bytes: number; sha256: string; status: number }>((resolve, reject) => {
        const req = http.get({ host: LOCAL, port: gw.port, path: '/v2/acme/rocket/blobs/sha256:big50', headers: { host: 'cr.test' }, agent: false }, (res) => {
          const h = createHash('sha256');
          let n = 0;
          res.on('data', (c: Buffer) => {
            n += c.length;
            h.update(c);
          });
          res.once('end', () => resolve({ bytes: n, sha256: h.digest('hex'), status: res.statusCode! }));
          res.once('error', reject);
        });
        req.once('error', reject);
      });
      expect(status).toBe(200);
      expect(bytes).toBe(50 * MB);
      expect(sha256).toBe(generated.get('big50')!.sha256);
    } finally {
      clearInterval(sampler);
    }
    expect(maxRss).toBeLessThan(300 * MB);
  });

  test('a slow client: backpressure reaches the upstream, memory stays bounded (200 MB body)', async () => {
    const pid = gw.pid;
    const baseline = rssBytes(pid);
    let maxRss = baseline;
    const sampler = setInterval(() => {
      maxRss = Math.max(maxRss, rssBytes(pid));
    }, 25);
    let sentDuringPause = -1;
    try {
      const bytes = await new Promise<number>((resolve, reject) => {
        const req = http.get({ host: LOCAL, port: gw.port, path: '/v2/acme/rocket/blobs/sha256:big200', headers: { host: 'cr.test' }, agent: false }, (res) => {
          let n = 0;
          let paused = false;
          res.on('data', (c: Buffer) => {
            n += c.length;
            if (!paused) {
              // Stop reading for a while: a gateway without backpressure would buffer the whole body.
              paused = true;
              res.pause();
              void delay(1_500).then(() => {
                sentDuringPause = generated.get('big200')?.sent ?? -1;
                res.resume();
              });
            }
          });
          res.once('end', () => resolve(n));
          res.once('error', reject);
        });
        req.once('error', reject);
      });
      expect(bytes).toBe(200 * MB);
    } finally {
      clearInterval(sampler);
    }
    // While the client read nothing, the upstream could only fill socket buffers.
    expect(sentDuringPause).toBeGreaterThan(0);
    expect(sentDuringPause).toBeLessThan(64 * MB);
    expect(maxRss).toBeLessThan(300 * MB);
    expect(maxRss - baseline).toBeLessThan(120 * MB);
  });
});

describe('gateway errors', () => {
  test('an upstream refusing connections: 502, OCI JSON error naming the upstream host, no header values', async () => {
    const r = await curl(gw.url('/v2/acme/down/manifests/latest'), [
      '-H', 'Host: down.cr.test', '-A', 'skopeo/1.9.3',
      '-H', 'Authorization: Bearer SECRET-TOKEN-502', '-H', 'Cookie: session=COOKIE-502', '-H', 'X-Forwarded-For: 203.0.113.50',
    ]);
    expect(r.status).toBe(502);
    expect(r.headers['content-type']).toBe('application/json');
    const text = r.body.toString('utf8');
    const body = JSON.parse(text) as { errors: Array<{ code: string; message: string }> };
    expect(body.errors).toHaveLength(1);
    expect(typeof body.errors[0].code).toBe('string');
    expect(body.errors[0].message).toContain('down.test');
    for (const secret of ['SECRET-TOKEN-502', 'COOKIE-502', '203.0.113.50', 'skopeo', 'Bearer']) expect(text).not.toContain(secret);
    const [ev] = await waitForEvents(events, (e) => e.path === '/v2/acme/down/manifests/latest');
    expect(ev).toMatchObject({ status: 502, download: false, action: 'proxy', upstream: 'down.test' });
  });

  // The proxy's time-to-headers limit is 30 s (DEFAULT_PROXY_OPTIONS.headersTimeoutMs in
  // lambda/local/proxy.ts) and `serve` has no option to change it, so a 504 would take 30 s here.
  test('an upstream that accepts the connection and never answers: 504 after --upstream-timeout, OCI JSON error', async () => {
    const started = Date.now();
    const r = await curl(gw.url('/v2/acme/silent/manifests/latest'), ['-H', 'Host: silent.cr.test', '-A', 'skopeo/1.9.3', '-H', 'Authorization: Bearer SECRET-TOKEN-504']);
    expect(r.status).toBe(504);
    expect(Date.now() - started).toBeLessThan(10_000);
    const text = r.body.toString('utf8');
    expect(JSON.parse(text).errors[0]).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringContaining('silent.test') });
    expect(text).not.toContain('SECRET-TOKEN-504');
    const [ev] = await waitForEvents(events, (e) => e.path === '/v2/acme/silent/manifests/latest');
    expect(ev).toMatchObject({ status: 504, download: false });
  });
});

test('SIGTERM stops it with exit status 0', async () => {
  expect(await gw.stop()).toEqual({ code: 0, signal: null });
});
