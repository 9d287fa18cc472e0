/**
 * npm package names and the registry's URL layout: which package a request path names, and
 * whether it asks for a packument, one version's manifest or a tarball.
 */

/** A name part: what npm accepts today, plus upper case for the legacy packages that have it. */
const PART = /^[a-z0-9~-][a-z0-9._~-]*$/i;
const MAX_NAME = 214;

export type NpmPackagePattern = { kind: 'name'; name: string } | { kind: 'scope'; scope: string } | { kind: 'any' };

/** `rocket`, `@acme/rocket`, `@acme/*`, or `*` (every package). */
export function parseNpmPackagePattern(v: string): NpmPackagePattern | { problem: string } {
  if (v === '*') return { kind: 'any' };
  const scoped = /^(@[^/]+)\/([^/]+)$/.exec(v);
  if (scoped) {
    const [, scope, name] = scoped;
    if (!PART.test(scope.slice(1))) return { problem: `${JSON.stringify(scope)} is not a valid npm scope` };
    if (name === '*') return { kind: 'scope', scope: scope.toLowerCase() };
    if (!PART.test(name) || v.length > MAX_NAME) return { problem: `${JSON.stringify(v)} is not a valid npm package name` };
    return { kind: 'name', name: v };
  }
  if (v.includes('/') || v.startsWith('@')) return { problem: `${JSON.stringify(v)}: write a scoped package as "@scope/name" and a scope pattern as "@scope/*"` };
  if (!PART.test(v) || v.length > MAX_NAME || v.startsWith('.') || v.startsWith('_')) return { problem: `${JSON.stringify(v)} is not a valid npm package name` };
  return { kind: 'name', name: v };
}

export interface NpmRequestPath {
  /** `rocket` or `@acme/rocket`. */
  readonly name: string;
  /** `@acme` for scoped packages, else null. */
  readonly scope: string | null;
  readonly what: { kind: 'packument' } | { kind: 'version'; version: string } | { kind: 'tarball'; file: string };
}

function validName(name: string): boolean {
  if (name.length > MAX_NAME) return false;
  const m = /^(?:@([^/]+)\/)?([^/]+)$/.exec(name);
  return !!m && (m[1] === undefined || PART.test(m[1])) && PART.test(m[2]) && !m[2].startsWith('.') && !m[2].startsWith('_');
}

/**
 * What a registry request path names, from its decoded segments. Scoped names come as
 * `/@scope%2fname` (npm's own form, one segment) or `/@scope/name`; tarballs as
 * `/<name>/-/<file>.tgz`. Null for anything else (`/-/...` registry endpoints included).
 */
export function parseNpmRequestPath(segments: readonly string[] | null): NpmRequestPath | null {
  if (!segments || segments.length === 0 || segments[0] === '' || segments[0] === '-') return null;
  let name: string;
  let rest: readonly string[];
  if (segments[0].startsWith('@') && !segments[0].includes('/')) {
    if (segments.length < 2) return null;
    name = `${segments[0]}/${segments[1]}`;
    rest = segments.slice(2);
  } else {
    name = segments[0];
    rest = segments.slice(1);
  }
  if (!validName(name)) return null;
  const scope = name.startsWith('@') ? name.slice(0, name.indexOf('/')).toLowerCase() : null;
  if (rest.length === 0) return { name, scope, what: { kind: 'packument' } };
  if (rest.length === 1 && rest[0] !== '' && rest[0] !== '-') return { name, scope, what: { kind: 'version', version: rest[0] } };
  if (rest.length === 2 && rest[0] === '-' && /^[^/]+\.tgz$/.test(rest[1])) return { name, scope, what: { kind: 'tarball', file: rest[1] } };
  return null;
}

/** The registry path of a package: scoped names with their slash encoded, as npm requests them. */
export function packumentPath(name: string): string {
  return `/${name.startsWith('@') ? name.replace('/', '%2f') : encodeURIComponent(name)}`;
}

/** The version in a tarball name: `rocket-1.2.0.tgz` (and `@acme/rocket` -> `rocket-1.2.0.tgz`) gives `1.2.0`. */
export function versionFromTarball(name: string, file: string): string | null {
  const base = name.slice(name.lastIndexOf('/') + 1);
  const prefix = `${base}-`;
  if (!file.startsWith(prefix) || !file.endsWith('.tgz')) return null;
  const v = file.slice(prefix.length, -'.tgz'.length);
  return v === '' ? null : v;
}
