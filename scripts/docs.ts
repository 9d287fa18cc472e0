/** Rewrites the generated reference sections of docs/RULES.md, docs/EVENTS.md and docs/ANALYTICS.md from the schemas and queries. */
import fs from 'node:fs';
import path from 'node:path';
import { eventReference, ruleReference, withGeneratedSection } from '../lambda/core/reference-docs';
import { analyticsReference } from '../lambda/analytics/analytics-docs';

const root = path.resolve(__dirname, '..');
const generated = [['docs/RULES.md', ruleReference()], ['docs/EVENTS.md', eventReference()], ['docs/ANALYTICS.md', analyticsReference()]] as const;
for (const [file, content] of generated) {
  const p = path.join(root, file);
  const before = fs.readFileSync(p, 'utf8');
  const after = withGeneratedSection(before, content);
  if (after !== before) fs.writeFileSync(p, after);
  console.log(`${file}: ${after === before ? 'up to date' : 'updated'}`);
}
