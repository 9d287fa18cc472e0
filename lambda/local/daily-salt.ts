/**
 * The local gateway's visitor-id salts: random, held in memory only, one per UTC day. Salts of
 * days before yesterday are deleted whenever a salt is asked for, so no salt outlives 48 hours
 * in a running process (and none survives a restart).
 */
import { randomBytes } from 'node:crypto';
import type { DailySaltStore } from '../analytics/daily-salt';

export class InMemorySaltStore implements DailySaltStore {
  private readonly salts = new Map<string, string>();

  async saltFor(day: string): Promise<string> {
    if (!/^\d{4}-\d{2}-\d{2}$/.test(day)) throw new Error(`salt day must be YYYY-MM-DD, got ${JSON.stringify(day)}`);
    const oldest = new Date(Date.parse(`${day}T00:00:00Z`) - 86_400_000).toISOString().slice(0, 10);
    for (const d of this.salts.keys()) if (d < oldest) this.salts.delete(d);
    let salt = this.salts.get(day);
    if (!salt) {
      salt = randomBytes(32).toString('base64');
      this.salts.set(day, salt);
    }
    return salt;
  }

  /** Days whose salt is held (for tests and diagnostics; never the salts). */
  days(): string[] {
    return [...this.salts.keys()].sort();
  }
}
