/**
 * Writes the generated sample event set of the analytics tests (test/e2e/analytics-fixtures.ts)
 * under DIR/dt=YYYY-MM-DD/, so the named queries can be tried without traffic:
 *   node --import tsx scripts/sample-events.ts /tmp/sample-events [COUNT] [SEED]
 *   npm run cli -- query downloads_per_package_per_day --events /tmp/sample-events
 */
import path from 'node:path';
import { NdjsonEventSink } from '../lambda/local/ndjson-sink';
import { generateEvents } from '../test/e2e/analytics-fixtures';

const [dir, count = '3000', seed = '42'] = process.argv.slice(2);
if (!dir) {
  process.stderr.write('usage: node --import tsx scripts/sample-events.ts DIR [COUNT] [SEED]\n');
  process.exit(2);
}
const sink = new NdjsonEventSink(path.resolve(dir), (m) => process.stderr.write(`${m}\n`));
const events = generateEvents(Number(count), Number(seed));
sink.write(events);
void sink.close().then(() => process.stdout.write(`${events.length} events under ${path.resolve(dir)}\n`));
