// Reading what a measured child process prints: its "frames <count> <monotonic ns>" samples
// (every 200 ms) and its final JSON report (the last stderr line), and the medians and
// ranges the summaries show.
import { tail, type Proc } from './proc';

/** The last "frames <count> <ns>" line the process printed. */
export function lastSample(p: Proc): { frames: number; ns: bigint } | undefined {
  const lines = p.stdout().trim().split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = /^frames (\d+) (\d+)$/.exec(lines[i]!.trim());
    if (m) return { frames: Number(m[1]), ns: BigInt(m[2]!) };
  }
  return undefined;
}

/** The process's last stderr line as JSON (its counters), or the stderr tail. */
export function finalReport(p: Proc): unknown {
  try {
    return JSON.parse(p.stderr().trim().split('\n').pop()!);
  } catch {
    return tail(p.stderr());
  }
}

export function median(v: number[]): number | undefined {
  if (v.length === 0) return undefined;
  const x = [...v].sort((a, b) => a - b);
  const m = Math.floor(x.length / 2);
  return x.length % 2 ? x[m] : (x[m - 1]! + x[m]!) / 2;
}

/** Median, range and count of a metric over repetitions. */
export interface Stat {
  median: number;
  min: number;
  max: number;
  n: number;
}

/** The Stat of the finite values (a measurement that failed is NaN), undefined for none. */
export function stat(values: number[]): Stat | undefined {
  const v = values.filter((x) => Number.isFinite(x));
  if (v.length === 0) return undefined;
  const sorted = v.sort((a, b) => a - b);
  return { median: median(sorted)!, min: sorted[0]!, max: sorted[sorted.length - 1]!, n: sorted.length };
}

/** "median (min–max)" with `digits` decimals; the median alone for one value, '–' for none. */
export function formatStat(s: Stat | undefined, digits: number): string {
  if (!s) return '–';
  const f = (x: number) => x.toFixed(digits);
  return s.n > 1 ? `${f(s.median)} (${f(s.min)}–${f(s.max)})` : f(s.median);
}
