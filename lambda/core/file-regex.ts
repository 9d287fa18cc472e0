/**
 * file-v2 regular expressions. Scarf compiles them as PCRE in UTF-8 mode; JavaScript's RegExp
 * accepts the same syntax for what manifests use (classes, groups, named groups `(?<n>...)`,
 * lazy and greedy quantifiers). PCRE-only constructs (possessive quantifiers, `\A`, `\z`,
 * atomic groups) are rejected with a clear message.
 *
 * Hostile or careless patterns (`(a+)+$`) must not let one request pin a CPU. JavaScript has no
 * RE2 here, so matching is bounded in two layers (docs/SECURITY.md):
 * - V8's linear-time engine takes over from the backtracking one after a fixed number of
 *   backtracks (`--enable-experimental-regexp-engine-on-excessive-backtracks`, set below). It
 *   runs every pattern without backreferences, lookarounds, Unicode-mode syntax or large
 *   counted repetitions.
 * - Patterns it cannot run are checked statically: a repeated group that contains an unbounded
 *   quantifier or an alternation (the shapes that backtrack exponentially) is rejected.
 *   Backreferences are always rejected.
 * The input is bounded too: request targets longer than 16 KiB never reach a matcher (engine.ts).
 */
import { setFlagsFromString } from 'node:v8';

export interface FileRegex {
  readonly source: string;
  readonly regex: RegExp;
  readonly groupNames: readonly string[];
}

/** Turns on V8's linear-time fallback; false where it cannot be had (then every pattern gets the static check). */
function enableLinearFallback(): boolean {
  try {
    setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks');
    // The `l` flag (linear engine only) is how we learn which patterns the fallback can run.
    setFlagsFromString('--enable-experimental-regexp-engine');
    new RegExp('a', 'l');
    return true;
  } catch {
    return false;
  }
}

const LINEAR_FALLBACK = enableLinearFallback();

/** Whether V8's linear-time engine can run this pattern (so excessive backtracking falls back to it). */
function runsInLinearTime(source: string, flags: string): boolean {
  if (!LINEAR_FALLBACK) return false;
  try {
    new RegExp(source, `${flags}l`);
    return true;
  } catch {
    return false;
  }
}

interface Frame {
  /** The group so far contains an unbounded quantifier (`*`, `+`, `{n,}`). */
  unbounded: boolean;
  alternation: boolean;
}

/** A quantifier at `i`: its length, whether it repeats (max > 1) and whether it is unbounded; null when none. */
function quantifierAt(s: string, i: number): { length: number; repeats: boolean; unbounded: boolean } | null {
  const c = s[i];
  let length = 0;
  let repeats = false;
  let unbounded = false;
  if (c === '*' || c === '+') {
    length = 1;
    repeats = true;
    unbounded = true;
  } else if (c === '?') {
    length = 1;
  } else if (c === '{') {
    const m = /^\{(\d+)(,(\d*))?\}/.exec(s.slice(i, i + 24));
    if (!m) return null;
    length = m[0].length;
    const max = m[2] === undefined ? Number(m[1]) : m[3] === '' ? Infinity : Number(m[3]);
    repeats = max > 1;
    unbounded = max === Infinity;
  } else {
    return null;
  }
  if (s[i + length] === '?') length++; // lazy
  return { length, repeats, unbounded };
}

/**
 * Static shape check: backreferences, and (when `strict`) repeated groups holding an unbounded
 * quantifier or an alternation. Returns the problem, or null.
 */
function backtrackingProblem(source: string, strict: boolean): string | null {
  const stack: Frame[] = [{ unbounded: false, alternation: false }];
  let i = 0;
  const atomEnd = (frame: Frame | null, at: number): number => {
    // After an atom (a character, class, escape or group): its quantifier, if any.
    const q = quantifierAt(source, at);
    const top = stack[stack.length - 1];
    if (frame) {
      if (q?.repeats && strict && (frame.unbounded || frame.alternation)) {
        const what = frame.unbounded ? 'an unbounded quantifier (as in "(a+)+")' : 'an alternation (as in "(a|ab)*")';
        throw new Error(`has a repeated group that contains ${what}, which can backtrack catastrophically in a pattern with lookarounds, Unicode-mode syntax or large counted repetitions; rewrite it without the nesting`);
      }
      top.unbounded ||= frame.unbounded || (q?.unbounded ?? false);
    } else if (q?.unbounded) {
      top.unbounded = true;
    }
    return at + (q?.length ?? 0);
  };
  try {
    while (i < source.length) {
      const c = source[i];
      if (c === '\\') {
        const next = source[i + 1] ?? '';
        if (/[1-9]/.test(next) || (next === 'k' && source[i + 2] === '<')) {
          return 'uses a backreference (\\1, \\k<name>), which is not supported: it can backtrack catastrophically';
        }
        i = atomEnd(null, i + 2);
      } else if (c === '[') {
        let j = i + 1;
        if (source[j] === '^') j++;
        if (source[j] === ']') j++;
        while (j < source.length && source[j] !== ']') j += source[j] === '\\' ? 2 : 1;
        i = atomEnd(null, j + 1);
      } else if (c === '(') {
        stack.push({ unbounded: false, alternation: false });
        // Skip the group's prefix: (?: (?= (?! (?<= (?<! (?<name>
        const m = /^\((\?(:|=|!|<=|<!|<[A-Za-z_][A-Za-z0-9_]*>))?/.exec(source.slice(i, i + 80));
        i += m ? m[0].length : 1;
      } else if (c === ')') {
        const frame = stack.length > 1 ? stack.pop()! : null;
        i = frame ? atomEnd(frame, i + 1) : i + 1;
      } else if (c === '|') {
        stack[stack.length - 1].alternation = true;
        i++;
      } else {
        i = atomEnd(null, i + 1);
      }
    }
  } catch (e) {
    return (e as Error).message;
  }
  return null;
}

/** Unicode-mode syntax that means something else (or nothing) without the `u` flag. */
const NEEDS_UNICODE = /\\[pP]\{|\\u\{/;

export function compileFileRegex(value: string): FileRegex | { problem: string } {
  const source = value.trim();
  if (source === '') return { problem: 'is empty' };
  // Raw paths are ASCII (percent-encoded), where both modes agree; without `u` the linear-time
  // fallback can run the pattern. Unicode mode only for patterns that need its syntax.
  const preferred = NEEDS_UNICODE.test(source) ? ['gu', 'g'] : ['g', 'gu'];
  let regex: RegExp | null = null;
  let firstError: Error | null = null;
  for (const flags of preferred) {
    try {
      regex = new RegExp(source, flags);
      break;
    } catch (e) {
      firstError ??= e as Error;
    }
  }
  if (!regex) {
    return { problem: `${JSON.stringify(source)} is not a valid regular expression: ${firstError!.message.replace(/^Invalid regular expression: /, '')}` };
  }
  const problem = backtrackingProblem(source, !runsInLinearTime(source, regex.flags));
  if (problem) return { problem: `${JSON.stringify(source)} ${problem}` };
  const groupNames = [...source.matchAll(/\(\?<([A-Za-z_][A-Za-z0-9_]*)>/g)].map((m) => m[1]);
  return { source, regex, groupNames };
}

/**
 * First non-empty match (PCRE_NOTEMPTY-like), searching the whole string. Returns the named
 * groups that took part in the match, as raw (still percent-encoded) strings.
 */
export function execFileRegex(r: FileRegex, input: string): Map<string, string> | null {
  const re = r.regex;
  re.lastIndex = 0;
  for (;;) {
    const m = re.exec(input);
    if (!m) return null;
    if (m[0] !== '') {
      const out = new Map<string, string>();
      for (const [k, v] of Object.entries(m.groups ?? {})) if (v !== undefined) out.set(k, v);
      return out;
    }
    if (re.lastIndex >= input.length) return null;
    re.lastIndex++;
  }
}
