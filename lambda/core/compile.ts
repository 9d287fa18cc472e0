/**
 * Compiling a rule set: once per rule change, into per-domain indexes, so that a request costs
 * a host lookup and a few hash lookups, never a scan of every rule.
 */
import type { CatchAllV1Rule, DockerV1Rule, DockerV2Rule, FileV1Rule, FileV2Rule, NpmV1Rule, PixelV1Rule, PythonIndexV1Rule, PythonV1Rule, Rule, TelemetryV1Rule } from './schema';
import { compileDocker, type DockerIndex } from './docker';
import { compileCatchAll, compileFiles, type CatchAllCompiled, type FileIndex } from './files';
import { compilePython, type PythonIndex } from './python';
import { compileTelemetry, type TelemetryIndex } from './telemetry';
import { compilePixels, type PixelIndex } from './pixel';
import { compileNpm, type NpmIndex } from './npm';

/**
 * Everything one domain serves. Precedence (engine.ts): docker, pixel, telemetry, npm, file-v1,
 * file-v2, python (python-v1 projects, then named python-index-v1 projects, then `*`),
 * catch-all. Scarf's order, except that telemetry and npm come before file rules so a broad
 * file template cannot make them unreachable (each takes only its own exact paths).
 */
export interface DomainIndex {
  readonly domain: string;
  /** `domain` without a port: the domain events record. */
  readonly hostName: string;
  readonly docker: DockerIndex | null;
  readonly pixels: PixelIndex | null;
  readonly telemetry: TelemetryIndex | null;
  readonly npm: NpmIndex | null;
  readonly files: FileIndex | null;
  readonly python: PythonIndex | null;
  readonly catchAll: CatchAllCompiled | null;
  readonly ruleCount: number;
}

export interface CompiledRuleSet {
  /** By domain as written in rules (lower case, with a port only if the rule names one). */
  readonly domains: ReadonlyMap<string, DomainIndex>;
  readonly ruleCount: number;
}

type ByType = { [T in Rule['type']]: Extract<Rule, { type: T }>[] };

/** Rules must have passed validation (validate.ts). */
export function compileRules(rules: readonly Rule[]): CompiledRuleSet {
  const grouped = new Map<string, ByType>();
  for (const r of rules) {
    const d = r.domain.toLowerCase();
    let g = grouped.get(d);
    if (!g) {
      g = { 'docker-v1': [], 'docker-v2': [], 'file-v1': [], 'file-v2': [], 'python-v1': [], 'catch-all-v1': [], 'telemetry-v1': [], 'pixel-v1': [], 'python-index-v1': [], 'npm-v1': [] };
      grouped.set(d, g);
    }
    (g[r.type] as Rule[]).push(r);
  }
  const domains = new Map<string, DomainIndex>();
  for (const [domain, g] of grouped) {
    domains.set(domain, {
      domain,
      hostName: domain.replace(/:\d+$/, ''),
      docker: compileDocker(g['docker-v1'] as DockerV1Rule[], g['docker-v2'] as DockerV2Rule[]),
      pixels: compilePixels(g['pixel-v1'] as PixelV1Rule[]),
      telemetry: compileTelemetry(g['telemetry-v1'] as TelemetryV1Rule[]),
      npm: compileNpm(g['npm-v1'] as NpmV1Rule[]),
      files: compileFiles(g['file-v1'] as FileV1Rule[], g['file-v2'] as FileV2Rule[]),
      python: compilePython(g['python-v1'] as PythonV1Rule[], g['python-index-v1'] as PythonIndexV1Rule[]),
      catchAll: compileCatchAll(g['catch-all-v1'] as CatchAllV1Rule[]),
      ruleCount: Object.values(g).reduce((n, list) => n + list.length, 0),
    });
  }
  return { domains, ruleCount: rules.length };
}

/** The domain index for a request host: `host:port` if a rule names that port, else the host without its port. */
export function findDomain(set: CompiledRuleSet, host: string): DomainIndex | undefined {
  const exact = set.domains.get(host);
  if (exact) return exact;
  // Most hosts carry no port: skip the regular expression for them.
  if (!host.includes(':')) return undefined;
  const m = /^(.*):\d+$/.exec(host);
  return m ? set.domains.get(m[1]) : undefined;
}
