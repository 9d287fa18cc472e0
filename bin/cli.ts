#!/usr/bin/env node
/**
 * The artifact-gateway command line: `serve` runs the local gateway (on a manifest or on the rule
 * table), `rules validate` checks a manifest, `rules import|list|get|put|delete|export|create-table`
 * operate the rule table (rules-table.ts). Exit status: 0 success, 1 the operation failed (e.g. an
 * invalid manifest), 2 usage error.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ManifestWatcher, loadManifestFile } from '../lambda/local/manifest-source';
import { formatProblem, parseManifest, type Problem } from '../lambda/core/validate';
import { LocalGateway } from '../lambda/local/server';
import { NdjsonEventSink, StdoutEventSink, type EventSink } from '../lambda/local/ndjson-sink';
import { createLogger } from '../lambda/local/log';
import type { CompiledRuleSet } from '../lambda/core/compile';
import { loadNamedQueries } from '../lambda/analytics/named-queries';
import { runLocalQuery } from '../lambda/local/duckdb-query';
import { formatResult, isResultFormat, RESULT_FORMATS } from '../lambda/local/result-format';
import type { RuleSource } from '../lambda/core/rule-source';
import { createDynamoRuleStore, explainAwsError } from '../lambda/rule-store';
import { rulesTableCommands, RULES_TABLE_HELP } from './rules-table';

// The AWS SDK warns on every run that its releases after early 2027 need Node 22; this package
// pins SDK versions that support Node 20 (package.json), so the warning only adds noise here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const PACKAGE_ROOT = path.resolve(__dirname, fs.existsSync(path.resolve(__dirname, '../package.json')) ? '..' : '../..');
const EXAMPLE_MANIFEST = path.join(PACKAGE_ROOT, 'examples', 'manifest.json');

export class UsageError extends Error {}
class Failure extends Error {}

export interface OptionSpec {
  readonly name: string;
  readonly value?: string;
  readonly repeat?: boolean;
  readonly help: string;
}

export interface CommandSpec {
  readonly usage: string;
  readonly summary: string;
  readonly options: readonly OptionSpec[];
  readonly positionals?: number;
  run(opts: Record<string, string | string[] | boolean>, args: string[]): Promise<number>;
}

const HELP_OPTION: OptionSpec = { name: 'help', help: 'Show this help.' };

function parseOptions(spec: CommandSpec, argv: string[]): { opts: Record<string, string | string[] | boolean>; args: string[] } {
  const opts: Record<string, string | string[] | boolean> = {};
  const args: string[] = [];
  const all = [...spec.options, HELP_OPTION];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      args.push(...argv.slice(i + 1));
      break;
    }
    if (a === '-h') {
      opts.help = true;
      continue;
    }
    if (!a.startsWith('--')) {
      args.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = a.slice(2, eq < 0 ? undefined : eq);
    const o = all.find((x) => x.name === name);
    if (!o) throw new UsageError(`unknown option --${name} (see --help)`);
    if (!o.value) {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`);
      opts[name] = true;
      continue;
    }
    let v: string;
    if (eq >= 0) v = a.slice(eq + 1);
    else if (i + 1 < argv.length) v = argv[++i];
    else throw new UsageError(`--${name} needs a value (${o.value})`);
    if (o.repeat) opts[name] = [...((opts[name] as string[] | undefined) ?? []), v];
    else if (opts[name] !== undefined) throw new UsageError(`--${name} given twice`);
    else opts[name] = v;
  }
  if (!opts.help && spec.positionals !== undefined && args.length !== spec.positionals) {
    throw new UsageError(args.length < spec.positionals ? `missing argument (usage: ${spec.usage})` : `unexpected argument ${JSON.stringify(args[spec.positionals])}`);
  }
  return { opts, args };
}

function helpText(spec: CommandSpec): string {
  const rows = [...spec.options, HELP_OPTION].map((o) => [`--${o.name}${o.value ? ` ${o.value}` : ''}`, o.help + (o.repeat ? ' Repeatable.' : '')]);
  const width = Math.max(...rows.map((r) => r[0].length)) + 2;
  return `usage: ${spec.usage}\n\n${spec.summary}\n\noptions:\n${rows.map(([a, b]) => `  ${a.padEnd(width)}${b}`).join('\n')}\n`;
}

function printProblems(list: Problem[], label: string, out: (s: string) => void): void {
  for (const p of list) out(`  ${label} ${formatProblem(p)}\n`);
}

function parsePort(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) > 65535) throw new UsageError(`--port must be a number from 0 to 65535, got ${JSON.stringify(v)}`);
  return Number(v);
}

function parseUpstreams(values: string[]): Map<string, string> {
  const map = new Map<string, string>();
  for (const v of values) {
    const eq = v.indexOf('=');
    if (eq <= 0) throw new UsageError(`--upstream must be HOST=BASE_URL, e.g. ghcr.io=http://127.0.0.1:5000; got ${JSON.stringify(v)}`);
    const host = v.slice(0, eq).trim().toLowerCase();
    const base = v.slice(eq + 1).trim();
    let u: URL;
    try {
      u = new URL(base);
    } catch {
      throw new UsageError(`--upstream ${host}: ${JSON.stringify(base)} is not an absolute URL`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`--upstream ${host}: only http and https base URLs are supported`);
    map.set(host, base.replace(/\/+$/, ''));
  }
  return map;
}

/** `serve --rules-table`: rules from DynamoDB, per domain, cached (lambda/rule-store/store.ts). Fails fast if the table cannot be read. */
async function tableRuleSource(opts: Record<string, string | string[] | boolean>, log: ReturnType<typeof createLogger>): Promise<{ source: RuleSource; description: string }> {
  if (opts.manifest !== undefined) throw new UsageError('--manifest and --rules-table exclude each other: serve from a file or from the table');
  const ttlText = (opts['rules-ttl'] as string | undefined) ?? '5';
  const ttl = Number(ttlText);
  if (!/^\d+(\.\d+)?$/.test(ttlText) || ttl <= 0 || ttl > 3600) throw new UsageError(`--rules-ttl must be a number of seconds from 0.1 to 3600, got ${JSON.stringify(ttlText)}`);
  const endpoint = (opts['dynamodb-endpoint'] as string | undefined) ?? process.env.AWS_ENDPOINT_URL_DYNAMODB ?? process.env.AWS_ENDPOINT_URL;
  if (endpoint !== undefined && !/^https?:\/\/[^/]/.test(endpoint)) throw new UsageError(`--dynamodb-endpoint must be an http(s) URL such as http://127.0.0.1:8000, got ${JSON.stringify(endpoint)}`);
  const { store, table } = createDynamoRuleStore({ tableName: opts['rules-table'] as string, region: opts.region as string | undefined, endpoint, ttlMs: ttl * 1000, log });
  try {
    await table.queryDomain('localhost'); // the table exists and can be read
  } catch (e) {
    throw new Failure(explainAwsError(e, table));
  }
  return { source: store, description: `rules from ${table.describe()}, at most ${ttl} s old` };
}

const serve: CommandSpec = {
  usage: 'artifact-gateway serve [--manifest FILE | --rules-table NAME [--dynamodb-endpoint URL]] [--port N] [--host ADDR] [--upstream HOST=BASE_URL]... [--events DIR|-]',
  summary: 'Run the gateway locally on a manifest or on the DynamoDB rule table. Manifest rules reload\nwhen the file changes; an invalid new manifest is reported and the last good rules keep serving.\nTable rules are loaded per domain and refreshed in the background (--rules-ttl); when DynamoDB\nfails, the last good rules keep serving. SIGTERM or Ctrl-C stops it after flushing events.',
  options: [
    { name: 'manifest', value: 'FILE', help: `Rules: a Scarf Gateway manifest or this project's superset. Default: the bundled example (${path.relative(process.cwd(), EXAMPLE_MANIFEST) || EXAMPLE_MANIFEST}).` },
    { name: 'rules-table', value: 'NAME', help: 'Serve the rules of this DynamoDB table instead of a manifest (see "rules import").' },
    { name: 'dynamodb-endpoint', value: 'URL', help: 'DynamoDB endpoint for --rules-table, e.g. http://127.0.0.1:8000 (DynamoDB Local; any credentials). Default: AWS.' },
    { name: 'region', value: 'REGION', help: 'AWS region of --rules-table. Default: $AWS_REGION (us-east-1 with a local endpoint).' },
    { name: 'rules-ttl', value: 'SECONDS', help: 'With --rules-table: the oldest cached rules served while DynamoDB answers (refreshed in the background from half of it on). Default: 5.' },
    { name: 'port', value: 'N', help: 'TCP port. Default: 8081.' },
    { name: 'host', value: 'ADDR', help: 'Address to bind. Default: 127.0.0.1.' },
    { name: 'upstream', value: 'HOST=BASE_URL', repeat: true, help: 'Contact BASE_URL wherever the gateway itself would contact upstream HOST (mirrors, air-gapped tests). Redirects sent to clients are not rewritten.' },
    { name: 'events', value: 'DIR|-', help: 'Analytics events as NDJSON under DIR/dt=YYYY-MM-DD/, or on stdout for "-". Default: ./.gateway/events.' },
    { name: 'events-buffer', value: 'N', help: 'Most events held in memory while the events directory cannot be written (removed, unwritable, disk full); writes are retried, and past N new events are dropped and counted. Default: 100000.' },
    { name: 'upstream-timeout', value: 'SECONDS', help: 'How long the gateway waits for an upstream\'s response headers before answering 504, and the longest an upstream may fall silent mid-body before the answer is cut off. Default: 30.' },
    { name: 'access-log', help: 'Log one line per request on stderr (no query strings, no client addresses).' },
    { name: 'log-format', value: 'text|json', help: 'Log line format. Default: text.' },
    { name: 'trust-cloudfront-headers', help: 'Record country, region and ASN from CloudFront-Viewer-* headers. Only behind CloudFront, which overwrites them: anywhere else clients could forge them. Default: off.' },
  ],
  positionals: 0,
  async run(opts) {
    const logFormat = (opts['log-format'] as string | undefined) ?? 'text';
    if (logFormat !== 'text' && logFormat !== 'json') throw new UsageError(`--log-format must be text or json, got ${JSON.stringify(logFormat)}`);
    const log = createLogger({ format: logFormat });
    const manifest = path.resolve((opts.manifest as string | undefined) ?? EXAMPLE_MANIFEST);
    const port = parsePort((opts.port as string | undefined) ?? '8081');
    const host = (opts.host as string | undefined) ?? '127.0.0.1';
    const upstreams = parseUpstreams((opts.upstream as string[] | undefined) ?? []);
    const eventsTarget = (opts.events as string | undefined) ?? path.join('.gateway', 'events');
    const timeoutText = (opts['upstream-timeout'] as string | undefined) ?? '30';
    const upstreamTimeout = Number(timeoutText);
    if (!/^\d+(\.\d+)?$/.test(timeoutText) || upstreamTimeout <= 0 || upstreamTimeout > 3600) {
      throw new UsageError(`--upstream-timeout must be a number of seconds between 0 and 3600, got ${JSON.stringify(timeoutText)}`);
    }
    const fromTable = opts['rules-table'] !== undefined ? await tableRuleSource(opts, log) : null;
    if (!fromTable) for (const o of ['dynamodb-endpoint', 'region', 'rules-ttl']) if (opts[o] !== undefined) throw new UsageError(`--${o} needs --rules-table`);

    const loaded = fromTable ? null : loadManifestFile(manifest);
    if (loaded && !loaded.rules) {
      process.stderr.write(`artifact-gateway: ${manifest}: invalid manifest (${loaded.errors.length} problem${loaded.errors.length === 1 ? '' : 's'})\n`);
      printProblems(loaded.errors, 'error:', (s) => process.stderr.write(s));
      return 1;
    }
    if (loaded) printProblems(loaded.warnings, 'warning:', (s) => process.stderr.write(s));
    let rules: CompiledRuleSet | null = loaded?.rules ?? null;

    const bufferText = (opts['events-buffer'] as string | undefined) ?? '100000';
    if (!/^\d+$/.test(bufferText) || Number(bufferText) < 1 || Number(bufferText) > 10_000_000) {
      throw new UsageError(`--events-buffer must be a number of events between 1 and 10000000, got ${JSON.stringify(bufferText)}`);
    }
    const sink: EventSink = eventsTarget === '-'
      ? new StdoutEventSink()
      : new NdjsonEventSink(path.resolve(eventsTarget), (m) => log.warn(m), { maxBufferedEvents: Number(bufferText) });
    const gateway = new LocalGateway({
      host, port, rules: fromTable?.source ?? (() => rules!), sink, upstreams, log,
      accessLog: opts['access-log'] === true,
      proxy: { headersTimeoutMs: upstreamTimeout * 1000, idleTimeoutMs: upstreamTimeout * 1000 },
      trustViewerHeaders: opts['trust-cloudfront-headers'] === true,
    });
    let address;
    try {
      address = await gateway.start();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new Failure(code === 'EADDRINUSE' ? `port ${port} on ${host} is already in use (choose another with --port)` : `cannot listen on ${host}:${port}: ${(e as Error).message}`);
    }
    const watcher = new ManifestWatcher(manifest, {
      onReload(next, warnings) {
        rules = next;
        log.info(`reloaded ${manifest}: ${next.ruleCount} rules on ${next.domains.size} domains`);
        printProblems(warnings, 'warning:', (s) => process.stderr.write(s));
      },
      onInvalid(errors) {
        log.error(`${manifest} changed but is invalid (${errors.length} problem${errors.length === 1 ? '' : 's'}); still serving the previous rules`);
        printProblems(errors, 'error:', (s) => process.stderr.write(s));
      },
    });
    if (!fromTable) watcher.start(fs.readFileSync(manifest, 'utf8'));
    const hostShown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    const ruleText = fromTable ? fromTable.description : `${rules!.ruleCount} rules on ${rules!.domains.size} domains from ${path.relative(process.cwd(), manifest) || manifest}`;
    log.info(`artifact-gateway listening on http://${hostShown}:${address.port} (${ruleText}; events: ${eventsTarget === '-' ? 'stdout' : path.resolve(eventsTarget)})`);

    return await new Promise<number>((resolve) => {
      let stopping = false;
      const stop = async (signal: string) => {
        if (stopping) return;
        stopping = true;
        log.info(`${signal}: stopping`);
        watcher.stop();
        await gateway.stop();
        await sink.close();
        const st = sink.stats?.();
        if (st) log.info(`events: ${st.written} written, ${st.retried} retried, ${st.dropped} dropped`);
        resolve(0);
      };
      process.once('SIGTERM', () => void stop('SIGTERM'));
      process.once('SIGINT', () => void stop('SIGINT'));
    });
  },
};

const rulesValidate: CommandSpec = {
  usage: 'artifact-gateway rules validate FILE [--json]',
  summary: 'Check a manifest without AWS: every problem is listed with its rule, field and what was\nexpected. Exit status 0 when valid (warnings allowed), 1 when invalid.',
  options: [{ name: 'json', help: 'Print the result as JSON: {"valid", "rules", "errors", "warnings"}.' }],
  positionals: 1,
  async run(opts, [file]) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      throw new Failure(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
    }
    const v = parseManifest(text);
    if (opts.json) {
      process.stdout.write(`${JSON.stringify({ valid: v.errors.length === 0, rules: v.rules.length, errors: v.errors, warnings: v.warnings }, null, 2)}\n`);
    } else if (v.errors.length) {
      process.stderr.write(`${file}: invalid manifest (${v.errors.length} problem${v.errors.length === 1 ? '' : 's'})\n`);
      printProblems(v.errors, 'error:', (s) => process.stderr.write(s));
      printProblems(v.warnings, 'warning:', (s) => process.stderr.write(s));
    } else {
      process.stdout.write(`${file}: valid, ${v.rules.length} rule${v.rules.length === 1 ? '' : 's'}${v.warnings.length ? `, ${v.warnings.length} warning${v.warnings.length === 1 ? '' : 's'}` : ''}\n`);
      printProblems(v.warnings, 'warning:', (s) => process.stdout.write(s));
    }
    return v.errors.length ? 1 : 0;
  },
};

function parseDay(option: string, v: string): string {
  const d = new Date(`${v}T00:00:00Z`);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(v) || Number.isNaN(d.getTime()) || d.toISOString().slice(0, 10) !== v) {
    throw new UsageError(`--${option} must be a date as YYYY-MM-DD, got ${JSON.stringify(v)}`);
  }
  return v;
}

const query: CommandSpec = {
  usage: 'artifact-gateway query <name> [--events DIR] [--from DATE] [--to DATE] [--format table|json|csv]\n       artifact-gateway query --list',
  summary: 'Run a named analytics query (the SQL that Athena runs when deployed) locally with DuckDB over\nthe event files the gateway wrote (DIR/dt=YYYY-MM-DD/*.ndjson). Dates are UTC days, inclusive.',
  options: [
    { name: 'list', help: 'List the named queries with what each answers.' },
    { name: 'events', value: 'DIR', help: 'Event files written by "serve --events DIR". Default: ./.gateway/events.' },
    { name: 'from', value: 'DATE', help: 'First day (YYYY-MM-DD). Default: the earliest.' },
    { name: 'to', value: 'DATE', help: 'Last day (YYYY-MM-DD). Default: the latest.' },
    { name: 'format', value: 'table|json|csv', help: 'Output format. Default: table.' },
  ],
  async run(opts, args) {
    const queries = loadNamedQueries();
    if (opts.list) {
      if (args.length) throw new UsageError('--list takes no query name');
      const width = Math.max(...queries.map((q) => q.name.length)) + 2;
      // The first sentence; the SQL file's header has the rest.
      for (const q of queries) process.stdout.write(`${q.name.padEnd(width)}${/^.*?[.?!](?=\s|$)/.exec(q.description)?.[0] ?? q.description}\n`);
      return 0;
    }
    if (args.length !== 1) {
      throw new UsageError(args.length ? `unexpected argument ${JSON.stringify(args[1])}` : 'missing query name (see --list)');
    }
    const q = queries.find((x) => x.name === args[0]);
    if (!q) throw new UsageError(`no query named ${JSON.stringify(args[0])} (queries: ${queries.map((x) => x.name).join(', ')})`);
    const format = (opts.format as string | undefined) ?? 'table';
    if (!isResultFormat(format)) throw new UsageError(`--format must be one of ${RESULT_FORMATS.join(', ')}, got ${JSON.stringify(format)}`);
    const from = opts.from !== undefined ? parseDay('from', opts.from as string) : '0000-01-01';
    const to = opts.to !== undefined ? parseDay('to', opts.to as string) : '9999-12-31';
    if (from > to) throw new UsageError(`--from ${from} is after --to ${to}`);
    const eventsDir = path.resolve((opts.events as string | undefined) ?? path.join('.gateway', 'events'));
    if (!fs.existsSync(eventsDir)) throw new Failure(`no events directory ${eventsDir} (the gateway writes one with "serve --events DIR")`);
    let result;
    try {
      result = await runLocalQuery(q, { eventsDir, from, to });
    } catch (e) {
      throw new Failure(`query ${q.name} failed: ${(e as Error).message.split('\n')[0]}`);
    }
    process.stdout.write(formatResult(result, format));
    return 0;
  },
};

const COMMANDS: Record<string, CommandSpec> = { serve, 'rules validate': rulesValidate, query, ...rulesTableCommands({ UsageError, Failure }) };

const RULES_HELP = [['validate FILE', 'Check a manifest and list every problem (no AWS needed).'] as const, ...RULES_TABLE_HELP]
  .map(([c, h]) => `  ${c.padEnd(23)}${h}`).join('\n');

const TOP_HELP = `usage: artifact-gateway <command> [options]

Serve containers, Python and npm packages and files from your own domain, with download analytics.

commands:
  serve            Run the gateway locally on a manifest or the rule table (npm start runs this).
  rules validate   Check a manifest and list every problem.
  rules import|list|get|put|delete|export|create-table
                   Operate the rules in the DynamoDB rule table ("rules --help").
  query            Run a named analytics query over local events with DuckDB (--list shows them).

Run "artifact-gateway <command> --help" for the options of a command.
`;

function version(): string {
  try {
    return JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')).version;
  } catch {
    return 'unknown';
  }
}

export async function main(argv: string[]): Promise<number> {
  try {
    if (argv.length === 0 || argv[0] === 'help' || argv[0] === '--help' || argv[0] === '-h') {
      process.stdout.write(TOP_HELP);
      return argv.length === 0 ? 2 : 0;
    }
    if (argv[0] === '--version') {
      process.stdout.write(`${version()}\n`);
      return 0;
    }
    const key = argv[0] === 'rules' ? `rules ${argv[1] ?? ''}` : argv[0];
    const spec = COMMANDS[key];
    if (!spec) {
      if (argv[0] === 'rules') {
        process.stdout.write(`usage: artifact-gateway rules <subcommand> [options]\n\nsubcommands:\n${RULES_HELP}\n\nRun "artifact-gateway rules <subcommand> --help" for its options.\n`);
        return argv[1] === undefined || argv[1] === '--help' || argv[1] === '-h' ? (argv[1] ? 0 : 2) : (process.stderr.write(`artifact-gateway: unknown rules subcommand ${JSON.stringify(argv[1])}\n`), 2);
      }
      throw new UsageError(`unknown command ${JSON.stringify(argv[0])} (commands: serve, rules validate|import|list|get|put|delete|export|create-table, query)`);
    }
    const { opts, args } = parseOptions(spec, argv.slice(key.split(' ').length));
    if (opts.help) {
      process.stdout.write(helpText(spec));
      return 0;
    }
    return await spec.run(opts, args);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`artifact-gateway: ${e.message}\n`);
      return 2;
    }
    if (e instanceof Failure) {
      process.stderr.write(`artifact-gateway: ${e.message}\n`);
      return 1;
    }
    process.stderr.write(`artifact-gateway: internal error: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

if (require.main === module) {
  // Output piped into a reader that stops early (`| head`) is not an error of ours.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw e;
    });
  }
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
    // Servers and watchers are closed by then; do not wait for stray handles.
    setTimeout(() => process.exit(code), 100).unref();
  });
}
