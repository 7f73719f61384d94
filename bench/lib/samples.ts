// Reading what a measured child process prints: its "frames <count> <monotonic ns>" samples
// (every 200 ms) and its final JSON report (the last stderr line), and the median the
// summaries show.
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
