/**
 * Upstream addresses. A rule may name an upstream as a bare host (`ghcr.io`, `registry:5000`,
 * meaning https) or as a base URL with scheme and port (`http://127.0.0.1:5000`).
 */
export interface Upstream {
  /** Base URL without a trailing slash, e.g. `https://ghcr.io` or `http://127.0.0.1:5000/mirror`. */
  readonly baseUrl: string;
  /** `host[:port]` as it appears in URLs to this upstream (the key of `--upstream HOST=...`). */
  readonly host: string;
}

/** Docker Hub's registry API is served by registry-1.docker.io, not by the names people write. */
const REGISTRY_ALIASES: Record<string, string> = {
  'registry.hub.docker.com': 'registry-1.docker.io',
  'docker.io': 'registry-1.docker.io',
  'index.docker.io': 'registry-1.docker.io',
};

/** The registry name recorded in events: Scarf's rewrite of registry.hub.docker.com, otherwise as written. */
export function registryLabel(registry: string): string {
  const r = registry.trim();
  return r.toLowerCase() === 'registry.hub.docker.com' ? 'registry-1.docker.io' : r;
}

export function parseUpstream(value: string): Upstream | { problem: string } {
  const v = value.trim();
  if (v === '') return { problem: 'is empty' };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(v)) {
    let u: URL;
    try {
      u = new URL(v);
    } catch {
      return { problem: `${JSON.stringify(value)} is not a valid URL` };
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return { problem: `${JSON.stringify(value)}: only http and https upstreams are supported` };
    if (u.username || u.password) return { problem: `${JSON.stringify(value)}: credentials in upstream URLs are not supported` };
    if (u.search || u.hash) return { problem: `${JSON.stringify(value)}: a base URL cannot have a query or fragment` };
    const host = REGISTRY_ALIASES[u.host] ?? u.host;
    return { baseUrl: `${u.protocol}//${host}${u.pathname.replace(/\/+$/, '')}`, host };
  }
  if (!/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?$/i.test(v)) {
    return { problem: `${JSON.stringify(value)} is neither a host[:port] nor an http(s) base URL` };
  }
  const lower = v.toLowerCase();
  const host = REGISTRY_ALIASES[lower] ?? lower;
  return { baseUrl: `https://${host}`, host };
}

/** parseUpstream for values that passed validation. */
export function upstreamOf(value: string): Upstream {
  const u = parseUpstream(value);
  if ('problem' in u) throw new Error(`invalid upstream ${value}: ${u.problem}`);
  return u;
}
