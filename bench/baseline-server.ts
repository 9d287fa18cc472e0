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
import type { AddressInfo } from 'node:net';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const host = arg('host', '127.0.0.1');
const port = Number(arg('port', '0'));
const location = arg('location', 'https://example.org/');

// Same options and headers as lambda/local/server.ts (redirect branch of carryOut).
const server = http.createServer({ requestTimeout: 120_000, headersTimeout: 30_000, keepAliveTimeout: 5_000 }, (req, res) => {
  req.resume();
  res.writeHead(307, { 'cache-control': 'private, no-store', location, 'content-length': '0' });
  res.end();
});

server.listen(port, host, () => {
  const a = server.address() as AddressInfo;
  process.stderr.write(`listening on http://${a.address}:${a.port}\n`);
});

const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2_000).unref();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
