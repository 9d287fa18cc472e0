/**
 * Manifest validation: every problem of every rule, each naming the rule (index, type, domain),
 * the field and what was expected. Unknown fields are warnings. The same checks run on every
 * write path (manifest files, the CDK construct at synth time, the `rules` CLI).
 */
import { RULE_TYPES, RULE_TYPE_NAMES, Rule, RuleType, FieldSpec, type DockerV1Rule, type DockerV2Rule } from './schema';
import { parseTemplate } from './uri-template';
import { usesGatewayRealm } from './docker';
import { normalizeProjectName } from './simple-index';

export interface Problem {
  /** Index of the rule in the manifest's `rules` array; null for manifest-level problems. */
  readonly index: number | null;
  readonly type: string | null;
  readonly domain: string | null;
  readonly field: string | null;
  readonly message: string;
}

export interface ValidationResult {
  readonly rules: Rule[];
  readonly errors: Problem[];
  readonly warnings: Problem[];
}

export class ManifestError extends Error {
  constructor(readonly errors: Problem[], readonly warnings: Problem[] = [], source?: string) {
    super(`${source ? `${source}: ` : ''}invalid manifest, ${errors.length} problem${errors.length === 1 ? '' : 's'}:\n${errors.map((p) => `  - ${formatProblem(p)}`).join('\n')}`);
    this.name = 'ManifestError';
  }
}

export function formatProblem(p: Problem): string {
  const where: string[] = [];
  if (p.index !== null) {
    const what = [p.type, p.domain].filter((x) => x !== null && x !== '').join(', ');
    where.push(`rule ${p.index}${what ? ` (${what})` : ''}`);
  }
  if (p.field !== null) where.push(`field "${p.field}"`);
  return where.length ? `${where.join(', ')}: ${p.message}` : p.message;
}

const typeList = RULE_TYPE_NAMES.join(', ');

/** Validates one rule object; `index` is used in messages only. */
export function validateRule(raw: unknown, index: number): { rule: Rule | null; errors: Problem[]; warnings: Problem[] } {
  const errors: Problem[] = [];
  const warnings: Problem[] = [];
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    errors.push({ index, type: null, domain: null, field: null, message: `a rule must be a JSON object, got ${raw === null ? 'null' : Array.isArray(raw) ? 'an array' : typeof raw}` });
    return { rule: null, errors, warnings };
  }
  const obj = raw as Record<string, unknown>;
  const domain = typeof obj.domain === 'string' ? obj.domain : null;
  const type = obj.type;
  if (typeof type !== 'string') {
    errors.push({ index, type: null, domain, field: 'type', message: `missing or not a string; expected one of: ${typeList}` });
    return { rule: null, errors, warnings };
  }
  if (!Object.prototype.hasOwnProperty.call(RULE_TYPES, type)) {
    errors.push({ index, type, domain, field: 'type', message: `unknown rule type ${JSON.stringify(type)}; expected one of: ${typeList}` });
    return { rule: null, errors, warnings };
  }
  const spec = RULE_TYPES[type as RuleType].fields as Record<string, FieldSpec>;
  const at = (field: string | null, message: string): Problem => ({ index, type, domain, field, message });
  const out: Record<string, unknown> = { type };
  for (const [name, f] of Object.entries(spec)) {
    const present = Object.prototype.hasOwnProperty.call(obj, name);
    const v = obj[name];
    if (!present) {
      if (f.required) errors.push(at(name, `is required; expected ${f.expected}`));
      continue;
    }
    if (v === null) {
      if (f.nullable) out[name] = null;
      else errors.push(at(name, `must not be null; expected ${f.expected}`));
      continue;
    }
    const r = f.check(v);
    if (r.ok) out[name] = r.value;
    else errors.push(at(name, `${r.problem}; expected ${f.expected}`));
  }
  for (const name of Object.keys(obj)) {
    if (name !== 'type' && !Object.prototype.hasOwnProperty.call(spec, name)) {
      warnings.push(at(name, `unknown field, ignored (fields of ${type}: ${Object.keys(spec).join(', ')})`));
    }
  }
  if (errors.length === 0) warnings.push(...semanticWarnings(out as Rule, at));
  return { rule: errors.length ? null : (out as Rule), errors, warnings };
}

/** Rules that load but cannot work as the author probably meant. */
function semanticWarnings(rule: Rule, at: (field: string | null, message: string) => Problem): Problem[] {
  const out: Problem[] = [];
  if (rule.type === 'file-v1' && rule['outgoing-url'] != null) {
    const inVars = new Set(parseTemplate(rule['incoming-path']).variableNames);
    const missing = parseTemplate(rule['outgoing-url']).variableNames.filter((v) => !inVars.has(v));
    if (missing.length) out.push(at('outgoing-url', `uses ${missing.map((m) => `{${m}}`).join(', ')}, which incoming-path never binds: this rule can never redirect`));
  }
  if ((rule.type === 'docker-v1' || rule.type === 'docker-v2') && rule['always-proxy'] && rule.mode && rule.mode !== 'proxy') {
    out.push(at('mode', `"${rule.mode}" conflicts with always-proxy: true; always-proxy wins`));
  }
  return out;
}

/**
 * Validates a manifest document (already parsed JSON). Never throws for bad input: problems are
 * returned. Cross-rule problems (duplicates) are warnings, resolved the way Scarf resolves them.
 */
export function validateManifest(doc: unknown): ValidationResult {
  const errors: Problem[] = [];
  const warnings: Problem[] = [];
  const rules: Rule[] = [];
  const top = (message: string): Problem => ({ index: null, type: null, domain: null, field: null, message });
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    errors.push(top(`a manifest must be a JSON object with a "rules" array, got ${doc === null ? 'null' : Array.isArray(doc) ? 'an array' : typeof doc}`));
    return { rules, errors, warnings };
  }
  const list = (doc as Record<string, unknown>).rules;
  if (!Array.isArray(list)) {
    errors.push({ ...top(`${list === undefined ? 'is missing' : 'must be an array'}; expected {"rules": [ ... ]}`), field: 'rules' });
    return { rules, errors, warnings };
  }
  list.forEach((raw, index) => {
    const r = validateRule(raw, index);
    errors.push(...r.errors);
    warnings.push(...r.warnings);
    if (r.rule) rules.push(r.rule);
  });
  if (errors.length === 0) warnings.push(...duplicateWarnings(rules), ...realmWarnings(rules));
  return { rules: errors.length ? [] : rules, errors, warnings };
}

function duplicateWarnings(rules: Rule[]): Problem[] {
  const out: Problem[] = [];
  const seen = new Map<string, number>();
  rules.forEach((r, index) => {
    let key: string | null = null;
    let what = '';
    if (r.type === 'docker-v1') {
      key = `docker|${r.domain}|${r['repository-name']}`;
      what = `image ${r['repository-name']} is also served by rule %d; the earlier rule wins`;
    } else if (r.type === 'python-v1') {
      key = `python|${r.domain}|${normalizeProjectName(r['package-name'])}|${r['file-name']}`;
      what = `file ${r['file-name']} of ${r['package-name']} is also listed by rule %d; this later rule wins`;
    } else if (r.type === 'python-index-v1') {
      const name = r['package-name'] === '*' ? '*' : normalizeProjectName(r['package-name']);
      key = `python-index|${r.domain}|${name}`;
      what = `project ${name} is also served by rule %d; this later rule wins`;
    } else if (r.type === 'npm-v1') {
      const name = r['package-name'].endsWith('/*') ? r['package-name'].toLowerCase() : r['package-name'];
      key = `npm|${r.domain}|${name}`;
      what = `${name} is also served by rule %d; this later rule wins`;
    } else if (r.type === 'file-v1' || r.type === 'file-v2') {
      key = `${r.type}|${r.domain}|${r['incoming-path']}`;
      what = `the same incoming-path as rule %d; this later rule wins`;
    } else if (r.type === 'telemetry-v1' || r.type === 'pixel-v1') {
      key = `${r.type}|${r.domain}|${r['incoming-path']}`;
      what = `the same incoming-path as rule %d; this later rule wins`;
    } else if (r.type === 'catch-all-v1') {
      key = `catch-all|${r.domain}`;
      what = `a second catch-all for this domain (first: rule %d); this later rule wins`;
    }
    if (key === null) return;
    const prev = seen.get(key);
    if (prev !== undefined) out.push({ index, type: r.type, domain: r.domain, field: null, message: what.replace('%d', String(prev)) });
    else seen.set(key, index);
  });
  return out;
}

/** `mode: "redirect"` cannot work where the gateway answers the registry challenge itself. */
function realmWarnings(rules: Rule[]): Problem[] {
  const byDomain = new Map<string, Array<{ rule: DockerV1Rule | DockerV2Rule; index: number }>>();
  rules.forEach((rule, index) => {
    if (rule.type !== 'docker-v1' && rule.type !== 'docker-v2') return;
    const d = rule.domain.toLowerCase();
    byDomain.set(d, [...(byDomain.get(d) ?? []), { rule, index }]);
  });
  const out: Problem[] = [];
  for (const list of byDomain.values()) {
    if (!usesGatewayRealm(list.map((x) => x.rule))) continue;
    for (const { rule, index } of list) {
      if (rule.mode !== 'redirect') continue;
      out.push({
        index, type: rule.type, domain: rule.domain, field: 'mode',
        message: '"redirect" cannot work on a domain that fronts several registries or renames repositories: the gateway answers the token challenge itself there and proxies every request',
      });
    }
  }
  return out;
}

/** Parses manifest text (JSON) and validates it. */
export function parseManifest(text: string): ValidationResult {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return { rules: [], errors: [{ index: null, type: null, domain: null, field: null, message: `not valid JSON: ${(e as Error).message}` }], warnings: [] };
  }
  return validateManifest(doc);
}
