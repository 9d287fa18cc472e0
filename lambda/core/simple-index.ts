/**
 * The Python simple repository API (PEP 503 HTML, PEP 691 JSON) as data: name normalisation,
 * content negotiation, one page model with its HTML and JSON renderings, and parsers for
 * upstream pages in either format. Pure: no I/O.
 */
import { createHash } from 'node:crypto';
import { encodePathSegment } from './encoding';

/** PEP 503: runs of `-`, `_` and `.` become one `-`, lower case. */
export function normalizeProjectName(name: string): string {
  return name.replace(/[-_.]+/g, '-').toLowerCase();
}

/** A project name as PEP 508 allows it (what pip and twine accept). */
export const PROJECT_NAME = /^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])$/;

// ---------------------------------------------------------------------------------------------
// Content negotiation (PEP 691)

export const SIMPLE_JSON = 'application/vnd.pypi.simple.v1+json';
export const SIMPLE_HTML = 'application/vnd.pypi.simple.v1+html';
export const LEGACY_HTML = 'text/html';

export type SimpleFormat = 'json' | 'html' | 'legacy-html';

export const CONTENT_TYPES: Record<SimpleFormat, string> = {
  json: SIMPLE_JSON,
  html: SIMPLE_HTML,
  'legacy-html': 'text/html; charset=utf-8',
};

/** What the gateway asks an upstream index for: JSON preferred (cheaper to parse, carries more). */
export const UPSTREAM_ACCEPT = `${SIMPLE_JSON}, ${SIMPLE_HTML};q=0.2, ${LEGACY_HTML};q=0.01`;

/** Media types that name one of our formats exactly (`latest` is an alias of v1). */
const EXACT: Record<string, SimpleFormat> = {
  [SIMPLE_JSON]: 'json',
  'application/vnd.pypi.simple.latest+json': 'json',
  [SIMPLE_HTML]: 'html',
  'application/vnd.pypi.simple.latest+html': 'html',
  [LEGACY_HTML]: 'legacy-html',
};
const MAJOR: Record<SimpleFormat, string> = { json: 'application', html: 'application', 'legacy-html': 'text' };
/** Explicitly named types: JSON first (what pip and uv ask for first). Wildcards only: legacy HTML first (poetry, curl, browsers, Scarf's clients). */
const EXPLICIT_ORDER: SimpleFormat[] = ['json', 'html', 'legacy-html'];
const WILDCARD_ORDER: SimpleFormat[] = ['legacy-html', 'html', 'json'];

interface MediaRange { type: string; q: number }

function parseAccept(accept: string): MediaRange[] {
  const out: MediaRange[] = [];
  for (const part of accept.split(',')) {
    const [rawType, ...params] = part.split(';');
    const type = rawType.trim().toLowerCase();
    if (!type) continue;
    let q = 1;
    for (const p of params) {
      const m = /^\s*q\s*=\s*([0-9.]+)\s*$/i.exec(p);
      if (m) q = Math.min(1, Math.max(0, Number(m[1]) || 0));
    }
    out.push({ type, q });
  }
  return out;
}

/**
 * The format to answer with, or null when the client accepts none (406). No `Accept` (or an
 * empty one) means legacy HTML, as every pre-PEP 691 client expects. The most specific range
 * decides each format's quality (RFC 9110 12.5.1); ties go to explicitly named types, JSON first.
 */
export function negotiateSimpleFormat(accept: string | undefined): SimpleFormat | null {
  if (accept === undefined || accept.trim() === '') return 'legacy-html';
  const ranges = parseAccept(accept);
  let best: { f: SimpleFormat; q: number; explicit: boolean; rank: number } | null = null;
  for (const f of EXPLICIT_ORDER) {
    let q = -1;
    let specificity = -1;
    for (const r of ranges) {
      const s = EXACT[r.type] === f ? 2 : r.type === `${MAJOR[f]}/*` ? 1 : r.type === '*/*' ? 0 : -1;
      if (s > specificity) {
        specificity = s;
        q = r.q;
      }
    }
    if (q <= 0) continue;
    const explicit = specificity === 2;
    const rank = (explicit ? EXPLICIT_ORDER : WILDCARD_ORDER).indexOf(f);
    const better = !best || q > best.q || (q === best.q && explicit && !best.explicit) || (q === best.q && explicit === best.explicit && rank < best.rank);
    if (better) best = { f, q, explicit, rank };
  }
  return best?.f ?? null;
}

export const NOT_ACCEPTABLE_BODY = `406 Not Acceptable: this index serves ${SIMPLE_JSON}, ${SIMPLE_HTML} and ${LEGACY_HTML} (application/vnd.pypi.simple.latest+json and +html are accepted as aliases)\n`;

// ---------------------------------------------------------------------------------------------
// The page model

export interface SimpleFile {
  readonly filename: string;
  /** Where the link points: an absolute path on the gateway when rendered, the upstream's absolute URL when parsed. */
  readonly url: string;
  /** Hash name -> hex digest. */
  readonly hashes: Readonly<Record<string, string>>;
  readonly requiresPython: string | null;
  /** PEP 592: false, true, or the reason given. */
  readonly yanked: boolean | string;
  /** PEP 658/714: false, true, or the metadata file's hashes. */
  readonly coreMetadata: boolean | Readonly<Record<string, string>>;
  readonly gpgSig: boolean | null;
  /** Other PEP 691 file keys of an upstream JSON page (size, upload-time, ...), passed through. */
  readonly extra?: Readonly<Record<string, unknown>>;
}

export interface SimpleProject {
  /** The normalised project name. */
  readonly name: string;
  readonly files: readonly SimpleFile[];
  /** `meta.api-version`: 1.0 unless an upstream JSON page declared a later 1.x. */
  readonly apiVersion: string;
  /** Other top-level keys of an upstream JSON page (`versions`, ...), passed through. */
  readonly extra?: Readonly<Record<string, unknown>>;
}

export interface RenderedPage {
  readonly body: string;
  readonly length: number;
  readonly etag: string;
  readonly contentType: string;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const byCodePoint = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Strong ETags differ per representation: the same HTML bytes under another Content-Type get another tag. */
function rendered(body: string, format: SimpleFormat): RenderedPage {
  const bytes = Buffer.from(body, 'utf8');
  const digest = createHash('sha256').update(CONTENT_TYPES[format]).update('\n').update(bytes).digest('base64url');
  return { body, length: bytes.length, etag: `"${digest}"`, contentType: CONTENT_TYPES[format] };
}

/** The hash shown in an HTML link fragment: sha256 when present (what pip prefers), else the first. */
function fragmentHash(hashes: Readonly<Record<string, string>>): [string, string] | null {
  if (hashes.sha256) return ['sha256', hashes.sha256];
  const first = Object.entries(hashes)[0];
  return first ?? null;
}

const metadataAttr = (m: SimpleFile['coreMetadata']): string | null => {
  if (m === false) return null;
  if (m === true) return 'true';
  const h = fragmentHash(m);
  return h ? `${h[0]}=${h[1]}` : 'true';
};

const HTML_HEAD = '<!DOCTYPE html><html><head><meta name="pypi:repository-version" content="%V">';

function fileLine(f: SimpleFile): string {
  const h = fragmentHash(f.hashes);
  const href = `${f.url}${h ? `#${h[0]}=${h[1]}` : ''}`;
  let attrs = '';
  if (f.gpgSig !== null) attrs += ` data-gpg-sig="${f.gpgSig}"`;
  if (f.requiresPython !== null) attrs += ` data-requires-python="${escapeHtml(f.requiresPython)}"`;
  if (f.yanked !== false) attrs += ` data-yanked="${f.yanked === true ? '' : escapeHtml(f.yanked)}"`;
  const meta = metadataAttr(f.coreMetadata);
  // Both names (PEP 714): pip before 23.2 reads only data-dist-info-metadata.
  if (meta !== null) attrs += ` data-core-metadata="${escapeHtml(meta)}" data-dist-info-metadata="${escapeHtml(meta)}"`;
  return `<a href="${escapeHtml(href)}"${attrs}>${escapeHtml(f.filename)}</a><br>\n`;
}

export function renderProjectHtml(p: SimpleProject, format: 'html' | 'legacy-html', displayName = p.name): RenderedPage {
  const lines = [...p.files].sort((a, b) => byCodePoint(a.filename, b.filename)).map(fileLine).join('');
  const title = escapeHtml(displayName);
  return rendered(`${HTML_HEAD.replace('%V', escapeHtml(p.apiVersion))}<title>Links for ${title}</title></head><body><h1>Links for ${title}</h1>\n${lines}</body></html>`, format);
}

export function renderProjectJson(p: SimpleProject): RenderedPage {
  const files = [...p.files].sort((a, b) => byCodePoint(a.filename, b.filename)).map((f) => {
    const o: Record<string, unknown> = { ...(f.extra ?? {}), filename: f.filename, url: f.url, hashes: f.hashes };
    if (f.requiresPython !== null) o['requires-python'] = f.requiresPython;
    if (f.yanked !== false) o.yanked = f.yanked;
    if (f.coreMetadata !== false) {
      o['core-metadata'] = f.coreMetadata;
      o['dist-info-metadata'] = f.coreMetadata;
    }
    if (f.gpgSig !== null) o['gpg-sig'] = f.gpgSig;
    return o;
  });
  return rendered(JSON.stringify({ ...(p.extra ?? {}), meta: { 'api-version': p.apiVersion }, name: p.name, files }), 'json');
}

export function renderProject(p: SimpleProject, format: SimpleFormat, displayName?: string): RenderedPage {
  return format === 'json' ? renderProjectJson(p) : renderProjectHtml(p, format, displayName);
}

/** The root page; `names` as the rules write them (hrefs use them as written, so Scarf's pages keep their links). */
export function renderRoot(names: readonly string[], format: SimpleFormat): RenderedPage {
  const sorted = [...names].sort(byCodePoint);
  if (format === 'json') {
    return rendered(JSON.stringify({ meta: { 'api-version': '1.0' }, projects: sorted.map((name) => ({ name })) }), 'json');
  }
  const lines = sorted.map((n) => `<a href="/simple/${escapeHtml(encodePathSegment(n))}/">${escapeHtml(n)}</a><br>\n`).join('');
  return rendered(`${HTML_HEAD.replace('%V', '1.0')}<title>Simple index</title></head><body>\n${lines}</body></html>`, format);
}

// ---------------------------------------------------------------------------------------------
// File names

/**
 * The version in a distribution file name: wheels (`name-1.0-py3-none-any.whl`) by position,
 * sdists and eggs by removing the project name, whose separators may be written any way.
 */
export function versionFromFilename(project: string, filename: string): string | null {
  if (filename.endsWith('.whl')) return filename.split('-')[1] ?? null;
  const stem = filename.replace(/\.(tar\.gz|tar\.bz2|tar\.xz|tar\.Z|tar|tgz|tbz|zip|egg|exe|msi|rpm|dmg)$/i, '');
  if (stem === filename) return null;
  const norm = normalizeProjectName(project);
  for (let i = stem.indexOf('-'); i > 0; i = stem.indexOf('-', i + 1)) {
    if (normalizeProjectName(stem.slice(0, i)) === norm) {
      const rest = stem.slice(i + 1);
      // Eggs: name-version-pyX.Y
      return filename.endsWith('.egg') ? rest.replace(/-py\d.*$/, '') : rest;
    }
  }
  const last = stem.lastIndexOf('-');
  return last > 0 ? stem.slice(last + 1) : null;
}

/** PEP 658: a file's metadata lives at the file's URL plus `.metadata` (before any query, without the fragment). */
export function metadataUrl(fileUrl: string): string {
  const noFragment = fileUrl.replace(/#.*$/, '');
  const q = noFragment.indexOf('?');
  return q < 0 ? `${noFragment}.metadata` : `${noFragment.slice(0, q)}.metadata${noFragment.slice(q)}`;
}

// ---------------------------------------------------------------------------------------------
// Parsing upstream pages

export class SimplePageError extends Error {}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };

export function unescapeHtml(s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (m, e: string) => {
    if (e[0] === '#') {
      const cp = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
      return cp > 0 && cp <= 0x10ffff ? String.fromCodePoint(cp) : m;
    }
    return ENTITIES[e.toLowerCase()] ?? m;
  });
}

const ATTR = /([^\s=/>]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?/g;
// Attribute values may contain a raw `>` inside quotes (Scarf's pages do), so the tag is matched attribute by attribute.
const TAG_ATTRS = String.raw`((?:\s+[^\s=/>]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'>]+))?)*)\s*/?>`;
const ANCHOR = new RegExp(String.raw`<a${TAG_ATTRS}([\s\S]*?)</a\s*>`, 'gi');
const BASE = new RegExp(String.raw`<base${TAG_ATTRS}`, 'i');
const META = new RegExp(String.raw`<meta${TAG_ATTRS}`, 'gi');

function attributes(s: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of s.matchAll(ATTR)) {
    const name = m[1].toLowerCase();
    if (!out.has(name)) out.set(name, unescapeHtml(m[2] ?? m[3] ?? m[4] ?? ''));
  }
  return out;
}

function hashesOfFragment(fragment: string): Record<string, string> {
  const m = /^([a-z0-9_-]+)=([0-9a-f]+)$/i.exec(fragment);
  return m ? { [m[1].toLowerCase()]: m[2].toLowerCase() } : {};
}

function parseMetadataValue(v: string | undefined): SimpleFile['coreMetadata'] {
  if (v === undefined || v.toLowerCase() === 'false') return false;
  const h = hashesOfFragment(v);
  return Object.keys(h).length ? h : true;
}

function lastSegment(url: URL): string {
  const raw = url.pathname.slice(url.pathname.lastIndexOf('/') + 1);
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/** A PEP 503 project page; links resolve against `pageUrl` (or the page's `<base href>`). */
export function parseProjectHtml(html: string, pageUrl: string, name: string): SimpleProject {
  let base: URL;
  try {
    base = new URL(pageUrl);
    const b = BASE.exec(html);
    const href = b ? attributes(b[1]).get('href') : undefined;
    if (href) base = new URL(href, base);
  } catch {
    throw new SimplePageError(`page URL ${pageUrl} is not a valid base URL`);
  }
  let apiVersion = '1.0';
  for (const m of html.matchAll(META)) {
    const a = attributes(m[1]);
    if (a.get('name') === 'pypi:repository-version' && a.get('content')) apiVersion = a.get('content')!;
  }
  const files: SimpleFile[] = [];
  const seen = new Set<string>();
  for (const m of html.matchAll(ANCHOR)) {
    const a = attributes(m[1]);
    const href = a.get('href');
    if (!href) continue;
    let url: URL;
    try {
      url = new URL(href, base);
    } catch {
      continue;
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') continue;
    const fragment = url.hash.slice(1);
    url.hash = '';
    const filename = lastSegment(url) || unescapeHtml(m[2].replace(/<[^>]*>/g, '')).trim();
    if (!filename || seen.has(filename)) continue;
    seen.add(filename);
    const yanked = a.get('data-yanked');
    const gpg = a.get('data-gpg-sig');
    files.push({
      filename,
      url: url.toString(),
      hashes: hashesOfFragment(fragment),
      requiresPython: a.get('data-requires-python') ?? null,
      yanked: yanked === undefined ? false : yanked === '' ? true : yanked,
      coreMetadata: parseMetadataValue(a.get('data-core-metadata') ?? a.get('data-dist-info-metadata')),
      gpgSig: gpg === undefined ? null : gpg === 'true',
    });
  }
  return { name, files, apiVersion: majorOne(apiVersion) };
}

function majorOne(v: string): string {
  if (!/^1(\.\d+)?$/.test(v)) throw new SimplePageError(`the upstream index speaks API version ${v}; only 1.x is supported`);
  return v;
}

const KNOWN_FILE_KEYS = new Set(['filename', 'url', 'hashes', 'requires-python', 'yanked', 'core-metadata', 'dist-info-metadata', 'data-dist-info-metadata', 'gpg-sig']);

function stringRecord(v: unknown): Record<string, string> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return {};
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) if (typeof x === 'string') out[k] = x;
  return out;
}

/** A PEP 691 project page; relative file URLs resolve against `pageUrl`. */
export function parseProjectJson(text: string, pageUrl: string, name: string): SimpleProject {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new SimplePageError(`the upstream JSON page is not valid JSON (${(e as Error).message})`);
  }
  if (typeof doc !== 'object' || doc === null || !Array.isArray((doc as { files?: unknown }).files)) {
    throw new SimplePageError('the upstream JSON page has no "files" array');
  }
  const d = doc as Record<string, unknown>;
  const meta = (d.meta ?? {}) as Record<string, unknown>;
  const apiVersion = majorOne(typeof meta['api-version'] === 'string' ? meta['api-version'] : '1.0');
  const files: SimpleFile[] = [];
  const seen = new Set<string>();
  for (const raw of d.files as unknown[]) {
    if (typeof raw !== 'object' || raw === null) continue;
    const f = raw as Record<string, unknown>;
    if (typeof f.filename !== 'string' || typeof f.url !== 'string' || seen.has(f.filename)) continue;
    let url: URL;
    try {
      url = new URL(f.url, pageUrl);
    } catch {
      continue;
    }
    seen.add(f.filename);
    url.hash = '';
    const meta = f['core-metadata'] ?? f['dist-info-metadata'] ?? f['data-dist-info-metadata'];
    const extra: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(f)) if (!KNOWN_FILE_KEYS.has(k)) extra[k] = v;
    files.push({
      filename: f.filename,
      url: url.toString(),
      hashes: stringRecord(f.hashes),
      requiresPython: typeof f['requires-python'] === 'string' ? f['requires-python'] : null,
      yanked: typeof f.yanked === 'string' ? f.yanked : f.yanked === true,
      coreMetadata: meta === true ? true : typeof meta === 'object' && meta !== null ? stringRecord(meta) : false,
      gpgSig: typeof f['gpg-sig'] === 'boolean' ? f['gpg-sig'] : null,
      extra,
    });
  }
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(d)) if (k !== 'meta' && k !== 'name' && k !== 'files') extra[k] = v;
  return { name, files, apiVersion, extra };
}

/** Parses an upstream page by its Content-Type: PEP 691 JSON, else HTML. */
export function parseProjectPage(body: string, contentType: string | undefined, pageUrl: string, name: string): SimpleProject {
  const type = (contentType ?? '').split(';')[0].trim().toLowerCase();
  return type.endsWith('+json') || type === 'application/json' ? parseProjectJson(body, pageUrl, name) : parseProjectHtml(body, pageUrl, name);
}
