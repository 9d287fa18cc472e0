/**
 * The HTTP baseline: a plain Node server that answers every request with a fixed 307 and the same
 * headers as the gateway's file-v1 redirect, with the gateway's server options. Started (and
 * stopped) by bench/run.ts:
 *
 *   node --import tsx bench/baseline-server.ts --host 127.0.0.1 --port 0 --location URL
 *
 * Prints `listening on http://HOST:PORT` on stderr once bound; SIGTERM stops it.
 */
import http from 'node:http';
import { arg, serveUntilSignal } from './baseline-process';


const location = arg('location', 'https://example.org/');

// Same options and headers as lambda/local/server.ts (redirect branch of carryOut).
const server = http.createServer({ requestTimeout: 120_000, headersTimeout: 30_000, keepAliveTimeout: 5_000 }, (req, res) => {
  req.resume();
  res.writeHead(307, { 'cache-control': 'private, no-store', location, 'content-length': '0' });
  res.end();
});

serveUntilSignal(server);
