/**
 * Coarse origin of a request from the CDN's viewer headers (`CloudFront-Viewer-Country`,
 * `-Country-Region`, `-ASN`): country, region and network operator, never the IP address.
 *
 * Only an adapter that sits behind CloudFront may call this with `trusted: true`: CloudFront
 * overwrites these headers with its own values, so a client cannot choose them. Anywhere else
 * (the local gateway, unless told otherwise) a client could send them, so they are ignored.
 */
import { isIP } from 'node:net';
import { header, type Headers } from './request';
import { organizationOfAsn } from './asn-organizations';

export interface ViewerOrigin {
  country: string | null;
  region: string | null;
  asn: string | null;
  org: string | null;
}

export const NO_ORIGIN: ViewerOrigin = Object.freeze({ country: null, region: null, asn: null, org: null });

/**
 * `country`: ISO 3166-1 alpha-2 (`DE`); `region`: the ISO 3166-2 subdivision code, which
 * CloudFront sends without its country prefix (`BY` -> `DE-BY`); `asn`: decimal digits.
 * A malformed value is dropped rather than recorded.
 */
export function viewerOrigin(headers: Headers, opts: { trusted: boolean }): ViewerOrigin {
  if (!opts.trusted) return NO_ORIGIN;
  const countryRaw = header(headers, 'cloudfront-viewer-country')?.trim().toUpperCase();
  const country = countryRaw && /^[A-Z]{2}$/.test(countryRaw) ? countryRaw : null;
  const regionRaw = header(headers, 'cloudfront-viewer-country-region')?.trim().toUpperCase();
  const region = country && regionRaw && /^[A-Z0-9]{1,3}$/.test(regionRaw) ? `${country}-${regionRaw}` : null;
  const asnRaw = header(headers, 'cloudfront-viewer-asn')?.trim();
  const asn = asnRaw && /^[1-9]\d{0,9}$/.test(asnRaw) && Number(asnRaw) <= 4294967295 ? asnRaw : null;
  return { country, region, asn, org: organizationOfAsn(asn) };
}

/**
 * The viewer's IP address from `CloudFront-Viewer-Address` (`198.51.100.7:46532`, or an IPv6
 * address with `:port` appended), for the visitor hash only: it is never stored. Behind
 * CloudFront the function URL's own source address is an edge server's, and `X-Forwarded-For`
 * starts with whatever the client sent, so this header is the only trustworthy one.
 */
export function cloudFrontViewerIp(headers: Headers, opts: { trusted: boolean }): string | null {
  if (!opts.trusted) return null;
  const v = header(headers, 'cloudfront-viewer-address')?.trim();
  if (!v) return null;
  const colon = v.lastIndexOf(':');
  const ip = colon > 0 && /^\d{1,5}$/.test(v.slice(colon + 1)) ? v.slice(0, colon) : v;
  return isIP(ip) ? ip : null;
}
