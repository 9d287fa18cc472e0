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

export type VisitorIdFn = typeof visitorId;

/**
 * A `visitorId` that remembers its last answer, for the requests of one keep-alive connection
 * (the same address, User-Agent and usually package, asking again and again: the HMAC is most of
 * an event's cost). It holds one set of inputs, the address among them, in memory only and only as
 * long as its owner keeps it: the local server keeps one per connection, which knows the address
 * anyway. A new salt (the day changed) is a different input, so no id outlives its salt's day.
 */
export function rememberingVisitorId(): VisitorIdFn {
  let last: { salt: string; ip: string | null | undefined; userAgent: string | undefined; domain: string; packageId: string | null; id: string | null } | null = null;
  return (salt, ip, userAgent, domain, packageId) => {
    if (last !== null && last.salt === salt && last.ip === ip && last.userAgent === userAgent && last.domain === domain && last.packageId === packageId) return last.id;
    const id = visitorId(salt, ip, userAgent, domain, packageId);
    last = { salt, ip, userAgent, domain, packageId, id };
    return id;
  };
}
