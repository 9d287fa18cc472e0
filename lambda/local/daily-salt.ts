/**
 * The local gateway's visitor-id salt: random, held in memory only, replaced at every UTC
 * midnight, so ids of one day cannot be linked to another day or back to an address.
 */
import { randomBytes } from 'node:crypto';

export class DailySalt {
  private day = '';
  private salt = '';

  current(now: Date = new Date()): string {
    const day = now.toISOString().slice(0, 10);
    if (day !== this.day) {
      this.day = day;
      this.salt = randomBytes(32).toString('base64');
    }
    return this.salt;
  }
}
