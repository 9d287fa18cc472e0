/**
 * The README quick-start story: `serve` with no --manifest serves the bundled example; curl gets
 * the 307 to GitHub, and the download event is on disk within 1 s.
 */
import fs from 'node:fs';
import path from 'node:path';
import { curl, eventFiles, Gateway, makeTempDir, readEvents, removeDir, startGateway, pollUntil } from './helpers';

jest.setTimeout(60_000);

let dir: string;
let events: string;
let gw: Gateway;

beforeAll(async () => {
  dir = makeTempDir('gw-e2e-quickstart-');
  events = path.join(dir, 'events');
  gw = await startGateway({ events }); // no --manifest: the bundled examples/manifest.json
});

afterAll(async () => {
  await gw?.kill();
  removeDir(dir);
});

const ROCKET = '/rocket/1.2.0/rocket-linux-amd64.tar.gz';
const GITHUB = 'https://github.com/acme/rocket/releases/download/v1.2.0/rocket-linux-amd64.tar.gz';

test('the startup line names the example manifest', async () => {
  // The line is written just after the port opens: wait for it rather than race it.
  await gw.waitForStderr(/listening on http:\/\/127\.0\.0\.1:\d+ \(9 rules on 4 domains from examples\/manifest\.json/);
});

test('curl -H "Host: get.localhost" gets a 307 to the GitHub release with Cache-Control: private, no-store', async () => {
  const r = await curl(gw.url(ROCKET), ['-H', 'Host: get.localhost']);
  const answered = Date.now();
  expect(r.status).toBe(307);
  expect(r.headers.location).toBe(GITHUB);
  expect(r.headers['cache-control']).toBe('private, no-store');
  expect(r.body.length).toBe(0);

  // The event is on disk within 1 s of the response.
  const [ev] = await pollUntil('the quick-start download event', () => {
    const found = readEvents(events).filter((e) => e.path === ROCKET);
    return found.length ? found : undefined;
  }, 1_000, 5);
  expect(Date.now() - answered).toBeLessThanOrEqual(1_000);

  expect(ev).toMatchObject({
    kind: 'file',
    action: 'redirect',
    download: true,
    package_id: 'rocket-cli',
    domain: 'get.localhost',
    method: 'GET',
    path: ROCKET,
    status: 307,
    target: GITHUB,
    client_name: 'curl',
    version: '1.2.0',
    variables: { version: '1.2.0', os: 'linux', arch: 'amd64' },
    pixel_id: null,
    body_event: null,
    country: null,
  });
  expect(Object.keys(ev.variables).sort()).toEqual(['arch', 'os', 'version']);
  expect(ev.id).toMatch(/^[0-9a-f-]{36}$/);
  expect(ev.time).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
  expect(typeof ev.visitor_id).toBe('string');

  // Laid out as DIR/dt=YYYY-MM-DD/<file>.ndjson, the day being the event's UTC day.
  const files = eventFiles(events);
  expect(files.length).toBeGreaterThanOrEqual(1);
  for (const f of files) {
    expect(path.relative(events, f)).toMatch(/^dt=\d{4}-\d{2}-\d{2}\/[^/]+\.ndjson$/);
  }
  const holding = files.filter((f) => fs.readFileSync(f, 'utf8').includes(ev.id));
  expect(holding).toHaveLength(1);
  expect(path.basename(path.dirname(holding[0]))).toBe(`dt=${ev.time.slice(0, 10)}`);
});

test('the other example domains answer too (file-v2, catch-all)', async () => {
  const nightly = await curl(gw.url('/nightly/2024-05-01/rocket.tar.gz'), ['-H', 'Host: get.localhost']);
  expect(nightly.status).toBe(307);
  expect(nightly.headers.location).toBe('https://acme-nightlies.s3.amazonaws.com/2024-05-01/rocket.tar.gz');
  const docs = await curl(gw.url('/guide/install?lang=en'), ['-H', 'Host: docs.localhost']);
  expect(docs.status).toBe(307);
  expect(docs.headers.location).toBe('https://acme.github.io/guide/install?lang=en');
});

test('SIGTERM stops it with exit status 0', async () => {
  const exit = await gw.stop();
  expect(exit).toEqual({ code: 0, signal: null });
  expect(gw.stderr).toMatch(/SIGTERM: stopping/);
});
