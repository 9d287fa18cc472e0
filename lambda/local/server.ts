/**
 * The local gateway: a Node HTTP adapter around the rule engine. It translates requests, carries
 * out the engine's decision (redirect, respond, proxy) and records the events once the response
 * is complete.
 */
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import { decide, eventsOf, type Decided, type Viewer } from '../core/run';
import { answerFor } from '../core/answer';
import type { CompiledRuleSet } from '../core/compile';
import { RulesUnavailableError, staticRuleSource, type RuleSource } from '../core/rule-source';
import type { Decision, GatewayRequest, Headers, Outcome } from '../core/request';
import type { FinalDecision } from '../core/fetch';
import { header, optedOut, requestHost } from '../core/request';
import { issueGatewayToken, type ChallengeCache, type RegistryHttp } from '../core/registry-auth';
import { DEFAULT_PROXY_OPTIONS, fetchUpstream, proxyRequest, type ProxyOptions } from './proxy';
import { carryOutFetch } from './upstream-fetch';
import { UpstreamCache } from './upstream-cache';
import type { EventSink } from './ndjson-sink';
import { InMemorySaltStore } from './daily-salt';
import { DailySaltCache, type DailySaltStore } from '../analytics/daily-salt';
import { cloudFrontViewerIp, viewerOrigin } from '../core/viewer-origin';
import { rememberingVisitorId, type VisitorIdFn } from '../core/visitor';
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

const DAY_MS = 86_400_000;

/** A request being served, as the steps after routing need it. */
interface Served {
  readonly req: http.IncomingMessage;
  readonly res: http.ServerResponse;
  readonly method: string;
  readonly rawPath: string;
  /** process.hrtime.bigint() at arrival, when the access log is on. */
  readonly started: bigint;
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
  /** Whether CloudFront's viewer headers count (see `trustViewerHeaders`). */
  private readonly trust: { trusted: boolean };
  /** The salt of the UTC day [saltFrom, saltUntil), once loaded. */
  private saltFrom = 0;
  private saltUntil = 0;
  private saltOfDay = '';
  /** Per connection, the last visitor id (visitor.ts rememberingVisitorId): gone with the connection. */
  private readonly visitorIds = new WeakMap<Socket, VisitorIdFn>();

  constructor(private readonly opts: LocalGatewayOptions) {
    this.trust = { trusted: opts.trustViewerHeaders === true };
    this.ruleSource = typeof opts.rules === 'function' ? staticRuleSource(opts.rules) : opts.rules;
    const proxyOpts = { ...DEFAULT_PROXY_OPTIONS, ...opts.proxy, upstreams: opts.upstreams };
    this.registryHttp = { get: (url, headers, namedBy) => fetchUpstream(url, headers, proxyOpts, namedBy) };
    this.salt = new DailySaltCache(opts.saltStore ?? new InMemorySaltStore(), { onError: (m) => opts.log.warn(m) });
    this.upstreamCache = opts.upstreamCache ?? new UpstreamCache();
  }

  async start(): Promise<AddressInfo> {
    // Headers may be larger than Node's 16 KiB default, so that the engine's own target limit answers 414.
    const server = http.createServer({ requestTimeout: 120_000, headersTimeout: 30_000, keepAliveTimeout: 5_000, maxHeaderSize: 64 * 1024 }, (req, res) => {
      // Redirects and the gateway's own answers are served and recorded synchronously; only what
      // waits for I/O (rules from the store, a body, an upstream, a salt) becomes a promise.
      let pending: Promise<void> | void;
      try {
        pending = this.handle(req, res);
      } catch (e) {
        this.fail(res, e);
        return;
      }
      if (pending) {
        const p: Promise<void> = pending.catch((e) => this.fail(res, e)).finally(() => this.inFlight.delete(p));
        this.inFlight.add(p);
      }
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

  private handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> | void {
    const started = this.opts.accessLog ? process.hrtime.bigint() : 0n;
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
    const greq: GatewayRequest = { method, rawPath: target.rawPath, rawQuery: target.rawQuery, headers, hasBody, scheme: 'http' };
    const served: Served = { req, res, method, rawPath: target.rawPath, started };
    let found: CompiledRuleSet | Promise<CompiledRuleSet>;
    try {
      found = this.ruleSource.rulesFor(requestHost(headers));
    } catch (e) {
      return this.rulesUnavailable(e, served);
    }
    if (found instanceof Promise) return found.then((rules) => this.serve(rules, greq, served), (e) => this.rulesUnavailable(e, served));
    return this.serve(found, greq, served);
  }

  private rulesUnavailable(e: unknown, { req, res, method, rawPath }: Served): void {
    if (!(e instanceof RulesUnavailableError)) throw e;
    // The store has logged why; clients (registries, pip, npm) retry a 503.
    req.resume();
    const body = JSON.stringify({ error: 'rules_unavailable', message: 'the gateway cannot load its rules right now; try again shortly' });
    res.writeHead(503, { 'content-type': 'application/json', 'cache-control': 'no-store', 'retry-after': '1', 'content-length': String(Buffer.byteLength(body)) });
    res.end(body);
    if (this.opts.accessLog) this.opts.log.info(`${method} ${e.domain}${rawPath} 503 rules unavailable`);
  }

  private serve(rules: CompiledRuleSet, greq: GatewayRequest, served: Served): Promise<void> | void {
    const decided = decide(rules, greq, (limit) => readBody(served.req, limit));
    return decided instanceof Promise ? decided.then((d) => this.answer(d, served)) : this.answer(decided, served);
  }

  private answer({ outcome, request }: Decided, served: Served): Promise<void> | void {
    const { req, res, method } = served;
    const d = outcome.decision;
    if (d.type === 'redirect') {
      req.resume();
      res.writeHead(d.status, { ...d.headers, location: d.location, 'content-length': '0' });
      res.end();
      // Without a body, the response is complete once handed to the socket.
      return this.record(outcome, request, d.status, served);
    }
    if (d.type === 'respond') {
      req.resume();
      writeResponse(res, method, d.status, d.headers, d.body);
      if (res.writableFinished || res.destroyed) return this.record(outcome, request, d.status, served);
      // A body may take a while to leave: the event's time is when it has.
      return new Promise<void>((resolve, reject) => {
        const done = () => {
          res.off('finish', done);
          res.off('close', done);
          try {
            const r = this.record(outcome, request, d.status, served);
            if (r) r.then(resolve, reject);
            else resolve();
          } catch (e) {
            reject(e);
          }
        };
        res.once('finish', done);
        res.once('close', done);
      });
    }
    return this.answerLater(outcome, request, served);
  }

  /** Answers that wait for an upstream or the registry token service. */
  private async answerLater(outcome: Outcome, greq: GatewayRequest, served: Served): Promise<void> {
    const { req, res, method } = served;
    const headers = greq.headers;
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
    await this.record(outcome, greq, status, served);
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

  /** Records the events of a finished request; a promise only while the day's salt is being loaded. */
  private record(outcome: Outcome, req: GatewayRequest, status: number, served: Served): Promise<void> | void {
    // eventsOf() would find no events for these too; checked first to skip the salt and the viewer.
    if (outcome.events.length && outcome.domain !== null && !optedOut(req.headers)) {
      const time = new Date();
      const raw = served.req;
      // Only the socket's own peer address counts (or, behind CloudFront, the viewer address it
      // sets); a client-supplied X-Forwarded-For is ignored. Read before awaiting: a closed socket
      // no longer knows its peer.
      const viewer: Viewer = { ip: cloudFrontViewerIp(req.headers, this.trust) ?? raw.socket?.remoteAddress ?? null, origin: viewerOrigin(req.headers, this.trust) };
      const socket = raw.socket;
      const salt = this.saltAt(time);
      if (typeof salt !== 'string') {
        return salt.then((s) => {
          this.writeEvents(outcome, req, status, viewer, s ?? '', time, socket);
          this.logAccess(outcome, req, status, served);
        });
      }
      this.writeEvents(outcome, req, status, viewer, salt, time, socket);
    }
    this.logAccess(outcome, req, status, served);
  }

  private writeEvents(outcome: Outcome, req: GatewayRequest, status: number, viewer: Viewer, salt: string, time: Date, socket: Socket | null): void {
    let visitorIdOf: VisitorIdFn | undefined;
    if (socket) {
      visitorIdOf = this.visitorIds.get(socket);
      if (!visitorIdOf) this.visitorIds.set(socket, (visitorIdOf = rememberingVisitorId()));
    }
    // A salt that cannot be had (store failing) means events without a visitor id.
    const events = eventsOf(outcome, req, status, viewer, { salt, time, newId: randomUUID, visitorId: visitorIdOf });
    if (events.length) this.opts.sink.write(events);
  }

  private logAccess(outcome: Outcome, req: GatewayRequest, status: number, { method, rawPath, started }: Served): void {
    if (!this.opts.accessLog) return;
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    this.opts.log.info(`${method} ${outcome.domain ?? header(req.headers, 'host') ?? '-'}${rawPath} ${status} ${ms.toFixed(1)}ms`);
  }

  /**
   * Today's salt, at once while it is known (the common case), else from the salt cache; null
   * while the store fails. The day's bounds are kept so a request needs no date formatting.
   */
  private saltAt(time: Date): string | Promise<string | null> {
    const t = time.getTime();
    if (t >= this.saltFrom && t < this.saltUntil) return this.saltOfDay;
    return this.salt.current(time).then((s) => {
      const from = Math.floor(t / DAY_MS) * DAY_MS;
      if (s !== null && from >= this.saltFrom) {
        this.saltFrom = from;
        this.saltUntil = from + DAY_MS;
        this.saltOfDay = s;
      }
      return s;
    });
  }
}
