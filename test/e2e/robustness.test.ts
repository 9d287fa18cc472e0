/**
 * Robustness: malformed requests over raw TCP get a 4xx and the server keeps serving; invalid
 * percent-encoding never gives a 5xx; over-long targets get 414; DNT / Sec-GPC are served and
 * record nothing.
 */
import http from 'node:http';
import path from 'node:path';
import {
  curl, curlStatus, Gateway, GatewayEventJson, makeTempDir, markerPath, rawExchange, readEvents, removeDir, request,
  startGateway, waitForEvents, writeJson,
} from './helpers';

jest.setTimeout(60_000);

const MANIFEST = {
  rules: [
    { type: 'file-v1', domain: 'files.test', 'incoming-path': '/dl/{version}/tool-{os}.tar.gz', 'outgoing-url': 'https://downloads.example.com/{version}/tool-{os}.tar.gz', 'package-id': 'tool' },
    { type: 'file-v1', domain: 'files.test', 'incoming-path': '/any/{+rest}', 'outgoing-url': 'https://any.example.com/{+rest}', 'package-id': 'any' },
    { type: 'file-v2', domain: 'files.test', 'incoming-path': '^/n/(?<file>[^/]+)$', 'outgoing-url': 'https://n.example.com/{file}', 'package-id': 'n' },
    { type: 'pixel-v1', domain: 'files.test', 'incoming-path': '/p.png', 'package-id': 'pixel' },
    { type: 'telemetry-v1', domain: 'files.test', 'incoming-path': '/events', 'package-id': 'tele' },
    { type: 'catch-all-v1', domain: 'docs.test', 'redirect-target-domain': 'docs.example.org', 'package-id': 'docs' },
    { type: 'python-v1', domain: 'py.test', 'package-name': 'rocket', 'file-name': 'rocket-1.0.tar.gz', version: '1.0', 'backend-url': 'https://files.example.org/rocket-1.0.tar.gz', 'package-id': 'rocket' },
    // mode redirect: never contacts a real registry from this test
    { type: 'docker-v1', domain: 'cr.test', 'repository-name': 'acme/rocket', registry: 'ghcr.io', 'package-id': 'img', mode: 'redirect' },
    { type: 'docker-v2', domain: 'cr.test', pattern: 'lib/*', registry: 'ghcr.io', 'rule-id': 'lib', mode: 'redirect' },
  ],
};

let dir: string;
let events: string;
let gw: Gateway;

beforeAll(async () => {
  dir = makeTempDir('gw-e2e-robust-');
  events = path.join(dir, 'events');
  gw = await startGateway({ manifest: writeJson(path.join(dir, 'manifest.json'), MANIFEST), events });
});

afterAll(async () => {
  await gw?.kill();
  removeDir(dir);
});

async function stillServing(): Promise<void> {
  const r = await curl(gw.url('/dl/1.0/tool-linux.tar.gz'), ['-H', 'Host: files.test']);
  expect(r.status).toBe(307);
  expect(r.headers.location).toBe('https://downloads.example.com/1.0/tool-linux.tar.gz');
  expect(gw.running()).toBe(true);
}

const statusOf = (raw: string): number => Number(/^HTTP\/1\.[01] (\d{3})/.exec(raw)?.[1] ?? NaN);

describe('malformed requests over raw TCP get a 4xx, and the server keeps serving', () => {
  test.each([
    ['garbage request line', 'GARBAGE\r\n\r\n'],
    ['request line without version', 'GET /\r\nHost: files.test\r\n\r\n'],
    ['space in a header name', 'GET / HTTP/1.1\r\nHost: files.test\r\nBad Header: x\r\n\r\n'],
    ['control character in a header value', 'GET / HTTP/1.1\r\nHost: files.test\r\nX-A: a\x01b\r\n\r\n'],
    ['header line without colon', 'GET / HTTP/1.1\r\nHost: files.test\r\nNoColonHere\r\n\r\n'],
    ['Content-Length and Transfer-Encoding together', 'POST /events HTTP/1.1\r\nHost: files.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['two different Content-Lengths', 'POST /events HTTP/1.1\r\nHost: files.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab'],
    ['bad chunk size', 'POST /events HTTP/1.1\r\nHost: files.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n'],
    ['asterisk-form target on GET', 'GET * HTTP/1.1\r\nHost: files.test\r\nConnection: close\r\n\r\n'],
  ])('%s', async (_name, bytes) => {
    const out = await rawExchange(gw.port, bytes, 3_000);
    const status = statusOf(out);
    expect(status).toBeGreaterThanOrEqual(400);
    expect(status).toBeLessThan(500);
    await stillServing();
  });

  test('a client that sends half a request and disconnects does not hurt', async () => {
    const out = await rawExchange(gw.port, 'GET /dl/1.0/tool-lin', 200);
    expect(out).toBe('');
    await stillServing();
  });
});

describe('invalid percent-encoding never gives a 5xx', () => {
  const cases: Array<[string, string]> = [];
  for (const host of ['files.test', 'docs.test', 'py.test', 'cr.test', 'unknown.test']) {
    for (const p of ['/%FF%FE', '/%zz', '/%', '/a%2', '/%C3%28', '/%ED%A0%80']) cases.push([host, p]);
  }
  cases.push(
    ['files.test', '/dl/%FF/tool-%zz.tar.gz'], ['files.test', '/any/%FF%FE/x'], ['files.test', '/n/%FF'], ['files.test', '/n/%zz'],
    ['files.test', '/p.png?x-pxid=%FF%zz'], ['files.test', '/dl/1.0/tool-linux.tar.gz?a=%FF&b=%zz'],
    ['docs.test', '/x?q=%FF%FE&r=%zz'], ['py.test', '/simple/%FF/'], ['py.test', '/simple/rocket/%FF'], ['py.test', '/simple/%zz/'],
    ['cr.test', '/v2/%FF/manifests/latest'], ['cr.test', '/v2/lib/%FF/manifests/latest'], ['cr.test', '/v2/acme/rocket/manifests/%zz'], ['cr.test', '/v2/lib/%zz/blobs/sha256:%FF'],
  );

  test.each(cases)('%s %s', async (host, p) => {
    const r = await request(gw.port, { path: p, headers: { host, 'user-agent': 'docker/24.0.7' } });
    expect(r.status).toBeLessThan(500);
  });

  test('a POST with an invalid-UTF-8 body to telemetry is not a 5xx', async () => {
    const body = Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]);
    const t = await request(gw.port, { method: 'POST', path: '/events', headers: { host: 'files.test', 'content-type': 'application/json' }, body });
    expect(t.status).toBeLessThan(500);
  });

  test('and the server still serves', stillServing);
});

describe('bodies larger than the gateway reads', () => {
  test('a telemetry body that never ends gets 413 at once, while the gateway discards the rest', async () => {
    const started = Date.now();
    const result = await new Promise<{ status: number }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: gw.port, method: 'POST', path: '/events', headers: { host: 'files.test', 'transfer-encoding': 'chunked' } });
      const chunk = Buffer.alloc(16 * 1024, 0x20);
      let writing = true;
      const pump = () => {
        while (writing && req.write(chunk));
        if (writing) req.once('drain', pump);
      };
      req.once('response', (res) => {
        writing = false;
        res.resume();
        resolve({ status: res.statusCode ?? 0 });
        req.destroy();
      });
      req.once('error', (e) => (writing ? reject(e) : undefined));
      pump();
      setTimeout(() => reject(new Error('no answer within 10 s')), 10_000).unref();
    });
    expect(result).toEqual({ status: 413 });
    expect(Date.now() - started).toBeLessThan(5_000);
    await stillServing();
  });
});

describe('over-long request targets', () => {
  test('a 20 KB path gets 414', async () => {
    const long = `/any/${'a'.repeat(20 * 1024)}`;
    expect(await curlStatus(gw.url(long), ['-H', 'Host: files.test'])).toBe(414);
    await stillServing();
  });

  test('a 20 KB query gets 414', async () => {
    const long = `/dl/1.0/tool-linux.tar.gz?x=${'b'.repeat(20 * 1024)}`;
    expect(await curlStatus(gw.url(long), ['-H', 'Host: files.test'])).toBe(414);
    await stillServing();
  });

  test('a 12 KB path is still served', async () => {
    const p = `/any/${'c'.repeat(12 * 1024)}`;
    const r = await curl(gw.url(p), ['-H', 'Host: files.test']);
    expect(r.status).toBe(307);
    expect(r.headers.location).toBe(`https://any.example.com/${'c'.repeat(12 * 1024)}`);
  });
});

describe('DNT and Sec-GPC', () => {
  async function expectNoEventFor(pred: (e: GatewayEventJson) => boolean): Promise<void> {
    const m = markerPath();
    expect((await curl(gw.url(m), ['-H', 'Host: docs.test'])).status).toBe(307);
    await waitForEvents(events, (e) => e.path === m);
    expect(readEvents(events).filter(pred)).toEqual([]);
  }

  test.each([
    ['DNT: 1', '/dl/7.0/tool-dnt.tar.gz'],
    ['Sec-GPC: 1', '/dl/7.1/tool-gpc.tar.gz'],
  ])('%s is served normally and records no event', async (h, p) => {
    const r = await curl(gw.url(p), ['-H', 'Host: files.test', '-H', h]);
    expect(r.status).toBe(307);
    expect(r.headers.location).toBe(`https://downloads.example.com${p.slice(3)}`);
    // Other rule types too: a pixel, telemetry body events, a python page.
    const px = await curl(gw.url(`/p.png?x-pxid=${encodeURIComponent(h)}`), ['-H', 'Host: files.test', '-H', h]);
    expect(px.status).toBe(200);
    const tel = await curl(gw.url('/events'), ['-H', 'Host: files.test', '-H', h, '--data-binary', `{"opted":"${h}"}`]);
    expect(tel.status).toBe(200);
    await expectNoEventFor((e) => e.path === p || e.pixel_id === h || e.body_event?.opted === h);
  });

  test('DNT: 0 records as usual (the check is positive)', async () => {
    const p = '/dl/7.2/tool-dnt0.tar.gz';
    expect((await curl(gw.url(p), ['-H', 'Host: files.test', '-H', 'DNT: 0'])).status).toBe(307);
    await waitForEvents(events, (e) => e.path === p);
  });
});

test('SIGTERM stops it with exit status 0', async () => {
  expect(await gw.stop()).toEqual({ code: 0, signal: null });
});
