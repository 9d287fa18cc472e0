/**
 * Proxied manifest GETs: a real registry (Debian's docker-registry, the CNCF distribution
 * registry) with a generated image pushed over its HTTP API, and the local gateway in front of it
 * with a docker-v1 rule in proxy mode (`--upstream` maps the rule's registry host to the local
 * registry, as in the container e2e tests). The same manifest GET is timed directly from the
 * registry (baseline) and through the gateway, interleaved: sequential requests on one keep-alive
 * connection, and concurrent load with wrk when it is installed.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { median, quantile } from './measure';
import { parseWrk, processCpuMs, runWrkLoad, trackChild, wrkVersion } from './http-bench';
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

export interface ProxyResults {
  readonly registry: string;
  readonly manifestBytes: number;
  readonly rounds: number;
  readonly requestsPerRound: number;
  /** Sequential GETs on one keep-alive connection: medians over rounds of each round's quantiles. */
  readonly direct: LatencySummary;
  readonly gateway: LatencySummary;
  readonly p50Ratios: number[];
  readonly p99Ratios: number[];
  readonly medianP50Ratio: number;
  readonly medianP99Ratio: number;
  readonly p50RatioQ1: number;
  readonly p50RatioQ3: number;
  /**
   * CPU time (user + system, /proc) per sequential request of the gateway process and of the
   * registry process: what each adds, independent of what else runs on the machine.
   */
  readonly gatewayCpuUsPerRequest: number | null;
  readonly registryCpuUsPerRequest: number | null;
  /** Concurrent load (wrk), when installed. */
  readonly concurrent: null | {
    readonly connections: number;
    readonly durationS: number;
    readonly rounds: number;
    readonly direct: { readonly rps: number; readonly p50Ms: number | null; readonly p99Ms: number | null };
    readonly gateway: { readonly rps: number; readonly p50Ms: number | null; readonly p99Ms: number | null };
    readonly rpsRatio: number;
    readonly p50Ratio: number | null;
    readonly p99Ratio: number | null;
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
    progress('starting the gateway (docker-v1, mode proxy, --upstream to the registry)');
    gw = await startGateway({ manifest: manifestFile, events: path.join(tmp, 'events'), upstreams: [`${UPSTREAM_HOST}=${registry.base}`] });
    trackChild(gw.proc);

    const target = `/v2/${IMAGE}/manifests/${TAG}`;
    const direct = { port: registry.port, headers: { host: registry.host, accept: ACCEPT, 'user-agent': CLIENT_UA } };
    const viaGateway = { port: gw.port, headers: { host: DOMAIN, accept: ACCEPT, 'user-agent': CLIENT_UA } };
    const agentDirect = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const agentGateway = new http.Agent({ keepAlive: true, maxSockets: 1 });
    agents.push(agentDirect, agentGateway);
    const want = digest(manifest);
    const timed = async (agent: http.Agent, to: typeof direct): Promise<number> => {
      const t0 = process.hrtime.bigint();
      const r = await send(agent, to.port, 'GET', target, to.headers);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (r.status !== 200 || digest(r.body) !== want) throw new Error(`manifest GET on port ${to.port}: ${r.status}, ${r.body.length} bytes (${digest(r.body)}), expected the pushed manifest ${want}`);
      return ms;
    };
    // Warm-up (connections, JIT, the registry's caches), untimed; also checks both answer the pushed bytes.
    for (let k = 0; k < 50; k++) {
      await timed(agentDirect, direct);
      await timed(agentGateway, viaGateway);
    }
    const rounds: Array<{ direct: number[]; gateway: number[] }> = [];
    const cpu = () => ({ gateway: processCpuMs(gw!.proc.pid), registry: processCpuMs(registry!.proc.pid) });
    const cpuBefore = cpu();
    for (let r = 0; r < opts.rounds; r++) {
      progress(`sequential round ${r + 1}/${opts.rounds}`);
      const d: number[] = [];
      const g: number[] = [];
      for (let k = 0; k < opts.requestsPerRound; k++) {
        // Pairs of requests in alternating order.
        if ((k + r) % 2 === 0) {
          d.push(await timed(agentDirect, direct));
          g.push(await timed(agentGateway, viaGateway));
        } else {
          g.push(await timed(agentGateway, viaGateway));
          d.push(await timed(agentDirect, direct));
        }
      }
      rounds.push({ direct: d, gateway: g });
    }
    const cpuAfter = cpu();
    const sequentialRequests = opts.rounds * opts.requestsPerRound;
    // The registry also answers the direct requests: as many as went through the gateway.
    const cpuPerRequest = (a: number | null, b: number | null, requests: number) => (a !== null && b !== null ? ((b - a) * 1000) / requests : null);
    const perRound = rounds.map((x) => ({ d: summary(x.direct), g: summary(x.gateway) }));
    const p50Ratios = perRound.map((x) => x.g.p50Ms / x.d.p50Ms);
    const p99Ratios = perRound.map((x) => x.g.p99Ms / x.d.p99Ms);
    const med = (f: (s: LatencySummary) => number, which: 'd' | 'g') => median(perRound.map((x) => f(x[which])));

    let concurrent: ProxyResults['concurrent'] = null;
    if (opts.concurrent && wrkVersion() !== null) {
      const c = opts.concurrent;
      const runs: Array<{ d: ReturnType<typeof parseWrk>; g: ReturnType<typeof parseWrk> }> = [];
      for (let r = 0; r < c.rounds; r++) {
        progress(`concurrent round ${r + 1}/${c.rounds} (wrk, ${c.connections} connections, ${c.durationS} s each)`);
        const one = (to: typeof direct) => runWrkLoad(to.port, target, { Host: to.headers.host, Accept: ACCEPT, 'User-Agent': CLIENT_UA }, c.connections, c.durationS);
        if (r % 2 === 0) {
          const d = await one(direct);
          runs.push({ d, g: await one(viaGateway) });
        } else {
          const g = await one(viaGateway);
          runs.push({ d: await one(direct), g });
        }
      }
      const mm = (xs: Array<number | null>) => {
        const v = xs.filter((x): x is number => x !== null);
        return v.length ? median(v) : null;
      };
      concurrent = {
        connections: c.connections,
        durationS: c.durationS,
        rounds: c.rounds,
        direct: { rps: median(runs.map((x) => x.d.rps)), p50Ms: mm(runs.map((x) => x.d.p50Ms)), p99Ms: mm(runs.map((x) => x.d.p99Ms)) },
        gateway: { rps: median(runs.map((x) => x.g.rps)), p50Ms: mm(runs.map((x) => x.g.p50Ms)), p99Ms: mm(runs.map((x) => x.g.p99Ms)) },
        rpsRatio: median(runs.map((x) => x.g.rps / x.d.rps)),
        p50Ratio: mm(runs.map((x) => (x.g.p50Ms !== null && x.d.p50Ms ? x.g.p50Ms / x.d.p50Ms : null))),
        p99Ratio: mm(runs.map((x) => (x.g.p99Ms !== null && x.d.p99Ms ? x.g.p99Ms / x.d.p99Ms : null))),
        errors: runs.reduce((n, x) => n + x.d.errors + x.g.errors, 0),
      };
    }
    return {
      registry: 'docker-registry (distribution) from Debian, filesystem storage',
      manifestBytes: manifest.length,
      rounds: opts.rounds,
      requestsPerRound: opts.requestsPerRound,
      direct: { p50Ms: med((s) => s.p50Ms, 'd'), p90Ms: med((s) => s.p90Ms, 'd'), p99Ms: med((s) => s.p99Ms, 'd') },
      gateway: { p50Ms: med((s) => s.p50Ms, 'g'), p90Ms: med((s) => s.p90Ms, 'g'), p99Ms: med((s) => s.p99Ms, 'g') },
      p50Ratios,
      p99Ratios,
      medianP50Ratio: median(p50Ratios),
      medianP99Ratio: median(p99Ratios),
      p50RatioQ1: quantile(p50Ratios, 0.25),
      p50RatioQ3: quantile(p50Ratios, 0.75),
      gatewayCpuUsPerRequest: cpuPerRequest(cpuBefore.gateway, cpuAfter.gateway, sequentialRequests),
      registryCpuUsPerRequest: cpuPerRequest(cpuBefore.registry, cpuAfter.registry, 2 * sequentialRequests),
      concurrent,
      skipped: null,
    };
  } finally {
    for (const a of agents) a.destroy();
    await gw?.kill();
    await registry?.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
