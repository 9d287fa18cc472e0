/**
 * Privacy, end to end: the local gateway serves real curl requests that carry X-Forwarded-For,
 * Forwarded, X-Real-IP, `Authorization: Bearer <unique token>` and a Cookie, through every kind
 * of answer (redirect, proxy with an upstream 401, an unreachable upstream, not found, telemetry),
 * with access logs on. Then every written event and every line the process printed is searched
 * for the client address, the forwarded addresses, the token and the cookie.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  curl, freePort, Gateway, makeTempDir, markerPath, readEventText, readEvents, removeDir, startGateway, startUpstream,
  waitForEvents, writeJson, type GatewayEventJson, type Upstream,
} from './helpers';

jest.setTimeout(60_000);

// The client connects from its own loopback address, which appears nowhere else in the run, so a
// leak of the client address cannot hide behind the server's own 127.0.0.1.
const CLIENT_ADDRESS = '127.0.0.3';
const unique = randomBytes(6).toString('hex');
const TOKEN = `tok-${unique}-secret`;
const COOKIE_VALUE = `sess-${unique}`;
const XFF = `203.0.113.${(parseInt(unique.slice(0, 2), 16) % 200) + 20}`;
const XFF_SECOND = '198.51.100.231';
const REAL_IP = '192.0.2.147';

let dir: string;
let events: string;
let gw: Gateway;
let upstream: Upstream;
let closedPort: number;

const manifest = (file: string) => writeJson(file, {
  rules: [
    { type: 'file-v1', domain: 'get.test', 'package-id': 'rocket', 'incoming-path': '/rocket/{version}/rocket.tgz', 'outgoing-url': 'https://files.example/{version}/rocket.tgz' },
    { type: 'telemetry-v1', domain: 'get.test', 'package-id': 'rocket-telemetry', 'incoming-path': '/telemetry' },
    { type: 'python-v1', domain: 'py.test', 'package-id': 'rocket-py', 'package-name': 'rocket', 'file-name': 'rocket-1.0-py3-none-any.whl', version: '1.0', 'backend-url': 'https://files.example/rocket.whl' },
    { type: 'docker-v1', domain: 'cr.test', 'package-id': 'rocket-image', 'repository-name': 'acme/rocket', registry: 'registry.example', mode: 'proxy' },
    { type: 'docker-v1', domain: 'down.test', 'package-id': 'down-image', 'repository-name': 'acme/down', registry: 'down.example', mode: 'proxy' },
  ],
});

/** curl from CLIENT_ADDRESS with every identifying header a client or proxy might send. */
const identifying = (host: string, extra: string[] = []) => [
  '--interface', CLIENT_ADDRESS,
  '-H', `Host: ${host}`,
  '-H', `X-Forwarded-For: ${XFF}, ${XFF_SECOND}`,
  '-H', `Forwarded: for=${XFF};proto=https`,
  '-H', `X-Real-IP: ${REAL_IP}`,
  '-H', `Authorization: Bearer ${TOKEN}`,
  '-H', `Cookie: session=${COOKIE_VALUE}; other=${COOKIE_VALUE}`,
  '-A', 'curl/8.4.0',
  ...extra,
];

beforeAll(async () => {
  dir = makeTempDir('gw-e2e-privacy-');
  events = path.join(dir, 'events');
  // The upstream answers like a token-auth registry (401 with a challenge) and records what it got.
  upstream = await startUpstream((_req, res) => {
    res.writeHead(401, { 'www-authenticate': 'Bearer realm="https://auth.example/token",service="registry.example"', 'content-type': 'application/json' });
    res.end('{"errors":[{"code":"UNAUTHORIZED"}]}');
  });
  closedPort = await freePort(); // nothing listens there: the proxy's "unreachable" path
  gw = await startGateway({
    manifest: manifest(path.join(dir, 'manifest.json')),
    events,
    upstreams: [`registry.example=${upstream.base}`, `down.example=http://127.0.0.1:${closedPort}`],
    extraArgs: ['--access-log', '--log-format', 'json'],
  });
});

afterAll(async () => {
  await gw?.kill();
  await upstream?.close();
  removeDir(dir);
});

let written: GatewayEventJson[] = [];

test('requests of every kind with identifying headers are served and recorded', async () => {
  expect((await curl(gw.url('/rocket/1.2.0/rocket.tgz'), identifying('get.test'))).status).toBe(307);
  expect((await curl(gw.url('/simple/rocket/rocket-1.0-py3-none-any.whl'), identifying('py.test'))).status).toBe(307);
  expect((await curl(gw.url('/v2/acme/rocket/manifests/1.0'), identifying('cr.test'))).status).toBe(401);
  expect((await curl(gw.url('/v2/acme/down/manifests/1.0'), identifying('down.test'))).status).toBe(502);
  expect((await curl(gw.url('/rockett/1.2.0/rocket.tgz'), identifying('get.test'))).status).toBe(404);
  expect((await curl(gw.url('/telemetry'), identifying('get.test', ['-H', 'Content-Type: application/json', '--data', '{"event":"start"}']))).status).toBe(200);
  // The same download without any forwarding headers, for the visitor-id comparison below.
  expect((await curl(gw.url('/rocket/1.2.0/rocket.tgz'), ['--interface', CLIENT_ADDRESS, '-H', 'Host: get.test', '-A', 'curl/8.4.0'])).status).toBe(307);
  // Opted out: served, not recorded.
  expect((await curl(gw.url('/rocket/9.9.9/rocket.tgz'), identifying('get.test', ['-H', 'DNT: 1']))).status).toBe(307);
  expect((await curl(gw.url('/rocket/9.9.8/rocket.tgz'), identifying('get.test', ['-H', 'Sec-GPC: 1']))).status).toBe(307);

  const marker = markerPath();
  await curl(gw.url(marker), ['-H', 'Host: get.test']);
  await waitForEvents(events, (e) => e.path === marker);
  written = readEvents(events);
  // The upstream really got the token: the proxy works, the gateway just never records it.
  expect(upstream.seen.some((s) => s.rawHeaders.some(([n, v]) => n.toLowerCase() === 'authorization' && v === `Bearer ${TOKEN}`))).toBe(true);
  expect(written.map((e) => `${e.kind} ${e.action} ${e.status}`)).toEqual(expect.arrayContaining([
    'file redirect 307', 'python redirect 307', 'docker proxy 401', 'docker proxy 502', 'file not-found 404', 'telemetry respond 200',
  ]));
});

test('DNT and Sec-GPC requests recorded nothing', () => {
  expect(written.some((e) => e.path.includes('9.9.9') || e.path.includes('9.9.8'))).toBe(false);
});

test('X-Forwarded-For, Forwarded and X-Real-IP change neither the visitor id nor the origin', () => {
  const downloads = written.filter((e) => e.path === '/rocket/1.2.0/rocket.tgz');
  expect(downloads).toHaveLength(2);
  expect(downloads[0].visitor_id).toEqual(expect.any(String));
  expect(downloads[1].visitor_id).toBe(downloads[0].visitor_id);
  // Every event got one: the peer address was known when the event was completed.
  for (const e of written) expect({ path: e.path, visitor_id: e.visitor_id }).toEqual({ path: e.path, visitor_id: expect.stringMatching(/^[\w-]{22}$/) });
  for (const e of written) expect([e.country, e.region, e.asn, e.org]).toEqual([null, null, null, null]);
});

test('no event contains the client address, a forwarded address, the token or the cookie', () => {
  const text = readEventText(events);
  expect(text.length).toBeGreaterThan(1000);
  for (const needle of [CLIENT_ADDRESS, '127.0.0.1', XFF, XFF_SECOND, REAL_IP, TOKEN, unique, COOKIE_VALUE, 'Bearer', 'session=']) {
    expect({ needle, found: text.includes(needle) }).toEqual({ needle, found: false });
  }
});

test('no log line contains them either (access log, upstream errors, shutdown)', async () => {
  expect((await gw.stop()).code).toBe(0);
  const lines = `${gw.stderr}${gw.stdout}`.split('\n').filter((l) => l !== '');
  // The access log really ran: one line per request, the 502's upstream error too.
  expect(lines.filter((l) => /"msg":"GET \S+ \d{3} /.test(l)).length).toBeGreaterThanOrEqual(9);
  expect(lines.some((l) => l.includes('upstream error'))).toBe(true);
  for (const line of lines) {
    for (const needle of [CLIENT_ADDRESS, XFF, XFF_SECOND, REAL_IP, TOKEN, unique, COOKIE_VALUE]) {
      expect({ line, needle, found: line.includes(needle) }).toEqual({ line, needle, found: false });
    }
    // 127.0.0.1 is also the server's own address: only the startup line may name it, as where it listens.
    if (line.includes('127.0.0.1')) expect(line).toMatch(/listening on http:\/\/127\.0\.0\.1:\d+ /);
  }
});

describe('behind CloudFront (--trust-cloudfront-headers)', () => {
  let cfDir: string;
  let cfGw: Gateway;

  beforeAll(async () => {
    cfDir = makeTempDir('gw-e2e-privacy-cf-');
    cfGw = await startGateway({ manifest: manifest(path.join(cfDir, 'manifest.json')), events: path.join(cfDir, 'events'), extraArgs: ['--trust-cloudfront-headers'] });
  });

  afterAll(async () => {
    await cfGw?.kill();
    removeDir(cfDir);
  });

  const viewer = (address: string, extra: string[] = []) => [
    '-H', 'Host: get.test', '-A', 'pip/24.0',
    '-H', 'CloudFront-Viewer-Country: DE', '-H', 'CloudFront-Viewer-Country-Region: BY', '-H', 'CloudFront-Viewer-ASN: 16509',
    '-H', `CloudFront-Viewer-Address: ${address}`, ...extra,
  ];

  test('origin comes from the viewer headers; the visitor id from the viewer address, whatever X-Forwarded-For says', async () => {
    await curl(cfGw.url('/rocket/1.0/rocket.tgz'), viewer('198.51.100.10:50000'));
    await curl(cfGw.url('/rocket/1.0/rocket.tgz'), viewer('198.51.100.10:50001', ['-H', `X-Forwarded-For: ${XFF}`]));
    await curl(cfGw.url('/rocket/1.0/rocket.tgz'), viewer('198.51.100.11:50000', ['-H', 'X-Forwarded-For: 198.51.100.10']));
    const got = await waitForEvents(path.join(cfDir, 'events'), (e) => e.path === '/rocket/1.0/rocket.tgz', 3);
    for (const e of got) expect([e.country, e.region, e.asn, e.org]).toEqual(['DE', 'DE-BY', '16509', 'Amazon']);
    expect(got[1].visitor_id).toBe(got[0].visitor_id);
    expect(got[2].visitor_id).not.toBe(got[0].visitor_id);
    const text = readEventText(path.join(cfDir, 'events'));
    for (const needle of ['198.51.100.10', '198.51.100.11', XFF]) expect({ needle, found: text.includes(needle) }).toEqual({ needle, found: false });
    expect(fs.existsSync(path.join(cfDir, 'events'))).toBe(true);
  });
});
