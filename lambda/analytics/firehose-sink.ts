/**
 * Analytics events to Amazon Data Firehose, for the deployed gateway (Lambda).
 *
 * - `write()` only encodes and queues (no I/O on the request path); batches go out in the
 *   background, or when the adapter calls `flush()`.
 * - `PutRecordBatch` within the API limits: at most 500 records and 4 MiB per call, 1,000 KiB
 *   per record (a larger event is dropped and counted, never sent to fail).
 * - Only the records Firehose reports as failed are retried (per-record `ErrorCode`), with
 *   exponential backoff and jitter; a failed call retries its whole batch. A record gives up
 *   after `maxAttempts` and is counted as dropped.
 * - Bounded memory: at most `maxBufferedEvents` records and `maxBufferedBytes` bytes are queued;
 *   what does not fit is dropped and counted (`stats().dropped`, `onDropped`, an EMF metric).
 *
 * Not losing events to a frozen or stopped Lambda environment is the adapter's side of the
 * contract (docs/ANALYTICS.md, "Delivery"): with response streaming, end the response, then
 * `await sink.flush()` before the handler returns, so the client never waits for Firehose and
 * nothing is queued while the environment is frozen; `flushOnSigterm()` is the safety net for
 * records still queued (after a failed flush) when Lambda shuts the environment down.
 */
import { FirehoseClient, PutRecordBatchCommand, type PutRecordBatchCommandOutput } from '@aws-sdk/client-firehose';
import type { GatewayEvent } from '../core/events';
import { tableRow } from '../core/event-table';

/** PutRecordBatch limits (Amazon Data Firehose quotas). */
export const PUT_RECORD_BATCH_LIMITS = Object.freeze({
  records: 500,
  bytesPerCall: 4 * 1024 * 1024,
  bytesPerRecord: 1000 * 1024,
});

/** The part of the SDK client the sink uses, so tests can stand in for it. */
export interface FirehoseApi {
  send(command: PutRecordBatchCommand): Promise<PutRecordBatchCommandOutput>;
}

export type DropReason = 'oversized' | 'buffer-full' | 'undeliverable' | 'closed';

export interface FirehoseSinkOptions {
  readonly deliveryStreamName: string;
  /** Default: `new FirehoseClient({})` (region and credentials from the Lambda environment). */
  readonly client?: FirehoseApi;
  /** Most records queued at once. Default 10,000. */
  readonly maxBufferedEvents?: number;
  /** Most bytes queued at once. Default 16 MiB. */
  readonly maxBufferedBytes?: number;
  /** A partial batch waits at most this long before a background send. Default 1,000 ms. */
  readonly maxDelayMs?: number;
  /** Sends per record, the first included. Default 6. */
  readonly maxAttempts?: number;
  /** Backoff before attempt n is up to min(maxBackoffMs, baseBackoffMs * 2^(n-2)), full jitter. Defaults 100 ms, 2,000 ms. */
  readonly baseBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** Called for every dropped record batch (count and why). */
  readonly onDropped?: (count: number, reason: DropReason) => void;
  /** Called when a PutRecordBatch call fails as a whole (the message names no event data). */
  readonly onError?: (message: string) => void;
  /** For tests. */
  readonly sleep?: (ms: number) => Promise<void>;
  readonly random?: () => number;
}

export interface FirehoseSinkStats {
  /** Records queued now. */
  buffered: number;
  bufferedBytes: number;
  /** Records Firehose accepted. */
  delivered: number;
  /** Records dropped, by reason. */
  dropped: Record<DropReason, number>;
  /** PutRecordBatch calls made, and how many failed as a whole. */
  calls: number;
  failedCalls: number;
  /** Records sent again after a failure. */
  retried: number;
}

interface Pending {
  readonly data: Uint8Array;
  /** Sends so far. */
  attempts: number;
}

const encoder = new TextEncoder();

/** A Firehose record: the event as a table row, one JSON object per line. */
export function encodeRecord(event: GatewayEvent): Uint8Array {
  return encoder.encode(`${JSON.stringify(tableRow(event))}\n`);
}

export class FirehoseEventSink {
  private readonly client: FirehoseApi;
  private readonly queue: Pending[] = [];
  private queuedBytes = 0;
  private draining: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** After a failure: no send before this time (the backoff of the oldest record's next attempt). */
  private retryAt = 0;
  private closed = false;
  private readonly counters: Omit<FirehoseSinkStats, 'buffered' | 'bufferedBytes'> = {
    delivered: 0,
    dropped: { oversized: 0, 'buffer-full': 0, undeliverable: 0, closed: 0 },
    calls: 0,
    failedCalls: 0,
    retried: 0,
  };
  private readonly maxEvents: number;
  private readonly maxBytes: number;
  private readonly maxAttempts: number;

  constructor(private readonly opts: FirehoseSinkOptions) {
    if (!opts.deliveryStreamName) throw new Error('FirehoseEventSink: deliveryStreamName is required');
    this.client = opts.client ?? new FirehoseClient({});
    this.maxEvents = opts.maxBufferedEvents ?? 10_000;
    this.maxBytes = opts.maxBufferedBytes ?? 16 * 1024 * 1024;
    this.maxAttempts = Math.max(1, opts.maxAttempts ?? 6);
  }

  /** Queues events; never blocks and never throws. */
  write(events: readonly GatewayEvent[]): void {
    let oversized = 0;
    let full = 0;
    let closed = 0;
    for (const e of events) {
      if (this.closed) {
        closed++;
        continue;
      }
      const data = encodeRecord(e);
      if (data.byteLength > PUT_RECORD_BATCH_LIMITS.bytesPerRecord) oversized++;
      else if (this.queue.length >= this.maxEvents || this.queuedBytes + data.byteLength > this.maxBytes) full++;
      else {
        this.queue.push({ data, attempts: 0 });
        this.queuedBytes += data.byteLength;
      }
    }
    this.drop(oversized, 'oversized');
    this.drop(full, 'buffer-full');
    this.drop(closed, 'closed');
    this.schedule();
  }

  /**
   * Sends everything queued, retrying failed records with backoff, and resolves when the queue is
   * empty or `timeoutMs` has passed (records still queued then stay for the next flush); a call
   * still in flight then (Firehose not answering) goes on in the background. Never rejects.
   *
   * `waitForBackoff: false` (a Lambda invocation's flush): sends what can be sent now, but while
   * Firehose is failing it makes at most one attempt, and none before the backoff has passed,
   * instead of sleeping through the backoff. An outage then costs an invocation at most one call,
   * not the whole deadline; with every invocation held for seconds, the function would need far
   * more concurrent environments for the same traffic, and run into its concurrency limit.
   */
  async flush(timeoutMs = 5_000, opts: { readonly waitForBackoff?: boolean } = {}): Promise<void> {
    const waitForBackoff = opts.waitForBackoff ?? true;
    this.clearTimer();
    const deadline = Date.now() + timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const timeUp = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
      timer.unref?.();
    });
    try {
      while (this.queue.length && Date.now() < deadline) {
        // Join a drain already running; once our own drain returns, the queue is empty or our time is up.
        const own = this.draining === null;
        this.draining ??= this.drain(deadline, waitForBackoff).finally(() => (this.draining = null));
        const finished = await Promise.race([this.draining.then(() => true), timeUp]);
        if (own || !finished) break;
      }
    } finally {
      clearTimeout(timer);
    }
    // A drain that stopped at an earlier caller's deadline, or at a backoff, may leave records: keep them scheduled.
    this.schedule();
  }

  /** Flushes and takes no more events; what is still queued after `timeoutMs` is dropped and counted. */
  async close(timeoutMs = 5_000): Promise<void> {
    this.closed = true;
    await this.flush(timeoutMs);
    this.clearTimer();
    const left = this.queue.splice(0);
    this.queuedBytes = 0;
    this.drop(left.length, 'undeliverable');
  }

  stats(): FirehoseSinkStats {
    return {
      ...this.counters,
      dropped: { ...this.counters.dropped },
      buffered: this.queue.length,
      bufferedBytes: this.queuedBytes,
    };
  }

  private drop(count: number, reason: DropReason): void {
    if (!count) return;
    this.counters.dropped[reason] += count;
    this.opts.onDropped?.(count, reason);
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** A full batch goes out at once; a partial one after `maxDelayMs`; records that failed once their backoff has passed. */
  private schedule(): void {
    if (!this.queue.length || this.draining) return;
    const backingOff = this.queue[0].attempts > 0 && Date.now() < this.retryAt;
    const full = this.queue.length >= PUT_RECORD_BATCH_LIMITS.records || this.queuedBytes >= PUT_RECORD_BATCH_LIMITS.bytesPerCall;
    // Background sends never sleep through a backoff (they would hold a drain that a Lambda invocation's flush joins).
    const background = () => void this.flush(undefined, { waitForBackoff: false });
    if (full && !backingOff) {
      this.clearTimer();
      background();
    } else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        background();
      }, backingOff ? Math.max(1, this.retryAt - Date.now()) : this.opts.maxDelayMs ?? 1_000);
      // A timer alone must not keep a process (or a Lambda invocation) alive.
      this.timer.unref();
    }
  }

  /** The longest run of queued records that fits one call. */
  private takeBatch(): Pending[] {
    let n = 0;
    let bytes = 0;
    while (n < this.queue.length && n < PUT_RECORD_BATCH_LIMITS.records && bytes + this.queue[n].data.byteLength <= PUT_RECORD_BATCH_LIMITS.bytesPerCall) {
      bytes += this.queue[n].data.byteLength;
      n++;
    }
    const batch = this.queue.splice(0, n);
    this.queuedBytes -= bytes;
    return batch;
  }

  /** Failed records go back to the front (they are the oldest), unless they have no attempts left. */
  private requeue(records: Pending[]): void {
    const keep = records.filter((r) => r.attempts < this.maxAttempts);
    this.drop(records.length - keep.length, 'undeliverable');
    this.queue.unshift(...keep);
    for (const r of keep) this.queuedBytes += r.data.byteLength;
    this.counters.retried += keep.length;
    if (this.queue.length) this.retryAt = Date.now() + this.backoffMs(this.queue[0].attempts + 1);
  }

  private backoffMs(attempt: number): number {
    if (attempt <= 1) return 0;
    const cap = Math.min(this.opts.maxBackoffMs ?? 2_000, (this.opts.baseBackoffMs ?? 100) * 2 ** (attempt - 2));
    return Math.round(cap * (this.opts.random ?? Math.random)());
  }

  private async drain(deadline: number, waitForBackoff: boolean): Promise<void> {
    const sleep = this.opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
    while (this.queue.length) {
      const next = this.queue[0].attempts + 1;
      if (!waitForBackoff) {
        // A record that failed waits for its backoff; a later flush (or the background timer) sends it.
        if (next > 1 && Date.now() < this.retryAt) return;
        if (Date.now() >= deadline) return;
      } else {
        const wait = this.backoffMs(next);
        if (Date.now() + wait >= deadline) return;
        if (wait) await sleep(wait);
      }
      const batch = this.takeBatch();
      for (const r of batch) r.attempts++;
      this.counters.calls++;
      let out: PutRecordBatchCommandOutput;
      try {
        out = await this.client.send(new PutRecordBatchCommand({
          DeliveryStreamName: this.opts.deliveryStreamName,
          Records: batch.map((r) => ({ Data: r.data })),
        }));
      } catch (e) {
        this.counters.failedCalls++;
        this.opts.onError?.(`PutRecordBatch to ${this.opts.deliveryStreamName} failed (${batch.length} records will be retried): ${errorName(e)}`);
        this.requeue(batch);
        continue;
      }
      const responses = out.RequestResponses ?? [];
      if (!out.FailedPutCount) {
        this.counters.delivered += batch.length;
        continue;
      }
      // RequestResponses is in request order: retry exactly the entries with an ErrorCode.
      const failed = batch.filter((_, i) => responses[i]?.ErrorCode !== undefined || responses[i] === undefined);
      this.counters.delivered += batch.length - failed.length;
      this.requeue(failed);
    }
  }
}

function errorName(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message}`.slice(0, 300);
  return String(e).slice(0, 300);
}

/**
 * A CloudWatch embedded-metric-format (EMF) reporter for dropped events: one JSON log line per
 * drop, which CloudWatch turns into the `DroppedEvents` metric (dimension `Reason`) when written
 * to a Lambda function's stdout.
 */
export function emfDroppedEvents(namespace: string, write: (line: string) => void = (l) => process.stdout.write(l)): (count: number, reason: DropReason) => void {
  return (count, reason) => {
    write(`${JSON.stringify({
      _aws: { Timestamp: Date.now(), CloudWatchMetrics: [{ Namespace: namespace, Dimensions: [['Reason']], Metrics: [{ Name: 'DroppedEvents', Unit: 'Count' }] }] },
      Reason: reason,
      DroppedEvents: count,
    })}\n`);
  };
}

/**
 * On SIGTERM (Lambda sends it before shutting an environment down when an extension is
 * registered; about 500 ms remain), send what is still queued. Returns a function that removes
 * the handler.
 */
export function flushOnSigterm(sink: Pick<FirehoseEventSink, 'flush'>, budgetMs = 400): () => void {
  const handler = () => {
    void sink.flush(budgetMs).finally(() => process.exit(0));
  };
  process.once('SIGTERM', handler);
  return () => process.off('SIGTERM', handler);
}
