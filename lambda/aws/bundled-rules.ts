/**
 * The rule source shipped with the gateway function: the rules given to the construct at deploy
 * time, validated at synth, written next to the bundle as `rules.json`, compiled once per cold
 * start. Changing them means a deploy. Run-time rule changes reach a deployed gateway only once
 * the DynamoDB rule store (the runtime-rules work) is plugged in through the RuleSource seam.
 */
import fs from 'node:fs';
import path from 'node:path';
import { compileRules, type CompiledRuleSet } from '../core/compile';
import { formatProblem, validateManifest } from '../core/validate';
import type { RuleSource } from './ports';

/** File name of the rules next to the function's bundle. */
export const BUNDLED_RULES_FILE = 'rules.json';

export class BundledRuleSource implements RuleSource {
  private readonly compiled: CompiledRuleSet;

  /** `manifest` is a parsed manifest document (`{"rules": [...]}`). */
  constructor(manifest: unknown) {
    const v = validateManifest(manifest);
    if (v.errors.length) throw new Error(`bundled rules are invalid: ${v.errors.map(formatProblem).join('; ')}`);
    this.compiled = compileRules(v.rules);
  }

  static fromFile(file: string = path.join(__dirname, BUNDLED_RULES_FILE)): BundledRuleSource {
    return new BundledRuleSource(JSON.parse(fs.readFileSync(file, 'utf8')));
  }

  rulesFor(): CompiledRuleSet {
    return this.compiled;
  }

  isStale(): boolean {
    return false;
  }
}
