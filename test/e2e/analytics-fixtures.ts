/**
 * A generated, seeded set of analytics events with the variety real traffic has (every kind and
 * action, downloads and non-downloads, bots, unknown clients, docker tags and digests, GET and
 * HEAD, failures, several days and hours, not-found paths past the queries' LIMIT), and the true
 * answers to every named query computed here in TypeScript, independently of the SQL.
 */
import type { GatewayEvent, EventAction, EventKind } from '../../lambda/core/events';

/** mulberry32: a small deterministic PRNG, so a failure can be reproduced. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CLIENTS: Array<Pick<GatewayEvent, 'client_name' | 'client_version' | 'os' | 'arch' | 'ci' | 'bot'>> = [
  { client_name: 'docker', client_version: '24.0.7', os: 'linux', arch: 'amd64', ci: null, bot: false },
  { client_name: 'containerd', client_version: '1.7.2', os: null, arch: null, ci: null, bot: false },
  { client_name: 'pip', client_version: '23.2.1', os: 'linux', arch: 'amd64', ci: true, bot: false },
  { client_name: 'uv', client_version: '0.4.18', os: 'darwin', arch: 'arm64', ci: null, bot: false },
  { client_name: 'npm', client_version: '10.2.4', os: 'linux', arch: 'amd64', ci: true, bot: false },
  { client_name: 'curl', client_version: '8.4.0', os: null, arch: null, ci: null, bot: false },
  { client_name: 'firefox', client_version: '121', os: 'windows', arch: null, ci: null, bot: false },
  { client_name: null, client_version: null, os: null, arch: null, ci: null, bot: false },
  { client_name: 'googlebot', client_version: '2.1', os: null, arch: null, ci: null, bot: true },
  { client_name: 'bandersnatch', client_version: '6.5.0', os: null, arch: null, ci: null, bot: true },
  { client_name: null, client_version: null, os: null, arch: null, ci: null, bot: true },
];
const ORIGINS: Array<Pick<GatewayEvent, 'country' | 'region' | 'asn' | 'org'>> = [
  { country: 'DE', region: 'DE-BY', asn: '3320', org: null },
  { country: 'US', region: 'US-VA', asn: '16509', org: 'Amazon' },
  { country: 'US', region: 'US-WA', asn: '8075', org: 'Microsoft' },
  { country: 'JP', region: null, asn: '2516', org: null },
  { country: null, region: null, asn: null, org: null },
];
const DAYS = ['2024-05-01', '2024-05-02', '2024-05-03', '2024-05-04'];

type Draft = Pick<GatewayEvent, 'kind' | 'action' | 'method' | 'path' | 'status' | 'download' | 'package_id' | 'domain'> & Partial<GatewayEvent>;

function pick<T>(rnd: () => number, list: readonly T[]): T {
  return list[Math.floor(rnd() * list.length)];
}

/** One request's event, before the common fields are filled in. */
function draft(rnd: () => number): Draft {
  const r = rnd();
  const ok = rnd() < 0.85;
  if (r < 0.3) {
    // docker: manifest GET/HEAD by tag or digest, blobs, the /v2/ ping
    const image = pick(rnd, ['acme/rocket', 'acme/launcher', 'library/hello-world']);
    const what = rnd();
    const method = rnd() < 0.6 ? 'GET' : 'HEAD';
    const action: EventAction = rnd() < 0.5 ? 'redirect' : 'proxy';
    const status = ok ? (action === 'redirect' ? 307 : 200) : pick(rnd, [401, 404, 304]);
    if (what < 0.1) return { kind: 'docker', action, method: 'GET', path: '/v2/', status: ok ? 200 : 401, download: false, package_id: null, domain: 'cr.acme.test', image: '', reference: '', upstream: 'ghcr.io' };
    const reference = what < 0.6 ? pick(rnd, ['latest', '1.2.0', '1.3.0']) : `sha256:${pick(rnd, ['aa', 'bb', 'cc']).repeat(32)}`;
    const endpoint = what < 0.85 ? 'manifests' : 'blobs';
    const packageId = image === 'library/hello-world' ? null : `${image.split('/')[1]}-image`;
    return {
      kind: 'docker', action, method, path: `/v2/${image}/${endpoint}/${reference}`, status,
      download: method === 'GET' && endpoint === 'manifests' && status >= 200 && status < 400 && status !== 304,
      package_id: packageId, auto_create_rule_id: packageId ? null : 'hello-pattern',
      domain: 'cr.acme.test', image, reference, upstream: 'ghcr.io',
    };
  }
  if (r < 0.55) {
    const version = pick(rnd, ['1.2.0', '1.3.0', '2.0.0']);
    const file = `rocket-${version}-py3-none-any.whl`;
    const method = rnd() < 0.85 ? 'GET' : 'HEAD';
    const ranged = rnd() < 0.1;
    const status = ok ? 307 : 404;
    return {
      kind: 'python', action: ok ? 'redirect' : 'not-found', method, path: `/simple/rocket/${file}`, status,
      download: ok && method === 'GET' && !ranged, package_id: ok ? 'rocket-py' : null, domain: 'py.acme.test',
      file_name: ok ? file : null, version: ok ? version : null,
    };
  }
  if (r < 0.8) {
    const version = pick(rnd, ['1.2.0', '1.3.0']);
    const os = pick(rnd, ['linux', 'darwin', 'windows']);
    const method = rnd() < 0.9 ? 'GET' : 'HEAD';
    return {
      kind: 'file', action: 'redirect', method, path: `/rocket/${version}/rocket-${os}-amd64.tar.gz`, status: 307,
      download: method === 'GET', package_id: 'rocket-cli', domain: 'get.acme.test',
      version, variables: { version, os, arch: 'amd64' },
      target: `https://github.com/acme/rocket/releases/download/v${version}/rocket-${os}-amd64.tar.gz`,
    };
  }
  if (r < 0.85) {
    return {
      kind: 'telemetry', action: 'respond', method: 'POST', path: '/telemetry', status: 200, download: false,
      package_id: 'rocket-cli', domain: 'get.acme.test', body_event: { event: 'start', n: Math.floor(rnd() * 10) },
    };
  }
  if (r < 0.88) {
    return { kind: 'catch-all', action: 'redirect', method: 'GET', path: `/docs/${pick(rnd, ['a', 'b'])}`, status: 307, download: true, package_id: 'site', domain: 'get.acme.test', target: 'https://docs.acme.test/' };
  }
  // not found: mistyped paths, many distinct ones (more than the queries' LIMIT 100)
  const kind: EventKind = pick(rnd, ['file', 'python', 'docker']);
  const typo = Math.floor(rnd() ** 2 * 160);
  const domain = pick(rnd, ['get.acme.test', 'py.acme.test']);
  return { kind, action: 'not-found', method: 'GET', path: `/rockett/${typo}`, status: 404, download: false, package_id: null, domain };
}

/** `count` events over four days, with realistic repetition of visitors. */
export function generateEvents(count: number, seed = 42): GatewayEvent[] {
  const rnd = prng(seed);
  const out: GatewayEvent[] = [];
  for (let i = 0; i < count; i++) {
    const d = draft(rnd);
    const day = pick(rnd, DAYS);
    const hour = String(Math.floor(rnd() * 24)).padStart(2, '0');
    const minute = String(Math.floor(rnd() * 60)).padStart(2, '0');
    const client = pick(rnd, CLIENTS);
    out.push({
      id: `ev-${seed}-${i}`,
      time: `${day}T${hour}:${minute}:${String(i % 60).padStart(2, '0')}.${String(i % 1000).padStart(3, '0')}Z`,
      auto_create_rule_id: null, target: null, image: null, reference: null, upstream: null,
      file_name: null, version: null, variables: {}, body_event: null, pixel_id: null,
      ...client,
      ...pick(rnd, ORIGINS),
      // 40 visitors a day (ids rotate daily), some events without one.
      visitor_id: rnd() < 0.05 ? null : `v-${day}-${Math.floor(rnd() * 40)}`,
      ...d,
    } as GatewayEvent);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The true answers, computed without SQL

type Row = unknown[];
type Key = (e: GatewayEvent) => unknown[];

/** Groups events by a key; each group yields one row from the key and the group's events. */
function groupBy(events: GatewayEvent[], key: Key, row: (k: unknown[], g: GatewayEvent[]) => Row): Row[] {
  const groups = new Map<string, { k: unknown[]; g: GatewayEvent[] }>();
  for (const e of events) {
    const k = key(e);
    const id = JSON.stringify(k);
    const entry = groups.get(id) ?? { k, g: [] };
    entry.g.push(e);
    groups.set(id, entry);
  }
  return [...groups.values()].map(({ k, g }) => row(k, g));
}

/** ORDER BY column i ASC or DESC, NULLS LAST for ascending (both engines' default), byte order for strings. */
type Order = Array<[number, 'asc' | 'desc']>;
function sortRows(rows: Row[], order: Order): Row[] {
  const cmp = (a: unknown, b: unknown): number => {
    if (a === b) return 0;
    if (a === null) return 1;
    if (b === null) return -1;
    if (typeof a === 'number' && typeof b === 'number') return a - b;
    return String(a) < String(b) ? -1 : 1;
  };
  return [...rows].sort((x, y) => {
    for (const [i, dir] of order) {
      const c = cmp(x[i], y[i]);
      if (c !== 0) return dir === 'asc' ? c : x[i] === null || y[i] === null ? c : -c;
    }
    return 0;
  });
}

const distinct = (g: GatewayEvent[], f: (e: GatewayEvent) => unknown) => new Set(g.map(f).filter((v) => v !== null && v !== undefined)).size;
const counted = (e: GatewayEvent) => e.download && !e.bot;
const dayOf = (e: GatewayEvent) => e.time.slice(0, 10);

/** The rows each named query must return for these events, in order. */
export const EXPECTED: Record<string, (events: GatewayEvent[]) => Row[]> = {
  downloads_per_package_per_day: (ev) => sortRows(
    groupBy(ev.filter(counted), (e) => [dayOf(e), e.package_id], (k, g) => [...k, g.length]),
    [[0, 'asc'], [2, 'desc'], [1, 'asc']],
  ),
  downloads_per_version: (ev) => sortRows(
    groupBy(ev.filter((e) => counted(e) && e.version !== null), (e) => [e.package_id, e.version], (k, g) => [...k, g.length]),
    [[0, 'asc'], [2, 'desc'], [1, 'asc']],
  ),
  downloads_per_client: (ev) => sortRows(
    groupBy(ev.filter(counted), (e) => [e.package_id, e.client_name ?? 'unknown'], (k, g) => [...k, g.length]),
    [[0, 'asc'], [2, 'desc'], [1, 'asc']],
  ),
  downloads_per_country: (ev) => sortRows(
    groupBy(ev.filter(counted), (e) => [e.package_id, e.country ?? 'unknown'], (k, g) => [...k, g.length]),
    [[0, 'asc'], [2, 'desc'], [1, 'asc']],
  ),
  downloads_per_org: (ev) => sortRows(
    groupBy(ev.filter(counted), (e) => [e.package_id, e.org ?? 'other'], (k, g) => [...k, g.length]),
    [[0, 'asc'], [2, 'desc'], [1, 'asc']],
  ),
  unique_visitors_per_package_per_day: (ev) => sortRows(
    groupBy(ev.filter(counted), (e) => [dayOf(e), e.package_id], (k, g) => [...k, distinct(g, (e) => e.visitor_id), g.length]),
    [[0, 'asc'], [2, 'desc'], [1, 'asc']],
  ),
  docker_pulls_per_tag: (ev) => sortRows(
    groupBy(
      ev.filter((e) => e.kind === 'docker' && !e.bot && (e.method === 'GET' || e.method === 'HEAD') && e.status >= 200 && e.status <= 399
        && e.path.includes('/manifests/') && !(e.reference ?? '').startsWith('sha256:')),
      (e) => [e.image, e.reference],
      (k, g) => [...k, g.length, distinct(g, (e) => e.visitor_id)],
    ),
    [[2, 'desc'], [0, 'asc'], [1, 'asc']],
  ),
  top_files: (ev) => sortRows(
    groupBy(ev.filter((e) => counted(e) && e.kind !== 'docker'), (e) => [e.domain, e.path, e.package_id], (k, g) => [...k, g.length, distinct(g, (e) => e.visitor_id)]),
    [[3, 'desc'], [0, 'asc'], [1, 'asc'], [2, 'asc']],
  ).slice(0, 100),
  not_found_paths: (ev) => sortRows(
    groupBy(ev.filter((e) => e.action === 'not-found' && !e.bot), (e) => [e.domain, e.path], (k, g) => [...k, g.length, distinct(g, (e) => e.visitor_id)]),
    [[2, 'desc'], [0, 'asc'], [1, 'asc']],
  ).slice(0, 100),
  bot_traffic: (ev) => sortRows(
    groupBy(ev.filter((e) => e.bot), (e) => [e.client_name ?? 'unknown'], (k, g) => [...k, g.length, g.filter((e) => e.download).length]),
    [[1, 'desc'], [0, 'asc']],
  ),
  downloads_per_platform: (ev) => sortRows(
    groupBy(ev.filter(counted), (e) => [e.os ?? 'unknown', e.arch ?? 'unknown'], (k, g) => [...k, g.length, g.filter((e) => e.ci === true).length]),
    [[2, 'desc'], [0, 'asc'], [1, 'asc']],
  ),
  downloads_per_hour_of_day: (ev) => sortRows(
    groupBy(ev.filter(counted), (e) => [Number(e.time.slice(11, 13))], (k, g) => [...k, g.length]),
    [[0, 'asc']],
  ),
};
