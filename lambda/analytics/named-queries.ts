/**
 * The named analytics queries: one SQL file each under `queries/` at the package root, run
 * unchanged by Athena (Trino; the CDK construct ships them as `CfnNamedQuery`) and by DuckDB
 * (`artifact-gateway query`, with macros for the few Trino functions DuckDB lacks).
 *
 * Every query reads the `events` table through `WITH e AS (SELECT * FROM events WHERE dt BETWEEN
 * ? AND ?)`: two positional parameters, first and last UTC day, so Athena prunes partitions
 * (the console asks for both values; `StartQueryExecution` takes them as `ExecutionParameters`).
 */
import fs from 'node:fs';
import path from 'node:path';

export interface NamedQuery {
  /** File name without `.sql`: lower-case words joined by `_`. */
  readonly name: string;
  /** The header comment, without its `Parameters:` line. */
  readonly description: string;
  /** The whole file, header included. */
  readonly sql: string;
}

/** Athena named queries: name at most 128 characters, description at most 1,024. */
const MAX_DESCRIPTION = 1024;

/** The `queries/` folder of this package, from the source tree or from `dist/`. */
export function queriesDir(from: string = __dirname): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'queries');
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(candidate)) return candidate;
    if (path.dirname(dir) === dir) throw new Error(`no queries/ folder above ${from}`);
  }
}

/** Parses one query file; throws an error naming the file and what to fix. */
export function parseNamedQuery(name: string, sql: string): NamedQuery {
  const where = `queries/${name}.sql`;
  if (!/^[a-z][a-z0-9_]{0,127}$/.test(name)) throw new Error(`${where}: the file name must be lower-case words joined by "_"`);
  const header: string[] = [];
  for (const line of sql.split('\n')) {
    if (!line.startsWith('--')) break;
    header.push(line.replace(/^--\s?/, ''));
  }
  const description = header.filter((l) => !/^Parameters:/.test(l)).join(' ').replace(/\s+/g, ' ').trim();
  if (!description) throw new Error(`${where}: start the file with a "-- " comment saying what the query answers`);
  if (description.length > MAX_DESCRIPTION) throw new Error(`${where}: the header comment is ${description.length} characters; Athena allows ${MAX_DESCRIPTION}`);
  if (!/^WITH e AS \(SELECT \* FROM events WHERE dt BETWEEN \? AND \?\)$/m.test(sql)) {
    throw new Error(`${where}: read the table as "WITH e AS (SELECT * FROM events WHERE dt BETWEEN ? AND ?)" (first and last day)`);
  }
  const placeholders = sql.replace(/'[^']*'/g, "''").replace(/--[^\n]*/g, '').split('?').length - 1;
  if (placeholders !== 2) throw new Error(`${where}: expected exactly 2 "?" parameters (first and last day), found ${placeholders}`);
  return { name, description, sql };
}

/** Every named query, sorted by name. */
export function loadNamedQueries(dir: string = queriesDir()): NamedQuery[] {
  return fs.readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .sort()
    .map((f) => parseNamedQuery(f.slice(0, -'.sql'.length), fs.readFileSync(path.join(dir, f), 'utf8')));
}
