/**
 * Event content: clients parsed from real User-Agents, coarse origin from CloudFront viewer
 * headers, counting rules, the table derived from the event schema, and the daily salt.
 */
import { parseUserAgent } from '../../lambda/core/user-agent';
import { cloudFrontViewerIp, viewerOrigin } from '../../lambda/core/viewer-origin';
import { ASN_ORGANIZATIONS, organizationOfAsn } from '../../lambda/core/asn-organizations';
import { EVENT_FIELDS, EVENT_FIELD_NAMES, type GatewayEvent } from '../../lambda/core/events';
import { glueColumns, tableRow, duckdbColumns, partitionProjection, PARTITION_KEYS, FIREHOSE_PARTITIONING } from '../../lambda/core/event-table';
import { rangeStartsAtZero } from '../../lambda/core/files';
import { completeEvents } from '../../lambda/core/complete-event';
import { visitorId } from '../../lambda/core/visitor';
import { DailySaltCache, type DailySaltStore } from '../../lambda/analytics/daily-salt';
import { InMemorySaltStore } from '../../lambda/local/daily-salt';
import { handle, ruleSet } from './helpers';

describe('User-Agent parsing: every client the gateway serves', () => {
  test.each([
    // Observed from the real clients (Debian 12 packages, npm 11, pip 23).
    ['Buildah/1.28.2', { client_name: 'buildah', client_version: '1.28.2' }],
    ['containers/5.23.1 (github.com/containers/image)', { client_name: 'containers-image', client_version: '5.23.1' }],
    ['skopeo/1.9.3', { client_name: 'skopeo', client_version: '1.9.3' }],
    ['npm/11.19.1 node/v20.20.2 linux x64 workspaces/false', { client_name: 'npm', client_version: '11.19.1', os: 'linux', arch: 'amd64', ci: null }],
    ['Wget/1.21.3', { client_name: 'wget', client_version: '1.21.3' }],
    ['curl/7.88.1', { client_name: 'curl', client_version: '7.88.1' }],
    // Documented formats of the others.
    ['docker/28.2.2 go/go1.24.3 git-commit/e6534b4 kernel/6.1.0 os/linux arch/amd64 UpstreamClient(Docker-Client/28.2.2 \\(linux\\))', { client_name: 'docker', client_version: '28.2.2', os: 'linux', arch: 'amd64' }],
    ['containerd/v2.0.2', { client_name: 'containerd', client_version: '2.0.2' }],
    ['buildkit/v0.12.4', { client_name: 'buildkit', client_version: '0.12.4' }],
    ['cri-o/1.29.0 go/go1.21.7 os/linux arch/arm64', { client_name: 'cri-o', client_version: '1.29.0', os: 'linux', arch: 'arm64' }],
    ['crane/v0.20.2 go-containerregistry/v0.20.2', { client_name: 'crane', client_version: '0.20.2' }],
    ['go-containerregistry/v0.20.2', { client_name: 'go-containerregistry', client_version: '0.20.2' }],
    ['kaniko/v1.23.2 go-containerregistry/v0.19.1', { client_name: 'kaniko', client_version: '1.23.2' }],
    ['poetry/1.8.3 CPython/3.11.9 Linux/6.5.0-1025-azure', { client_name: 'poetry', client_version: '1.8.3', os: 'linux' }],
    ['uv/0.5.11 {"installer":{"name":"uv","version":"0.5.11"},"python":"3.12.8","implementation":{"name":"CPython","version":"3.12.8"},"distro":{"name":"Ubuntu","version":"24.04","id":"noble","libc":{"lib":"glibc","version":"2.39"}},"system":{"name":"Linux","release":"6.8.0-1017-azure"},"cpu":"x86_64","openssl_version":null,"setuptools_version":null,"rustc_version":null,"ci":true}', { client_name: 'uv', client_version: '0.5.11', os: 'linux', arch: 'amd64', ci: true }],
    ['pnpm/9.15.0 npm/? node/v22.12.0 darwin arm64', { client_name: 'pnpm', client_version: '9.15.0', os: 'darwin', arch: 'arm64' }],
    ['yarn/4.5.3 npm/? node/v22.12.0 linux x64', { client_name: 'yarn', client_version: '4.5.3', os: 'linux', arch: 'amd64' }],
    ['Bun/1.1.38', { client_name: 'bun', client_version: '1.1.38' }],
    ['Homebrew/4.4.15 (Macintosh; arm64 Mac OS X 15.2) curl/8.7.1', { client_name: 'homebrew', client_version: '4.4.15', os: 'darwin', arch: 'arm64' }],
    ['Helm/3.16.3', { client_name: 'helm', client_version: '3.16.3' }],
    ['Mozilla/5.0 (Windows NT; Windows NT 10.0; en-US) WindowsPowerShell/5.1.22621.4391', { client_name: 'powershell', client_version: '5', os: 'windows' }],
    ['Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36', { client_name: 'chrome', client_version: '131', os: 'android' }],
    ['Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1', { client_name: 'safari', client_version: '18', os: 'ios' }],
    ['Python-urllib/3.11', { client_name: 'python-urllib', client_version: '3.11' }],
  ])('%s', (ua, expected) => {
    expect(parseUserAgent(ua)).toMatchObject({ bot: false, ...expected });
  });

  test.each([
    ['Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)', 'googlebot'],
    ['Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)', 'gptbot'],
    ['bandersnatch/6.5.0 (CPython 3.11.6-final0, Linux x86_64) (aiohttp 3.9.1)', 'bandersnatch'],
    ['devpi-server/6.10.0 (py3.11.4; linux)', 'devpi'],
    ['Artifactory/7.77.5 77705900', 'artifactory'],
    ['Nexus/3.61.0-02 (PRO; Linux; 5.15.0; amd64; 17.0.8)', 'nexus'],
    ['Renovate Bot', 'renovate'],
    ['dependabot-core/0.268.0 excon/0.109.0 ruby/3.1.4 (x86_64-linux) (+https://github.com/dependabot/dependabot-core)', 'dependabot'],
    ['kube-probe/1.29', 'kube-probe'],
    ['Blackbox Exporter/0.25.0', 'blackbox-exporter'],
    ['Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36', 'headless-chrome'],
  ])('%s is a bot: %s', (ua, name) => {
    expect(parseUserAgent(ua)).toMatchObject({ bot: true, client_name: name });
  });

  test('an unknown client that calls itself a crawler is tagged, without a name', () => {
    expect(parseUserAgent('SomeCrawler (+https://example.test)')).toMatchObject({ bot: true, client_name: null });
  });

  test('fingerprinting detail is dropped: only the coarse fields of a pip User-Agent remain', () => {
    const pip = 'pip/23.2.1 {"ci":null,"cpu":"x86_64","distro":{"id":"bookworm","libc":{"lib":"glibc","version":"2.36"},"name":"Debian GNU/Linux","version":"12"},"implementation":{"name":"CPython","version":"3.11.7"},"installer":{"name":"pip","version":"23.2.1"},"openssl_version":"OpenSSL 3.0.19 27 Jan 2026","python":"3.11.7","rustc_version":"1.95.0","setuptools_version":"65.5.0","system":{"name":"Linux","release":"6.18.44-fc-v669"}}';
    const parsed = parseUserAgent(pip);
    expect(parsed).toEqual({ client_name: 'pip', client_version: '23.2.1', os: 'linux', arch: 'amd64', ci: null, bot: false });
    expect(JSON.stringify(parsed)).not.toMatch(/bookworm|glibc|6\.18|OpenSSL|rustc|3\.11\.7/);
  });
});

describe('coarse origin from CloudFront viewer headers', () => {
  const cf = { 'cloudfront-viewer-country': 'DE', 'cloudfront-viewer-country-region': 'BY', 'cloudfront-viewer-asn': '16509', 'cloudfront-viewer-address': '198.51.100.7:46532' };

  test('trusted (deployed behind CloudFront): country, ISO 3166-2 region, ASN and the organisation the table names', () => {
    expect(viewerOrigin(cf, { trusted: true })).toEqual({ country: 'DE', region: 'DE-BY', asn: '16509', org: 'Amazon' });
    expect(viewerOrigin({ ...cf, 'cloudfront-viewer-asn': '3320' }, { trusted: true }).org).toBeNull();
  });

  test('not trusted (the local gateway by default): nothing, whatever the client sends', () => {
    expect(viewerOrigin(cf, { trusted: false })).toEqual({ country: null, region: null, asn: null, org: null });
    expect(cloudFrontViewerIp(cf, { trusted: false })).toBeNull();
  });

  test('X-Forwarded-For and other client headers never change the origin', () => {
    const withXff = { ...cf, 'x-forwarded-for': '203.0.113.9, 10.0.0.1', forwarded: 'for=203.0.113.9', 'x-real-ip': '203.0.113.9' };
    expect(viewerOrigin(withXff, { trusted: true })).toEqual(viewerOrigin(cf, { trusted: true }));
    expect(cloudFrontViewerIp(withXff, { trusted: true })).toBe('198.51.100.7');
    expect(viewerOrigin({ 'x-forwarded-for': '203.0.113.9' }, { trusted: true })).toEqual({ country: null, region: null, asn: null, org: null });
  });

  test('malformed values are dropped, not recorded', () => {
    expect(viewerOrigin({ 'cloudfront-viewer-country': 'Germany', 'cloudfront-viewer-country-region': 'BY', 'cloudfront-viewer-asn': '16509; drop table' }, { trusted: true }))
      .toEqual({ country: null, region: null, asn: null, org: null });
    expect(viewerOrigin({ 'cloudfront-viewer-country': 'us', 'cloudfront-viewer-country-region': 'wa' }, { trusted: true })).toMatchObject({ country: 'US', region: 'US-WA' });
  });

  test('the viewer address: IPv4 and IPv6 with the port CloudFront appends', () => {
    expect(cloudFrontViewerIp({ 'cloudfront-viewer-address': '2001:db8:85a3::8a2e:370:7334:46532' }, { trusted: true })).toBe('2001:db8:85a3::8a2e:370:7334');
    expect(cloudFrontViewerIp({ 'cloudfront-viewer-address': 'nonsense:1' }, { trusted: true })).toBeNull();
  });

  test('the ASN table is data: decimal ASNs to names, cloud providers included', () => {
    for (const [asn, org] of Object.entries(ASN_ORGANIZATIONS)) {
      expect(asn).toMatch(/^[1-9]\d*$/);
      expect(org.length).toBeGreaterThan(1);
    }
    expect(organizationOfAsn('8075')).toBe('Microsoft');
    expect(organizationOfAsn('constructor')).toBeNull();
    expect(organizationOfAsn(null)).toBeNull();
  });
});

describe('counting rules', () => {
  const set = ruleSet([
    { type: 'file-v1', domain: 'get.test', 'package-id': 'rocket', 'incoming-path': '/rocket/{version}/rocket.tgz', 'outgoing-url': 'https://files.test/{version}/rocket.tgz' },
    { type: 'python-v1', domain: 'py.test', 'package-id': 'rocket-py', 'package-name': 'rocket', 'file-name': 'rocket-1.0-py3-none-any.whl', version: '1.0', 'backend-url': 'https://files.test/rocket.whl' },
    { type: 'docker-v1', domain: 'cr.test', 'package-id': 'img', 'repository-name': 'acme/rocket', registry: 'ghcr.io' },
  ]);
  const countable = (host: string, path: string, method = 'GET', headers: Record<string, string> = {}) => handle(set, host, path, { method, headers }).events.map((e) => e.countable);

  test.each([
    ['file GET', 'get.test', '/rocket/1.0/rocket.tgz', 'GET', {}, [true]],
    ['file HEAD', 'get.test', '/rocket/1.0/rocket.tgz', 'HEAD', {}, [false]],
    ['file GET from the first byte', 'get.test', '/rocket/1.0/rocket.tgz', 'GET', { range: 'bytes=0-' }, [true]],
    ['file GET of a later part (resume, segmented download)', 'get.test', '/rocket/1.0/rocket.tgz', 'GET', { range: 'bytes=1048576-' }, [false]],
    ['python file GET', 'py.test', '/simple/rocket/rocket-1.0-py3-none-any.whl', 'GET', {}, [true]],
    ['python file Range (metadata read)', 'py.test', '/simple/rocket/rocket-1.0-py3-none-any.whl', 'GET', { range: 'bytes=-8192' }, [false]],
    ['python index page', 'py.test', '/simple/rocket/', 'GET', {}, [false]],
    ['docker manifest GET', 'cr.test', '/v2/acme/rocket/manifests/1.0', 'GET', {}, [true]],
    ['docker manifest HEAD', 'cr.test', '/v2/acme/rocket/manifests/1.0', 'HEAD', {}, [false]],
    ['docker blob GET', 'cr.test', '/v2/acme/rocket/blobs/sha256:abc', 'GET', {}, [false]],
    ['not found', 'get.test', '/nope', 'GET', {}, [false]],
  ])('%s', (_what, host, path, method, headers, expected) => {
    expect(countable(host, path, method, headers)).toEqual(expected);
  });

  test('a countable request counts only when it succeeded (2xx or redirect, not 304)', () => {
    const drafts = handle(set, 'cr.test', '/v2/acme/rocket/manifests/1.0').events;
    const complete = (status: number) => completeEvents(drafts, {
      domain: 'cr.test', method: 'GET', path: '/v2/acme/rocket/manifests/1.0', status, time: new Date(), userAgent: undefined,
      origin: null, visitorIdFor: () => null, newId: () => 'x',
    })[0].download;
    expect([200, 307, 304, 401, 404, 429, 502].map(complete)).toEqual([true, true, false, false, false, false, false]);
  });

  test.each([
    ['a client token in the query', '/dl/1.0?access_token=SECRET1&lang=en', 'https://f.test/1.0?access_token=redacted&lang=en'],
    ['signed-URL parameters, any case, encoded names (the engine writes them decoded)', '/dl/1.0?X-Amz-Signature=SECRET2&X-Amz-Credential=SECRET3&x%2Damz%2Dsecurity%2Dtoken=SECRET4', 'https://f.test/1.0?X-Amz-Signature=redacted&X-Amz-Credential=redacted&x-amz-security-token=redacted'],
    ['names ending in token/secret/password', '/dl/1.0?gh_token=SECRET5&my_secret=SECRET6&user_password=SECRET7&q=ok', 'https://f.test/1.0?gh_token=redacted&my_secret=redacted&user_password=redacted&q=ok'],
    ['ordinary parameters stay', '/dl/1.0?q=hello%20world&tokens_left=3x', 'https://f.test/1.0?q=hello%20world&tokens_left=3x'],
  ])('event targets keep no credential-like query values: %s (the redirect itself keeps them)', (_what, target, recorded) => {
    const rules = ruleSet([{ type: 'file-v1', domain: 'get.test', 'package-id': 'rocket', 'incoming-path': '/dl/{version}', 'outgoing-url': 'https://f.test/{version}' }]);
    const outcome = handle(rules, 'get.test', target);
    const [event] = completeEvents(outcome.events, {
      domain: 'get.test', method: 'GET', path: '/dl/1.0', status: 307, time: new Date(), userAgent: undefined, origin: null, visitorIdFor: () => null, newId: () => 'x',
    });
    expect(event.target).toBe(recorded);
    expect(JSON.stringify(event)).not.toMatch(/SECRET/);
    // The client still gets every parameter it sent.
    const location = outcome.decision.type === 'redirect' ? outcome.decision.location : '';
    for (const secret of target.match(/SECRET\d/g) ?? []) expect(location).toContain(secret);
  });

  test('Range helper', () => {
    expect(['bytes=0-', 'bytes=0-1023', ' bytes = 0 - ', undefined].map(rangeStartsAtZero)).toEqual([true, true, true, true]);
    expect(['bytes=1-', 'bytes=-500', 'bytes=100-200'].map(rangeStartsAtZero)).toEqual([false, false, false]);
  });
});

describe('the table derived from the event schema (Glue, Firehose, DuckDB)', () => {
  const sample: GatewayEvent = completeEvents(
    handle(ruleSet([{ type: 'file-v1', domain: 'get.test', 'package-id': 'rocket', 'incoming-path': '/r/{version}', 'outgoing-url': 'https://f.test/{version}' }]), 'get.test', '/r/1.0').events,
    { domain: 'get.test', method: 'GET', path: '/r/1.0', status: 307, time: new Date('2024-05-01T10:00:00Z'), userAgent: 'curl/8.4.0', origin: null, visitorIdFor: () => 'v', newId: () => 'id' },
  )[0];

  test('Glue columns are exactly the event fields, in order, with their types', () => {
    expect(glueColumns().map((c) => c.name)).toEqual(EVENT_FIELD_NAMES);
    const expectedType = { string: 'string', boolean: 'boolean', int: 'int', json: 'string' } as const;
    expect(glueColumns().map((c) => c.type)).toEqual(Object.values(EVENT_FIELDS).map((f) => expectedType[f.type]));
    for (const c of glueColumns()) expect(c.comment.length).toBeLessThanOrEqual(255);
  });

  test('a completed event has exactly the Glue columns, and so has its Firehose row', () => {
    expect(Object.keys(sample).sort()).toEqual(glueColumns().map((c) => c.name).sort());
    expect(Object.keys(tableRow(sample))).toEqual(glueColumns().map((c) => c.name));
  });

  test('JSON fields are JSON text in the row; every other value is unchanged', () => {
    const row = tableRow({ ...sample, body_event: { a: [1, 2] } });
    expect(row.variables).toBe('{"version":"1.0"}');
    expect(row.body_event).toBe('{"a":[1,2]}');
    expect(tableRow(sample).body_event).toBeNull();
    for (const c of glueColumns()) {
      if (EVENT_FIELDS[c.name as keyof typeof EVENT_FIELDS].type !== 'json') expect(row[c.name]).toEqual((sample as unknown as Record<string, unknown>)[c.name]);
    }
  });

  test('DuckDB reads the same columns; dt is the only partition key and the Firehose jq derives it from time', () => {
    expect(Object.keys(duckdbColumns())).toEqual(EVENT_FIELD_NAMES);
    expect(PARTITION_KEYS.map((k) => k.name)).toEqual(['dt']);
    expect(FIREHOSE_PARTITIONING.jqQuery).toBe('{dt: .time[0:10]}');
    expect(sample.time.slice(0, 10)).toBe('2024-05-01');
  });

  test('partition projection parameters', () => {
    expect(partitionProjection('s3://bucket/events/', '2024-01-01')).toMatchObject({
      'projection.enabled': 'true', 'projection.dt.type': 'date', 'projection.dt.format': 'yyyy-MM-dd',
      'projection.dt.range': '2024-01-01,NOW', 'storage.location.template': 's3://bucket/events/dt=${dt}/',
    });
    expect(() => partitionProjection('bucket/events', '2024-01-01')).toThrow(/s3:\/\/ URL ending with "\/"/);
    expect(() => partitionProjection('s3://b/e/', 'May 1')).toThrow(/YYYY-MM-DD/);
  });
});

describe('the daily salt', () => {
  test('in memory: one salt per UTC day, stable within the day, older than yesterday deleted', async () => {
    const store = new InMemorySaltStore();
    const d1 = await store.saltFor('2024-05-01');
    expect(await store.saltFor('2024-05-01')).toBe(d1);
    const d2 = await store.saltFor('2024-05-02');
    expect(d2).not.toBe(d1);
    expect(store.days()).toEqual(['2024-05-01', '2024-05-02']);
    await store.saltFor('2024-05-03');
    expect(store.days()).toEqual(['2024-05-02', '2024-05-03']);
    await expect(store.saltFor('yesterday')).rejects.toThrow(/YYYY-MM-DD/);
  });

  test('the cache asks the store once per day, shares a load, and forgets yesterday at midnight', async () => {
    const asked: string[] = [];
    const store: DailySaltStore = { saltFor: async (day) => (asked.push(day), `salt-of-${day}-padding`) };
    const cache = new DailySaltCache(store);
    const [a, b] = await Promise.all([cache.current(new Date('2024-05-01T23:59:59.999Z')), cache.current(new Date('2024-05-01T10:00:00Z'))]);
    expect(a).toBe('salt-of-2024-05-01-padding');
    expect(b).toBe(a);
    expect(await cache.current(new Date('2024-05-02T00:00:00.000Z'))).toBe('salt-of-2024-05-02-padding');
    expect(asked).toEqual(['2024-05-01', '2024-05-02']);
  });

  test('two gateways (regions) sharing one store give the same visitor id on a day, another one the next day', async () => {
    const store = new InMemorySaltStore();
    const euWest = new DailySaltCache(store);
    const usEast = new DailySaltCache(store);
    const day1 = new Date('2024-05-01T12:00:00Z');
    const id = (salt: string | null) => visitorId(salt!, '2001:db8:1:2::7', 'pip/24.0', 'py.test', 'rocket');
    expect(id(await euWest.current(day1))).toBe(id(await usEast.current(day1)));
    // The same /64 network counts as the same visitor.
    expect(visitorId((await euWest.current(day1))!, '2001:db8:1:2:ffff::1', 'pip/24.0', 'py.test', 'rocket')).toBe(id(await euWest.current(day1)));
    expect(id(await euWest.current(new Date('2024-05-02T12:00:00Z')))).not.toBe(id(await euWest.current(day1)));
  });

  test('a failing store means no visitor id (not a made-up one), one error message, and a retry later', async () => {
    let now = 1_000;
    let fail = true;
    const errors: string[] = [];
    const store: DailySaltStore = { saltFor: async () => { if (fail) throw new Error('ProvisionedThroughputExceededException'); return 'a-good-salt-value-1234'; } };
    const cache = new DailySaltCache(store, { retryAfterMs: 5_000, now: () => now, onError: (m) => errors.push(m) });
    const t = new Date('2024-05-01T12:00:00Z');
    expect(await cache.current(t)).toBeNull();
    expect(await cache.current(t)).toBeNull();
    expect(errors).toEqual(['visitor-id salt unavailable, events carry no visitor_id until it is: ProvisionedThroughputExceededException']);
    fail = false;
    expect(await cache.current(t)).toBeNull(); // still backing off
    now += 5_001;
    expect(await cache.current(t)).toBe('a-good-salt-value-1234');
  });
});
