import fc from 'fast-check';
import type { FetchDecision, TransformResult, UpstreamHead } from '../../lambda/core/fetch';
import type { Outcome } from '../../lambda/core/request';
import {
  metadataUrl, negotiateSimpleFormat, normalizeProjectName, parseProjectHtml, parseProjectJson, versionFromFilename,
} from '../../lambda/core/simple-index';
import { bodyText, handle, location, ruleSet, status } from './helpers';

const PIP_ACCEPT = 'application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01';
const UV_ACCEPT = 'application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01';
const HASH = 'a'.repeat(64);

describe('PEP 503 names and PEP 691 negotiation', () => {
  test('normalisation', () => {
    expect(normalizeProjectName('Foo.Bar_baz')).toBe('foo-bar-baz');
    expect(normalizeProjectName('foo--_.bar')).toBe('foo-bar');
    expect(normalizeProjectName('NumPy')).toBe('numpy');
  });

  test.each([
    [undefined, 'legacy-html'],
    ['', 'legacy-html'],
    [PIP_ACCEPT, 'json'],
    [UV_ACCEPT, 'json'],
    ['*/*', 'legacy-html'], // poetry (python-requests' default), curl
    ['text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8', 'legacy-html'], // browsers
    ['application/vnd.pypi.simple.latest+json', 'json'],
    ['application/vnd.pypi.simple.latest+html', 'html'],
    ['application/vnd.pypi.simple.v1+html', 'html'],
    ['application/vnd.pypi.simple.v1+json;q=0.1, text/html', 'legacy-html'],
    ['application/vnd.pypi.simple.v1+json;q=0, */*', 'legacy-html'],
    ['application/*', 'html'],
    ['text/*;q=0.5, application/vnd.pypi.simple.v1+json;q=0.4', 'legacy-html'],
    ['application/json', null],
    ['image/png, text/plain', null],
    ['text/html;q=0', null],
  ])('Accept %j -> %s', (accept, expected) => {
    expect(negotiateSimpleFormat(accept)).toBe(expected);
  });

  test('file names: versions and metadata URLs', () => {
    expect(versionFromFilename('gateway-demo', 'gateway_demo-1.0.0-py3-none-any.whl')).toBe('1.0.0');
    expect(versionFromFilename('zope.interface', 'zope.interface-6.1.tar.gz')).toBe('6.1');
    expect(versionFromFilename('my-pkg', 'My_Pkg-2.0rc1.zip')).toBe('2.0rc1');
    expect(versionFromFilename('foo', 'foo-1.2-py2.7.egg')).toBe('1.2');
    expect(versionFromFilename('foo', 'README')).toBeNull();
    expect(metadataUrl('https://f.test/a/x.whl#sha256=ab')).toBe('https://f.test/a/x.whl.metadata');
    expect(metadataUrl('https://f.test/a/x.whl?sig=1')).toBe('https://f.test/a/x.whl.metadata?sig=1');
  });
});

describe('parsing upstream pages', () => {
  test('HTML: relative links, <base>, hashes, escaped attributes, yanked, metadata, raw ">" in quotes', () => {
    const html = `<html><head><base href="https://files.test/root/"><meta name="pypi:repository-version" content="1.1"></head><body>
      <a href="a/x-1.0.tar.gz#sha256=${HASH}" data-requires-python="&gt;=3.8" data-gpg-sig="false">x-1.0.tar.gz</a><br/>
      <A HREF='/abs/x-2.0-py3-none-any.whl' data-yanked="" data-core-metadata="sha256=${'b'.repeat(64)}">x-2.0-py3-none-any.whl</A>
      <a href="x-3.0.tar.gz" data-yanked="bad &amp; broken" data-dist-info-metadata="true" data-requires-python=">=3.9">x-3.0.tar.gz</a>
      <a href="mailto:someone@example.com">mail</a>
    </body></html>`;
    const p = parseProjectHtml(html, 'https://index.test/simple/x/', 'x');
    expect(p.apiVersion).toBe('1.1');
    expect(p.files).toEqual([
      { filename: 'x-1.0.tar.gz', url: 'https://files.test/root/a/x-1.0.tar.gz', hashes: { sha256: HASH }, requiresPython: '>=3.8', yanked: false, coreMetadata: false, gpgSig: false },
      { filename: 'x-2.0-py3-none-any.whl', url: 'https://files.test/abs/x-2.0-py3-none-any.whl', hashes: {}, requiresPython: null, yanked: true, coreMetadata: { sha256: 'b'.repeat(64) }, gpgSig: null },
      { filename: 'x-3.0.tar.gz', url: 'https://files.test/root/x-3.0.tar.gz', hashes: {}, requiresPython: '>=3.9', yanked: 'bad & broken', coreMetadata: true, gpgSig: null },
    ]);
  });

  test('JSON: relative URLs, dist-info-metadata, extra keys kept; API 2.x refused', () => {
    const doc = { meta: { 'api-version': '1.1' }, name: 'x', versions: ['1.0'], files: [
      { filename: 'x-1.0.tar.gz', url: '../../files/x-1.0.tar.gz', hashes: { sha256: HASH }, 'dist-info-metadata': true, size: 10, 'upload-time': '2025-01-01T00:00:00Z' },
      { filename: 'x-1.0.tar.gz', url: 'dup' },
      { filename: 7, url: 'x' },
    ] };
    const p = parseProjectJson(JSON.stringify(doc), 'https://index.test/simple/x/', 'x');
    expect(p.extra).toEqual({ versions: ['1.0'] });
    expect(p.files).toEqual([{ filename: 'x-1.0.tar.gz', url: 'https://index.test/files/x-1.0.tar.gz', hashes: { sha256: HASH }, requiresPython: null, yanked: false, coreMetadata: true, gpgSig: null, extra: { size: 10, 'upload-time': '2025-01-01T00:00:00Z' } }]);
    expect(() => parseProjectJson(JSON.stringify({ ...doc, meta: { 'api-version': '2.0' } }), 'https://i.test/', 'x')).toThrow(/only 1\.x/);
    expect(() => parseProjectJson('{"files": 3}', 'https://i.test/', 'x')).toThrow(/no "files" array/);
    expect(() => parseProjectJson('<html>', 'https://i.test/', 'x')).toThrow(/not valid JSON/);
  });

  test('HTML parsing never throws on arbitrary input', () => {
    fc.assert(fc.property(fc.string(), (s) => {
      parseProjectHtml(s, 'https://i.test/simple/x/', 'x');
    }), { numRuns: 300 });
  });
});

// ---------------------------------------------------------------------------------------------

const rules = [
  { type: 'python-v1', domain: 'py.test', 'package-name': 'Gateway_Demo', 'file-name': 'gateway_demo-1.0.0-py3-none-any.whl', version: '1.0.0', 'backend-url': 'https://files.test/gd-1.0.0.whl#sha256=ab', 'package-id': 'gd', 'hash-value': { type: 'sha256', hash: HASH }, 'core-metadata': true },
  { type: 'python-v1', domain: 'py.test', 'package-name': 'Gateway_Demo', 'file-name': 'gateway_demo-0.9.0.tar.gz', version: '0.9.0', 'backend-url': 'https://files.test/gd-0.9.0.tar.gz', 'package-id': 'gd', yanked: 'use 1.0' },
  { type: 'python-index-v1', domain: 'py.test', 'package-name': 'Upstream.Named', 'backend-simple-index-url': 'https://named.test/simple', 'package-id': 'named', 'cache-seconds': 5 },
  { type: 'python-index-v1', domain: 'py.test', 'package-name': '*', 'package-id': 'any' },
  // A python-v1 project beats the "*" rule.
  { type: 'python-index-v1', domain: 'py.test', 'package-name': 'gateway-demo', 'package-id': 'shadowed' },
];
const set = ruleSet(rules);
const headersOf = (o: Outcome) => (o.decision as { headers: Record<string, string> }).headers;

describe('python-v1 pages', () => {
  test('any spelling of the project name serves the page; links keep the rule\'s spelling', () => {
    for (const p of ['/simple/gateway-demo/', '/simple/Gateway.Demo/', '/simple/GATEWAY__DEMO/']) {
      const o = handle(set, 'py.test', p);
      expect({ p, s: status(o) }).toEqual({ p, s: 200 });
      expect(o.events[0]).toMatchObject({ kind: 'python', package_id: 'gd', countable: false });
    }
    const html = bodyText(handle(set, 'py.test', '/simple/gateway-demo/'));
    expect(html).toContain(`<a href="/simple/Gateway_Demo/gateway_demo-1.0.0-py3-none-any.whl#sha256=${HASH}" data-core-metadata="true" data-dist-info-metadata="true">`);
    expect(html).toContain('<a href="/simple/Gateway_Demo/gateway_demo-0.9.0.tar.gz" data-yanked="use 1.0">');
    expect(html).toContain('<meta name="pypi:repository-version" content="1.0">');
  });

  test('PEP 691 JSON for pip and uv; Vary: Accept; distinct ETags per representation', () => {
    const json = handle(set, 'py.test', '/simple/gateway-demo/', { headers: { accept: PIP_ACCEPT } });
    expect(headersOf(json)).toMatchObject({ 'content-type': 'application/vnd.pypi.simple.v1+json', vary: 'Accept' });
    expect(JSON.parse(bodyText(json))).toEqual({
      meta: { 'api-version': '1.0' },
      name: 'gateway-demo',
      files: [
        { filename: 'gateway_demo-0.9.0.tar.gz', url: '/simple/Gateway_Demo/gateway_demo-0.9.0.tar.gz', hashes: {}, yanked: 'use 1.0' },
        { filename: 'gateway_demo-1.0.0-py3-none-any.whl', url: '/simple/Gateway_Demo/gateway_demo-1.0.0-py3-none-any.whl', hashes: { sha256: HASH }, 'core-metadata': true, 'dist-info-metadata': true },
      ],
    });
    const v1html = handle(set, 'py.test', '/simple/gateway-demo/', { headers: { accept: 'application/vnd.pypi.simple.latest+html' } });
    const legacy = handle(set, 'py.test', '/simple/gateway-demo/');
    expect(headersOf(v1html)['content-type']).toBe('application/vnd.pypi.simple.v1+html');
    expect(bodyText(v1html)).toBe(bodyText(legacy));
    expect(new Set([headersOf(json).etag, headersOf(v1html).etag, headersOf(legacy).etag]).size).toBe(3);
    const root = JSON.parse(bodyText(handle(set, 'py.test', '/simple/', { headers: { accept: UV_ACCEPT } })));
    expect(root).toEqual({ meta: { 'api-version': '1.0' }, projects: [{ name: 'Gateway_Demo' }, { name: 'upstream-named' }] });
  });

  test('406 for unsupported types, on pages and the root, recorded as rejected', () => {
    for (const p of ['/simple/', '/simple/gateway-demo/']) {
      const o = handle(set, 'py.test', p, { headers: { accept: 'application/json' } });
      expect(status(o)).toBe(406);
      expect(bodyText(o)).toMatch(/application\/vnd\.pypi\.simple\.v1\+json/);
      expect(o.events[0].action).toBe('rejected');
    }
  });

  test('/simple and /simple/<project> redirect (307, absolute) to the trailing-slash URL, keeping the query', () => {
    expect(location(handle(set, 'py.test', '/simple'))).toBe('https://py.test/simple/');
    expect(location(handle(set, 'py.test:8080', '/simple/Gateway_Demo?x=1', { headers: { 'x-forwarded-proto': 'http' } }))).toBe('http://py.test:8080/simple/Gateway_Demo/?x=1');
    expect(status(handle(set, 'py.test', '/simple/nope'))).toBe(307); // the "*" rule takes every valid name
    expect(status(handle(set, 'py.test', '/simple/bad%20name'))).toBe(404);
  });

  test('files: GET and HEAD redirect; .metadata redirects to the backend\'s metadata file, never counted', () => {
    const f = '/simple/gateway-demo/gateway_demo-1.0.0-py3-none-any.whl';
    expect(location(handle(set, 'py.test', f))).toBe('https://files.test/gd-1.0.0.whl#sha256=ab');
    expect(handle(set, 'py.test', f).events[0]).toMatchObject({ countable: true, version: '1.0.0', file_name: 'gateway_demo-1.0.0-py3-none-any.whl' });
    expect(handle(set, 'py.test', f, { method: 'HEAD' }).events[0].countable).toBe(false);
    const m = handle(set, 'py.test', `${f}.metadata`);
    expect(location(m)).toBe('https://files.test/gd-1.0.0.whl.metadata');
    expect(m.events[0]).toMatchObject({ countable: false, version: '1.0.0', file_name: 'gateway_demo-1.0.0-py3-none-any.whl.metadata' });
    // No core-metadata on the sdist: no .metadata route.
    expect(status(handle(set, 'py.test', '/simple/gateway-demo/gateway_demo-0.9.0.tar.gz.metadata'))).toBe(404);
  });
});

// ---------------------------------------------------------------------------------------------

function fetchOf(o: Outcome): FetchDecision {
  if (o.decision.type !== 'fetch') throw new Error(`expected a fetch decision, got ${o.decision.type}`);
  return o.decision;
}

/** Runs a fetch decision's transform on an upstream answer, as an adapter would. */
function complete(o: Outcome, head: Partial<UpstreamHead>, body = ''): TransformResult {
  const d = fetchOf(o);
  const plan = d.transform.onHead({ status: 200, headers: {}, url: d.url, ...head });
  if (plan.type === 'answer') return plan;
  if (plan.type === 'buffer') return plan.finish(Buffer.from(body));
  throw new Error('unexpected stream plan');
}

const upstreamJson = JSON.stringify({
  meta: { 'api-version': '1.0' }, name: 'upstream-named',
  files: [
    { filename: 'upstream_named-2.0-py3-none-any.whl', url: 'https://cdn.test/u/upstream_named-2.0-py3-none-any.whl', hashes: { sha256: HASH }, 'requires-python': '>=3.8', 'core-metadata': { sha256: 'c'.repeat(64) } },
    { filename: 'upstream_named-1.0.tar.gz', url: '/files/upstream_named-1.0.tar.gz', hashes: {}, yanked: true },
  ],
});
const JSON_HEAD = { headers: { 'content-type': 'application/vnd.pypi.simple.v1+json' } };

describe('python-index-v1', () => {
  test('a project page is a fetch of the upstream page (normalised name, JSON preferred, the rule\'s cache time)', () => {
    const d = fetchOf(handle(set, 'py.test', '/simple/Upstream_Named/'));
    expect(d).toMatchObject({ url: 'https://named.test/simple/upstream-named/', upstreamHost: 'named.test', cacheSeconds: 5 });
    expect(d.headers.accept).toMatch(/^application\/vnd\.pypi\.simple\.v1\+json, /);
    expect(fetchOf(handle(set, 'py.test', '/simple/other/'))).toMatchObject({ url: 'https://pypi.org/simple/other/', cacheSeconds: 60 });
    // python-v1 wins over python-index-v1 for the same project.
    expect(status(handle(set, 'py.test', '/simple/gateway-demo/'))).toBe(200);
  });

  test('the page points every file at the gateway and keeps hashes, requires-python, yanked and metadata', () => {
    const r = complete(handle(set, 'py.test', '/simple/upstream-named/', { headers: { accept: PIP_ACCEPT } }), JSON_HEAD, upstreamJson);
    expect(r.decision).toMatchObject({ status: 200, headers: { 'content-type': 'application/vnd.pypi.simple.v1+json', vary: 'Accept' } });
    const doc = JSON.parse(String((r.decision as { body: string }).body));
    expect(doc.files).toEqual([
      { filename: 'upstream_named-1.0.tar.gz', url: '/simple/upstream-named/upstream_named-1.0.tar.gz', hashes: {}, yanked: true },
      { filename: 'upstream_named-2.0-py3-none-any.whl', url: '/simple/upstream-named/upstream_named-2.0-py3-none-any.whl', hashes: { sha256: HASH }, 'requires-python': '>=3.8', 'core-metadata': { sha256: 'c'.repeat(64) }, 'dist-info-metadata': { sha256: 'c'.repeat(64) } },
    ]);
    const html = complete(handle(set, 'py.test', '/simple/upstream-named/'), JSON_HEAD, upstreamJson);
    expect(String((html.decision as { body: string }).body)).toContain(`<a href="/simple/upstream-named/upstream_named-2.0-py3-none-any.whl#sha256=${HASH}" data-requires-python="&gt;=3.8" data-core-metadata="sha256=${'c'.repeat(64)}"`);
    expect(html.events[0]).toMatchObject({ kind: 'python', action: 'respond', countable: false, package_id: 'named', target: 'https://named.test/simple/upstream-named/' });
  });

  test('conditional requests get 304 against the rendered page\'s ETag; HEAD keeps the length', () => {
    const first = complete(handle(set, 'py.test', '/simple/upstream-named/'), JSON_HEAD, upstreamJson);
    const etag = (first.decision as { headers: Record<string, string> }).headers.etag;
    const again = complete(handle(set, 'py.test', '/simple/upstream-named/', { headers: { 'if-none-match': etag } }), JSON_HEAD, upstreamJson);
    expect(again.decision).toMatchObject({ status: 304 });
    const head = complete(handle(set, 'py.test', '/simple/upstream-named/', { method: 'HEAD' }), JSON_HEAD, upstreamJson);
    expect(head.decision).toMatchObject({ status: 200, body: '', headers: { 'content-length': (first.decision as { headers: Record<string, string> }).headers['content-length'] } });
  });

  test('files redirect to the upstream file URL (relative ones resolved); only a full GET counts', () => {
    const whl = '/simple/upstream-named/upstream_named-2.0-py3-none-any.whl';
    const get = complete(handle(set, 'py.test', whl), JSON_HEAD, upstreamJson);
    expect(get.decision).toMatchObject({ type: 'redirect', status: 307, location: 'https://cdn.test/u/upstream_named-2.0-py3-none-any.whl' });
    expect(get.events[0]).toMatchObject({ kind: 'python', countable: true, package_id: 'named', version: '2.0', file_name: 'upstream_named-2.0-py3-none-any.whl', target: 'https://cdn.test/u/upstream_named-2.0-py3-none-any.whl' });
    expect(complete(handle(set, 'py.test', whl, { headers: { range: 'bytes=0-99' } }), JSON_HEAD, upstreamJson).events[0].countable).toBe(false);
    expect(complete(handle(set, 'py.test', whl, { method: 'HEAD' }), JSON_HEAD, upstreamJson).events[0].countable).toBe(false);
    const sdist = complete(handle(set, 'py.test', '/simple/upstream-named/upstream_named-1.0.tar.gz'), JSON_HEAD, upstreamJson);
    expect(sdist.decision).toMatchObject({ location: 'https://named.test/files/upstream_named-1.0.tar.gz' });
    const meta = complete(handle(set, 'py.test', `${whl}.metadata`), JSON_HEAD, upstreamJson);
    expect(meta.decision).toMatchObject({ location: 'https://cdn.test/u/upstream_named-2.0-py3-none-any.whl.metadata' });
    expect(meta.events[0].countable).toBe(false);
    const missing = complete(handle(set, 'py.test', '/simple/upstream-named/upstream_named-9.tar.gz'), JSON_HEAD, upstreamJson);
    expect(missing.decision).toMatchObject({ status: 404 });
    expect(missing.events[0]).toMatchObject({ action: 'not-found', countable: false });
  });

  test('upstream 404 is a 404; other statuses, bad pages and failures are 502/504 naming the upstream only', () => {
    const o = handle(set, 'py.test', '/simple/upstream-named/');
    expect(complete(o, { status: 404 }).decision).toMatchObject({ status: 404 });
    expect(complete(o, { status: 500 }).decision).toMatchObject({ status: 502, body: expect.stringMatching(/upstream index named\.test answered 500/) });
    expect(complete(o, JSON_HEAD, '{"meta": {"api-version": "2.0"}, "files": []}').decision).toMatchObject({ status: 502, body: expect.stringMatching(/only 1\.x/) });
    const d = fetchOf(o);
    expect(d.transform.onFailure('timeout', 'upstream named.test did not answer in time').decision).toMatchObject({ status: 504 });
    expect(d.transform.onFailure('unreachable', 'upstream named.test is unreachable').decision).toMatchObject({ status: 502, body: 'upstream named.test is unreachable\n' });
  });
});
