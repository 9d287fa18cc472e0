/**
 * What the baseline servers started by the bench (baseline-server.ts, baseline-proxy.ts) share:
 * their command-line options, and listening until SIGTERM or SIGINT.
 */
import type http from 'node:http';
import type { AddressInfo } from 'node:net';

/** The value of `--name VALUE` on the command line, or `fallback`. */
export function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

/**
 * Listens on `--host`/`--port` (default 127.0.0.1, a port the system picks), prints
 * `listening on http://HOST:PORT` on stderr once bound (the bench waits for it), and stops on
 * SIGTERM or SIGINT: closes the server and its connections, runs `cleanup`, exits 0 (after 2 s at most).
 */
export function serveUntilSignal(server: http.Server, cleanup: () => void = () => undefined): void {
  server.listen(Number(arg('port', '0')), arg('host', '127.0.0.1'), () => {
    const a = server.address() as AddressInfo;
    process.stderr.write(`listening on http://${a.address}:${a.port}\n`);
  });
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    cleanup();
    setTimeout(() => process.exit(0), 2_000).unref();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
