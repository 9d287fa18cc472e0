/**
 * Generated manifests for the benchmarks. Deterministic: the same rules on every run.
 */
import { createHash } from 'node:crypto';

export type RawRule = Record<string, unknown>;
export interface ManifestDoc {
  rules: RawRule[];
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** The kinds of domain of the mixed manifest, in turn: domain `i` has kind `MIXED_KINDS[i % 5]`. */
export const MIXED_KINDS = ['docker', 'files', 'python', 'npm', 'catchAll'] as const;
export type MixedKind = (typeof MIXED_KINDS)[number];

/** Host names of the mixed manifest: domain `i` has kind `MIXED_KINDS[i % 5]`. */
export const mixedHost: Record<MixedKind, (i: number) => string> = {
  docker: (i: number) => `cr${i}.example.com`,
  files: (i: number) => `get${i}.example.com`,
  python: (i: number) => `py${i}.example.com`,
  npm: (i: number) => `npm${i}.example.com`,
  catchAll: (i: number) => `dl${i}.example.com`,
};

/** Index of the `n`-th domain (from 0) of a kind in the mixed manifest. */
export const mixedIndex = (kind: MixedKind, n: number) => n * MIXED_KINDS.length + MIXED_KINDS.indexOf(kind);
/** The last domain of a kind in a mixed manifest of `domains` domains (the benches' fixed requests use it). */
export const lastMixedIndex = (kind: MixedKind, domains = 1000) => mixedIndex(kind, Math.floor((domains - 1 - MIXED_KINDS.indexOf(kind)) / MIXED_KINDS.length));

/** Names of the npm packages of the mixed manifest's npm domain `i`: 8 named packages, and `@acme/*` and `*` patterns. */
export const mixedNpmPackage = (i: number, j: number) => (j % 2 === 0 ? `tool${i}-${j}` : `@acme/tool${i}-${j}`);

/**
 * `domains` domains with 10 rules each, five kinds of domain in turn (`MIXED_KINDS`):
 * - registry (i % 5 = 0): 9 docker-v1 images `acme/app0..8` and one docker-v2 pattern `acme/*`;
 * - downloads (1): 7 file-v1 templates (`/rocket/{version}/rocket-{os}-{arch}.tar.gz`, `/tool1..6/...`),
 *   a literal `/install.sh`, one file-v2 regex and one pixel-v1;
 * - Python (2): two projects of 5 files each;
 * - npm (3): 8 npm-v1 packages (`tool{i}-{j}`, half of them scoped `@acme/...`), the scope
 *   pattern `@acme/*` and `*`;
 * - mirror (4): 9 file-v1 templates `/release0..8/{version}/app.tar.gz` and a catch-all-v1.
 * With the default 1,000 domains: 10,000 rules.
 */
export function mixedManifest(domains = 1000): ManifestDoc {
  const rules: RawRule[] = [];
  for (let i = 0; i < domains; i++) {
    switch (MIXED_KINDS[i % MIXED_KINDS.length]) {
      case 'docker': {
        const domain = mixedHost.docker(i);
        for (let j = 0; j < 9; j++) {
          rules.push({ type: 'docker-v1', domain, 'repository-name': `acme/app${j}`, registry: 'ghcr.io', 'package-id': `img-${i}-${j}` });
        }
        rules.push({ type: 'docker-v2', domain, pattern: 'acme/*', registry: 'ghcr.io', 'rule-id': `auto-${i}` });
        break;
      }
      case 'files': {
        const domain = mixedHost.files(i);
        rules.push({
          type: 'file-v1', domain,
          'incoming-path': '/rocket/{version}/rocket-{os}-{arch}.tar.gz',
          'outgoing-url': 'https://github.com/acme/rocket/releases/download/v{version}/rocket-{os}-{arch}.tar.gz',
          'package-id': `rocket-${i}`,
        });
        for (let j = 1; j <= 6; j++) {
          rules.push({
            type: 'file-v1', domain,
            'incoming-path': `/tool${j}/{version}/tool${j}-{os}.zip`,
            'outgoing-url': `https://downloads.example.org/tool${j}/{version}/tool${j}-{os}.zip`,
            'package-id': `tool-${i}-${j}`,
          });
        }
        rules.push({ type: 'file-v1', domain, 'incoming-path': '/install.sh', 'outgoing-url': 'https://raw.githubusercontent.com/acme/rocket/main/install.sh', 'package-id': `install-${i}` });
        rules.push({
          type: 'file-v2', domain,
          'incoming-path': '^/nightly/(?<date>\\d{4}-\\d{2}-\\d{2})/(?<file>[^/]+)$',
          'outgoing-url': 'https://nightlies.example.org/{date}/{file}',
          'package-id': `nightly-${i}`,
        });
        rules.push({ type: 'pixel-v1', domain, 'incoming-path': '/a.png', 'package-id': `docs-${i}` });
        break;
      }
      case 'python': {
        const domain = mixedHost.python(i);
        for (const suffix of ['a', 'b']) {
          const name = `pkg${i}${suffix}`;
          for (let v = 0; v < 5; v++) {
            const file = `${name}-1.${v}.0-py3-none-any.whl`;
            rules.push({
              type: 'python-v1', domain, 'package-name': name, 'file-name': file, version: `1.${v}.0`,
              'backend-url': `https://files.example.org/packages/${name}/${file}`,
              'package-id': `py-${name}`, 'hash-value': { type: 'sha256', hash: sha256(file) },
            });
          }
        }
        break;
      }
      case 'npm': {
        const domain = mixedHost.npm(i);
        for (let j = 0; j < 8; j++) {
          rules.push({ type: 'npm-v1', domain, 'package-name': mixedNpmPackage(i, j), registry: 'https://registry.npmjs.org', 'package-id': `npm-${i}-${j}` });
        }
        rules.push({ type: 'npm-v1', domain, 'package-name': '@acme/*', registry: 'https://npm.pkg.github.com', 'package-id': `npm-acme-${i}` });
        rules.push({ type: 'npm-v1', domain, 'package-name': '*', 'package-id': `npm-deps-${i}` });
        break;
      }
      case 'catchAll': {
        const domain = mixedHost.catchAll(i);
        for (let j = 0; j < 9; j++) {
          rules.push({
            type: 'file-v1', domain,
            'incoming-path': `/release${j}/{version}/app.tar.gz`,
            'outgoing-url': `https://cdn.example.org/release${j}/{version}/app.tar.gz`,
            'package-id': `release-${i}-${j}`,
          });
        }
        rules.push({ type: 'catch-all-v1', domain, 'redirect-target-domain': `docs${i}.example.org`, 'package-id': `mirror-${i}` });
      }
    }
  }
  return { rules };
}

export const PYTHON_HOST = 'pypi.example.com';
export const BIG_PACKAGE = 'bigpkg';

/** Version `v` (0..999) of the big package: `0.0.0` .. `9.9.9`. */
export const bigVersion = (v: number) => `${Math.floor(v / 100)}.${Math.floor(v / 10) % 10}.${v % 10}`;

/**
 * One Python index: `bigpkg` with `files` distribution files (a wheel and an sdist per version),
 * plus `extra` files spread over small projects (5 files each). Default: 2,000 + 65 = 2,065 rules.
 */
export function pythonManifest(files = 2000, extra = 65): ManifestDoc {
  const rules: RawRule[] = [];
  for (let k = 0; k < files; k++) {
    const version = bigVersion(Math.floor(k / 2));
    const file = k % 2 === 0 ? `${BIG_PACKAGE}-${version}-py3-none-any.whl` : `${BIG_PACKAGE}-${version}.tar.gz`;
    rules.push({
      type: 'python-v1', domain: PYTHON_HOST, 'package-name': BIG_PACKAGE, 'file-name': file, version,
      'backend-url': `https://files.example.org/packages/${BIG_PACKAGE}/${version}/${file}`,
      'package-id': 'bigpkg', 'hash-value': { type: 'sha256', hash: sha256(file) }, 'requires-python': '>=3.8',
    });
  }
  for (let k = 0; k < extra; k++) {
    const name = `small${Math.floor(k / 5)}`;
    const version = `0.${k % 5}.0`;
    const file = `${name}-${version}-py3-none-any.whl`;
    rules.push({
      type: 'python-v1', domain: PYTHON_HOST, 'package-name': name, 'file-name': file, version,
      'backend-url': `https://files.example.org/packages/${name}/${file}`,
      'package-id': name, 'hash-value': { type: 'sha256', hash: sha256(file) },
    });
  }
  return { rules };
}

export const SCALING_HOST = 'files.example.com';

/**
 * `n` file-v1 rules on one domain. `distinct`: `/pkg{k}/{version}/file.tar.gz`, every template
 * with its own literal first segment (what the compiled index keys on). `shared`: all under one
 * first segment, `/dl/pkg{k}/{version}/file.tar.gz`, which the index cannot tell apart.
 */
export function fileScalingManifest(n: number, layout: 'distinct' | 'shared' = 'distinct'): ManifestDoc {
  const rules: RawRule[] = [];
  const prefix = layout === 'distinct' ? '' : '/dl';
  for (let k = 0; k < n; k++) {
    rules.push({
      type: 'file-v1', domain: SCALING_HOST,
      'incoming-path': `${prefix}/pkg${k}/{version}/file.tar.gz`,
      'outgoing-url': `https://cdn.example.org/pkg${k}/{version}/file.tar.gz`,
      'package-id': `pkg-${k}`,
    });
  }
  return { rules };
}
