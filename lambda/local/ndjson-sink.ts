/**
 * Local event sink: newline-delimited JSON laid out like the S3 data, `DIR/dt=YYYY-MM-DD/`, or
 * stdout. Lines are handed to the OS as soon as they are written, well within the contract's 1 s.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { GatewayEvent } from '../core/events';

export interface EventSink {
  write(events: readonly GatewayEvent[]): void;
  /** Flushes and closes; the sink takes no more events. */
  close(): Promise<void>;
}

export class StdoutEventSink implements EventSink {
  write(events: readonly GatewayEvent[]): void {
    if (events.length) process.stdout.write(events.map((e) => `${JSON.stringify(e)}\n`).join(''));
  }

  close(): Promise<void> {
    return new Promise((resolve) => (process.stdout.writableNeedDrain ? process.stdout.once('drain', resolve) : resolve()));
  }
}

export class NdjsonEventSink implements EventSink {
  private readonly streams = new Map<string, fs.WriteStream>();
  private readonly fileStem = `events-${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}`;
  private closed = false;

  constructor(private readonly dir: string, private readonly onError: (message: string) => void = () => undefined) {}

  write(events: readonly GatewayEvent[]): void {
    if (this.closed) return;
    const byDay = new Map<string, string[]>();
    for (const e of events) {
      const day = e.time.slice(0, 10);
      byDay.set(day, [...(byDay.get(day) ?? []), `${JSON.stringify(e)}\n`]);
    }
    for (const [day, lines] of byDay) this.stream(day).write(lines.join(''));
  }

  private stream(day: string): fs.WriteStream {
    let s = this.streams.get(day);
    if (!s) {
      const dir = path.join(this.dir, `dt=${day}`);
      fs.mkdirSync(dir, { recursive: true });
      s = fs.createWriteStream(path.join(dir, `${this.fileStem}.ndjson`), { flags: 'a' });
      s.on('error', (e) => this.onError(`cannot write events under ${dir}: ${e.message}`));
      this.streams.set(day, s);
    }
    return s;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.streams.values()].map((s) => new Promise<void>((resolve) => s.end(resolve))));
    this.streams.clear();
  }
}
