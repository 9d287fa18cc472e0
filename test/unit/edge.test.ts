/**
 * The edge code with CloudFront event shapes: the viewer-request CloudFront Function (run in
 * Node with a stand-in for the `cloudfront` module) and the Lambda@Edge payload hasher.
 */
import { createHash } from 'node:crypto';
import { renderViewerRequestFunction, MAX_FUNCTION_BYTES, type EdgeConfig } from '../../lambda/edge/viewer-request';
import { payloadHashRequest } from '../../lambda/edge/payload-hash';
import { buildEdgeConfig, blobOrigin, redirectsBlobs } from '../../lib/edge-config';
import { nearestGateways } from '../../lib/regions';
import { validateManifest } from '../../lambda/core/validate';
import { originRequestEvent, viewerRequestEvent } from './aws-fixtures';

interface CfCalls {
  updateRequestOrigin: unknown[];
  selectRequestOriginById: unknown[];
  createRequestOriginGroup: unknown[];
}

type Handler = (event: ReturnType<typeof viewerRequestEvent>) => ReturnType<typeof viewerRequestEvent>['request'] & { headers: Record<string, { value: string }> };

/** Loads the function as CloudFront would run it: the `cloudfront` module is supplied from outside. */
function load(config: EdgeConfig, edgeRegion?: string): { handler: Handler; calls: CfCalls } {
  const code = renderViewerRequestFunction(config);
  expect(code.startsWith("import cf from 'cloudfront';\n")).toBe(true);
  const calls: CfCalls = { updateRequestOrigin: [], selectRequestOriginById: [], createRequestOriginGroup: [] };
  const cf = {
    edgeLocation: edgeRegion ? { name: 'FRA56', serverIp: '192.0.2.1', region: edgeRegion } : undefined,
    updateRequestOrigin: (p: unknown) => calls.updateRequestOrigin.push(p),
    selectRequestOriginById: (p: unknown) => calls.selectRequestOriginById.push(p),
    createRequestOriginGroup: (p: unknown) => calls.createRequestOriginGroup.push(p),
  };
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  const handler = new Function('cf', `${code.replace("import cf from 'cloudfront';", '')}\nreturn handler;`)(cf) as Handler;
  return { handler, calls };
}

const rules = (list: unknown[]) => {
  const v = validateManifest({ rules: list });
  if (v.errors.length) throw new Error(JSON.stringify(v.errors));
  return v.rules;
};

const REGIONS = ['us-east-1', 'eu-west-1', 'ap-southeast-2'];
const ORIGINS = REGIONS.map((r) => `gateway-${r}`);
const RULES = rules([
  { type: 'docker-v1', domain: 'cr.example.com', 'repository-name': 'acme/rocket', registry: 'ghcr.io', 'package-id': 'rocket' },
  { type: 'docker-v1', domain: 'cr.example.com', 'repository-name': 'acme/agent', registry: 'https://registry.acme.example.net', 'upstream-repository-name': 'platform/rocket-agent', 'package-id': 'agent' },
  { type: 'docker-v2', domain: 'cr.example.com', pattern: 'internal/*', registry: 'registry.acme.example.net:5443', 'rule-id': 'internal' },
  { type: 'docker-v2', domain: 'cr.example.com', pattern: 'acme/*', registry: 'ghcr.io', 'rule-id': 'acme' },
  { type: 'docker-v1', domain: 'local.example.com', 'repository-name': 'x/y', registry: 'http://127.0.0.1:5000', 'package-id': 'x' },
]);
const { config, skipped } = buildEdgeConfig({ regions: REGIONS, originIds: ORIGINS, rules: RULES, streamingRegistries: null, failoverStatusCodes: [500, 502, 503, 504] });

describe('viewer-request function', () => {
  test('fits CloudFront\'s 10 KB limit with three regions and a blob table', () => {
    expect(Buffer.byteLength(renderViewerRequestFunction(config))).toBeLessThan(MAX_FUNCTION_BYTES);
  });

  test('copies the viewer Host to X-Forwarded-Host, overwriting what the viewer sent', () => {
    const { handler } = load(config, 'eu-central-1');
    const req = handler(viewerRequestEvent({ uri: '/install.sh', host: 'dl.example.com', headers: { 'x-forwarded-host': 'evil.example.org' } }));
    expect(req.headers['x-forwarded-host']).toEqual({ value: 'dl.example.com' });
  });

  test('moves Authorization to the private header, and drops private headers a viewer sent', () => {
    const { handler } = load(config, 'eu-central-1');
    const req = handler(viewerRequestEvent({ uri: '/v2/', host: 'cr.example.com', headers: { authorization: 'Bearer abc', 'x-gateway-raw-path': '/forged' } }));
    expect(req.headers.authorization).toBeUndefined();
    expect(req.headers['x-gateway-authorization']).toEqual({ value: 'Bearer abc' });
    expect(req.headers['x-gateway-raw-path']).toEqual({ value: '/v2/' });
    const anonymous = handler(viewerRequestEvent({ uri: '/v2/', host: 'cr.example.com', headers: { 'x-gateway-authorization': 'Bearer forged' } }));
    expect(anonymous.headers['x-gateway-authorization']).toBeUndefined();
  });

  test('leaves the raw path and query untouched', () => {
    const { handler } = load(config, 'us-east-1');
    const qs = { q: { value: '%2Fa%20b' }, 'x-pxid': { value: 'readme' } };
    const req = handler(viewerRequestEvent({ uri: '/files/a%2Fb%20c.tar.gz', host: 'dl.example.com', querystring: qs }));
    expect(req.uri).toBe('/files/a%2Fb%20c.tar.gz');
    expect(req.querystring).toEqual(qs);
    expect(req.headers['x-gateway-raw-path']).toEqual({ value: '/files/a%2Fb%20c.tar.gz' });
  });

  test.each([
    ['eu-central-1', ['gateway-eu-west-1', 'gateway-us-east-1']],
    ['us-west-2', ['gateway-us-east-1', 'gateway-eu-west-1']],
    // Tokyo: Sydney first; then Ireland (about 9,600 km) before Virginia (about 10,900 km).
    ['ap-northeast-1', ['gateway-ap-southeast-2', 'gateway-eu-west-1']],
    ['eu-west-1', ['gateway-eu-west-1', 'gateway-us-east-1']],
  ])('reads from edge region %s go to the nearest gateway with the next nearest as failover', (edge, ids) => {
    const { handler, calls } = load(config, edge);
    handler(viewerRequestEvent({ uri: '/install.sh', host: 'dl.example.com' }));
    expect(calls.createRequestOriginGroup).toEqual([{ originIds: ids, failoverCriteria: { statusCodes: [500, 502, 503, 504] } }]);
    expect(calls.selectRequestOriginById).toEqual([]);
  });

  test('writes (no origin-group failover for POST) select the nearest gateway alone', () => {
    const { handler, calls } = load(config, 'ap-southeast-2');
    handler(viewerRequestEvent({ method: 'POST', uri: '/events', host: 'dl.example.com' }));
    expect(calls.selectRequestOriginById).toEqual(['gateway-ap-southeast-2']);
    expect(calls.createRequestOriginGroup).toEqual([]);
  });

  test('without edge metadata the viewer location ranks the regions; without either, the configured order', () => {
    const a = load(config);
    a.handler(viewerRequestEvent({ uri: '/x', host: 'dl.example.com', headers: { 'cloudfront-viewer-latitude': '-37.81', 'cloudfront-viewer-longitude': '144.96' } }));
    expect((a.calls.createRequestOriginGroup[0] as { originIds: string[] }).originIds[0]).toBe('gateway-ap-southeast-2');
    const b = load(config);
    b.handler(viewerRequestEvent({ uri: '/x', host: 'dl.example.com' }));
    expect((b.calls.createRequestOriginGroup[0] as { originIds: string[] }).originIds).toEqual(['gateway-us-east-1', 'gateway-eu-west-1']);
  });

  test('one region: a single origin, no group', () => {
    const single = buildEdgeConfig({ regions: ['eu-west-1'], originIds: ['gateway-eu-west-1'], rules: [], streamingRegistries: null, failoverStatusCodes: [500] }).config;
    const { handler, calls } = load(single, 'us-east-1');
    handler(viewerRequestEvent({ uri: '/x', host: 'dl.example.com' }));
    expect(calls.selectRequestOriginById).toEqual(['gateway-eu-west-1']);
  });

  test('blobs of a streaming registry go straight to it (renamed image, Authorization kept, no gateway headers)', () => {
    const { handler, calls } = load(config, 'eu-west-1');
    const req = handler(viewerRequestEvent({ uri: '/v2/acme/agent/blobs/sha256:0123abcd', host: 'cr.example.com', headers: { authorization: 'Bearer t', 'x-forwarded-host': 'x' } }));
    expect(calls.updateRequestOrigin).toEqual([{
      domainName: 'registry.acme.example.net',
      customOriginConfig: { port: 443, protocol: 'https', sslProtocols: ['TLSv1.2'] },
      originAccessControlConfig: { enabled: false },
      customHeaders: {},
    }]);
    expect(req.uri).toBe('/v2/platform/rocket-agent/blobs/sha256:0123abcd');
    expect(req.headers.authorization).toEqual({ value: 'Bearer t' });
    expect(req.headers['x-forwarded-host']).toBeUndefined();
    expect(calls.createRequestOriginGroup).toEqual([]);
  });

  test('pattern rules route by the engine\'s image pattern; the port of the upstream is kept', () => {
    const { handler, calls } = load(config, 'eu-west-1');
    const req = handler(viewerRequestEvent({ method: 'HEAD', uri: '/v2/internal/tools/blobs/sha256:ff', host: 'cr.example.com' }));
    expect(calls.updateRequestOrigin).toEqual([expect.objectContaining({ domainName: 'registry.acme.example.net', customOriginConfig: expect.objectContaining({ port: 5443 }) })]);
    expect(req.uri).toBe('/v2/internal/tools/blobs/sha256:ff');
  });

  test.each([
    ['a redirecting registry (GHCR) leaves blobs to the gateway, which hands back its CDN redirect', 'GET', '/v2/acme/rocket/blobs/sha256:aa'],
    ['manifests always go to the gateway (they are the counted pulls)', 'GET', '/v2/acme/agent/manifests/1.0'],
    ['uploads are not blob reads', 'POST', '/v2/acme/agent/blobs/uploads/'],
    ['an image no rule serves', 'GET', '/v2/other/thing/blobs/sha256:aa'],
  ])('%s', (_name, method, uri) => {
    const { handler, calls } = load(config, 'eu-west-1');
    const req = handler(viewerRequestEvent({ method, uri, host: 'cr.example.com' }));
    expect(calls.updateRequestOrigin).toEqual([]);
    expect(req.headers['x-forwarded-host']).toEqual({ value: 'cr.example.com' });
  });

  test('registries that cannot be CloudFront origins are left to the gateway, with the reason', () => {
    expect(skipped).toEqual([{ registry: 'http://127.0.0.1:5000', problem: expect.stringMatching(/not a DNS name/) }]);
    expect(config.blobs['local.example.com']).toBeUndefined();
  });

  test('an explicit streamingRegistries list replaces the default', () => {
    const only = buildEdgeConfig({ regions: REGIONS, originIds: ORIGINS, rules: RULES, streamingRegistries: ['ghcr.io'], failoverStatusCodes: [500] }).config;
    expect(only.upstreams).toEqual([{ host: 'ghcr.io', port: 443, protocol: 'https', path: '' }]);
    expect(only.blobs['cr.example.com'].images['acme/rocket'][0]).toBe(0);
    expect(only.blobs['cr.example.com'].images['acme/agent'][0]).toBe(-1);
  });
});

describe('edge configuration parts', () => {
  test('known registries redirect blobs; others stream', () => {
    for (const h of ['registry-1.docker.io', 'ghcr.io', 'gcr.io', 'eu.gcr.io', 'europe-docker.pkg.dev', '123456789012.dkr.ecr.eu-west-1.amazonaws.com', 'public.ecr.aws', 'quay.io']) expect(redirectsBlobs(h)).toBe(true);
    for (const h of ['registry.acme.example.net', 'harbor.example.com:8443']) expect(redirectsBlobs(h)).toBe(false);
  });

  test('origins: base URL path, http port; IP addresses and odd ports are refused with a reason', () => {
    expect(blobOrigin('http://mirror.example.com:8080/registry')).toEqual({ host: 'mirror.example.com', port: 8080, protocol: 'http', path: '/registry' });
    expect(blobOrigin('10.0.0.1:5000')).toEqual({ problem: expect.stringMatching(/not a DNS name/) });
    expect(blobOrigin('https://mirror.example.com:444')).toEqual({ problem: expect.stringMatching(/port 444/) });
  });

  test('every gateway region ranks itself first', () => {
    const n = nearestGateways(['eu-west-1', 'us-east-1']);
    expect(n['eu-west-1'][0]).toBe(0);
    expect(n['us-east-1'][0]).toBe(1);
    expect(n['sa-east-1']).toEqual([1, 0]);
  });
});

describe('Lambda@Edge payload hash', () => {
  test('adds the SHA-256 of the (binary) body that origin access control signs', () => {
    const body = Buffer.from([0x7b, 0x22, 0xff, 0x00, 0x7d]);
    const out = payloadHashRequest(originRequestEvent({ method: 'POST', uri: '/events', body })) as { headers: Record<string, Array<{ value: string }>>; uri: string; querystring: string };
    expect(out.headers['x-amz-content-sha256']).toEqual([{ key: 'x-amz-content-sha256', value: createHash('sha256').update(body).digest('hex') }]);
    expect(out.uri).toBe('/events');
    expect(out.querystring).toBe('a=1');
  });

  test('an empty body hashes to the empty-string digest', () => {
    const out = payloadHashRequest(originRequestEvent({ method: 'GET', uri: '/events' })) as { headers: Record<string, Array<{ value: string }>> };
    expect(out.headers['x-amz-content-sha256'][0].value).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });

  test('a body larger than Lambda@Edge can see is refused with 413 instead of a wrong signature', () => {
    const out = payloadHashRequest(originRequestEvent({ method: 'POST', uri: '/events', body: Buffer.alloc(10), truncated: true })) as { status: string };
    expect(out.status).toBe('413');
  });
});
