/**
 * Local event sinks: newline-delimited JSON laid out like the S3 data, `DIR/dt=YYYY-MM-DD/`, or
 * stdout.
 *
 * `write()` only serializes and queues; the lines are written in batches, one write per day file
 * for whatever queued up in the last 10 ms (well within the contract's 1 s), so under load one
 * write and one check of the file carry hundreds of lines. Order is kept: a line is never written
 * before one queued earlier.
 *
 * The NDJSON sink survives a failing disk or directory (removed, replaced by a file, unwritable,
 * full): the request path never waits for it, failed writes are retried with backoff (reopening
 * the file, recreating the directory), a warning is logged once per failure episode (no event
 * contents), and memory stays bounded: at most `maxBufferedEvents` events and `maxBufferedBytes`
 * are held; past that the NEWEST events are dropped and counted. Newest, not oldest, because
 * what is on disk then stays one gap-free stretch in time order (readers that tail the files
 * never see a hole open behind them), the drop starts exactly when the buffer filled (the warning
 * says when), and the queue's head, which a write may be busy with, is never touched. The same
 * choice as the Firehose sink ("buffer-full").
 */
import fs from 'node:fs';
import path from 'node:path';
import type { GatewayEvent } from '../core/events';

export interface EventSinkStats {
  /** Events on disk (or handed to stdout). */
  written: number;
  /** Of those, events written late: queued while writing failed, and written on a later attempt. */
  retried: number;
  /** Events never written: over the memory cap while writes failed, or still failing at close. */
  dropped: number;
  /** Write attempts that failed (open, mkdir or write errors). */
  failedWrites: number;
  /** Events and bytes queued now. */
  buffered: number;
  bufferedBytes: number;
}

export interface EventSink {
  write(events: readonly GatewayEvent[]): void;
  /** Flushes and closes; the sink takes no more events. */
  close(): Promise<void>;
  stats?(): EventSinkStats;
}

export interface NdjsonSinkOptions {
  /** Most events held in memory while they cannot be written. Default 100,000. */
  readonly maxBufferedEvents?: number;
  /** Most bytes of NDJSON held in memory (counted in UTF-16 code units, as held). Default 64 MiB. */
  readonly maxBufferedBytes?: number;
  /**
   * How long a line may wait for others before a write, so that under load one write (and one
   * check that the file is still there) carries hundreds of lines. Default 10 ms.
   */
  readonly flushDelayMs?: number;
  /** Backoff between attempts while writing fails: doubles from `retryBaseMs` up to `retryMaxMs`. Defaults 100 ms, 5 s. */
  readonly retryBaseMs?: number;
  readonly retryMaxMs?: number;
  /** How long `close()` keeps retrying a failing directory before counting what is left as dropped. Default 2 s. */
  readonly closeTimeoutMs?: number;
  /** While events are being dropped, a line with the counters at most this often. Default 60 s. */
  readonly reportEveryMs?: number;
}

/** One day's lines, queued in order. `bytes` is the text's length; `data` once a write has begun. */
interface Chunk {
  readonly day: string;
  text: string;
  count: number;
  bytes: number;
  data: Buffer | null;
  /** Bytes of `data` already written to the file `writtenTo` (dev:ino). */
  offset: number;
  writtenTo: string | null;
  /** Held up by a failed write: its events count as retried once written. */
  failed: boolean;
}

interface OpenFile {
  readonly fd: number;
  readonly id: string;
}

const errorText = (e: unknown): string => {
  const err = e as NodeJS.ErrnoException;
  return err?.code ? `${err.code} (${err.syscall ?? 'write'})` : err instanceof Error ? err.message : String(e);
};

// Callback fs calls as promises (no FileHandle objects: one batch at a time, closed explicitly).
const mkdir = (dir: string) => new Promise<void>((ok, no) => fs.mkdir(dir, { recursive: true }, (e) => (e ? no(e) : ok())));
const openAppend = (file: string) => new Promise<number>((ok, no) => fs.open(file, 'a', 0o644, (e, fd) => (e ? no(e) : ok(fd))));
const fstat = (fd: number) => new Promise<fs.Stats>((ok, no) => fs.fstat(fd, (e, s) => (e ? no(e) : ok(s))));
const writeAt = (fd: number, b: Buffer, off: number) => new Promise<number>((ok, no) => fs.write(fd, b, off, b.length - off, null, (e, n) => (e ? no(e) : ok(n))));
/** Lines are written in chunks of about this size, so a backlog is written (and its memory freed) piece by piece. */
const CHUNK_BYTES = 1024 * 1024;

/** Waits for `p`, at most `ms` (the timer keeps the process alive meanwhile, and is cleared after). */
async function waitAtMost(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise<void>((ok) => (timer = setTimeout(ok, Math.max(0, ms))))]);
  clearTimeout(timer);
}
const closeFd = (fd: number) => new Promise<void>((ok) => fs.close(fd, () => ok()));

export class NdjsonEventSink implements EventSink {
  /** The file name this sink appends to in each `dt=` directory (start time and pid: one per process). */
  readonly fileName = `events-${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}.ndjson`;
  private readonly files = new Map<string, OpenFile>();
  private readonly queue: Chunk[] = [];
  private queuedEvents = 0;
  private queuedBytes = 0;
  private readonly counters = { written: 0, retried: 0, dropped: 0, failedWrites: 0 };
  private closed = false;
  private scheduled = false;
  private draining: Promise<void> | null = null;
  /** A failure episode: since when, and the backoff of the next attempt. */
  private failingSince: number | null = null;
  private backoffMs = 0;
  /** Ends the drain's current pause (a backoff, or the wait for lines to gather) at once. */
  private wake: (() => void) | null = null;
  private droppedAtLastReport = 0;
  /** Dropping since the queue last drained: warned once. */
  private dropping = false;
  private readonly reportTimer: NodeJS.Timeout;
  private readonly maxEvents: number;
  private readonly maxBytes: number;

  constructor(private readonly dir: string, private readonly onWarn: (message: string) => void = () => undefined, private readonly opts: NdjsonSinkOptions = {}) {
    this.maxEvents = opts.maxBufferedEvents ?? 100_000;
    this.maxBytes = opts.maxBufferedBytes ?? 64 * 1024 * 1024;
    this.reportTimer = setInterval(() => this.reportDrops(), opts.reportEveryMs ?? 60_000).unref();
  }

  /** Queues the events; never blocks, never throws. */
  write(events: readonly GatewayEvent[]): void {
    for (const e of events) {
      if (this.closed) {
        this.drop(1);
        continue;
      }
      const line = `${JSON.stringify(e)}\n`;
      if (this.queuedEvents >= this.maxEvents || this.queuedBytes + line.length > this.maxBytes) {
        this.drop(1);
        continue;
      }
      const day = e.time.slice(0, 10);
      const last = this.queue.length ? this.queue[this.queue.length - 1] : undefined;
      if (last && last.day === day && last.data === null && last.bytes < CHUNK_BYTES) {
        last.text += line;
        last.count++;
        last.bytes += line.length;
      } else {
        this.queue.push({ day, text: line, count: 1, bytes: line.length, data: null, offset: 0, writtenTo: null, failed: this.failingSince !== null });
      }
      this.queuedEvents++;
      this.queuedBytes += line.length;
    }
    if (this.queuedEvents && !this.scheduled && this.draining === null) {
      this.scheduled = true;
      setTimeout(() => {
        this.scheduled = false;
        this.startDrain();
      }, this.opts.flushDelayMs ?? 10).unref();
    }
  }

  stats(): EventSinkStats {
    return { ...this.counters, buffered: this.queuedEvents, bufferedBytes: this.queuedBytes };
  }

  /** Writes what is queued (retrying a failing directory for up to `closeTimeoutMs`), then closes the files. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.reportTimer);
    const deadline = Date.now() + (this.opts.closeTimeoutMs ?? 2_000);
    this.wake?.(); // no more waiting out a backoff
    this.startDrain();
    while (this.draining !== null && Date.now() < deadline) await waitAtMost(this.draining, deadline - Date.now());
    if (this.queue.length) {
      const lost = this.queuedEvents;
      this.queue.length = 0;
      this.queuedEvents = 0;
      this.queuedBytes = 0;
      this.drop(lost);
      this.onWarn(`events: ${lost} event(s) could not be written under ${this.dir} before shutdown and are lost`);
      this.wake?.();
      // A write stuck in the kernel (a hung network file system) must not hold up the exit.
      if (this.draining !== null) await waitAtMost(this.draining, 500);
    }
    for (const f of this.files.values()) await closeFd(f.fd);
    this.files.clear();
  }

  private drop(n: number): void {
    if (n <= 0) return;
    if (!this.dropping) {
      this.dropping = true;
      if (!this.closed) this.onWarn(`events: ${this.queuedEvents} events (${this.queuedBytes} bytes) are waiting to be written under ${this.dir}, the most held in memory: dropping new ones (counted; the counters are logged every minute while drops go on)`);
    }
    this.counters.dropped += n;
  }

  private reportDrops(): void {
    if (this.counters.dropped === this.droppedAtLastReport) return;
    this.droppedAtLastReport = this.counters.dropped;
    const s = this.stats();
    this.onWarn(`events: ${s.written} written, ${s.retried} retried, ${s.dropped} dropped, ${s.buffered} waiting`);
  }

  private startDrain(): void {
    if (this.draining !== null || !this.queue.length) return;
    this.draining = this.drain().finally(() => {
      this.draining = null;
      if (this.queue.length && !this.closed) this.startDrain();
    });
  }

  /** Writes the queue's head until the queue is empty, waiting out a backoff after each failure. */
  private async drain(): Promise<void> {
    while (this.queue.length) {
      const chunk = this.queue[0];
      try {
        await this.writeChunk(chunk);
      } catch (e) {
        // Everything queued now is written late (if at all): counted as retried once written.
        for (const c of this.queue) c.failed = true;
        this.counters.failedWrites++;
        await this.forgetFile(chunk.day);
        if (this.failingSince === null) {
          this.failingSince = Date.now();
          this.backoffMs = this.opts.retryBaseMs ?? 100;
          this.onWarn(`events: cannot write under ${this.dir}: ${errorText(e)}; retrying with backoff, holding at most ${this.maxEvents} events in memory`);
        } else {
          this.backoffMs = Math.min(this.backoffMs * 2, this.opts.retryMaxMs ?? 5_000);
        }
        // Closing: keep trying briskly until close() gives up.
        await this.pause(this.closed ? Math.min(this.backoffMs, 100) : this.backoffMs);
        continue;
      }
      if (this.queue[0] !== chunk) return; // close() gave up on the queue meanwhile
      this.queue.shift();
      this.queuedEvents -= chunk.count;
      this.queuedBytes -= chunk.bytes;
      this.counters.written += chunk.count;
      if (chunk.failed) this.counters.retried += chunk.count;
      if (this.failingSince !== null) {
        this.onWarn(`events: writing under ${this.dir} again after ${((Date.now() - this.failingSince) / 1000).toFixed(1)} s (${this.counters.dropped} dropped so far)`);
        this.failingSince = null;
      }
      // Under load, let lines gather for the next write rather than writing a few at a time.
      if (this.queue.length && !this.closed) await this.pause(this.opts.flushDelayMs ?? 10);
    }
    this.dropping = false;
  }

  /** Waits `ms`, or less if close() calls `wake`; the timer alone keeps no process alive unless closing. */
  private pause(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.wake = null;
        resolve();
      }, ms);
      if (!this.closed) t.unref();
      this.wake = () => {
        this.wake = null;
        clearTimeout(t);
        resolve();
      };
    });
  }

  private async writeChunk(chunk: Chunk): Promise<void> {
    chunk.data ??= Buffer.from(chunk.text);
    chunk.text = '';
    const file = await this.fileFor(chunk.day);
    if (chunk.offset > 0 && chunk.writtenTo !== file.id) {
      // A partial write went to a file that is gone: start again at its torn line, in the new file.
      chunk.offset = chunk.data.lastIndexOf(10, chunk.offset - 1) + 1;
    }
    chunk.writtenTo = file.id;
    while (chunk.offset < chunk.data.length) chunk.offset += await writeAt(file.fd, chunk.data, chunk.offset);
  }

  /**
   * The open file of `day`, (re)opened when needed. A file whose directory was removed still
   * accepts writes that nobody will ever read, so each batch first checks that it is still linked.
   */
  private async fileFor(day: string): Promise<OpenFile> {
    const open = this.files.get(day);
    if (open) {
      if ((await fstat(open.fd)).nlink > 0) return open;
      await this.forgetFile(day);
    }
    const dir = path.join(this.dir, `dt=${day}`);
    await mkdir(dir);
    const fd = await openAppend(path.join(dir, this.fileName));
    const st = await fstat(fd).catch(async (e) => {
      await closeFd(fd);
      throw e;
    });
    const file = { fd, id: `${st.dev}:${st.ino}` };
    this.files.set(day, file);
    // Events come in time order, so two days open are enough (responses that complete around
    // midnight); others are closed, never the one just opened (events of any day may be written).
    if (this.files.size > 2) for (const d of [...this.files.keys()].sort()) if (d !== day && this.files.size > 2) await this.forgetFile(d);
    return file;
  }

  private async forgetFile(day: string): Promise<void> {
    const f = this.files.get(day);
    if (!f) return;
    this.files.delete(day);
    await closeFd(f.fd);
  }
}

/**
 * Events on stdout (`--events -`). Lines are batched per event-loop turn like the file sink's.
 * Stdout is a pipe or a file, which Node writes synchronously on Linux, so nothing queues here.
 */
export class StdoutEventSink implements EventSink {
  private pending = '';
  private scheduled = false;
  private written = 0;
  private count = 0;

  write(events: readonly GatewayEvent[]): void {
    for (const e of events) this.pending += `${JSON.stringify(e)}\n`;
    this.count += events.length;
    if (this.pending && !this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.scheduled = false;
    if (!this.pending) return;
    process.stdout.write(this.pending);
    this.pending = '';
    this.written += this.count;
    this.count = 0;
  }

  stats(): EventSinkStats {
    return { written: this.written, retried: 0, dropped: 0, failedWrites: 0, buffered: this.count, bufferedBytes: this.pending.length };
  }

  close(): Promise<void> {
    this.flush();
    return new Promise((resolve) => (process.stdout.writableNeedDrain ? process.stdout.once('drain', resolve) : resolve()));
  }
}
