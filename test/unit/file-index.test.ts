/**
 * The file-v1 prefix index (lambda/core/files.ts) against the plain scan in precedence order: for
 * generated rule sets whose templates share first segments and literal prefixes, and generated
 * paths made of the same pieces, both give the same answer (the same rule wins, or none).
 */
import fc from 'fast-check';
import { compileFiles, handleFiles } from '../../lambda/core/files';
import type { FileV1Rule, FileV2Rule } from '../../lambda/core/schema';
import { request } from './helpers';

const DOMAIN = 'files.test';
// Pieces that make literal prefixes overlap: `/dl/pkg1` is a prefix of `/dl/pkg10`, `/dl` of `/dl2`.
const LITERALS = ['dl', 'dl2', 'pkg1', 'pkg10', 'pkg1-', 'rel', 'a.tar.gz', 'x', '%20y', 'v1.2'];
const EXPRESSIONS = ['{v}', '{os}', '{+rest}', '{file}.tar.gz', '{v}-{os}'];

const segment = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...LITERALS) }, { weight: 1, arbitrary: fc.constantFrom(...EXPRESSIONS) });
// Literal runs joined without a slash too (`/dl/pkg1{v}`), so prefixes end mid-segment.
const template = fc.array(fc.tuple(segment, fc.boolean()), { minLength: 1, maxLength: 4 })
  .map((parts) => parts.map(([s, glue], i) => (i > 0 && glue ? s : `/${s}`)).join(''));

// The outgoing URL uses exactly the incoming template's variables (a rule whose outgoing URL names an unbound variable never redirects).
const outgoingFor = (incoming: string, n: number) => `https://dl.example.com/r${n}${[...new Set([...incoming.matchAll(/\{\+?(\w+)\}/g)].map((m) => m[1]))].map((v) => `/{${v}}`).join('')}`;
const v1Rule = fc.tuple(template, fc.integer({ min: 0, max: 1_000 })).map(([incoming, n]): FileV1Rule => ({
  type: 'file-v1', domain: DOMAIN, 'incoming-path': incoming, 'outgoing-url': outgoingFor(incoming, n), 'package-id': `p${n}`,
}) as FileV1Rule);
const v2Rule = fc.tuple(fc.constantFrom('^/dl/(?<v>[^/]+)$', 'pkg1', '\\.tar\\.gz$', '^/rel/'), fc.integer({ min: 0, max: 1_000 })).map(([incoming, n]): FileV2Rule => ({
  type: 'file-v2', domain: DOMAIN, 'incoming-path': incoming, 'outgoing-url': `https://re.example.com/r${n}`, 'package-id': `q${n}`,
}) as FileV2Rule);

const pathPiece = fc.constantFrom(...LITERALS, '1.0', 'linux', 'b', '');
const path = fc.array(fc.tuple(pathPiece, fc.boolean()), { minLength: 1, maxLength: 5 })
  .map((parts) => parts.map(([s, glue], i) => (i > 0 && glue ? s : `/${s}`)).join(''));

const VALUES = ['1.0', 'linux', 'a/b', 'pkg1', '', 'x.tar'];
/** A path the template matches or nearly matches: each expression replaced by one of VALUES. */
const fill = (template: string, pick: number) => template.replace(/\{[^}]*\}/g, (_, i: number) => VALUES[(pick + i) % VALUES.length]);

/** Generated paths plus paths made from the rules' own templates (so many requests hit rules). */
const pathsFor = (rules: FileV1Rule[], random: string[], pick: number) => [...random, ...rules.slice(0, 15).map((r, i) => fill(r['incoming-path'], pick + i))];

describe('file-v1 prefix index', () => {
  test('answers as trying every rule in precedence order would (generated rules and paths)', () => {
    fc.assert(
      fc.property(fc.array(v1Rule, { minLength: 1, maxLength: 40 }), fc.array(v2Rule, { maxLength: 3 }), fc.array(path, { minLength: 1, maxLength: 30 }), fc.nat(), (v1, v2, random, pick) => {
        const indexed = compileFiles(v1, v2)!;
        const scan = compileFiles(v1, v2, 'scan')!;
        for (const p of pathsFor(v1, random, pick)) {
          const req = request(DOMAIN, p);
          expect({ path: p, answer: handleFiles(indexed, req) }).toEqual({ path: p, answer: handleFiles(scan, req) });
        }
      }),
      { numRuns: 400 },
    );
  });

  test('the generated cases do reach rules (the comparison is not all misses)', () => {
    // Guards the generator: if templates and paths stopped overlapping, the test above would pass vacuously.
    let hits = 0;
    fc.assert(
      fc.property(fc.array(v1Rule, { minLength: 1, maxLength: 40 }), fc.array(path, { minLength: 1, maxLength: 30 }), fc.nat(), (v1, random, pick) => {
        const indexed = compileFiles(v1, [])!;
        for (const p of pathsFor(v1, random, pick)) if (handleFiles(indexed, request(DOMAIN, p)) !== null) hits++;
      }),
      { numRuns: 200 },
    );
    expect(hits).toBeGreaterThan(600);
  });

  test('among thousands of rules under one first segment, the rule whose prefix fits wins', () => {
    const rules = Array.from({ length: 5_000 }, (_, k): FileV1Rule => ({
      type: 'file-v1', domain: DOMAIN, 'incoming-path': `/dl/pkg${k}/{version}/file.tar.gz`, 'outgoing-url': `https://dl.example.com/${k}/{version}`, 'package-id': `pkg${k}`,
    }) as FileV1Rule);
    const index = compileFiles(rules, [])!;
    for (const k of [0, 1, 10, 4_999]) {
      const r = handleFiles(index, request(DOMAIN, `/dl/pkg${k}/1.0/file.tar.gz`));
      expect(r !== null && r !== 'read-body' && r.decision.type === 'redirect' ? r.decision.location : null).toBe(`https://dl.example.com/${k}/1.0`);
    }
    expect(handleFiles(index, request(DOMAIN, '/dl/pkg5000/1.0/file.tar.gz'))).toBeNull();
  });
});
