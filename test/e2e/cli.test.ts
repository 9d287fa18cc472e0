/**
 * The command line as users run it: help texts, usage errors (exit 2), `rules validate` (exit 0/1,
 * every problem listed, --json), `serve` refusing an invalid manifest or a busy port (exit 1).
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { freePort, LOCAL, makeTempDir, removeDir, runCli, writeJson } from './helpers';

jest.setTimeout(60_000);

let dir: string;
beforeAll(() => {
  dir = makeTempDir('gw-e2e-cli-');
});
afterAll(() => removeDir(dir));

const VALID = {
  rules: [
    {
      type: 'file-v1',
      domain: 'get.example.com',
      'incoming-path': '/tool/{version}/tool-{os}.tar.gz',
      'outgoing-url': 'https://downloads.example.com/{version}/tool-{os}.tar.gz',
      'package-id': 'tool',
    },
    { type: 'catch-all-v1', domain: 'docs.example.com', 'redirect-target-domain': 'example.github.io', 'package-id': 'docs' },
  ],
};

/** Problems in five different rules, of five different kinds; rule 0 is valid. */
const INVALID = {
  rules: [
    VALID.rules[0],
    // 1: a required field is missing
    { type: 'file-v1', domain: 'files.example.com', 'incoming-path': '/a/{x}', 'outgoing-url': 'https://x.example.com/{x}' },
    // 2: an upstream that is not http(s)
    { type: 'docker-v1', domain: 'cr.example.com', 'repository-name': 'acme/app', registry: 'ftp://registry.example.com', 'package-id': 'app' },
    // 3: a backend-url that is not a URL
    { type: 'python-v1', domain: 'py.example.com', 'package-name': 'rocket', 'file-name': 'rocket-1.0.tar.gz', version: '1.0', 'backend-url': 'not a url', 'package-id': 'rocket' },
    // 4: a path without its leading slash
    { type: 'telemetry-v1', domain: 'tele.example.com', 'incoming-path': 'events', 'package-id': 'tele' },
    // 5: an unknown rule type
    { type: 'file-v9', domain: 'nine.example.com' },
  ],
};

/** [index, type, domain, field] of every expected problem. */
const EXPECTED_PROBLEMS: Array<[number, string, string, string]> = [
  [1, 'file-v1', 'files.example.com', 'package-id'],
  [2, 'docker-v1', 'cr.example.com', 'registry'],
  [3, 'python-v1', 'py.example.com', 'backend-url'],
  [4, 'telemetry-v1', 'tele.example.com', 'incoming-path'],
  [5, 'file-v9', 'nine.example.com', 'type'],
];

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** One line naming the rule's index, type, domain and field. */
function expectProblemLines(text: string): void {
  const lines = text.split('\n');
  for (const [index, type, domain, field] of EXPECTED_PROBLEMS) {
    const re = new RegExp(`rule ${index}\\b.*${esc(type)}.*${esc(domain)}.*field "${esc(field)}"`);
    expect({ problem: `${index} ${type} ${domain} ${field}`, found: lines.some((l) => re.test(l)) }).toEqual({ problem: `${index} ${type} ${domain} ${field}`, found: true });
  }
  // The valid rule is not blamed.
  expect(lines.some((l) => /rule 0\b/.test(l))).toBe(false);
}

describe('help', () => {
  test('top-level --help exits 0 and names every command', async () => {
    const r = await runCli(['--help']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/usage: artifact-gateway/);
    expect(r.stdout).toMatch(/^\s+serve\s/m);
    expect(r.stdout).toMatch(/^\s+rules validate\s/m);
  });

  test('serve --help exits 0 and documents every option', async () => {
    const r = await runCli(['serve', '--help']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    for (const opt of ['--manifest FILE', '--port N', '--host ADDR', '--upstream HOST=BASE_URL', '--events DIR|-', '--access-log', '--log-format', '--help']) {
      // Each option has its own line with a description after it.
      expect({ opt, documented: new RegExp(`^\\s+${esc(opt)}\\s+\\S`, 'm').test(r.stdout) }).toEqual({ opt, documented: true });
    }
    // Defaults of the contract are stated.
    expect(r.stdout).toMatch(/8081/);
    expect(r.stdout).toMatch(/127\.0\.0\.1/);
    expect(r.stdout).toMatch(/examples\/manifest\.json/);
    expect(r.stdout).toMatch(/\.gateway\/events/);
  });

  test('rules validate --help exits 0 and documents FILE and --json', async () => {
    const r = await runCli(['rules', 'validate', '--help']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/usage: artifact-gateway rules validate FILE/);
    expect(r.stdout).toMatch(/^\s+--json\s+\S/m);
    expect(r.stdout).toMatch(/^\s+--help\s+\S/m);
  });
});

describe('usage errors exit 2 with a one-line reason on stderr', () => {
  test.each([
    ['unknown command', ['frobnicate'], /unknown command "frobnicate"/],
    ['unknown serve option', ['serve', '--bogus'], /unknown option --bogus/],
    ['unknown rules subcommand', ['rules', 'explode'], /unknown rules subcommand "explode"/],
    ['unknown validate option', ['rules', 'validate', 'x.json', '--yaml'], /unknown option --yaml/],
    ['bad port', ['serve', '--port', 'eighty'], /--port/],
    ['bad upstream', ['serve', '--upstream', 'ghcr.io'], /--upstream/],
    ['missing FILE', ['rules', 'validate'], /missing argument/],
  ])('%s', async (_name, args, reason) => {
    const r = await runCli(args);
    expect(r.code).toBe(2);
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(reason);
    expect(lines[0]).toMatch(/^artifact-gateway: /);
  });
});

describe('rules validate', () => {
  test('a valid manifest: exit 0, says valid with the rule count', async () => {
    const file = writeJson(path.join(dir, 'valid.json'), VALID);
    const r = await runCli(['rules', 'validate', file]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/valid, 2 rules/);
    expect(r.stderr).toBe('');
  });

  test('the bundled example manifest is valid', async () => {
    const r = await runCli(['rules', 'validate', 'examples/manifest.json']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/valid, 9 rules/);
  });

  test('an invalid manifest: exit 1 and every problem listed with rule index, type, domain and field', async () => {
    const file = writeJson(path.join(dir, 'invalid.json'), INVALID);
    const r = await runCli(['rules', 'validate', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/invalid manifest \(5 problems\)/);
    expectProblemLines(r.stderr);
  });

  test('--json on an invalid manifest parses and lists every problem', async () => {
    const file = writeJson(path.join(dir, 'invalid-json.json'), INVALID);
    const r = await runCli(['rules', 'validate', file, '--json']);
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout) as { valid: boolean; rules: number; errors: Array<{ index: number; type: string; domain: string; field: string; message: string }>; warnings: unknown[] };
    expect(out.valid).toBe(false);
    expect(out.errors.map((e) => [e.index, e.type, e.domain, e.field])).toEqual(EXPECTED_PROBLEMS);
    for (const e of out.errors) expect(e.message.length).toBeGreaterThan(5);
  });

  test('--json on a valid manifest parses', async () => {
    const file = writeJson(path.join(dir, 'valid-json.json'), VALID);
    const r = await runCli(['rules', 'validate', '--json', file]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ valid: true, rules: 2, errors: [], warnings: [] });
  });

  test('a file that does not exist: exit 1 with a one-line reason', async () => {
    const r = await runCli(['rules', 'validate', path.join(dir, 'nope.json')]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/no such file/);
  });

  test('text that is not JSON: exit 1', async () => {
    const file = path.join(dir, 'broken.json');
    fs.writeFileSync(file, '{"rules": [');
    const r = await runCli(['rules', 'validate', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/not valid JSON/);
  });
});

describe('serve refuses to start', () => {
  test('with an invalid manifest: exit 1 and every problem listed', async () => {
    const file = writeJson(path.join(dir, 'serve-invalid.json'), INVALID);
    const port = await freePort();
    const r = await runCli(['serve', '--manifest', file, '--port', String(port), '--host', LOCAL, '--events', path.join(dir, 'ev-invalid')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/invalid manifest \(5 problems\)/);
    expectProblemLines(r.stderr);
  });

  test('on a port already in use: a clear error and exit 1', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, LOCAL, resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const file = writeJson(path.join(dir, 'serve-valid.json'), VALID);
      const r = await runCli(['serve', '--manifest', file, '--port', String(port), '--host', LOCAL, '--events', path.join(dir, 'ev-busy')]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already in use`));
      expect(r.stderr).not.toMatch(/internal error|EADDRINUSE|at .*\.ts:\d+/);
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });
});

test('output piped into a reader that stops early (| head -1) ends quietly with status 0', async () => {
  const { execFile } = await import('node:child_process');
  const ROOT_DIR = path.resolve(__dirname, '../..');
  const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    execFile('bash', ['-o', 'pipefail', '-c', `"${process.execPath}" --import tsx bin/cli.ts query --list | head -1`], { cwd: ROOT_DIR }, (err, stdout, stderr) => {
      resolve({ code: err ? (err as { code?: number }).code ?? 1 : 0, stdout, stderr });
    });
  });
  expect(r.stdout.split('\n').filter(Boolean)).toHaveLength(1);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
});
