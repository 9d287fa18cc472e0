import fc from 'fast-check';
import type { FetchDecision, FetchPlan } from '../../lambda/core/fetch';
import type { Outcome } from '../../lambda/core/request';
import { createJsonValueRewriter } from '../../lambda/core/json-rewrite';
import { gatewayTarballUrl } from '../../lambda/core/npm';
import { parseNpmRequestPath } from '../../lambda/core/npm-names';
import { pathSegments } from '../../lambda/core/encoding';
import { requestOrigin } from '../../lambda/core/request';
import { bodyText, handle, location, request, ruleSet, status } from './helpers';

const set = ruleSet([
  { type: 'npm-v1', domain: 'npm.test', 'package-name': 'rocket', 'package-id': 'rocket' },
  { type: 'npm-v1', domain: 'npm.test', 'package-name': '@acme/*', registry: 'http://127.0.0.1:4873/', 'package-id': 'acme', 'cache-seconds': 30 },
  { type: 'npm-v1', domain: 'npm.test', 'package-name': '@acme/special', registry: 'https://special.test/npm/', 'package-id': 'special' },
  { type: 'file-v1', domain: 'npm.test', 'incoming-path': '/{+path}', 'outgoing-url': 'https://files.test/{+path}', 'package-id': 'files' },
]);

function fetchOf(o: Outcome): FetchDecision {
  if (o.decision.type !== 'fetch') throw new Error(`expected a fetch decision, got ${o.decision.type}`);
  return o.decision;
}

describe('npm request paths', () => {
  test.each([
    ['/rocket', { name: 'rocket', scope: null, what: { kind: 'packument' } }],
    ['/@acme%2fwidget', { name: '@acme/widget', scope: '@acme', what: { kind: 'packument' } }],
    ['/@acme%2Fwidget', { name: '@acme/widget', scope: '@acme', what: { kind: 'packument' } }],
    ['/@acme/widget', { name: '@acme/widget', scope: '@acme', what: { kind: 'packument' } }],
    ['/@acme/widget/1.0.0', { name: '@acme/widget', scope: '@acme', what: { kind: 'version', version: '1.0.0' } }],
    ['/rocket/latest', { name: 'rocket', scope: null, what: { kind: 'version', version: 'latest' } }],
    ['/rocket/-/rocket-1.2.0.tgz', { name: 'rocket', scope: null, what: { kind: 'tarball', file: 'rocket-1.2.0.tgz' } }],
    ['/@acme/widget/-/widget-1.0.0.tgz', { name: '@acme/widget', scope: '@acme', what: { kind: 'tarball', file: 'widget-1.0.0.tgz' } }],
    ['/@acme%2fwidget/-/widget-1.0.0.tgz', { name: '@acme/widget', scope: '@acme', what: { kind: 'tarball', file: 'widget-1.0.0.tgz' } }],
  ])('%s', (p, expected) => {
    expect(parseNpmRequestPath(pathSegments(p))).toEqual(expected);
  });

  test.each(['/', '/-/ping', '/-/npm/v1/security/advisories/bulk', '/@acme', '/.hidden', '/rocket/-/notes.txt', '/a/b/c/d', '/rocket/'])('%s is not a package request', (p) => {
    expect(parseNpmRequestPath(pathSegments(p))).toBeNull();
  });
});

describe('npm-v1', () => {
  test('packuments are fetches of the rule\'s registry, scoped names with an encoded slash; exact names win over scopes', () => {
    expect(fetchOf(handle(set, 'npm.test', '/rocket'))).toMatchObject({ url: 'https://registry.npmjs.org/rocket', upstreamHost: 'registry.npmjs.org', cacheSeconds: 0 });
    for (const p of ['/@acme%2fwidget', '/@acme%2Fwidget', '/@acme/widget']) {
      expect(fetchOf(handle(set, 'npm.test', p))).toMatchObject({ url: 'http://127.0.0.1:4873/@acme%2fwidget', upstreamHost: '127.0.0.1:4873', cacheSeconds: 30 });
    }
    expect(fetchOf(handle(set, 'npm.test', '/@acme/special'))).toMatchObject({ url: 'https://special.test/npm/@acme%2fspecial' });
    expect(fetchOf(handle(set, 'npm.test', '/@acme/widget/1.0.0')).url).toBe('http://127.0.0.1:4873/@acme%2fwidget/1.0.0');
  });

  test('abbreviated packuments by Accept; the client\'s other headers never travel', () => {
    const corgi = fetchOf(handle(set, 'npm.test', '/rocket', { headers: { accept: 'application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*', authorization: 'Bearer secret', cookie: 'a=b' } }));
    expect(corgi.headers.accept).toMatch(/^application\/vnd\.npm\.install-v1\+json/);
    expect(Object.keys(corgi.headers).sort()).toEqual(['accept', 'user-agent']);
    expect(fetchOf(handle(set, 'npm.test', '/rocket', { headers: { accept: 'application/vnd.npm.install-v1+json;q=0, application/json' } })).headers.accept).toBe('application/json');
    expect(fetchOf(handle(set, 'npm.test', '/rocket')).headers.accept).toBe('application/json');
  });

  test('tarballs: 307 to the registry (absolute, no-store); a full GET is one download', () => {
    const o = handle(set, 'npm.test', '/@acme/widget/-/widget-1.0.0.tgz');
    expect(location(o)).toBe('http://127.0.0.1:4873/@acme/widget/-/widget-1.0.0.tgz');
    expect(o.decision).toMatchObject({ headers: { 'cache-control': 'private, no-store' } });
    expect(o.events).toEqual([expect.objectContaining({ kind: 'npm', action: 'redirect', countable: true, package_id: 'acme', file_name: 'widget-1.0.0.tgz', version: '1.0.0' })]);
    expect(location(handle(set, 'npm.test', '/rocket/-/rocket-2.0.0-beta.1.tgz'))).toBe('https://registry.npmjs.org/rocket/-/rocket-2.0.0-beta.1.tgz');
    expect(handle(set, 'npm.test', '/rocket/-/rocket-2.0.0-beta.1.tgz').events[0].version).toBe('2.0.0-beta.1');
    expect(handle(set, 'npm.test', '/rocket/-/rocket-1.0.0.tgz', { method: 'HEAD' }).events[0].countable).toBe(false);
    expect(handle(set, 'npm.test', '/rocket/-/rocket-1.0.0.tgz', { headers: { range: 'bytes=0-1' } }).events[0].countable).toBe(false);
  });

  test('npm rules come before file rules; other paths still reach the file rule', () => {
    expect(status(handle(set, 'npm.test', '/rocket'))).toBe('fetch');
    expect(location(handle(set, 'npm.test', '/install.sh/x/y'))).toBe('https://files.test/install.sh/x/y');
  });

  test('"*" takes every other package: named, then scope, then "*"', () => {
    const withAny = ruleSet([
      { type: 'npm-v1', domain: 'n.test', 'package-name': 'rocket', registry: 'https://mine.test', 'package-id': 'rocket' },
      { type: 'npm-v1', domain: 'n.test', 'package-name': '@acme/*', registry: 'https://mine.test', 'package-id': 'acme' },
      { type: 'npm-v1', domain: 'n.test', 'package-name': '*', 'package-id': 'deps' },
    ]);
    expect(fetchOf(handle(withAny, 'n.test', '/rocket')).url).toBe('https://mine.test/rocket');
    expect(fetchOf(handle(withAny, 'n.test', '/@acme%2fx')).url).toBe('https://mine.test/@acme%2fx');
    expect(fetchOf(handle(withAny, 'n.test', '/@types%2fnode')).url).toBe('https://registry.npmjs.org/@types%2fnode');
    expect(handle(withAny, 'n.test', '/left-pad/-/left-pad-1.3.0.tgz').events[0]).toMatchObject({ package_id: 'deps', countable: true });
    expect(status(handle(withAny, 'n.test', '/-/npm/v1/security/advisories/bulk', { method: 'POST' }))).toBe(404);
  });

  test('a name without a rule on an npm domain: 404 in npm\'s JSON error shape', () => {
    const only = ruleSet([{ type: 'npm-v1', domain: 'n.test', 'package-name': 'rocket', 'package-id': 'r' }]);
    const o = handle(only, 'n.test', '/left-pad');
    expect(status(o)).toBe(404);
    expect(JSON.parse(bodyText(o))).toEqual({ error: 'Not found' });
    expect(o.events[0]).toMatchObject({ kind: 'npm', action: 'not-found', package_id: null });
  });

  test('the packument transform: stream with rewritten tarballs; 404s and failures in npm\'s error shape', () => {
    const d = fetchOf(handle(set, 'npm.test:8080', '/@acme%2fwidget', { headers: { 'x-forwarded-proto': 'https' } }));
    const plan = d.transform.onHead({ status: 200, headers: { 'content-type': 'application/vnd.npm.install-v1+json', 'cache-control': 'max-age=300' }, url: d.url });
    if (plan.type !== 'stream') throw new Error('expected a stream plan');
    expect(plan.headers).toEqual({ 'content-type': 'application/vnd.npm.install-v1+json', 'cache-control': 'max-age=300', vary: 'Accept' });
    const out = Buffer.from(plan.rewriter.push(Buffer.from('{"versions":{"1.0.0":{"dist":{"tarball":"http://127.0.0.1:4873/@acme/widget/-/widget-1.0.0.tgz"}}}}'))).toString();
    expect(JSON.parse(out).versions['1.0.0'].dist.tarball).toBe('https://npm.test:8080/@acme/widget/-/widget-1.0.0.tgz');
    const nf = d.transform.onHead({ status: 404, headers: {}, url: d.url }) as Extract<FetchPlan, { type: 'answer' }>;
    expect(nf.decision).toMatchObject({ status: 404, body: '{"error":"Not found"}' });
    expect(nf.events[0].action).toBe('not-found');
    expect(d.transform.onFailure('timeout', 'upstream 127.0.0.1:4873 did not answer in time').decision).toMatchObject({ status: 504, body: '{"error":"upstream 127.0.0.1:4873 did not answer in time"}' });
  });
});

describe('the gateway\'s own origin', () => {
  test('Host with its port, X-Forwarded-Host and -Proto when present, the domain for malformed values', () => {
    const origin = (headers: Record<string, string>, scheme?: 'http' | 'https') => requestOrigin({ ...request('npm.test:8080', '/', { headers }), scheme }, 'npm.test');
    expect(origin({})).toBe('https://npm.test:8080');
    expect(origin({}, 'http')).toBe('http://npm.test:8080');
    expect(origin({ 'x-forwarded-proto': 'https' }, 'http')).toBe('https://npm.test:8080');
    expect(origin({ 'x-forwarded-host': 'NPM.Example.com, other.test', 'x-forwarded-proto': 'http, https' })).toBe('http://npm.example.com');
    expect(origin({ 'x-forwarded-host': 'evil.test/path?' })).toBe('https://npm.test');
    expect(origin({ 'x-forwarded-proto': 'gopher' }, 'http')).toBe('http://npm.test:8080');
  });
});

describe('tarball URL rewriting', () => {
  test('registry layout only, the name\'s slash encoded or not; others are kept', () => {
    const o = 'https://npm.example.com';
    expect(gatewayTarballUrl('https://registry.npmjs.org/rocket/-/rocket-1.0.0.tgz', 'rocket', o)).toBe(`${o}/rocket/-/rocket-1.0.0.tgz`);
    expect(gatewayTarballUrl('https://r.test/prefix/@acme/w/-/w-1.0.0.tgz', '@acme/w', o)).toBe(`${o}/@acme/w/-/w-1.0.0.tgz`);
    expect(gatewayTarballUrl('https://r.test/@acme%2fw/-/w-1.0.0.tgz', '@acme/w', o)).toBe(`${o}/@acme/w/-/w-1.0.0.tgz`);
    expect(gatewayTarballUrl('https://npm.pkg.github.com/download/@acme/w/1.0.0/abc', '@acme/w', o)).toBeNull();
    expect(gatewayTarballUrl('https://r.test/other/-/other-1.0.0.tgz', 'rocket', o)).toBeNull();
    expect(gatewayTarballUrl('not a url', 'rocket', o)).toBeNull();
  });
});

describe('the streaming JSON rewriter', () => {
  const rewriteAll = (doc: string, cuts: number[]) => {
    const r = createJsonValueRewriter('dist', 'tarball', (v) => (v.startsWith('http://up/') ? `https://gw/${v.slice('http://up/'.length)}` : null));
    const bytes = Buffer.from(doc);
    const parts: Buffer[] = [];
    let at = 0;
    for (const c of [...cuts.filter((x) => x > 0 && x < bytes.length)].sort((a, b) => a - b)) {
      parts.push(Buffer.from(r.push(bytes.subarray(at, c))));
      at = c;
    }
    parts.push(Buffer.from(r.push(bytes.subarray(at))), Buffer.from(r.end()));
    return Buffer.concat(parts).toString();
  };
  /** What the rewriter must produce: parse, rewrite every dist.tarball, compare as values. */
  const rewrite = (v: string) => (v.startsWith('http://up/') ? `https://gw/${v.slice('http://up/'.length)}` : v);
  const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);
  const expected = (value: unknown, inDist = false): unknown => {
    if (Array.isArray(value)) return value.map((x) => expected(x));
    if (!isObject(value)) return value;
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, inDist && k === 'tarball' && typeof v === 'string' ? rewrite(v) : expected(v, k === 'dist' && isObject(v))]));
  };

  test('a packument cut at every byte boundary', () => {
    const doc = JSON.stringify({ dist: { dist: { tarball: 'http://up/nested.tgz' } }, name: 'x', 'dist-tags': { latest: '1.0.0' }, tarball: 'http://up/not-under-dist', versions: { '1.0.0': { dist: { shasum: 'ab', tarball: 'http://up/x/-/x-1.0.0.tgz', 'unicode-é': '\\"é"' } }, '2.0.0': { readme: 'dist: {"tarball": "http://up/fake"}', dist: { tarball: 'http://up/x/-/x-2.0.0.tgz' } } } });
    const once = rewriteAll(doc, []);
    expect(JSON.parse(once)).toEqual(expected(JSON.parse(doc)));
    for (let i = 1; i < Buffer.byteLength(doc); i++) expect(rewriteAll(doc, [i])).toBe(once);
  });

  test('any JSON value, cut anywhere, rewrites exactly the dist.tarball strings (property)', () => {
    const key = fc.constantFrom('dist', 'tarball', 'name', 'versions', 'x');
    const leaf = fc.oneof(fc.string(), fc.constantFrom('http://up/a.tgz', 'http://up/é"\\.tgz', 'https://elsewhere/a.tgz'), fc.integer(), fc.boolean(), fc.constant(null));
    const json = fc.letrec((tie) => ({
      value: fc.oneof({ depthSize: 'small' }, leaf, tie('object'), fc.array(tie('value'), { maxLength: 3 })),
      object: fc.dictionary(key, tie('value'), { maxKeys: 4 }),
    })).value;
    fc.assert(fc.property(json, fc.array(fc.nat(400), { maxLength: 6 }), fc.boolean(), (value, cuts, pretty) => {
      const doc = JSON.stringify(value, null, pretty ? 2 : undefined) ?? 'null';
      expect(JSON.parse(rewriteAll(doc, cuts))).toEqual(expected(value));
    }), { numRuns: 500 });
  });

  test('values longer than the bound pass through unchanged; invalid JSON passes through', () => {
    const long = `http://up/${'a'.repeat(20_000)}`;
    const doc = JSON.stringify({ dist: { tarball: long } });
    expect(rewriteAll(doc, [30, 9000, 15000])).toBe(doc);
    expect(rewriteAll('{"dist": {"tarball": "http://up/x', [20])).toBe('{"dist": {"tarball": "http://up/x');
  });
});
