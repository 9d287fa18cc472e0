import { bodyText, handle, location, request, ruleSet, status } from './helpers';
import { handleRequest } from '../../lambda/core/engine';
import { TRANSPARENT_PNG } from '../../lambda/core/pixel';
import { encodeGatewayToken } from '../../lambda/core/registry-auth';

const DOCKER = { 'user-agent': 'docker/24.0.7 go/go1.20.10 git-commit/311b9ff kernel/6.1 os/linux arch/amd64 UpstreamClient(Docker-Client/24.0.7 \\(linux\\))' };

describe('routing', () => {
  const set = ruleSet([
    { type: 'file-v1', domain: 'Get.Example.com', 'incoming-path': '/a', 'outgoing-url': 'https://a.test/', 'package-id': 'a' },
    { type: 'file-v1', domain: 'get.example.com:8443', 'incoming-path': '/a', 'outgoing-url': 'https://port.test/', 'package-id': 'p' },
  ]);

  test('by Host, case-insensitively, ignoring a port no rule names', () => {
    expect(location(handle(set, 'GET.EXAMPLE.COM', '/a'))).toBe('https://a.test/');
    expect(location(handle(set, 'get.example.com:8081', '/a'))).toBe('https://a.test/');
  });

  test('a rule domain may name a port', () => {
    expect(location(handle(set, 'get.example.com:8443', '/a'))).toBe('https://port.test/');
  });

  test('X-Forwarded-Host wins over Host, taken whole', () => {
    expect(location(handle(set, 'other.test', '/a', { headers: { 'x-forwarded-host': 'get.example.com' } }))).toBe('https://a.test/');
    expect(status(handle(set, 'get.example.com', '/a', { headers: { 'x-forwarded-host': 'get.example.com, evil.test' } }))).toBe(404);
  });

  test('unknown hosts: 404 and no event', () => {
    const o = handle(set, 'nobody.test', '/a');
    expect(status(o)).toBe(404);
    expect(o.events).toEqual([]);
    expect(o.domain).toBeNull();
  });

  test('a miss on a known domain is recorded without a package and never as a download', () => {
    const o = handle(set, 'get.example.com', '/missing');
    expect(status(o)).toBe(404);
    expect(o.events).toEqual([expect.objectContaining({ action: 'not-found', package_id: null, countable: false })]);
  });

  test('bad request targets get 4xx', () => {
    expect(status(handleRequest(set, { ...request('get.example.com', '/a'), rawPath: 'a' }))).toBe(400);
    expect(status(handle(set, 'get.example.com', `/${'x'.repeat(20_000)}`))).toBe(414);
  });
});

describe('docker-v1 and docker-v2', () => {
  // One upstream registry on the domain (docker.io and registry.hub.docker.com are the same): redirects are possible.
  const set = ruleSet([
    { type: 'docker-v1', domain: 'cr.test', 'repository-name': 'library/hello-world', registry: 'docker.io', 'package-id': 'hello' },
    { type: 'docker-v1', domain: 'cr.test', 'repository-name': 'acme/always', registry: 'docker.io', 'package-id': 'always', 'always-proxy': true },
    { type: 'docker-v1', domain: 'cr.test', 'repository-name': 'acme/redirect', registry: 'docker.io', 'package-id': 'r', mode: 'redirect' },
    { type: 'docker-v2', domain: 'cr.test', pattern: 'library/*', 'rule-id': 'lib', registry: 'registry.hub.docker.com' },
    { type: 'docker-v2', domain: 'cr.test', pattern: 'library/{redis,nginx}', 'rule-id': 'later-wins', registry: 'registry.hub.docker.com' },
    { type: 'docker-v1', domain: 'local.test', 'repository-name': 'acme/app', registry: 'http://127.0.0.1:5000', 'package-id': 'app' },
  ]);

  test('Docker Engine is redirected to the upstream with the raw path and the query kept', () => {
    const o = handle(set, 'cr.test', '/v2/library/hello-world/tags/list?n=10&last=b', { headers: DOCKER });
    expect(location(o)).toBe('https://registry-1.docker.io/v2/library/hello-world/tags/list?n=10&last=b');
    expect(o.decision).toMatchObject({ headers: { 'cache-control': 'private, no-store' } });
    expect(o.events).toEqual([expect.objectContaining({ kind: 'docker', image: 'library/hello-world', reference: 'list', upstream: 'docker.io', package_id: 'hello', countable: false })]);
  });

  test('clients that cannot re-authenticate elsewhere are proxied, with the upstream passing its own challenge', () => {
    for (const ua of ['skopeo/1.9.3', 'containers/5.23.1 (github.com/containers/image)', 'crio', 'containerd/1.5.4', 'kaniko/v1.9.1 go-containerregistry/v0.22.0', 'go-containerregistry/v0.21.7', '']) {
      const o = handle(set, 'cr.test', '/v2/library/hello-world/manifests/latest', { headers: { 'user-agent': ua, authorization: 'Bearer upstream-token' } });
      expect({ ua, d: o.decision }).toEqual({ ua, d: expect.objectContaining({ type: 'proxy', url: 'https://registry-1.docker.io/v2/library/hello-world/manifests/latest', upstreamHost: 'registry-1.docker.io' }) });
      // The client's token goes to the upstream as it is; the upstream's challenge goes back as it is.
      expect(o.decision).not.toHaveProperty('authorization');
      expect(o.decision).not.toHaveProperty('challenge');
    }
  });

  test('proxied repository requests bring upstream URLs (uploads, paging) back to the gateway', () => {
    const o = handle(set, 'local.test', '/v2/acme/app/blobs/uploads/', { method: 'POST' });
    expect(o.decision).toMatchObject({ type: 'proxy', rewrite: { upstreamPrefix: 'http://127.0.0.1:5000/v2/acme/app/', publicPrefix: '/v2/acme/app/' } });
    expect(handle(set, 'local.test', '/v2/').decision).not.toHaveProperty('rewrite');
  });

  test('clients that re-authenticate are redirected', () => {
    for (const ua of ['containerd/v1.7.2', 'containerd/1.6.20', 'containerd/2.0.0', 'containerd/1.4.9', 'containerd/1.5.5', 'go-containerregistry/v0.21.8', 'Docker-Client/19.03.12 (linux)']) {
      expect({ ua, t: status(handle(set, 'cr.test', '/v2/library/hello-world/manifests/latest', { headers: { 'user-agent': ua } })) }).toEqual({ ua, t: 307 });
    }
  });

  test('Basic auth, always-proxy and mode force the path', () => {
    expect(status(handle(set, 'cr.test', '/v2/library/hello-world/manifests/latest', { headers: { ...DOCKER, authorization: 'Basic dTpw' } }))).toBe('proxy');
    expect(handle(set, 'cr.test', '/v2/acme/always/manifests/1', { headers: DOCKER }).decision).toMatchObject({ type: 'proxy', url: 'https://registry-1.docker.io/v2/acme/always/manifests/1', upstreamHost: 'registry-1.docker.io' });
    expect(location(handle(set, 'cr.test', '/v2/acme/redirect/manifests/1', { headers: { 'user-agent': 'skopeo/1.9.3' } }))).toBe('https://registry-1.docker.io/v2/acme/redirect/manifests/1');
  });

  test('docker-v2 patterns report the rule id; the later of two matching patterns wins; docker-v1 beats a pattern', () => {
    expect(handle(set, 'cr.test', '/v2/library/alpine/manifests/3', { headers: DOCKER }).events[0]).toMatchObject({ package_id: null, auto_create_rule_id: 'lib', upstream: 'registry-1.docker.io' });
    expect(handle(set, 'cr.test', '/v2/library/redis/manifests/7', { headers: DOCKER }).events[0]).toMatchObject({ auto_create_rule_id: 'later-wins' });
    expect(handle(set, 'cr.test', '/v2/library/hello-world/manifests/latest', { headers: DOCKER }).events[0]).toMatchObject({ package_id: 'hello', auto_create_rule_id: null });
  });

  test('only a manifest GET counts as a pull', () => {
    const counts = (method: string, path: string) => handle(set, 'cr.test', path, { method, headers: DOCKER }).events[0].countable;
    expect(counts('GET', '/v2/library/hello-world/manifests/latest')).toBe(true);
    expect(counts('HEAD', '/v2/library/hello-world/manifests/latest')).toBe(false);
    expect(counts('GET', '/v2/library/hello-world/blobs/sha256:1')).toBe(false);
    expect(counts('GET', '/v2/library/hello-world/referrers/sha256:1')).toBe(false);
  });

  test('/v2/ goes to the first docker-v1 rule, /v2/_catalog is a 404 with an empty docker event', () => {
    expect(location(handle(set, 'cr.test', '/v2/', { headers: DOCKER }))).toBe('https://registry-1.docker.io/v2/');
    const cat = handle(set, 'cr.test', '/v2/_catalog?n=100', { headers: DOCKER });
    expect(status(cat)).toBe(404);
    expect(bodyText(cat)).toBe('');
    expect(cat.events).toEqual([expect.objectContaining({ kind: 'docker', image: '', reference: '', package_id: null, upstream: 'docker.io' })]);
  });

  test('unknown images and other /v2 paths (the gateway realm is off here): 404 NAME_UNKNOWN JSON', () => {
    for (const p of ['/v2/other/nginx/manifests/1', '/v2', '/v2/acme/api', '/v2/a%ZZ/manifests/1', '/v2/token']) {
      const o = handle(set, 'cr.test', p, { headers: DOCKER });
      expect({ p, s: status(o) }).toEqual({ p, s: 404 });
      expect(JSON.parse(bodyText(o)).errors[0].code).toBe('NAME_UNKNOWN');
    }
  });

  test('dot segments never reach the upstream (they could walk to another repository)', () => {
    for (const p of ['/v2/acme/api/manifests/../../../other/secret/manifests/latest', '/v2/acme/api/manifests/%2e%2e/x', '/v2/./acme/api/manifests/1']) {
      expect({ p, s: status(handle(set, 'cr.test', p, { headers: DOCKER })) }).toEqual({ p, s: 404 });
    }
  });

  test('image names are matched on decoded segments, case-sensitively', () => {
    expect(status(handle(set, 'cr.test', '/v2/library/hello%2Dworld/manifests/latest', { headers: DOCKER }))).toBe(307);
    expect(status(handle(set, 'cr.test', '/v2/Library/hello-world/manifests/latest', { headers: DOCKER }))).toBe(404);
  });
});

describe('several registries or renamed repositories on one domain: the gateway token realm', () => {
  const set = ruleSet([
    { type: 'docker-v1', domain: 'cr.test', 'repository-name': 'library/hello-world', registry: 'docker.io', 'package-id': 'hello' },
    { type: 'docker-v1', domain: 'cr.test', 'repository-name': 'acme/api', registry: 'ghcr.io', 'package-id': 'api', 'upstream-repository-name': 'acme-corp/api-server' },
    { type: 'docker-v2', domain: 'cr.test', pattern: 'mirror/*', 'rule-id': 'mirror', registry: 'http://127.0.0.1:5000' },
    // One registry, one renamed repository: the realm too (the upstream's token would name the upstream repository).
    { type: 'docker-v1', domain: 'renamed.test', 'repository-name': 'rocket', registry: 'ghcr.io', 'package-id': 'rocket', 'upstream-repository-name': 'acme/rocket-skates' },
  ]);
  const token = encodeGatewayToken({ 'ghcr.io': 'Bearer ghcr-token', 'registry-1.docker.io': 'Bearer hub-token' });

  test('the /v2/ ping gets the gateway\'s challenge; with a gateway token, 200', () => {
    const o = handle(set, 'cr.test', '/v2/', { headers: DOCKER });
    expect(status(o)).toBe(401);
    expect(o.decision).toMatchObject({ headers: { 'www-authenticate': 'Bearer realm="https://cr.test/v2/token",service="cr.test"', 'docker-distribution-api-version': 'registry/2.0' } });
    expect(JSON.parse(bodyText(o)).errors[0].code).toBe('UNAUTHORIZED');
    expect(o.events).toEqual([expect.objectContaining({ kind: 'docker', action: 'unauthorized', countable: false, image: '', upstream: null })]);
    // The realm is where the client reached the gateway: scheme and port included.
    const local = handleRequest(set, { ...request('cr.test:8081', '/v2/'), scheme: 'http' });
    expect(local.decision).toMatchObject({ headers: { 'www-authenticate': 'Bearer realm="http://cr.test:8081/v2/token",service="cr.test"' } });
    const authorized = handle(set, 'cr.test', '/v2/', { headers: { authorization: `Bearer ${token}` } });
    expect(status(authorized)).toBe(200);
    expect(bodyText(authorized)).toBe('{}');
    // An upstream's token is not ours: the client is sent to the gateway's realm.
    expect(status(handle(set, 'cr.test', '/v2/', { headers: { authorization: 'Bearer ghcr-token' } }))).toBe(401);
  });

  test('every client is proxied, with its upstream\'s part of the gateway token and the gateway\'s challenge', () => {
    for (const ua of [DOCKER['user-agent'], 'containerd/1.7.2', 'skopeo/1.9.3']) {
      const o = handle(set, 'cr.test', '/v2/acme/api/manifests/1?x=1', { headers: { 'user-agent': ua, authorization: `Bearer ${token}` } });
      expect({ ua, d: o.decision }).toEqual({
        ua,
        d: {
          type: 'proxy', url: 'https://ghcr.io/v2/acme-corp/api-server/manifests/1?x=1', upstreamHost: 'ghcr.io', followRedirectsTo: ['registry-1.docker.io', 'ghcr.io', '127.0.0.1:5000'], errorStyle: 'oci',
          rewrite: { upstreamPrefix: 'https://ghcr.io/v2/acme-corp/api-server/', publicPrefix: '/v2/acme/api/' },
          authorization: 'Bearer ghcr-token',
          challenge: 'Bearer realm="https://cr.test/v2/token",service="cr.test",scope="repository:acme/api:pull"',
        },
      });
    }
    expect(handle(set, 'cr.test', '/v2/library/hello-world/blobs/sha256:1', { headers: { authorization: `Bearer ${token}` } }).decision).toMatchObject({ authorization: 'Bearer hub-token' });
    // No part for this upstream, or a token that is not the gateway's: nothing is sent upstream.
    expect(handle(set, 'cr.test', '/v2/mirror/x/manifests/1', { headers: { authorization: `Bearer ${token}` } }).decision).toMatchObject({ authorization: null });
    expect(handle(set, 'cr.test', '/v2/acme/api/manifests/1', { headers: { authorization: 'Bearer someone-elses' } }).decision).toMatchObject({ authorization: null });
    // Basic credentials go to the rule's upstream as they are; no Authorization, nothing to replace.
    expect(handle(set, 'cr.test', '/v2/acme/api/manifests/1', { headers: { authorization: 'Basic dTpw' } }).decision).toMatchObject({ authorization: undefined });
    expect(handle(set, 'cr.test', '/v2/acme/api/manifests/1').decision).toMatchObject({ authorization: undefined });
    // Writes ask for push in the challenge.
    expect(handle(set, 'cr.test', '/v2/acme/api/blobs/uploads/', { method: 'POST' }).decision).toMatchObject({ challenge: expect.stringContaining('scope="repository:acme/api:pull,push"') });
    expect(status(handle(set, 'renamed.test', '/v2/rocket/manifests/1', { headers: DOCKER }))).toBe('proxy');
  });

  test('upstream-repository-name renames the image at the upstream only', () => {
    const o = handle(set, 'cr.test', '/v2/acme/api/blobs/sha256:abc', { headers: DOCKER });
    expect(o.decision).toMatchObject({ type: 'proxy', url: 'https://ghcr.io/v2/acme-corp/api-server/blobs/sha256:abc' });
    expect(o.events[0]).toMatchObject({ image: 'acme/api', reference: 'sha256:abc', package_id: 'api', upstream: 'ghcr.io', countable: false });
  });

  test('the token endpoint maps each scope to its upstream and upstream name; credentials only when one upstream is asked', () => {
    const o = handle(set, 'cr.test', '/v2/token?service=cr.test&scope=repository:acme/api:pull&scope=repository:library/hello-world:pull+repository:mirror/x:pull,push&scope=repository:unknown/repo:pull&scope=registry:catalog:*', { headers: { authorization: 'Basic dTpw' } });
    expect(o.decision).toEqual({
      type: 'registry-token',
      upstreams: [
        { host: 'ghcr.io', baseUrl: 'https://ghcr.io', scopes: ['repository:acme-corp/api-server:pull'] },
        { host: 'registry-1.docker.io', baseUrl: 'https://registry-1.docker.io', scopes: ['repository:library/hello-world:pull'] },
        { host: '127.0.0.1:5000', baseUrl: 'http://127.0.0.1:5000', scopes: ['repository:mirror/x:pull,push'] },
      ],
      credentials: null,
    });
    expect(o.events).toEqual([]);
    const one = handle(set, 'cr.test', '/v2/token?scope=repository%3Aacme%2Fapi%3Apull', { headers: { authorization: 'Basic dTpw' } });
    expect(one.decision).toEqual({ type: 'registry-token', upstreams: [{ host: 'ghcr.io', baseUrl: 'https://ghcr.io', scopes: ['repository:acme-corp/api-server:pull'] }], credentials: 'Basic dTpw' });
    // A login (no scope) is checked against the upstream when the domain has only one; never against several.
    expect(handle(set, 'renamed.test', '/v2/token?service=renamed.test', { headers: { authorization: 'Basic dTpw' } }).decision).toEqual({ type: 'registry-token', upstreams: [{ host: 'ghcr.io', baseUrl: 'https://ghcr.io', scopes: [] }], credentials: 'Basic dTpw' });
    expect(handle(set, 'cr.test', '/v2/token', { headers: { authorization: 'Basic dTpw' } }).decision).toEqual({ type: 'registry-token', upstreams: [], credentials: null });
    const post = handle(set, 'cr.test', '/v2/token', { method: 'POST' });
    expect(status(post)).toBe(405);
    expect(post.decision).toMatchObject({ headers: { allow: 'GET' } });
  });
});

describe('file-v1', () => {
  test('Scarf examples: shortest-first variables, query merge, record-only beacons', () => {
    const set = ruleSet([
      { type: 'file-v1', domain: 'f.test', 'incoming-path': '/{package}-{os}-{arch}', 'outgoing-url': 'https://b.test/{package}/{os}/{arch}', 'package-id': 'p' },
      { type: 'file-v1', domain: 'f.test', 'incoming-path': '/data/{x}', 'outgoing-url': 'https://datausa.io/api/data', 'package-id': 'd' },
      { type: 'file-v1', domain: 'f.test', 'incoming-path': '/collect', 'outgoing-url': null, 'package-id': 'c' },
      { type: 'file-v1', domain: 'f.test', 'incoming-path': '/dl/{version}', 'outgoing-url': 'https://b.test/v{version}.tgz', 'package-id': 'v' },
    ]);
    expect(location(handle(set, 'f.test', '/minikube-linux-amd64-hallo'))).toBe('https://b.test/minikube/linux/amd64-hallo');
    expect(location(handle(set, 'f.test', '/data/xxx?drilldowns=Nation&measures=Population'))).toBe('https://datausa.io/api/data?drilldowns=Nation&measures=Population');
    const beacon = handle(set, 'f.test', '/collect', { method: 'POST', body: '{"x":"Hello"}\n{"y":"World"},[{"z":1},2,"s"]' });
    expect(status(beacon)).toBe(200);
    expect(beacon.events.map((e) => e.body_event)).toEqual([{ x: 'Hello' }, { y: 'World' }, { z: 1 }]);
    expect(beacon.events[0].countable).toBe(false); // a POST beacon is not a download
    const v = handle(set, 'f.test', '/dl/1.2.3');
    expect(v.events[0]).toMatchObject({ version: '1.2.3', variables: { version: '1.2.3' }, countable: true, target: 'https://b.test/v1.2.3.tgz' });
  });

  test('query variables match in any order (a Scarf bug fixed)', () => {
    const set = ruleSet([{ type: 'file-v1', domain: 'f.test', 'incoming-path': '/data?drilldowns={d}&measures={m}', 'outgoing-url': 'https://datausa.io/api/data?drilldowns={d}&measures={m}', 'package-id': 'p' }]);
    expect(location(handle(set, 'f.test', '/data?measures=Population&drilldowns=Nation'))).toBe('https://datausa.io/api/data?drilldowns=Nation&measures=Population');
    expect(status(handle(set, 'f.test', '/data?measures=Population'))).toBe(404);
  });

  test('no double encoding: %2F survives {+path} -> {+path}, and {var} re-encodes', () => {
    const set = ruleSet([
      { type: 'file-v1', domain: 'f.test', 'incoming-path': '/raw/{+path}', 'outgoing-url': 'https://o.test/{+path}', 'package-id': 'p' },
      { type: 'file-v1', domain: 'f.test', 'incoming-path': '/one/{name}', 'outgoing-url': 'https://o.test/x/{name}', 'package-id': 'p' },
    ]);
    const o = handle(set, 'f.test', '/raw/a%2Fb/c%20d/e+f');
    expect(location(o)).toBe('https://o.test/a%2Fb/c%20d/e+f');
    expect(o.events[0].variables).toEqual({ path: 'a/b/c d/e+f' });
    expect(location(handle(set, 'f.test', '/one/hello%20w%C3%B6rld'))).toBe('https://o.test/x/hello%20w%C3%B6rld');
  });

  test('precedence: longer literal keys first, /{+path} last, later duplicate wins', () => {
    const set = ruleSet([
      { type: 'file-v1', domain: 'f.test', 'incoming-path': '/{+path}', 'outgoing-url': 'https://all.test/{+path}', 'package-id': 'all' },
      { type: 'file-v1', domain: 'f.test', 'incoming-path': '/a/{x}', 'outgoing-url': 'https://a.test/{x}', 'package-id': 'a' },
      { type: 'file-v1', domain: 'f.test', 'incoming-path': '/a/b', 'outgoing-url': 'https://ab1.test/', 'package-id': 'ab1' },
      { type: 'file-v1', domain: 'f.test', 'incoming-path': '/a/b', 'outgoing-url': 'https://ab2.test/', 'package-id': 'ab2' },
      { type: 'file-v2', domain: 'f.test', 'incoming-path': '/z(?<rest>.*)', 'outgoing-url': 'https://re.test/{rest}', 'package-id': 're' },
    ]);
    expect(location(handle(set, 'f.test', '/a/b'))).toBe('https://ab2.test/');
    expect(location(handle(set, 'f.test', '/a/c'))).toBe('https://a.test/c');
    expect(location(handle(set, 'f.test', '/zzz'))).toBe('https://all.test/zzz'); // file-v1 sorts before file-v2
    expect(location(handle(set, 'f.test', '/'))).toBe('https://all.test/');
  });

  test('a literal template matches regardless of query order and extra parameters', () => {
    const set = ruleSet([{ type: 'file-v1', domain: 'f.test', 'incoming-path': '/data?a=1&b=2', 'outgoing-url': 'https://d.test/x', 'package-id': 'p' }]);
    expect(location(handle(set, 'f.test', '/data?b=2&c=3&a=1'))).toBe('https://d.test/x?b=2&c=3&a=1');
    expect(status(handle(set, 'f.test', '/data?a=1'))).toBe(404);
  });

  test('hostile paths never throw', () => {
    const set = ruleSet([{ type: 'file-v1', domain: 'f.test', 'incoming-path': '/{a}/{+b}', 'outgoing-url': 'https://o.test/{a}/{+b}', 'package-id': 'p' }]);
    for (const p of ['/%FF/x', '/%/x', '/%zz', '/a/../../etc/passwd', '/\u0000/x', `/${'a/'.repeat(4000)}`, '/a/\ud800']) {
      expect(() => handle(set, 'f.test', p)).not.toThrow();
    }
    expect(location(handle(set, 'f.test', '/a/../../etc'))).toBe('https://o.test/a/../../etc');
  });
});

describe('file-v2', () => {
  const set = ruleSet([
    { type: 'file-v2', domain: 'r.test', 'incoming-path': '/packages/(?<packageName>.*)-(?<version>[0-9].*)', 'outgoing-url': 'https://d.test/{packageName}/{version}', 'package-id': 'p' },
    { type: 'file-v2', domain: 'r.test', 'incoming-path': '/beacon/(?<id>\\w+)', 'outgoing-url': null, 'package-id': 'b' },
    { type: 'file-v2', domain: 'r.test', 'incoming-path': '/(?<a>x)|/(?<b>y)', 'outgoing-url': 'https://d.test/{b}', 'package-id': 'alt' },
  ]);

  test('greedy named groups fill the template', () => {
    const o = handle(set, 'r.test', '/packages/some-example-package-0.1.2.4-head');
    expect(location(o)).toBe('https://d.test/some-example-package/0.1.2.4-head');
    expect(o.events[0]).toMatchObject({ variables: { packageName: 'some-example-package', version: '0.1.2.4-head' }, version: '0.1.2.4-head' });
  });

  test('values are decoded once, so they are not encoded twice (%20 stays %20)', () => {
    const o = handle(set, 'r.test', '/packages/hello%20world-1.0');
    expect(location(o)).toBe('https://d.test/hello%20world/1.0');
    expect(o.events[0].variables).toEqual({ packageName: 'hello world', version: '1.0' });
  });

  test('null outgoing-url records; a group that took no part fails the redirect', () => {
    expect(status(handle(set, 'r.test', '/beacon/abc'))).toBe(200);
    expect(status(handle(set, 'r.test', '/x'))).toBe(404);
    expect(location(handle(set, 'r.test', '/y'))).toBe('https://d.test/y');
  });
});

describe('catch-all-v1', () => {
  const set = ruleSet([
    { type: 'catch-all-v1', domain: 'dl.test', 'redirect-target-domain': 'downloads.test.sh', 'package-id': 'c' },
    { type: 'catch-all-v1', domain: 'rec.test', 'package-id': 'r' },
  ]);

  test('re-encodes segments and the query strictly', () => {
    expect(location(handle(set, 'dl.test', '/hello%20world'))).toBe('https://downloads.test.sh/hello%20world');
    expect(location(handle(set, 'dl.test', '/search?q=hello%20world&x=a+b'))).toBe('https://downloads.test.sh/search?q=hello%20world&x=a%20b');
    expect(location(handle(set, 'dl.test', '/'))).toBe('https://downloads.test.sh');
    expect(location(handle(set, 'dl.test', '/a/'))).toBe('https://downloads.test.sh/a/');
    expect(location(handle(set, 'dl.test', '/a:b@c,d'))).toBe('https://downloads.test.sh/a%3Ab%40c%2Cd');
  });

  test('invalid UTF-8 in the path is passed on, not a 500', () => {
    expect(location(handle(set, 'dl.test', '/%FF/x'))).toBe('https://downloads.test.sh/%FF/x');
  });

  test('without a target: 200, record only', () => {
    const o = handle(set, 'rec.test', '/anything');
    expect(status(o)).toBe(200);
    expect(o.events[0]).toMatchObject({ kind: 'catch-all', target: null, package_id: 'r' });
  });
});

describe('python-v1', () => {
  const set = ruleSet([
    { type: 'python-v1', domain: 'py.test', 'package-name': 'numpy', 'file-name': 'numpy-1.4.0.tar.gz', version: '1.4.0', 'backend-url': 'https://files.test/numpy-1.4.0.tar.gz#sha256=ab', 'package-id': 'np', 'requires-python': '>=2.7,<4 "quoted"', 'hash-value': { type: 'sha256', hash: 'ab' } },
    { type: 'python-v1', domain: 'py.test', 'package-name': 'numpy', 'file-name': 'numpy-1.3.0.tar.gz', version: '1.3.0', 'backend-url': 'https://files.test/numpy-1.3.0.tar.gz', 'package-id': 'np', 'gpg-sig': true },
    { type: 'python-v1', domain: 'py.test', 'package-name': 'cipy', 'file-name': 'cipy-1.0.tar.gz', version: '1.0', 'backend-url': 'https://files.test/cipy-1.0.tar.gz', 'package-id': 'ci' },
  ]);

  test('root page: sorted, escaped, with an ETag; 304 on If-None-Match (weak or strong)', () => {
    const o = handle(set, 'py.test', '/simple/');
    expect(status(o)).toBe(200);
    const html = bodyText(o);
    expect(html.indexOf('/simple/cipy/')).toBeLessThan(html.indexOf('/simple/numpy/'));
    const etag = (o.decision as { headers: Record<string, string> }).headers.etag;
    expect(etag).toMatch(/^"[A-Za-z0-9_-]{43}"$/);
    expect(bodyText(handle(set, 'py.test', '/simple/'))).toBe(html); // deterministic
    for (const inm of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
      const c = handle(set, 'py.test', '/simple/', { headers: { 'if-none-match': inm } });
      expect({ inm, s: status(c) }).toEqual({ inm, s: 304 });
      expect(c.events[0].action).toBe('not-modified');
    }
    expect(status(handle(set, 'py.test', '/simple/', { headers: { 'if-none-match': '"nope"' } }))).toBe(200);
  });

  test('project page escapes attribute values and lists hashes, gpg-sig and requires-python', () => {
    const html = bodyText(handle(set, 'py.test', '/simple/numpy/'));
    expect(html).toContain('<a href="/simple/numpy/numpy-1.3.0.tar.gz" data-gpg-sig="true">numpy-1.3.0.tar.gz</a>');
    expect(html).toContain('<a href="/simple/numpy/numpy-1.4.0.tar.gz#sha256=ab" data-requires-python="&gt;=2.7,&lt;4 &quot;quoted&quot;">numpy-1.4.0.tar.gz</a>');
    expect(html.indexOf('1.3.0')).toBeLessThan(html.indexOf('1.4.0'));
  });

  test('HEAD has the GET length and no body', () => {
    const get = handle(set, 'py.test', '/simple/numpy/');
    const head = handle(set, 'py.test', '/simple/numpy/', { method: 'HEAD' });
    expect(bodyText(head)).toBe('');
    expect((head.decision as { headers: Record<string, string> }).headers['content-length']).toBe(String(Buffer.byteLength(bodyText(get))));
  });

  test('files: 307 verbatim on GET and HEAD; only a full GET is a download', () => {
    const get = handle(set, 'py.test', '/simple/numpy/numpy-1.4.0.tar.gz');
    expect(location(get)).toBe('https://files.test/numpy-1.4.0.tar.gz#sha256=ab');
    expect(get.events[0]).toMatchObject({ kind: 'python', package_id: 'np', version: '1.4.0', file_name: 'numpy-1.4.0.tar.gz', countable: true });
    expect(handle(set, 'py.test', '/simple/numpy/numpy-1.4.0.tar.gz', { method: 'HEAD' }).events[0].countable).toBe(false);
    expect(handle(set, 'py.test', '/simple/numpy/numpy-1.4.0.tar.gz', { headers: { range: 'bytes=0-10' } }).events[0].countable).toBe(false);
  });

  test('unknown files and projects fall through to 404; other methods are not served', () => {
    expect(status(handle(set, 'py.test', '/simple/numpy/numpy-1.2.0.tar.gz'))).toBe(404);
    expect(status(handle(set, 'py.test', '/simple/nope/'))).toBe(404);
    expect(status(handle(set, 'py.test', '/simple/', { method: 'POST' }))).toBe(404);
  });
});

describe('telemetry-v1', () => {
  const set = ruleSet([
    { type: 'telemetry-v1', domain: 't.test', 'incoming-path': '/events', 'package-id': 'tel', 'access-tokens': ['12345abcde', 'sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'] },
    { type: 'telemetry-v1', domain: 't.test', 'incoming-path': '/open', 'package-id': 'open' },
    { type: 'telemetry-v1', domain: 't.test', 'incoming-path': '/closed', 'package-id': 'closed', 'access-tokens': [] },
    { type: 'file-v1', domain: 't.test', 'incoming-path': '/{+path}', 'outgoing-url': 'https://x.test/{+path}', 'package-id': 'files' },
  ]);
  const post = (path: string, auth: string | undefined, body = '{"x":1}\n{"y":2}') =>
    handle(set, 't.test', path, { method: 'POST', body, headers: auth === undefined ? {} : { authorization: auth } });

  test('accepts listed tokens, plain or as sha256:<hex>; one event per object', () => {
    const o = post('/events', 'Bearer 12345abcde');
    expect(status(o)).toBe(200);
    expect(o.events.map((e) => [e.package_id, e.body_event])).toEqual([['tel', { x: 1 }], ['tel', { y: 2 }]]);
    expect(status(post('/events', 'Bearer test'))).toBe(200);
    expect(status(post('/events', 'bearer  12345abcde '))).toBe(200);
  });

  test('refuses other tokens with 401 and a challenge, naming no package', () => {
    for (const auth of [undefined, 'Bearer nope', 'Basic 12345abcde', 'Bearer ', 'Bearer sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08']) {
      const o = post('/events', auth);
      expect({ auth, s: status(o) }).toEqual({ auth, s: 401 });
      expect((o.decision as { headers: Record<string, string> }).headers['www-authenticate']).toBe('Bearer realm="t.test"');
      expect(o.events.every((e) => e.package_id === null && e.action === 'unauthorized')).toBe(true);
    }
    expect(status(post('/closed', 'Bearer anything'))).toBe(401);
    expect(status(post('/open', undefined))).toBe(200);
  });

  test('is never shadowed by a broad file rule (a Scarf hazard fixed), but only takes POST', () => {
    expect(post('/events', 'Bearer 12345abcde').events[0].kind).toBe('telemetry');
    expect(location(handle(set, 't.test', '/events'))).toBe('https://x.test/events');
  });

  test('bodies over the limit get 413, not a silent cut', () => {
    expect(status(post('/open', undefined, `[${'{"a":1},'.repeat(20_000)}{}]`))).toBe(413);
  });
});

describe('pixel-v1', () => {
  const set = ruleSet([{ type: 'pixel-v1', domain: 's.test', 'incoming-path': '/a.png', 'package-id': null }]);

  test('answers the PNG with no-cache headers and records x-pxid', () => {
    const o = handle(set, 's.test', '/a.png?x-pxid=hello+world&x-pxid=2');
    expect(o.decision).toMatchObject({ status: 200, headers: { 'content-type': 'image/png', 'cache-control': 'no-cache, no-store, must-revalidate', 'content-length': String(TRANSPARENT_PNG.length) } });
    expect(o.events[0]).toMatchObject({ kind: 'pixel', pixel_id: 'hello world', package_id: null });
    expect(handle(set, 's.test', '/a.png').events[0].pixel_id).toBe('');
    expect(status(handle(set, 's.test', '/b.png'))).toBe(404);
  });
});
