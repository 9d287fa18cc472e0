/**
 * Runs the named Athena queries locally with DuckDB over the gateway's NDJSON event files
 * (`DIR/dt=YYYY-MM-DD/*.ndjson`), as the same `events` table Athena reads from Parquet: the
 * columns come from the event schema (event-table.ts), JSON fields become JSON text, and `dt`
 * comes from the directory names. The SQL text is the one Athena runs; where Trino and DuckDB
 * differ, DuckDB gets a macro (DUCKDB_SHIMS), never a second version of a query.
 */
import fs from 'node:fs';
import path from 'node:path';
import { duckdbColumns, JSON_FIELDS, PARTITION_KEYS, EVENTS_TABLE_NAME } from '../core/event-table';
import type { NamedQuery } from '../analytics/named-queries';

/**
 * Trino functions the queries may use that DuckDB lacks or spells differently.
 * `from_iso8601_timestamp`: our `time` strings are UTC with a `Z`, which DuckDB's TIMESTAMP cast
 * reads as UTC; `json_extract_scalar`: Trino's name for DuckDB's `json_extract_string`.
 */
export const DUCKDB_SHIMS: readonly string[] = [
  'CREATE MACRO from_iso8601_timestamp(s) AS CAST(s AS TIMESTAMP)',
  'CREATE MACRO json_extract_scalar(j, p) AS json_extract_string(j, p)',
];

export interface QueryResult {
  readonly columns: string[];
  /** Values as JavaScript: strings, numbers (BIGINT counts included), booleans, null. */
  readonly rows: unknown[][];
}

export interface LocalQueryOptions {
  readonly eventsDir: string;
  /** First and last UTC day, inclusive (YYYY-MM-DD). */
  readonly from: string;
  readonly to: string;
}

const sqlString = (s: string) => `'${s.replace(/'/g, "''")}'`;

/** True when DIR holds at least one `dt=YYYY-MM-DD/*.ndjson` file. */
function hasEventFiles(dir: string): boolean {
  if (!fs.existsSync(dir)) return false;
  return fs.readdirSync(dir).some((d) => /^dt=\d{4}-\d{2}-\d{2}$/.test(d)
    && fs.statSync(path.join(dir, d)).isDirectory()
    && fs.readdirSync(path.join(dir, d)).some((f) => f.endsWith('.ndjson')));
}

/** The `events` view over the NDJSON files (or an empty table of the same shape). */
export function eventsViewSql(eventsDir: string): string {
  const columns = duckdbColumns();
  const select = [
    ...Object.keys(columns).map((c) => (JSON_FIELDS.includes(c) ? `CAST("${c}" AS VARCHAR) AS "${c}"` : `"${c}"`)),
    ...PARTITION_KEYS.map((k) => `"${k.name}"`),
  ].join(', ');
  if (!hasEventFiles(eventsDir)) {
    const empty = [
      ...Object.entries(columns).map(([c, t]) => `CAST(NULL AS ${t === 'JSON' ? 'VARCHAR' : t}) AS "${c}"`),
      ...PARTITION_KEYS.map((k) => `CAST(NULL AS VARCHAR) AS "${k.name}"`),
    ].join(', ');
    return `CREATE VIEW ${EVENTS_TABLE_NAME} AS SELECT ${empty} WHERE false`;
  }
  const glob = path.join(path.resolve(eventsDir), 'dt=*', '*.ndjson');
  const columnSpec = `{${Object.entries(columns).map(([c, t]) => `${sqlString(c)}: ${sqlString(t)}`).join(', ')}}`;
  const hiveTypes = `{${PARTITION_KEYS.map((k) => `${sqlString(k.name)}: 'VARCHAR'`).join(', ')}}`;
  // ignore_errors: a line still being appended by a running gateway is skipped, not fatal.
  return `CREATE VIEW ${EVENTS_TABLE_NAME} AS SELECT ${select} FROM read_json(${sqlString(glob)}, format = 'newline_delimited', columns = ${columnSpec}, hive_partitioning = true, hive_types = ${hiveTypes}, ignore_errors = true)`;
}

function toJs(v: unknown): unknown {
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
  return String(v);
}

type DuckDbModule = typeof import('@duckdb/node-api');

function loadDuckDb(): DuckDbModule {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('@duckdb/node-api') as DuckDbModule;
  } catch (e) {
    throw new Error(`DuckDB is not installed (${(e as Error).message.split('\n')[0]}); install it with: npm install @duckdb/node-api`);
  }
}

/** Runs one named query over the local events; the result is what Athena would answer for the same rows. */
export async function runLocalQuery(query: NamedQuery, opts: LocalQueryOptions): Promise<QueryResult> {
  const { DuckDBInstance } = loadDuckDb();
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    for (const shim of DUCKDB_SHIMS) await connection.run(shim);
    await connection.run(eventsViewSql(opts.eventsDir));
    const reader = await connection.runAndReadAll(query.sql, [opts.from, opts.to]);
    return { columns: reader.columnNames(), rows: reader.getRowsJS().map((r) => r.map(toJs)) };
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}
