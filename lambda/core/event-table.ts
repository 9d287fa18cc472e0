/**
 * The analytics table as Athena (Glue) and DuckDB see it, derived from the event schema
 * (events.ts) so the two cannot drift: one column per event field, in schema order, plus the
 * `dt` partition. JSON-typed fields (`variables`, `body_event`) are JSON text in a string
 * column, so any JSON SerDe converts them to Parquet the same way and queries read them with
 * `json_extract_scalar` on both engines.
 *
 * Consumed by the CDK construct (Glue table, Firehose record format conversion and dynamic
 * partitioning) and by the local `query` command.
 */
import { EVENT_FIELDS, type GatewayEvent } from './events';

type FieldType = (typeof EVENT_FIELDS)[keyof typeof EVENT_FIELDS]['type'];

/** The Glue/Athena table every named query reads. */
export const EVENTS_TABLE_NAME = 'events';

export interface TableColumn {
  readonly name: string;
  /** Hive/Glue type name. */
  readonly type: 'string' | 'boolean' | 'int';
  readonly comment: string;
}

const GLUE_TYPE: Record<FieldType, TableColumn['type']> = { string: 'string', boolean: 'boolean', int: 'int', json: 'string' };
/** DuckDB's types for reading the local NDJSON files into the same columns. */
const DUCKDB_TYPE: Record<FieldType, string> = { string: 'VARCHAR', boolean: 'BOOLEAN', int: 'INTEGER', json: 'JSON' };

/** Glue column comments are limited to 255 characters. */
const comment = (doc: string) => (doc.length <= 255 ? doc : `${doc.slice(0, 252)}...`);

/** The table's columns (partition key excluded), for `CfnTable.storageDescriptor.columns`. */
export function glueColumns(): TableColumn[] {
  return Object.entries(EVENT_FIELDS).map(([name, f]) => ({ name, type: GLUE_TYPE[f.type], comment: comment(f.doc) }));
}

/**
 * Partition key: the event's UTC day. Firehose writes each record under `dt=<day of its time>/`
 * with dynamic partitioning (`FIREHOSE_PARTITIONING`), the local sink writes the same layout, and
 * Athena finds partitions by projection (`partitionProjection`), with no crawler.
 */
export const PARTITION_KEYS: readonly TableColumn[] = [{ name: 'dt', type: 'string', comment: 'UTC day of the event (YYYY-MM-DD), the first 10 characters of time.' }];

/**
 * Firehose dynamic partitioning: the partition key comes from the record itself (jq), so an event
 * lands in the partition of its own day even when it arrives after midnight.
 */
export const FIREHOSE_PARTITIONING = {
  /** Partition keys and their jq expressions (the `MetadataExtraction` processor, `JQ-1.6`). */
  jqKeys: { dt: '.time[0:10]' } as Readonly<Record<string, string>>,
  /** The same as one jq query. */
  jqQuery: '{dt: .time[0:10]}',
  /** S3 prefix under the bucket (the construct may put its own prefix in front). */
  prefix: 'dt=!{partitionKeyFromQuery:dt}/',
  errorOutputPrefix: 'errors/!{firehose:error-output-type}/dt=!{timestamp:yyyy-MM-dd}/',
} as const;

/**
 * Glue table parameters for Athena partition projection over `dt`.
 * @param location S3 URL of the table's data, ending with `/` (e.g. `s3://bucket/events/`).
 * @param firstDay first day that can hold data (YYYY-MM-DD), e.g. the deployment day.
 */
export function partitionProjection(location: string, firstDay: string): Record<string, string> {
  if (!/^s3:\/\/.+\/$/.test(location)) throw new Error(`partition projection: location must be an s3:// URL ending with "/", got ${JSON.stringify(location)}`);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(firstDay)) throw new Error(`partition projection: firstDay must be YYYY-MM-DD, got ${JSON.stringify(firstDay)}`);
  return {
    'projection.enabled': 'true',
    'projection.dt.type': 'date',
    'projection.dt.format': 'yyyy-MM-dd',
    'projection.dt.range': `${firstDay},NOW`,
    'projection.dt.interval': '1',
    'projection.dt.interval.unit': 'DAYS',
    'storage.location.template': `${location}dt=\${dt}/`,
  };
}

/** An event as a row of the table: the same keys, JSON fields as JSON text. This is a Firehose record's content. */
export function tableRow(event: GatewayEvent): Record<string, unknown> {
  const row: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(EVENT_FIELDS)) {
    const v = (event as unknown as Record<string, unknown>)[name];
    row[name] = f.type === 'json' && v !== null && v !== undefined ? JSON.stringify(v) : v ?? null;
  }
  return row;
}

/** `read_json(columns = {...})` for DuckDB: every event field with its DuckDB type. */
export function duckdbColumns(): Record<string, string> {
  return Object.fromEntries(Object.entries(EVENT_FIELDS).map(([name, f]) => [name, DUCKDB_TYPE[f.type]]));
}

/** Names of the JSON-typed fields, which are JSON text in the table. */
export const JSON_FIELDS: readonly string[] = Object.entries(EVENT_FIELDS).filter(([, f]) => f.type === 'json').map(([name]) => name);
