/**
 * The local gateway's cache of upstream documents fetched for `fetch` decisions (Python project
 * pages, npm packuments): bounded in total bytes and per entry, each entry kept for the seconds
 * its rule allows, least recently used evicted first. It holds the upstream's decoded bytes,
 * never an answer to a client: answers depend on the request (its host, its Accept) and are
 * rebuilt from these bytes by the engine's pure transforms.
 */
import type { UpstreamHead } from '../core/fetch';

export interface CachedUpstream {
  readonly head: UpstreamHead;
  readonly body: Uint8Array;
}

interface Entry extends CachedUpstream {
  readonly expiresAt: number;
  readonly size: number;
}

export interface UpstreamCacheOptions {
  /** Total bytes held. */
  readonly maxBytes: number;
  /** Larger documents are not cached. */
  readonly maxEntryBytes: number;
}

export const DEFAULT_UPSTREAM_CACHE: UpstreamCacheOptions = { maxBytes: 64 * 1024 * 1024, maxEntryBytes: 8 * 1024 * 1024 };

export class UpstreamCache {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;

  constructor(readonly options: UpstreamCacheOptions = DEFAULT_UPSTREAM_CACHE, private readonly now: () => number = Date.now) {}

  get(key: string): CachedUpstream | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expiresAt <= this.now()) {
      this.delete(key, e);
      return undefined;
    }
    // Map order is recency order: move to the end.
    this.entries.delete(key);
    this.entries.set(key, e);
    return e;
  }

  /** Stores a document for `seconds`; ignored when caching is off or the document is too large. */
  set(key: string, value: CachedUpstream, seconds: number): void {
    const size = value.body.length + key.length + 512;
    if (seconds <= 0 || size > this.options.maxEntryBytes) return;
    const old = this.entries.get(key);
    if (old) this.delete(key, old);
    this.entries.set(key, { ...value, expiresAt: this.now() + seconds * 1000, size });
    this.bytes += size;
    for (const [k, e] of this.entries) {
      if (this.bytes <= this.options.maxBytes) break;
      this.delete(k, e);
    }
  }

  get size(): { entries: number; bytes: number } {
    return { entries: this.entries.size, bytes: this.bytes };
  }

  private delete(key: string, e: Entry): void {
    this.entries.delete(key);
    this.bytes -= e.size;
  }
}
