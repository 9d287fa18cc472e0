/**
 * Where AWS regions are, roughly (the metro area of each region): enough to rank gateway regions
 * by distance from the CloudFront regional edge cache that serves a viewer.
 */
export const REGION_COORDINATES: Readonly<Record<string, readonly [number, number]>> = {
  'us-east-1': [38.9, -77.4], 'us-east-2': [40.0, -83.0], 'us-west-1': [37.4, -121.9], 'us-west-2': [45.8, -119.7],
  'ca-central-1': [45.5, -73.6], 'ca-west-1': [51.0, -114.1], 'mx-central-1': [20.6, -100.4], 'sa-east-1': [-23.5, -46.6],
  'eu-west-1': [53.3, -6.3], 'eu-west-2': [51.5, -0.1], 'eu-west-3': [48.9, 2.3], 'eu-central-1': [50.1, 8.7],
  'eu-central-2': [47.4, 8.5], 'eu-north-1': [59.3, 18.1], 'eu-south-1': [45.5, 9.2], 'eu-south-2': [41.6, -0.9],
  'il-central-1': [32.1, 34.8], 'me-south-1': [26.1, 50.6], 'me-central-1': [24.5, 54.4], 'af-south-1': [-33.9, 18.4],
  'ap-east-1': [22.3, 114.2], 'ap-east-2': [25.0, 121.5], 'ap-south-1': [19.1, 72.9], 'ap-south-2': [17.4, 78.5],
  'ap-northeast-1': [35.7, 139.7], 'ap-northeast-2': [37.6, 127.0], 'ap-northeast-3': [34.7, 135.5],
  'ap-southeast-1': [1.35, 103.8], 'ap-southeast-2': [-33.9, 151.2], 'ap-southeast-3': [-6.2, 106.8],
  'ap-southeast-4': [-37.8, 145.0], 'ap-southeast-5': [3.1, 101.7], 'ap-southeast-6': [-36.8, 174.8], 'ap-southeast-7': [13.8, 100.5],
};

/** Great-circle distance in radians. */
export function distance(a: readonly [number, number], b: readonly [number, number]): number {
  const r = Math.PI / 180;
  const dLat = (b[0] - a[0]) * r;
  const dLon = (b[1] - a[1]) * r;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a[0] * r) * Math.cos(b[0] * r) * Math.sin(dLon / 2) ** 2;
  return Math.atan2(Math.sqrt(h), Math.sqrt(1 - h));
}

/** Indexes of `gateways`, nearest to `from` first (unknown regions last, ties in the given order). */
export function rankByDistance(from: readonly [number, number], gateways: readonly string[]): number[] {
  const d = gateways.map((g) => (REGION_COORDINATES[g] ? distance(from, REGION_COORDINATES[g]) : Infinity));
  return gateways.map((_, i) => i).sort((x, y) => (d[x] === d[y] ? x - y : d[x] - d[y]));
}

/** For every known region: the gateway regions nearest to it. A gateway region always ranks itself first. */
export function nearestGateways(gateways: readonly string[]): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const [region, at] of Object.entries(REGION_COORDINATES)) {
    const own = gateways.indexOf(region);
    const ranked = rankByDistance(at, gateways);
    out[region] = own >= 0 ? [own, ...ranked.filter((i) => i !== own)] : ranked;
  }
  return out;
}
