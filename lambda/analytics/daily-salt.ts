/**
 * The visitor-id salt: a secret that changes every UTC day, is the same in every region on a
 * given day (so unique counts add up across regions), and is deleted within 48 hours (so a
 * visitor id can never be linked back to an address or to the same visitor on another day).
 *
 * A `DailySaltStore` is where the salts live: in memory for the local gateway
 * (lambda/local/daily-salt.ts), a DynamoDB table when deployed (docs/ANALYTICS.md, "The salt
 * store"). `DailySaltCache` is what a gateway instance uses per request: it holds today's salt
 * only, asks the store once per day, and degrades to "no visitor id" when the store fails.
 */

export interface DailySaltStore {
  /**
   * The secret salt of UTC day `day` (`YYYY-MM-DD`), created on first use; every caller gets the
   * same value for the same day. Rejects when the store cannot be reached.
   */
  saltFor(day: string): Promise<string>;
}

export const utcDay = (t: Date): string => t.toISOString().slice(0, 10);

export interface DailySaltCacheOptions {
  /** After a failed load, requests get no visitor id for this long before the store is asked again. Default 10 s. */
  readonly retryAfterMs?: number;
  /** Told once per failure streak; the message names the store's error, never request data. */
  readonly onError?: (message: string) => void;
  readonly now?: () => number;
}

export class DailySaltCache {
  private day = '';
  private salt: string | null = null;
  private loading: Promise<string | null> | null = null;
  private failedUntil = 0;
  private failing = false;

  constructor(private readonly store: DailySaltStore, private readonly opts: DailySaltCacheOptions = {}) {}

  /**
   * Today's salt, or null while the store is failing (events then carry no visitor id rather than
   * one that would not match other regions'). Concurrent callers share one load.
   */
  async current(at: Date = new Date()): Promise<string | null> {
    const day = utcDay(at);
    if (day === this.day && this.salt !== null) return this.salt;
    if (day !== this.day) {
      // Yesterday's salt leaves memory the moment the day changes.
      this.day = day;
      this.salt = null;
      this.loading = null;
      this.failedUntil = 0;
    }
    const now = this.opts.now?.() ?? Date.now();
    if (now < this.failedUntil) return null;
    this.loading ??= this.load(day);
    return this.loading;
  }

  private async load(day: string): Promise<string | null> {
    try {
      const salt = await this.store.saltFor(day);
      if (typeof salt !== 'string' || salt.length < 16) throw new Error('the store returned no usable salt');
      if (this.day === day) this.salt = salt;
      this.failing = false;
      return salt;
    } catch (e) {
      if (!this.failing) this.opts.onError?.(`visitor-id salt unavailable, events carry no visitor_id until it is: ${e instanceof Error ? e.message : String(e)}`);
      this.failing = true;
      this.failedUntil = (this.opts.now?.() ?? Date.now()) + (this.opts.retryAfterMs ?? 10_000);
      return null;
    } finally {
      if (this.day === day) this.loading = null;
    }
  }
}
