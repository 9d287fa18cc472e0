/**
 * Privacy: no client address, X-Forwarded-For, Authorization or cookie in any event, log line or
 * error message (gateway run with --access-log, in both log formats); visitor ids are stable per
 * client/User-Agent/package and do not follow a client-supplied X-Forwarded-For.
 */
import path from 'node:path';
import {
  curl, freePort, Gateway, GatewayEventJson, LOCAL, makeTempDir, markerPath, rawExchange, readEventText, removeDir, request,
  startGateway, startUpstream, Upstream, waitForEvents, writeJson,
} from './helpers';

jest.setTimeout(60_000);

const XFF = '203.0.113.9';
const TOKEN = 'SECRET-TOKEN-123';
const COOKIE = 'COOKIE-456';
const FORBIDDEN = [XFF, '127.0.0.1', TOKEN, COOKIE];
const SENSITIVE = ['-H', `X-Forwarded-For: ${XFF}`, '-H', `Authorization: Bearer ${TOKEN}`, '-H', `Cookie: session=${COOKIE}`];

const MANIFEST = {
  rules: [
    { type: 'file-v1', domain: 'files.test', 'incoming-path': '/dl/{version}/tool-{os}.tar.gz', 'outgoing-url': 'https://downloads.example.com/{version}/tool-{os}.tar.gz', 'package-id': 'tool' },
    { type: 'file-v1', domain: 'files.test', 'incoming-path': '/collect', 'outgoing-url': null, 'package-id': 'beacon' },
    { type: 'telemetry-v1', domain: 'files.test', 'incoming-path': '/events', 'package-id': 'tele', 'access-tokens': ['the-real-token'] },
    { type: 'pixel-v1', domain: 'files.test', 'incoming-path': '/p.png', 'package-id': 'pixel' },
    { type: 'catch-all-v1', domain: 'docs.test', 'redirect-target-domain': 'docs.example.org', 'package-id': 'docs' },
    { type: 'docker-v1', domain: 'cr.test', 'repository-name': 'acme/rocket', registry: 'ghcr.io', 'package-id': 'img' },
    { type: 'docker-v1', domain: 'cr.test', 'repository-name': 'acme/down', registry: 'down.test', 'package-id': 'down' },
  ],
};

/** The startup line names the address the gateway binds (127.0.0.1 here): that is not a client address. */
const STARTUP_LINE = /^(\{.*"msg":")?artifact-gateway listening on http:\/\/127\.0\.0\.1:\d+ /;

describe.each(['text', 'json'])('with --access-log --log-format %s', (format) => {
  let dir: string;
  let events: string;
  let gw: Gateway;
  let upstream: Upstream;
  const evs = new Map<string, GatewayEventJson>();

  beforeAll(async () => {
    dir = makeTempDir('gw-e2e-privacy-');
    events = path.join(dir, 'events');
    upstream = await startUpstream((req, res) => {
      res.writeHead(req.url === '/v2/acme/rocket/manifests/1.0' ? 200 : 404, { 'content-type': 'application/json' });
      res.end('{}');
    });
    const closed = await freePort();
    gw = await startGateway({
      manifest: writeJson(path.join(dir, 'manifest.json'), MANIFEST),
      events,
      upstreams: [`ghcr.io=${upstream.base}`, `down.test=http://${LOCAL}:${closed}`],
      extraArgs: ['--access-log', '--log-format', format],
    });
  });

  afterAll(async () => {
    await gw?.kill();
    await upstream?.close();
    removeDir(dir);
  });

  test('requests of every kind, carrying X-Forwarded-For, Authorization and a cookie, are answered', async () => {
    const h = ['-H', 'Host: files.test', ...SENSITIVE];
    expect((await curl(gw.url('/dl/1.0/tool-linux.tar.gz?token=abc'), h)).status).toBe(307);
    expect((await curl(gw.url('/collect'), [...h, '--data-binary', '{"a":1}'])).status).toBe(200);
    expect((await curl(gw.url('/events'), [...h, '--data-binary', '{"a":2}'])).status).toBe(401); // wrong token
    expect((await curl(gw.url('/p.png?x-pxid=px'), h)).status).toBe(200);
    expect((await curl(gw.url('/missing'), h)).status).toBe(404);
    expect((await curl(gw.url('/anything'), ['-H', 'Host: nobody.test', ...SENSITIVE])).status).toBe(404);
    expect((await curl(gw.url('/v2/acme/rocket/manifests/1.0'), ['-H', 'Host: cr.test', '-A', 'skopeo/1.9.3', ...SENSITIVE])).status).toBe(200);
    expect((await curl(gw.url('/v2/acme/down/manifests/1.0'), ['-H', 'Host: cr.test', '-A', 'skopeo/1.9.3', ...SENSITIVE])).status).toBe(502);
    expect((await curl(gw.url('/v2/acme/none/manifests/1.0'), ['-H', 'Host: cr.test', ...SENSITIVE])).status).toBe(404);
    // A malformed request carrying the same values.
    const bad = await rawExchange(gw.port, `GET / HTTP/1.1\r\nHost: files.test\r\nX-Forwarded-For: ${XFF}\r\nAuthorization: Bearer ${TOKEN}\r\nBad Header: ${COOKIE}\r\n\r\n`, 2_000);
    expect(bad).toMatch(/^HTTP\/1\.1 4\d\d/);
    const m = markerPath();
    expect((await curl(gw.url(m), ['-H', 'Host: docs.test', ...SENSITIVE])).status).toBe(307);
    await waitForEvents(events, (e) => e.path === m);
    // The access log has one line per request (so the log checks below look at real lines).
    await gw.waitForStderr(/\/v2\/acme\/down\/manifests\/1\.0/);
    expect(gw.stderr).toMatch(/files\.test\/dl\/1\.0\/tool-linux\.tar\.gz/);
    expect(gw.stderr).not.toMatch(/token=abc/); // no query strings in the access log
  });

  test('visitor_id: present, equal for the same client/UA/package, different for another User-Agent or package, not moved by X-Forwarded-For', async () => {
    const send = async (p: string, ua: string, xff: string) => {
      expect((await curl(gw.url(p), ['-H', 'Host: files.test', '-A', ua, '-H', `X-Forwarded-For: ${xff}`])).status).toBeLessThan(400);
      const [e] = await waitForEvents(events, (x) => x.path === p.split('?')[0] && (x.pixel_id === null || x.pixel_id === 'vis'));
      expect(e.client_name).toBe(ua.split('/')[0].toLowerCase()); // the event of this request
      evs.set(p, e);
      return e.visitor_id;
    };
    const a1 = await send('/dl/3.0/tool-linux.tar.gz', 'Wget/1.21.3', '198.51.100.1');
    const a2 = await send('/dl/3.1/tool-darwin.tar.gz', 'Wget/1.21.3', '198.51.100.1');
    const aOtherXff = await send('/dl/3.2/tool-windows.tar.gz', 'Wget/1.21.3', '192.0.2.77');
    const b = await send('/dl/3.3/tool-linux.tar.gz', 'curl/8.5.0', '198.51.100.1');
    const aPixel = await send('/p.png?x-pxid=vis', 'Wget/1.21.3', '198.51.100.1');
    expect(a1).toEqual(expect.any(String));
    expect(a1!.length).toBeGreaterThanOrEqual(16);
    expect(a2).toBe(a1);
    expect(aOtherXff).toBe(a1);
    expect(b).toEqual(expect.any(String));
    expect(b).not.toBe(a1);
    expect(aPixel).toEqual(expect.any(String));
    expect(aPixel).not.toBe(a1);
  });

  test('no event contains the client address, X-Forwarded-For, the token or the cookie', () => {
    const text = readEventText(events);
    expect(text.length).toBeGreaterThan(0);
    for (const s of FORBIDDEN) expect({ secret: s, found: text.includes(s) }).toEqual({ secret: s, found: false });
  });

  test('no line of stdout or stderr contains them either, through shutdown', async () => {
    expect(await gw.stop()).toEqual({ code: 0, signal: null });
    const lines = `${gw.stdout}\n${gw.stderr}`.split('\n').filter((l) => l !== '' && !STARTUP_LINE.test(l));
    expect(lines.length).toBeGreaterThan(8);
    const leaks = lines.filter((l) => FORBIDDEN.some((s) => l.includes(s)));
    expect(leaks).toEqual([]);
    // Exactly one startup line was set aside.
    expect(`${gw.stdout}\n${gw.stderr}`.split('\n').filter((l) => STARTUP_LINE.test(l))).toHaveLength(1);
  });
});

test('node http: a repeated X-Forwarded-For header does not leak either (raw header lines)', async () => {
  const dir = makeTempDir('gw-e2e-privacy-raw-');
  const events = path.join(dir, 'events');
  const gw = await startGateway({ manifest: writeJson(path.join(dir, 'manifest.json'), MANIFEST), events, extraArgs: ['--access-log'] });
  try {
    const r = await request(gw.port, {
      path: '/dl/5.0/tool-linux.tar.gz',
      headers: { host: 'files.test', 'x-forwarded-for': [XFF, '198.51.100.200'], forwarded: `for=${XFF}`, 'x-real-ip': XFF, authorization: `Bearer ${TOKEN}`, cookie: [`a=${COOKIE}`, 'b=2'] },
    });
    expect(r.status).toBe(307);
    const [ev] = await waitForEvents(events, (e) => e.path === '/dl/5.0/tool-linux.tar.gz');
    const line = JSON.stringify(ev);
    for (const s of [...FORBIDDEN, '198.51.100.200']) expect(line).not.toContain(s);
    expect(await gw.stop()).toEqual({ code: 0, signal: null });
    const logLines = gw.stderr.split('\n').filter((l) => l !== '' && !STARTUP_LINE.test(l));
    expect(logLines.filter((l) => [...FORBIDDEN, '198.51.100.200'].some((s) => l.includes(s)))).toEqual([]);
  } finally {
    await gw.kill();
    removeDir(dir);
  }
});
