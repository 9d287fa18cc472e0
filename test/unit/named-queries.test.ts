/**
 * The named queries are one SQL text for two engines: each must parse as Trino SQL (Athena) and
 * use only functions both engines have (or that DuckDB gets as a macro); their DuckDB answers are
 * checked against independent TypeScript in test/e2e/analytics-queries.test.ts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { TrinoSQL } from 'dt-sql-parser/dist/parser/trino';
import { withGeneratedSection } from '../../lambda/core/reference-docs';
import { analyticsReference } from '../../lambda/analytics/analytics-docs';
import { loadNamedQueries, parseNamedQuery } from '../../lambda/analytics/named-queries';
import { DUCKDB_SHIMS } from '../../lambda/local/duckdb-query';

const queries = loadNamedQueries();
const trino = new TrinoSQL();

/**
 * Functions that exist with the same meaning in Trino and DuckDB. Not here on purpose:
 * `count_if` (DuckDB returns NULL instead of 0 when every input is NULL), `approx_distinct`
 * (Athena only; its estimates would differ anyway), `date_format`/`strftime` (different patterns).
 */
const FUNCTIONS_IN_BOTH = new Set(['count', 'sum', 'min', 'max', 'coalesce', 'substr', 'lower', 'upper', 'hour', 'round']);
const SHIMMED = new Set(DUCKDB_SHIMS.map((s) => /^CREATE MACRO (\w+)\(/.exec(s)![1]));
const KEYWORDS_BEFORE_PARENS = new Set(['as', 'in', 'and', 'or', 'not', 'from', 'exists', 'when', 'then', 'else', 'over', 'cast', 'case', 'with', 'on', 'using', 'values']);

/** SQL without comments and string literals, where operators and calls can be looked for. */
const code = (sql: string) => sql.replace(/--[^\n]*/g, '').replace(/'(?:[^']|'')*'/g, "''");

test('there are named queries, sorted by name, with descriptions', () => {
  expect(queries.length).toBeGreaterThanOrEqual(10);
  expect(queries.map((q) => q.name)).toEqual([...queries.map((q) => q.name)].sort());
  for (const q of queries) expect(q.description.length).toBeGreaterThan(20);
});

describe.each(queries.map((q) => [q.name, q] as const))('%s', (_name, q) => {
  test('parses as Trino SQL (Athena engine v3)', () => {
    expect(trino.validate(q.sql).map((e) => `${e.startLine}:${e.startColumn} ${e.message}`)).toEqual([]);
  });

  test('calls only functions both engines have, or shimmed ones', () => {
    const called = [...code(q.sql).matchAll(/\b([a-z_][a-z0-9_]*)\s*\(/gi)].map((m) => m[1].toLowerCase()).filter((f) => !KEYWORDS_BEFORE_PARENS.has(f));
    const unknown = called.filter((f) => !FUNCTIONS_IN_BOTH.has(f) && !SHIMMED.has(f) && f !== 'e');
    expect(unknown).toEqual([]);
  });

  test('divides only after casting to DOUBLE (5/2 is 2 in Athena, 2.5 in DuckDB)', () => {
    for (const line of code(q.sql).split('\n')) if (line.includes('/')) expect(line).toMatch(/AS DOUBLE/);
  });
});

test('the Trino check rejects DuckDB-only SQL (so it can fail)', () => {
  expect(trino.validate('SELECT * EXCLUDE (id) FROM events').length).toBeGreaterThan(0);
  expect(trino.validate('SELECT package_id, count(*) FROM events GROUP BY ALL ORDER BY ALL').length).toBeGreaterThan(0);
});

describe('query files that would not work are refused with what to fix', () => {
  const body = 'WITH e AS (SELECT * FROM events WHERE dt BETWEEN ? AND ?)\nSELECT count(*) FROM e\n';
  test.each([
    ['Bad-Name', `-- Something useful.\n${body}`, /file name must be lower-case words/],
    ['no_header', body, /start the file with a "-- " comment/],
    ['no_range', '-- Something useful.\nSELECT count(*) FROM events\n', /WITH e AS \(SELECT \* FROM events WHERE dt BETWEEN \? AND \?\)/],
    ['three_params', `-- Something useful.\n${body}WHERE package_id = ?\n`, /expected exactly 2 "\?" parameters.*found 3/],
    ['long_header', `-- ${'x'.repeat(1100)}\n${body}`, /Athena allows 1024/],
  ])('%s', (name, sql, reason) => {
    expect(() => parseNamedQuery(name, sql)).toThrow(reason);
  });

  test('a question mark in a string literal or comment is not a parameter', () => {
    expect(() => parseNamedQuery('ok_query', `-- Who? Why?\n${body.replace('count(*)', "count(*), 'a?b' AS x")}`)).not.toThrow();
  });
});

test('the generated reference of docs/ANALYTICS.md is up to date (npm run docs)', () => {
  const doc = fs.readFileSync(path.join(__dirname, '..', '..', 'docs', 'ANALYTICS.md'), 'utf8');
  expect(withGeneratedSection(doc, analyticsReference()) === doc).toBe(true);
});
