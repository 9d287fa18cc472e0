/**
 * Rules reload while serving: a changed manifest answers within ~2 s; an invalid one is reported
 * on stderr and the last good rules keep answering; fixing it reloads.
 */
import fs from 'node:fs';
import path from 'node:path';
import { curl, Gateway, makeTempDir, pollUntil, removeDir, startGateway, waitForEvents } from './helpers';

jest.setTimeout(60_000);

const rule = (target: string, extra: object[] = []) => ({
  rules: [
    { type: 'file-v1', domain: 'reload.test', 'incoming-path': '/get/{name}', 'outgoing-url': `https://${target}/files/{name}`, 'package-id': `pkg-${target}` },
    ...extra,
  ],
});

let dir: string;
let events: string;
let manifest: string;
let gw: Gateway;

/** Replaces the manifest atomically (write + rename), as editors and deploy tools do. */
function replaceManifest(value: unknown | string): void {
  const tmp = `${manifest}.tmp-${Date.now()}`;
  fs.writeFileSync(tmp, typeof value === 'string' ? value : JSON.stringify(value, null, 2));
  fs.renameSync(tmp, manifest);
}

async function locationOf(p: string): Promise<string | undefined> {
  const r = await curl(gw.url(p), ['-H', 'Host: reload.test']);
  return r.status === 307 ? r.headers.location : `status ${r.status}`;
}

/** Polls until `p` redirects to `expected`; returns the time it took. */
async function waitForLocation(p: string, expected: string, timeoutMs = 2_500): Promise<number> {
  const t0 = Date.now();
  await pollUntil(`${p} -> ${expected}`, async () => ((await locationOf(p)) === expected ? true : undefined), timeoutMs, 50);
  return Date.now() - t0;
}

beforeAll(async () => {
  dir = makeTempDir('gw-e2e-reload-');
  events = path.join(dir, 'events');
  manifest = path.join(dir, 'manifest.json');
  fs.writeFileSync(manifest, JSON.stringify(rule('one.example')));
  gw = await startGateway({ manifest, events });
});

afterAll(async () => {
  await gw?.kill();
  removeDir(dir);
});

test('the first rules answer', async () => {
  expect(await locationOf('/get/a.txt')).toBe('https://one.example/files/a.txt');
  expect(await locationOf('/extra')).toBe('status 404');
});

test('a changed manifest takes effect within ~2 s, new rules included', async () => {
  replaceManifest(rule('two.example', [{ type: 'file-v1', domain: 'reload.test', 'incoming-path': '/extra', 'outgoing-url': 'https://two.example/extra', 'package-id': 'extra' }]));
  const took = await waitForLocation('/get/a.txt', 'https://two.example/files/a.txt');
  expect(took).toBeLessThan(2_500);
  expect(await locationOf('/extra')).toBe('https://two.example/extra');
  await pollUntil('reload message', () => (/reloaded .*manifest\.json: 2 rules on 1 domains/.test(gw.stderr) ? true : undefined));
  // Events carry the new rule's package.
  const [ev] = await waitForEvents(events, (e) => e.path === '/get/a.txt' && e.package_id === 'pkg-two.example');
  expect(ev.target).toBe('https://two.example/files/a.txt');
});

test('an invalid manifest is reported on stderr, naming the problem; the old rules keep answering', async () => {
  const offset = gw.stderr.length;
  replaceManifest({
    rules: [
      { type: 'file-v1', domain: 'reload.test', 'outgoing-url': 'https://three.example/files/{name}', 'package-id': 'pkg-three' },
    ],
  });
  await gw.waitForStderr(/changed but is invalid \(1 problem\); still serving the previous rules/, 5_000, offset);
  await gw.waitForStderr(/rule 0 \(file-v1, reload\.test\), field "incoming-path": is required/, 5_000, offset);
  expect(await locationOf('/get/a.txt')).toBe('https://two.example/files/a.txt');
  expect(await locationOf('/extra')).toBe('https://two.example/extra');
  expect(gw.running()).toBe(true);
});

test('text that is not JSON is reported too, and the old rules keep answering', async () => {
  const offset = gw.stderr.length;
  replaceManifest('{"rules": [ {"type": "file-v1", ');
  await gw.waitForStderr(/changed but is invalid/, 5_000, offset);
  await gw.waitForStderr(/not valid JSON/, 5_000, offset);
  expect(await locationOf('/get/b.txt')).toBe('https://two.example/files/b.txt');
});

test('fixing the manifest reloads it', async () => {
  replaceManifest(rule('three.example'));
  const took = await waitForLocation('/get/a.txt', 'https://three.example/files/a.txt');
  expect(took).toBeLessThan(2_500);
  expect(await locationOf('/extra')).toBe('status 404');
});

test('an in-place rewrite (same inode) reloads too', async () => {
  fs.writeFileSync(manifest, JSON.stringify(rule('four.example')));
  await waitForLocation('/get/a.txt', 'https://four.example/files/a.txt');
});

test('SIGTERM stops it with exit status 0', async () => {
  expect(await gw.stop()).toEqual({ code: 0, signal: null });
});
