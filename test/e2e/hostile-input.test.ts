/**
 * Hostile input over real sockets against the local gateway (a real child process): generated
 * malformed requests written as raw bytes on several keep-alive connections, then the SSRF and
 * credential rules of the proxy and the fetches with fake upstreams on 127.0.0.1.
 * The fuzz is seeded (FUZZ_SEED overrides); a failure lists the seed and the offending requests.
 */
import net from 'node:net';
import path from 'node:path';
import fc from 'fast-check';
import {
  curl, Gateway, headerValues, LOCAL, makeTempDir, readEventText, removeDir, startGateway, startUpstream, Upstream, writeJson,
} from './helpers';
import {
  HOSTILE_MANIFEST, leakedSecret, locationProblem, redirectHostProblem, requestArb, SECRET, SECRET_BASIC, toWire, UPSTREAM_HOSTS,
} from '../fixtures/hostile';

jest.setTimeout(120_000);

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : 20260809;
const SOCKET_RUNS = 20_000;
const CONNECTIONS = 4;

/** Request heads Node's parser must refuse with a 400 (and the gateway survive): raw CR/LF, NUL, smuggling shapes. */
const MALFORMED = [
  'GET /dl/1\r\n/x HTTP/1.1\r\nHost: get.example.test\r\n\r\n',
  'GET /dl/1\n/x HTTP/1.1\r\nHost: get.example.test\r\n\r\n',
  'GET /dl/1\0/x HTTP/1.1\r\nHost: get.example.test\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: get.example.test\r\nX-Bad: a\rb\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: get.example.test\r\nBad Name: x\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: get.example.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: get.example.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab',
  'GET / HTTP/1.1\r\nHost: get.example.test\r\nTransfer-Encoding: gzip, chunked, identity\r\n\r\n',
  'GET / HTTP/9.9\r\nHost: get.example.test\r\n\r\n',
  'GET /\r\n\r\n',
  '\u0016\u0003\u0001\u0002\u0000\u0001\u0000\u0001\u00fc\u0003\u0003 TLS hello\r\n\r\n',
  `GET / HTTP/1.1\r\nHost: get.example.test\r\nX-Huge: ${'x'.repeat(70 * 1024)}\r\n\r\n`,
  'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
  'GET * HTTP/1.1\r\nHost: get.example.test\r\n\r\n',
  'CONNECT evil.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n',
];

interface Answer {
  status: number;
  head: string;
  location: string | undefined;
  closed: boolean;
}

/** One keep-alive connection that sends a request and reads exactly its response. */
class Connection {
  private sock: net.Socket | null = null;
  private buf = Buffer.alloc(0);
  private ended = false;
  private wake: (() => void) | null = null;

  constructor(private readonly port: number) {}

  private open(): net.Socket {
    const sock = net.connect({ port: this.port, host: LOCAL });
    this.buf = Buffer.alloc(0);
    this.ended = false;
    // Events of a socket we already replaced must not touch the current one's state.
    sock.on('data', (c: Buffer) => {
      if (this.sock !== sock) return;
      this.buf = Buffer.concat([this.buf, c]);
      this.wake?.();
    });
    const end = () => {
      if (this.sock !== sock) return;
      this.ended = true;
      this.wake?.();
    };
    sock.on('end', end);
    sock.on('close', end);
    sock.on('error', end);
    this.sock = sock;
    return sock;
  }

  private async more(deadline: number): Promise<void> {
    if (this.ended) throw new Error('closed');
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no answer within 15 s')), Math.max(1, deadline - Date.now()));
      this.wake = () => {
        clearTimeout(t);
        this.wake = null;
        resolve();
      };
    });
  }

  /** `fresh`: use a new connection (requests after which Node may see the rest of the bytes as another request). */
  async exchange(bytes: Buffer, method: string, fresh = false): Promise<Answer> {
    if (fresh) this.close();
    const reused = this.sock !== null && !this.ended;
    const a = await this.once(bytes, method);
    // A kept-alive connection the server closed just as we reused it: retry once on a new one (as HTTP clients do).
    if (a.closed && a.status === 0 && reused) {
      this.close();
      return this.once(bytes, method);
    }
    return a;
  }

  private async once(bytes: Buffer, method: string): Promise<Answer> {
    const sock = this.sock && !this.ended ? this.sock : this.open();
    sock.write(bytes);
    const deadline = Date.now() + 15_000;
    let headEnd: number;
    while ((headEnd = this.buf.indexOf('\r\n\r\n')) < 0) {
      try {
        await this.more(deadline);
      } catch (e) {
        if (this.ended && this.buf.length === 0) {
          this.close();
          return { status: 0, head: '', location: undefined, closed: true };
        }
        throw e;
      }
    }
    const head = this.buf.subarray(0, headEnd).toString('latin1');
    let rest = this.buf.subarray(headEnd + 4);
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? -1);
    const h = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'im').exec(head)?.[1]?.trim();
    const bodyless = method.toUpperCase() === 'HEAD' || status === 204 || status === 304;
    const length = h('content-length');
    const chunked = /chunked/i.test(h('transfer-encoding') ?? '');
    const closing = /close/i.test(h('connection') ?? '');
    if (!bodyless && chunked) {
      // Chunk by chunk: size line, data, CRLF; a zero size and CRLF end the body (no trailers here).
      let at = 0;
      for (;;) {
        let line: number;
        while ((line = rest.indexOf('\r\n', at)) < 0) {
          await this.more(deadline);
          rest = this.buf.subarray(headEnd + 4);
        }
        const size = parseInt(rest.subarray(at, line).toString('latin1'), 16);
        const end = line + 2 + size + 2;
        while (rest.length < end) {
          await this.more(deadline);
          rest = this.buf.subarray(headEnd + 4);
        }
        at = end;
        if (size === 0) break;
      }
      this.buf = rest.subarray(at);
    } else if (!bodyless && length !== undefined) {
      while (rest.length < Number(length)) {
        await this.more(deadline);
        rest = this.buf.subarray(headEnd + 4);
      }
      this.buf = rest.subarray(Number(length));
    } else if (!bodyless && closing) {
      while (!this.ended) await this.more(deadline).catch(() => undefined);
      this.buf = Buffer.alloc(0);
    } else {
      this.buf = rest;
    }
    if (closing) {
      this.sock?.destroy();
      this.sock = null;
    }
    return { status, head, location: h('location'), closed: closing };
  }

  close(): void {
    this.sock?.destroy();
    this.sock = null;
  }
}

describe('hostile requests over real sockets', () => {
  let dir: string;
  let gw: Gateway;
  let fake: Upstream;

  beforeAll(async () => {
    dir = makeTempDir('gw-hostile-');
    // The npm registry and the Python index of the manifest: always "not found", never an error.
    fake = await startUpstream((req, res) => {
      req.resume();
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"error":"not found"}');
    });
    gw = await startGateway({
      manifest: writeJson(path.join(dir, 'manifest.json'), HOSTILE_MANIFEST),
      events: path.join(dir, 'events'),
      upstreams: [`${UPSTREAM_HOSTS.npm}=${fake.base}`, `${UPSTREAM_HOSTS.pypi}=${fake.base}`],
      extraArgs: ['--access-log'],
    });
  });

  afterAll(async () => {
    await gw?.kill();
    await fake?.close();
    removeDir(dir);
  });

  test(`${SOCKET_RUNS} generated requests as raw bytes on ${CONNECTIONS} keep-alive connections: no 5xx, safe redirects, the server stays up, no secret logged or recorded`, async () => {
    const requests = fc.sample(requestArb({ socketSafe: true }), { seed: SEED, numRuns: SOCKET_RUNS });
    const wire = requests.map((r, i) => (i % 40 === 39 ? { bytes: Buffer.from(MALFORMED[(i / 40) % MALFORMED.length | 0], 'latin1'), method: 'GET', own: true } : { bytes: toWire(r), method: r.method, own: r.body !== null || r.method.toUpperCase() === 'CONNECT' || r.headers.some(([n]) => n === 'Expect') }));
    const statuses = new Map<number, number>();
    const problems: string[] = [];
    let next = 0;
    const worker = async () => {
      const conn = new Connection(gw.port);
      try {
        while (next < wire.length) {
          const i = next++;
          // Bodies, Expect and CONNECT can leave bytes Node parses as a further request after an early answer: those go on a connection of their own.
          const own = wire[i].own;
          const a = await conn.exchange(wire[i].bytes, wire[i].method, own).catch((e: Error) => {
            problems.push(`request ${i}: ${e.message}: ${wire[i].bytes.subarray(0, 300).toString('latin1')}`);
            return null;
          });
          if (!a) {
            conn.close();
            continue;
          }
          if (own || a.status >= 400) conn.close();
          statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
          if (a.status === 0) problems.push(`request ${i}: connection closed without an answer: ${wire[i].bytes.subarray(0, 300).toString('latin1')}`);
          if (a.status >= 500 || a.status < 0) problems.push(`request ${i} got ${a.status} (${JSON.stringify(a.head.slice(0, 200))}): ${wire[i].bytes.subarray(0, 300).toString("latin1")}`);
          if (a.status >= 300 && a.status < 400 && a.status !== 304) {
            const p = a.location === undefined ? 'redirect without Location' : locationProblem(a.location) ?? redirectHostProblem(a.location);
            if (p) problems.push(`request ${i}: ${p}`);
          }
          if (problems.length > 20) throw new Error(problems.join('\n'));
        }
      } finally {
        conn.close();
      }
    };
    await Promise.all(Array.from({ length: CONNECTIONS }, worker));
    expect({ seed: SEED, problems }).toEqual({ seed: SEED, problems: [] });
    // The generator reached redirects, answers and refusals alike.
    expect(statuses.get(307) ?? 0).toBeGreaterThan(SOCKET_RUNS / 20);
    expect(statuses.get(400) ?? 0).toBeGreaterThan(SOCKET_RUNS / 100);
    expect(statuses.get(404) ?? 0).toBeGreaterThan(SOCKET_RUNS / 20);
    // Still up and answering.
    expect(gw.running()).toBe(true);
    const probe = await curl(gw.url('/dl/1.0/rocket.tgz'), ['-H', 'Host: get.example.test']);
    expect(probe.status).toBe(307);
    await gw.stop();
    expect(gw.exit).toEqual({ code: 0, signal: null });
    expect(leakedSecret(gw.stderr + gw.stdout)).toBeNull();
    const events = readEventText(path.join(dir, 'events'));
    expect(events.length).toBeGreaterThan(1000);
    expect(leakedSecret(events)).toBeNull();
  });
});

describe('no SSRF, no credentials to other hosts (fake upstreams on 127.0.0.1)', () => {
  let dir: string;
  let gw: Gateway;
  let regA: Upstream;
  let regB: Upstream;
  let cdn: Upstream;
  let npmReg: Upstream;
  const MANIFEST = '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}';

  beforeAll(async () => {
    dir = makeTempDir('gw-ssrf-');
    cdn = await startUpstream((_req, res) => res.end('blob'));
    regB = await startUpstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'content-length': String(MANIFEST.length) });
      res.end(MANIFEST);
    });
    regA = await startUpstream((req, res) => {
      const url = req.url ?? '';
      if (url === '/v2/') {
        // The token realm an attacker-controlled registry would name: the cloud metadata service.
        res.writeHead(401, { 'www-authenticate': 'Bearer realm="http://169.254.169.254/latest/meta-data/iam/",service="a"' });
        res.end();
      } else if (url.includes('/manifests/moved')) {
        // A repository that moved to the other configured registry: followed inside the gateway.
        res.writeHead(307, { location: 'https://reg-b.test/v2/acme/app/manifests/moved' });
        res.end();
      } else if (url.includes('/blobs/')) {
        // A blob on a storage host: handed back to the client, never fetched by the gateway.
        res.writeHead(307, { location: `${cdn.base}/blob?sig=1` });
        res.end();
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    npmReg = await startUpstream((req, res) => {
      const url = req.url ?? '';
      const to = url.startsWith('/rocket') ? 'http://169.254.169.254/latest/meta-data/' : url.startsWith('/@acme%2fmapped') ? 'http://[::ffff:169.254.169.254]/' : `${cdn.base}/packument`;
      res.writeHead(307, { location: to });
      res.end();
    });
    gw = await startGateway({
      manifest: writeJson(path.join(dir, 'manifest.json'), {
        rules: [
          { type: 'docker-v1', domain: 'cr.test', 'repository-name': 'acme/app', registry: 'reg-a.test', 'package-id': 'app', mode: 'proxy' },
          { type: 'docker-v1', domain: 'cr.test', 'repository-name': 'other/app', registry: 'reg-b.test', 'package-id': 'other' },
          { type: 'npm-v1', domain: 'npm.test', 'package-name': 'rocket', registry: 'https://npm-a.test', 'package-id': 'rocket' },
          { type: 'npm-v1', domain: 'npm.test', 'package-name': '@acme/*', registry: 'https://npm-a.test', 'package-id': 'acme' },
        ],
      }),
      events: path.join(dir, 'events'),
      upstreams: [`reg-a.test=${regA.base}`, `reg-b.test=${regB.base}`, `npm-a.test=${npmReg.base}`],
    });
  });

  afterAll(async () => {
    await gw?.kill();
    for (const u of [regA, regB, cdn, npmReg]) await u?.close();
    removeDir(dir);
  });

  test('Authorization goes to the configured upstream only: not to the registry a repository moved to, not to a blob host', async () => {
    const auth = `Basic ${SECRET_BASIC}`;
    const moved = await curl(gw.url('/v2/acme/app/manifests/moved'), ['-H', 'Host: cr.test', '-H', `Authorization: ${auth}`, '-H', 'User-Agent: skopeo/1.9.3']);
    expect(moved.status).toBe(200);
    expect(moved.body.toString()).toBe(MANIFEST);
    const atA = regA.seen.find((s) => s.url.includes('/manifests/moved'))!;
    expect(headerValues(atA, 'authorization')).toEqual([auth]);
    const atB = regB.seen.find((s) => s.url.includes('/manifests/moved'))!;
    expect(atB).toBeDefined();
    expect(headerValues(atB, 'authorization')).toEqual([]);

    const blob = await curl(gw.url('/v2/acme/app/blobs/sha256:abc'), ['-H', 'Host: cr.test', '-H', `Authorization: ${auth}`, '-H', 'User-Agent: skopeo/1.9.3']);
    expect(blob.status).toBe(307);
    expect(blob.headers.location).toBe(`${cdn.base}/blob?sig=1`);
    // The gateway handed the redirect back; the storage host saw nobody (curl did not follow).
    expect(cdn.seen).toEqual([]);
  });

  test('an upstream redirect to the metadata address is refused without contacting it (plain and IPv4-mapped IPv6)', async () => {
    for (const name of ['rocket', '@acme%2fmapped']) {
      const started = Date.now();
      const r = await curl(gw.url(`/${name}`), ['-H', 'Host: npm.test']);
      expect({ name, status: r.status }).toEqual({ name, status: 502 });
      expect(JSON.parse(r.body.toString())).toEqual({ error: expect.stringMatching(/redirected to (169\.254\.169\.254|\[::ffff:a9fe:a9fe\]), which is not a public address/) });
      // Refused before connecting: no connect timeout to an unroutable address.
      expect(Date.now() - started).toBeLessThan(10_000);
    }
    // A redirect to another loopback host from a loopback upstream is followed (internal registries).
    const other = await curl(gw.url('/@acme%2fother'), ['-H', 'Host: npm.test']);
    expect(other.status).not.toBe(502);
    expect(cdn.seen.map((s) => s.url)).toContain('/packument');
  });

  test('a registry naming the metadata service as its token realm gets no request from the gateway', async () => {
    // Several registries on cr.test: the gateway runs its own token realm and asks the upstreams' token services.
    const r = await curl(gw.url('/v2/token?scope=repository:acme/app:pull&service=cr.test'), ['-H', 'Host: cr.test', '-H', `Authorization: Basic ${SECRET_BASIC}`]);
    expect(r.status).toBe(502);
    expect(r.body.toString()).toMatch(/token service of upstream registry reg-a\.test is unreachable/);
    expect(r.body.toString()).not.toContain(SECRET);
    expect(leakedSecret(gw.stderr + gw.stdout)).toBeNull();
  });
});
