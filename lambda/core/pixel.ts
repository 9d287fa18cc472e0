/**
 * pixel-v1: a 1x1 transparent PNG that records a view, e.g. for a README badge or a docs page.
 */
import type { PixelV1Rule } from './schema';
import { queryParam } from './encoding';
import type { GatewayRequest, Outcome } from './request';

/** A valid 1x1 RGBA PNG with alpha 0 (the unit tests decode it). */
export const TRANSPARENT_PNG = Uint8Array.from(Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAAC0lEQVR42mNgAAIAAAUAAen63NgAAAAASUVORK5CYII=', 'base64'));

export type PixelIndex = Map<string, { packageId: string | null }>;

export function compilePixels(rules: PixelV1Rule[]): PixelIndex | null {
  if (!rules.length) return null;
  return new Map(rules.map((r) => [r['incoming-path'], { packageId: r['package-id'] }]));
}

export function handlePixel(index: PixelIndex, req: GatewayRequest): Omit<Outcome, 'domain'> | null {
  if (req.method !== 'GET' && req.method !== 'HEAD') return null;
  const rule = index.get(req.rawPath);
  if (!rule) return null;
  return {
    decision: {
      type: 'respond', status: 200,
      headers: { 'content-type': 'image/png', 'content-length': String(TRANSPARENT_PNG.length), 'cache-control': 'no-cache, no-store, must-revalidate' },
      body: req.method === 'HEAD' ? '' : TRANSPARENT_PNG,
    },
    events: [{ kind: 'pixel', action: 'respond', countable: false, package_id: rule.packageId, pixel_id: queryParam(req.rawQuery, 'x-pxid') ?? '' }],
  };
}
