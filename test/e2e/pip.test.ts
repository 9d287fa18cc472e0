/**
 * pip through the local gateway, with no network: wheels built by hand, served by a local file
 * server; project pages from python-v1 rules, and from local upstream indexes (PEP 503 HTML and
 * PEP 691 JSON) through python-index-v1 rules. pip runs isolated from this machine's pip
 * configuration and installs into temp directories only.
 */
import fs from 'node:fs';
import path from 'node:path';
import { curl, freePort, Gateway, makeTempDir, removeDir, startGateway, writeJson, type GatewayEventJson } from './helpers';
import { buildWheel, pip, settledEvents, StaticServer, type Wheel } from './package-fixtures';

jest.setTimeout(120_000);

const DOMAIN = 'localhost'; // resolves to 127.0.0.1 everywhere; pip sends it as Host
let dir: string;
let events: string;
let files: StaticServer;
let gw: Gateway;
let demo: Wheel;
let upHtml2: Wheel;
let upHtml3: Wheel;
let upJson: Wheel;
let index: string;

beforeAll(async () => {
  dir = makeTempDir('gw-e2e-pip-');
  events = path.join(dir, 'events');
  const wheels = path.join(dir, 'wheels');
  fs.mkdirSync(wheels);
  [demo, upHtml2, upHtml3, upJson] = await Promise.all([
    buildWheel('gateway-demo', '1.0.0', wheels),
    buildWheel('upstream-html', '2.0.0', wheels),
    buildWheel('upstream-html', '3.0.0', wheels),
    buildWheel('upstream-json', '1.5.0', wheels),
  ]);
  files = await new StaticServer().start();
  for (const w of [demo, upHtml2, upHtml3, upJson]) {
    files.route(`/files/${w.fileName}`, { body: w.bytes, headers: { 'content-type': 'application/octet-stream' } });
    files.route(`/files/${w.fileName}.metadata`, { body: w.metadata, headers: { 'content-type': 'application/octet-stream' } });
  }
  // An upstream PEP 503 HTML index with relative links; 3.0.0 is yanked, so pip must pick 2.0.0.
  files.route('/html-index/upstream-html/', {
    headers: { 'content-type': 'text/html; charset=utf-8' },
    body: `<!DOCTYPE html><html><body>
<a href="../../files/${upHtml2.fileName}#sha256=${upHtml2.sha256}" data-requires-python="&gt;=3.7">${upHtml2.fileName}</a>
<a href="../../files/${upHtml3.fileName}#sha256=${upHtml3.sha256}" data-yanked="broken release">${upHtml3.fileName}</a>
</body></html>`,
  });
  // An upstream PEP 691 JSON index with absolute URLs and PEP 658 metadata.
  files.route('/json-index/upstream-json/', {
    headers: { 'content-type': 'application/vnd.pypi.simple.v1+json' },
    body: JSON.stringify({
      meta: { 'api-version': '1.1' },
      name: 'upstream-json',
      versions: ['1.5.0'],
      files: [{ filename: upJson.fileName, url: `${files.base}/files/${upJson.fileName}`, hashes: { sha256: upJson.sha256 }, 'requires-python': '>=3.8', 'core-metadata': { sha256: upJson.metadataSha256 }, size: upJson.bytes.length, 'upload-time': '2025-01-02T03:04:05.000000Z' }],
    }),
  });
  // Served as if it were PyPI: the rule names no index (pypi.org by default), --upstream points it here.
  files.route('/pypi/simple/via-override/', {
    headers: { 'content-type': 'application/vnd.pypi.simple.v1+json' },
    body: JSON.stringify({ meta: { 'api-version': '1.0' }, name: 'via-override', files: [{ filename: upJson.fileName, url: `${files.base}/files/${upJson.fileName}`, hashes: { sha256: upJson.sha256 } }] }),
  });
  const deadPort = await freePort();
  const fileUrl = (w: Wheel) => `${files.base}/files/${w.fileName}`;
  index = `http://${DOMAIN}:PORT/simple/`;
  const manifest = writeJson(path.join(dir, 'manifest.json'), {
    rules: [
      // Written with another spelling than pip asks for: matched after PEP 503 normalisation.
      { type: 'python-v1', domain: DOMAIN, 'package-name': 'Gateway_Demo', 'file-name': demo.fileName, version: '1.0.0', 'backend-url': fileUrl(demo), 'package-id': 'demo', 'hash-value': { type: 'sha256', hash: demo.sha256 }, 'requires-python': '>=3.7', 'core-metadata': { type: 'sha256', hash: demo.metadataSha256 } },
      // A wrong hash: pip must refuse the file.
      { type: 'python-v1', domain: DOMAIN, 'package-name': 'tampered', 'file-name': 'tampered-1.0.0-py3-none-any.whl', version: '1.0.0', 'backend-url': fileUrl(demo), 'package-id': 'tampered', 'hash-value': { type: 'sha256', hash: '0'.repeat(64) } },
      { type: 'python-index-v1', domain: DOMAIN, 'package-name': 'upstream-html', 'backend-simple-index-url': `${files.base}/html-index/`, 'package-id': 'up-html' },
      { type: 'python-index-v1', domain: DOMAIN, 'package-name': 'via-override', 'package-id': 'pypi-mirror', 'cache-seconds': 0 },
      { type: 'python-index-v1', domain: DOMAIN, 'package-name': 'dead-upstream', 'backend-simple-index-url': `http://127.0.0.1:${deadPort}/simple/`, 'package-id': 'dead' },
      { type: 'python-index-v1', domain: DOMAIN, 'package-name': '*', 'backend-simple-index-url': `${files.base}/json-index/`, 'package-id': 'up-any', 'cache-seconds': 30 },
    ],
  });
  gw = await startGateway({ manifest, events, upstreams: [`pypi.org=${files.base}/pypi`] });
  index = `http://${DOMAIN}:${gw.port}/simple/`;
});

afterAll(async () => {
  await gw?.kill();
  await files?.stop();
  removeDir(dir);
});

const settled = () => settledEvents(gw, events, DOMAIN);

const downloadsOf = (evs: GatewayEventJson[], fileName: string) => evs.filter((e) => e.download && e.file_name === fileName);

describe('python-v1 pages', () => {
  test('pip download: PEP 691 JSON page, metadata through the gateway, one download', async () => {
    const out = path.join(dir, 'dl-demo');
    const r = await pip(['download', '--no-deps', '-d', out, '--index-url', index, 'Gateway.Demo==1.0.0'], dir);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
    expect(fs.readFileSync(path.join(out, demo.fileName)).equals(demo.bytes)).toBe(true);

    const evs = await settled();
    const page = evs.find((e) => e.path === '/simple/gateway-demo/');
    expect(page).toMatchObject({ kind: 'python', action: 'respond', download: false, package_id: 'demo', client_name: 'pip', status: 200 });
    const [dl] = downloadsOf(evs, demo.fileName);
    expect(dl).toMatchObject({ kind: 'python', action: 'redirect', status: 307, package_id: 'demo', version: '1.0.0', target: `${files.base}/files/${demo.fileName}`, client_name: 'pip', client_version: expect.stringMatching(/^\d+\.\d+/) });
    expect(downloadsOf(evs, demo.fileName)).toHaveLength(1);
    // pip read the metadata first (PEP 658), through the gateway's 307, uncounted.
    expect(files.gets(`/files/${demo.fileName}.metadata`)).toHaveLength(1);
    expect(evs.filter((e) => e.file_name === `${demo.fileName}.metadata`)).toEqual([expect.objectContaining({ status: 307, download: false, version: '1.0.0' })]);
  });

  test('pip install --target: installs the wheel; exactly one more download', async () => {
    const target = path.join(dir, 'site-demo');
    const before = downloadsOf(await settled(), demo.fileName).length;
    const r = await pip(['install', '--no-deps', '--target', target, '--index-url', index, 'gateway-demo'], dir);
    expect(r.code).toBe(0);
    expect(fs.readFileSync(path.join(target, 'gateway_demo', '__init__.py'), 'utf8')).toBe("VERSION = '1.0.0'\n");
    expect(downloadsOf(await settled(), demo.fileName)).toHaveLength(before + 1);
  });

  test('a wrong hash on the page makes pip refuse the file', async () => {
    const target = path.join(dir, 'site-tampered');
    const r = await pip(['install', '--no-deps', '--target', target, '--index-url', index, 'tampered'], dir);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/DO NOT MATCH THE HASHES/);
    expect(r.stderr).toContain('0'.repeat(64));
    expect(fs.existsSync(path.join(target, 'gateway_demo'))).toBe(false);
  });

  test('curl: HTML without Accept, 406 for unsupported types, /simple/pkg redirects to /simple/pkg/', async () => {
    const html = await curl(`${index}gateway-demo/`);
    expect(html.status).toBe(200);
    expect(html.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(html.headers.vary).toBe('Accept');
    expect(html.body.toString()).toContain(`data-core-metadata="sha256=${demo.metadataSha256}"`);
    expect((await curl(`${index}gateway-demo/`, ['-H', 'Accept: application/json'])).status).toBe(406);
    const slash = await curl(`${index}Gateway_Demo`);
    expect(slash.status).toBe(307);
    expect(slash.headers.location).toBe(`${index}Gateway_Demo/`);
  });
});

describe('python-index-v1 (upstream index)', () => {
  test('pip install from an upstream HTML index: links rewritten, yanked release skipped', async () => {
    const target = path.join(dir, 'site-html');
    const r = await pip(['install', '--no-deps', '--target', target, '--index-url', index, 'upstream_html'], dir);
    expect(r.code).toBe(0);
    expect(fs.readFileSync(path.join(target, 'upstream_html', '__init__.py'), 'utf8')).toBe("VERSION = '2.0.0'\n");
    expect(files.gets(`/files/${upHtml3.fileName}`)).toHaveLength(0);
    const page = await curl(`${index}upstream-html/`, ['-H', 'Accept: application/vnd.pypi.simple.v1+json']);
    const json = JSON.parse(page.body.toString());
    expect(json.files.map((f: { url: string; yanked?: unknown }) => [f.url, f.yanked ?? false])).toEqual([
      [`/simple/upstream-html/${upHtml2.fileName}`, false],
      [`/simple/upstream-html/${upHtml3.fileName}`, 'broken release'],
    ]);
    const evs = await settled();
    expect(downloadsOf(evs, upHtml2.fileName)).toEqual([expect.objectContaining({ package_id: 'up-html', version: '2.0.0', target: `${files.base}/files/${upHtml2.fileName}`, client_name: 'pip' })]);
  });

  test('pip download from an upstream JSON index through the "*" rule, with PEP 658 metadata', async () => {
    const out = path.join(dir, 'dl-json');
    const r = await pip(['download', '--no-deps', '-d', out, '--index-url', index, 'upstream-json'], dir);
    expect(r.code).toBe(0);
    expect(fs.readFileSync(path.join(out, upJson.fileName)).equals(upJson.bytes)).toBe(true);
    const evs = await settled();
    expect(downloadsOf(evs, upJson.fileName)).toEqual([expect.objectContaining({ package_id: 'up-any', version: '1.5.0', client_name: 'pip' })]);
    // The upstream page was fetched as JSON, and once for page and file (cache-seconds: 30).
    const fetched = files.gets('/json-index/upstream-json/');
    expect(fetched).toHaveLength(1);
    expect(fetched[0].accept).toMatch(/^application\/vnd\.pypi\.simple\.v1\+json/);
  });

  test('--upstream overrides apply to upstream pages: a rule on pypi.org (the default) served from a local mirror', async () => {
    const page = await curl(`${index}via-override/`, ['-H', `Accept: ${'application/vnd.pypi.simple.latest+json'}`]);
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('application/vnd.pypi.simple.v1+json');
    expect(JSON.parse(page.body.toString()).files[0].url).toBe(`/simple/via-override/${upJson.fileName}`);
    expect(files.gets('/pypi/simple/via-override/')).toHaveLength(1);
    const file = await curl(`${index}via-override/${upJson.fileName}`, ['-I']); // HEAD: redirected, not a download
    expect(file.headers.location).toBe(`${files.base}/files/${upJson.fileName}`);
    expect(files.gets('/pypi/simple/via-override/')).toHaveLength(2); // cache-seconds: 0
  });

  test('an unreachable upstream index gives pip a clear 502', async () => {
    const r = await curl(`${index}dead-upstream/`);
    expect(r.status).toBe(502);
    expect(r.body.toString()).toMatch(/upstream 127\.0\.0\.1:\d+ is unreachable/);
    const p = await pip(['download', '--no-deps', '-d', path.join(dir, 'dl-dead'), '--index-url', index, '--retries', '0', '-vv', 'dead-upstream'], dir);
    expect(p.code).not.toBe(0);
    expect(`${p.stdout}${p.stderr}`).toMatch(/502 Server Error: Bad Gateway/);
  });

  test('unknown projects are a 404 from the upstream, recorded without a download', async () => {
    const r = await curl(`${index}no-such-project/`);
    expect(r.status).toBe(404);
    const evs = await settled();
    expect(evs.find((e) => e.path === '/simple/no-such-project/')).toMatchObject({ action: 'not-found', download: false, package_id: 'up-any' });
  });
});

test('every full download in the events was a file pip really fetched from the file server', async () => {
  const evs = await settled();
  // By the URL redirected to: the tampered project's link points at another project's wheel.
  const counted = evs.filter((e) => e.download).map((e) => path.basename(new URL(e.target!).pathname)).sort();
  // Full GETs (no Range) of wheels at the file server, by file name.
  const fetched = files.requests.filter((r) => r.method === 'GET' && r.range === undefined && r.path.endsWith('.whl')).map((r) => path.basename(r.path)).sort();
  expect(counted).toEqual(fetched);
  expect(evs.filter((e) => e.file_name?.endsWith('.metadata')).every((e) => !e.download)).toBe(true);
});
