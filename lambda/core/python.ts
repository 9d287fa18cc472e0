/**
 * Python simple repositories at `/simple/`: python-v1 (a page built from one rule per file, as
 * Scarf does) and python-index-v1 (pages fetched from an upstream index, with every file link
 * pointed at the gateway). Both answer PEP 503 HTML or PEP 691 JSON as the client's `Accept`
 * asks, match project names after PEP 503 normalisation, and redirect file downloads.
 *
 * Fixed from Scarf: pages are sorted (deterministic bytes and ETags) and HTML-escaped, HEAD on a
 * file redirects like GET, `/simple/pkg` redirects to `/simple/pkg/`, `If-None-Match` uses the
 * RFC's weak comparison, pages carry `Cache-Control` and `Vary: Accept`.
 */
import type { PythonIndexV1Rule, PythonV1Rule } from './schema';
import { header, REDIRECT_CACHE_CONTROL, requestOrigin, type GatewayRequest, type Outcome } from './request';
import type { EventDraft } from './events';
import { GATEWAY_USER_AGENT, type FetchPlan, type TransformResult, type UpstreamHead, type UpstreamTransform } from './fetch';
import { encodePathSegment, encodeUnsafe } from './encoding';
import {
  metadataUrl, negotiateSimpleFormat, normalizeProjectName, NOT_ACCEPTABLE_BODY, parseProjectPage, PROJECT_NAME, renderProject, renderRoot,
  SimplePageError, UPSTREAM_ACCEPT, versionFromFilename, type RenderedPage, type SimpleFile, type SimpleFormat, type SimpleProject,
} from './simple-index';

export const DEFAULT_SIMPLE_INDEX = 'https://pypi.org/simple/';
/** Largest upstream project page read (decoded). PyPI's largest JSON pages are a few MiB. */
export const UPSTREAM_PAGE_LIMIT = 64 * 1024 * 1024;
const FORMATS: SimpleFormat[] = ['legacy-html', 'html', 'json'];

type Pages = Readonly<Record<SimpleFormat, RenderedPage>>;

interface RuleFile {
  readonly fileName: string;
  readonly version: string;
  readonly backendUrl: string;
  readonly metadata: boolean;
}

interface RuleProject {
  readonly packageId: string;
  readonly files: ReadonlyMap<string, RuleFile>;
  readonly pages: Pages;
}

interface UpstreamSource {
  /** Base URL of the upstream index, ending in `/`. */
  readonly indexUrl: string;
  readonly host: string;
  readonly packageId: string;
  readonly cacheSeconds: number;
}

export interface PythonIndex {
  /** python-v1 projects by normalised name. */
  readonly projects: ReadonlyMap<string, RuleProject>;
  /** python-index-v1 projects by normalised name. */
  readonly upstream: ReadonlyMap<string, UpstreamSource>;
  /** The python-index-v1 `*` rule. */
  readonly anyProject: UpstreamSource | null;
  readonly root: Pages;
}

function allFormats(render: (f: SimpleFormat) => RenderedPage): Pages {
  return Object.fromEntries(FORMATS.map((f) => [f, render(f)])) as Record<SimpleFormat, RenderedPage>;
}

function ruleFileModel(name: string, r: PythonV1Rule): SimpleFile {
  const meta = r['core-metadata'];
  return {
    filename: r['file-name'],
    url: `/simple/${encodePathSegment(name)}/${encodePathSegment(r['file-name'])}`,
    hashes: r['hash-value'] ? { [r['hash-value'].type]: r['hash-value'].hash } : {},
    requiresPython: r['requires-python'] ?? null,
    yanked: r.yanked ?? false,
    coreMetadata: meta == null || meta === false ? false : meta === true ? true : { [meta.type]: meta.hash },
    gpgSig: r['gpg-sig'] ?? null,
  };
}

function upstreamSource(r: PythonIndexV1Rule): UpstreamSource {
  const u = new URL(r['backend-simple-index-url'] ?? DEFAULT_SIMPLE_INDEX);
  u.hash = '';
  u.search = '';
  if (!u.pathname.endsWith('/')) u.pathname += '/';
  return { indexUrl: u.toString(), host: u.host, packageId: r['package-id'], cacheSeconds: r['cache-seconds'] ?? 60 };
}

/**
 * Rules in manifest order, all of one domain. For a project or file listed twice, the later
 * rule wins (as in Scarf); names that normalise alike are one project.
 */
export function compilePython(rules: PythonV1Rule[], indexRules: PythonIndexV1Rule[] = []): PythonIndex | null {
  if (!rules.length && !indexRules.length) return null;
  const acc = new Map<string, { name: string; packageId: string; files: Map<string, { rule: PythonV1Rule; model: SimpleFile }> }>();
  for (const r of rules) {
    const key = normalizeProjectName(r['package-name']);
    const p = acc.get(key) ?? { name: r['package-name'], packageId: r['package-id'], files: new Map() };
    p.packageId = r['package-id'];
    p.files.set(r['file-name'], { rule: r, model: ruleFileModel(p.name, r) });
    acc.set(key, p);
  }
  const projects = new Map<string, RuleProject>();
  const rootNames = new Map<string, string>();
  for (const [key, p] of acc) {
    const model: SimpleProject = { name: key, files: [...p.files.values()].map((f) => f.model), apiVersion: '1.0' };
    const files = new Map<string, RuleFile>();
    for (const [fileName, { rule, model: m }] of p.files) {
      files.set(fileName, { fileName, version: rule.version, backendUrl: rule['backend-url'], metadata: m.coreMetadata !== false });
    }
    projects.set(key, { packageId: p.packageId, files, pages: allFormats((f) => renderProject(model, f, p.name)) });
    rootNames.set(key, p.name);
  }
  const upstream = new Map<string, UpstreamSource>();
  let anyProject: UpstreamSource | null = null;
  for (const r of indexRules) {
    if (r['package-name'] === '*') {
      anyProject = upstreamSource(r);
      continue;
    }
    const key = normalizeProjectName(r['package-name']);
    upstream.set(key, upstreamSource(r));
    if (!rootNames.has(key)) rootNames.set(key, key);
  }
  const names = [...rootNames.values()];
  return { projects, upstream, anyProject, root: allFormats((f) => renderRoot(names, f)) };
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

const PAGE_HEADERS = { 'cache-control': 'no-cache', vary: 'Accept' };

function pythonError(status: number, message: string): TransformResult['decision'] {
  return { type: 'respond', status, headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', vary: 'Accept' }, body: `${message}\n` };
}

function pageAnswer(req: GatewayRequest, p: RenderedPage, event: EventDraft): TransformResult {
  const headers = { ...PAGE_HEADERS, etag: p.etag };
  if (etagMatches(header(req.headers, 'if-none-match'), p.etag)) {
    return { decision: { type: 'respond', status: 304, headers, body: '' }, events: [{ ...event, action: 'not-modified' }] };
  }
  return {
    decision: { type: 'respond', status: 200, headers: { ...headers, 'content-type': p.contentType, 'content-length': String(p.length) }, body: req.method === 'HEAD' ? '' : p.body },
    events: [event],
  };
}

function redirect(location: string, event: EventDraft): PythonResult {
  return { decision: { type: 'redirect', status: 307, location, headers: { 'cache-control': REDIRECT_CACHE_CONTROL } }, events: [{ ...event, target: location }] };
}

/** A full GET of a distribution file is a download; HEAD, Range requests (uv and poetry read wheel metadata so) and `.metadata` files are not. */
const isFullGet = (req: GatewayRequest) => req.method === 'GET' && header(req.headers, 'range') === undefined;

// ---------------------------------------------------------------------------------------------
// Upstream pages

const decoder = new TextDecoder();
/** Parsed pages by the body bytes they came from: a body the adapter's cache hands out again is parsed once. */
const parsedBodies = new WeakMap<Uint8Array, SimpleProject>();

function parseUpstream(body: Uint8Array, up: UpstreamHead, project: string): SimpleProject {
  let p = parsedBodies.get(body);
  if (!p) {
    p = parseProjectPage(decoder.decode(body), up.headers['content-type'], up.url, project);
    parsedBodies.set(body, p);
  }
  return p;
}

/** The upstream project with every file link pointing at the gateway (`/simple/<project>/<file>`). */
function throughGateway(p: SimpleProject): SimpleProject {
  return { ...p, files: p.files.map((f) => ({ ...f, url: `/simple/${p.name}/${encodePathSegment(f.filename)}` })) };
}

/** Builds the answer from the parsed upstream page; `event` is the request's event, its target the upstream page. */
type UpstreamAnswer = (project: SimpleProject, event: EventDraft) => TransformResult;

function upstreamTransform(src: UpstreamSource, project: string, event: EventDraft, answer: UpstreamAnswer): UpstreamTransform {
  return {
    onHead(up): FetchPlan {
      if (up.status === 404 || up.status === 410) {
        return { type: 'answer', decision: pythonError(404, `${project} is not on this index`), events: [{ ...event, action: 'not-found', countable: false }] };
      }
      if (up.status !== 200) {
        return { type: 'answer', decision: pythonError(502, `upstream index ${src.host} answered ${up.status}`), events: [{ ...event, countable: false }] };
      }
      return {
        type: 'buffer',
        limit: UPSTREAM_PAGE_LIMIT,
        finish(body) {
          try {
            return answer(parseUpstream(body, up, project), event);
          } catch (e) {
            if (!(e instanceof SimplePageError)) throw e;
            return { decision: pythonError(502, `upstream index ${src.host}: ${e.message}`), events: [{ ...event, countable: false }] };
          }
        },
      };
    },
    onFailure(failure, message) {
      return { decision: pythonError(failure === 'timeout' ? 504 : 502, message), events: [{ ...event, countable: false }] };
    },
  };
}

function fetchUpstream(src: UpstreamSource, project: string, event: EventDraft, answer: UpstreamAnswer): PythonResult {
  const url = `${src.indexUrl}${project}/`;
  return {
    decision: {
      type: 'fetch', url, upstreamHost: src.host, headers: { accept: UPSTREAM_ACCEPT, 'user-agent': GATEWAY_USER_AGENT }, cacheSeconds: src.cacheSeconds,
      transform: upstreamTransform(src, project, { ...event, target: event.target ?? url }, answer),
    },
    events: [],
  };
}

function fileNotFound(event: EventDraft, project: string, file: string): TransformResult {
  return { decision: pythonError(404, `${project} has no file ${file}`), events: [{ ...event, action: 'not-found', countable: false, target: null }] };
}

// ---------------------------------------------------------------------------------------------

function respondEvent(packageId: string | null): EventDraft {
  return { kind: 'python', action: 'respond', countable: false, package_id: packageId, file_name: null, version: null, target: null };
}

/** The page format the client accepts, or its 406 answer. */
function negotiate(req: GatewayRequest, packageId: string | null): SimpleFormat | PythonResult {
  const f = negotiateSimpleFormat(header(req.headers, 'accept'));
  return f ?? { decision: pythonError(406, NOT_ACCEPTABLE_BODY.trimEnd()), events: [{ ...respondEvent(packageId), action: 'rejected' }] };
}

function addSlash(req: GatewayRequest, domain: string, packageId: string | null): PythonResult {
  return redirect(`${requestOrigin(req, domain)}${encodeUnsafe(`${req.rawPath}/${req.rawQuery}`)}`, { ...respondEvent(packageId), action: 'redirect' });
}

function fileEvent(req: GatewayRequest, packageId: string, fileName: string, isMetadata: boolean, version: string | null): EventDraft {
  return { kind: 'python', action: 'redirect', countable: !isMetadata && isFullGet(req), package_id: packageId, version, file_name: fileName, target: null };
}

/** Handles `/simple/...` GET and HEAD; null for anything else (later rules get a turn). */
export function handlePython(index: PythonIndex, req: GatewayRequest, segments: readonly string[] | null, domain: string): PythonResult | null {
  if ((req.method !== 'GET' && req.method !== 'HEAD') || !segments || segments[0] !== 'simple') return null;
  // Module-level helpers rather than closures: this runs on every /simple/ request.
  if (segments.length === 1) return addSlash(req, domain, null);
  if (segments.length === 2 && segments[1] === '') {
    const f = negotiate(req, null);
    return typeof f === 'string' ? pageAnswer(req, index.root[f], respondEvent(null)) : f;
  }
  const project = normalizeProjectName(segments[1]);
  const ruleProject = index.projects.get(project);
  // Only names PEP 508 allows are asked of an upstream.
  const src = ruleProject || !PROJECT_NAME.test(segments[1]) ? null : index.upstream.get(project) ?? index.anyProject;
  const packageId = ruleProject?.packageId ?? src?.packageId;
  if (packageId === undefined || segments.length > 3) return null;
  if (segments.length === 2) return addSlash(req, domain, packageId);

  const fileName = segments[2];
  if (fileName === '') {
    const f = negotiate(req, packageId);
    if (typeof f !== 'string') return f;
    if (ruleProject) return pageAnswer(req, ruleProject.pages[f], respondEvent(packageId));
    return fetchUpstream(src!, project, respondEvent(packageId), (p, ev) => pageAnswer(req, renderProject(throughGateway(p), f), ev));
  }

  const isMetadata = fileName.endsWith('.metadata');
  const distName = isMetadata ? fileName.slice(0, -'.metadata'.length) : fileName;
  if (ruleProject) {
    const exact = ruleProject.files.get(fileName);
    if (exact) return redirect(exact.backendUrl, { ...fileEvent(req, packageId, fileName, isMetadata, exact.version), countable: isFullGet(req) });
    const dist = isMetadata ? ruleProject.files.get(distName) : undefined;
    return dist?.metadata ? redirect(metadataUrl(dist.backendUrl), fileEvent(req, packageId, fileName, isMetadata, dist.version)) : null;
  }
  return fetchUpstream(src!, project, fileEvent(req, packageId, fileName, isMetadata, null), (p) => {
    const exact = p.files.find((f) => f.filename === fileName);
    const dist = exact ? null : isMetadata ? p.files.find((f) => f.filename === distName && f.coreMetadata !== false) : undefined;
    const file = exact ?? dist;
    if (!file) return fileNotFound(fileEvent(req, packageId, fileName, isMetadata, null), project, fileName);
    const location = exact ? file.url : metadataUrl(file.url);
    const ev = { ...fileEvent(req, packageId, fileName, isMetadata, versionFromFilename(project, file.filename)), countable: exact ? isFullGet(req) : false, target: location };
    return { decision: { type: 'redirect', status: 307, location, headers: { 'cache-control': REDIRECT_CACHE_CONTROL } }, events: [ev] };
  });
}
