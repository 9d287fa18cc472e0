/**
 * The Lambda function URL adapter with real payload-2.0 events (as CloudFront with origin access
 * control delivers them): raw path and query reach the engine intact, the viewer's Authorization
 * is restored and CloudFront's signature dropped, base64 bodies and cookies, redirects, responses,
 * proxying to a real upstream server, events and their privacy.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { createHash } from 'node:crypto';
import type { LambdaFunctionURLEvent } from 'aws-lambda';
import { adaptEvent, handleFunctionUrlEvent, toResponseHead, viewerOf, type ResponseHead } from '../../lambda/aws/function-url';
import { createStreamingHandler } from '../../lambda/aws/streaming-handler';
import { BundledRuleSource } from '../../lambda/aws/bundled-rules';
import { LogEventSink, EVENT_LOG_MESSAGE } from '../../lambda/aws/log-sink';
import type { EventSink, RuleSource } from '../../lambda/aws/ports';
import type { GatewayEvent } from '../../lambda/core/events';
import { functionUrlEvent } from './aws-fixtures';

const RULES = [
  { type: 'file-v1', domain: 'dl.example.com', 'incoming-path': '/rocket/{version}/rocket-{os}-{arch}.tar.gz', 'outgoing-url': 'https://github.com/acme/rocket/releases/download/v{version}/rocket-{os}-{arch}.tar.gz', 'package-id': 'rocket-cli' },
  { type: 'file-v2', domain: 'dl.example.com', 'incoming-path': '^/raw/(?<name>.+)$', 'outgoing-url': 'https://files.example.net/{name}', 'package-id': 'raw' },
  { type: 'telemetry-v1', domain: 'dl.example.com', 'incoming-path': '/events', 'package-id': 'rocket-cli' },
  { type: 'pixel-v1', domain: 'dl.example.com', 'incoming-path': '/a.png', 'package-id': 'docs' },
];

class MemorySink implements EventSink {
  events: GatewayEvent[] = [];
  flushed = 0;
  write(events: readonly GatewayEvent[]): void {
    this.events.push(...events);
  }
  async flush(): Promise<void> {
    this.flushed++;
  }
}

interface Captured {
  head: ResponseHead;
  body: Buffer;
  status: number;
  events: GatewayEvent[];
  upstreamError: boolean;
}

async function run(event: LambdaFunctionURLEvent, rules: RuleSource, opts: { cacheDownloadsSeconds?: number } = {}): Promise<Captured> {
  let head: ResponseHead | undefined;
  const chunks: Buffer[] = [];
  const stream = new PassThrough();
  stream.on('data', (c: Buffer) => chunks.push(c));
  const sink = new MemorySink();
  const r = await handleFunctionUrlEvent(event, (h) => {
    head = h;
    return stream;
  }, { rules, sink, salt: () => 'test-salt', cacheDownloadsSeconds: opts.cacheDownloadsSeconds ?? null });
  await new Promise((resolve) => setImmediate(resolve));
  if (!head) throw new Error('no response head');
  return { head, body: Buffer.concat(chunks), status: r.status, events: sink.events, upstreamError: r.upstreamError };
}

const bundled = new BundledRuleSource({ rules: RULES });

describe('adaptEvent', () => {
  test('the raw path comes from the edge header (the function URL decodes %2F in rawPath); the raw query stays as sent', () => {
    const e = functionUrlEvent({ rawPath: '/raw/a%2Fb%20c', decodedPath: '/raw/a/b c', rawQueryString: 'x=%2Fa+b&flag&y=%E2%9C%93' });
    const { request } = adaptEvent(e);
    expect(request.rawPath).toBe('/raw/a%2Fb%20c');
    expect(request.rawQuery).toBe('?x=%2Fa+b&flag&y=%E2%9C%93');
    expect(request.method).toBe('GET');
  });

  test('without the edge header the event rawPath is used; an empty query stays empty', () => {
    const e = functionUrlEvent({ rawPath: '/install.sh' });
    delete e.headers['x-gateway-raw-path'];
    expect(adaptEvent(e).request).toMatchObject({ rawPath: '/install.sh', rawQuery: '' });
  });

  test('the viewer Authorization is restored from the private header; CloudFront signature and hop headers are dropped', () => {
    const e = functionUrlEvent({ rawPath: '/v2/', headers: { 'x-gateway-authorization': 'Bearer viewer-token', 'user-agent': 'docker/27.0.1' }, cookies: ['session=1'] });
    const h = adaptEvent(e).request.headers;
    expect(h.authorization).toBe('Bearer viewer-token');
    expect(h.host).toBe('dl.example.com');
    expect(h['x-forwarded-host']).toBe('dl.example.com');
    expect(h['user-agent']).toBe('docker/27.0.1');
    for (const gone of ['x-amz-date', 'x-amz-security-token', 'x-amz-content-sha256', 'x-forwarded-for', 'via', 'x-amz-cf-id', 'x-gateway-authorization', 'x-gateway-raw-path', 'cloudfront-viewer-address', 'cloudfront-viewer-country', 'cookie']) {
      expect(h[gone]).toBeUndefined();
    }
  });

  test('no private header: no Authorization at all (never the OAC signature)', () => {
    const h = adaptEvent(functionUrlEvent({ rawPath: '/v2/' })).request.headers;
    expect(h.authorization).toBeUndefined();
  });

  test('base64 bodies are decoded; text bodies kept', () => {
    const bytes = Buffer.from([0, 1, 2, 250, 251]);
    expect(adaptEvent(functionUrlEvent({ method: 'POST', rawPath: '/events', body: bytes })).body).toEqual(bytes);
    const text = adaptEvent(functionUrlEvent({ method: 'POST', rawPath: '/events', body: '{"a":1}', base64: false }));
    expect(text.body?.toString()).toBe('{"a":1}');
    expect(text.request.hasBody).toBe(true);
  });

  test('viewer facts come from CloudFront viewer headers (IPv4 and IPv6 with port), never from X-Forwarded-For', () => {
    expect(viewerOf({ 'cloudfront-viewer-address': '203.0.113.9:51234', 'cloudfront-viewer-country': 'de', 'cloudfront-viewer-country-region': 'be', 'cloudfront-viewer-asn': '3320' }))
      .toEqual({ ip: '203.0.113.9', origin: { country: 'DE', region: 'DE-BE', asn: '3320', org: null } });
    // The ASN-to-organisation table names the networks it knows (the same lookup as the local gateway).
    expect(viewerOf({ 'cloudfront-viewer-asn': '16509' }).origin).toEqual({ country: null, region: null, asn: '16509', org: 'Amazon' });
    expect(viewerOf({ 'cloudfront-viewer-address': '2001:db8:85a3::8a2e:370:7334:443' }).ip).toBe('2001:db8:85a3::8a2e:370:7334');
    expect(viewerOf({ 'x-forwarded-for': '198.51.100.1' } as Record<string, string>)).toEqual({ ip: null, origin: { country: null, region: null, asn: null, org: null } });
  });
});

describe('handleFunctionUrlEvent', () => {
  test('a file download is redirected with 307, never cacheable, and recorded without the address', async () => {
    const r = await run(functionUrlEvent({ rawPath: '/rocket/1.2.0/rocket-linux-amd64.tar.gz', rawQueryString: 'src=readme', headers: { 'user-agent': 'curl/8.5.0' } }), bundled);
    expect(r.head.statusCode).toBe(307);
    expect(r.head.headers.location).toBe('https://github.com/acme/rocket/releases/download/v1.2.0/rocket-linux-amd64.tar.gz?src=readme');
    expect(r.head.headers['cache-control']).toBe('private, no-store');
    expect(r.body.length).toBe(0);
    expect(r.events).toHaveLength(1);
    expect(r.events[0]).toMatchObject({ kind: 'file', action: 'redirect', download: true, package_id: 'rocket-cli', domain: 'dl.example.com', country: 'DE', region: 'DE-BE', asn: '3320', client_name: 'curl', path: '/rocket/1.2.0/rocket-linux-amd64.tar.gz' });
    expect(r.events[0].visitor_id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    const json = JSON.stringify(r.events);
    for (const secret of ['203.0.113.9', '130.176.1.2', 'AWS4-HMAC', 'IQoJb3JpZ2lu']) expect(json).not.toContain(secret);
  });

  test('an opted-in cache time replaces no-store with a shared-cache lifetime', async () => {
    const r = await run(functionUrlEvent({ rawPath: '/rocket/1.2.0/rocket-linux-amd64.tar.gz' }), bundled, { cacheDownloadsSeconds: 300 });
    expect(r.head.headers['cache-control']).toBe('max-age=0, s-maxage=300');
  });

  test('the raw path reaches the matcher intact: %2F stays inside one variable', async () => {
    const r = await run(functionUrlEvent({ rawPath: '/raw/a%2Fb', decodedPath: '/raw/a/b' }), bundled);
    expect(r.head.headers.location).toBe('https://files.example.net/a%2Fb');
  });

  test('a base64 telemetry body becomes events; DNT requests are served and not recorded', async () => {
    const body = Buffer.from('{"event":"start","n":1}\n{"event":"stop","n":2}');
    const r = await run(functionUrlEvent({ method: 'POST', rawPath: '/events', body, headers: { 'content-type': 'application/json' } }), bundled);
    expect(r.status).toBe(200);
    expect(r.events.map((e) => e.body_event)).toEqual([{ event: 'start', n: 1 }, { event: 'stop', n: 2 }]);
    const dnt = await run(functionUrlEvent({ method: 'POST', rawPath: '/events', body, headers: { dnt: '1' } }), bundled);
    expect(dnt.status).toBe(200);
    expect(dnt.events).toEqual([]);
  });

  test('the pixel answers image bytes with their length; HEAD keeps the length and sends no body', async () => {
    const get = await run(functionUrlEvent({ rawPath: '/a.png', rawQueryString: 'x-pxid=readme' }), bundled);
    expect(get.head.headers['content-type']).toBe('image/png');
    expect(get.body.length).toBe(Number(get.head.headers['content-length']));
    expect(get.body.subarray(1, 4).toString()).toBe('PNG');
    expect(get.events[0].pixel_id).toBe('readme');
    const head = await run(functionUrlEvent({ method: 'HEAD', rawPath: '/a.png' }), bundled);
    expect(head.body.length).toBe(0);
  });

  test('an unknown host gets 404 and no event; a host is taken from X-Forwarded-Host only', async () => {
    const r = await run(functionUrlEvent({ rawPath: '/rocket/1.2.0/rocket-linux-amd64.tar.gz', host: 'other.example.org' }), bundled);
    expect(r.status).toBe(404);
    expect(r.events).toEqual([]);
  });

  test('a failing rule source becomes 503 with Retry-After, not a crash', async () => {
    const broken: RuleSource = { rulesFor: () => Promise.reject(new Error('table unreachable')) };
    const r = await run(functionUrlEvent({ rawPath: '/x' }), broken);
    expect(r.status).toBe(503);
    expect(r.head.headers['retry-after']).toBe('5');
    expect(JSON.parse(r.body.toString())).toMatchObject({ error: 'rules_unavailable' });
  });
});

describe('proxying through a real upstream', () => {
  let server: http.Server;
  let port = 0;
  const seen: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders; body: string }> = [];

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() });
        if (req.url?.includes('/blobs/')) {
          // What GHCR and Docker Hub do: a redirect to a signed, short-lived CDN URL, without Cache-Control.
          res.writeHead(307, { location: 'https://cdn.example.net/blob?sig=abc&exp=60' });
          res.end();
          return;
        }
        const manifest = JSON.stringify({ schemaVersion: 2, layers: [] });
        res.writeHead(200, [
          'Content-Type', 'application/vnd.oci.image.manifest.v1+json',
          'Docker-Content-Digest', `sha256:${createHash('sha256').update(manifest).digest('hex')}`,
          'Content-Length', String(Buffer.byteLength(manifest)),
          'Set-Cookie', 'a=1; Path=/', 'Set-Cookie', 'b=2; Path=/',
        ]);
        res.end(req.method === 'HEAD' ? undefined : manifest);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  const proxyRules = () => new BundledRuleSource({ rules: [
    { type: 'docker-v1', domain: 'cr.example.com', 'repository-name': 'acme/rocket', registry: `http://127.0.0.1:${port}`, 'package-id': 'rocket-image', mode: 'proxy' },
  ] });

  test('method, raw path, raw query and the restored Authorization reach the upstream; viewer facts and cookies do not', async () => {
    seen.length = 0;
    const e = functionUrlEvent({
      host: 'cr.example.com', rawPath: '/v2/acme/rocket/manifests/sha256%3Aabc', rawQueryString: 'ns=docker.io&q=%2Fx+y',
      headers: { 'x-gateway-authorization': 'Bearer registry-token', 'user-agent': 'containers/5.23.1 (github.com/containers/image)', accept: 'application/vnd.oci.image.manifest.v1+json' },
      cookies: ['session=secret'],
    });
    const r = await run(e, proxyRules());
    expect(r.status).toBe(200);
    expect(seen).toHaveLength(1);
    expect(seen[0].url).toBe('/v2/acme/rocket/manifests/sha256%3Aabc?ns=docker.io&q=%2Fx+y');
    expect(seen[0].headers.authorization).toBe('Bearer registry-token');
    expect(seen[0].headers.host).toBe(`127.0.0.1:${port}`);
    for (const gone of ['x-forwarded-for', 'cookie', 'cloudfront-viewer-address', 'x-gateway-authorization', 'x-amz-security-token', 'x-forwarded-host', 'via']) {
      expect(seen[0].headers[gone]).toBeUndefined();
    }
    expect(JSON.parse(r.body.toString())).toEqual({ schemaVersion: 2, layers: [] });
    expect(r.head.cookies).toEqual(['a=1; Path=/', 'b=2; Path=/']);
    expect(r.head.headers['set-cookie']).toBeUndefined();
    // A manifest GET is a pull: counted, so never cacheable by CloudFront.
    expect(r.head.headers['cache-control']).toBe('private, no-store');
    expect(r.events[0]).toMatchObject({ kind: 'docker', action: 'proxy', download: true, image: 'acme/rocket', status: 200 });
  });

  test('HEAD relays the real Content-Length and Docker-Content-Digest without a body, and is not a pull', async () => {
    const r = await run(functionUrlEvent({ method: 'HEAD', host: 'cr.example.com', rawPath: '/v2/acme/rocket/manifests/1.0' }), proxyRules());
    expect(r.head.headers['content-length']).toBe(String(JSON.stringify({ schemaVersion: 2, layers: [] }).length));
    expect(r.head.headers['docker-content-digest']).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(r.body.length).toBe(0);
    expect(r.events[0].download).toBe(false);
  });

  test('an upstream redirect (signed blob URL) is handed back untouched and marked no-store so CloudFront never replays it', async () => {
    const r = await run(functionUrlEvent({ host: 'cr.example.com', rawPath: '/v2/acme/rocket/blobs/sha256:aa', headers: { 'user-agent': 'skopeo/1.9.3' } }), proxyRules());
    expect(r.status).toBe(307);
    expect(r.head.headers.location).toBe('https://cdn.example.net/blob?sig=abc&exp=60');
    expect(r.head.headers['cache-control']).toBe('private, no-store');
    expect(r.events[0]).toMatchObject({ kind: 'docker', download: false });
  });

  test('an unreachable upstream gives a 502 OCI error naming the upstream, flagged as an upstream error', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const dead = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const rules = new BundledRuleSource({ rules: [{ type: 'docker-v1', domain: 'cr.example.com', 'repository-name': 'acme/rocket', registry: `http://127.0.0.1:${dead}`, 'package-id': 'p', mode: 'proxy' }] });
    const r = await run(functionUrlEvent({ host: 'cr.example.com', rawPath: '/v2/acme/rocket/manifests/1.0' }), rules);
    expect(r.status).toBe(502);
    expect(r.upstreamError).toBe(true);
    expect(JSON.parse(r.body.toString()).errors[0].message).toContain(`127.0.0.1:${dead}`);
  });
});

describe('toResponseHead', () => {
  test('Set-Cookie goes to cookies, repeated headers are joined, names lower-cased', () => {
    expect(toResponseHead(200, { 'Set-Cookie': ['a=1', 'b=2'], Vary: ['Accept', 'Accept-Encoding'], 'Content-Type': 'text/plain' }))
      .toEqual({ statusCode: 200, headers: { vary: 'Accept, Accept-Encoding', 'content-type': 'text/plain' }, cookies: ['a=1', 'b=2'] });
  });
});

describe('createStreamingHandler', () => {
  const fakeLogger = () => ({ addContext: jest.fn(), warn: jest.fn(), error: jest.fn(), info: jest.fn() });
  const fakeMetrics = () => {
    const added: Array<[string, number]> = [];
    return { added, addMetric: (name: string, _unit: string, value: number) => added.push([name, value]), publishStoredMetrics: jest.fn() };
  };

  test('answers on the response stream, flushes the sink and publishes metrics once per invocation', async () => {
    const lines: string[] = [];
    const sink = new LogEventSink((l) => lines.push(l));
    const logger = fakeLogger();
    const metrics = fakeMetrics();
    const heads: ResponseHead[] = [];
    const handler = createStreamingHandler({
      rules: bundled, sink, salt: () => 's', cacheDownloadsSeconds: null,
      logger: logger as never, metrics: metrics as never,
      withHead: (stream, head) => {
        heads.push(head);
        return stream;
      },
    });
    const out = new PassThrough();
    out.resume();
    await handler(functionUrlEvent({ rawPath: '/rocket/1.2.0/rocket-linux-amd64.tar.gz' }), out, {} as never);
    expect(heads[0].statusCode).toBe(307);
    expect(metrics.added).toEqual(expect.arrayContaining([['Requests', 1], ['Downloads', 1], ['RulesStale', 0], ['EventsDropped', 0]]));
    expect(metrics.publishStoredMetrics).toHaveBeenCalledTimes(1);
    expect(lines).toHaveLength(1);
    const logged = JSON.parse(lines[0]);
    expect(logged).toMatchObject({ message: EVENT_LOG_MESSAGE, event: { kind: 'file', download: true } });
    expect(lines[0]).not.toContain('203.0.113.9');
  });

  test('a bug in the handler becomes a 500 for the viewer and an error for Lambda (Errors metric)', async () => {
    const logger = fakeLogger();
    const metrics = fakeMetrics();
    const heads: ResponseHead[] = [];
    const exploding: RuleSource = { rulesFor: () => ({ get domains(): never { throw new Error('bug'); }, ruleCount: 0 }) };
    const handler = createStreamingHandler({
      rules: exploding, sink: new MemorySink(), salt: () => 's', cacheDownloadsSeconds: null, logger: logger as never, metrics: metrics as never,
      withHead: (stream, head) => {
        heads.push(head);
        return stream;
      },
    });
    const out = new PassThrough();
    out.resume();
    await expect(handler(functionUrlEvent({ rawPath: '/x' }), out, {} as never)).rejects.toThrow('bug');
    expect(heads[0].statusCode).toBe(500);
    expect(logger.error).toHaveBeenCalledWith('request failed', { error: 'bug' });
    expect(metrics.publishStoredMetrics).toHaveBeenCalledTimes(1);
  });
});
