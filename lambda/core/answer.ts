/**
 * The wire form of the engine's own answers (redirect, respond): status, headers and bytes, with
 * the HEAD and 304 rules applied. Shared by every adapter so they all send identical responses.
 */
import type { Decision } from './request';

export interface Answer {
  readonly status: number;
  readonly headers: Record<string, string>;
  /** Bytes to send; empty for HEAD and 304. */
  readonly body: Uint8Array;
}

const EMPTY = new Uint8Array(0);
const UTF8 = new TextEncoder();

export function answerFor(d: Extract<Decision, { type: 'redirect' | 'respond' }>, method: string): Answer {
  if (d.type === 'redirect') return { status: d.status, headers: { ...d.headers, location: d.location, 'content-length': '0' }, body: EMPTY };
  const body = typeof d.body === 'string' ? UTF8.encode(d.body) : d.body;
  const headers: Record<string, string> = { ...d.headers };
  const head = method.toUpperCase() === 'HEAD';
  // HEAD keeps the length of the GET answer, which the engine states; otherwise it is the body's.
  if (!(head && headers['content-length'] !== undefined) && d.status !== 304 && d.status !== 204) {
    headers['content-length'] = String(body.length);
  }
  return { status: d.status, headers, body: head || d.status === 304 ? EMPTY : body };
}
