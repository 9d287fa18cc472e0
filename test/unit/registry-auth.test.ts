import {
  decodeGatewayToken, encodeGatewayToken, gatewayChallenge, issueGatewayToken, parseChallenges, parseScope, requestedScopes,
  type ChallengeCache, type RegistryHttp, type RegistryHttpResponse,
} from '../../lambda/core/registry-auth';

describe('WWW-Authenticate parsing', () => {
  test('distribution, Docker Hub and GHCR challenges', () => {
    expect(parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' } },
    ]);
    expect(parseChallenges('Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:user/image:pull"')[0].params.realm).toBe('https://ghcr.io/token');
  });

  test('several challenges, commas and escapes inside quotes, bare tokens, odd spacing', () => {
    expect(parseChallenges('Basic realm="a, b", Bearer  realm = "https://x.test/t?a=1,b=2" , service=svc, error="invalid_token"')).toEqual([
      { scheme: 'basic', params: { realm: 'a, b' } },
      { scheme: 'bearer', params: { realm: 'https://x.test/t?a=1,b=2', service: 'svc', error: 'invalid_token' } },
    ]);
    expect(parseChallenges('Bearer realm="say \\"hi\\""')[0].params.realm).toBe('say "hi"');
    expect(parseChallenges('')).toEqual([]);
    // Malformed input never throws; a cut-off quoted value is taken as far as it goes.
    expect(parseChallenges('Bearer realm="https://cut')).toEqual([{ scheme: 'bearer', params: { realm: 'https://cut' } }]);
    expect(parseChallenges('=,"x" realm=1')).toEqual([{ scheme: 'x', params: { realm: '1' } }]);
  });

  test('the gateway challenge round-trips through the parser', () => {
    const c = gatewayChallenge('https://cr.test/v2/token', 'cr.test', 'repository:a/b:pull');
    expect(parseChallenges(c)).toEqual([{ scheme: 'bearer', params: { realm: 'https://cr.test/v2/token', service: 'cr.test', scope: 'repository:a/b:pull' } }]);
  });
});

describe('scopes', () => {
  test('parseScope', () => {
    expect(parseScope('repository:acme/rocket:pull,push')).toEqual({ type: 'repository', name: 'acme/rocket', actions: ['pull', 'push'] });
    expect(parseScope('repository(plugin):acme/rocket:pull')).toEqual({ type: 'repository', name: 'acme/rocket', actions: ['pull'] });
    expect(parseScope('registry:catalog:*')).toEqual({ type: 'registry', name: 'catalog', actions: ['*'] });
    for (const bad of ['', 'repository', 'repository:acme', 'repository:acme:', ':acme:pull']) expect({ bad, s: parseScope(bad) }).toEqual({ bad, s: null });
  });

  test('requestedScopes: repeated parameters, space-separated lists, encodings', () => {
    expect(requestedScopes('?service=x&scope=repository:a:pull&scope=repository%3Ab%2Fc%3Apull+repository:d:push&scope=&account=u').map((s) => s.name)).toEqual(['a', 'b/c', 'd']);
    expect(requestedScopes('')).toEqual([]);
  });
});

describe('gateway tokens', () => {
  test('round trip; anything else is not a gateway token', () => {
    const t = encodeGatewayToken({ 'ghcr.io': 'Bearer abc', '127.0.0.1:5000': 'Basic dTpw' });
    expect(t).toMatch(/^agw1\.[A-Za-z0-9_-]+$/);
    expect(decodeGatewayToken(`Bearer ${t}`)).toEqual({ 'ghcr.io': 'Bearer abc', '127.0.0.1:5000': 'Basic dTpw' });
    expect(decodeGatewayToken(`bearer  ${t} `)).toEqual({ 'ghcr.io': 'Bearer abc', '127.0.0.1:5000': 'Basic dTpw' });
    for (const other of [undefined, '', 'Basic dTpw', 'Bearer eyJhbGciOi.x.y', 'Bearer agw1.!!!', `Bearer agw1.${Buffer.from('[1]').toString('base64url')}`, `Bearer agw1.${Buffer.from('{"a":null}').toString('base64url')}`]) {
      expect({ other, d: decodeGatewayToken(other) }).toEqual({ other, d: null });
    }
    // Non-string values are dropped, never passed upstream.
    expect(decodeGatewayToken(`Bearer agw1.${Buffer.from('{"a":{"x":1,"y":"Bearer z"}}').toString('base64url')}`)).toEqual({ y: 'Bearer z' });
  });
});

describe('issueGatewayToken', () => {
  const NOW = new Date('2026-01-02T03:04:05.000Z');

  /** A scripted upstream: answers by URL prefix and records every request. */
  function fakeHttp(routes: Record<string, RegistryHttpResponse | 'unreachable'>): RegistryHttp & { seen: Array<{ url: string; headers: Record<string, string> }> } {
    const seen: Array<{ url: string; headers: Record<string, string> }> = [];
    return {
      seen,
      async get(url, headers) {
        seen.push({ url, headers: { ...headers } });
        const key = Object.keys(routes).find((k) => url.startsWith(k));
        const r = key === undefined ? undefined : routes[key];
        if (r === undefined || r === 'unreachable') throw new Error('ECONNREFUSED');
        return r;
      },
    };
  }
  const challenge = (realm: string, service: string): RegistryHttpResponse => ({ status: 401, headers: { 'www-authenticate': `Bearer realm="${realm}",service="${service}"` }, body: '' });
  const tokenJson = (token: string, expires?: number): RegistryHttpResponse => ({ status: 200, headers: {}, body: JSON.stringify({ token, ...(expires ? { expires_in: expires } : {}) }) });
  const body = (a: { body: string }) => JSON.parse(a.body);

  test('asks each upstream\'s token service for the mapped scopes and packs the tokens; the shortest lifetime wins', async () => {
    const http = fakeHttp({
      'https://ghcr.io/v2/': challenge('https://ghcr.io/token', 'ghcr.io'),
      'https://ghcr.io/token': tokenJson('ghcr-token', 300),
      'http://127.0.0.1:5000/v2/': challenge('http://127.0.0.1:5001/auth', 'local'),
      'http://127.0.0.1:5001/auth': tokenJson('local-token'),
      'http://127.0.0.1:6000/v2/': { status: 200, headers: {}, body: '{}' },
    });
    const cache: ChallengeCache = new Map();
    const answer = await issueGatewayToken({
      upstreams: [
        { host: 'ghcr.io', baseUrl: 'https://ghcr.io', scopes: ['repository:acme-corp/api:pull'] },
        { host: '127.0.0.1:5000', baseUrl: 'http://127.0.0.1:5000', scopes: ['repository:a:pull', 'repository:b:pull,push'] },
        { host: '127.0.0.1:6000', baseUrl: 'http://127.0.0.1:6000', scopes: ['repository:open:pull'] },
      ],
      credentials: null,
    }, http, cache, NOW);
    expect(answer.status).toBe(200);
    const doc = body(answer);
    expect(doc).toEqual({ token: doc.token, access_token: doc.token, expires_in: 60, issued_at: '2026-01-02T03:04:05.000Z' });
    // An upstream that needs no token gets no part.
    expect(decodeGatewayToken(`Bearer ${doc.token}`)).toEqual({ 'ghcr.io': 'Bearer ghcr-token', '127.0.0.1:5000': 'Bearer local-token' });
    expect(http.seen.map((r) => r.url)).toEqual([
      'https://ghcr.io/v2/',
      'https://ghcr.io/token?service=ghcr.io&scope=repository%3Aacme-corp%2Fapi%3Apull',
      'http://127.0.0.1:5000/v2/',
      'http://127.0.0.1:5001/auth?service=local&scope=repository%3Aa%3Apull&scope=repository%3Ab%3Apull%2Cpush',
      'http://127.0.0.1:6000/v2/',
    ]);
    expect(http.seen.every((r) => r.headers.authorization === undefined)).toBe(true);

    // Challenges are cached: the second request goes straight to the token service.
    const again = await issueGatewayToken({ upstreams: [{ host: 'ghcr.io', baseUrl: 'https://ghcr.io', scopes: ['repository:x:pull'] }], credentials: 'Basic dTpw' }, http, cache, NOW);
    expect(again.status).toBe(200);
    expect(body(again).expires_in).toBe(300);
    expect(http.seen.slice(5)).toEqual([{ url: 'https://ghcr.io/token?service=ghcr.io&scope=repository%3Ax%3Apull', headers: { authorization: 'Basic dTpw' } }]);
  });

  test('a registry that takes Basic credentials gets the client\'s own; anonymous clients get no part', async () => {
    const http = fakeHttp({ 'http://basic.test/v2/': { status: 401, headers: { 'www-authenticate': 'Basic realm="Registry Realm"' }, body: '' } });
    const plan = (credentials: string | null) => ({ upstreams: [{ host: 'basic.test', baseUrl: 'http://basic.test', scopes: ['repository:a:pull'] }], credentials });
    expect(decodeGatewayToken(`Bearer ${body(await issueGatewayToken(plan('Basic dTpw'), http, new Map(), NOW)).token}`)).toEqual({ 'basic.test': 'Basic dTpw' });
    expect(decodeGatewayToken(`Bearer ${body(await issueGatewayToken(plan(null), http, new Map(), NOW)).token}`)).toEqual({});
  });

  test('refused credentials: 401; unreachable or broken upstreams: 502; messages name the upstream, never the credentials', async () => {
    const plan = (baseUrl: string) => ({ upstreams: [{ host: new URL(baseUrl).host, baseUrl, scopes: ['repository:a:pull'] }], credentials: 'Basic c2VjcmV0OnBhc3M=' });
    const http = fakeHttp({
      'http://refuses.test/v2/': challenge('http://refuses.test/token', 's'),
      'http://refuses.test/token': { status: 401, headers: {}, body: 'no' },
      'http://down.test/v2/': 'unreachable',
      'http://nochallenge.test/v2/': { status: 401, headers: {}, body: '' },
      'http://badjson.test/v2/': challenge('http://badjson.test/token', 's'),
      'http://badjson.test/token': { status: 200, headers: {}, body: '<html>' },
      'http://notoken.test/v2/': challenge('http://notoken.test/token', 's'),
      'http://notoken.test/token': tokenJson(''),
      'http://badrealm.test/v2/': challenge('not a url', 's'),
      'http://error.test/v2/': { status: 500, headers: {}, body: '' },
    });
    const cases: Array<[string, number, RegExp]> = [
      ['http://refuses.test', 401, /refuses\.test refused the credentials/],
      ['http://down.test', 502, /down\.test is unreachable/],
      ['http://nochallenge.test', 502, /without a usable challenge/],
      ['http://badjson.test', 502, /did not answer JSON/],
      ['http://notoken.test', 502, /without a token/],
      ['http://badrealm.test', 502, /invalid token realm/],
      ['http://error.test', 502, /answered 500/],
    ];
    for (const [base, status, message] of cases) {
      const a = await issueGatewayToken(plan(base), http, new Map(), NOW);
      expect({ base, status: a.status }).toEqual({ base, status });
      const err = body(a).errors[0];
      expect(err.code).toBe(status === 401 ? 'UNAUTHORIZED' : 'UNAVAILABLE');
      expect(err.message).toMatch(message);
      expect(a.error).toBe(err.message);
      expect(a.body).not.toMatch(/c2VjcmV0|secret/);
    }
  });
});
