/**
 * Percent-encoding helpers shared by the rule kinds. All decoding is strict UTF-8 and never
 * throws: invalid input gives null, and callers decide (usually: no match, or keep it raw).
 */

import { percentDecode } from './uri-template';

export { percentDecode };
const ENCODER = new TextEncoder();

/** Decodes a query component: `+` is a space (HTML forms), then percent-decoding. */
export function formDecode(s: string): string | null {
  return percentDecode(s.replace(/\+/g, ' '));
}

const UNRESERVED = /[A-Za-z0-9\-._~]/;

/** Strict encoding: only `A-Z a-z 0-9 - _ . ~` stay literal; UTF-8, upper-case hex. */
export function strictEncode(s: string): string {
  let out = '';
  for (const ch of s) {
    if (UNRESERVED.test(ch)) out += ch;
    else for (const b of ENCODER.encode(ch)) out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Decoded path segments of a raw path (`/a/b%20c` -> ["a", "b c"]); null if any escape is invalid. */
export function pathSegments(rawPath: string): string[] | null {
  const parts = (rawPath.charCodeAt(0) === 0x2f ? rawPath.slice(1) : rawPath).split('/');
  // Runs on every request: most paths have no escape at all.
  if (!rawPath.includes('%')) return parts;
  for (let i = 0; i < parts.length; i++) {
    const d = percentDecode(parts[i]);
    if (d === null) return null;
    parts[i] = d;
  }
  return parts;
}

/** Query pairs of a raw query (`?a=1&b`), decoded with form rules; `value` is null for a bare key. Undecodable pairs are skipped. */
export function queryPairs(rawQuery: string): Array<{ key: string; value: string | null }> {
  const q = rawQuery.startsWith('?') ? rawQuery.slice(1) : rawQuery;
  const out: Array<{ key: string; value: string | null }> = [];
  if (q === '') return out;
  for (const part of q.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const key = formDecode(eq < 0 ? part : part.slice(0, eq));
    const value = eq < 0 ? null : formDecode(part.slice(eq + 1));
    if (key === null || (eq >= 0 && value === null)) continue;
    out.push({ key, value });
  }
  return out;
}

/** The first value of a query parameter, form-decoded; '' when present without a value; null when absent. */
export function queryParam(rawQuery: string, name: string): string | null {
  for (const p of queryPairs(rawQuery)) if (p.key === name) return p.value ?? '';
  return null;
}

const encodePair = (p: { key: string; value: string | null }) => (p.value === null ? strictEncode(p.key) : `${strictEncode(p.key)}=${strictEncode(p.value)}`);

/** A request query strictly re-encoded (`?q=hello%20world`), or '' when it has no parameters. */
export function reencodeQuery(rawQuery: string): string {
  const pairs = queryPairs(rawQuery);
  return pairs.length ? `?${pairs.map(encodePair).join('&')}` : '';
}

/**
 * Merges the request's query parameters into a redirect target (Scarf's behaviour, with its bugs
 * fixed): the target's own parameters come first and are kept exactly as written; request
 * parameters whose key the target already has are dropped; the others follow, strictly
 * re-encoded (a `+` is a space, sent as `%20`), repeated keys included. The query goes before
 * any `#fragment`. A request without parameters, or a target that is not an absolute URL, leaves
 * the target unchanged.
 */
export function mergeQuery(target: string, rawQuery: string): string {
  const pairs = queryPairs(rawQuery);
  if (!pairs.length) return target;
  if (!/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.test(target)) return target;
  const hashAt = target.indexOf('#');
  const fragment = hashAt >= 0 ? target.slice(hashAt) : '';
  const beforeHash = hashAt >= 0 ? target.slice(0, hashAt) : target;
  const qAt = beforeHash.indexOf('?');
  const base = qAt >= 0 ? beforeHash.slice(0, qAt) : beforeHash;
  const ownQuery = qAt >= 0 ? beforeHash.slice(qAt + 1) : '';
  const ownKeys = new Set(queryPairs(ownQuery).map((p) => p.key));
  const extra = pairs.filter((p) => !ownKeys.has(p.key)).map(encodePair);
  const all = [ownQuery, ...extra].filter((s) => s !== '');
  return `${base}${all.length ? `?${all.join('&')}` : ''}${fragment}`;
}

/** Encodes one path segment for a URL we build, keeping the characters that are legal raw in a segment (`+ @ : ,`). */
export const encodePathSegment = (s: string) => encodeURIComponent(s).replace(/%2B/gi, '+').replace(/%40/gi, '@').replace(/%3A/gi, ':').replace(/%2C/gi, ',');

/** Percent-encodes characters that may not appear raw in a URL path or query (keeps valid %XX). */
export function encodeUnsafe(s: string): string {
  return s.replace(/%(?![0-9A-Fa-f]{2})|[^A-Za-z0-9\-._~!$&'()*+,;=:@/?%]/gu, (ch) => strictEncode(ch));
}
