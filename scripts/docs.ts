/** Rewrites the generated reference sections of docs/RULES.md and docs/EVENTS.md from the schemas. */
import fs from 'node:fs';
import path from 'node:path';
import { eventReference, ruleReference, withGeneratedSection } from '../lambda/core/reference-docs';

const root = path.resolve(__dirname, '..');
for (const [file, content] of [['docs/RULES.md', ruleReference()], ['docs/EVENTS.md', eventReference()]] as const) {
  const p = path.join(root, file);
  const before = fs.readFileSync(p, 'utf8');
  const after = withGeneratedSection(before, content);
  if (after !== before) fs.writeFileSync(p, after);
  console.log(`${file}: ${after === before ? 'up to date' : 'updated'}`);
}
