/**
 * Visitor ids for unique counts, without storing who downloaded: a keyed hash of the client's
 * network (IPv4 address or IPv6 /64), User-Agent and package, with a secret salt that rotates
 * every UTC day. Without the day's salt (deleted within 48 hours) the hash cannot be linked back
 * to an address, nor to the same visitor on another day.
 */
import { createHmac } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';

/** The part of an address that identifies a network: the IPv4 address, or the first 64 bits of an IPv6 address. */
export function networkKey(ip: string): string | null {
  const a = ip.trim().replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
  if (isIPv4(a)) return a;
  if (!isIPv6(a)) return null;
  const [head, tail] = a.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.slice(0, 4).map((g) => parseInt(g || '0', 16).toString(16)).join(':') + '::/64';
}

export function visitorId(salt: string, ip: string | null | undefined, userAgent: string | undefined, domain: string, packageId: string | null): string | null {
  const net = ip ? networkKey(ip) : null;
  if (!salt || !net) return null;
  return createHmac('sha256', salt).update(`${net}\n${userAgent ?? ''}\n${domain}\n${packageId ?? ''}`).digest('base64url').slice(0, 22);
}
