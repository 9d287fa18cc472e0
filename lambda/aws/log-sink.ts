/**
 * The gateway function's event sink until the Firehose sink is plugged in: one structured JSON
 * log line per event (`{"message":"gateway event","event":{...}}`), which CloudWatch Logs
 * Insights can query. Events hold no address, header value or token (lambda/core/events.ts).
 */
import type { GatewayEvent } from '../core/events';
import type { EventSink } from './ports';

export const EVENT_LOG_MESSAGE = 'gateway event';

export class LogEventSink implements EventSink {
  private pending: GatewayEvent[] = [];

  constructor(private readonly writeLine: (line: string) => void = (line) => process.stdout.write(line)) {}

  write(events: readonly GatewayEvent[]): void {
    this.pending.push(...events);
  }

  async flush(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    if (batch.length) this.writeLine(batch.map((event) => `${JSON.stringify({ level: 'INFO', message: EVENT_LOG_MESSAGE, event })}\n`).join(''));
  }

  takeDropped(): number {
    return 0;
  }
}
