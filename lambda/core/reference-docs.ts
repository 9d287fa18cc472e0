/**
 * Reference documentation generated from the schemas, so docs/RULES.md and docs/EVENTS.md cannot
 * drift from what the code accepts and writes. `npm run docs` rewrites the generated sections; a
 * unit test fails when they are stale.
 */
import { RULE_TYPES, type FieldSpec } from './schema';
import { EVENT_FIELDS } from './events';

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

export function ruleReference(): string {
  const out: string[] = [];
  for (const [type, spec] of Object.entries(RULE_TYPES)) {
    out.push(`### \`${type}\`\n\n${spec.summary}\n\n| field | value | required | meaning |\n|---|---|---|---|`);
    for (const [name, f] of Object.entries(spec.fields as Record<string, FieldSpec>)) {
      const req = f.required ? (f.nullable ? 'yes (may be `null`)' : 'yes') : f.default !== undefined ? `no (default \`${JSON.stringify(f.default)}\`)` : 'no';
      out.push(`| \`${name}\` | ${cell(f.expected)} | ${req} | ${cell(f.doc)} |`);
    }
    out.push('');
  }
  return out.join('\n');
}

export function eventReference(): string {
  const out = ['| field | type | nullable | meaning |', '|---|---|---|---|'];
  for (const [name, f] of Object.entries(EVENT_FIELDS)) out.push(`| \`${name}\` | ${f.type} | ${f.nullable ? 'yes' : 'no'} | ${cell(f.doc)} |`);
  return `${out.join('\n')}\n`;
}

export const GENERATED_BEGIN = '<!-- generated:begin (npm run docs) -->';
export const GENERATED_END = '<!-- generated:end -->';

/** Replaces the generated section of a document; throws when the markers are missing. */
export function withGeneratedSection(doc: string, content: string): string {
  const a = doc.indexOf(GENERATED_BEGIN);
  const b = doc.indexOf(GENERATED_END);
  if (a < 0 || b < a) throw new Error('generated-section markers not found');
  return `${doc.slice(0, a + GENERATED_BEGIN.length)}\n${content}${doc.slice(b)}`;
}
