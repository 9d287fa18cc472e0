/**
 * The proxy baseline: a bare Node reverse proxy that forwards every request to one upstream, with
 * the gateway's server options and a keep-alive agent like the gateway's (lambda/local/proxy.ts),
 * streaming both bodies. No rules, no events, no header rewriting beyond hop-by-hop headers and
 * Host: what any Node proxy in front of the registry costs, so the proxy section can tell the
 * extra hop from the gateway's own work. Started (and stopped) by bench/proxy-bench.ts:
 *
 *   node --import tsx bench/baseline-proxy.ts --host 127.0.0.1 --port 0 --upstream http://127.0.0.1:PORT
 *
 * Prints `listening on http://HOST:PORT` on stderr once bound; SIGTERM stops it.
 */
import http from 'node:http';
import { arg, serveUntilSignal } from './baseline-process';
import { pipeline } from 'node:stream';


const upstream = new URL(arg('upstream', 'http://127.0.0.1:5000'));
if (upstream.protocol !== 'http:') {
  process.stderr.write(`--upstream must be an http:// URL, got ${upstream.href}\n`);
  process.exit(2);
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade']);
// As the gateway's upstream agent (lambda/local/proxy.ts).
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

// Same server options as lambda/local/server.ts.
const server = http.createServer({ requestTimeout: 120_000, headersTimeout: 30_000, keepAliveTimeout: 5_000, maxHeaderSize: 64 * 1024 }, (req, res) => {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(req.headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
  headers.host = upstream.host;
  const upReq = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers, agent }, (upRes) => {
    const out: string[] = [];
    for (let i = 0; i < upRes.rawHeaders.length; i += 2) {
      if (!HOP_BY_HOP.has(upRes.rawHeaders[i].toLowerCase())) out.push(upRes.rawHeaders[i], upRes.rawHeaders[i + 1]);
    }
    res.writeHead(upRes.statusCode ?? 502, out);
    pipeline(upRes, res, () => undefined);
  });
  upReq.once('error', () => {
    if (res.headersSent) res.destroy();
    else res.writeHead(502, { 'content-length': '0' }).end();
  });
  // A client that goes away stops the upstream request too.
  res.once('close', () => {
    if (!res.writableFinished) upReq.destroy();
  });
  // pipe, not pipeline: an upstream error must not destroy the client's socket before the 502.
  req.pipe(upReq);
});

serveUntilSignal(server, () => agent.destroy());
