/**
 * Hostile rules and the security rules of the engine: generated manifests (wrong types, huge
 * values, deep nesting, prototype keys, pathological regexes and templates) get a list of
 * problems and never an exception or a hang; catastrophic regexes are rejected or bounded; a
 * template variable cannot move a redirect to another origin; Location never carries CR/LF;
 * upstream-named hosts reach public addresses only.
 */
import fc from 'fast-check';
import { compileRules } from '../../lambda/core/compile';
import { validateManifest, parseManifest } from '../../lambda/core/validate';
import { compileFileRegex, execFileRegex } from '../../lambda/core/file-regex';
import { handleRequest } from '../../lambda/core/engine';
import { classifyAddress, guardNamedBy } from '../../lambda/local/address-guard';
import { guardForNamedUrl } from '../../lambda/local/proxy';
import { handle, location, request, ruleSet } from './helpers';

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : 20260810;
const RULE_TYPES = ['file-v1', 'file-v2', 'catch-all-v1', 'pixel-v1', 'telemetry-v1', 'python-v1', 'python-index-v1', 'npm-v1', 'docker-v1', 'docker-v2', 'nope', '__proto__'];
const FIELDS = ['type', 'domain', 'incoming-path', 'outgoing-url', 'package-id', 'redirect-target-domain', 'registry', 'repository-name', 'pattern', 'rule-id', 'package-name',
  'file-name', 'version', 'backend-url', 'hash-value', 'backend-simple-index-url', 'access-tokens', 'mode', 'always-proxy', 'cache-seconds', '__proto__', 'constructor', 'prototype', 'toString'];

const hostileValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown; array: unknown[]; object: Record<string, unknown> }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom('get.example.test', '/a/{b}', 'https://x.example.net/{b}', '^/(?<b>.+)$', '(a+)+$', '((a*)*)*b', '(a|a)*(?=x)', '(x)\\1', '{', '}', '{+a', '{?', '{a,b,c', '{=x}', '{a:99999}', '{a*}',
      'ghcr.io', 'http://127.0.0.1:5000', 'javascript:alert(1)', '//evil.test', 'evil.test\r\nSet-Cookie: x', '\u0000', 'constructor', '__proto__', 'redirect', 'proxy', '*', '@acme/*'),
    fc.string({ maxLength: 40 }),
    fc.integer(), fc.double(), fc.boolean(), fc.constant(null),
    fc.constant(undefined),
    fc.integer({ min: 1, max: 200_000 }).map((n) => 'x'.repeat(n)),
    fc.integer({ min: 1, max: 3_000 }).map((n) => `/${Array.from({ length: n }, (_, i) => `{v${i}}`).join('-')}`),
    fc.integer({ min: 1, max: 2_000 }).map((n) => `${'('.repeat(n)}a${')'.repeat(n)}`),
    fc.integer({ min: 1, max: 2_000 }).map((n) => `${'(a+'.repeat(Math.min(n, 50))}${')+'.repeat(Math.min(n, 50))}$`),
    tie('array'),
    tie('object'),
  ),
  array: fc.array(tie('value'), { maxLength: 4 }),
  object: fc.dictionary(fc.constantFrom(...FIELDS), tie('value'), { maxKeys: 6 }),
})).value;

const hostileRule = fc.record({
  type: fc.constantFrom(...RULE_TYPES),
  fields: fc.dictionary(fc.constantFrom(...FIELDS), hostileValue, { maxKeys: 10 }),
}).map(({ type, fields }) => ({ ...fields, type }));

describe('generated hostile manifests', () => {
  test('validation returns problems (never throws), and whatever validates compiles and answers requests', () => {
    let valid = 0;
    fc.assert(
      fc.property(fc.oneof(
        { weight: 9, arbitrary: fc.array(hostileRule, { maxLength: 8 }).map((rules) => ({ rules })) },
        { weight: 1, arbitrary: hostileValue.map((rules) => ({ rules })) },
        { weight: 1, arbitrary: hostileValue },
      ), (doc) => {
        const r = validateManifest(doc);
        for (const p of [...r.errors, ...r.warnings]) expect(typeof p.message).toBe('string');
        if (r.errors.length === 0) {
          valid++;
          const set = compileRules(r.rules);
          for (const host of ['get.example.test', 'x']) for (const target of ['/', '/a/b', `/${'a'.repeat(2000)}!`]) handleRequest(set, request(host, target));
        } else {
          expect(r.rules).toEqual([]);
        }
        // Prototype keys stay data: nothing leaks onto Object.prototype.
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      }),
      { seed: SEED, numRuns: 3_000 },
    );
    expect(valid).toBeGreaterThan(0);
  }, 60_000);

  test('a 10 MB string, 10k rules, deep nesting and __proto__ keys are reported, not thrown', () => {
    const huge = 'x'.repeat(10 * 1024 * 1024);
    expect(validateManifest({ rules: [{ type: 'file-v1', domain: huge, 'incoming-path': huge, 'outgoing-url': huge, 'package-id': 'p' }] }).errors.length).toBeGreaterThan(0);
    const many = Array.from({ length: 10_000 }, (_, i) => ({ type: 'file-v1', domain: `d${i % 1000}.example.test`, 'incoming-path': `/f${i}/{v}`, 'outgoing-url': `https://x.example.net/${i}/{v}`, 'package-id': `p${i}` }));
    const v = validateManifest({ rules: many });
    expect(v.errors).toEqual([]);
    expect(location(handleRequest(compileRules(v.rules), request('d7.example.test', '/f7007/1.0')))).toBe('https://x.example.net/7007/1.0');
    let deep: unknown = 'leaf';
    for (let i = 0; i < 5_000; i++) deep = { rules: [deep] };
    expect(validateManifest(deep).errors.length).toBeGreaterThan(0);
    const proto = parseManifest('{"rules":[{"__proto__":{"polluted":true},"type":"file-v1","domain":"a.test","incoming-path":"/a","outgoing-url":"https://b.test/a","package-id":"p","constructor":{"prototype":{"polluted":true}}}]}');
    expect(proto.errors).toEqual([]);
    expect(proto.warnings.map((w) => w.field)).toEqual(expect.arrayContaining(['__proto__', 'constructor']));
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(parseManifest('{"rules": [').errors[0].message).toMatch(/^not valid JSON/);
  });
});

describe('regular expressions that could backtrack catastrophically', () => {
  test.each([
    ['(a)\\1', /backreference/],
    ['(?<x>a)\\k<x>', /backreference/],
    ['(a+)+(?=b)', /repeated group that contains an unbounded quantifier/],
    ['(?:a|ab)*(?<=c)', /repeated group that contains an alternation/],
    ['(\\p{L}+)+$', /repeated group that contains an unbounded quantifier/],
  ])('%s is rejected at validation with a clear message', (source, message) => {
    const v = validateManifest({ rules: [{ type: 'file-v2', domain: 'a.test', 'incoming-path': source, 'outgoing-url': null, 'package-id': 'p' }] });
    expect(v.errors).toHaveLength(1);
    expect(v.errors[0].field).toBe('incoming-path');
    expect(v.errors[0].message).toMatch(message);
  });

  test('patterns people write stay accepted (nested but linear, Unicode classes, lookarounds without nesting)', () => {
    for (const source of ['^/nightly/(?<date>\\d{4}-\\d{2}-\\d{2})/(?<file>[^/]+)$', '/packages/(?<n>.*)-(?<v>[0-9].*)', '((?:[0-9]+\\.)+[0-9]+)', '\\p{L}+', '^/(?<f>[^/]+)(?=\\.tar)', '(\\d{1,3}\\.){3}\\d{1,3}']) {
      expect({ source, r: 'problem' in compileFileRegex(source) ? 'rejected' : 'ok' }).toEqual({ source, r: 'ok' });
    }
  });

  test.each([
    ['(a+)+$', (n: number) => `${'a'.repeat(n)}!`],
    ['^/(?<x>(a|a)*)$', (n: number) => `/${'a'.repeat(n)}!`],
    ['(.*a){12}', (n: number) => 'a'.repeat(n)],
    ['.*.*.*=', (n: number) => 'a'.repeat(n)],
    ['^(?<v>([a-z0-9]+-?)+)\\.tgz$', (n: number) => `${'a-'.repeat(n / 2)}!`],
  ])('%s accepted, but a request cannot pin a CPU: the longest request target the engine takes is answered within a generous bound', (source, attack) => {
    const r = compileFileRegex(source);
    if ('problem' in r) throw new Error(r.problem);
    // 16 KiB is the longest target the engine looks at (engine.ts MAX_TARGET_LENGTH); unbounded backtracking would take years.
    const started = process.hrtime.bigint();
    execFileRegex(r, attack(16 * 1024 - 10));
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    expect(ms).toBeLessThan(5_000);
  });

  test('through the engine: a file-v2 rule with (a+)+ answers a 16 KiB attack path (no match, so a 404)', () => {
    const set = ruleSet([{ type: 'file-v2', domain: 'a.test', 'incoming-path': '^/(?<x>(a+)+)$', 'outgoing-url': 'https://b.test/{x}', 'package-id': 'p' }]);
    const o = handle(set, 'a.test', `/${'a'.repeat(16_000)}!`);
    expect(o.decision).toMatchObject({ type: 'respond', status: 404 });
  });
});

describe('no open redirect', () => {
  const set = ruleSet([
    { type: 'file-v1', domain: 'a.test', 'incoming-path': '/raw{+path}', 'outgoing-url': 'https://raw.example.net{+path}', 'package-id': 'raw' },
    { type: 'file-v1', domain: 'a.test', 'incoming-path': '/dl/{file}', 'outgoing-url': 'https://dl.example.net/{file}', 'package-id': 'dl' },
    { type: 'file-v1', domain: 'a.test', 'incoming-path': '/go/{+rest}', 'outgoing-url': 'https://go.example.net/{+rest}', 'package-id': 'go' },
    { type: 'file-v1', domain: 'a.test', 'incoming-path': '/mirror/{m}/{f}', 'outgoing-url': 'https://{m}.mirrors.example.net/{f}', 'package-id': 'mirror' },
    { type: 'file-v1', domain: 'a.test', 'incoming-path': '/any/{+url}', 'outgoing-url': '{+url}', 'package-id': 'any' },
    { type: 'file-v2', domain: 'a.test', 'incoming-path': '^/r(?<u>.*)$', 'outgoing-url': 'https://r.example.net{+u}', 'package-id': 'r' },
    { type: 'catch-all-v1', domain: 'c.test', 'package-id': 'c', 'redirect-target-domain': 'downloads.example.net' },
  ]);
  const hostOf = (target: string, host = 'a.test') => {
    const o = handle(set, host, target);
    return o.decision.type === 'redirect' ? new URL(o.decision.location).host : `${o.decision.type} ${'status' in o.decision ? o.decision.status : ''}`;
  };

  test.each([
    '/raw@evil.test', '/raw@evil.test/x', '/raw%40evil.test', '/raw:pw@evil.test', '/raw.evil.test', '/raw:1@evil.test',
    '/r@evil.test', '/r%40evil.test', '/r.evil.test/x', '/r:x@evil.test',
  ])('%s cannot move a redirect whose template fixes the host: 400, never another host', (target) => {
    const h = hostOf(target);
    expect(['raw.example.net', 'r.example.net', 'respond 400', 'respond 404']).toContain(h);
    expect(h).not.toMatch(/evil/);
  });

  test('values with //, @, backslashes, tabs or CR/LF stay on the rule\'s host, escaped (or do not match at all)', () => {
    let redirected = 0;
    for (const target of [
      '/dl/%2F%2Fevil.test', '/dl/@evil.test', '/dl/%40evil.test', '/dl/%5C%5Cevil.test', '/dl/%09evil.test', '/dl/%0D%0ALocation:evil.test', '/dl/%0D%0ALocation%3Aevil.test',
      '/go//evil.test', '/go/%2F%2Fevil.test', '/go/\\evil.test', '/go/%5C%5Cevil.test', '/go/@evil.test', '/go/..%2F..%2F@evil.test', '/go/%0D%0ASet-Cookie:%20x=1',
    ]) {
      const o = handle(set, 'a.test', target);
      if (o.decision.type !== 'redirect') {
        expect({ target, status: o.decision.type === 'respond' ? o.decision.status : o.decision.type }).toEqual({ target, status: 404 });
        continue;
      }
      redirected++;
      const loc = o.decision.location;
      expect({ target, loc, bad: /[\u0000-\u0020\u007f\\]/.test(loc) }).toEqual({ target, loc, bad: false });
      expect({ target, host: new URL(loc).host }).toEqual({ target, host: target.startsWith('/dl/') ? 'dl.example.net' : 'go.example.net' });
    }
    expect(redirected).toBeGreaterThanOrEqual(9);
  });

  test('a variable the template puts into the host or the whole URL is the rule author\'s choice', () => {
    expect(hostOf('/mirror/eu/f.tgz')).toBe('eu.mirrors.example.net');
    expect(location(handle(set, 'a.test', '/any/https://elsewhere.example.org/x'))).toBe('https://elsewhere.example.org/x');
    // ... but it still never yields a non-http(s) or broken Location.
    expect(handle(set, 'a.test', '/any/javascript:alert(1)').decision).toMatchObject({ type: 'respond', status: 400 });
    expect(handle(set, 'a.test', '/any//evil.test').decision).toMatchObject({ type: 'respond', status: 400 });
  });

  test('catch-all keeps the target domain whatever the path', () => {
    for (const target of ['//evil.test', '/%2F%2Fevil.test', '/@evil.test', '/\\evil.test', '/..%2F..%2F', '/a%0D%0ALocation:%20x', '/%C0%AF']) {
      const loc = location(handle(set, 'c.test', target))!;
      expect({ target, host: new URL(loc).host }).toEqual({ target, host: 'downloads.example.net' });
      expect(loc).not.toMatch(/[\u0000-\u0020\u007f\\]/);
    }
  });

  test('validation refuses relative outgoing templates and catch-all targets that are not hosts', () => {
    const bad = [
      { type: 'file-v1', domain: 'a.test', 'incoming-path': '/x/{p}', 'outgoing-url': '/local/{p}', 'package-id': 'p' },
      { type: 'file-v1', domain: 'a.test', 'incoming-path': '/x/{p}', 'outgoing-url': '//cdn.example.net/{p}', 'package-id': 'p' },
      { type: 'file-v2', domain: 'a.test', 'incoming-path': '/y/(?<p>.*)', 'outgoing-url': 'ftp://cdn.example.net/{p}', 'package-id': 'p' },
      { type: 'catch-all-v1', domain: 'c.test', 'package-id': 'c', 'redirect-target-domain': 'evil.test\r\nSet-Cookie: x=1' },
      { type: 'catch-all-v1', domain: 'd.test', 'package-id': 'c', 'redirect-target-domain': 'user@evil.test' },
    ];
    const v = validateManifest({ rules: bad });
    expect(v.errors.map((e) => e.index)).toEqual([0, 1, 2, 3, 4]);
  });
});

describe('addresses a host named by an upstream may reach (SSRF)', () => {
  test.each([
    ['169.254.169.254', 'forbidden'], ['169.254.170.2', 'forbidden'], ['fd00:ec2::254', 'forbidden'], ['::ffff:169.254.169.254', 'forbidden'], ['::ffff:a9fe:a9fe', 'forbidden'],
    ['fe80::1', 'forbidden'], ['0.0.0.0', 'forbidden'], ['::', 'forbidden'], ['224.0.0.1', 'forbidden'], ['192.0.0.192', 'forbidden'],
    ['127.0.0.1', 'internal'], ['::1', 'internal'], ['10.1.2.3', 'internal'], ['172.16.0.1', 'internal'], ['192.168.1.1', 'internal'], ['100.64.0.1', 'internal'], ['fd12:3456::1', 'internal'], ['::ffff:127.0.0.1', 'internal'],
    ['140.82.112.3', 'public'], ['2606:4700::1111', 'public'], ['172.32.0.1', 'public'], ['not-an-ip', 'forbidden'],
  ])('%s is %s', (ip, cls) => {
    expect(classifyAddress(ip)).toBe(cls);
  });

  test('configured hosts are not restricted; others get the guard of the upstream that named them', () => {
    const upstreams = new Map([['mirror.test', 'http://127.0.0.1:5000']]);
    expect(guardForNamedUrl(new URL('https://ghcr.io/token'), new URL('https://ghcr.io'), upstreams)).toBeUndefined();
    expect(guardForNamedUrl(new URL('https://mirror.test/x'), new URL('https://ghcr.io'), upstreams)).toBeUndefined();
    expect(guardForNamedUrl(new URL('https://auth.docker.io/token'), new URL('https://registry-1.docker.io'), upstreams)).toEqual({ allowInternal: false });
    // An internal upstream (here via --upstream) may send the gateway to other internal hosts, never to link-local ones.
    expect(guardForNamedUrl(new URL('http://127.0.0.1:5001/token'), new URL('https://mirror.test'), upstreams)).toEqual({ allowInternal: true });
    expect(guardNamedBy(new URL('http://localhost:5000'))).toEqual({ allowInternal: true });
  });
});
