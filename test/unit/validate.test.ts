import { formatProblem, parseManifest, validateManifest, validateRule, type Problem } from '../../lambda/core/validate';
import fs from 'node:fs';
import { eventReference, ruleReference, withGeneratedSection } from '../../lambda/core/reference-docs';
import { RULE_TYPES, RULE_TYPE_NAMES, type RuleType } from '../../lambda/core/schema';

/** A minimal valid rule of every type. */
const VALID: Record<RuleType, Record<string, unknown>> = {
  'docker-v1': { type: 'docker-v1', domain: 'cr.example.com', 'repository-name': 'library/hello-world', registry: 'ghcr.io', 'package-id': 'p1' },
  'docker-v2': { type: 'docker-v2', domain: 'cr.example.com', pattern: 'library/*', 'rule-id': 'r1', registry: 'http://127.0.0.1:5000' },
  'file-v1': { type: 'file-v1', domain: 'get.example.com', 'incoming-path': '/{package}-{version}.tar.gz', 'outgoing-url': 'https://github.com/x/{package}/releases/download/v{version}/{package}.tar.gz', 'package-id': 'p2' },
  'file-v2': { type: 'file-v2', domain: 'get.example.com', 'incoming-path': '/dl/(?<version>[0-9.]+)', 'outgoing-url': 'https://x.test/{version}', 'package-id': 'p3' },
  'python-v1': { type: 'python-v1', domain: 'py.example.com', 'package-name': 'rocket', 'file-name': 'rocket-1.0.tar.gz', version: '1.0', 'backend-url': 'https://files.test/rocket-1.0.tar.gz', 'package-id': 'p4' },
  'catch-all-v1': { type: 'catch-all-v1', domain: 'dl.example.com', 'package-id': 'p5' },
  'telemetry-v1': { type: 'telemetry-v1', domain: 't.example.com', 'incoming-path': '/events', 'package-id': 'p6' },
  'pixel-v1': { type: 'pixel-v1', domain: 'static.example.com', 'incoming-path': '/a.png', 'package-id': null },
  'python-index-v1': { type: 'python-index-v1', domain: 'py.example.com', 'package-name': 'rocket', 'package-id': 'p7' },
  'npm-v1': { type: 'npm-v1', domain: 'npm.example.com', 'package-name': '@acme/*', 'package-id': 'p8' },
};

const errorsOf = (rule: Record<string, unknown>): Problem[] => validateManifest({ rules: [rule] }).errors;

describe('validateManifest', () => {
  test.each(RULE_TYPE_NAMES)('accepts a minimal %s rule with no warning', (type) => {
    const r = validateManifest({ rules: [VALID[type]] });
    expect(r.errors).toEqual([]);
    expect(r.warnings).toEqual([]);
    expect(r.rules).toHaveLength(1);
    expect(r.rules[0].type).toBe(type);
  });

  test.each(RULE_TYPE_NAMES)('%s: every required field, when missing, is reported by name', (type) => {
    const fields = RULE_TYPES[type].fields as Record<string, { required: boolean }>;
    for (const [name, spec] of Object.entries(fields)) {
      if (!spec.required) continue;
      const rule = { ...VALID[type] };
      delete rule[name];
      const errors = errorsOf(rule);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({ index: 0, type, field: name });
      expect(errors[0].message).toMatch(/is required; expected /);
    }
  });

  test.each(RULE_TYPE_NAMES)('%s: every field, given a value of the wrong JSON type, is reported', (type) => {
    const fields = RULE_TYPES[type].fields as Record<string, { expected: string }>;
    for (const name of Object.keys(fields)) {
      const wrong = name === 'always-proxy' || name === 'gpg-sig' || name === 'cache-seconds' ? 'yes' : 42;
      const errors = errorsOf({ ...VALID[type], [name]: wrong });
      expect(errors.map((e) => e.field)).toEqual([name]);
      expect(errors[0].message).toContain(`expected ${fields[name].expected}`);
    }
  });

  test('lists every problem of every rule, each with index, type, domain and field', () => {
    const r = validateManifest({
      rules: [
        VALID['docker-v1'],
        { type: 'file-v1', domain: 'a.test', 'incoming-path': '/{unclosed', 'package-id': 'x' },
        { type: 'docker-v2', domain: 'b.test', pattern: 'library/*,', 'rule-id': '', registry: 'ftp://x' },
        { type: 'nope', domain: 'c.test' },
        'not an object',
        { domain: 'd.test' },
      ],
    });
    const summary = r.errors.map((e) => [e.index, e.type, e.domain, e.field]);
    expect(summary).toEqual([
      [1, 'file-v1', 'a.test', 'incoming-path'],
      [1, 'file-v1', 'a.test', 'outgoing-url'],
      [2, 'docker-v2', 'b.test', 'pattern'],
      [2, 'docker-v2', 'b.test', 'rule-id'],
      [2, 'docker-v2', 'b.test', 'registry'],
      [3, 'nope', 'c.test', 'type'],
      [4, null, null, null],
      [5, null, 'd.test', 'type'],
    ]);
    expect(r.rules).toEqual([]); // strict: a bad manifest is rejected whole
    expect(formatProblem(r.errors[0])).toMatch(/^rule 1 \(file-v1, a\.test\), field "incoming-path": .*position/);
    expect(formatProblem(r.errors[5])).toContain('unknown rule type "nope"; expected one of: docker-v1, docker-v2');
  });

  test('manifest-level problems', () => {
    expect(validateManifest([]).errors[0].message).toMatch(/JSON object with a "rules" array, got an array/);
    expect(validateManifest({}).errors[0]).toMatchObject({ field: 'rules', message: expect.stringMatching(/is missing/) });
    expect(validateManifest({ rules: {} }).errors[0].message).toMatch(/must be an array/);
    expect(parseManifest('{"rules": [').errors[0].message).toMatch(/^not valid JSON/);
    expect(validateManifest({ rules: [], other: 1 }).errors).toEqual([]); // other top-level keys are ignored
  });

  test('unknown fields are warnings, informational Scarf fields are not', () => {
    const r = validateManifest({ rules: [{ ...VALID['file-v1'], 'backend-registry': 'x', owner: 'me', 'package-name': 'n' }] });
    expect(r.errors).toEqual([]);
    expect(r.warnings).toHaveLength(1);
    expect(r.warnings[0]).toMatchObject({ index: 0, field: 'backend-registry' });
    expect(r.warnings[0].message).toMatch(/unknown field, ignored/);
  });

  test('null: allowed for optional fields and outgoing-url, not for required ones', () => {
    expect(errorsOf({ ...VALID['file-v1'], 'outgoing-url': null })).toEqual([]);
    expect(errorsOf({ ...VALID['python-v1'], 'hash-value': null, 'gpg-sig': null, 'requires-python': null })).toEqual([]);
    expect(errorsOf({ ...VALID['docker-v1'], 'package-id': null })[0]).toMatchObject({ field: 'package-id', message: expect.stringMatching(/must not be null/) });
    expect(errorsOf({ ...VALID['pixel-v1'], 'package-id': 'abc' })).toEqual([]);
  });

  test('field-specific checks', () => {
    const cases: Array<[RuleType, string, unknown, RegExp]> = [
      ['docker-v1', 'domain', 'not a host!', /not a host name|not a valid host name/],
      ['docker-v1', 'domain', 'x.test:99999', /out of range/],
      ['docker-v1', 'registry', 'http://user:pw@reg.test', /credentials/],
      ['docker-v1', 'registry', 'ftp://reg.test', /only http and https/],
      ['docker-v1', 'repository-name', 'library//x', /empty path segment/],
      ['docker-v1', 'mode', 'sometimes', /"auto" \| "redirect" \| "proxy"/],
      ['docker-v2', 'pattern', 'a\\b', /must escape/],
      ['docker-v2', 'pattern', 'library/', /trailing/],
      ['docker-v2', 'pattern', 'lib{a,b', /unclosed/],
      ['file-v1', 'incoming-path', '/a b', /./],
      ['file-v1', 'outgoing-url', 'https://x/{a', /./],
      ['file-v2', 'incoming-path', '/(?<v>[0-9+', /not a valid regular expression/],
      ['file-v2', 'incoming-path', '   ', /is empty/],
      ['python-v1', 'backend-url', '/relative/file.tar.gz', /not an absolute URL/],
      ['python-v1', 'hash-value', { type: 'sha256' }, /"hash" must be a hex digest/],
      ['python-v1', 'file-name', ' ', /is empty/],
      ['telemetry-v1', 'incoming-path', 'events', /must start with "\/"/],
      ['telemetry-v1', 'access-tokens', ['ok', 3], /item 1 is number 3/],
      ['pixel-v1', 'incoming-path', 'a.png', /must start with "\/"/],
      ['python-v1', 'yanked', 1, /true, false or a reason string/],
      ['python-v1', 'core-metadata', { type: 'sha256', hash: 'xyz' }, /"hash" must be a hex digest/],
      ['python-index-v1', 'package-name', 'rocket launcher', /not a Python project name/],
      ['python-index-v1', 'package-name', '-rocket', /not a Python project name/],
      ['python-index-v1', 'backend-simple-index-url', 'pypi.org/simple', /not an absolute URL/],
      ['python-index-v1', 'cache-seconds', -1, /0 to 86400/],
      ['python-index-v1', 'cache-seconds', 1.5, /0 to 86400/],
      ['npm-v1', 'package-name', '@acme', /write a scoped package as "@scope\/name"/],
      ['npm-v1', 'package-name', 'acme/rocket', /write a scoped package/],
      ['npm-v1', 'package-name', '.hidden', /not a valid npm package name/],
      ['npm-v1', 'package-name', '@ac me/x', /not a valid npm scope/],
      ['npm-v1', 'package-name', '@acme/ro cket', /not a valid npm package name/],
      ['npm-v1', 'registry', 'ftp://registry.test', /only http and https/],
    ];
    for (const [type, field, value, message] of cases) {
      const errors = errorsOf({ ...VALID[type], [field]: value });
      expect({ type, field, errors: errors.map((e) => e.field) }).toEqual({ type, field, errors: [field] });
      expect(errors[0].message).toMatch(message);
    }
  });

  test('domains are normalised to lower case', () => {
    const r = validateManifest({ rules: [{ ...VALID['catch-all-v1'], domain: 'DL.Example.COM' }] });
    expect(r.rules[0].domain).toBe('dl.example.com');
  });

  test('warns about rules that can never redirect, conflicting modes and duplicates', () => {
    const r = validateManifest({
      rules: [
        { ...VALID['file-v1'], 'incoming-path': '/{a}', 'outgoing-url': 'https://x/{a}/{b}' },
        { ...VALID['docker-v1'], 'always-proxy': true, mode: 'redirect' },
        VALID['docker-v1'],
        VALID['python-v1'],
        VALID['python-v1'],
        { ...VALID['python-v1'], 'package-name': 'ROCKET' },
        VALID['npm-v1'],
        { ...VALID['npm-v1'], 'package-name': '@ACME/*' },
        VALID['python-index-v1'],
        { ...VALID['python-index-v1'], 'package-name': 'ROCKET' },
      ],
    });
    expect(r.errors).toEqual([]);
    expect(r.warnings.map((w) => [w.index, w.field, w.message])).toEqual([
      [0, 'outgoing-url', expect.stringMatching(/uses \{b\}, which incoming-path never binds/)],
      [1, 'mode', expect.stringMatching(/conflicts with always-proxy/)],
      [2, null, expect.stringMatching(/also served by rule 1; the earlier rule wins/)],
      [4, null, expect.stringMatching(/also listed by rule 3; this later rule wins/)],
      [5, null, expect.stringMatching(/of ROCKET is also listed by rule 3/)],
      [7, null, expect.stringMatching(/@acme\/\* is also served by rule 6; this later rule wins/)],
      [9, null, expect.stringMatching(/project rocket is also served by rule 8; this later rule wins/)],
    ]);
  });
});

test('warns that mode "redirect" cannot work where the gateway answers the registry challenge (several registries or renames)', () => {
  const r = validateManifest({
    rules: [
      { ...VALID['docker-v1'], mode: 'redirect' },
      { ...VALID['docker-v1'], 'repository-name': 'acme/other', registry: 'docker.io', mode: 'redirect' },
      { ...VALID['docker-v1'], domain: 'renamed.example.com', 'upstream-repository-name': 'acme/renamed', mode: 'redirect' },
      // One registry (written two ways), no rename: redirects work.
      { ...VALID['docker-v1'], domain: 'one.example.com', registry: 'docker.io', mode: 'redirect' },
      { type: 'docker-v2', domain: 'one.example.com', pattern: 'library/*', 'rule-id': 'lib', registry: 'registry.hub.docker.com', mode: 'redirect' },
    ],
  });
  expect(r.errors).toEqual([]);
  expect(r.warnings.map((w) => [w.index, w.field])).toEqual([[0, 'mode'], [1, 'mode'], [2, 'mode']]);
  expect(r.warnings[0].message).toMatch(/several registries or renames repositories/);
});

describe('validateRule', () => {
  test('never throws on hostile values', () => {
    const hostile: unknown[] = [null, 0, [], 'x', { type: null }, { type: '__proto__' }, { type: 'file-v1', domain: {}, 'incoming-path': [], 'outgoing-url': {}, 'package-id': [] }];
    for (const v of hostile) expect(() => validateRule(v, 0)).not.toThrow();
    expect(validateRule({ type: 'constructor' }, 0).errors[0].message).toMatch(/unknown rule type/);
  });
});

describe('reference docs', () => {
  test('docs/RULES.md and docs/EVENTS.md match the schemas (run `npm run docs` after changing a schema)', () => {
    for (const [file, content] of [['docs/RULES.md', ruleReference()], ['docs/EVENTS.md', eventReference()]] as const) {
      const doc = fs.readFileSync(`${__dirname}/../../${file}`, 'utf8');
      expect({ file, upToDate: withGeneratedSection(doc, content) === doc }).toEqual({ file, upToDate: true });
    }
  });
});
