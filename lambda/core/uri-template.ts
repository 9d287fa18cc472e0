/**
 * RFC 6570 URI templates as the Scarf Gateway uses them for `file-v1` redirect rules:
 * parse a template, match an incoming request against it (Scarf's depth-first,
 * shortest-value-first semantics, plus query parameters matched in any order), and
 * expand an outgoing template.
 *
 * Pure functions: no I/O, no dependencies beyond the JS/Node globals TextEncoder/TextDecoder.
 */

export type Operator = '' | '+' | '#' | '.' | '/' | ';' | '?' | '&';

export interface VarSpec {
  name: string;
  prefix?: number;
  explode: boolean;
}

export type TemplatePart =
  | { kind: 'literal'; text: string }
  | { kind: 'expression'; operator: Operator; vars: VarSpec[] };

export class TemplateSyntaxError extends Error {
  readonly position: number;

  constructor(problem: string, position: number) {
    super(`${problem} at position ${position}`);
    this.name = 'TemplateSyntaxError';
    this.position = position;
  }
}

export interface UriTemplate {
  readonly source: string;
  readonly parts: readonly TemplatePart[];
  /** Unique, in order of first appearance. */
  readonly variableNames: readonly string[];
  /** True when the template's expansion (every variable set to its own name) has a '?' followed by at least one character. */
  readonly capturesQuery: boolean;
}

/** A value bound by matching: `raw` is the text as it appeared in the request (still percent-encoded), `decoded` its percent-decoding. */
export interface MatchedValue {
  raw: string;
  decoded: string;
}

// ---------------------------------------------------------------------------
// Character classes
// ---------------------------------------------------------------------------

const UNRESERVED = 1;
const RESERVED = 2;
const HEX_DIGIT = 4;
const FORBIDDEN_IN_LITERAL = 8;
const VARNAME_CHAR = 16;

/** Flags for each ASCII code unit. */
const ASCII_CLASS = new Uint8Array(128);
function markChars(chars: string, flag: number): void {
  for (const ch of chars) ASCII_CLASS[ch.charCodeAt(0)] |= flag;
}
const DIGITS = '0123456789';
const LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
markChars(LETTERS + DIGITS + '-._~', UNRESERVED);
markChars(":/?#[]@!$&'()*+,;=", RESERVED);
markChars(DIGITS + 'ABCDEFabcdef', HEX_DIGIT);
markChars(' "\'%<>\\^`{|}', FORBIDDEN_IN_LITERAL);
markChars(LETTERS + DIGITS + '_', VARNAME_CHAR);

function hasClass(code: number, flag: number): boolean {
  return code < 128 && (ASCII_CLASS[code] & flag) !== 0;
}

/** The byte of a valid `%XX` triplet at `position`, or -1. */
function percentByteAt(text: string, position: number): number {
  if (text.charCodeAt(position) !== 0x25 || position + 2 >= text.length) return -1;
  const high = hexValue(text.charCodeAt(position + 1));
  const low = hexValue(text.charCodeAt(position + 2));
  return high < 0 || low < 0 ? -1 : high * 16 + low;
}

function hexValue(code: number): number {
  if (!hasClass(code, HEX_DIGIT)) return -1;
  return code <= 0x39 ? code - 0x30 : (code | 0x20) - 0x61 + 10;
}

function isControlChar(code: number): boolean {
  return code < 0x20 || code === 0x7f || (code >= 0x80 && code <= 0x9f);
}

function describeChar(ch: string): string {
  const code = ch.codePointAt(0) ?? 0;
  if (isControlChar(code) || (code >= 0xd800 && code <= 0xdfff)) {
    return `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
  }
  return `'${ch}'`;
}

// ---------------------------------------------------------------------------
// Operators
// ---------------------------------------------------------------------------

interface OperatorRules {
  /** Emitted before the first defined variable. */
  first: string;
  separator: string;
  /** `name=value` pairs (`;`, `?`, `&`). */
  named: boolean;
  /** What follows the name of an empty value in named expansion. */
  ifEmpty: string;
  /** Reserved characters pass through unencoded (`+`, `#`). */
  allowReserved: boolean;
}

const OPERATOR_RULES: Readonly<Record<Operator, OperatorRules>> = {
  '': { first: '', separator: ',', named: false, ifEmpty: '', allowReserved: false },
  '+': { first: '', separator: ',', named: false, ifEmpty: '', allowReserved: true },
  '#': { first: '#', separator: ',', named: false, ifEmpty: '', allowReserved: true },
  '.': { first: '.', separator: '.', named: false, ifEmpty: '', allowReserved: false },
  '/': { first: '/', separator: '/', named: false, ifEmpty: '', allowReserved: false },
  ';': { first: ';', separator: ';', named: true, ifEmpty: '', allowReserved: false },
  '?': { first: '?', separator: '&', named: true, ifEmpty: '=', allowReserved: false },
  '&': { first: '&', separator: '&', named: true, ifEmpty: '=', allowReserved: false },
};

const OPERATOR_CHARS = '+#./;?&';
const RESERVED_OPERATOR_CHARS = '=,!@|';

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

export function parseTemplate(source: string): UriTemplate {
  if (typeof source !== 'string') throw new TemplateSyntaxError('template is not a string', 0);
  const parts: TemplatePart[] = [];
  let literal = '';
  let i = 0;
  while (i < source.length) {
    const code = source.charCodeAt(i);
    if (code === 0x7b /* { */) {
      if (literal !== '') parts.push({ kind: 'literal', text: literal });
      literal = '';
      const { expression, end } = parseExpression(source, i);
      parts.push(expression);
      i = end;
    } else if (code === 0x7d /* } */) {
      throw new TemplateSyntaxError("unmatched '}'", i);
    } else if (code === 0x25 /* % */) {
      if (percentByteAt(source, i) < 0) throw new TemplateSyntaxError("'%' not followed by two hex digits", i);
      literal += source.slice(i, i + 3);
      i += 3;
    } else if (isControlChar(code)) {
      throw new TemplateSyntaxError(`control character ${describeChar(source[i])} not allowed`, i);
    } else if (code < 0x80) {
      if (hasClass(code, FORBIDDEN_IN_LITERAL)) {
        throw new TemplateSyntaxError(`character ${describeChar(source[i])} not allowed in a literal`, i);
      }
      literal += source[i];
      i += 1;
    } else {
      const codePoint = source.codePointAt(i) ?? code;
      if (codePoint >= 0xd800 && codePoint <= 0xdfff) {
        throw new TemplateSyntaxError(`lone surrogate ${describeChar(source[i])} not allowed`, i);
      }
      const width = codePoint > 0xffff ? 2 : 1;
      literal += source.slice(i, i + width);
      i += width;
    }
  }
  if (literal !== '') parts.push({ kind: 'literal', text: literal });

  const variableNames: string[] = [];
  for (const part of parts) {
    if (part.kind !== 'expression') continue;
    for (const v of part.vars) if (!variableNames.includes(v.name)) variableNames.push(v.name);
  }
  return { source, parts, variableNames, capturesQuery: computeCapturesQuery(parts) };
}

function parseExpression(source: string, open: number): { expression: TemplatePart; end: number } {
  const unclosed = (): TemplateSyntaxError => new TemplateSyntaxError("unclosed '{'", open);
  let i = open + 1;
  if (i >= source.length) throw unclosed();
  let operator: Operator = '';
  if (OPERATOR_CHARS.includes(source[i])) {
    operator = source[i] as Operator;
    i += 1;
  } else if (RESERVED_OPERATOR_CHARS.includes(source[i])) {
    throw new TemplateSyntaxError(`reserved operator '${source[i]}' not supported`, i);
  }

  const vars: VarSpec[] = [];
  for (;;) {
    const nameStart = i;
    // varname = varchar *( ["."] varchar ), varchar = ALPHA / DIGIT / "_" / pct-encoded
    for (;;) {
      const segmentStart = i;
      while (i < source.length) {
        const code = source.charCodeAt(i);
        if (hasClass(code, VARNAME_CHAR)) {
          i += 1;
        } else if (code === 0x25) {
          if (percentByteAt(source, i) < 0) {
            throw new TemplateSyntaxError("'%' not followed by two hex digits in variable name", i);
          }
          i += 3;
        } else {
          break;
        }
      }
      if (i === segmentStart) {
        if (i >= source.length) throw unclosed();
        const ch = source[i];
        if (i > nameStart) throw new TemplateSyntaxError("variable name must not end with '.' or contain '..'", i);
        if (ch === '}' || ch === ',' || ch === ':' || ch === '*' || ch === '.') {
          throw new TemplateSyntaxError('empty variable name', i);
        }
        if (ch === '{') throw new TemplateSyntaxError("unexpected '{' inside expression", i);
        throw new TemplateSyntaxError(`invalid character ${describeChar(ch)} in variable name`, i);
      }
      if (source[i] === '.') {
        i += 1;
        continue;
      }
      break;
    }
    const spec: VarSpec = { name: source.slice(nameStart, i), explode: false };

    if (source[i] === ':') {
      const digitsStart = i + 1;
      let j = digitsStart;
      while (j < source.length && source[j] >= '0' && source[j] <= '9') j += 1;
      const digits = source.slice(digitsStart, j);
      if (digits === '') {
        if (j >= source.length) throw unclosed();
        throw new TemplateSyntaxError("missing prefix length after ':'", digitsStart);
      }
      if (digits.length > 4 || digits[0] === '0') {
        throw new TemplateSyntaxError(`prefix length ${digits} out of range 1..9999`, digitsStart);
      }
      spec.prefix = Number(digits);
      i = j;
    } else if (source[i] === '*') {
      spec.explode = true;
      i += 1;
    }
    vars.push(spec);

    if (i >= source.length) throw unclosed();
    const ch = source[i];
    if (ch === '}') return { expression: { kind: 'expression', operator, vars }, end: i + 1 };
    if (ch === ',') {
      i += 1;
      continue;
    }
    if (ch === '{') throw new TemplateSyntaxError("unexpected '{' inside expression", i);
    throw new TemplateSyntaxError(`invalid character ${describeChar(ch)} in expression`, i);
  }
}

function computeCapturesQuery(parts: readonly TemplatePart[]): boolean {
  const ownNames = new Map<string, string>();
  for (const part of parts) {
    if (part.kind === 'expression') for (const v of part.vars) ownNames.set(v.name, v.name);
  }
  return /\?[\s\S]/.test(expandParts(parts, (name) => ownNames.get(name)));
}

// ---------------------------------------------------------------------------
// Percent-encoding helpers
// ---------------------------------------------------------------------------

const utf8Encoder = new TextEncoder();
// fatal: invalid UTF-8 must not decode; ignoreBOM: a %EF%BB%BF is data, not a marker to strip.
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function percentEncodeBytes(text: string): string {
  // TextEncoder turns lone surrogates into U+FFFD instead of throwing.
  let out = '';
  for (const byte of utf8Encoder.encode(text)) out += '%' + (byte < 16 ? '0' : '') + byte.toString(16).toUpperCase();
  return out;
}

/**
 * Percent-decodes `text` (runs of `%XX` as UTF-8); other characters are kept as they are.
 * Returns null for a malformed `%` or a run that is not valid UTF-8. Never throws.
 */
export function percentDecode(text: string): string | null {
  if (!text.includes('%')) return text;
  let out = '';
  let i = 0;
  while (i < text.length) {
    if (text.charCodeAt(i) !== 0x25) {
      const next = text.indexOf('%', i);
      const end = next < 0 ? text.length : next;
      out += text.slice(i, end);
      i = end;
      continue;
    }
    const bytes: number[] = [];
    while (i < text.length && text.charCodeAt(i) === 0x25) {
      const byte = percentByteAt(text, i);
      if (byte < 0) return null;
      bytes.push(byte);
      i += 3;
    }
    try {
      out += utf8Decoder.decode(new Uint8Array(bytes));
    } catch {
      return null;
    }
  }
  return out;
}

/** Encodes a string value: everything except unreserved (and, if allowed, reserved) characters; '%' always becomes %25. */
function encodeString(value: string, allowReserved: boolean): string {
  const keep = allowReserved ? UNRESERVED | RESERVED : UNRESERVED;
  let out = '';
  let i = 0;
  while (i < value.length) {
    const code = value.charCodeAt(i);
    if (hasClass(code, keep)) {
      out += value[i];
      i += 1;
    } else {
      const width = code >= 0xd800 && code <= 0xdbff && i + 1 < value.length && isLowSurrogate(value.charCodeAt(i + 1)) ? 2 : 1;
      out += percentEncodeBytes(value.slice(i, i + width));
      i += width;
    }
  }
  return out;
}

/** Like encodeString with reserved allowed, but valid `%XX` triplets pass through unchanged (raw request text, template literals). */
function encodeKeepingEscapes(text: string): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    if (percentByteAt(text, i) >= 0) {
      out += text.slice(i, i + 3);
      i += 3;
      continue;
    }
    const next = text.indexOf('%', i + 1);
    const end = next < 0 ? text.length : next;
    out += encodeString(text.slice(i, end), true);
    i = end;
  }
  return out;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

/** The first `count` code points of `text`. */
function truncateCodePoints(text: string, count: number): string {
  let i = 0;
  for (let taken = 0; taken < count && i < text.length; taken += 1) {
    const code = text.charCodeAt(i);
    i += code >= 0xd800 && code <= 0xdbff && i + 1 < text.length && isLowSurrogate(text.charCodeAt(i + 1)) ? 2 : 1;
  }
  return text.slice(0, i);
}

/** The end of the UTF-8 sequence whose `%XX` lead byte is at `position`, or -1 if it is not a valid sequence. */
function utf8SequenceEnd(text: string, position: number, lead: number): number {
  let continuations: number;
  let secondLow = 0x80;
  let secondHigh = 0xbf;
  if (lead < 0x80) return position + 3;
  if (lead >= 0xc2 && lead <= 0xdf) continuations = 1;
  else if (lead >= 0xe0 && lead <= 0xef) {
    continuations = 2;
    if (lead === 0xe0) secondLow = 0xa0; // overlong
    if (lead === 0xed) secondHigh = 0x9f; // UTF-16 surrogates
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    continuations = 3;
    if (lead === 0xf0) secondLow = 0x90; // overlong
    if (lead === 0xf4) secondHigh = 0x8f; // above U+10FFFF
  } else return -1;
  let at = position + 3;
  for (let k = 0; k < continuations; k += 1, at += 3) {
    const byte = percentByteAt(text, at);
    const low = k === 0 ? secondLow : 0x80;
    const high = k === 0 ? secondHigh : 0xbf;
    if (byte < low || byte > high) return -1;
  }
  return at;
}

/** Raw text cut after `count` decoded code points; a `%XX` run counts per UTF-8 character. */
function truncateRaw(raw: string, count: number): string {
  let i = 0;
  for (let taken = 0; taken < count && i < raw.length; taken += 1) {
    const byte = percentByteAt(raw, i);
    if (byte >= 0) {
      const end = utf8SequenceEnd(raw, i, byte);
      i = end > 0 ? end : i + 3;
    } else {
      i += truncateCodePoints(raw.slice(i, i + 2), 1).length;
    }
  }
  return raw.slice(0, i);
}

/** Template literal text as it appears in a URI: non-URI characters (e.g. 'é') become upper-case UTF-8 %XX, `%xx` stays as written. */
function literalToUriText(text: string): string {
  return encodeKeepingEscapes(text);
}

// ---------------------------------------------------------------------------
// Expansion
// ---------------------------------------------------------------------------

type VariableLookup = (name: string) => string | MatchedValue | undefined;

/**
 * RFC 6570 expansion. String values: '%' is always encoded as %25, hex is upper-case.
 * A MatchedValue is expanded from `raw` by '+' and '#' (so %2F, %2B survive a round trip)
 * and from `decoded` by every other operator. Undefined variables are dropped.
 */
export function expandTemplate(
  t: UriTemplate,
  vars: ReadonlyMap<string, string | MatchedValue> | Readonly<Record<string, string | MatchedValue | undefined>>,
): string {
  return expandParts(t.parts, makeLookup(vars));
}

function makeLookup(
  vars: ReadonlyMap<string, string | MatchedValue> | Readonly<Record<string, string | MatchedValue | undefined>>,
): VariableLookup {
  if (vars !== null && typeof vars === 'object' && typeof (vars as ReadonlyMap<string, unknown>).get === 'function') {
    const map = vars as ReadonlyMap<string, string | MatchedValue>;
    return (name) => map.get(name);
  }
  const record = (vars ?? {}) as Readonly<Record<string, string | MatchedValue | undefined>>;
  // Own properties only: a variable called "constructor" must not find Object.prototype.constructor.
  return (name) => (Object.prototype.hasOwnProperty.call(record, name) ? record[name] : undefined);
}

function expandParts(parts: readonly TemplatePart[], lookup: VariableLookup): string {
  let out = '';
  for (const part of parts) {
    out += part.kind === 'literal' ? literalToUriText(part.text) : expandExpression(part.operator, part.vars, lookup);
  }
  return out;
}

function expandExpression(operator: Operator, vars: readonly VarSpec[], lookup: VariableLookup): string {
  const rules = OPERATOR_RULES[operator];
  const items: string[] = [];
  for (const spec of vars) {
    const value = lookup(spec.name);
    if (value === undefined || value === null) continue;
    // Explode only changes lists and maps; on a string it is a no-op.
    const encoded = encodeValue(value, spec.prefix, rules.allowReserved);
    if (!rules.named) items.push(encoded);
    else items.push(encoded === '' ? spec.name + rules.ifEmpty : `${spec.name}=${encoded}`);
  }
  return items.length === 0 ? '' : rules.first + items.join(rules.separator);
}

function encodeValue(value: string | MatchedValue, prefix: number | undefined, allowReserved: boolean): string {
  if (typeof value === 'object') {
    if (allowReserved) {
      const raw = String(value.raw ?? '');
      return encodeKeepingEscapes(prefix === undefined ? raw : truncateRaw(raw, prefix));
    }
    value = String(value.decoded ?? '');
  }
  const text = String(value);
  return encodeString(prefix === undefined ? text : truncateCodePoints(text, prefix), allowReserved);
}

// ---------------------------------------------------------------------------
// Splitting a template into path and query
// ---------------------------------------------------------------------------

interface SplitTemplate {
  pathParts: TemplatePart[];
  /** Starts with a literal beginning with '?' or a `{?...}` expression; empty when the template has no query part. */
  queryParts: TemplatePart[];
}

/** Splits at the first '?' of a literal or the first `{?...}` expression, whichever comes first. */
function splitAtQuery(parts: readonly TemplatePart[]): SplitTemplate {
  for (let index = 0; index < parts.length; index += 1) {
    const part = parts[index];
    if (part.kind === 'expression') {
      if (part.operator === '?') return { pathParts: parts.slice(0, index), queryParts: parts.slice(index) };
      continue;
    }
    const mark = part.text.indexOf('?');
    if (mark < 0) continue;
    const pathParts = parts.slice(0, index);
    if (mark > 0) pathParts.push({ kind: 'literal', text: part.text.slice(0, mark) });
    return { pathParts, queryParts: [{ kind: 'literal', text: part.text.slice(mark) }, ...parts.slice(index + 1)] };
  }
  return { pathParts: [...parts], queryParts: [] };
}

// ---------------------------------------------------------------------------
// Query parameters in any order
// ---------------------------------------------------------------------------

/** One key of a template's query part, for matching query parameters by key in any order. */
export interface QueryPair {
  /** Percent-decoded key. */
  key: string;
  value: { kind: 'variable'; name: string } | { kind: 'literal'; text: string };
  /** True for form-style `{?a}` / `{&a}` (missing key leaves the variable undefined); false for `?k={v}` and literals (missing key fails). */
  optional: boolean;
}

/** Query component comparison form: percent-decoded, or as written if it does not decode. */
function decodeQueryComponent(text: string): string {
  return percentDecode(text) ?? text;
}

/**
 * The key/value pairs of a template's query part (`?k={v}&k2=literal`, `{?a,b}`, `{&c}`),
 * or null when the query part cannot be decomposed that way (then matching falls back to
 * Scarf's sequential algorithm) or the template does not capture the query.
 */
export function queryPairsOf(t: UriTemplate): QueryPair[] | null {
  if (!t.capturesQuery) return null;
  return decomposeQuery(splitAtQuery(t.parts).queryParts);
}

function decomposeQuery(queryParts: readonly TemplatePart[]): QueryPair[] | null {
  const pairs: QueryPair[] = [];
  let isFirst = true;
  let index = 0;
  let offset = 0; // within the literal at `index`
  while (index < queryParts.length) {
    const part = queryParts[index];
    if (part.kind === 'expression') {
      if (part.operator !== (isFirst ? '?' : '&')) return null;
      for (const spec of part.vars) {
        pairs.push({ key: decodeQueryComponent(spec.name), value: { kind: 'variable', name: spec.name }, optional: true });
      }
      isFirst = false;
      index += 1;
      offset = 0;
      continue;
    }
    const text = part.text.slice(offset);
    if (text[0] !== (isFirst ? '?' : '&')) return null;
    isFirst = false;
    const ampersand = text.indexOf('&', 1);
    const segment = ampersand < 0 ? text.slice(1) : text.slice(1, ampersand);
    const next = ampersand < 0 ? queryParts[index + 1] : undefined;
    const equals = segment.indexOf('=');
    if (next !== undefined && next.kind === 'expression' && next.operator === '') {
      // `k={v}`: the literal ends right after '=' and a single plain variable follows.
      if (equals <= 0 || equals !== segment.length - 1 || next.vars.length !== 1) return null;
      pairs.push({
        key: decodeQueryComponent(segment.slice(0, equals)),
        value: { kind: 'variable', name: next.vars[0].name },
        optional: false,
      });
      index += 2;
      offset = 0;
      continue;
    }
    if (segment !== '') {
      const key = equals < 0 ? segment : segment.slice(0, equals);
      if (key === '') return null;
      const value = equals < 0 ? '' : segment.slice(equals + 1);
      pairs.push({ key: decodeQueryComponent(key), value: { kind: 'literal', text: decodeQueryComponent(value) }, optional: false });
    }
    if (ampersand < 0) {
      index += 1;
      offset = 0;
    } else {
      offset += ampersand;
    }
  }
  return pairs;
}

interface RequestParameter {
  key: string;
  rawValue: string;
}

/** `?a=1&b=2` -> pairs, split on '&' then the first '='; '+' is NOT a space. */
function parseRequestQuery(rawQuery: string): RequestParameter[] {
  const query = rawQuery.startsWith('?') ? rawQuery.slice(1) : rawQuery;
  const parameters: RequestParameter[] = [];
  for (const segment of query.split('&')) {
    if (segment === '') continue;
    const equals = segment.indexOf('=');
    const key = equals < 0 ? segment : segment.slice(0, equals);
    parameters.push({ key: decodeQueryComponent(key), rawValue: equals < 0 ? '' : segment.slice(equals + 1) });
  }
  return parameters;
}

/** A variable binding during matching: a value, or null for "matched as undefined". */
type Binding = MatchedValue | null;

function sameBinding(a: Binding, b: Binding): boolean {
  return a === null || b === null ? a === b : a.decoded === b.decoded;
}

/** Binds a plain variable's value if it is made only of unreserved chars and valid %XX; null on failure. */
function plainValue(raw: string): MatchedValue | null {
  const steps = computeValueSteps(raw, false);
  for (let at = 0; at < raw.length; at = steps[at]) if (steps[at] < 0) return null;
  const decoded = percentDecode(raw);
  return decoded === null ? null : { raw, decoded };
}

function matchQueryPairs(pairs: readonly QueryPair[], rawQuery: string): Map<string, Binding> | null {
  const firstByKey = new Map<string, string>();
  for (const { key, rawValue } of parseRequestQuery(rawQuery)) if (!firstByKey.has(key)) firstByKey.set(key, rawValue);
  const bound = new Map<string, Binding>();
  for (const pair of pairs) {
    const rawValue = firstByKey.get(pair.key);
    if (pair.value.kind === 'literal') {
      if (rawValue === undefined || decodeQueryComponent(rawValue) !== pair.value.text) return null;
      continue;
    }
    let binding: Binding;
    if (rawValue === undefined) {
      if (!pair.optional) return null;
      binding = null;
    } else {
      binding = plainValue(rawValue);
      if (binding === null) return null;
    }
    const earlier = bound.get(pair.value.name);
    if (earlier !== undefined && !sameBinding(earlier, binding)) return null;
    bound.set(pair.value.name, binding);
  }
  return bound;
}

// ---------------------------------------------------------------------------
// Depth-first matching (Scarf semantics), compiled to a small graph
// ---------------------------------------------------------------------------

type Alphabet = 'unreserved' | 'reserved';

/**
 * Edges of a node, in Scarf's depth-first order. Every edge points to a higher node id,
 * so the graph is acyclic and can be solved backwards.
 */
type Edge =
  | { kind: 'text'; text: string; to: number }
  /** Defined variable with a non-empty value: `prefix` (operator/separator/`name=`) then the value. */
  | { kind: 'value'; name: string; prefix: string; alphabet: Alphabet; to: number }
  /** Defined variable with an empty value: exactly `text` (e.g. `;name`, `?name=`, `/`, ''). */
  | { kind: 'empty'; name: string; text: string; to: number }
  /** Undefined variable: consumes nothing. */
  | { kind: 'undefined'; name: string; to: number };

interface Program {
  edges: Edge[][];
  /** Node id of the end of the template. */
  accept: number;
  /** Variable names used on edges of nodes >= id, for memo keys when values must agree. */
  namesFrom: string[][];
  hasRepeatedNames: boolean;
  names: Set<string>;
}

function compileProgram(parts: readonly TemplatePart[]): Program {
  const edges: Edge[][] = [];
  for (const part of parts) {
    if (part.kind === 'literal') {
      const text = literalToUriText(part.text);
      if (text !== '') edges.push([{ kind: 'text', text, to: edges.length + 1 }]);
      continue;
    }
    // One node per (variable index, whether a variable of this expression is defined yet): that flag
    // decides between the operator's first-string and its separator.
    const rules = OPERATOR_RULES[part.operator];
    const base = edges.length;
    const count = part.vars.length;
    const after = base + 2 * count - 1;
    const nodeId = (index: number, anyDefined: boolean): number =>
      index === count ? after : index === 0 ? base : base + 1 + 2 * (index - 1) + (anyDefined ? 1 : 0);
    part.vars.forEach((spec, index) => {
      for (const anyDefined of index === 0 ? [false] : [false, true]) {
        const lead = anyDefined ? rules.separator : rules.first;
        const name = spec.name;
        const defined = nodeId(index + 1, true);
        const alphabet: Alphabet = rules.allowReserved ? 'reserved' : 'unreserved';
        edges[nodeId(index, anyDefined)] = [
          { kind: 'value', name, prefix: rules.named ? `${lead}${name}=` : lead, alphabet, to: defined },
          { kind: 'empty', name, text: rules.named ? lead + name + rules.ifEmpty : lead, to: defined },
          { kind: 'undefined', name, to: nodeId(index + 1, anyDefined) },
        ];
      }
    });
  }
  const accept = edges.length;
  const namesFrom: string[][] = new Array(accept + 1);
  namesFrom[accept] = [];
  let hasRepeatedNames = false;
  const names = new Set<string>();
  const occurrences = new Map<string, number>();
  for (const part of parts) {
    if (part.kind !== 'expression') continue;
    for (const spec of part.vars) {
      names.add(spec.name);
      occurrences.set(spec.name, (occurrences.get(spec.name) ?? 0) + 1);
      if ((occurrences.get(spec.name) ?? 0) > 1) hasRepeatedNames = true;
    }
  }
  for (let node = accept - 1; node >= 0; node -= 1) {
    const later = new Set(namesFrom[node + 1]);
    for (const edge of edges[node]) if (edge.kind !== 'text') later.add(edge.name);
    namesFrom[node] = [...later].sort();
  }
  return { edges, accept, namesFrom, hasRepeatedNames, names };
}

/**
 * For each input position, where a value starting there may end after one more decoded
 * character: +1 for an allowed ASCII char, +3·n for a valid n-byte UTF-8 `%XX` sequence,
 * -1 if no value character starts there. Ends reachable by following steps are exactly the
 * ends at which the value is valid (Scarf grows values one character or %XX group at a time;
 * ends inside a UTF-8 sequence decode to invalid UTF-8 and fail).
 */
function computeValueSteps(input: string, allowReserved: boolean): Int32Array {
  const keep = allowReserved ? UNRESERVED | RESERVED : UNRESERVED;
  const steps = new Int32Array(input.length + 1).fill(-1);
  for (let at = 0; at < input.length; at += 1) {
    const code = input.charCodeAt(at);
    if (code === 0x25) {
      const byte = percentByteAt(input, at);
      if (byte >= 0) steps[at] = utf8SequenceEnd(input, at, byte);
    } else if (hasClass(code, keep)) {
      steps[at] = at + 1;
    }
  }
  return steps;
}

/** Bound on search work (steps plus characters sliced) when repeated variables force real backtracking; past it the match fails. */
const BACKTRACKING_BUDGET = 1_000_000;

class BudgetExceeded extends Error {}

/**
 * Runs the program on `input`. `given` holds bindings fixed beforehand (from the query);
 * returns the bindings of the first depth-first parse, or null.
 */
function runProgram(program: Program, input: string, given: ReadonlyMap<string, Binding>): Map<string, Binding> | null {
  const { edges, accept } = program;
  const length = input.length;
  const steps: Record<Alphabet, Int32Array> = {
    unreserved: computeValueSteps(input, false),
    reserved: computeValueSteps(input, true),
  };

  // canFinish[node][p]: the rest of the template, from `node`, can consume input[p..] entirely
  // (ignoring agreement of repeated variables). Solved backwards since edges only point forward.
  const canFinish: Uint8Array[] = new Array(accept + 1);
  canFinish[accept] = new Uint8Array(length + 1);
  canFinish[accept][length] = 1;
  // firstEnd[p]: the smallest value end reachable from p by steps (p included) after which the
  // target node can finish, or -1. This turns "shortest value first" into an O(1) lookup.
  const firstEndCache = new Map<string, Int32Array>();
  const firstEnd = (to: number, alphabet: Alphabet): Int32Array => {
    const cacheKey = `${to}:${alphabet}`;
    let table = firstEndCache.get(cacheKey);
    if (table === undefined) {
      table = new Int32Array(length + 1);
      const step = steps[alphabet];
      const finish = canFinish[to];
      for (let at = length; at >= 0; at -= 1) table[at] = finish[at] ? at : step[at] >= 0 ? table[step[at]] : -1;
      firstEndCache.set(cacheKey, table);
    }
    return table;
  };
  /** End of the shortest non-empty value at `start` after which `to` can finish, or -1. */
  const shortestValueEnd = (edge: Edge & { kind: 'value' }, start: number): number => {
    if (start > length) return -1;
    const next = steps[edge.alphabet][start];
    return next < 0 ? -1 : firstEnd(edge.to, edge.alphabet)[next];
  };

  for (let node = accept - 1; node >= 0; node -= 1) {
    const row = new Uint8Array(length + 1);
    for (const edge of edges[node]) {
      if (edge.kind === 'undefined') {
        const finish = canFinish[edge.to];
        for (let at = 0; at <= length; at += 1) row[at] |= finish[at];
      } else if (edge.kind === 'value') {
        const ends = firstEnd(edge.to, edge.alphabet);
        const step = steps[edge.alphabet];
        const prefixLength = edge.prefix.length;
        for (let at = 0; at + prefixLength < length; at += 1) {
          const next = step[at + prefixLength];
          if (!row[at] && next >= 0 && ends[next] >= 0 && input.startsWith(edge.prefix, at)) row[at] = 1;
        }
      } else {
        const finish = canFinish[edge.to];
        for (let at = 0; at + edge.text.length <= length; at += 1) {
          if (!row[at] && finish[at + edge.text.length] && input.startsWith(edge.text, at)) row[at] = 1;
        }
      }
    }
    canFinish[node] = row;
  }
  if (!canFinish[0][0]) return null;

  const valueAt = (start: number, end: number): MatchedValue | null => {
    const raw = input.slice(start, end);
    const decoded = percentDecode(raw);
    return decoded === null ? null : { raw, decoded };
  };

  const mustAgree = program.hasRepeatedNames || [...given.keys()].some((name) => program.names.has(name));
  if (!mustAgree) {
    // No variable can conflict, so canFinish is exact: the first feasible edge at each node,
    // with its shortest feasible value, is Scarf's first depth-first parse. Linear time.
    const bound = new Map<string, Binding>();
    let node = 0;
    let at = 0;
    while (node !== accept) {
      let moved = false;
      for (const edge of edges[node]) {
        if (edge.kind === 'value') {
          const start = at + edge.prefix.length;
          const end = input.startsWith(edge.prefix, at) ? shortestValueEnd(edge, start) : -1;
          if (end < 0) continue;
          const value = valueAt(start, end);
          if (value === null) return null; // unreachable: steps only end on valid UTF-8
          bound.set(edge.name, value);
          at = end;
        } else if (edge.kind === 'undefined') {
          if (!canFinish[edge.to][at]) continue;
          bound.set(edge.name, null);
        } else {
          const end = at + edge.text.length;
          if (end > length || !canFinish[edge.to][end] || !input.startsWith(edge.text, at)) continue;
          if (edge.kind === 'empty') bound.set(edge.name, { raw: '', decoded: '' });
          at = end;
        }
        node = edge.to;
        moved = true;
        break;
      }
      if (!moved) return null; // unreachable: canFinish[node][at] held
    }
    return bound;
  }

  // Repeated variables (or variables already bound by the query) must agree, so canFinish is only
  // a necessary condition: search depth-first for real, memoizing failures by (node, position,
  // bindings still relevant) and bounding the total work.
  const bound = new Map<string, Binding>(given);
  // Memo keys name bound values by a small id instead of embedding possibly long strings.
  const valueIds = new Map<string, number>();
  const valueId = (binding: Binding): number => {
    if (binding === null) return -1;
    let id = valueIds.get(binding.decoded);
    if (id === undefined) valueIds.set(binding.decoded, (id = valueIds.size));
    return id;
  };
  const boundIds = new Map<string, number>();
  for (const [name, binding] of given) boundIds.set(name, valueId(binding));
  const failed = new Set<string>();
  let work = 0;
  const spend = (units: number): void => {
    work += units;
    if (work > BACKTRACKING_BUDGET) throw new BudgetExceeded();
  };
  const memoKey = (node: number, at: number): string => {
    let key = `${node}:${at}`;
    for (const name of program.namesFrom[node]) key += `:${boundIds.get(name) ?? 'free'}`;
    return key;
  };
  /** The end of an encoding of `decoded` starting at `start` (unique, as each step adds one code point), or -1. */
  const encodedValueEnd = (start: number, decoded: string, alphabet: Alphabet): number => {
    const step = steps[alphabet];
    let at = start;
    let matched = 0;
    while (matched < decoded.length) {
      spend(1);
      const next = step[at];
      if (next < 0) return -1;
      const piece = next - at === 1 ? input[at] : percentDecode(input.slice(at, next));
      if (piece === null || !decoded.startsWith(piece, matched)) return -1;
      matched += piece.length;
      at = next;
    }
    return at;
  };
  const tryBinding = (name: string, value: Binding, to: number, at: number): boolean => {
    const earlier = bound.get(name);
    if (earlier !== undefined) return sameBinding(earlier, value) && search(to, at);
    bound.set(name, value);
    boundIds.set(name, valueId(value));
    if (search(to, at)) return true;
    bound.delete(name);
    boundIds.delete(name);
    return false;
  };
  const search = (node: number, at: number): boolean => {
    spend(1);
    if (node === accept) return at === length;
    if (!canFinish[node][at]) return false;
    const key = memoKey(node, at);
    if (failed.has(key)) return false;
    for (const edge of edges[node]) {
      if (edge.kind === 'text') {
        const end = at + edge.text.length;
        if (end <= length && canFinish[edge.to][end] && input.startsWith(edge.text, at) && search(edge.to, end)) return true;
      } else if (edge.kind === 'empty') {
        const end = at + edge.text.length;
        if (end <= length && canFinish[edge.to][end] && input.startsWith(edge.text, at)) {
          if (tryBinding(edge.name, { raw: '', decoded: '' }, edge.to, end)) return true;
        }
      } else if (edge.kind === 'undefined') {
        if (tryBinding(edge.name, null, edge.to, at)) return true;
      } else if (input.startsWith(edge.prefix, at)) {
        const start = at + edge.prefix.length;
        const earlier = bound.get(edge.name);
        if (earlier !== undefined) {
          // Already bound: only an encoding of the same decoded value can match here.
          if (earlier === null || earlier.decoded === '') continue;
          const end = encodedValueEnd(start, earlier.decoded, edge.alphabet);
          if (end >= 0 && canFinish[edge.to][end] && search(edge.to, end)) return true;
          continue;
        }
        const ends = firstEnd(edge.to, edge.alphabet);
        const step = steps[edge.alphabet];
        // Feasible ends in increasing order: shortest value first.
        for (let end = shortestValueEnd(edge, start); end >= 0; end = step[end] >= 0 ? ends[step[end]] : -1) {
          spend(end - start); // slicing, decoding and interning the value are linear in its length
          const value = valueAt(start, end);
          if (value !== null && tryBinding(edge.name, value, edge.to, end)) return true;
        }
      }
    }
    failed.add(key);
    return false;
  };
  try {
    return search(0, 0) ? bound : null;
  } catch (error) {
    if (error instanceof BudgetExceeded) return null;
    throw error;
  }
}

// ---------------------------------------------------------------------------
// Fast path: literal text and single {var} / {+var} expressions, no query
// ---------------------------------------------------------------------------

/**
 * Most file-v1 templates are literal text and plain variables (`/rocket/{version}/rocket-{os}.tar.gz`).
 * For those, the graph program above costs more than the match itself (tables for every node and
 * input position, on every request), so they are matched by a direct depth-first search in the
 * same order: each variable tries its non-empty values shortest first, then the empty value (an
 * undefined variable consumes nothing either, so it can only succeed where the empty value did,
 * and names are not repeated). The search is bounded; past the bound it gives up and the program
 * decides, so the result is always the program's.
 */
type FastPart = { kind: 'text'; text: string } | { kind: 'var'; name: string; reserved: boolean };

function fastPartsOf(parts: readonly TemplatePart[]): FastPart[] | null {
  const out: FastPart[] = [];
  for (const part of parts) {
    if (part.kind === 'literal') {
      const text = literalToUriText(part.text);
      if (text === '') continue;
      const last = out[out.length - 1];
      if (last?.kind === 'text') last.text += text;
      else out.push({ kind: 'text', text });
      continue;
    }
    if ((part.operator !== '' && part.operator !== '+') || part.vars.length !== 1 || part.vars[0].explode) return null;
    out.push({ kind: 'var', name: part.vars[0].name, reserved: part.operator === '+' });
  }
  return out;
}

/** Work bound of the fast search (calls plus value ends tried): past it, the general program takes over. */
const fastBudget = (input: string) => 64 + 4 * input.length;

class FastBudgetExceeded extends Error {}

/** The match (defined variables), null for no match, undefined when the search gave up. */
function fastMatch(parts: readonly FastPart[], input: string): Map<string, MatchedValue> | null | undefined {
  const length = input.length;
  let unreserved: Int32Array | null = null;
  let reserved: Int32Array | null = null;
  const starts = new Int32Array(parts.length);
  const ends = new Int32Array(parts.length);
  let work = fastBudget(input);
  const search = (index: number, at: number): boolean => {
    if (--work < 0) throw new FastBudgetExceeded();
    if (index === parts.length) return at === length;
    const part = parts[index];
    if (part.kind === 'text') return input.startsWith(part.text, at) && search(index + 1, at + part.text.length);
    const steps = part.reserved ? (reserved ??= computeValueSteps(input, true)) : (unreserved ??= computeValueSteps(input, false));
    const next = parts[index + 1];
    starts[index] = at;
    // Non-empty values, shortest first; a following literal must start where the value ends.
    for (let end = steps[at]; end > 0; end = end < length ? steps[end] : -1) {
      if (--work < 0) throw new FastBudgetExceeded();
      if (next === undefined ? end !== length : next.kind === 'text' && input.charCodeAt(end) !== next.text.charCodeAt(0)) continue;
      ends[index] = end;
      if (search(index + 1, end)) return true;
    }
    ends[index] = at;
    return search(index + 1, at);
  };
  try {
    if (!search(0, 0)) return null;
  } catch (error) {
    if (error instanceof FastBudgetExceeded) return undefined;
    throw error;
  }
  const result = new Map<string, MatchedValue>();
  for (let index = 0; index < parts.length; index += 1) {
    const part = parts[index];
    if (part.kind !== 'var') continue;
    const raw = input.slice(starts[index], ends[index]);
    const decoded = raw === '' ? '' : percentDecode(raw);
    if (decoded === null) return null; // unreachable: steps only end on valid UTF-8
    result.set(part.name, { raw, decoded });
  }
  return result;
}

// ---------------------------------------------------------------------------
// Public matching API
// ---------------------------------------------------------------------------

interface CompiledTemplate {
  hasExplode: boolean;
  /** The path as literal text and single `{var}`/`{+var}` expressions, when that is all the template is (see fastMatch). */
  fastParts: FastPart[] | null;
  /** Matched against the raw path when the query is matched by key, or when the template does not capture the query. */
  pathProgram: Program;
  /** Key/value pairs of the query part, or null (sequential fallback / no query captured). */
  queryPairs: QueryPair[] | null;
  /** Whole template against path + query, for query parts that cannot be decomposed. */
  fullProgram: Program | null;
}

const compiledTemplates = new WeakMap<UriTemplate, CompiledTemplate>();

function compile(t: UriTemplate): CompiledTemplate {
  let compiled = compiledTemplates.get(t);
  if (compiled !== undefined) return compiled;
  const hasExplode = t.parts.some((part) => part.kind === 'expression' && part.vars.some((spec) => spec.explode));
  const { pathParts, queryParts } = splitAtQuery(t.parts);
  const queryPairs = t.capturesQuery ? decomposeQuery(queryParts) : null;
  if (!t.capturesQuery) {
    // The query part is at most a bare trailing '?', which asks nothing of the request.
    const pathProgram = compileProgram(pathParts);
    compiled = { hasExplode, fastParts: pathProgram.hasRepeatedNames ? null : fastPartsOf(pathParts), pathProgram, queryPairs: null, fullProgram: null };
  } else if (queryPairs !== null) {
    compiled = { hasExplode, fastParts: null, pathProgram: compileProgram(pathParts), queryPairs, fullProgram: null };
  } else {
    compiled = { hasExplode, fastParts: null, pathProgram: compileProgram(pathParts), queryPairs: null, fullProgram: compileProgram(t.parts) };
  }
  compiledTemplates.set(t, compiled);
  return compiled;
}

function normalizeQuery(rawQuery: string): string {
  if (typeof rawQuery !== 'string' || rawQuery === '') return '';
  return rawQuery.startsWith('?') ? rawQuery : `?${rawQuery}`;
}

/**
 * Scarf semantics plus our fixes: the first depth-first parse (each variable tries a non-empty
 * value shortest first, then "", then undefined), with query parameters matched by key in any
 * order when the template's query part allows it. Returns the defined variables, or null.
 * Never throws on any request text.
 */
export function matchTemplate(t: UriTemplate, rawPath: string, rawQuery: string): Map<string, MatchedValue> | null {
  return matchCompiled(t, rawPath, rawQuery, true);
}

/** matchTemplate without the fast path: only for tests that check the two agree. */
export function matchTemplateGeneral(t: UriTemplate, rawPath: string, rawQuery: string): Map<string, MatchedValue> | null {
  return matchCompiled(t, rawPath, rawQuery, false);
}

function matchCompiled(t: UriTemplate, rawPath: string, rawQuery: string, useFastPath: boolean): Map<string, MatchedValue> | null {
  if (typeof rawPath !== 'string') return null;
  const query = normalizeQuery(rawQuery);
  const compiled = compile(t);
  if (compiled.hasExplode) return null;

  if (compiled.fastParts !== null && useFastPath) {
    const fast = fastMatch(compiled.fastParts, rawPath);
    if (fast !== undefined) return fast;
  }
  let bindings: Map<string, Binding> | null;
  if (compiled.fullProgram !== null) {
    bindings = runProgram(compiled.fullProgram, rawPath + query, new Map());
  } else if (compiled.queryPairs !== null) {
    const fromQuery = matchQueryPairs(compiled.queryPairs, query);
    if (fromQuery === null) return null;
    const fromPath = runProgram(compiled.pathProgram, rawPath, fromQuery);
    bindings = fromPath === null ? null : new Map([...fromQuery, ...fromPath]);
  } else {
    bindings = runProgram(compiled.pathProgram, rawPath, new Map());
  }
  if (bindings === null) return null;

  const result = new Map<string, MatchedValue>();
  for (const name of t.variableNames) {
    const value = bindings.get(name);
    if (value !== undefined && value !== null) result.set(name, value);
  }
  return result;
}

/**
 * For templates without variables: the template's path part equals the raw path, and every
 * `k=v` of its query part appears in the request query with the same (percent-decoded) value,
 * in any order, extra parameters allowed, the last value winning for a repeated request key.
 */
export function matchesLiteral(t: UriTemplate, rawPath: string, rawQuery: string): boolean {
  if (t.variableNames.length > 0) {
    throw new Error(`matchesLiteral needs a template without variables, got ${JSON.stringify(t.source)}`);
  }
  if (typeof rawPath !== 'string') return false;
  const { pathParts, queryParts } = splitAtQuery(t.parts);
  const pathText = pathParts.map((part) => (part.kind === 'literal' ? literalToUriText(part.text) : '')).join('');
  if (pathText !== rawPath) return false;

  const lastByKey = new Map<string, string>();
  for (const { key, rawValue } of parseRequestQuery(normalizeQuery(rawQuery))) {
    lastByKey.set(key, decodeQueryComponent(rawValue));
  }
  const templateQuery = queryParts.map((part) => (part.kind === 'literal' ? part.text : '')).join('');
  for (const required of parseRequestQuery(templateQuery)) {
    if (lastByKey.get(required.key) !== decodeQueryComponent(required.rawValue)) return false;
  }
  return true;
}
