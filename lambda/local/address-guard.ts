/**
 * Where the gateway may connect when an upstream, not the configuration, names the host: a
 * redirect of an upstream document to another host, or a registry's token realm. Such a host is
 * reached only at a public address, so an upstream (or whoever controls its answers) cannot make
 * the gateway fetch from the cloud metadata service, the Lambda runtime API or a private network
 * (docs/SECURITY.md, "SSRF"). Hosts the configuration names (a rule's upstream, `--upstream`
 * overrides) are not restricted: the operator chose them.
 *
 * One exception keeps internal registries working: an upstream that is itself on a loopback or
 * private address may send the gateway to other loopback or private addresses (its token
 * service on the next port). Link-local addresses (169.254.0.0/16 and fe80::/10, where the
 * metadata services live), unspecified and multicast addresses are never reached this way.
 */
import dns from 'node:dns';
import net from 'node:net';

export type AddressClass = 'public' | 'internal' | 'forbidden';

function ipv4Class(ip: string): AddressClass {
  const [a, b] = ip.split('.').map(Number);
  if (a === 0 || a >= 224 || (a === 169 && b === 254)) return 'forbidden';
  if (a === 127 || a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 100 && b >= 64 && b <= 127)) return 'internal';
  // 192.0.0.0/24 holds special-purpose addresses (some clouds' metadata services among them).
  if (a === 192 && b === 0 && ip.split('.')[2] === '0') return 'forbidden';
  return 'public';
}

/** The 8 groups of an IPv6 address as numbers. */
function ipv6Groups(ip: string): number[] {
  let s = ip.toLowerCase().replace(/%.*$/, '');
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const [a, b, c, d] = v4[1].split('.').map(Number);
    s = s.slice(0, -v4[1].length) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? s.split('::') : [s, null];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const fill = tail === null ? [] : new Array(8 - h.length - t.length).fill('0');
  return [...h, ...fill, ...t].map((g) => parseInt(g, 16));
}

function ipv6Class(ip: string): AddressClass {
  const g = ipv6Groups(ip);
  // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible forms are judged as the IPv4 address.
  if (g.slice(0, 5).every((x) => x === 0) && (g[5] === 0xffff || g[5] === 0) && !(g[5] === 0 && g[6] === 0)) {
    return ipv4Class(`${g[6] >> 8}.${g[6] & 255}.${g[7] >> 8}.${g[7] & 255}`);
  }
  if (g.every((x) => x === 0)) return 'forbidden'; // ::
  if (g.slice(0, 7).every((x) => x === 0) && g[7] === 1) return 'internal'; // ::1
  if ((g[0] & 0xffc0) === 0xfe80 || (g[0] & 0xff00) === 0xff00) return 'forbidden'; // link-local, multicast
  // AWS's IPv6 instance metadata endpoint sits in the unique-local range.
  if (g[0] === 0xfd00 && g[1] === 0x0ec2) return 'forbidden';
  if ((g[0] & 0xfe00) === 0xfc00) return 'internal'; // unique local
  return 'public';
}

/** What kind of address `ip` is; anything that is not an IP literal counts as forbidden. */
export function classifyAddress(ip: string): AddressClass {
  const family = net.isIP(ip);
  if (family === 4) return ipv4Class(ip);
  if (family === 6) return ipv6Class(ip);
  return 'forbidden';
}

export interface HopGuard {
  /** Loopback and private addresses are allowed (the upstream that named the host is internal itself). */
  readonly allowInternal: boolean;
}

/** The guard for hosts named by an upstream that the gateway contacts at `contacted` (after `--upstream` overrides). */
export function guardNamedBy(contacted: URL): HopGuard {
  const host = contacted.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const internal = host === 'localhost' || host.endsWith('.localhost') || (net.isIP(host) !== 0 && classifyAddress(host) === 'internal');
  return { allowInternal: internal };
}

export function allowed(address: string, guard: HopGuard): boolean {
  const c = classifyAddress(address);
  return c === 'public' || (c === 'internal' && guard.allowInternal);
}

export class BlockedAddressError extends Error {
  readonly code = 'EADDRBLOCKED';
  constructor(readonly host: string) {
    super(`${host} is not a public address`);
  }
}

/** For an IP-literal host: throws when the guard refuses it (names are checked at connect time by `guardedLookup`). */
export function checkLiteralHost(hostname: string, guard: HopGuard): void {
  const host = hostname.replace(/^\[|\]$/g, '');
  if (net.isIP(host) !== 0 && !allowed(host, guard)) throw new BlockedAddressError(host);
}

/**
 * A `lookup` for http.request that resolves as usual and refuses addresses the guard does not
 * allow. Checked at connect time, so a name cannot resolve to one address when checked and to
 * another when used.
 */
export function guardedLookup(guard: HopGuard): net.LookupFunction {
  return ((hostname: string, options: dns.LookupOptions, callback: (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void) => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const ok = (addresses as dns.LookupAddress[]).filter((a) => allowed(a.address, guard));
      if (!ok.length) return callback(new BlockedAddressError(hostname), '', 0);
      if (options.all) return callback(null, ok);
      callback(null, ok[0].address, ok[0].family);
    });
  }) as net.LookupFunction;
}
