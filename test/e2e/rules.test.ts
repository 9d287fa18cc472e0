/**
 * Routing (Host, X-Forwarded-Host, case, port) and every rule type through real HTTP: file-v1
 * (query merge, beacons with body events), file-v2, catch-all, python-v1 pages and files,
 * telemetry tokens, pixel, docker redirect vs proxy, and the registry 404.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import {
  curl, Gateway, GatewayEventJson, headerValues, makeTempDir, markerPath, readEvents, removeDir, request,
  startGateway, startUpstream, Upstream, waitForEvents, writeJson,
} from './helpers';

jest.setTimeout(60_000);

const HASHED_TOKEN = 'hashed-token-2';
const HASHED_TOKEN_DIGEST = createHash('sha256').update(HASHED_TOKEN).digest('hex');
const DOCKER_UA = 'docker/24.0.7 go/go1.20.10 git-commit/311b9ff kernel/6.1.0 os/linux arch/amd64 UpstreamClient(Docker-Client/24.0.7 \\(linux\\))';
const SKOPEO_UA = 'skopeo/1.9.3';
const WHEEL = 'rocket-1.2.0-py3-none-any.whl';
const WHEEL_URL = 'https://files.example.org/packages/rocket-1.2.0-py3-none-any.whl#sha256=aaaa';
const NAME_UNKNOWN = '{"errors":[{"code":"NAME_UNKNOWN","detail":{},"message":"repository name not known to registry"}]}';

const MANIFEST = {
  rules: [
    {
      type: 'file-v1', domain: 'files.test', 'package-id': 'tool',
      'incoming-path': '/dl/{version}/tool-{os}.tar.gz',
      'outgoing-url': 'https://downloads.example.com/tool/{version}/tool-{os}.tar.gz?src=gw',
    },
    { type: 'file-v1', domain: 'files.test', 'package-id': 'beacon', 'incoming-path': '/collect', 'outgoing-url': null },
    {
      type: 'file-v2', domain: 'files.test', 'package-id': 'nightly',
      'incoming-path': '^/nightly/(?<date>\\d{4}-\\d{2}-\\d{2})/(?<file>[^/]+)$',
      'outgoing-url': 'https://nightly.example.com/{date}/{file}',
    },
    { type: 'telemetry-v1', domain: 'files.test', 'incoming-path': '/events', 'package-id': 'tool-telemetry', 'access-tokens': ['plain-token-1', `sha256:${HASHED_TOKEN_DIGEST}`] },
    { type: 'pixel-v1', domain: 'files.test', 'incoming-path': '/p.png', 'package-id': 'docs-pixel' },
    { type: 'catch-all-v1', domain: 'docs.test', 'redirect-target-domain': 'target.example.org', 'package-id': 'docs' },
    {
      type: 'python-v1', domain: 'py.test', 'package-name': 'rocket', 'file-name': WHEEL, version: '1.2.0',
      'backend-url': WHEEL_URL, 'package-id': 'rocket-py', 'requires-python': '>=3.9',
    },
    {
      type: 'python-v1', domain: 'py.test', 'package-name': 'rocket', 'file-name': 'rocket-1.1.0.tar.gz', version: '1.1.0',
      'backend-url': 'https://files.example.org/packages/rocket-1.1.0.tar.gz', 'package-id': 'rocket-py',
    },
    { type: 'docker-v1', domain: 'cr.test', 'repository-name': 'acme/rocket', registry: 'ghcr.io', 'package-id': 'rocket-image' },
  ],
};

let dir: string;
let events: string;
let gw: Gateway;
let upstream: Upstream;

beforeAll(async () => {
  dir = makeTempDir('gw-e2e-rules-');
  events = path.join(dir, 'events');
  upstream = await startUpstream((req, res) => {
    if (req.url === '/v2/') {
      res.writeHead(200, { 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0' });
      res.end('{}');
    } else if (req.url === '/v2/acme/rocket/manifests/1.0') {
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'docker-content-digest': 'sha256:1111' });
      res.end('{"schemaVersion":2}');
    } else {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
    }
  });
  const manifest = writeJson(path.join(dir, 'manifest.json'), MANIFEST);
  gw = await startGateway({ manifest, events, upstreams: [`ghcr.io=${upstream.base}`] });
});

afterAll(async () => {
  await gw?.kill();
  await upstream?.close();
  removeDir(dir);
});

/** Events of one path (and method), once at least `count` are on disk. */
const eventsFor = (p: string, count = 1, method = 'GET') => waitForEvents(events, (e) => e.path === p && e.method === method, count);

/** Asserts that no event of `pred` was recorded, once a later marker request on `markerHost` is on disk. */
async function expectNoEvent(pred: (e: GatewayEventJson) => boolean, markerHost = 'docs.test'): Promise<void> {
  const m = markerPath();
  expect((await curl(gw.url(m), ['-H', `Host: ${markerHost}`])).status).toBe(307);
  await eventsFor(m);
  expect(readEvents(events).filter(pred)).toEqual([]);
}

describe('routing', () => {
  const P = '/dl/2.0/tool-linux.tar.gz';
  const TARGET = 'https://downloads.example.com/tool/2.0/tool-linux.tar.gz?src=gw';

  test('by Host', async () => {
    const r = await curl(gw.url(P), ['-H', 'Host: files.test']);
    expect(r.status).toBe(307);
    expect(r.headers.location).toBe(TARGET);
  });

  test('X-Forwarded-Host wins over Host (both ways)', async () => {
    const viaXfh = await curl(gw.url(P), ['-H', 'Host: unknown.test', '-H', 'X-Forwarded-Host: files.test']);
    expect(viaXfh.status).toBe(307);
    expect(viaXfh.headers.location).toBe(TARGET);
    const shadowed = await curl(gw.url(P), ['-H', 'Host: files.test', '-H', 'X-Forwarded-Host: unknown.test']);
    expect(shadowed.status).toBe(404);
  });

  test('host names are compared case-insensitively and the event domain is lower case', async () => {
    const p = '/dl/2.1/tool-linux.tar.gz';
    const r = await curl(gw.url(p), ['-H', 'Host: FiLeS.TeSt']);
    expect(r.status).toBe(307);
    const [ev] = await eventsFor(p);
    expect(ev.domain).toBe('files.test');
  });

  test('a :port in Host is ignored, and not recorded', async () => {
    const p = '/dl/2.2/tool-linux.tar.gz';
    const r = await curl(gw.url(p), ['-H', 'Host: files.test:8443']);
    expect(r.status).toBe(307);
    expect(r.headers.location).toBe('https://downloads.example.com/tool/2.2/tool-linux.tar.gz?src=gw');
    const [ev] = await eventsFor(p);
    expect(ev.domain).toBe('files.test');
  });

  test('an unknown host gets an empty 404 and records no event', async () => {
    const p = '/dl/9.9/tool-linux.tar.gz';
    const r = await curl(gw.url(p), ['-H', 'Host: nobody.test']);
    expect(r.status).toBe(404);
    expect(r.body.length).toBe(0);
    await expectNoEvent((e) => e.path === p);
  });
});

describe('file-v1', () => {
  test('redirect with variables, the query merged (target first, its duplicate key wins)', async () => {
    const p = '/dl/1.0/tool-darwin.tar.gz';
    const r = await curl(gw.url(`${p}?ref=readme&src=user`), ['-H', 'Host: files.test']);
    expect(r.status).toBe(307);
    expect(r.headers.location).toBe('https://downloads.example.com/tool/1.0/tool-darwin.tar.gz?src=gw&ref=readme');
    expect(r.headers['cache-control']).toBe('private, no-store');
    const [ev] = await eventsFor(p);
    expect(ev).toMatchObject({
      kind: 'file', action: 'redirect', download: true, package_id: 'tool', status: 307, path: p,
      target: 'https://downloads.example.com/tool/1.0/tool-darwin.tar.gz?src=gw&ref=readme',
      variables: { version: '1.0', os: 'darwin' }, version: '1.0',
    });
  });

  test('outgoing-url null: a beacon answers 200 and records one event per JSON object of the POST body', async () => {
    const body = '{"event":"install","n":1}\n{"event":"upgrade","from":"1.0"}';
    const r = await curl(gw.url('/collect'), ['-H', 'Host: files.test', '-H', 'Content-Type: application/json', '--data-binary', body]);
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(0);
    const evs = await eventsFor('/collect', 2, 'POST');
    expect(evs).toHaveLength(2);
    expect(evs.map((e) => e.body_event)).toEqual([{ event: 'install', n: 1 }, { event: 'upgrade', from: '1.0' }]);
    for (const e of evs) expect(e).toMatchObject({ kind: 'file', action: 'respond', package_id: 'beacon', target: null, status: 200, method: 'POST' });
  });
});

describe('file-v2 and catch-all', () => {
  test('file-v2: named groups fill the target, decoded once', async () => {
    const p = '/nightly/2024-01-02/tool%20x.zip';
    const r = await curl(gw.url(p), ['-H', 'Host: files.test']);
    expect(r.status).toBe(307);
    expect(r.headers.location).toBe('https://nightly.example.com/2024-01-02/tool%20x.zip');
    const [ev] = await eventsFor(p);
    expect(ev).toMatchObject({ kind: 'file', action: 'redirect', package_id: 'nightly', variables: { date: '2024-01-02', file: 'tool x.zip' } });
  });

  test('catch-all: /hello%20world -> https://target.example.org/hello%20world', async () => {
    const r = await curl(gw.url('/hello%20world'), ['-H', 'Host: docs.test']);
    expect(r.status).toBe(307);
    expect(r.headers.location).toBe('https://target.example.org/hello%20world');
    expect(r.headers['cache-control']).toBe('private, no-store');
    const [ev] = await eventsFor('/hello%20world');
    expect(ev).toMatchObject({ kind: 'catch-all', action: 'redirect', download: true, package_id: 'docs', target: 'https://target.example.org/hello%20world' });
  });

  test('catch-all: / -> https://target.example.org (no trailing slash), query re-encoded', async () => {
    const root = await curl(gw.url('/'), ['-H', 'Host: docs.test']);
    expect(root.headers.location).toBe('https://target.example.org');
    const q = await curl(gw.url('/search?q=hello%20world'), ['-H', 'Host: docs.test']);
    expect(q.headers.location).toBe('https://target.example.org/search?q=hello%20world');
  });
});

describe('python-v1', () => {
  test('root page: GET 200 HTML, HEAD the same Content-Length and no body', async () => {
    const get = await curl(gw.url('/simple/'), ['-H', 'Host: py.test']);
    expect(get.status).toBe(200);
    expect(get.headers['content-type']).toMatch(/^text\/html/);
    expect(get.body.toString('utf8')).toContain('<a href="/simple/rocket/">rocket</a>');
    expect(Number(get.headers['content-length'])).toBe(get.body.length);
    const head = await curl(gw.url('/simple/'), ['-H', 'Host: py.test', '-I']);
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe(String(get.body.length));
    expect(head.headers.etag).toBe(get.headers.etag);
    expect(head.body.length).toBe(0);
  });

  test('project page lists both files (sorted, escaped), HEAD keeps the GET length', async () => {
    const get = await curl(gw.url('/simple/rocket/'), ['-H', 'Host: py.test']);
    expect(get.status).toBe(200);
    const html = get.body.toString('utf8');
    const a = html.indexOf('rocket-1.1.0.tar.gz</a>');
    const b = html.indexOf(`${WHEEL}</a>`);
    expect(a).toBeGreaterThan(0);
    expect(b).toBeGreaterThan(a);
    expect(html).toContain(`href="/simple/rocket/${WHEEL}"`);
    expect(html).toContain('data-requires-python="&gt;=3.9"');
    // Raw node HEAD: no body bytes at all on the wire.
    const head = await request(gw.port, { method: 'HEAD', path: '/simple/rocket/', headers: { host: 'py.test' } });
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe(String(Buffer.byteLength(html)));
    expect(head.body.length).toBe(0);
    const [ev] = await eventsFor('/simple/rocket/');
    expect(ev).toMatchObject({ kind: 'python', action: 'respond', package_id: 'rocket-py', download: false });
  });

  test('ETag then If-None-Match: 304 with the ETag and no body', async () => {
    const first = await curl(gw.url('/simple/rocket/'), ['-H', 'Host: py.test']);
    const etag = first.headers.etag;
    expect(etag).toMatch(/^"[^"]+"$/);
    const again = await curl(gw.url('/simple/rocket/'), ['-H', 'Host: py.test', '-H', `If-None-Match: ${etag}`, '-A', 'pip/24.0']);
    expect(again.status).toBe(304);
    expect(again.headers.etag).toBe(etag);
    expect(again.body.length).toBe(0);
    const notModified = await waitForEvents(events, (e) => e.path === '/simple/rocket/' && e.status === 304);
    expect(notModified[0]).toMatchObject({ action: 'not-modified', download: false, client_name: 'pip' });
    // A different ETag gets the page.
    const other = await curl(gw.url('/simple/rocket/'), ['-H', 'Host: py.test', '-H', 'If-None-Match: "something-else"']);
    expect(other.status).toBe(200);
  });

  test('a file: 307 to backend-url with its fragment, event with version and file name', async () => {
    const p = `/simple/rocket/${WHEEL}`;
    const r = await curl(gw.url(p), ['-H', 'Host: py.test']);
    expect(r.status).toBe(307);
    expect(r.headers.location).toBe(WHEEL_URL);
    expect(r.headers['cache-control']).toBe('private, no-store');
    const [ev] = await eventsFor(p);
    expect(ev).toMatchObject({ kind: 'python', action: 'redirect', download: true, package_id: 'rocket-py', version: '1.2.0', file_name: WHEEL, target: WHEEL_URL });
  });

  test('unknown project: 404', async () => {
    const r = await curl(gw.url('/simple/nope/'), ['-H', 'Host: py.test']);
    expect(r.status).toBe(404);
  });
});

describe('telemetry-v1', () => {
  test('a valid plain token: 200 and one event per object', async () => {
    const r = await curl(gw.url('/events'), ['-H', 'Host: files.test', '-H', 'Authorization: Bearer plain-token-1', '--data-binary', '[{"cmd":"build"},{"cmd":"test"}]']);
    expect(r.status).toBe(200);
    const evs = await waitForEvents(events, (e) => e.kind === 'telemetry' && e.action === 'respond' && (e.body_event?.cmd === 'build' || e.body_event?.cmd === 'test'), 2);
    expect(evs.map((e) => e.body_event)).toEqual([{ cmd: 'build' }, { cmd: 'test' }]);
    for (const e of evs) expect(e).toMatchObject({ package_id: 'tool-telemetry', status: 200, method: 'POST', path: '/events' });
  });

  test('a token stored as sha256:<hex> works', async () => {
    const r = await curl(gw.url('/events'), ['-H', 'Host: files.test', '-H', `Authorization: Bearer ${HASHED_TOKEN}`, '--data-binary', '{"cmd":"hashed"}']);
    expect(r.status).toBe(200);
    const [ev] = await waitForEvents(events, (e) => e.body_event?.cmd === 'hashed');
    expect(ev).toMatchObject({ kind: 'telemetry', action: 'respond', package_id: 'tool-telemetry' });
  });

  test('a bad token: 401 with WWW-Authenticate, and no event names a package or keeps the body', async () => {
    for (const auth of ['Bearer wrong-token', `Bearer sha256:${HASHED_TOKEN_DIGEST}`, 'Basic cGxhaW4tdG9rZW4tMQ==']) {
      const r = await curl(gw.url('/events'), ['-H', 'Host: files.test', '-H', `Authorization: ${auth}`, '--data-binary', '{"cmd":"refused"}']);
      expect(r.status).toBe(401);
      expect(r.headers['www-authenticate']).toMatch(/^Bearer realm="files\.test"$/);
    }
    const noAuth = await curl(gw.url('/events'), ['-H', 'Host: files.test', '--data-binary', '{"cmd":"refused"}']);
    expect(noAuth.status).toBe(401);
    const refused = await waitForEvents(events, (e) => e.kind === 'telemetry' && e.action === 'unauthorized', 4);
    for (const e of refused) expect(e).toMatchObject({ package_id: null, body_event: null, status: 401, download: false });
    await expectNoEvent((e) => e.body_event?.cmd === 'refused');
  });
});

describe('pixel-v1', () => {
  test('200 image/png with the PNG signature, no-cache headers, pixel_id from ?x-pxid=', async () => {
    const r = await curl(gw.url('/p.png?x-pxid=readme-badge'), ['-H', 'Host: files.test']);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('image/png');
    expect(r.body.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    expect(Number(r.headers['content-length'])).toBe(r.body.length);
    expect(r.headers['cache-control']).toMatch(/no-cache/);
    expect(r.headers['cache-control']).toMatch(/no-store/);
    const [ev] = await eventsFor('/p.png');
    expect(ev).toMatchObject({ kind: 'pixel', action: 'respond', package_id: 'docs-pixel', pixel_id: 'readme-badge', status: 200 });
  });
});

describe('docker-v1', () => {
  test('/v2/ for a Docker Engine User-Agent: 307 to the upstream registry', async () => {
    const r = await curl(gw.url('/v2/'), ['-H', 'Host: cr.test', '-A', DOCKER_UA]);
    expect(r.status).toBe(307);
    expect(r.headers.location).toBe('https://ghcr.io/v2/');
    const evs = await waitForEvents(events, (e) => e.path === '/v2/' && e.action === 'redirect');
    expect(evs[0]).toMatchObject({ kind: 'docker', package_id: null, download: false, upstream: 'ghcr.io', client_name: 'docker' });
  });

  test('a manifest GET by docker is redirected (a pull), by skopeo proxied to the upstream', async () => {
    const p = '/v2/acme/rocket/manifests/1.0';
    const before = upstream.seen.length;
    const d = await curl(gw.url(p), ['-H', 'Host: cr.test', '-A', DOCKER_UA]);
    expect(d.status).toBe(307);
    expect(d.headers.location).toBe('https://ghcr.io/v2/acme/rocket/manifests/1.0');
    expect(d.headers['cache-control']).toBe('private, no-store');
    expect(upstream.seen.length).toBe(before); // a redirect does not contact the upstream

    const s = await curl(gw.url(p), ['-H', 'Host: cr.test', '-A', SKOPEO_UA]);
    expect(s.status).toBe(200);
    expect(s.headers['docker-content-digest']).toBe('sha256:1111');
    expect(s.body.toString()).toBe('{"schemaVersion":2}');
    expect(upstream.seen.length).toBe(before + 1);
    expect(upstream.seen[before].url).toBe(p);
    expect(headerValues(upstream.seen[before], 'user-agent')).toEqual([SKOPEO_UA]);

    const evs = await eventsFor(p, 2);
    expect(evs.map((e) => [e.action, e.client_name, e.status, e.download])).toEqual([['redirect', 'docker', 307, true], ['proxy', 'skopeo', 200, true]]);
    for (const e of evs) {
      expect(e).toMatchObject({ kind: 'docker', image: 'acme/rocket', reference: '1.0', package_id: 'rocket-image', upstream: 'ghcr.io', target: 'https://ghcr.io/v2/acme/rocket/manifests/1.0' });
    }
  });

  test('/v2/ for skopeo is proxied to the upstream', async () => {
    const r = await curl(gw.url('/v2/'), ['-H', 'Host: cr.test', '-A', SKOPEO_UA]);
    expect(r.status).toBe(200);
    expect(r.headers['docker-distribution-api-version']).toBe('registry/2.0');
  });

  test('an unknown image under /v2/: 404 NAME_UNKNOWN JSON', async () => {
    const r = await curl(gw.url('/v2/acme/unknown/manifests/latest'), ['-H', 'Host: cr.test', '-A', DOCKER_UA]);
    expect(r.status).toBe(404);
    expect(r.headers['content-type']).toBe('application/json');
    expect(r.body.toString('utf8')).toBe(NAME_UNKNOWN);
    expect(JSON.parse(r.body.toString('utf8')).errors[0].code).toBe('NAME_UNKNOWN');
  });
});

test('SIGTERM stops it with exit status 0', async () => {
  expect(await gw.stop()).toEqual({ code: 0, signal: null });
});
