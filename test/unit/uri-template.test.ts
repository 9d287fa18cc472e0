import fc from 'fast-check';
import { parse as oracleParse } from 'uri-template';
import {
  MatchedValue,
  TemplateSyntaxError,
  UriTemplate,
  expandTemplate,
  matchTemplate,
  matchTemplateGeneral,
  matchesLiteral,
  parseTemplate,
  percentDecode,
  queryPairsOf,
} from '../../lambda/core/uri-template';

/** Decoded values of a match as a plain object (null when the template does not match). */
function matchDecoded(template: string, rawPath: string, rawQuery = ''): Record<string, string> | null {
  const result = matchTemplate(parseTemplate(template), rawPath, rawQuery);
  return result && Object.fromEntries([...result].map(([name, value]) => [name, value.decoded]));
}

function matchRaw(template: string, rawPath: string, rawQuery = ''): Record<string, MatchedValue> | null {
  const result = matchTemplate(parseTemplate(template), rawPath, rawQuery);
  return result && Object.fromEntries(result);
}

function expand(template: string, vars: Record<string, string | MatchedValue | undefined>): string {
  return expandTemplate(parseTemplate(template), vars);
}

/** Fastest of a few runs after a warm-up, so a busy machine does not make the timing flaky. */
function fastestMs(run: () => void): number {
  run();
  let best = Infinity;
  for (let i = 0; i < 3; i += 1) {
    const start = performance.now();
    run();
    best = Math.min(best, performance.now() - start);
  }
  return best;
}

describe('parseTemplate', () => {
  it('splits literals and expressions with operators and modifiers', () => {
    const t = parseTemplate('/files/{+path:10}{?a,b*}{&a}');
    expect(t.parts).toEqual([
      { kind: 'literal', text: '/files/' },
      { kind: 'expression', operator: '+', vars: [{ name: 'path', prefix: 10, explode: false }] },
      {
        kind: 'expression',
        operator: '?',
        vars: [
          { name: 'a', explode: false },
          { name: 'b', explode: true },
        ],
      },
      { kind: 'expression', operator: '&', vars: [{ name: 'a', explode: false }] },
    ]);
    expect(t.variableNames).toEqual(['path', 'a', 'b']);
    expect(t.source).toBe('/files/{+path:10}{?a,b*}{&a}');
  });

  it('accepts dotted and percent-encoded variable names, unicode and %XX literals', () => {
    expect(parseTemplate('/{a.b_1%20c}').variableNames).toEqual(['a.b_1%20c']);
    expect(parseTemplate('/café/%2f{x}').parts[0]).toEqual({ kind: 'literal', text: '/café/%2f' });
    expect(parseTemplate('/😀{x}').variableNames).toEqual(['x']);
    expect(parseTemplate('').parts).toEqual([]);
  });

  it.each([
    ['/data?x={x}', true],
    ['/data{?x}', true],
    ['/data{&x}', false],
    ['/{+path}', false],
    ['/data?', false],
    ['/data?a=1', true],
    ['/a?{x}', true],
    ['/{x}', false],
  ])('capturesQuery(%s) = %s', (template, expected) => {
    expect(parseTemplate(template).capturesQuery).toBe(expected);
  });

  it.each([
    ['/foo{bar', /unclosed '\{' at position 4/, 4],
    ['/foo{', /unclosed '\{'/, 4],
    ['/foo{+', /unclosed '\{'/, 4],
    ['/foo{a,', /unclosed '\{'/, 4],
    ['/foo{a:1', /unclosed '\{'/, 4],
    ['/foo}', /unmatched '\}'/, 4],
    ['/{}', /empty variable name/, 2],
    ['/{a,}', /empty variable name/, 4],
    ['/{+}', /empty variable name/, 3],
    ['/{=x}', /reserved operator '='/, 2],
    ['/{,x}', /reserved operator ','/, 2],
    ['/{!x}', /reserved operator '!'/, 2],
    ['/{@x}', /reserved operator '@'/, 2],
    ['/{|x}', /reserved operator '\|'/, 2],
    ['/{a b}', /invalid character ' ' in expression/, 3],
    ['/{a-b}', /invalid character '-' in expression/, 3],
    ['/{-b}', /invalid character '-' in variable name/, 2],
    ['/{a..b}', /must not end with '\.' or contain '\.\.'/, 4],
    ['/{a.}', /must not end with '\.'/, 4],
    ['/{.}', /empty variable name/, 3],
    ['/{a%2}', /'%' not followed by two hex digits in variable name/, 3],
    ['/{a:0}', /prefix length 0 out of range 1\.\.9999/, 4],
    ['/{a:01}', /prefix length 01 out of range/, 4],
    ['/{a:10000}', /prefix length 10000 out of range/, 4],
    ['/{a:}', /missing prefix length after ':'/, 4],
    ['/{a:x}', /missing prefix length/, 4],
    ['/{a*:3}', /invalid character ':' in expression/, 4],
    ['/{a{b}}', /unexpected '\{' inside expression/, 3],
    ['/{{a}}', /unexpected '\{' inside expression/, 2],
    ['/a b', /character ' ' not allowed in a literal/, 2],
    ['/a"b', /character '"' not allowed in a literal/, 2],
    ["/a'b", /character ''' not allowed in a literal/, 2],
    ['/a<b', /character '<' not allowed/, 2],
    ['/a>b', /character '>' not allowed/, 2],
    ['/a\\b', /character '\\' not allowed/, 2],
    ['/a^b', /character '\^' not allowed/, 2],
    ['/a`b', /character '`' not allowed/, 2],
    ['/a|b', /character '\|' not allowed/, 2],
    ['/a%', /'%' not followed by two hex digits/, 2],
    ['/a%4', /'%' not followed by two hex digits/, 2],
    ['/a%zz', /'%' not followed by two hex digits/, 2],
    ['/a\u0000', /control character U\+0000/, 2],
    ['/a\nb', /control character U\+000A/, 2],
    ['/a\u007f', /control character U\+007F/, 2],
    ['/a\u0085', /control character U\+0085/, 2],
    ['/a\ud800b', /lone surrogate U\+D800/, 2],
    ['/a\udc00', /lone surrogate U\+DC00/, 2],
  ])('rejects %j with TemplateSyntaxError', (template, message, position) => {
    let caught: unknown;
    try {
      parseTemplate(template);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(TemplateSyntaxError);
    expect((caught as TemplateSyntaxError).message).toMatch(message);
    expect((caught as TemplateSyntaxError).message).toContain(`at position ${position}`);
    expect((caught as TemplateSyntaxError).position).toBe(position);
  });

  it('never throws anything but TemplateSyntaxError', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('{', '}', '%', 'a', '2', '.', ':', '*', ',', '+', '?', '=', '/', ' ', '\ud800', 'é') }), (source) => {
        try {
          parseTemplate(source);
        } catch (error) {
          expect(error).toBeInstanceOf(TemplateSyntaxError);
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('matchTemplate: pinned Scarf examples', () => {
  it.each<[string, string, string, Record<string, string> | null]>([
    ['/{package}-{os}-{arch}', '/minikube-linux-amd64-hallo', '', { package: 'minikube', os: 'linux', arch: 'amd64-hallo' }],
    ['/{package}-{version}.{ext}', '/minikube-1.0.tar.gz', '', { package: 'minikube', version: '1', ext: '0.tar.gz' }],
    ['/{a}/{b}', '/api/data', '', { a: 'api', b: 'data' }],
    ['/{+path}', '/some-nice-path/very-nice/really+nice', '', { path: 'some-nice-path/very-nice/really+nice' }],
    ['/some-nice-path/{var1}', '/some-nice-path', '', null],
    ['/some-nice-path/{var1}', '/some-nice-path/', '', { var1: '' }],
    ['/{+path}', '/', '', { path: '' }],
    ['/{package}-{os}-{arch}', '/minikube-linux', '', null],
    [
      '/data?drilldowns={drilldowns}&measures={measures}',
      '/data',
      '?drilldowns=Nation&measures=Population',
      { drilldowns: 'Nation', measures: 'Population' },
    ],
    ['/{drilldowns}?measures={measures}', '/Nation', '?measures=Population', { drilldowns: 'Nation', measures: 'Population' }],
    ['/{x}', '/hello%20world', '', { x: 'hello world' }],
    ['/data/{x}', '/data/xxx', '?a=1', { x: 'xxx' }],
  ])('%s against %s%s', (template, rawPath, rawQuery, expected) => {
    expect(matchDecoded(template, rawPath, rawQuery)).toEqual(expected);
  });

  it('keeps the raw text next to the decoded value', () => {
    expect(matchRaw('/{x}', '/hello%20world')).toEqual({ x: { raw: 'hello%20world', decoded: 'hello world' } });
  });
});

describe('matchTemplate: operators and depth-first order', () => {
  it.each<[string, string, Record<string, string> | null]>([
    ['/file{.ext}', '/file.tar.gz', { ext: 'tar.gz' }],
    ['/file{.ext}', '/file', {}], // prefix absent: undefined, not ""
    ['/file{.ext}', '/file.', { ext: '' }],
    ['/a{/b,c}', '/a/x/y', { b: 'x', c: 'y' }],
    ['/a{/b,c}', '/a/x', { b: 'x' }],
    ['/a{/b}', '/a/x/y', null], // '/' is not a value character
    ['/m{;p,q}', '/m;p=1;q', { p: '1', q: '' }],
    ['/m{;p}', '/m;p', { p: '' }],
    ['/m{;p}', '/m', {}],
    ['/{x,y}', '/1,2', { x: '1', y: '2' }],
    ['/{x,y}', '/1', { x: '1' }],
    ['/{+x,y}', '/a/b,c', { x: 'a/b', y: 'c' }],
    ['/p{#f}', '/p#frag/x', { f: 'frag/x' }],
    ['/{x:2}', '/abcdef', { x: 'abcdef' }], // :N matches like a plain variable
    ['/{x*}', '/a', null], // explode never matches
    ['/{x*}/{y}', '/a/b', null],
    ['/{x}', '/a/b', null],
    ['/{x}', '/a:b', null],
    ['/{x}', '/a=b', null],
    ['/{x}', '/a&b', null],
    ['/{x}', '/', { x: '' }],
    ['/{x}{y}', '/ab', { x: 'a', y: 'b' }], // shortest first for the first variable
    ['/{x}{y}', '/', { x: '', y: '' }], // non-empty impossible, then "" before undefined
    ['/{x}/{x}', '/a/a', { x: 'a' }],
    ['/{x}/{x}', '/a/%61', { x: 'a' }], // same decoded value is enough
    ['/{x}/{x}', '/a/b', null],
    ['/{x}-{x}', '/a-b-a-b', { x: 'a-b' }],
  ])('%s against %s', (template, rawPath, expected) => {
    expect(matchDecoded(template, rawPath)).toEqual(expected);
  });

  it('binds an undefined variable by leaving it out of the result', () => {
    const result = matchTemplate(parseTemplate('/file{.ext}'), '/file', '');
    expect(result).not.toBeNull();
    expect(result!.has('ext')).toBe(false);
  });

  it('requires literals exactly', () => {
    expect(matchDecoded('/download/{x}', '/Download/a')).toBeNull();
    expect(matchDecoded('/download/{x}', '/download/a/')).toBeNull();
  });
});

describe('matchTemplate: query parameters in any order', () => {
  const template = '/data?drilldowns={drilldowns}&measures={measures}';

  it('matches the reversed order', () => {
    expect(matchDecoded(template, '/data', '?measures=Population&drilldowns=Nation')).toEqual({
      drilldowns: 'Nation',
      measures: 'Population',
    });
  });

  it('allows extra request parameters', () => {
    expect(matchDecoded(template, '/data', '?x=1&measures=Population&y&drilldowns=Nation&z=3')).toEqual({
      drilldowns: 'Nation',
      measures: 'Population',
    });
  });

  it('fails when a ?k={v} key is missing, or there is no query at all', () => {
    expect(matchDecoded(template, '/data', '?drilldowns=Nation')).toBeNull();
    expect(matchDecoded(template, '/data', '')).toBeNull();
  });

  it('fails for a value outside the alphabet such as "+" (not a space)', () => {
    expect(matchDecoded(template, '/data', '?drilldowns=New+York&measures=Population')).toBeNull();
    expect(matchDecoded(template, '/data', '?drilldowns=New%20York&measures=Population')).toEqual({
      drilldowns: 'New York',
      measures: 'Population',
    });
  });

  it('fails for a value that is not valid UTF-8', () => {
    expect(matchDecoded(template, '/data', '?drilldowns=%FF&measures=Population')).toBeNull();
  });

  it('binds an empty value and uses the first occurrence of a key', () => {
    expect(matchDecoded(template, '/data', '?drilldowns=&measures=a&measures=b')).toEqual({ drilldowns: '', measures: 'a' });
    expect(matchDecoded(template, '/data', '?drilldowns&measures=a')).toEqual({ drilldowns: '', measures: 'a' });
  });

  it('compares keys after percent-decoding', () => {
    expect(matchDecoded(template, '/data', '?%64rilldowns=Nation&measures=Population')).toEqual({
      drilldowns: 'Nation',
      measures: 'Population',
    });
  });

  it('still matches the path part depth-first', () => {
    expect(matchDecoded('/{a}-{b}?k={k}', '/x-y-z', '?k=1')).toEqual({ a: 'x', b: 'y-z', k: '1' });
    expect(matchDecoded('/{a}-{b}?k={k}', '/xyz', '?k=1')).toBeNull();
  });

  it('matches literal values, in any order, after decoding both', () => {
    const t = '/data?format=json&id={id}';
    expect(matchDecoded(t, '/data', '?id=7&format=json')).toEqual({ id: '7' });
    expect(matchDecoded(t, '/data', '?id=7&format=%6Ason')).toEqual({ id: '7' });
    expect(matchDecoded(t, '/data', '?id=7&format=xml')).toBeNull();
    expect(matchDecoded(t, '/data', '?id=7')).toBeNull();
  });

  it('treats {?a,b} and {&c} form-style: missing keys leave variables undefined', () => {
    const t = '/search{?q,lang}{&page}';
    expect(matchDecoded(t, '/search', '?page=2&lang=en&q=cats')).toEqual({ q: 'cats', lang: 'en', page: '2' });
    expect(matchDecoded(t, '/search', '?lang=en')).toEqual({ lang: 'en' });
    expect(matchDecoded(t, '/search', '')).toEqual({});
    expect(matchDecoded(t, '/search', '?q=')).toEqual({ q: '' });
    expect(matchDecoded(t, '/search', '?q=a+b')).toBeNull();
  });

  it('requires a variable in both path and query to agree', () => {
    expect(matchDecoded('/{id}?id={id}', '/7', '?id=7')).toEqual({ id: '7' });
    expect(matchDecoded('/{id}?id={id}', '/7', '?id=8')).toBeNull();
    expect(matchDecoded('/{a}{id}?id={id}', '/x7', '?id=7')).toEqual({ a: 'x', id: '7' });
  });

  it('describes the decomposed query pairs', () => {
    expect(queryPairsOf(parseTemplate('/d?k={v}&f=json{&x}'))).toEqual([
      { key: 'k', value: { kind: 'variable', name: 'v' }, optional: false },
      { key: 'f', value: { kind: 'literal', text: 'json' }, optional: false },
      { key: 'x', value: { kind: 'variable', name: 'x' }, optional: true },
    ]);
    expect(queryPairsOf(parseTemplate('/d?a={x}{y}'))).toBeNull();
    expect(queryPairsOf(parseTemplate('/d?{x}'))).toBeNull();
    expect(queryPairsOf(parseTemplate('/d/{x}'))).toBeNull();
  });

  it('falls back to sequential matching of path+query when the query part cannot be decomposed', () => {
    expect(matchDecoded('/d?a={x}{y}', '/d', '?a=12')).toEqual({ x: '1', y: '2' });
    expect(matchDecoded('/d?{x}', '/d', '?hello')).toEqual({ x: 'hello' });
    // Sequential: order matters here, as in Scarf.
    expect(matchDecoded('/d?a={x}{y}&b=1', '/d', '?b=1&a=12')).toBeNull();
  });
});

describe('matchTemplate: nasty inputs', () => {
  it('decodes %2F inside {var} and {+var}', () => {
    expect(matchRaw('/{x}', '/a%2Fb')).toEqual({ x: { raw: 'a%2Fb', decoded: 'a/b' } });
    expect(matchRaw('/{+x}', '/a%2Fb/c')).toEqual({ x: { raw: 'a%2Fb/c', decoded: 'a/b/c' } });
  });

  it("treats '+' as a literal plus, only allowed in {+var}", () => {
    expect(matchDecoded('/{x}', '/a+b')).toBeNull();
    expect(matchRaw('/{+x}', '/a+b')).toEqual({ x: { raw: 'a+b', decoded: 'a+b' } });
    expect(matchRaw('/{x}', '/a%2Bb')).toEqual({ x: { raw: 'a%2Bb', decoded: 'a+b' } });
  });

  it('matches a unicode literal only as its upper-case UTF-8 encoding', () => {
    expect(matchDecoded('/café/{x}', '/caf%C3%A9/1')).toEqual({ x: '1' });
    expect(matchDecoded('/café/{x}', '/caf%c3%a9/1')).toBeNull();
    expect(matchDecoded('/café/{x}', '/café/1')).toBeNull();
  });

  it('decodes upper- and lower-case %XX in values', () => {
    expect(matchRaw('/{x}', '/caf%C3%A9')).toEqual({ x: { raw: 'caf%C3%A9', decoded: 'café' } });
    expect(matchRaw('/{x}', '/caf%c3%a9')).toEqual({ x: { raw: 'caf%c3%a9', decoded: 'café' } });
    expect(matchDecoded('/{x}', '/%F0%9F%98%80')).toEqual({ x: '😀' });
  });

  it('matches a %xx template literal with the same hex case only', () => {
    expect(matchDecoded('/a%2fb/{x}', '/a%2fb/1')).toEqual({ x: '1' });
    expect(matchDecoded('/a%2fb/{x}', '/a%2Fb/1')).toBeNull();
  });

  it('binds empty values', () => {
    expect(matchDecoded('/{a}/{b}', '//')).toEqual({ a: '', b: '' });
    expect(matchDecoded('/{a}-{b}', '/-')).toEqual({ a: '', b: '' });
    expect(matchDecoded('/x/{+rest}', '/x/')).toEqual({ rest: '' });
  });

  it('matches .. segments literally, never resolving them', () => {
    expect(matchDecoded('/files/{x}/{y}', '/files/../etc')).toEqual({ x: '..', y: 'etc' });
    expect(matchDecoded('/{+path}', '/../../etc/passwd')).toEqual({ path: '../../etc/passwd' });
    expect(matchDecoded('/files/{x}', '/files/../etc')).toBeNull();
    expect(matchDecoded('/a/../b', '/b')).toBeNull();
  });

  it.each([
    ['/{x}', '/%FF'],
    ['/{x}', '/a%C3'], // truncated sequence
    ['/{x}', '/%C3%28'], // bad continuation byte
    ['/{x}', '/%C0%AF'], // overlong
    ['/{+x}', '/%ED%A0%80'], // UTF-16 surrogate encoded in UTF-8
    ['/{+x}', '/%F4%90%80%80'], // above U+10FFFF
    ['/{x}', '/abc%'],
    ['/{+x}', '/abc%2'],
    ['/{x}', '/%zz'],
    ['/{x}', '/a\ud800'],
    ['/{+x}', '/a\udc00b'],
    ['/a', '/a\ud800'],
    ['/{x}', '/a\u0000'],
    ['/{x}', '/é'],
  ])('returns null for %s against %j', (template, rawPath) => {
    expect(matchTemplate(parseTemplate(template), rawPath, '')).toBeNull();
  });

  it('keeps a decoded NUL or BOM as data', () => {
    expect(matchDecoded('/{x}', '/a%00')).toEqual({ x: 'a\u0000' });
    expect(matchDecoded('/{x}', '/%EF%BB%BFa')).toEqual({ x: '\ufeffa' });
  });

  it('handles prototype-like variable names', () => {
    const result = matchTemplate(parseTemplate('/{constructor}/{__proto__}'), '/a/b', '');
    expect(result && [...result].map(([name, value]) => [name, value.decoded])).toEqual([
      ['constructor', 'a'],
      ['__proto__', 'b'],
    ]);
  });

  it('never throws on arbitrary request text', () => {
    const templates = ['/{a}-{b}', '/{+p}', '/x{.e}{;m}{/s}', '/{a}/{a}', '/d?k={v}', '/d?a={x}{y}', '/d{?q,r}', '/é{x}'].map(parseTemplate);
    const requestText = fc.string({ unit: fc.constantFrom('%', 'F', 'f', '2', 'C', '3', 'A', '9', '/', '-', '?', '&', '=', 'a', '\ud800', '\udc00', '\u0000', 'é', '+', '.', ';') });
    fc.assert(
      fc.property(fc.constantFrom(...templates), requestText, requestText, (t, path, query) => {
        matchTemplate(t, path, query);
        matchTemplate(t, path, `?${query}`);
      }),
      { numRuns: 1000 },
    );
  });

  it('the fast path for plain {var} templates finds what the general matcher finds', () => {
    // Templates of literals and distinct {x}/{+x} expressions (what the fast path takes), and a
    // few it must leave to the general matcher; request text from the same few characters.
    const piece = fc.constantFrom('/', '-', '.', 'a', 'b', '%C3%A9', 'é', '{}');
    const templateText = fc.array(piece, { minLength: 1, maxLength: 7 }).map((pieces) => {
      let n = 0;
      return pieces.map((p) => (p === '{}' ? `{${n % 3 === 2 ? '+' : ''}v${n++}}` : p)).join('');
    });
    const extra = ['/{a}{b}', '/{a}/{a}', '/{.e}', '/{a,b}', '/x?k={v}'];
    const requestText = fc.string({ unit: fc.constantFrom('/', '-', '.', 'a', 'b', '%C3%A9', '%C3', '%2F', 'é', '~', ':', '?') });
    fc.assert(
      fc.property(fc.oneof(templateText, fc.constantFrom(...extra)), requestText, (source, rawPath) => {
        const t = parseTemplate(source);
        const fast = matchTemplate(t, rawPath, '');
        const general = matchTemplateGeneral(t, rawPath, '');
        expect(fast && [...fast]).toEqual(general && [...general]);
      }),
      { numRuns: 3000 },
    );
    // The cases a plain template really sees: a match, an empty value, a miss, a long path past the fast path's bound.
    for (const [source, rawPath] of [
      ['/rocket/{version}/rocket-{os}-{arch}.tar.gz', '/rocket/1.2.3/rocket-linux-amd64.tar.gz'],
      ['/rocket/{version}/rocket-{os}-{arch}.tar.gz', '/rocket//rocket-linux-amd-64.tar.gz'],
      ['/rocket/{version}/rocket-{os}-{arch}.tar.gz', '/rocket/1.2.3/rocket-linux.zip'],
      ['/{a}-{b}-{c}-{d}-{e}-{f}', `/${'-'.repeat(3000)}`],
    ]) {
      const t = parseTemplate(source);
      const fast = matchTemplate(t, rawPath, '');
      const general = matchTemplateGeneral(t, rawPath, '');
      expect(fast && [...fast]).toEqual(general && [...general]);
    }
    expect(matchDecoded('/rocket/{version}/rocket-{os}-{arch}.tar.gz', '/rocket/1.2.3/rocket-linux-amd64.tar.gz')).toEqual({ version: '1.2.3', os: 'linux', arch: 'amd64' });
  });

  it('matches a 16 KB path', () => {
    const path = '/' + 'segment/'.repeat(2048);
    expect(path.length).toBeGreaterThan(16000);
    expect(matchDecoded('/{+path}', path)).toEqual({ path: path.slice(1) });
    expect(matchDecoded('/{first}/{+rest}', path)).toEqual({ first: 'segment', rest: path.slice(9) });
    const encoded = '/' + '%C3%A9'.repeat(2730);
    expect(matchDecoded('/{x}', encoded)).toEqual({ x: 'é'.repeat(2730) });
  });

  it.each([
    ['/{a}-{b}-{c}-{d}-{e}-{f}', '/' + '-'.repeat(10000), true],
    ['/{a}-{b}-{c}-{d}-{e}-{f}x', '/' + '-'.repeat(16000), false],
    ['/{x}{y}{z}{w}{v}{u}.{t}', '/' + 'a'.repeat(16000), false],
    ['/{+a}/{+b}/{+c}/{+d}z', '/' + '/'.repeat(16000), false],
    ['/{a}%C3%A9{b}', '/' + '%C3'.repeat(5000), false],
    // Repeated names need real backtracking; the work budget keeps these bounded.
    ['/{a}-{b}-{a}', '/' + '-'.repeat(16000) + 'x', false],
    ['/{a}{b}{a}{b}', '/' + 'a'.repeat(16000) + 'x', false],
  ])('stays fast on adversarial input: %s', (template, rawPath, matches) => {
    const t = parseTemplate(template);
    let result: Map<string, MatchedValue> | null = null;
    const ms = fastestMs(() => {
      result = matchTemplate(t, rawPath, '');
    });
    expect(result !== null).toBe(matches);
    expect(ms).toBeLessThan(50);
  });

  it('gets the adversarial split right', () => {
    const result = matchDecoded('/{a}-{b}-{c}-{d}-{e}-{f}', '/' + '-'.repeat(10000));
    expect(result).toEqual({ a: '-', b: '-', c: '-', d: '-', e: '-', f: '-'.repeat(9990) });
  });
});

describe('matchesLiteral', () => {
  const match = (template: string, rawPath: string, rawQuery = ''): boolean => matchesLiteral(parseTemplate(template), rawPath, rawQuery);

  it('compares the path as a raw string', () => {
    expect(match('/download/file.zip', '/download/file.zip')).toBe(true);
    expect(match('/download/file.zip', '/download/file.zip/')).toBe(false);
    expect(match('/download/file.zip', '/download/file%2Ezip')).toBe(false);
    expect(match('/download/file.zip', '/download/file.zip', '?anything=1')).toBe(true);
  });

  it('compares a unicode literal against its upper-case encoding', () => {
    expect(match('/café', '/caf%C3%A9')).toBe(true);
    expect(match('/café', '/caf%c3%a9')).toBe(false);
  });

  it('requires the query pairs in any order, with extras allowed', () => {
    expect(match('/data?format=json&v=2', '/data', '?v=2&format=json')).toBe(true);
    expect(match('/data?format=json&v=2', '/data', '?extra=1&v=2&format=json')).toBe(true);
    expect(match('/data?format=json&v=2', '/data', '?format=json')).toBe(false);
    expect(match('/data?format=json&v=2', '/data', '?format=xml&v=2')).toBe(false);
    expect(match('/data?format=json&v=2', '/data', '')).toBe(false);
  });

  it('lets the last value of a repeated request key win', () => {
    expect(match('/data?format=json', '/data', '?format=json&format=xml')).toBe(false);
    expect(match('/data?format=json', '/data', '?format=xml&format=json')).toBe(true);
  });

  it('compares keys and values after percent-decoding', () => {
    expect(match('/data?name=café', '/data', '?name=caf%c3%a9')).toBe(true);
    expect(match('/data?name=caf%C3%A9', '/data', '?n%61me=caf%C3%A9')).toBe(true);
    expect(match('/data?a=b+c', '/data', '?a=b%20c')).toBe(false);
  });

  it('has no query requirement for a bare ?', () => {
    expect(match('/data?', '/data', '?x=1')).toBe(true);
    expect(match('/data?', '/data', '')).toBe(true);
  });

  it('rejects templates with variables', () => {
    expect(() => match('/{x}', '/a')).toThrow(/without variables/);
  });
});

describe('expandTemplate', () => {
  // RFC 6570 section 3.2 examples that use string values.
  const rfcVars = { var: 'value', hello: 'Hello World!', path: '/foo/bar', empty: '', x: '1024', y: '768' };
  it.each([
    ['{var}', 'value'],
    ['{hello}', 'Hello%20World%21'],
    ['{+hello}', 'Hello%20World!'],
    ['{+path}/here', '/foo/bar/here'],
    ['here?ref={+path}', 'here?ref=/foo/bar'],
    ['X{#var}', 'X#value'],
    ['X{#hello}', 'X#Hello%20World!'],
    ['map?{x,y}', 'map?1024,768'],
    ['{x,hello,y}', '1024,Hello%20World%21,768'],
    ['{+x,hello,y}', '1024,Hello%20World!,768'],
    ['{+path,x}/here', '/foo/bar,1024/here'],
    ['{#x,hello,y}', '#1024,Hello%20World!,768'],
    ['{#path,x}/here', '#/foo/bar,1024/here'],
    ['X{.var}', 'X.value'],
    ['X{.x,y}', 'X.1024.768'],
    ['{/var}', '/value'],
    ['{/var,x}/here', '/value/1024/here'],
    ['{;x,y}', ';x=1024;y=768'],
    ['{;x,y,empty}', ';x=1024;y=768;empty'],
    ['{?x,y}', '?x=1024&y=768'],
    ['{?x,y,empty}', '?x=1024&y=768&empty='],
    ['?fixed=yes{&x}', '?fixed=yes&x=1024'],
    ['{&x,y,empty}', '&x=1024&y=768&empty='],
    ['{var:3}', 'val'],
    ['{var:30}', 'value'],
    ['{+path:6}/here', '/foo/b/here'],
    ['{#path:6}/here', '#/foo/b/here'],
    ['X{.var:3}', 'X.val'],
    ['{/var:1,var}', '/v/value'],
    ['{;hello:5}', ';hello=Hello'],
    ['{?var:3}', '?var=val'],
    ['{&var:3}', '&var=val'],
    ['{undef}', ''],
    ['{?undef}', ''],
    ['{;x,undef,y}', ';x=1024;y=768'],
    ['{/var,empty}', '/value/'],
    ['{/empty}', '/'],
    ['X{.empty}', 'X.'],
    ['X{.undef}', 'X'],
    ['{#empty}', '#'],
    ['{empty}', ''],
    ['{x,empty}', '1024,'],
  ])('%s -> %s', (template, expected) => {
    expect(expand(template, rfcVars)).toBe(expected);
    expect(expandTemplate(parseTemplate(template), new Map(Object.entries(rfcVars)))).toBe(expected);
  });

  it('always encodes % in string values, with upper-case hex', () => {
    expect(expand('{x}', { x: '100%' })).toBe('100%25');
    expect(expand('{+x}', { x: '100%' })).toBe('100%25');
    expect(expand('{+x}', { x: '%2F' })).toBe('%252F');
    expect(expand('{x}', { x: 'really+nice /\n' })).toBe('really%2Bnice%20%2F%0A');
  });

  it('encodes non-ASCII as upper-case UTF-8 and counts prefixes in code points', () => {
    expect(expand('{x}', { x: 'é中😀' })).toBe('%C3%A9%E4%B8%AD%F0%9F%98%80');
    expect(expand('{x:1}', { x: '😀a' })).toBe('%F0%9F%98%80');
    expect(expand('{x:2}', { x: 'é😀a' })).toBe('%C3%A9%F0%9F%98%80');
    // A lone surrogate cannot be UTF-8: it is encoded as U+FFFD.
    expect(expand('{x}', { x: 'a\ud800' })).toBe('a%EF%BF%BD');
  });

  it('encodes unicode template literals and keeps %xx literals as written', () => {
    expect(expand('/café/{x}', { x: 'a' })).toBe('/caf%C3%A9/a');
    expect(expand('/a%2fb', {})).toBe('/a%2fb');
  });

  it('treats explode on a string like no explode', () => {
    expect(expand('{x*}', { x: 'a b' })).toBe('a%20b');
    expect(expand('{;x*}', { x: 'v' })).toBe(';x=v');
    expect(expand('{?x*}', { x: 'v' })).toBe('?x=v');
  });

  it('drops undefined variables, including prototype names missing from a record', () => {
    expect(expand('/{constructor}{?toString,x}', { x: undefined })).toBe('/');
    expect(expand('/{constructor}', { constructor: 'c' } as Record<string, string>)).toBe('/c');
  });

  it('expands a MatchedValue from raw for + and #, from decoded otherwise', () => {
    const value: MatchedValue = { raw: 'a%2Fb+c%2bd', decoded: 'a/b+c+d' };
    expect(expand('/{+x}', { x: value })).toBe('/a%2Fb+c%2bd');
    expect(expand('/{#x}', { x: value })).toBe('/#a%2Fb+c%2bd');
    expect(expand('/{x}', { x: value })).toBe('/a%2Fb%2Bc%2Bd');
    expect(expand('/{?x}', { x: value })).toBe('/?x=a%2Fb%2Bc%2Bd');
  });

  it('still encodes what is not allowed in raw text of a MatchedValue', () => {
    expect(expand('{+x}', { x: { raw: 'a b%zz%4é%', decoded: '' } })).toBe('a%20b%25zz%254%C3%A9%25');
  });

  it('truncates a MatchedValue raw text by decoded code points', () => {
    expect(expand('{+x:2}', { x: { raw: '%C3%A9bc', decoded: 'ébc' } })).toBe('%C3%A9b');
    expect(expand('{x:2}', { x: { raw: '%C3%A9bc', decoded: 'ébc' } })).toBe('%C3%A9b');
  });

  it('round-trips {+path} -> {+path} without double or lost encoding', () => {
    const rawPath = '/a%2Fb/c%2Bd/really+nice/caf%c3%a9';
    const match = matchTemplate(parseTemplate('/{+path}'), rawPath, '');
    expect(match).not.toBeNull();
    expect(expandTemplate(parseTemplate('https://cdn.example.com/{+path}'), match!)).toBe('https://cdn.example.com' + rawPath);
  });
});

// ---------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------

const VARIABLE_NAMES = ['a', 'b', 'c', 'd'];
const OPERATORS = ['', '+', '#', '.', '/', ';', '?', '&'] as const;
const NAMED_OPERATORS = new Set([';', '?', '&']);

/**
 * Characters for oracle comparisons. Restricted where the `uri-template` package differs from the
 * RFC (or from us) rather than special-casing results:
 * - no '%': the brief's rule "always %25" differs from the package, which keeps `%XX` in {+x};
 * - no code points below U+0010: the package formats their hex with one digit (e.g. "%A");
 * - BMP only, no surrogates: the package encodes each UTF-16 half separately and truncates
 *   `:N` by code units.
 */
const oracleValueChar = fc.oneof(
  fc.constantFrom(' ', '/', '?', '#', '[', ']', '@', '!', '$', '&', "'", '(', ')', '*', '+', ',', ';', '=', ':', '-', '.', '_', '~', '"', '<', '{', '\u0010', '\u007f', 'é', '中'),
  fc.integer({ min: 0x10, max: 0xffff }).filter((code) => (code < 0xd800 || code > 0xdfff) && code !== 0x25).map((code) => String.fromCharCode(code)),
);

/** ASCII literal text the package copies as-is (it does not encode literals). */
const oracleLiteral = fc.stringMatching(/^([A-Za-z0-9\-._~!$&()*+,;=:@/?#[\]]|%[0-9A-F]{2})*$/);

function oracleExpression(operators: readonly (typeof OPERATORS)[number][]): fc.Arbitrary<string> {
  return fc
    .record({
      operator: fc.constantFrom(...operators),
      vars: fc.array(
        fc.record({
          name: fc.constantFrom(...VARIABLE_NAMES),
          modifier: fc.oneof(fc.constant(''), fc.constant('*'), fc.integer({ min: 1, max: 6 }).map((n) => `:${n}`)),
        }),
        { minLength: 1, maxLength: 3 },
      ),
    })
    .map(({ operator, vars }) => {
      // The package expands {;x*} of a string without the name (RFC: explode changes lists and maps only).
      const specs = vars.map(({ name, modifier }) => name + (modifier === '*' && NAMED_OPERATORS.has(operator) ? '' : modifier));
      return `{${operator}${specs.join(',')}}`;
    });
}

function oracleTemplate(operators: readonly (typeof OPERATORS)[number][]): fc.Arbitrary<string> {
  return fc.array(fc.oneof(oracleLiteral, oracleExpression(operators)), { maxLength: 5 }).map((parts) => parts.join(''));
}

function oracleValues(minLength: number): fc.Arbitrary<Record<string, string>> {
  return fc.dictionary(fc.constantFrom(...VARIABLE_NAMES), fc.string({ unit: oracleValueChar, minLength, maxLength: 8 }), { maxKeys: 4 });
}

describe('expandTemplate agrees with the uri-template package', () => {
  it('on non-empty string values', () => {
    fc.assert(
      fc.property(oracleTemplate(OPERATORS), oracleValues(1), (template, values) => {
        expect(expand(template, values)).toBe(oracleParse(template).expand(values));
      }),
      { numRuns: 500 },
    );
  });

  it('on values that may be empty, without the / operator', () => {
    // The package expands {/x} with x="" to "" instead of the RFC's "/" (tested above).
    fc.assert(
      fc.property(oracleTemplate(OPERATORS.filter((op) => op !== '/')), oracleValues(0), (template, values) => {
        expect(expand(template, values)).toBe(oracleParse(template).expand(values));
      }),
      { numRuns: 500 },
    );
  });
});

/** Any code point (no lone surrogates), biased toward characters that need encoding or separate things. */
function valueString(excluded: string): fc.Arbitrary<string> {
  const unit = fc
    .oneof(
      fc.constantFrom('a', 'Z', '0', '-', '.', '_', '~', '/', '+', ' ', '%', '?', '#', '&', '=', ';', ',', ':', 'é', '😀', '\u0000'),
      fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
    )
    .filter((ch) => !excluded.includes(ch));
  return fc.string({ unit, maxLength: 8 });
}

interface RoundTripCase {
  template: string;
  values: Record<string, string>;
  shuffleQuery: number[];
}

/**
 * Templates whose parse is unambiguous for the generated values: path segments separated by '/'
 * (never a raw value character of {x}), `{x}-{y}` pairs whose values cannot contain '-', an
 * optional `/word{.e}`, `{/x}`, `{;x}` or `/{+rest}` tail (rest without '?' or '#', so the request
 * splits into path and query where the template does), and an optional query part.
 */
const roundTripCase: fc.Arbitrary<RoundTripCase> = fc
  .record({
    segments: fc.array(fc.constantFrom('literal', 'var', 'dashPair'), { minLength: 1, maxLength: 4 }),
    tail: fc.constantFrom('none', 'dotExt', 'slashVar', 'semicolonVar', 'plusRest'),
    query: fc.constantFrom('none', 'form', 'keyed'),
  })
  .chain(({ segments, tail, query }) => {
    let counter = 0;
    const fresh = (): string => `v${counter++}`;
    const valueArbitraries: Record<string, fc.Arbitrary<string>> = {};
    const pieces: string[] = [];
    for (const segment of segments) {
      if (segment === 'literal') pieces.push('/lit');
      else if (segment === 'var') {
        const name = fresh();
        valueArbitraries[name] = valueString('');
        pieces.push(`/{${name}}`);
      } else {
        const [left, right] = [fresh(), fresh()];
        valueArbitraries[left] = valueString('-');
        valueArbitraries[right] = valueString('-');
        pieces.push(`/{${left}}-{${right}}`);
      }
    }
    const tailName = fresh();
    if (tail === 'dotExt') pieces.push(`/word{.${tailName}}`);
    if (tail === 'slashVar') pieces.push(`{/${tailName}}`);
    if (tail === 'semicolonVar') pieces.push(`{;${tailName}}`);
    if (tail === 'plusRest') pieces.push(`/{+${tailName}}`);
    if (tail !== 'none') valueArbitraries[tailName] = valueString(tail === 'plusRest' ? '?#' : '');
    if (query !== 'none') {
      const [q, r] = [fresh(), fresh()];
      valueArbitraries[q] = valueString('');
      valueArbitraries[r] = valueString('');
      pieces.push(query === 'form' ? `{?${q},${r}}` : `?first={${q}}&second={${r}}`);
    }
    return fc.record({
      template: fc.constant(pieces.join('')),
      values: fc.record(valueArbitraries),
      shuffleQuery: fc.array(fc.nat(), { minLength: 2, maxLength: 2 }),
    });
  });

describe('expand-then-match gives the variables back', () => {
  it('on unambiguous templates', () => {
    fc.assert(
      fc.property(roundTripCase, ({ template, values, shuffleQuery }) => {
        const t = parseTemplate(template);
        const expanded = expandTemplate(t, values);
        const mark = expanded.indexOf('?');
        const rawPath = mark < 0 ? expanded : expanded.slice(0, mark);
        let rawQuery = mark < 0 ? '' : expanded.slice(mark);
        if (rawQuery !== '') {
          // Any order: sort the parameters by the generated keys.
          const parameters = rawQuery.slice(1).split('&');
          const order = parameters.map((parameter, index) => ({ parameter, key: shuffleQuery[index] ?? 0 }));
          rawQuery = '?' + order.sort((x, y) => x.key - y.key).map(({ parameter }) => parameter).join('&');
        }
        const match = matchTemplate(t, rawPath, rawQuery);
        expect(match).not.toBeNull();
        const decoded = Object.fromEntries([...match!].map(([name, value]) => [name, value.decoded]));
        expect(decoded).toEqual(values);
      }),
      { numRuns: 500 },
    );
  });

  /** Raw request text for a value: allowed characters plus %XX of any code point, in either hex case. */
  function rawText(allowed: readonly string[]): fc.Arbitrary<string> {
    const encodedCodePoint = fc
      .tuple(fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }), fc.boolean())
      .map(([ch, lowerCase]) => {
        const encoded = encodeURIComponent(ch).replace(/^[^%]/, (plain) => '%' + plain.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0'));
        return lowerCase ? encoded.toLowerCase() : encoded;
      });
    return fc.array(fc.oneof(fc.constantFrom(...allowed), encodedCodePoint), { maxLength: 10 }).map((tokens) => tokens.join(''));
  }

  const unreserved = [...'aZ09-._~'];
  const reserved = [...":/?#[]@!$&'()*+,;="];

  it('expanding {+x} with a MatchedValue gives back exactly the raw text', () => {
    const outgoing = parseTemplate('https://cdn.example.com/{+x}');
    fc.assert(
      fc.property(fc.constantFrom('/{+x}', '/{x}', '/pre/{x}/post'), fc.oneof(rawText(unreserved), rawText([...unreserved, ...reserved])), (template, raw) => {
        const rawPath = template.replace(/\{\+?x\}/, () => raw);
        const match = matchTemplate(parseTemplate(template), rawPath, '');
        const allowedInPlainVar = /^([A-Za-z0-9\-._~]|%[0-9A-Fa-f]{2})*$/.test(raw);
        if (template !== '/{+x}' && !allowedInPlainVar) {
          expect(match).toBeNull();
          return;
        }
        expect(match).not.toBeNull();
        expect(match!.get('x')!.raw).toBe(raw);
        expect(match!.get('x')!.decoded).toBe(percentDecode(raw));
        expect(expandTemplate(outgoing, match!)).toBe('https://cdn.example.com/' + raw);
      }),
      { numRuns: 500 },
    );
  });
});

// Keep the UriTemplate type import honest: a structurally built template works too.
describe('structural templates', () => {
  it('matches and expands a UriTemplate not made by parseTemplate', () => {
    const t: UriTemplate = {
      source: '/{x}',
      parts: [
        { kind: 'literal', text: '/' },
        { kind: 'expression', operator: '', vars: [{ name: 'x', explode: false }] },
      ],
      variableNames: ['x'],
      capturesQuery: false,
    };
    expect(matchTemplate(t, '/a', '')?.get('x')).toEqual({ raw: 'a', decoded: 'a' });
    expect(expandTemplate(t, { x: 'a b' })).toBe('/a%20b');
  });
});
