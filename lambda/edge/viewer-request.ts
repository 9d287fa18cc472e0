/**
 * The CloudFront Function (JavaScript runtime 2.0, viewer request) in front of the gateway, and
 * the configuration the construct renders into it. docs/ARCHITECTURE.md explains why this is a
 * CloudFront Function rather than Lambda@Edge.
 *
 * For every request it:
 * 1. drops the private headers if a viewer sent them (only this function may set them);
 * 2. for a blob GET/HEAD of an image whose upstream registry streams blob bytes itself, points
 *    the request at that registry (CloudFront fetches the bytes; they never pass through Lambda),
 *    leaving Authorization in place and rewriting the image path when the upstream names it
 *    differently;
 * 3. otherwise copies the viewer's Host to X-Forwarded-Host (overwriting whatever the viewer
 *    sent), the raw path to X-Gateway-Raw-Path, moves Authorization to X-Gateway-Authorization
 *    (origin access control overwrites Authorization with its signature), and picks the nearest
 *    regional gateway, with the next nearest as failover for GET/HEAD/OPTIONS (CloudFront origin
 *    groups fail over on connection errors, timeouts and 500/502/503/504).
 *
 * The function never reads or logs the viewer's address.
 */

/** Settings rendered into the function at synth time. */
export interface EdgeConfig {
  /** Origin ids of the regional gateways (distribution origins with origin access control), one per region. */
  readonly origins: readonly string[];
  /** For each AWS region code (CloudFront's regional edge cache), indexes into `origins`, nearest first. */
  readonly nearest: Readonly<Record<string, readonly number[]>>;
  /** [latitude, longitude] of each gateway region, or null when unknown: ranks by the viewer's location when the edge's region is unknown. */
  readonly coordinates: ReadonlyArray<readonly [number, number] | null>;
  /** Origin statuses that make CloudFront try the next gateway. */
  readonly failoverStatusCodes: readonly number[];
  /** Registries that serve blob bytes themselves, as CloudFront origins. */
  readonly upstreams: ReadonlyArray<{ readonly host: string; readonly port: number; readonly protocol: 'http' | 'https'; readonly path: string }>;
  /**
   * Per domain: docker images and patterns, in the engine's precedence order, each with the index
   * of its upstream in `upstreams` (-1: the gateway function handles its blobs) and, for exact
   * images, the upstream's name for the image when it differs (raw, percent-encoded).
   */
  readonly blobs: Readonly<Record<string, {
    readonly images: Readonly<Record<string, readonly [number, string | null]>>;
    readonly patterns: ReadonlyArray<readonly [readonly string[], number]>;
  }>>;
}

export const CONFIG_PLACEHOLDER = '__GATEWAY_EDGE_CONFIG__';

/** The function's source; `renderViewerRequestFunction` substitutes the configuration. */
export const VIEWER_REQUEST_SOURCE = `import cf from 'cloudfront';

var CONFIG = ${CONFIG_PLACEHOLDER};
var READS = { GET: true, HEAD: true, OPTIONS: true };
var ENDPOINTS = { manifests: true, blobs: true, tags: true, referrers: true };

function distance(a, b) {
  var r = Math.PI / 180;
  var dLat = (b[0] - a[0]) * r, dLon = (b[1] - a[1]) * r;
  var h = Math.sin(dLat / 2) * Math.sin(dLat / 2) + Math.cos(a[0] * r) * Math.cos(b[0] * r) * Math.sin(dLon / 2) * Math.sin(dLon / 2);
  return Math.atan2(Math.sqrt(h), Math.sqrt(1 - h));
}

function regionOrder(headers) {
  var edge = cf.edgeLocation && cf.edgeLocation.region;
  if (edge && CONFIG.nearest[edge]) return CONFIG.nearest[edge];
  var all = [];
  for (var i = 0; i < CONFIG.origins.length; i++) all.push(i);
  var lat = headers['cloudfront-viewer-latitude'], lon = headers['cloudfront-viewer-longitude'];
  var here = lat && lon ? [parseFloat(lat.value), parseFloat(lon.value)] : null;
  if (!here || isNaN(here[0]) || isNaN(here[1])) return all;
  return all.sort(function (x, y) {
    var cx = CONFIG.coordinates[x], cy = CONFIG.coordinates[y];
    var dx = cx ? distance(here, cx) : 10, dy = cy ? distance(here, cy) : 10;
    return dx === dy ? x - y : dx - dy;
  });
}

function decode(segment) {
  try { return decodeURIComponent(segment); } catch (e) { return null; }
}

function blobRoute(host, method, uri) {
  if (method !== 'GET' && method !== 'HEAD') return null;
  var domain = CONFIG.blobs[host] || CONFIG.blobs[host.replace(/:\\d+$/, '')];
  if (!domain) return null;
  var raw = uri.split('/');
  if (raw[1] !== 'v2') return null;
  var k = -1;
  for (var i = 3; i < raw.length - 1; i++) {
    if (ENDPOINTS[raw[i]]) { k = i; break; }
  }
  if (k < 0 || raw[k] !== 'blobs' || raw[k + 1].indexOf(':') < 0) return null;
  var image = [];
  for (var j = 2; j < k; j++) {
    var s = decode(raw[j]);
    if (s === null) return null;
    image.push(s);
  }
  var exact = domain.images[image.join('/')];
  var upstream = -1, rename = null;
  if (exact) {
    upstream = exact[0];
    rename = exact[1];
  } else {
    for (var p = 0; p < domain.patterns.length; p++) {
      var segs = domain.patterns[p][0];
      if (segs.length !== image.length) continue;
      var ok = true;
      for (var q = 0; q < segs.length && ok; q++) ok = new RegExp(segs[q]).test(image[q]);
      if (ok) { upstream = domain.patterns[p][1]; break; }
    }
  }
  if (upstream < 0) return null;
  return { upstream: CONFIG.upstreams[upstream], uri: rename ? '/v2/' + rename + '/' + raw.slice(k).join('/') : null };
}

function handler(event) {
  var request = event.request;
  var headers = request.headers;
  delete headers['x-gateway-authorization'];
  delete headers['x-gateway-raw-path'];
  var host = headers.host ? headers.host.value : '';
  var direct = blobRoute(host.toLowerCase(), request.method, request.uri);
  if (direct) {
    // CloudFront fetches the blob from the registry itself: no gateway hop, no origin signature.
    delete headers['x-forwarded-host'];
    var origin = {
      domainName: direct.upstream.host,
      customOriginConfig: { port: direct.upstream.port, protocol: direct.upstream.protocol, sslProtocols: ['TLSv1.2'] },
      originAccessControlConfig: { enabled: false },
      customHeaders: {},
    };
    if (direct.upstream.path) origin.originPath = direct.upstream.path;
    cf.updateRequestOrigin(origin);
    if (direct.uri) request.uri = direct.uri;
    return request;
  }
  headers['x-forwarded-host'] = { value: host };
  headers['x-gateway-raw-path'] = { value: request.uri };
  if (headers.authorization) {
    headers['x-gateway-authorization'] = { value: headers.authorization.value };
    delete headers.authorization;
  }
  var order = regionOrder(headers);
  if (order.length > 1 && READS[request.method]) {
    cf.createRequestOriginGroup({
      originIds: [CONFIG.origins[order[0]], CONFIG.origins[order[1]]],
      failoverCriteria: { statusCodes: CONFIG.failoverStatusCodes },
    });
  } else {
    cf.selectRequestOriginById(CONFIG.origins[order[0]]);
  }
  return request;
}
`;

/** CloudFront Functions are limited to 10 KB of code. */
export const MAX_FUNCTION_BYTES = 10 * 1024;

export function renderViewerRequestFunction(config: EdgeConfig): string {
  const json = JSON.stringify(config);
  // A replacer function: the JSON holds regular expressions whose `$` must stay literal.
  return VIEWER_REQUEST_SOURCE.replace(CONFIG_PLACEHOLDER, () => json);
}
