/**
 * Every named query, run by DuckDB over NDJSON files in the gateway's layout, returns exactly the
 * rows computed in TypeScript for a generated event set (analytics-fixtures.ts); the local table
 * has exactly the Glue columns; and the `query` command prints the same answers.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadNamedQueries } from '../../lambda/analytics/named-queries';
import { runLocalQuery, eventsViewSql } from '../../lambda/local/duckdb-query';
import { NdjsonEventSink } from '../../lambda/local/ndjson-sink';
import { glueColumns, PARTITION_KEYS } from '../../lambda/core/event-table';
import { EXPECTED, generateEvents } from './analytics-fixtures';
import { makeTempDir, removeDir, runCli } from './helpers';

jest.setTimeout(60_000);

const events = generateEvents(3000);
let dir: string;
let eventsDir: string;

beforeAll(async () => {
  dir = makeTempDir('gw-e2e-queries-');
  eventsDir = path.join(dir, 'events');
  // Written by the gateway's own sink, in two files per day like two gateway processes.
  const half = Math.floor(events.length / 2);
  for (const part of [events.slice(0, half), events.slice(half)]) {
    const sink = new NdjsonEventSink(eventsDir);
    sink.write(part);
    await sink.close();
    await new Promise((r) => setTimeout(r, 2)); // distinct file names (the sink names files by start time)
  }
  // A line still being written by a running gateway is skipped, not fatal.
  const someDay = fs.readdirSync(eventsDir).sort()[0];
  fs.appendFileSync(path.join(eventsDir, someDay, fs.readdirSync(path.join(eventsDir, someDay))[0]), '{"id":"partial","time":"2024-05-0');
});

afterAll(() => removeDir(dir));

const queries = loadNamedQueries();

test('there is an independent expectation for every named query, and a query for every expectation', () => {
  expect(queries.map((q) => q.name).sort()).toEqual(Object.keys(EXPECTED).sort());
});

test('the generated set exercises what the queries filter on', () => {
  expect(events.filter((e) => e.download && !e.bot).length).toBeGreaterThan(500);
  expect(events.filter((e) => e.bot && e.download).length).toBeGreaterThan(20);
  expect(new Set(events.filter((e) => e.action === 'not-found').map((e) => e.path)).size).toBeGreaterThan(100);
  expect(events.some((e) => e.kind === 'docker' && e.method === 'HEAD' && e.status === 307)).toBe(true);
  expect(events.some((e) => e.download && e.package_id === null)).toBe(true);
});

describe.each(queries.map((q) => [q.name, q] as const))('%s', (name, q) => {
  test('all days: DuckDB answers what TypeScript computed', async () => {
    const r = await runLocalQuery(q, { eventsDir, from: '2024-01-01', to: '2024-12-31' });
    const expected = EXPECTED[name](events);
    expect(expected.length).toBeGreaterThan(0);
    expect(r.rows).toEqual(expected);
  });

  test('--from/--to: only the days asked for', async () => {
    const r = await runLocalQuery(q, { eventsDir, from: '2024-05-02', to: '2024-05-03' });
    const inRange = events.filter((e) => e.time.slice(0, 10) >= '2024-05-02' && e.time.slice(0, 10) <= '2024-05-03');
    expect(r.rows).toEqual(EXPECTED[name](inRange));
  });
});

test('the local events table has exactly the Glue columns, in order, plus the dt partition', async () => {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  try {
    await c.run(eventsViewSql(eventsDir));
    const described = (await c.runAndReadAll('DESCRIBE events')).getRowObjectsJS().map((r) => [r.column_name, r.column_type]);
    const glueToDuck: Record<string, string> = { string: 'VARCHAR', boolean: 'BOOLEAN', int: 'INTEGER' };
    expect(described).toEqual([...glueColumns(), ...PARTITION_KEYS].map((col) => [col.name, glueToDuck[col.type]]));
  } finally {
    c.closeSync();
    db.closeSync();
  }
});

test('no event files: an empty answer with the same columns, not an error', async () => {
  const empty = makeTempDir('gw-e2e-queries-empty-');
  try {
    const q = queries.find((x) => x.name === 'downloads_per_package_per_day')!;
    const r = await runLocalQuery(q, { eventsDir: empty, from: '2024-01-01', to: '2024-12-31' });
    expect(r).toEqual({ columns: ['day', 'package_id', 'downloads'], rows: [] });
  } finally {
    removeDir(empty);
  }
});

describe('artifact-gateway query', () => {
  test('--format json prints the rows as objects', async () => {
    const r = await runCli(['query', 'downloads_per_version', '--events', eventsDir, '--from', '2024-05-01', '--to', '2024-05-04', '--format', 'json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const expected = EXPECTED.downloads_per_version(events).map(([package_id, version, downloads]) => ({ package_id, version, downloads }));
    expect(JSON.parse(r.stdout)).toEqual(expected);
  });

  test('--format csv: a header line and one line per row', async () => {
    const r = await runCli(['query', 'downloads_per_package_per_day', '--events', eventsDir, '--format', 'csv']);
    expect(r.code).toBe(0);
    const expected = EXPECTED.downloads_per_package_per_day(events);
    const lines = r.stdout.split('\r\n').filter((l) => l !== '');
    expect(lines[0]).toBe('day,package_id,downloads');
    expect(lines.slice(1)).toEqual(expected.map((row) => row.map((v) => (v === null ? '' : String(v))).join(',')));
  });

  test('table output (the default): aligned columns and a row count', async () => {
    const r = await runCli(['query', 'bot_traffic', '--events', eventsDir]);
    expect(r.code).toBe(0);
    const expected = EXPECTED.bot_traffic(events);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^client\s+requests\s+downloads$/);
    expect(lines[1]).toMatch(/^-+\s+-+\s+-+$/);
    expect(lines.slice(2, -1).map((l) => l.trim().split(/\s+/))).toEqual(expected.map((row) => row.map(String)));
    expect(lines[lines.length - 1]).toBe(`(${expected.length} rows)`);
  });

  test('--list names every query; --help documents every option', async () => {
    const list = await runCli(['query', '--list']);
    expect(list.code).toBe(0);
    expect(list.stdout.split('\n').filter((l) => l).map((l) => l.split(/\s+/)[0])).toEqual(queries.map((q) => q.name));
    const help = await runCli(['query', '--help']);
    expect(help.code).toBe(0);
    for (const opt of ['--list', '--events DIR', '--from DATE', '--to DATE', '--format table|json|csv', '--help']) {
      expect({ opt, documented: new RegExp(`^\\s+${opt.replace(/[|]/g, '\\|')}\\s+\\S`, 'm').test(help.stdout) }).toEqual({ opt, documented: true });
    }
  });

  test.each([
    ['an unknown query', ['query', 'nope'], 2, /no query named "nope" \(queries: .*downloads_per_version/],
    ['no query name', ['query'], 2, /missing query name \(see --list\)/],
    ['a bad date', ['query', 'top_files', '--from', '2024-02-30'], 2, /--from must be a date as YYYY-MM-DD, got "2024-02-30"/],
    ['from after to', ['query', 'top_files', '--from', '2024-05-03', '--to', '2024-05-01'], 2, /--from 2024-05-03 is after --to 2024-05-01/],
    ['a bad format', ['query', 'top_files', '--format', 'xml'], 2, /--format must be one of table, json, csv/],
    ['a missing events directory', ['query', 'top_files', '--events', '/nonexistent/events'], 1, /no events directory \/nonexistent\/events/],
  ])('%s: a one-line reason and the exit status', async (_what, args, code, reason) => {
    const r = await runCli(args as string[]);
    expect(r.code).toBe(code);
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(reason as RegExp);
  });
});
