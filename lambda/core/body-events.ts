/**
 * Events carried in a request body (telemetry-v1, and file-v1 beacons): a stream of JSON values
 * separated by whitespace (or commas). Every object is one event and an array of objects is
 * unpacked; other values are skipped. Scarf stops at 256 bytes and 10 events and drops the rest
 * silently; we read up to BODY_LIMIT bytes and MAX_BODY_EVENTS events and say when we stop.
 */
export const BODY_LIMIT = 64 * 1024;
export const MAX_BODY_EVENTS = 100;

export interface BodyEvents {
  events: Record<string, unknown>[];
  /** Why parsing stopped before the end of the body, if it did. */
  stoppedEarly: string | null;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** End index (exclusive) of the JSON value starting at `i`, or -1 if it is cut off or malformed. */
function valueEnd(text: string, i: number): number {
  const c = text[i];
  if (c === '{' || c === '[') {
    let depth = 0;
    for (let j = i; j < text.length; j++) {
      const d = text[j];
      if (d === '"') {
        j = stringEnd(text, j) - 1;
        if (j < 0) return -1;
      } else if (d === '{' || d === '[') depth++;
      else if (d === '}' || d === ']') {
        depth--;
        if (depth === 0) return j + 1;
      }
    }
    return -1;
  }
  if (c === '"') return stringEnd(text, i);
  let j = i;
  while (j < text.length && !/[\s,{}[\]"]/.test(text[j])) j++;
  return j;
}

function stringEnd(text: string, i: number): number {
  for (let j = i + 1; j < text.length; j++) {
    if (text[j] === '\\') j++;
    else if (text[j] === '"') return j + 1;
  }
  return -1;
}

export function parseBodyEvents(body: Uint8Array | undefined, truncated = false): BodyEvents {
  const events: Record<string, unknown>[] = [];
  if (!body || body.length === 0) return { events, stoppedEarly: truncated ? 'body larger than the limit' : null };
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    return { events, stoppedEarly: 'body is not UTF-8' };
  }
  let i = 0;
  while (i < text.length) {
    while (i < text.length && /[\s,]/.test(text[i])) i++;
    if (i >= text.length) break;
    const end = valueEnd(text, i);
    if (end <= i) return { events, stoppedEarly: truncated ? 'body larger than the limit' : `malformed JSON at byte ${i}` };
    let value: unknown;
    try {
      value = JSON.parse(text.slice(i, end));
    } catch {
      return { events, stoppedEarly: `malformed JSON at byte ${i}` };
    }
    const found = isObject(value) ? [value] : Array.isArray(value) ? value.filter(isObject) : [];
    for (const ev of found) {
      if (events.length >= MAX_BODY_EVENTS) return { events, stoppedEarly: `more than ${MAX_BODY_EVENTS} events` };
      events.push(ev);
    }
    i = end;
  }
  return { events, stoppedEarly: truncated ? 'body larger than the limit' : null };
}
