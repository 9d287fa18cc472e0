/**
 * Rules from a manifest file, reloaded when the file changes. An invalid new manifest is
 * reported and the last good rules keep serving.
 */
import fs from 'node:fs';
import { compileRules, type CompiledRuleSet } from '../core/compile';
import { formatProblem, parseManifest, type Problem } from '../core/validate';

export interface LoadResult {
  readonly rules: CompiledRuleSet | null;
  readonly errors: Problem[];
  readonly warnings: Problem[];
}

export function loadManifestFile(file: string): LoadResult {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (e as Error).message;
    return { rules: null, errors: [{ index: null, type: null, domain: null, field: null, message: `cannot read ${file}: ${why}` }], warnings: [] };
  }
  const v = parseManifest(text);
  return { rules: v.errors.length ? null : compileRules(v.rules), errors: v.errors, warnings: v.warnings };
}

export interface ManifestWatcherEvents {
  onReload(rules: CompiledRuleSet, warnings: Problem[]): void;
  onInvalid(errors: Problem[]): void;
}

/** Polls the file's stat (robust to editors that replace files, and to network file systems). */
export class ManifestWatcher {
  private lastText: string | null = null;

  constructor(private readonly file: string, private readonly events: ManifestWatcherEvents, private readonly intervalMs = 500) {}

  start(initialText: string | null): void {
    this.lastText = initialText;
    fs.watchFile(this.file, { interval: this.intervalMs, persistent: false }, () => this.check());
  }

  stop(): void {
    fs.unwatchFile(this.file);
  }

  private check(): void {
    let text: string | null = null;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch {
      text = null;
    }
    if (text === this.lastText) return;
    this.lastText = text;
    const r = loadManifestFile(this.file);
    if (r.rules) this.events.onReload(r.rules, r.warnings);
    else this.events.onInvalid(r.errors);
  }
}

export { formatProblem };
