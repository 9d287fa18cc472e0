import zlib from 'node:zlib';
import fc from 'fast-check';
import { mergeQuery, pathSegments, queryPairs, queryParam, reencodeQuery, strictEncode, encodeUnsafe } from '../../lambda/core/encoding';
import { matchImagePattern, parseImagePattern, ImagePatternError } from '../../lambda/core/image-pattern';
import { followsRegistryRedirects } from '../../lambda/core/docker-clients';
import { parseUserAgent } from '../../lambda/core/user-agent';
import { parseBodyEvents, MAX_BODY_EVENTS } from '../../lambda/core/body-events';
import { networkKey, visitorId } from '../../lambda/core/visitor';
import { completeEvents, isDownload } from '../../lambda/core/complete-event';
import { TRANSPARENT_PNG } from '../../lambda/core/pixel';
import { parseUpstream, registryLabel } from '../../lambda/core/upstream';
import { compileFileRegex, execFileRegex } from '../../lambda/core/file-regex';
import { EVENT_FIELD_NAMES } from '../../lambda/core/events';

describe('query merging (Scarf section 7.5, bugs fixed)', () => {
  test('pinned examples', () => {
    expect(mergeQuery('https://datausa.io/api/data', '?drilldowns=Nation&measures=Population')).toBe('https://datausa.io/api/data?drilldowns=Nation&measures=Population');
    expect(mergeQuery('https://some.host/blah/blah', '?prefix=foo')).toBe('https://some.host/blah/blah?prefix=foo');
    expect(mergeQuery('https://x.test/a?b=1', '')).toBe('https://x.test/a?b=1');
    expect(mergeQuery('https://x.test/a?b=1', '?')).toBe('https://x.test/a?b=1');
  });

  test('the target wins on duplicate keys, and keeps its own query as written', () => {
    expect(mergeQuery('https://x.test/a?b=1&p=a/b', '?b=2&c=3')).toBe('https://x.test/a?b=1&p=a/b&c=3');
  });

  test('request values are re-encoded strictly; repeated request keys are all kept; + is a space', () => {
    expect(mergeQuery('https://x.test/a', '?k=a+b&k=c%2Fd&bare&e=%7e')).toBe('https://x.test/a?k=a%20b&k=c%2Fd&bare&e=~');
  });

  test('the query goes before the fragment; credentials are left alone; relative targets unchanged', () => {
    expect(mergeQuery('https://u:p@x.test/a#frag', '?q=1')).toBe('https://u:p@x.test/a?q=1#frag');
    expect(mergeQuery('/relative', '?q=1')).toBe('/relative');
  });

  test('helpers', () => {
    expect(strictEncode('a b/é~')).toBe('a%20b%2F%C3%A9~');
    expect(reencodeQuery('?q=hello%20world&x')).toBe('?q=hello%20world&x');
    expect(reencodeQuery('?&&')).toBe('');
    expect(queryPairs('?a=1&b&%ZZ=2&c=%FF')).toEqual([{ key: 'a', value: '1' }, { key: 'b', value: null }]);
    expect(queryParam('?x-pxid=&y=1', 'x-pxid')).toBe('');
    expect(queryParam('?y=1', 'x-pxid')).toBeNull();
    expect(pathSegments('/v2/hello%2Dworld/')).toEqual(['v2', 'hello-world', '']);
    expect(pathSegments('/%FF')).toBeNull();
    expect(encodeUnsafe('/a b/%41%zz"')).toBe('/a%20b/%41%25zz%22');
  });

  test('property: merging never loses a target parameter and always yields a parseable URL', () => {
    const word = fc.stringMatching(/^[a-z0-9]{1,6}$/);
    fc.assert(fc.property(fc.array(fc.tuple(word, word), { maxLength: 4 }), fc.array(fc.tuple(word, fc.string({ maxLength: 8 })), { maxLength: 4 }), (own, req) => {
      const target = `https://x.test/p${own.length ? `?${own.map(([k, v]) => `${k}=${v}`).join('&')}` : ''}`;
      const rawQuery = req.length ? `?${req.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&')}` : '';
      const merged = new URL(mergeQuery(target, rawQuery));
      for (const [k, v] of own) expect(merged.searchParams.getAll(k)).toContain(v);
      for (const [k, v] of req) if (!own.some(([ok]) => ok === k)) expect(merged.searchParams.getAll(k)).toContain(v);
    }), { numRuns: 300 });
  });
});

describe('image patterns', () => {
  test('Scarf examples', () => {
    const lib = parseImagePattern('library/*');
    expect(matchImagePattern(lib, ['library', 'hello'])).toBe(true);
    expect(matchImagePattern(lib, ['library', 'hello{abc}'])).toBe(true);
    expect(matchImagePattern(lib, ['library'])).toBe(false);
    expect(matchImagePattern(lib, ['library', 'hello', 'world'])).toBe(false);
    expect(matchImagePattern(parseImagePattern('l*n*k*er/d{1,2,3,4,5}'), ['linker', 'd5'])).toBe(true);
    const spaced = parseImagePattern('lin{t, ker}');
    expect(matchImagePattern(spaced, ['lint'])).toBe(true);
    expect(matchImagePattern(spaced, ['lin ker'])).toBe(true);
    expect(matchImagePattern(spaced, ['linker'])).toBe(false);
    expect(matchImagePattern(parseImagePattern('a\\*b'), ['a*b'])).toBe(true);
    expect(matchImagePattern(parseImagePattern('a\\*b'), ['axb'])).toBe(false);
    expect(matchImagePattern(parseImagePattern('x/a.b'), ['x', 'aXb'])).toBe(false); // regex metacharacters are literal
  });

  test('trailing garbage and bad escapes are errors, not silently ignored (a Scarf bug)', () => {
    for (const bad of ['library/*,', 'a\\b', '', 'a//b', 'a/', '{a,b', 'a}', 'a{b/c}']) {
      expect(() => parseImagePattern(bad)).toThrow(ImagePatternError);
    }
  });
});

describe('docker client redirect policy', () => {
  test.each([
    ['docker/24.0.7 go/go1.20.10 os/linux arch/amd64', true],
    ['Docker-Client/19.03.12 (linux)', true],
    ['Watchtower (Docker)', true],
    ['containerd/1.4.8', false], ['containerd/1.4.9', true], ['containerd/1.5.4', false], ['containerd/1.5.5', true],
    ['containerd/1.6.0', true], ['containerd/v1.7.13', true], ['containerd/2.0.2', true], ['containerd/1.3.0', false],
    ['buildkit/v0.12 containerd/v1.7.2', true],
    ['go-containerregistry/v0.21.7', false], ['crane/v0.22.0 go-containerregistry/v0.22.0', true],
    ['kaniko/v1.9.1 go-containerregistry/v0.22.0', false],
    ['skopeo/1.9.3', false], ['containers/5.23.1 (github.com/containers/image)', false], ['cri-o/1.27.1', false], ['crio', false],
    [undefined, false], ['', false], ['curl/8.4.0', false],
  ])('%s -> %s', (ua, expected) => {
    expect(followsRegistryRedirects(ua)).toBe(expected);
  });
});

describe('User-Agent parsing', () => {
  test.each([
    ['docker/24.0.7 go/go1.20.10 git-commit/311b9ff kernel/6.1.0 os/linux arch/arm64 UpstreamClient(Docker-Client/24.0.7 \\(linux\\))', { client_name: 'docker', client_version: '24.0.7', os: 'linux', arch: 'arm64' }],
    ['containerd/v1.7.2', { client_name: 'containerd', client_version: '1.7.2' }],
    ['containers/5.23.1 (github.com/containers/image)', { client_name: 'containers-image', client_version: '5.23.1' }],
    ['skopeo/1.9.3', { client_name: 'skopeo', client_version: '1.9.3' }],
    ['cri-o/1.27.1 go/go1.20.5 os/linux arch/amd64', { client_name: 'cri-o', client_version: '1.27.1', os: 'linux', arch: 'amd64' }],
    ['crane/v0.19.0 go-containerregistry/v0.19.0', { client_name: 'crane', client_version: '0.19.0' }],
    ['pip/23.2.1 {"ci":true,"cpu":"x86_64","distro":{"name":"Debian GNU/Linux","version":"12"},"implementation":{"name":"CPython","version":"3.11.7"},"installer":{"name":"pip","version":"23.2.1"},"system":{"name":"Linux","release":"6.1.0-18-amd64"}}', { client_name: 'pip', client_version: '23.2.1', os: 'linux', arch: 'amd64', ci: true }],
    ['uv/0.4.18 {"installer":{"name":"uv","version":"0.4.18"},"python":"3.12.6","system":{"name":"Darwin","release":"23.6.0"},"cpu":"arm64","ci":null}', { client_name: 'uv', client_version: '0.4.18', os: 'darwin', arch: 'arm64', ci: null }],
    ['pip/9.0.1 {broken json', { client_name: 'pip', client_version: '9.0.1' }],
    ['poetry/1.8.3', { client_name: 'poetry', client_version: '1.8.3' }],
    ['npm/10.2.4 node/v20.11.0 linux x64 workspaces/false ci/github-actions', { client_name: 'npm', client_version: '10.2.4', os: 'linux', arch: 'amd64', ci: true }],
    ['pnpm/8.15.0 npm/? node/v20.11.0 darwin arm64', { client_name: 'pnpm', os: 'darwin', arch: 'arm64', ci: null }],
    ['yarn/1.22.19 npm/? node/v20.11.0 win32 x64', { client_name: 'yarn', os: 'windows', arch: 'amd64' }],
    ['curl/8.4.0', { client_name: 'curl', client_version: '8.4.0' }],
    ['Wget/1.21.3', { client_name: 'wget', client_version: '1.21.3' }],
    ['Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0', { client_name: 'edge', client_version: '120', os: 'windows' }],
    ['Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15', { client_name: 'safari', os: 'darwin' }],
    ['Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0', { client_name: 'firefox', client_version: '121', os: 'linux' }],
  ])('%s', (ua, expected) => {
    expect(parseUserAgent(ua)).toMatchObject({ bot: false, ...expected });
  });

  test('bots and mirrors are tagged', () => {
    for (const ua of ['Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)', 'bandersnatch/6.5.0', 'Artifactory/7.77.5', 'Renovate Bot']) {
      expect(parseUserAgent(ua).bot).toBe(true);
    }
  });

  test('unknown or missing User-Agents give nulls, never throw', () => {
    expect(parseUserAgent(undefined)).toEqual({ client_name: null, client_version: null, os: null, arch: null, ci: null, bot: false });
    fc.assert(fc.property(fc.string({ maxLength: 300 }), (s) => {
      parseUserAgent(s);
    }), { numRuns: 500 });
  });
});

describe('body events', () => {
  test('objects, arrays of objects, commas between values; other values skipped', () => {
    expect(parseBodyEvents(Buffer.from('{ "x": "Hello" }\n{ "y": "World" }')).events).toEqual([{ x: 'Hello' }, { y: 'World' }]);
    expect(parseBodyEvents(Buffer.from('[{"a":1},2,{"b":"}"}],"s",3,{"c":[1,{"d":2}]}')).events).toEqual([{ a: 1 }, { b: '}' }, { c: [1, { d: 2 }] }]);
  });

  test('stops at the first malformed value and says why, keeping what came before', () => {
    const r = parseBodyEvents(Buffer.from('{"a":1} {"b": } {"c":3}'));
    expect(r.events).toEqual([{ a: 1 }]);
    expect(r.stoppedEarly).toMatch(/malformed JSON/);
    expect(parseBodyEvents(Buffer.from([0xff, 0xfe])).stoppedEarly).toMatch(/not UTF-8/);
  });

  test('caps the number of events', () => {
    const r = parseBodyEvents(Buffer.from('{}'.repeat(MAX_BODY_EVENTS + 5)));
    expect(r.events).toHaveLength(MAX_BODY_EVENTS);
    expect(r.stoppedEarly).toMatch(/more than/);
  });
});

describe('visitor ids', () => {
  test('IPv6 addresses count by /64, IPv4-mapped addresses as IPv4', () => {
    expect(networkKey('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(networkKey('2001:db8:1:2::9')).toBe('2001:db8:1:2::/64');
    expect(networkKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(networkKey('::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(networkKey('not an ip')).toBeNull();
  });

  test('same inputs, same id; any change of salt, network, agent or package changes it; the id reveals no address', () => {
    const id = visitorId('salt', '192.0.2.1', 'curl/8', 'd.test', 'p');
    expect(id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(visitorId('salt', '192.0.2.1', 'curl/8', 'd.test', 'p')).toBe(id);
    expect(visitorId('salt2', '192.0.2.1', 'curl/8', 'd.test', 'p')).not.toBe(id);
    expect(visitorId('salt', '192.0.2.2', 'curl/8', 'd.test', 'p')).not.toBe(id);
    expect(visitorId('salt', '192.0.2.1', 'curl/9', 'd.test', 'p')).not.toBe(id);
    expect(visitorId('salt', '192.0.2.1', 'curl/8', 'd.test', 'q')).not.toBe(id);
    expect(visitorId('salt', '2001:db8:1:2::1', 'ua', 'd', 'p')).toBe(visitorId('salt', '2001:db8:1:2:ffff::2', 'ua', 'd', 'p'));
    expect(visitorId('', '192.0.2.1', 'ua', 'd', 'p')).toBeNull();
  });
});

describe('event completion', () => {
  const ctx = {
    domain: 'd.test', method: 'GET', path: '/x', status: 307, time: new Date('2026-11-30T01:02:03.004Z'),
    userAgent: 'curl/8.4.0', origin: null, visitorIdFor: () => 'vid', newId: () => 'id-1',
  };

  test('fills every schema field, and nothing else', () => {
    const [e] = completeEvents([{ kind: 'file', action: 'redirect', countable: true, package_id: 'p', target: 'https://user:secret@x.test/f' }], ctx);
    expect(Object.keys(e).sort()).toEqual([...EVENT_FIELD_NAMES].sort());
    expect(e).toMatchObject({ id: 'id-1', time: '2026-11-30T01:02:03.004Z', download: true, client_name: 'curl', target: 'https://x.test/f', visitor_id: 'vid', variables: {}, country: null });
  });

  test('a countable request is a download only when it succeeded', () => {
    const d = { kind: 'docker' as const, action: 'proxy' as const, countable: true, package_id: 'p' };
    expect([200, 307, 304, 401, 404, 502].map((s) => isDownload(d, s))).toEqual([true, true, false, false, false, false]);
    expect(isDownload({ ...d, countable: false }, 200)).toBe(false);
  });
});

describe('the pixel', () => {
  test('is a valid, fully transparent 1x1 PNG', () => {
    const png = Buffer.from(TRANSPARENT_PNG);
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    expect(png.subarray(12, 16).toString()).toBe('IHDR');
    expect([png.readUInt32BE(16), png.readUInt32BE(20), png[24], png[25]]).toEqual([1, 1, 8, 6]); // 1x1, 8-bit RGBA
    const idatLength = png.readUInt32BE(33);
    expect(png.subarray(37, 41).toString()).toBe('IDAT');
    const pixels = zlib.inflateSync(png.subarray(41, 41 + idatLength));
    expect([...pixels]).toEqual([0, 0, 0, 0, 0]); // filter byte, then R G B A = 0: transparent
  });
});

describe('upstreams', () => {
  test('bare hosts mean https; Docker Hub names go to its registry API host', () => {
    expect(parseUpstream('ghcr.io')).toEqual({ baseUrl: 'https://ghcr.io', host: 'ghcr.io' });
    expect(parseUpstream('registry.local:5000')).toEqual({ baseUrl: 'https://registry.local:5000', host: 'registry.local:5000' });
    expect(parseUpstream('http://127.0.0.1:5000/')).toEqual({ baseUrl: 'http://127.0.0.1:5000', host: '127.0.0.1:5000' });
    expect(parseUpstream('docker.io')).toEqual({ baseUrl: 'https://registry-1.docker.io', host: 'registry-1.docker.io' });
    expect(registryLabel('registry.hub.docker.com')).toBe('registry-1.docker.io');
    expect(registryLabel('docker.io')).toBe('docker.io');
    expect(parseUpstream('not a host')).toHaveProperty('problem');
  });
});

describe('file-v2 regexes', () => {
  test('finds the first non-empty match; groups that did not take part are absent', () => {
    const r = compileFileRegex('(?<a>x*)(?<b>y)?');
    if ('problem' in r) throw new Error(r.problem);
    expect(execFileRegex(r, '/zzxx')).toEqual(new Map([['a', 'xx']]));
    const pcreish = compileFileRegex('/a\\-b/(?<v>\\d+)');
    expect('problem' in pcreish).toBe(false);
    expect(compileFileRegex('(?<v>')).toHaveProperty('problem');
  });
});
