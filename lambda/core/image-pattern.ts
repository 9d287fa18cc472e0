/**
 * docker-v2 image patterns (Scarf's syntax): segments separated by `/`; in a segment, `*` matches
 * any run of characters, `{a,b}` any alternative, `\` escapes one of `* { } ,`. The pattern and
 * the image must have the same number of segments. Unlike Scarf, trailing garbage is an error.
 */
export class ImagePatternError extends Error {}

type Piece = { kind: 'literal'; text: string } | { kind: 'star' } | { kind: 'union'; alternatives: Piece[][] };

export interface ImagePattern {
  readonly source: string;
  readonly segments: readonly RegExp[];
}

const SPECIAL = new Set(['*', '{', '}', ',', '/', '\\']);

export function parseImagePattern(source: string): ImagePattern {
  let i = 0;
  const fail = (msg: string): never => {
    throw new ImagePatternError(`${msg} at position ${i}`);
  };
  // pieces until one of `stop` (not consumed) or the end
  const pieces = (inUnion: boolean): Piece[] => {
    const out: Piece[] = [];
    while (i < source.length) {
      const c = source[i];
      if (c === '/') {
        if (inUnion) fail('"/" inside {...}');
        break;
      }
      if (inUnion && (c === ',' || c === '}')) break;
      if (c === '*') {
        out.push({ kind: 'star' });
        i++;
      } else if (c === '{') {
        i++;
        const alternatives: Piece[][] = [pieces(true)];
        while (source[i] === ',') {
          i++;
          alternatives.push(pieces(true));
        }
        if (source[i] !== '}') fail('unclosed "{"');
        i++;
        out.push({ kind: 'union', alternatives });
      } else if (c === '\\') {
        const n = source[i + 1];
        if (n === undefined || !'*{},'.includes(n)) fail('"\\" must escape one of * { } ,');
        out.push({ kind: 'literal', text: n });
        i += 2;
      } else if (c === '}' || c === ',') {
        fail(`unexpected "${c}"`);
      } else {
        let j = i;
        while (j < source.length && !SPECIAL.has(source[j])) j++;
        out.push({ kind: 'literal', text: source.slice(i, j) });
        i = j;
      }
    }
    return out;
  };
  const segments: RegExp[] = [];
  if (source === '') fail('empty pattern');
  for (;;) {
    const seg = pieces(false);
    if (seg.length === 0) fail('empty segment');
    segments.push(new RegExp(`^${toRegex(seg)}$`, 's'));
    if (i >= source.length) break;
    i++; // "/"
    if (i >= source.length) fail('trailing "/"');
  }
  return { source, segments };
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function toRegex(pieces: Piece[]): string {
  return pieces.map((p) => {
    if (p.kind === 'literal') return escapeRe(p.text);
    if (p.kind === 'star') return '.*';
    return `(?:${p.alternatives.map(toRegex).join('|')})`;
  }).join('');
}

export function matchImagePattern(p: ImagePattern, image: readonly string[]): boolean {
  if (image.length !== p.segments.length) return false;
  for (let k = 0; k < image.length; k++) if (!p.segments[k].test(image[k])) return false;
  return true;
}
