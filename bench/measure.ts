/**
 * Interleaved, baseline-relative timing for in-process benchmarks.
 *
 * Shared, noisy machines make absolute times unreliable, so every subject is paired with a
 * baseline measured in the same round: each round times the baseline and the subject back to
 * back (alternating which goes first), and the figure we trust is the median over rounds of the
 * per-round ratio subject/baseline. Absolute ns/op (medians) are reported for orientation only.
 */

/** Something to time. `fn` returns a number that is folded into a sink, so its work cannot be dropped. */
export interface Bench {
  readonly name: string;
  readonly fn: () => number;
}

export interface Pair {
  readonly name: string;
  readonly subject: Bench;
  readonly baseline: Bench;
}

export interface SuiteOptions {
  readonly rounds: number;
  /** Target duration of one timed batch. */
  readonly batchMs: number;
  /** Untimed warm-up per bench (JIT), before calibration. */
  readonly warmupMs: number;
}

export interface PairResult {
  readonly name: string;
  readonly subject: string;
  readonly baseline: string;
  readonly subjectIterations: number;
  readonly baselineIterations: number;
  /** Per round, ns per operation. */
  readonly subjectNs: number[];
  readonly baselineNs: number[];
  /** Per round, subject/baseline. */
  readonly ratios: number[];
  readonly medianSubjectNs: number;
  readonly medianBaselineNs: number;
  readonly medianRatio: number;
  /** Inter-quartile range of the per-round ratios: a measure of noise. */
  readonly ratioQ1: number;
  readonly ratioQ3: number;
}

let sink = 0;
/** Read once at the end so the folded results stay observable. */
export function sinkValue(): number {
  return sink;
}

function timeBatch(fn: () => number, iterations: number): number {
  let acc = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) acc += fn();
  const ns = Number(process.hrtime.bigint() - t0);
  sink = (sink + acc) | 0;
  return ns;
}

/** Warms `b` up, then finds the iteration count that makes a batch last about `batchMs`. */
function calibrate(b: Bench, opts: SuiteOptions): number {
  const warmEnd = performance.now() + opts.warmupMs;
  let n = 1;
  do {
    const ns = timeBatch(b.fn, n);
    if (ns < 1e6) n *= 2;
  } while (performance.now() < warmEnd);
  const target = opts.batchMs * 1e6;
  n = 1;
  for (;;) {
    const ns = timeBatch(b.fn, n);
    if (ns >= target / 4 || n >= 1 << 30) return Math.max(1, Math.round((n * target) / Math.max(ns, 1)));
    n *= 2;
  }
}

export function median(xs: readonly number[]): number {
  return quantile(xs, 0.5);
}

/** Linear-interpolated quantile, `q` in [0, 1]. */
export function quantile(xs: readonly number[], q: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

/**
 * Runs every pair for `rounds` rounds. Within a round, each pair's baseline and subject run back
 * to back, in alternating order (round and pair parity), and the pairs rotate, so slow drifts of
 * the machine hit subjects and baselines alike.
 */
export function runPairs(pairs: readonly Pair[], opts: SuiteOptions, onProgress?: (msg: string) => void): PairResult[] {
  const iterations = new Map<Bench, number>();
  for (const p of pairs) {
    for (const b of [p.baseline, p.subject]) {
      if (!iterations.has(b)) iterations.set(b, calibrate(b, opts));
    }
  }
  const samples = pairs.map(() => ({ subject: [] as number[], baseline: [] as number[], ratios: [] as number[] }));
  for (let r = 0; r < opts.rounds; r++) {
    onProgress?.(`round ${r + 1}/${opts.rounds}`);
    for (let k = 0; k < pairs.length; k++) {
      const i = (k + r) % pairs.length;
      const p = pairs[i];
      const nb = iterations.get(p.baseline)!;
      const ns = iterations.get(p.subject)!;
      let tb: number;
      let ts: number;
      if ((r + i) % 2 === 0) {
        tb = timeBatch(p.baseline.fn, nb) / nb;
        ts = timeBatch(p.subject.fn, ns) / ns;
      } else {
        ts = timeBatch(p.subject.fn, ns) / ns;
        tb = timeBatch(p.baseline.fn, nb) / nb;
      }
      samples[i].subject.push(ts);
      samples[i].baseline.push(tb);
      samples[i].ratios.push(ts / tb);
    }
  }
  return pairs.map((p, i) => {
    const s = samples[i];
    return {
      name: p.name,
      subject: p.subject.name,
      baseline: p.baseline.name,
      subjectIterations: iterations.get(p.subject)!,
      baselineIterations: iterations.get(p.baseline)!,
      subjectNs: s.subject,
      baselineNs: s.baseline,
      ratios: s.ratios,
      medianSubjectNs: median(s.subject),
      medianBaselineNs: median(s.baseline),
      medianRatio: median(s.ratios),
      ratioQ1: quantile(s.ratios, 0.25),
      ratioQ3: quantile(s.ratios, 0.75),
    };
  });
}

/**
 * The median over rounds of (a's ratio / b's ratio): compares two subjects through their
 * same-round baselines, e.g. the linear scan against the engine at one rule count.
 */
export function relativeRatio(a: PairResult, b: PairResult): number {
  const n = Math.min(a.ratios.length, b.ratios.length);
  const xs: number[] = [];
  for (let r = 0; r < n; r++) xs.push(a.ratios[r] / b.ratios[r]);
  return median(xs);
}
