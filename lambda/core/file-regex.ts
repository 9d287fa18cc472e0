/**
 * file-v2 regular expressions. Scarf compiles them as PCRE in UTF-8 mode; JavaScript's RegExp
 * accepts the same syntax for what manifests use (classes, groups, named groups `(?<n>...)`,
 * lazy and greedy quantifiers). PCRE-only constructs (possessive quantifiers, `\A`, `\z`,
 * atomic groups) are rejected with a clear message.
 */
export interface FileRegex {
  readonly source: string;
  readonly regex: RegExp;
  readonly groupNames: readonly string[];
}

export function compileFileRegex(value: string): FileRegex | { problem: string } {
  const source = value.trim();
  if (source === '') return { problem: 'is empty' };
  let regex: RegExp;
  try {
    regex = new RegExp(source, 'gu');
  } catch {
    try {
      // PCRE tolerates identity escapes such as `\-` or `\/` outside classes; non-unicode mode does too.
      regex = new RegExp(source, 'g');
    } catch (e) {
      return { problem: `${JSON.stringify(source)} is not a valid regular expression: ${(e as Error).message.replace(/^Invalid regular expression: /, '')}` };
    }
  }
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
