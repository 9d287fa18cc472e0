/**
 * The caches on the local gateway's request path give the same answers as computing afresh:
 * the User-Agent parse cache and the per-connection visitor-id memo.
 */
import { parseUserAgent } from '../../lambda/core/user-agent';
import { rememberingVisitorId, visitorId } from '../../lambda/core/visitor';
import { completeEvents } from '../../lambda/core/complete-event';

describe('parseUserAgent cache', () => {
  const uas = ['curl/8.5.0', 'pip/24.0 {"ci":true,"cpu":"x86_64","system":{"name":"Linux"}}', 'docker/24.0.7 go/go1.20.10 os/linux arch/arm64', 'Googlebot/2.1', 'Mozilla/5.0 (Windows NT 10.0) Firefox/121.0'];

  test('a repeated User-Agent gets the same answer, frozen so no caller can change what others get', () => {
    for (const ua of uas) {
      const first = parseUserAgent(ua);
      expect(Object.isFrozen(first)).toBe(true);
      expect(parseUserAgent(ua)).toEqual(first);
      expect(() => {
        (first as { client_name: string | null }).client_name = 'changed';
      }).toThrow(TypeError);
      expect(parseUserAgent(ua).client_name).not.toBe('changed');
    }
  });

  test('answers stay right after the cache has turned over, and for strings too long to be cached', () => {
    const before = uas.map((ua) => ({ ...parseUserAgent(ua) }));
    for (let i = 0; i < 3_000; i++) parseUserAgent(`tool-${i}/1.${i} (linux)`);
    expect(uas.map((ua) => ({ ...parseUserAgent(ua) }))).toEqual(before);
    const long = `npm/10.2.4 node/v20.11.0 linux x64 workspaces/false ci/github-actions ${'x'.repeat(1_000)}`;
    expect(parseUserAgent(long)).toMatchObject({ client_name: 'npm', client_version: '10.2.4', os: 'linux', arch: 'amd64', ci: true });
    expect(parseUserAgent(long)).toEqual(parseUserAgent(long));
  });

  test('completeEvents copies the cached fields into each event', () => {
    const ctx = { domain: 'd.test', method: 'GET', path: '/f', status: 307, time: new Date(0), userAgent: 'curl/8.5.0', origin: null, visitorIdFor: () => null, newId: () => 'id' };
    const [a] = completeEvents([{ kind: 'file', action: 'redirect', countable: true, package_id: 'p' }], ctx);
    a.client_name = 'edited';
    const [b] = completeEvents([{ kind: 'file', action: 'redirect', countable: true, package_id: 'p' }], ctx);
    expect(b.client_name).toBe('curl');
  });
});

describe('rememberingVisitorId', () => {
  const inputs: Array<Parameters<typeof visitorId>> = [
    ['salt-a-0123456789', '192.0.2.1', 'curl/8', 'd.test', 'p'],
    ['salt-a-0123456789', '192.0.2.1', 'curl/8', 'd.test', 'p'],
    ['salt-b-0123456789', '192.0.2.1', 'curl/8', 'd.test', 'p'],
    ['salt-b-0123456789', '192.0.2.2', 'curl/8', 'd.test', 'p'],
    ['salt-b-0123456789', '192.0.2.2', 'curl/9', 'd.test', 'p'],
    ['salt-b-0123456789', '192.0.2.2', 'curl/9', 'e.test', 'p'],
    ['salt-b-0123456789', '192.0.2.2', 'curl/9', 'e.test', null],
    ['salt-b-0123456789', '192.0.2.2', undefined, 'e.test', null],
    ['', '192.0.2.2', undefined, 'e.test', null],
    ['salt-b-0123456789', null, undefined, 'e.test', null],
    ['salt-a-0123456789', '192.0.2.1', 'curl/8', 'd.test', 'p'],
  ];

  test('every answer is what visitorId computes, whichever input changed', () => {
    const remembering = rememberingVisitorId();
    const ids = inputs.map((args) => remembering(...args));
    expect(ids).toEqual(inputs.map((args) => visitorId(...args)));
    // The inputs above really give different ids where an input changed.
    expect(new Set(ids.filter((x) => x !== null)).size).toBe(7);
  });
});
