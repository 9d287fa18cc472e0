/**
 * A streaming rewriter for JSON documents: replaces the string values at one key path (npm's
 * `dist.tarball`) while the document passes through, chunk by chunk, without parsing or holding
 * it whole. npm packuments reach tens of megabytes (every version's README and manifest); only
 * the rewritten values are held, each at most `MAX_VALUE` bytes.
 *
 * It tokenises just enough JSON to know, for each string, whether it is a key and which keys lead
 * to it. Bytes pass through unchanged otherwise; invalid JSON passes through unchanged too (the
 * client reports it, as it would without the gateway).
 */
import type { ByteRewriter } from './fetch';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;

/** Keys longer than this are never one we look for; values longer than this are left alone. */
const MAX_KEY = 64;
const MAX_VALUE = 8 * 1024;
/** Deeper nesting is passed through without tracking. */
const MAX_DEPTH = 256;

interface Frame {
  readonly isObject: boolean;
  /** The key under which this container sits in its parent (null in arrays and at the top). */
  readonly key: string | null;
  /** Objects: the next string is a key. */
  expectKey: boolean;
  /** Objects: the key whose value comes next. */
  pendingKey: string | null;
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

function decodeJsonString(bytes: Uint8Array): string | null {
  try {
    return JSON.parse(`"${decoder.decode(bytes)}"`) as string;
  } catch {
    return null;
  }
}

/**
 * Rewrites string values found at `parentKey.key` (e.g. `dist.tarball`) with `rewrite`; a null
 * from `rewrite` keeps the value.
 */
export function createJsonValueRewriter(parentKey: string, key: string, rewrite: (value: string) => string | null): ByteRewriter {
  const stack: Frame[] = [];
  let inString = false;
  let escaped = false;
  /** What the current string is: a key being read, a value being captured, or neither. */
  let role: 'key' | 'capture' | 'other' = 'other';
  let held: number[] = [];
  let heldOverflow = false;
  /** The last key read, until its colon makes it the pending key. */
  let lastKey: string | null = null;

  const top = () => stack[stack.length - 1];

  function startString(): void {
    const f = top();
    if (f?.isObject && f.expectKey) {
      role = 'key';
    } else if (f?.isObject && f.pendingKey === key && f.key === parentKey) {
      role = 'capture';
    } else {
      role = 'other';
    }
    held = [];
    heldOverflow = false;
  }

  function valueDone(): void {
    const f = top();
    if (f?.isObject) f.pendingKey = null;
  }

  return {
    push(chunk: Uint8Array): Uint8Array {
      const out: Uint8Array[] = [];
      let from = 0; // start of the bytes not yet emitted
      for (let i = 0; i < chunk.length; i++) {
        const b = chunk[i];
        if (inString) {
          if (role === 'other' && !escaped && b !== QUOTE && b !== BACKSLASH) {
            // Inside a string nobody looks at (READMEs are most of a packument): skip to the next quote or backslash.
            const q = chunk.indexOf(QUOTE, i);
            const e = chunk.indexOf(BACKSLASH, i);
            const next = q < 0 ? e : e < 0 ? q : Math.min(q, e);
            i = (next < 0 ? chunk.length : next) - 1;
            continue;
          }
          if (escaped) {
            escaped = false;
          } else if (b === BACKSLASH) {
            escaped = true;
          } else if (b === QUOTE) {
            inString = false;
            if (role === 'key') {
              lastKey = heldOverflow ? null : decodeJsonString(Uint8Array.from(held));
              const f = top();
              if (f) f.expectKey = false;
            } else if (role === 'capture') {
              if (!heldOverflow) {
                const original = Uint8Array.from(held);
                const value = decodeJsonString(original);
                const replaced = value === null ? null : rewrite(value);
                out.push(replaced === null ? original : encoder.encode(JSON.stringify(replaced).slice(1, -1)));
                from = i; // the closing quote goes out with what follows
              }
              valueDone();
            } else {
              valueDone();
            }
            role = 'other';
            continue;
          }
          if (role === 'key') {
            if (held.length < MAX_KEY) held.push(b);
            else heldOverflow = true;
          } else if (role === 'capture') {
            if (!heldOverflow && held.length < MAX_VALUE) {
              held.push(b);
              from = i + 1;
            } else if (!heldOverflow) {
              // Too long to be a URL we rewrite: emit what was held and pass the rest through.
              heldOverflow = true;
              out.push(Uint8Array.from(held));
              held = [];
              from = i;
            }
          }
          continue;
        }
        switch (b) {
          case QUOTE:
            inString = true;
            startString();
            if (role === 'capture') {
              out.push(chunk.subarray(from, i + 1));
              from = i + 1;
            }
            break;
          case COLON: {
            const f = top();
            if (f?.isObject) f.pendingKey = lastKey;
            break;
          }
          case COMMA: {
            const f = top();
            if (f?.isObject) {
              f.expectKey = true;
              f.pendingKey = null;
            }
            break;
          }
          case OPEN_OBJECT:
          case OPEN_ARRAY: {
            const parent = top();
            const k = parent?.isObject ? parent.pendingKey : null;
            if (stack.length < MAX_DEPTH) stack.push({ isObject: b === OPEN_OBJECT, key: k, expectKey: b === OPEN_OBJECT, pendingKey: null });
            else stack.push({ isObject: false, key: null, expectKey: false, pendingKey: null });
            break;
          }
          case CLOSE_OBJECT:
          case CLOSE_ARRAY:
            stack.pop();
            valueDone();
            break;
          default:
            // Numbers, literals and whitespace: a scalar value ends at the next comma or bracket.
            break;
        }
      }
      out.push(chunk.subarray(from));
      return concat(out);
    },
    end(): Uint8Array {
      // An unterminated capture (truncated document): give back what was held, unchanged.
      return inString && role === 'capture' && !heldOverflow ? Uint8Array.from(held) : new Uint8Array(0);
    },
  };
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
