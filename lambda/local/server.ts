/**
 * The local gateway: a Node HTTP adapter around the rule engine. It translates requests, carries
 * out the engine's decision (redirect, respond, proxy) and records the events once the response
 * is complete.
 */
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { CompiledRuleSet } from '../core/compile';
import type { Decision, GatewayRequest, Headers, Outcome } from '../core/request';
import { header } from '../core/request';
import { decide, eventsOf } from '../core/run';
import { answerFor } from '../core/answer';
import { DEFAULT_PROXY_OPTIONS, proxyRequest, type ProxyOptions } from './proxy';
import type { EventSink } from './ndjson-sink';
import { DailySalt } from './daily-salt';
import type { Logger } from './log';

export interface LocalGatewayOptions {
  readonly host: string;
  readonly port: number;
  /** The rules in force; called per request, so a reload takes effect at once. */
  readonly rules: () => CompiledRuleSet;
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

  constructor(private readonly opts: LocalGatewayOptions) {}

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
    const request: GatewayRequest = { method, rawPath: target.rawPath, rawQuery: target.rawQuery, headers, hasBody };
    const { outcome, request: greq } = await decide(this.opts.rules(), request, (limit) => readBody(req, limit));
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
      case 'respond': {
        req.resume();
        const answer = answerFor(d, method);
        res.writeHead(answer.status, answer.headers);
        res.end(answer.body.length ? answer.body : undefined);
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
    // Only the socket's own peer address counts; a client-supplied X-Forwarded-For is ignored.
    const viewer = { ip: raw.socket.remoteAddress ?? null, origin: null };
    const events = eventsOf(outcome, req, status, viewer, { salt: this.salt.current(), time: new Date(), newId: randomUUID });
    if (events.length) this.opts.sink.write(events);
  }
}
