/**
 * Autonomous system numbers of major cloud providers and companies, with the organisation that
 * operates them: a small, deliberately partial table, from the public registration of each
 * number (never derived from an IP address). It names where downloads come from in aggregate
 * ("how much traffic is CI on Azure?"), not who downloaded. Extend it as data: one entry per ASN.
 */
export const ASN_ORGANIZATIONS: Readonly<Record<string, string>> = {
  // Cloud providers and CDNs
  '16509': 'Amazon', // AMAZON-02: AWS
  '14618': 'Amazon', // AMAZON-AES: AWS us-east-1
  '8987': 'Amazon', // AMAZON EXPANSION: AWS
  '15169': 'Google',
  '19527': 'Google',
  '396982': 'Google Cloud',
  '8075': 'Microsoft', // Azure, including GitHub-hosted Actions runners
  '8068': 'Microsoft',
  '3598': 'Microsoft',
  '31898': 'Oracle Cloud',
  '36351': 'IBM Cloud', // SoftLayer
  '45102': 'Alibaba Cloud',
  '37963': 'Alibaba Cloud',
  '132203': 'Tencent Cloud',
  '45090': 'Tencent Cloud',
  '14061': 'DigitalOcean',
  '24940': 'Hetzner',
  '213230': 'Hetzner', // Hetzner Cloud
  '16276': 'OVHcloud',
  '12876': 'Scaleway',
  '20473': 'Vultr',
  '63949': 'Akamai (Linode)',
  '20940': 'Akamai',
  '16625': 'Akamai',
  '13335': 'Cloudflare',
  '209242': 'Cloudflare',
  '54113': 'Fastly',
  // Companies
  '36459': 'GitHub',
  '32934': 'Meta',
  '714': 'Apple',
  '6185': 'Apple',
  '2906': 'Netflix',
};

/** The organisation operating an ASN, or null when the table does not name it. */
export function organizationOfAsn(asn: string | null): string | null {
  return asn !== null && Object.prototype.hasOwnProperty.call(ASN_ORGANIZATIONS, asn) ? ASN_ORGANIZATIONS[asn] : null;
}
