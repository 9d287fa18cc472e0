/**
 * The local gateway: a Node HTTP adapter around the rule engine. It translates requests, carries
 * out the engine's decision (redirect, respond, proxy) and records the events once the response
 * is complete.
 */
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { decide, eventsOf } from '../core/run';
import { answerFor } from '../core/answer';
import type { CompiledRuleSet } from '../core/compile';
import { RulesUnavailableError, staticRuleSource, type RuleSource } from '../core/rule-source';
import type { Decision, GatewayRequest, Headers, Outcome } from '../core/request';
import type { FinalDecision } from '../core/fetch';
import { header, requestHost } from '../core/request';
import { issueGatewayToken, type ChallengeCache, type RegistryHttp } from '../core/registry-auth';
import { DEFAULT_PROXY_OPTIONS, fetchUpstream, proxyRequest, type ProxyOptions } from './proxy';
import { carryOutFetch } from './upstream-fetch';
import { UpstreamCache } from './upstream-cache';
import type { EventSink } from './ndjson-sink';
import { InMemorySaltStore } from './daily-salt';
import { DailySaltCache, type DailySaltStore } from '../analytics/daily-salt';
import { cloudFrontViewerIp, viewerOrigin } from '../core/viewer-origin';
import type { Logger } from './log';

export interface LocalGatewayOptions {
  readonly host: string;
  readonly port: number;
  /**
   * The rules in force, asked per request (so a reload takes effect at once): a `RuleSource`
   * (per host, possibly loading from a store), or a function returning the whole compiled set.
   */
  readonly rules: RuleSource | (() => CompiledRuleSet);
  readonly sink: EventSink;
  /** `host[:port]` -> base URL (`--upstream`). */
  readonly upstreams: ReadonlyMap<string, string>;
  readonly log: Logger;
  readonly proxy?: Partial<Omit<ProxyOptions, 'upstreams'>>;
  /** Log one line per request (method, host, path without query, status, duration). */
  readonly accessLog?: boolean;
  /**
   * Take country, region and ASN from `CloudFront-Viewer-*` headers. Only when the gateway really
   * sits behind CloudFront (which overwrites them): otherwise any client could set them. Default false.
   */
  readonly trustViewerHeaders?: boolean;
  /** Where visitor-id salts come from. Default: random, in memory, one per UTC day. */
  readonly saltStore?: DailySaltStore;
  /** Cache of upstream documents fetched for Python pages and npm packuments (default: 64 MiB, 8 MiB per document). */
  readonly upstreamCache?: UpstreamCache;
}

/** Splits a request target into raw path and raw query; absolute-form targets keep only their path. */
export function splitTarget(url: string): { rawPath: string; rawQuery: string } | null {
  let target = url;
  if (!target.startsWith('/')) {
    const m = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*(.*)$/i.exec(target);
    if (!m) return null;
    target = m[1] || '/';
  }
  const hash = target.indexOf('#');
  if (hash >= 0) target = target.slice(0, hash);
  const q = target.indexOf('?');
  return q < 0 ? { rawPath: target, rawQuery: '' } : { rawPath: target.slice(0, q), rawQuery: target.slice(q) };
}

/**
 * Reads at most `limit` bytes of the body. Past that the engine answers at once from what it has
 * (telemetry: 413) while the rest is discarded as it arrives: closing the connection instead
 * would reset it and could destroy the answer before the client reads it. A body that never
 * ends is cut off by the server's request timeout.
 */
function readBody(req: http.IncomingMessage, limit: number): Promise<{ body: Uint8Array; truncated: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer) => {
      if (size + c.length > limit) {
        chunks.push(c.subarray(0, limit - size));
        req.off('data', onData);
        req.resume();
        resolve({ body: Buffer.concat(chunks), truncated: true });
        return;
      }
      chunks.push(c);
      size += c.length;
    };
    req.on('data', onData);
    req.once('end', () => resolve({ body: Buffer.concat(chunks), truncated: false }));
    req.once('error', reject);
  });
}

function finished(res: http.ServerResponse): Promise<void> {
  return new Promise<void>((resolve) => {
    if (res.writableFinished || res.destroyed) return resolve();
    res.once('finish', () => resolve());
    res.once('close', () => resolve());
  });
}

/** Writes an answer the gateway makes itself; HEAD gets the headers of GET and no body. */
function writeResponse(res: http.ServerResponse, method: string, status: number, headers: Readonly<Record<string, string>>, body: Uint8Array | string): void {
  // The same wire form as every adapter (HEAD keeps the GET's length; 304 and HEAD send no body).
  const a = answerFor({ type: 'respond', status, headers, body }, method);
  res.writeHead(a.status, a.headers);
  res.end(a.body.length ? a.body : undefined);
}

export class LocalGateway {
  private server: http.Server | null = null;
  /** Upstream registry challenges learned by the token endpoint (registry-auth.ts). */
  private readonly challenges: ChallengeCache = new Map();
  private readonly registryHttp: RegistryHttp;
  private readonly salt: DailySaltCache;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly upstreamCache: UpstreamCache;

  private readonly ruleSource: RuleSource;

  constructor(private readonly opts: LocalGatewayOptions) {
    this.ruleSource = typeof opts.rules === 'function' ? staticRuleSource(opts.rules) : opts.rules;
    const proxyOpts = { ...DEFAULT_PROXY_OPTIONS, ...opts.proxy, upstreams: opts.upstreams };
    this.registryHttp = { get: (url, headers, namedBy) => fetchUpstream(url, headers, proxyOpts, namedBy) };
    this.salt = new DailySaltCache(opts.saltStore ?? new InMemorySaltStore(), { onError: (m) => opts.log.warn(m) });
    this.upstreamCache = opts.upstreamCache ?? new UpstreamCache();
  }

  async start(): Promise<AddressInfo> {
    // Headers may be larger than Node's 16 KiB default, so that the engine's own target limit answers 414.
    const server = http.createServer({ requestTimeout: 120_000, headersTimeout: 30_000, keepAliveTimeout: 5_000, maxHeaderSize: 64 * 1024 }, (req, res) => {
      const p = this.handle(req, res).catch((e) => this.fail(res, e)).finally(() => this.inFlight.delete(p));
      this.inFlight.add(p);
    });
    // A malformed request line or header gets a 400 from Node, never a crash.
    server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
      if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      else socket.destroy();
    });
    // CONNECT (a proxy tunnel) is nothing the gateway offers; Node would drop the connection without a word.
    server.on('connect', (_req, socket: import('node:stream').Duplex) => {
      const body = '{"error":"method_not_allowed","message":"CONNECT is not supported"}';
      socket.end(`HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD, POST, PUT, PATCH, DELETE\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return server.address() as AddressInfo;
  }

  /** Stops accepting connections, lets in-flight requests finish (up to `graceMs`), then closes the rest. */
  async stop(graceMs = 3_000): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const timer = setTimeout(() => server.closeAllConnections(), graceMs);
    await Promise.race([Promise.allSettled([...this.inFlight]), new Promise((r) => setTimeout(r, graceMs))]);
    server.closeAllConnections();
    clearTimeout(timer);
    await closed;
  }

  private fail(res: http.ServerResponse, e: unknown): void {
    // The message names no header values: errors here come from our own code or the file system.
    this.opts.log.error('request failed', { error: e instanceof Error ? e.message : String(e) });
    if (!res.headersSent) {
      res.writeHead(500, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify({ error: 'internal_error', message: 'the gateway failed to handle this request' }));
    } else {
      res.destroy();
    }
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    const method = (req.method ?? 'GET').toUpperCase();
    const target = splitTarget(req.url ?? '/');
    if (!target) {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'bad_request', message: 'unsupported request target' }));
      req.resume();
      return;
    }
    const headers = req.headers as Headers;
    const hasBody = req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined;
    let greq: GatewayRequest = { method, rawPath: target.rawPath, rawQuery: target.rawQuery, headers, hasBody, scheme: 'http' };
    let rules: CompiledRuleSet;
    try {
      const found = this.ruleSource.rulesFor(requestHost(headers));
      rules = found instanceof Promise ? await found : found;
    } catch (e) {
      if (!(e instanceof RulesUnavailableError)) throw e;
      // The store has logged why; clients (registries, pip, npm) retry a 503.
      req.resume();
      const body = JSON.stringify({ error: 'rules_unavailable', message: 'the gateway cannot load its rules right now; try again shortly' });
      res.writeHead(503, { 'content-type': 'application/json', 'cache-control': 'no-store', 'retry-after': '1', 'content-length': String(Buffer.byteLength(body)) });
      res.end(body);
      if (this.opts.accessLog) this.opts.log.info(`${method} ${e.domain}${target.rawPath} 503 rules unavailable`);
      return;
    }
    const decided = await decide(rules, greq, (limit) => readBody(req, limit));
    let outcome: Outcome = decided.outcome;
    greq = decided.request;
    let status: number;
    if (outcome.decision.type === 'fetch') {
      const d = outcome.decision;
      const proxyOpts = { ...DEFAULT_PROXY_OPTIONS, ...this.opts.proxy };
      const client = {
        method, acceptEncoding: header(headers, 'accept-encoding'),
        open: (status: number, h: Record<string, string>) => {
          res.writeHead(status, h);
          return res;
        },
      };
      const r = await carryOutFetch(d, client, {
        upstreams: this.opts.upstreams, cache: this.upstreamCache, headersTimeoutMs: proxyOpts.headersTimeoutMs, idleTimeoutMs: proxyOpts.idleTimeoutMs, maxRedirects: 5,
      }, (final: FinalDecision) => this.carryOut(final, req, res, method));
      if (r.error) this.opts.log.warn('upstream error', { upstream: d.upstreamHost, status: r.status, error: r.error });
      status = r.status;
      // The transform, not the engine, knows what this request was (a download, a miss, ...).
      outcome = { ...outcome, events: r.events };
    } else {
      status = await this.carryOut(outcome.decision, req, res, method);
    }
    await this.record(outcome, greq, status, req);
    if (this.opts.accessLog) {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      this.opts.log.info(`${method} ${outcome.domain ?? header(headers, 'host') ?? '-'}${target.rawPath} ${status} ${ms.toFixed(1)}ms`);
    }
  }

  private async carryOut(d: Decision, req: http.IncomingMessage, res: http.ServerResponse, method: string): Promise<number> {
    switch (d.type) {
      case 'redirect':
        req.resume();
        res.writeHead(d.status, { ...d.headers, location: d.location, 'content-length': '0' });
        res.end();
        break;
      case 'respond':
        req.resume();
        writeResponse(res, method, d.status, d.headers, d.body);
        break;
      case 'registry-token': {
        req.resume();
        const answer = await issueGatewayToken(d, this.registryHttp, this.challenges, new Date());
        writeResponse(res, method, answer.status, answer.headers, answer.body);
        if (answer.error) this.opts.log.warn('registry token not issued', { status: answer.status, error: answer.error });
        await finished(res);
        return answer.status;
      }
      case 'proxy': {
        const r = await proxyRequest(req, res, d, { ...DEFAULT_PROXY_OPTIONS, ...this.opts.proxy, upstreams: this.opts.upstreams });
        if (r.error) this.opts.log.warn('upstream error', { upstream: d.upstreamHost, status: r.status, error: r.error });
        return r.status;
      }
      case 'read-body':
      case 'fetch':
        throw new Error(`unexpected ${d.type} decision`);
    }
    await finished(res);
    return d.status;
  }

  private async record(outcome: Outcome, req: GatewayRequest, status: number, raw: http.IncomingMessage): Promise<void> {
    if (!outcome.events.length || outcome.domain === null) return;
    const time = new Date();
    // Only the socket's own peer address counts (or, behind CloudFront, the viewer address it
    // sets); a client-supplied X-Forwarded-For is ignored. Read before awaiting: a closed socket
    // no longer knows its peer.
    const trusted = this.opts.trustViewerHeaders === true;
    const viewer = { ip: cloudFrontViewerIp(req.headers, { trusted }) ?? raw.socket.remoteAddress ?? null, origin: viewerOrigin(req.headers, { trusted }) };
    // A salt that cannot be had (store failing) means events without a visitor id.
    const salt = (await this.salt.current(time)) ?? '';
    const events = eventsOf(outcome, req, status, viewer, { salt, time, newId: randomUUID });
    if (events.length) this.opts.sink.write(events);
  }

}
