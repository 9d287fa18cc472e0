/**
 * file-v1 (URI templates), file-v2 (regular expressions) and catch-all-v1: redirects of plain
 * downloads, and "record only" beacons.
 */
import type { CatchAllV1Rule, FileV1Rule, FileV2Rule } from './schema';
import { expandTemplate, matchesLiteral, matchTemplate, parseTemplate, type MatchedValue, type UriTemplate } from './uri-template';
import { compileFileRegex, execFileRegex, type FileRegex } from './file-regex';
import { encodeUnsafe, mergeQuery, pathSegments, percentDecode, reencodeQuery, strictEncode } from './encoding';
import { header, REDIRECT_CACHE_CONTROL, type GatewayRequest, type Outcome } from './request';
import { BODY_LIMIT, parseBodyEvents } from './body-events';
import type { EventDraft } from './events';

interface FileV1Compiled {
  readonly type: 'file-v1';
  readonly precedence: number;
  /** Raw literal text every matching path starts with: a cheap test before the template matcher runs. */
  readonly pathPrefix: string;
  readonly incoming: UriTemplate;
  readonly outgoing: UriTemplate | null;
  readonly fixedOrigin: FixedOrigin | null;
  readonly packageId: string;
}

interface FileV2Compiled {
  readonly type: 'file-v2';
  readonly precedence: number;
  readonly incoming: FileRegex;
  readonly outgoing: UriTemplate | null;
  readonly fixedOrigin: FixedOrigin | null;
  readonly outgoingVars: readonly string[];
  readonly packageId: string;
}

type FileCompiled = FileV1Compiled | FileV2Compiled;

/**
 * The file-v1 rules under one literal first segment, by their whole literal path prefix: a path
 * can only match rules whose prefix it starts with, so a request looks up its own prefixes of the
 * lengths present, instead of trying every rule under the segment (thousands of rules can share
 * `/releases/`).
 */
interface PrefixBucket {
  readonly byPrefix: Map<string, FileCompiled[]>;
  /** The distinct prefix lengths, ascending. */
  readonly lengths: number[];
}

export interface FileIndex {
  /** Rules whose template starts with a literal first path segment, by that (raw) segment. */
  readonly byFirstSegment: Map<string, PrefixBucket>;
  /** Rules that may match any first segment (regexes, `/{+path}`, ...). */
  readonly anySegment: FileCompiled[];
}

/** Scarf's sort key of a file-v1 rule: the template expanded with every variable empty, split on `/`, empty parts dropped. */
function sortKey(t: UriTemplate): string[] {
  const empty: Record<string, string> = {};
  for (const v of t.variableNames) empty[v] = '';
  return expandTemplate(t, empty).split('/').filter((s) => s !== '');
}

function compareKeys(a: string[], b: string[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  return a.length - b.length;
}

/** The template's literal text before its first expression (path part only), encoded as requests carry it. */
function literalPathPrefix(t: UriTemplate): { prefix: string; complete: boolean } {
  let prefix = '';
  let complete = true;
  for (const part of t.parts) {
    if (part.kind !== 'literal') {
      complete = false;
      break;
    }
    prefix += part.text;
  }
  const q = prefix.indexOf('?');
  return { prefix: encodeUnsafe(q < 0 ? prefix : prefix.slice(0, q)), complete: complete || q >= 0 };
}

/** The raw first path segment every match must start with, or null when the template does not fix it. */
function literalFirstSegment(t: UriTemplate): string | null {
  const { prefix: pathPart, complete } = literalPathPrefix(t);
  if (!pathPart.startsWith('/')) return null;
  const slash = pathPart.indexOf('/', 1);
  if (slash < 0 && !complete) return null;
  return pathPart.slice(1, slash < 0 ? undefined : slash);
}

function regexFirstSegment(): null {
  // A regex is searched anywhere in the path (Scarf does not anchor it), so it can match under any segment.
  return null;
}

/** The scheme, userinfo and host name an outgoing template writes literally, before any variable. */
interface FixedOrigin {
  readonly protocol: string;
  readonly username: string;
  readonly password: string;
  readonly hostname: string;
  /**
   * The literal prefix through the first `/`, `?` or `#` after the authority (`https://dl.example.com/`),
   * when the template writes one: a location that starts with it cannot name another origin, so
   * it needs no parse. Null when the authority is not closed literally (`https://dl.example.com{+path}`).
   */
  readonly closedPrefix: string | null;
}

/** `scheme://authority` followed by the character that ends the authority. */
const CLOSED_ORIGIN = /^https?:\/\/[^/?#\\]*[/?#]/i;

function closedPrefixOf(literalPrefix: string, origin: URL): string | null {
  const m = CLOSED_ORIGIN.exec(literalPrefix);
  if (!m) return null;
  // The prefix must parse to the very origin fixed (it does, being the start of the same literal).
  try {
    const u = new URL(m[0]);
    return u.protocol === origin.protocol && u.hostname === origin.hostname && u.username === origin.username && u.password === origin.password ? m[0] : null;
  } catch {
    return null;
  }
}

/**
 * What a variable must not change in a redirect (no open redirect): the origin the template's
 * literal text fixes before its first expression. `https://dl.example.com{+path}` fixes
 * dl.example.com, so a value `@evil.test` cannot turn it into a userinfo. Null when the
 * template itself puts a variable in the scheme or host (`{+url}`, `https://{mirror}.example.com/`):
 * the rule's author chose that.
 */
function fixedOriginOf(t: UriTemplate): FixedOrigin | null {
  let prefix = '';
  for (const part of t.parts) {
    if (part.kind !== 'literal') break;
    prefix += part.text;
  }
  const empty: Record<string, string> = {};
  for (const v of t.variableNames) empty[v] = '';
  let literal: URL;
  let bare: URL;
  try {
    literal = new URL(prefix);
    bare = new URL(expandTemplate(t, empty));
  } catch {
    return null;
  }
  // Where the literal prefix is a whole origin, expanding every variable to '' keeps that host.
  if (literal.hostname === '' || literal.hostname !== bare.hostname || literal.protocol !== bare.protocol) return null;
  return { protocol: literal.protocol, username: literal.username, password: literal.password, hostname: literal.hostname, closedPrefix: closedPrefixOf(prefix, literal) };
}

/** Control characters, spaces, backslashes and non-ASCII never belong in a Location we send. */
const UNSAFE_LOCATION = /[\u0000-\u0020\u007f-\uffff\\]/;

/**
 * A redirect target built from request values is sent only when it is an absolute http(s) URL,
 * free of characters that could split a header or confuse a client's URL parser, and on the
 * origin the template fixes. Otherwise null.
 */
export function safeRedirectTarget(location: string, fixed: FixedOrigin | null): string | null {
  if (UNSAFE_LOCATION.test(location)) return null;
  // Runs on every redirect: past a literally closed authority, no value can change the origin.
  if (fixed?.closedPrefix && location.startsWith(fixed.closedPrefix)) return location;
  let u: URL;
  try {
    u = new URL(location);
  } catch {
    return null;
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return null;
  if (fixed && (u.protocol !== fixed.protocol || u.username !== fixed.username || u.password !== fixed.password || u.hostname !== fixed.hostname)) return null;
  return location;
}

/** The answer when a request's values would make a redirect leave its rule's origin (or break the URL). */
function rejectedRedirect(kind: 'file' | 'catch-all', packageId: string, variables: Record<string, string>): FileResult {
  const events: EventDraft[] = [{ kind, action: 'rejected', countable: false, package_id: packageId, target: null, variables, version: variables.version ?? null, body_event: null }];
  const body = JSON.stringify({ error: 'bad_request', message: 'the request path does not make a valid redirect target for this rule' });
  return { decision: { type: 'respond', status: 400, headers: { 'content-type': 'application/json', 'cache-control': 'no-store' }, body }, events };
}

/**
 * Rules in manifest order, all of one domain. `layout: 'scan'` leaves out the prefix index (every
 * rule is tried in precedence order): the reference the index is tested against.
 */
export function compileFiles(v1: FileV1Rule[], v2: FileV2Rule[], layout: 'indexed' | 'scan' = 'indexed'): FileIndex | null {
  if (!v1.length && !v2.length) return null;
  // Scarf's precedence: file-v1 by key descending, then file-v2 by source ascending; ties: later manifest entry first.
  const v1Sorted = v1.map((r, i) => ({ r, i, key: sortKey(parseTemplate(r['incoming-path'])) }))
    .sort((a, b) => compareKeys(b.key, a.key) || b.i - a.i);
  const v2Sorted = v2.map((r, i) => ({ r, i, source: r['incoming-path'].trim() }))
    .sort((a, b) => (a.source < b.source ? -1 : a.source > b.source ? 1 : b.i - a.i));
  const byFirstSegment = new Map<string, PrefixBucket>();
  const anySegment: FileCompiled[] = [];
  const add = (c: FileCompiled, segment: string | null) => {
    if (segment === null || c.type !== 'file-v1' || layout === 'scan') {
      anySegment.push(c);
      return;
    }
    let bucket = byFirstSegment.get(segment);
    if (!bucket) byFirstSegment.set(segment, (bucket = { byPrefix: new Map(), lengths: [] }));
    const list = bucket.byPrefix.get(c.pathPrefix);
    if (list) list.push(c);
    else {
      bucket.byPrefix.set(c.pathPrefix, [c]);
      if (!bucket.lengths.includes(c.pathPrefix.length)) bucket.lengths.push(c.pathPrefix.length);
    }
  };
  let precedence = 0;
  for (const { r } of v1Sorted) {
    const incoming = parseTemplate(r['incoming-path']);
    const outgoing = r['outgoing-url'] == null ? null : parseTemplate(r['outgoing-url']);
    const fixedOrigin = outgoing && fixedOriginOf(outgoing);
    add({ type: 'file-v1', precedence: precedence++, pathPrefix: literalPathPrefix(incoming).prefix, incoming, outgoing, fixedOrigin, packageId: r['package-id'] }, literalFirstSegment(incoming));
  }
  for (const { r } of v2Sorted) {
    const incoming = compileFileRegex(r['incoming-path']);
    if ('problem' in incoming) throw new Error(`invalid file-v2 rule: ${incoming.problem}`);
    const outgoing = r['outgoing-url'] == null ? null : parseTemplate(r['outgoing-url']);
    add({ type: 'file-v2', precedence: precedence++, incoming, outgoing, fixedOrigin: outgoing && fixedOriginOf(outgoing), outgoingVars: outgoing?.variableNames ?? [], packageId: r['package-id'] }, regexFirstSegment());
  }
  for (const bucket of byFirstSegment.values()) bucket.lengths.sort((a, b) => a - b);
  return { byFirstSegment, anySegment };
}

const byPrecedence = (a: FileCompiled, b: FileCompiled) => a.precedence - b.precedence;

/**
 * Candidate rules for a path, in precedence order: the file-v1 rules whose literal prefix the
 * path starts with (one lookup per prefix length under its first segment), and the rules that
 * fit any path.
 */
function candidates(index: FileIndex, rawPath: string): readonly FileCompiled[] {
  const slash = rawPath.indexOf('/', 1);
  const bucket = index.byFirstSegment.get(rawPath.slice(1, slash < 0 ? undefined : slash));
  if (!bucket) return index.anySegment;
  let found: FileCompiled[] | null = null;
  let lists = 0;
  for (const length of bucket.lengths) {
    if (length > rawPath.length) break;
    const list = bucket.byPrefix.get(length === rawPath.length ? rawPath : rawPath.slice(0, length));
    if (!list) continue;
    found = found === null ? list : found.concat(list);
    lists++;
  }
  if (found === null) return index.anySegment;
  if (lists === 1 && index.anySegment.length === 0) return found;
  return found.concat(index.anySegment).sort(byPrecedence);
}

const decodedVariables = (vars: Map<string, MatchedValue>): Record<string, string> => {
  const out: Record<string, string> = {};
  for (const [k, v] of vars) out[k] = v.decoded;
  return out;
};

type FileResult = Omit<Outcome, 'domain'>;

/** No Range header, or one that asks for the file from its first byte (`bytes=0-`, `bytes=0-1023`). */
export function rangeStartsAtZero(range: string | undefined): boolean {
  return range === undefined || /^\s*bytes\s*=\s*0\s*-/i.test(range);
}

function fileOutcome(req: GatewayRequest, kind: 'file' | 'catch-all', packageId: string, location: string | null, variables: Record<string, string>, bodyEvents: Record<string, unknown>[] = []): FileResult {
  const base: EventDraft = {
    kind,
    action: location ? 'redirect' : 'respond',
    // Files: a GET that is redirected or answered is a download; a Range request for a later part
    // (a resumed or segmented download) is not counted again.
    countable: req.method === 'GET' && rangeStartsAtZero(header(req.headers, 'range')),
    package_id: packageId,
    target: location,
    variables,
    version: variables.version ?? null,
    body_event: null,
  };
  const events = bodyEvents.length ? bodyEvents.map((b) => ({ ...base, body_event: b })) : [base];
  const decision: Outcome['decision'] = location
    ? { type: 'redirect', status: 307, location, headers: { 'cache-control': REDIRECT_CACHE_CONTROL } }
    : { type: 'respond', status: 200, headers: { 'cache-control': 'no-store' }, body: '' };
  return { decision, events };
}

function tryFileV1(rule: FileV1Compiled, req: GatewayRequest): FileResult | 'read-body' | null {
  if (!req.rawPath.startsWith(rule.pathPrefix)) return null;
  let vars = matchTemplate(rule.incoming, req.rawPath, req.rawQuery);
  if (vars !== null && vars.size === 0) vars = null;
  let location: string | null = null;
  if (vars) {
    if (rule.outgoing) {
      for (const v of rule.outgoing.variableNames) if (!vars.has(v)) return null;
      location = safeRedirectTarget(mergeQuery(expandTemplate(rule.outgoing, vars), req.rawQuery), rule.fixedOrigin);
      if (location === null) return rejectedRedirect('file', rule.packageId, decodedVariables(vars));
    }
  } else {
    // No variable bound: only a template without variables can match, literally.
    if (rule.incoming.variableNames.length > 0 || !matchesLiteral(rule.incoming, req.rawPath, req.rawQuery)) return null;
    if (rule.outgoing) {
      if (rule.outgoing.variableNames.length > 0) return null;
      location = safeRedirectTarget(mergeQuery(expandTemplate(rule.outgoing, {}), req.rawQuery), rule.fixedOrigin);
      if (location === null) return rejectedRedirect('file', rule.packageId, {});
    }
    vars = new Map();
  }
  // Beacons may carry events in their body (any method, as in Scarf).
  if (req.hasBody && req.body === undefined) return 'read-body';
  const body = parseBodyEvents(req.body, req.bodyTruncated);
  return fileOutcome(req, 'file', rule.packageId, location, decodedVariables(vars), body.events);
}

function tryFileV2(rule: FileV2Compiled, req: GatewayRequest): FileResult | null {
  const groups = execFileRegex(rule.incoming, req.rawPath);
  if (!groups) return null;
  // Unlike Scarf, values are decoded once (`%20` -> space), so expansion does not encode them twice.
  const vars = new Map<string, MatchedValue>();
  for (const [k, raw] of groups) vars.set(k, { raw, decoded: percentDecode(raw) ?? raw });
  let location: string | null = null;
  if (rule.outgoing) {
    for (const v of rule.outgoingVars) if (!vars.has(v)) return null;
    location = safeRedirectTarget(mergeQuery(expandTemplate(rule.outgoing, vars), req.rawQuery), rule.fixedOrigin);
    if (location === null) return rejectedRedirect('file', rule.packageId, decodedVariables(vars));
  }
  return fileOutcome(req, 'file', rule.packageId, location, decodedVariables(vars));
}

export const FILE_BODY_LIMIT = BODY_LIMIT;

/** First file rule (in precedence order) that takes the request. */
export function handleFiles(index: FileIndex, req: GatewayRequest): FileResult | 'read-body' | null {
  for (const rule of candidates(index, req.rawPath)) {
    const r = rule.type === 'file-v1' ? tryFileV1(rule, req) : tryFileV2(rule, req);
    if (r) return r;
  }
  return null;
}

export interface CatchAllCompiled {
  readonly packageId: string;
  readonly targetDomain: string | null;
  /** The target's origin: a request's path never changes it. */
  readonly fixedOrigin: FixedOrigin | null;
}

export function compileCatchAll(rules: CatchAllV1Rule[]): CatchAllCompiled | null {
  const r = rules[rules.length - 1]; // a second catch-all on a domain replaces the first (validation warns)
  if (!r) return null;
  const targetDomain = r['redirect-target-domain'] ?? null;
  const origin = targetDomain === null ? null : new URL(`https://${targetDomain}`);
  const fixedOrigin = origin && { protocol: origin.protocol, username: origin.username, password: origin.password, hostname: origin.hostname, closedPrefix: closedPrefixOf(`https://${targetDomain}/`, origin) };
  return { packageId: r['package-id'], targetDomain, fixedOrigin };
}

/** catch-all-v1: 307 to the same path and query on the target domain, each segment strictly re-encoded. */
export function handleCatchAll(rule: CatchAllCompiled, req: GatewayRequest): FileResult {
  let location: string | null = null;
  if (rule.targetDomain) {
    const segments = pathSegments(req.rawPath);
    // A segment that is not valid UTF-8 is passed on as received rather than failing the request (Scarf answers 500).
    const path = segments
      ? (req.rawPath === '/' ? '' : segments.map((s) => `/${strictEncode(s)}`).join(''))
      : encodeUnsafe(req.rawPath === '/' ? '' : req.rawPath);
    location = safeRedirectTarget(`https://${rule.targetDomain}${path}${reencodeQuery(req.rawQuery)}`, rule.fixedOrigin);
    if (location === null) return rejectedRedirect('catch-all', rule.packageId, {});
  }
  return fileOutcome(req, 'catch-all', rule.packageId, location, {});
}
