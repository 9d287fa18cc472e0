/** Query results as an aligned text table, JSON (an array of objects) or CSV (RFC 4180). */
import type { QueryResult } from './duckdb-query';

export const RESULT_FORMATS = ['table', 'json', 'csv'] as const;
export type ResultFormat = (typeof RESULT_FORMATS)[number];
export const isResultFormat = (s: string): s is ResultFormat => (RESULT_FORMATS as readonly string[]).includes(s);

const text = (v: unknown) => (v === null || v === undefined ? '' : String(v));

function table(r: QueryResult): string {
  const cells = r.rows.map((row) => row.map((v) => (v === null ? 'NULL' : text(v))));
  const widths = r.columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i].length)));
  const numeric = r.columns.map((_, i) => r.rows.length > 0 && r.rows.every((row) => typeof row[i] === 'number' || row[i] === null));
  const line = (vals: string[]) => vals.map((v, i) => (numeric[i] ? v.padStart(widths[i]) : v.padEnd(widths[i]))).join('  ').trimEnd();
  const out = [line(r.columns), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)];
  out.push(`(${r.rows.length} row${r.rows.length === 1 ? '' : 's'})`);
  return `${out.join('\n')}\n`;
}

function csvField(v: unknown): string {
  const s = text(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function formatResult(r: QueryResult, format: ResultFormat): string {
  switch (format) {
    case 'table':
      return table(r);
    case 'json':
      return `${JSON.stringify(r.rows.map((row) => Object.fromEntries(r.columns.map((c, i) => [c, row[i]]))), null, 2)}\n`;
    case 'csv':
      return [r.columns, ...r.rows].map((row) => `${row.map(csvField).join(',')}\r\n`).join('');
  }
}
