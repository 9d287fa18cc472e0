/**
 * Proxied manifest GETs: a real registry (Debian's docker-registry, the CNCF distribution
 * registry) with a generated image pushed over its HTTP API, and the local gateway in front of it
 * with a docker-v1 rule in proxy mode (`--upstream` maps the rule's registry host to the local
 * registry, as in the container e2e tests). The same manifest GET is timed from three subjects,
 * interleaved: directly from the registry (the goal's baseline), through a bare Node reverse proxy
 * (bench/baseline-proxy.ts: the cost of the extra hop alone) and through the gateway; sequential
 * requests on one keep-alive connection each, and concurrent load with wrk when it is installed.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { median, quantile } from './measure';
import { parseWrk, processCpuMs, runWrkLoad, startServer, stopServer, trackChild, wrkVersion, type Server } from './http-bench';
import { startGateway, type Gateway } from '../test/e2e/helpers';
import { startRegistry, type Registry } from '../test/e2e/registry';

const IMAGE = 'acme/app';
const TAG = 'v1';
const DOMAIN = 'cr.example.test';
const UPSTREAM_HOST = 'registry.example.test';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const ACCEPT = `${OCI_MANIFEST}, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json`;
const CLIENT_UA = 'containers/5.23.1 (github.com/containers/image)';

export interface LatencySummary {
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
}

/** The three subjects: the registry itself, a bare Node reverse proxy in front of it, the gateway in front of it. */
export type ProxySubject = 'direct' | 'bareProxy' | 'gateway';
const SUBJECTS: readonly ProxySubject[] = ['direct', 'bareProxy', 'gateway'];

/** Per-round ratios of one subject to another and their spread. */
export interface RatioSummary {
  readonly p50Ratios: number[];
  readonly p99Ratios: number[];
  readonly medianP50Ratio: number;
  readonly medianP99Ratio: number;
  readonly p50RatioQ1: number;
  readonly p50RatioQ3: number;
  readonly p99RatioQ1: number;
  readonly p99RatioQ3: number;
}

/** Ratios reported: the goal (gateway/direct), the gateway against a bare proxy, and what the hop itself costs. */
export interface ProxyRatios<T> {
  readonly gatewayToDirect: T;
  readonly gatewayToBareProxy: T;
  readonly bareProxyToDirect: T;
}
const RATIO_PAIRS: ReadonlyArray<[keyof ProxyRatios<unknown>, ProxySubject, ProxySubject]> = [
  ['gatewayToDirect', 'gateway', 'direct'],
  ['gatewayToBareProxy', 'gateway', 'bareProxy'],
  ['bareProxyToDirect', 'bareProxy', 'direct'],
];

export interface WrkFigures {
  readonly rps: number;
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  /** CPU time of the subject's server process per answered request (for direct: the registry). */
  readonly cpuUsPerRequest: number | null;
}

export interface WrkRatio {
  readonly rpsRatio: number;
  readonly rpsRatioQ1: number;
  readonly rpsRatioQ3: number;
  readonly p50Ratio: number | null;
  readonly p50RatioQ1: number | null;
  readonly p50RatioQ3: number | null;
  readonly p99Ratio: number | null;
}

export interface ProxyResults {
  readonly registry: string;
  readonly manifestBytes: number;
  readonly rounds: number;
  readonly requestsPerRound: number;
  /** Sequential GETs on one keep-alive connection per subject: medians over rounds of each round's quantiles. */
  readonly direct: LatencySummary;
  readonly bareProxy: LatencySummary;
  readonly gateway: LatencySummary;
  readonly ratios: ProxyRatios<RatioSummary>;
  /**
   * CPU time (user + system, /proc) per sequential request of each process: what each adds,
   * independent of what else runs on the machine. The registry answers every subject's requests.
   */
  readonly cpuUsPerRequest: { readonly gateway: number | null; readonly bareProxy: number | null; readonly registry: number | null };
  /** Concurrent load (wrk), when installed: medians over rounds; ratios per round, then the median. */
  readonly concurrent: null | {
    readonly connections: number;
    readonly durationS: number;
    readonly rounds: number;
    readonly direct: WrkFigures;
    readonly bareProxy: WrkFigures;
    readonly gateway: WrkFigures;
    readonly ratios: ProxyRatios<WrkRatio>;
    readonly errors: number;
  };
  readonly skipped: string | null;
}

const digest = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function send(agent: http.Agent | false, port: number, method: string, target: string, headers: Record<string, string>, body?: Buffer): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: target, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.once('error', reject);
    });
    req.once('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error(`${method} ${target} timed out`)));
    req.end(body);
  });
}

/** Pushes one generated image (a config and two layers of random bytes) with the registry API; returns the manifest bytes. */
export async function pushGeneratedImage(registry: Registry): Promise<Buffer> {
  const blob = async (content: Buffer) => {
    const start = await send(false, registry.port, 'POST', `/v2/${IMAGE}/blobs/uploads/`, { 'content-length': '0' });
    if (start.status !== 202 || !start.headers.location) throw new Error(`blob upload start: ${start.status} ${start.body.toString()}`);
    const loc = new URL(start.headers.location, registry.base);
    loc.searchParams.set('digest', digest(content));
    const put = await send(false, registry.port, 'PUT', `${loc.pathname}${loc.search}`, { 'content-type': 'application/octet-stream', 'content-length': String(content.length) }, content);
    if (put.status !== 201) throw new Error(`blob upload: ${put.status} ${put.body.toString()}`);
    return { digest: digest(content), size: content.length };
  };
  const layers = [await blob(randomBytes(4096)), await blob(randomBytes(2048))];
  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64', os: 'linux', config: {},
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
  }));
  const cfg = await blob(config);
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cfg.digest, size: cfg.size },
    layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.size })),
    annotations: { 'org.opencontainers.image.title': 'artifact-gateway bench image' },
  }));
  const put = await send(false, registry.port, 'PUT', `/v2/${IMAGE}/manifests/${TAG}`, { 'content-type': OCI_MANIFEST, 'content-length': String(manifest.length) }, manifest);
  if (put.status !== 201) throw new Error(`manifest push: ${put.status} ${put.body.toString()}`);
  return manifest;
}

function summary(xs: number[]): LatencySummary {
  return { p50Ms: quantile(xs, 0.5), p90Ms: quantile(xs, 0.9), p99Ms: quantile(xs, 0.99) };
}

export interface ProxyOptions {
  readonly rounds: number;
  readonly requestsPerRound: number;
  readonly concurrent: { readonly rounds: number; readonly durationS: number; readonly connections: number } | null;
}


const rotate = <T>(xs: readonly T[], by: number): T[] => xs.map((_, i) => xs[(i + by) % xs.length]);

const valuesOf = (xs: Array<number | null>): number[] => xs.filter((x): x is number => x !== null && Number.isFinite(x));
const medianOrNull = (xs: Array<number | null>): number | null => {
  const v = valuesOf(xs);
  return v.length ? median(v) : null;
};
const quantileOrNull = (xs: Array<number | null>, q: number): number | null => {
  const v = valuesOf(xs);
  return v.length ? quantile(v, q) : null;
};

export async function benchProxy(opts: ProxyOptions, progress: (m: string) => void): Promise<ProxyResults> {
  const missing = ['docker-registry'].filter((t) => !(process.env.PATH ?? '').split(':').some((d) => d && fs.existsSync(path.join(d, t))));
  if (missing.length) {
    const skipped = `${missing.join(', ')} is not installed (apt-get install -y docker-registry); the proxy section is left out`;
    progress(skipped);
    return { skipped } as unknown as ProxyResults;
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'artifact-gateway-proxy-bench-'));
  let registry: Registry | null = null;
  let gw: Gateway | null = null;
  let bare: Server | null = null;
  const agents: http.Agent[] = [];
  try {
    progress('starting docker-registry and pushing a generated image');
    registry = await startRegistry(path.join(tmp, 'registry'));
    trackChild(registry.proc);
    const manifest = await pushGeneratedImage(registry);
    const manifestFile = path.join(tmp, 'manifest.json');
    fs.writeFileSync(manifestFile, JSON.stringify({
      rules: [{ type: 'docker-v1', domain: DOMAIN, 'repository-name': IMAGE, registry: UPSTREAM_HOST, mode: 'proxy', 'package-id': 'app' }],
    }));
    progress('starting the gateway (docker-v1, mode proxy, --upstream to the registry) and the bare Node proxy');
    gw = await startGateway({ manifest: manifestFile, events: path.join(tmp, 'events'), upstreams: [`${UPSTREAM_HOST}=${registry.base}`] });
    trackChild(gw.proc);
    bare = await startServer('bare Node proxy', ['--import', 'tsx', 'bench/baseline-proxy.ts', '--host', '127.0.0.1', '--port', '0', '--upstream', registry.base]);

    const target = `/v2/${IMAGE}/manifests/${TAG}`;
    interface Endpoint {
      readonly port: number;
      readonly pid: number | undefined;
      readonly headers: Record<string, string>;
      readonly agent: http.Agent;
    }
    const endpoint = (port: number, pid: number | undefined, hostHeader: string): Endpoint => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      agents.push(agent);
      return { port, pid, headers: { host: hostHeader, accept: ACCEPT, 'user-agent': CLIENT_UA }, agent };
    };
    const endpoints: Record<ProxySubject, Endpoint> = {
      direct: endpoint(registry.port, registry.proc.pid, registry.host),
      // The bare proxy sets Host to the registry's itself.
      bareProxy: endpoint(bare.port, bare.child.pid, registry.host),
      gateway: endpoint(gw.port, gw.proc.pid, DOMAIN),
    };
    const want = digest(manifest);
    const timed = async (to: Endpoint): Promise<number> => {
      const t0 = process.hrtime.bigint();
      const r = await send(to.agent, to.port, 'GET', target, to.headers);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (r.status !== 200 || digest(r.body) !== want) throw new Error(`manifest GET on port ${to.port}: ${r.status}, ${r.body.length} bytes (${digest(r.body)}), expected the pushed manifest ${want}`);
      return ms;
    };
    // Warm-up (connections, JIT, the registry's caches), untimed; also checks that all three answer the pushed bytes.
    for (let k = 0; k < 50; k++) for (const s of SUBJECTS) await timed(endpoints[s]);

    const rounds: Array<Record<ProxySubject, number[]>> = [];
    const cpu = () => ({ gateway: processCpuMs(gw!.proc.pid), bareProxy: processCpuMs(bare!.child.pid), registry: processCpuMs(registry!.proc.pid) });
    const cpuBefore = cpu();
    for (let r = 0; r < opts.rounds; r++) {
      progress(`sequential round ${r + 1}/${opts.rounds}`);
      const times: Record<ProxySubject, number[]> = { direct: [], bareProxy: [], gateway: [] };
      for (let k = 0; k < opts.requestsPerRound; k++) {
        // One request to each subject, in an order that rotates from one triple to the next.
        for (const s of rotate(SUBJECTS, (k + r) % SUBJECTS.length)) times[s].push(await timed(endpoints[s]));
      }
      rounds.push(times);
    }
    const cpuAfter = cpu();
    const sequentialRequests = opts.rounds * opts.requestsPerRound;
    const cpuPerRequest = (a: number | null, b: number | null, requests: number) => (a !== null && b !== null ? ((b - a) * 1000) / requests : null);
    const perRound = rounds.map((x) => ({ direct: summary(x.direct), bareProxy: summary(x.bareProxy), gateway: summary(x.gateway) }));
    const medianSummary = (s: ProxySubject): LatencySummary => ({
      p50Ms: median(perRound.map((x) => x[s].p50Ms)),
      p90Ms: median(perRound.map((x) => x[s].p90Ms)),
      p99Ms: median(perRound.map((x) => x[s].p99Ms)),
    });
    const ratioSummary = (num: ProxySubject, den: ProxySubject): RatioSummary => {
      const p50Ratios = perRound.map((x) => x[num].p50Ms / x[den].p50Ms);
      const p99Ratios = perRound.map((x) => x[num].p99Ms / x[den].p99Ms);
      return {
        p50Ratios, p99Ratios,
        medianP50Ratio: median(p50Ratios), medianP99Ratio: median(p99Ratios),
        p50RatioQ1: quantile(p50Ratios, 0.25), p50RatioQ3: quantile(p50Ratios, 0.75),
        p99RatioQ1: quantile(p99Ratios, 0.25), p99RatioQ3: quantile(p99Ratios, 0.75),
      };
    };
    const ratios = Object.fromEntries(RATIO_PAIRS.map(([key, num, den]) => [key, ratioSummary(num, den)])) as unknown as ProxyRatios<RatioSummary>;

    let concurrent: ProxyResults['concurrent'] = null;
    if (opts.concurrent && wrkVersion() !== null) {
      const c = opts.concurrent;
      type Run = ReturnType<typeof parseWrk> & { cpuUsPerRequest: number | null };
      const runs: Array<Record<ProxySubject, Run>> = [];
      const one = async (s: ProxySubject): Promise<Run> => {
        const to = endpoints[s];
        const before = processCpuMs(to.pid);
        const res = await runWrkLoad(to.port, target, { Host: to.headers.host, Accept: ACCEPT, 'User-Agent': CLIENT_UA }, c.connections, c.durationS);
        const after = processCpuMs(to.pid);
        return { ...res, cpuUsPerRequest: res.requests > 0 ? cpuPerRequest(before, after, res.requests) : null };
      };
      for (let r = 0; r < c.rounds; r++) {
        progress(`concurrent round ${r + 1}/${c.rounds} (wrk, ${c.connections} connections, ${c.durationS} s per subject)`);
        const round: Partial<Record<ProxySubject, Run>> = {};
        for (const s of rotate(SUBJECTS, r % SUBJECTS.length)) round[s] = await one(s);
        runs.push(round as Record<ProxySubject, Run>);
      }
      const figures = (s: ProxySubject): WrkFigures => ({
        rps: median(runs.map((x) => x[s].rps)),
        p50Ms: medianOrNull(runs.map((x) => x[s].p50Ms)),
        p99Ms: medianOrNull(runs.map((x) => x[s].p99Ms)),
        cpuUsPerRequest: medianOrNull(runs.map((x) => x[s].cpuUsPerRequest)),
      });
      const div = (a: number | null, b: number | null) => (a !== null && b ? a / b : null);
      const wrkRatio = (num: ProxySubject, den: ProxySubject): WrkRatio => {
        const rps = runs.map((x) => x[num].rps / x[den].rps);
        const p50 = runs.map((x) => div(x[num].p50Ms, x[den].p50Ms));
        return {
          rpsRatio: median(rps), rpsRatioQ1: quantile(rps, 0.25), rpsRatioQ3: quantile(rps, 0.75),
          p50Ratio: medianOrNull(p50), p50RatioQ1: quantileOrNull(p50, 0.25), p50RatioQ3: quantileOrNull(p50, 0.75),
          p99Ratio: medianOrNull(runs.map((x) => div(x[num].p99Ms, x[den].p99Ms))),
        };
      };
      concurrent = {
        connections: c.connections,
        durationS: c.durationS,
        rounds: c.rounds,
        direct: figures('direct'),
        bareProxy: figures('bareProxy'),
        gateway: figures('gateway'),
        ratios: Object.fromEntries(RATIO_PAIRS.map(([key, num, den]) => [key, wrkRatio(num, den)])) as unknown as ProxyRatios<WrkRatio>,
        errors: runs.reduce((n, x) => n + SUBJECTS.reduce((m, s) => m + x[s].errors, 0), 0),
      };
    }
    return {
      registry: 'docker-registry (distribution) from Debian, filesystem storage',
      manifestBytes: manifest.length,
      rounds: opts.rounds,
      requestsPerRound: opts.requestsPerRound,
      direct: medianSummary('direct'),
      bareProxy: medianSummary('bareProxy'),
      gateway: medianSummary('gateway'),
      ratios,
      cpuUsPerRequest: {
        gateway: cpuPerRequest(cpuBefore.gateway, cpuAfter.gateway, sequentialRequests),
        bareProxy: cpuPerRequest(cpuBefore.bareProxy, cpuAfter.bareProxy, sequentialRequests),
        // The registry answers every subject's requests, directly or through a proxy.
        registry: cpuPerRequest(cpuBefore.registry, cpuAfter.registry, SUBJECTS.length * sequentialRequests),
      },
      concurrent,
      skipped: null,
    };
  } finally {
    for (const a of agents) a.destroy();
    if (bare) await stopServer(bare);
    await gw?.kill();
    await registry?.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
