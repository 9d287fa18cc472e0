/**
 * The generated part of docs/ANALYTICS.md: the Athena table (from the event schema) and the named
 * queries (from queries/*.sql). `npm run docs` rewrites it; a unit test fails when it is stale.
 */
import { glueColumns, PARTITION_KEYS, EVENTS_TABLE_NAME } from '../core/event-table';
import { loadNamedQueries } from './named-queries';

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

export function analyticsReference(): string {
  const out = [
    `### The \`${EVENTS_TABLE_NAME}\` table`,
    '',
    '| column | Glue type | meaning |',
    '|---|---|---|',
    ...glueColumns().map((c) => `| \`${c.name}\` | ${c.type} | ${cell(c.comment)} |`),
    ...PARTITION_KEYS.map((k) => `| \`${k.name}\` | ${k.type} (partition key) | ${cell(k.comment)} |`),
    '',
    '### Named queries',
    '',
    '| name | answers |',
    '|---|---|',
    ...loadNamedQueries().map((q) => `| [\`${q.name}\`](../queries/${q.name}.sql) | ${cell(q.description)} |`),
  ];
  return `${out.join('\n')}\n`;
}
