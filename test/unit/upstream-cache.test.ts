import { UpstreamCache } from '../../lambda/local/upstream-cache';

const doc = (n: number) => ({ head: { status: 200, headers: {}, url: 'https://up.test/x' }, body: new Uint8Array(n) });

describe('UpstreamCache', () => {
  test('entries expire after their seconds; 0 seconds is never stored', () => {
    let now = 1_000;
    const c = new UpstreamCache({ maxBytes: 1_000_000, maxEntryBytes: 100_000 }, () => now);
    c.set('a', doc(10), 5);
    c.set('b', doc(10), 0);
    expect(c.get('a')?.body.length).toBe(10);
    expect(c.get('b')).toBeUndefined();
    now += 5_000;
    expect(c.get('a')).toBeUndefined();
    expect(c.size).toEqual({ entries: 0, bytes: 0 });
  });

  test('bounded: documents over the entry limit are not stored; the least recently used go first', () => {
    const c = new UpstreamCache({ maxBytes: 3 * 2_000, maxEntryBytes: 2_000 });
    c.set('huge', doc(5_000), 60);
    expect(c.get('huge')).toBeUndefined();
    c.set('a', doc(1_000), 60);
    c.set('b', doc(1_000), 60);
    c.set('c', doc(1_000), 60);
    c.get('a'); // now b is the least recently used
    c.set('d', doc(1_000), 60);
    c.set('e', doc(1_000), 60);
    expect(['a', 'b', 'c', 'd', 'e'].filter((k) => c.get(k))).toEqual(['a', 'd', 'e']);
    expect(c.size.bytes).toBeLessThanOrEqual(3 * 2_000);
  });

  test('replacing a key does not count it twice', () => {
    const c = new UpstreamCache({ maxBytes: 100_000, maxEntryBytes: 10_000 });
    c.set('a', doc(1_000), 60);
    const once = c.size.bytes;
    c.set('a', doc(1_000), 60);
    expect(c.size).toEqual({ entries: 1, bytes: once });
  });
});
