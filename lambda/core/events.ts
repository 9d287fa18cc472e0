/**
 * The analytics event schema: one list of fields, used for the local NDJSON files, for Firehose
 * records and for the Glue/Athena table columns. The TypeScript type is inferred from it.
 * Field names are snake_case and never renamed without a migration note (docs/EVENTS.md).
 */

type ColumnType = 'string' | 'boolean' | 'int' | 'json';
interface EventField<T extends ColumnType = ColumnType, N extends boolean = boolean> {
  readonly type: T;
  readonly nullable: N;
  readonly doc: string;
}
const f = <T extends ColumnType, N extends boolean>(type: T, nullable: N, doc: string): EventField<T, N> => ({ type, nullable, doc });

export const EVENT_KINDS = ['docker', 'file', 'python', 'npm', 'catch-all', 'telemetry', 'pixel'] as const;
export type EventKind = (typeof EVENT_KINDS)[number];
export const EVENT_ACTIONS = ['redirect', 'proxy', 'respond', 'not-modified', 'not-found', 'unauthorized', 'rejected'] as const;
export type EventAction = (typeof EVENT_ACTIONS)[number];

export const EVENT_FIELDS = {
  id: f('string', false, 'Unique per event.'),
  time: f('string', false, 'ISO-8601 UTC timestamp with milliseconds (when the response completed).'),
  kind: f('string', false, `What was requested: ${EVENT_KINDS.join(', ')}.`),
  action: f('string', false, `What the gateway did: ${EVENT_ACTIONS.join(', ')}.`),
  download: f('boolean', false, 'This request counts as one download or pull (docs/EVENTS.md, "What counts").'),
  package_id: f('string', true, "The matched rule's package id."),
  auto_create_rule_id: f('string', true, 'docker-v2: the pattern rule id, for images that have no package yet.'),
  domain: f('string', false, 'Matched host, lower case, no port.'),
  method: f('string', false, 'Request method.'),
  path: f('string', false, 'Raw request path, without the query.'),
  status: f('int', false, 'Response status sent to the client.'),
  target: f('string', true, 'Absolute URL redirected or proxied to, without userinfo; values of credential-like query parameters (token, access_token, api_key, X-Amz-Signature, names ending in token/secret/signature/password) read "redacted".'),
  image: f('string', true, 'docker: image name, e.g. library/hello-world.'),
  reference: f('string', true, 'docker: tag or digest.'),
  upstream: f('string', true, 'docker: upstream registry as the rule names it.'),
  file_name: f('string', true, 'python and npm: distribution file name.'),
  version: f('string', true, 'python and npm: version; file rules fill it from a {version} variable.'),
  variables: f('json', false, 'file rules: template or regex variables (decoded values); {} otherwise.'),
  body_event: f('json', true, 'telemetry and file rules: one JSON object of the request body.'),
  pixel_id: f('string', true, 'pixel rules: the x-pxid query value.'),
  client_name: f('string', true, 'Client parsed from the User-Agent (docker, containerd, cri-o, containers-image, skopeo, buildah, crane, kaniko, pip, uv, poetry, npm, pnpm, yarn, curl, wget, a browser, a named bot, ...).'),
  client_version: f('string', true, 'Client version parsed from the User-Agent.'),
  os: f('string', true, 'Operating system parsed from the User-Agent (linux, darwin, windows, ...).'),
  arch: f('string', true, 'CPU architecture parsed from the User-Agent (amd64, arm64, ...).'),
  ci: f('boolean', true, 'The User-Agent says it runs in CI (pip, npm and others report this).'),
  bot: f('boolean', false, 'Known crawler, mirror or monitoring client: exclude it from download counts.'),
  country: f('string', true, 'Viewer country (ISO 3166-1 alpha-2, e.g. DE) from CloudFront-Viewer-Country; null without CloudFront.'),
  region: f('string', true, 'Viewer region (ISO 3166-2 subdivision, e.g. DE-BY) from CloudFront-Viewer-Country-Region; null without CloudFront.'),
  asn: f('string', true, 'Viewer autonomous system number from CloudFront-Viewer-ASN; null without CloudFront.'),
  org: f('string', true, 'Organisation operating the ASN (cloud providers, large companies) where the shipped, partial table names it; null otherwise.'),
  visitor_id: f('string', true, 'Keyed hash of (IPv4 address or IPv6 /64, User-Agent, domain, package) with a secret salt that changes every UTC day; for unique counts within a day only.'),
} as const;

type Fields = typeof EVENT_FIELDS;
type TsOf<T extends ColumnType> = T extends 'string' ? string : T extends 'boolean' ? boolean : T extends 'int' ? number : unknown;
export type GatewayEvent = {
  -readonly [K in keyof Fields]: Fields[K]['nullable'] extends true ? TsOf<Fields[K]['type']> | null : TsOf<Fields[K]['type']>;
} & { kind: EventKind; action: EventAction; variables: Record<string, string>; body_event: Record<string, unknown> | null };

export const EVENT_FIELD_NAMES = Object.keys(EVENT_FIELDS) as (keyof Fields)[];

/**
 * What the engine knows about an event when it decides; the adapter completes it once the
 * response is sent (status, time, client fields, visitor id).
 */
export interface EventDraft {
  kind: EventKind;
  action: EventAction;
  /** True when, if the response succeeds (2xx or a redirect), this request is a download. */
  countable: boolean;
  package_id: string | null;
  auto_create_rule_id?: string | null;
  target?: string | null;
  image?: string | null;
  reference?: string | null;
  upstream?: string | null;
  file_name?: string | null;
  version?: string | null;
  variables?: Record<string, string>;
  body_event?: Record<string, unknown> | null;
  pixel_id?: string | null;
}
