/**
 * The configuration rendered into the viewer-request CloudFront Function: which gateway origin
 * serves which part of the world, and which docker blobs CloudFront fetches straight from the
 * upstream registry. Built from the validated rules with the engine's own compiler, so the edge
 * follows the same image precedence as the gateway.
 */
import { compileRules } from '../lambda/core/compile';
import type { Rule } from '../lambda/core/schema';
import { parseUpstream } from '../lambda/core/upstream';
import type { EdgeConfig } from '../lambda/edge/viewer-request';
import { nearestGateways, REGION_COORDINATES } from './regions';

/**
 * Registries known to answer blob requests with a redirect to their CDN or object storage: the
 * gateway hands that redirect back, so blob bytes never pass through it.
 */
const REDIRECTING_REGISTRIES = [
  /^registry-1\.docker\.io$/, /^ghcr\.io$/, /^(.+\.)?gcr\.io$/, /^.+-docker\.pkg\.dev$/, /^\d+\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com$/,
  /^public\.ecr\.aws$/, /^quay\.io$/, /^mcr\.microsoft\.com$/, /^registry\.gitlab\.com$/, /^nvcr\.io$/, /^registry\.k8s\.io$/,
];

export function redirectsBlobs(host: string): boolean {
  const h = host.toLowerCase().replace(/:\d+$/, '');
  return REDIRECTING_REGISTRIES.some((re) => re.test(h));
}

const HOSTNAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$/;

/** A CloudFront custom origin for an upstream, or the reason it cannot be one. */
export function blobOrigin(upstream: string): { host: string; port: number; protocol: 'http' | 'https'; path: string } | { problem: string } {
  const u = parseUpstream(upstream);
  if ('problem' in u) return { problem: u.problem };
  const url = new URL(u.baseUrl);
  if (!HOSTNAME.test(url.hostname)) return { problem: `${url.hostname} is not a DNS name (CloudFront origins cannot be IP addresses or single labels)` };
  const protocol = url.protocol === 'http:' ? 'http' : 'https';
  const port = url.port ? Number(url.port) : protocol === 'http' ? 80 : 443;
  if (port !== 80 && port !== 443 && (port < 1024 || port > 65535)) return { problem: `port ${port}: CloudFront origins use 80, 443 or 1024-65535` };
  return { host: url.hostname, port, protocol, path: url.pathname === '/' ? '' : url.pathname };
}

export interface EdgeConfigInput {
  readonly regions: readonly string[];
  readonly originIds: readonly string[];
  readonly rules: readonly Rule[];
  /** Registries whose blobs CloudFront fetches directly (host or base URL as rules write them); null: every registry not known to redirect. */
  readonly streamingRegistries: readonly string[] | null;
  readonly failoverStatusCodes: readonly number[];
}

export interface EdgeConfigResult {
  readonly config: EdgeConfig;
  /** Registries left to the gateway function, and why (for a synth warning). */
  readonly skipped: Array<{ registry: string; problem: string }>;
}

export function buildEdgeConfig(input: EdgeConfigInput): EdgeConfigResult {
  const streaming = input.streamingRegistries === null
    ? null
    : new Set(input.streamingRegistries.map((r) => {
      const u = parseUpstream(r);
      return 'problem' in u ? r.toLowerCase() : u.host;
    }));
  const upstreams: Array<EdgeConfig['upstreams'][number]> = [];
  const upstreamIndex = new Map<string, number>();
  const skipped: EdgeConfigResult['skipped'] = [];
  const indexOf = (baseUrl: string, host: string, label: string): number => {
    const wanted = streaming === null ? !redirectsBlobs(host) : streaming.has(host);
    if (!wanted) return -1;
    const known = upstreamIndex.get(baseUrl);
    if (known !== undefined) return known;
    const origin = blobOrigin(baseUrl);
    if ('problem' in origin) {
      if (!skipped.some((s) => s.registry === label)) skipped.push({ registry: label, problem: origin.problem });
      upstreamIndex.set(baseUrl, -1);
      return -1;
    }
    upstreams.push(origin);
    upstreamIndex.set(baseUrl, upstreams.length - 1);
    return upstreams.length - 1;
  };
  const blobs: Record<string, { images: Record<string, [number, string | null]>; patterns: Array<[string[], number]> }> = {};
  for (const [domain, index] of compileRules(input.rules).domains) {
    if (!index.docker) continue;
    const images: Record<string, [number, string | null]> = {};
    for (const [name, t] of index.docker.images) images[name] = [indexOf(t.upstream.baseUrl, t.upstream.host, t.label), t.upstreamPath];
    const patterns = index.docker.patterns.map((p): [string[], number] => [
      p.pattern.segments.map((re) => re.source),
      indexOf(p.target.upstream.baseUrl, p.target.upstream.host, p.target.label),
    ]);
    // Only domains with a direct route need the table; the engine's precedence is kept by listing every image.
    if (Object.values(images).some(([k]) => k >= 0) || patterns.some(([, k]) => k >= 0)) blobs[domain] = { images, patterns };
  }
  return {
    config: {
      origins: input.originIds,
      nearest: nearestGateways(input.regions),
      coordinates: input.regions.map((r) => REGION_COORDINATES[r] ?? null),
      failoverStatusCodes: input.failoverStatusCodes,
      upstreams,
      blobs,
    },
    skipped,
  };
}
