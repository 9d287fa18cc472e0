/**
 * python-v1: a PEP 503 simple repository built from one rule per distribution file. All
 * python-v1 rules of a domain form one repository at `/simple/`.
 *
 * Fixed from Scarf: pages are sorted (deterministic bytes and ETags) and HTML-escaped, HEAD on a
 * file redirects like GET, `If-None-Match` uses the RFC's weak comparison, pages carry
 * `Cache-Control` and `Vary`.
 */
import { createHash } from 'node:crypto';
import type { PythonV1Rule } from './schema';
import { header, REDIRECT_CACHE_CONTROL, type GatewayRequest, type Outcome } from './request';
import type { EventDraft } from './events';

interface PythonFile {
  readonly fileName: string;
  readonly version: string;
  readonly backendUrl: string;
  readonly hash: { type: string; hash: string } | null;
  readonly gpgSig: boolean | null;
  readonly requiresPython: string | null;
}

interface Page {
  readonly body: string;
  readonly etag: string;
  readonly length: number;
}

interface PythonProject {
  readonly name: string;
  readonly packageId: string;
  readonly files: Map<string, PythonFile>;
  readonly page: Page;
}

export interface PythonIndex {
  readonly projects: Map<string, PythonProject>;
  readonly root: Page;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Path-segment encoding for hrefs: keeps what is legal in a path segment. */
const hrefSegment = (s: string) => encodeURIComponent(s).replace(/%2B/gi, '+').replace(/%40/gi, '@').replace(/%3A/gi, ':').replace(/%2C/gi, ',');

function page(body: string): Page {
  const bytes = Buffer.from(body, 'utf8');
  return { body, length: bytes.length, etag: `"${createHash('sha256').update(bytes).digest('base64url')}"` };
}

const byCodePoint = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function projectPage(name: string, files: Map<string, PythonFile>): Page {
  const lines = [...files.values()].sort((a, b) => byCodePoint(a.fileName, b.fileName)).map((f) => {
    const fragment = f.hash ? `#${f.hash.type}=${f.hash.hash}` : '';
    const href = `/simple/${hrefSegment(name)}/${hrefSegment(f.fileName)}${fragment}`;
    const gpg = f.gpgSig === null ? '' : ` data-gpg-sig="${f.gpgSig}"`;
    const rp = f.requiresPython === null ? '' : ` data-requires-python="${escapeHtml(f.requiresPython)}"`;
    return `<a href="${escapeHtml(href)}"${gpg}${rp}>${escapeHtml(f.fileName)}</a><br>\n`;
  });
  return page(`<!DOCTYPE html><html><head><meta name="pypi:repository-version" content="1.0"><title>Links for ${escapeHtml(name)}</title></head><body><h1>Links for ${escapeHtml(name)}</h1>\n${lines.join('')}</body></html>`);
}

function rootPage(names: string[]): Page {
  const lines = names.sort(byCodePoint).map((n) => `<a href="/simple/${escapeHtml(hrefSegment(n))}/">${escapeHtml(n)}</a><br>\n`);
  return page(`<!DOCTYPE html><html><head><meta name="pypi:repository-version" content="1.0"><title>Simple index</title></head><body>\n${lines.join('')}</body></html>`);
}

/** Rules in manifest order, all of one domain. For a project or file listed twice, the later rule wins (as in Scarf). */
export function compilePython(rules: PythonV1Rule[]): PythonIndex | null {
  if (!rules.length) return null;
  const acc = new Map<string, { packageId: string; files: Map<string, PythonFile> }>();
  for (const r of rules) {
    const name = r['package-name'];
    const p = acc.get(name) ?? { packageId: r['package-id'], files: new Map() };
    p.packageId = r['package-id'];
    p.files.set(r['file-name'], {
      fileName: r['file-name'],
      version: r.version,
      backendUrl: r['backend-url'],
      hash: r['hash-value'] ?? null,
      gpgSig: r['gpg-sig'] ?? null,
      requiresPython: r['requires-python'] ?? null,
    });
    acc.set(name, p);
  }
  const projects = new Map<string, PythonProject>();
  for (const [name, p] of acc) projects.set(name, { name, packageId: p.packageId, files: p.files, page: projectPage(name, p.files) });
  return { projects, root: rootPage([...projects.keys()]) };
}

/** RFC 9110 If-None-Match: weak comparison, `*` matches any current representation. */
export function etagMatches(ifNoneMatch: string | undefined, etag: string): boolean {
  if (ifNoneMatch === undefined) return false;
  const opaque = etag.replace(/^W\//, '');
  return ifNoneMatch.split(',').some((raw) => {
    const t = raw.trim();
    if (t === '*') return true;
    const v = t.replace(/^W\//, '');
    return v === opaque || (!v.startsWith('"') && `"${v}"` === opaque);
  });
}

type PythonResult = Omit<Outcome, 'domain'>;

function servePage(req: GatewayRequest, p: Page, event: EventDraft): PythonResult {
  const headers = { etag: p.etag, 'cache-control': 'no-cache', vary: 'Accept' };
  if (etagMatches(header(req.headers, 'if-none-match'), p.etag)) {
    return { decision: { type: 'respond', status: 304, headers, body: '' }, events: [{ ...event, action: 'not-modified' }] };
  }
  return {
    decision: { type: 'respond', status: 200, headers: { ...headers, 'content-type': 'text/html; charset=utf-8', 'content-length': String(p.length) }, body: req.method === 'HEAD' ? '' : p.body },
    events: [event],
  };
}

/** Handles `/simple/...` GET and HEAD; null for anything else (later rules get a turn). */
export function handlePython(index: PythonIndex, req: GatewayRequest, segments: readonly string[] | null): PythonResult | null {
  if ((req.method !== 'GET' && req.method !== 'HEAD') || !segments || segments[0] !== 'simple') return null;
  const pageEvent = (packageId: string | null): EventDraft => ({ kind: 'python', action: 'respond', countable: false, package_id: packageId, file_name: null, version: null, target: null });
  if (segments.length === 2 && segments[1] === '') return servePage(req, index.root, pageEvent(null));
  const project = segments.length >= 3 ? index.projects.get(segments[1]) : undefined;
  if (!project) return null;
  if (segments.length === 3 && segments[2] === '') return servePage(req, project.page, pageEvent(project.packageId));
  if (segments.length !== 3) return null;
  const file = project.files.get(segments[2]);
  if (!file) return null;
  return {
    decision: { type: 'redirect', status: 307, location: file.backendUrl, headers: { 'cache-control': REDIRECT_CACHE_CONTROL } },
    events: [{
      kind: 'python', action: 'redirect',
      // A full GET of a distribution file is a download; HEAD and Range requests are not.
      countable: req.method === 'GET' && header(req.headers, 'range') === undefined,
      package_id: project.packageId, version: file.version, file_name: file.fileName, target: file.backendUrl,
    }],
  };
}
