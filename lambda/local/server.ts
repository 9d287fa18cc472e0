/**
 * The local gateway: a Node HTTP adapter around the rule engine. It translates requests, carries
 * out the engine's decision (redirect, respond, proxy) and records the events once the response
 * is complete.
 */
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { handleRequest } from '../core/engine';
import type { CompiledRuleSet } from '../core/compile';
import { RulesUnavailableError, staticRuleSource, type RuleSource } from '../core/rule-source';
import type { Decision, GatewayRequest, Headers, Outcome } from '../core/request';
import { header, optedOut, requestHost } from '../core/request';
import { completeEvents } from '../core/complete-event';
import { visitorId } from '../core/visitor';
import { DEFAULT_PROXY_OPTIONS, proxyRequest, type ProxyOptions } from './proxy';
import type { EventSink } from './ndjson-sink';
import { DailySalt } from './daily-salt';
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

function readBody(req: http.IncomingMessage, limit: number): Promise<{ body: Uint8Array; truncated: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let truncated = false;
    req.on('data', (c: Buffer) => {
      if (truncated) return;
      if (size + c.length > limit) {
        chunks.push(c.subarray(0, limit - size));
        size = limit;
        truncated = true;
        return; // keep draining so the connection stays usable
      }
      chunks.push(c);
      size += c.length;
    });
    req.once('end', () => resolve({ body: Buffer.concat(chunks), truncated }));
    req.once('error', reject);
  });
}

export class LocalGateway {
  private server: http.Server | null = null;
  private readonly salt = new DailySalt();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly ruleSource: RuleSource;

  constructor(private readonly opts: LocalGatewayOptions) {
    this.ruleSource = typeof opts.rules === 'function' ? staticRuleSource(opts.rules) : opts.rules;
  }

  async start(): Promise<AddressInfo> {
    const server = http.createServer({ requestTimeout: 120_000, headersTimeout: 30_000, keepAliveTimeout: 5_000 }, (req, res) => {
      const p = this.handle(req, res).catch((e) => this.fail(res, e)).finally(() => this.inFlight.delete(p));
      this.inFlight.add(p);
    });
    // A malformed request line or header gets a 400 from Node, never a crash.
    server.on('clientError', (_err, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      else socket.destroy();
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
    let greq: GatewayRequest = { method, rawPath: target.rawPath, rawQuery: target.rawQuery, headers, hasBody };
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
    let outcome: Outcome = handleRequest(rules, greq);
    if (outcome.decision.type === 'read-body') {
      const { body, truncated } = await readBody(req, outcome.decision.limit);
      greq = { ...greq, body, bodyTruncated: truncated };
      outcome = handleRequest(rules, greq);
      if (outcome.decision.type === 'read-body') throw new Error('engine asked for the body twice');
    }
    const status = await this.carryOut(outcome.decision, req, res, method);
    this.record(outcome, greq, status, req);
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
      case 'respond': {
        req.resume();
        const body = typeof d.body === 'string' ? Buffer.from(d.body, 'utf8') : d.body;
        const headers: Record<string, string> = { ...d.headers };
        // HEAD keeps the length of the GET answer, which the engine states; otherwise it is the body's.
        if (!(method === 'HEAD' && headers['content-length'] !== undefined) && d.status !== 304 && d.status !== 204) {
          headers['content-length'] = String(body.length);
        }
        res.writeHead(d.status, headers);
        res.end(method === 'HEAD' || d.status === 304 ? undefined : body);
        break;
      }
      case 'proxy': {
        const r = await proxyRequest(req, res, d, { ...DEFAULT_PROXY_OPTIONS, ...this.opts.proxy, upstreams: this.opts.upstreams });
        if (r.error) this.opts.log.warn('upstream error', { upstream: d.upstreamHost, status: r.status, error: r.error });
        return r.status;
      }
      case 'read-body':
        throw new Error('unexpected read-body decision');
    }
    await new Promise<void>((resolve) => {
      if (res.writableFinished || res.destroyed) return resolve();
      res.once('finish', () => resolve());
      res.once('close', () => resolve());
    });
    return d.status;
  }

  private record(outcome: Outcome, req: GatewayRequest, status: number, raw: http.IncomingMessage): void {
    if (!outcome.events.length || outcome.domain === null || optedOut(req.headers)) return;
    const userAgent = header(req.headers, 'user-agent');
    const salt = this.salt.current();
    // Only the socket's own peer address counts; a client-supplied X-Forwarded-For is ignored.
    const ip = raw.socket.remoteAddress ?? null;
    const domain = outcome.domain;
    const events = completeEvents(outcome.events, {
      domain,
      method: req.method,
      path: req.rawPath,
      status,
      time: new Date(),
      userAgent,
      origin: null,
      visitorIdFor: (packageId) => visitorId(salt, ip, userAgent, domain, packageId),
      newId: randomUUID,
    });
    this.opts.sink.write(events);
  }
}
