// The summary's answers to the questions a user asks before choosing (issue 14): how close a
// TypeScript forwarder comes to the native one, what adaptive polling buys and costs, and
// whether throughput scales with queues=N. Every ratio is between forwarders of the same
// (interleaved) run, so the noise of a shared machine mostly cancels.
import type { Summary } from './report';

const FRAMES = '64B Mframes/s';
const FRAME_CPU = 'fwd CPU % @64B';
const P50 = 'UDP RTT p50 us';
const P99 = 'UDP RTT p99 us';
const RTT_CPU = 'fwd CPU % @RTT';
const BUSY_P50 = 'UDP RTT p50 us, busy ends';
const BUSY_P99 = 'UDP RTT p99 us, busy ends';
const BUSY_CPU = 'fwd CPU % @RTT, busy ends';
const IDLE = 'idle CPU %';

/** The JS forwarder, the native forwarder it is measured against, and the goal. */
export const kJsForwarder = 'js-filter';
export const kNativeLink = 'netplane-link';
export const kJsGoal = 0.8;
/** The queue-scaling series: the same direct link with 1, 2 and 4 queue pairs. */
export const kScaling: [number, string][] = [
  [1, 'netplane-link'],
  [2, 'netplane-link-2q'],
  [4, 'netplane-link-4q'],
];
export const kNoPoll = 'netplane-link-nopoll';
export const kLatencyGoal = 0.5;

function med(s: Summary, fw: string, col: string): number | undefined {
  return s.stats[fw]?.[col]?.median;
}

const f = (v: number | undefined, d: number, suffix = ''): string =>
  v === undefined ? '–' : `${v.toFixed(d)}${suffix}`;
const ratio = (a: number | undefined, b: number | undefined): number | undefined =>
  a !== undefined && b ? a / b : undefined;
const verdict = (v: number | undefined, ok: (x: number) => boolean): string =>
  v === undefined ? '–' : ok(v) ? 'met' : 'NOT met';

/** Markdown lines (empty when the run had none of the forwarders these sections compare). */
export function goalsMarkdown(s: Summary): string[] {
  const out: string[] = [];
  const has = (fw: string) => s.forwarders.includes(fw);

  if (has(kJsForwarder) && has(kNativeLink)) {
    const js = med(s, kJsForwarder, FRAMES);
    const native = med(s, kNativeLink, FRAMES);
    const r = ratio(js, native);
    // Frames per second of forwarder CPU: on a loaded machine the forwarders get different
    // shares of their core, and this compares what each does with the share it got.
    const perCpu = (fw: string, v: number | undefined) => ratio(v, (med(s, fw, FRAME_CPU) ?? 0) / 100);
    const jsCpu = perCpu(kJsForwarder, js);
    const nativeCpu = perCpu(kNativeLink, native);
    const rCpu = ratio(jsCpu, nativeCpu);
    out.push(
      '',
      '### Packet processing in TypeScript',
      '',
      `${kJsForwarder}: TAP → packet port → examples/port-filter.ts (every frame parsed and filtered) → packet port → TAP, against ${kNativeLink} in the same run.`,
      '',
      '| forwarder | 64B Mframes/s | fwd CPU % | × native | Mframes per CPU-second | × native | goal (frames/s) |',
      '|---|---|---|---|---|---|---|',
      `| ${kNativeLink} | ${f(native, 3)} | ${f(med(s, kNativeLink, FRAME_CPU), 0)} | 1.00x | ${f(nativeCpu, 3)} | 1.00x | |`,
      `| ${kJsForwarder} | ${f(js, 3)} | ${f(med(s, kJsForwarder, FRAME_CPU), 0)} | ${f(r, 2, 'x')} | ${f(jsCpu, 3)} | ${f(rCpu, 2, 'x')} | ≥ ${kJsGoal}x ${verdict(r, (x) => x >= kJsGoal)} |`,
      '',
      `TCP through ${kJsForwarder} (64 KiB frames with --offloads): ${f(med(s, kJsForwarder, 'TCP 1 stream Gbit/s'), 2)} Gbit/s one stream, ${f(ratio(med(s, kJsForwarder, 'TCP 1 stream Gbit/s'), med(s, kNativeLink, 'TCP 1 stream Gbit/s')), 2, 'x')} native.`,
    );
  }

  if (has(kNativeLink) && (has(kNoPoll) || has('qemu'))) {
    out.push(
      '',
      '### Latency and what polling costs',
      '',
      'UDP ping-pong (one in flight) through the forwarder, twice: with ends that sleep until their datagram comes (a client and a server process), and with busy ends (`udprtt pair`: both ends in one thread that never sleeps), whose round trip holds no wake-up of the ends’ CPU, only the path between them. CPU is the forwarder’s while it carries each ping-pong, and with nothing to do.',
      '',
      '| forwarder | RTT p50 us | RTT p99 us | p50 × QEMU | fwd CPU % | busy ends: RTT p50 us | RTT p99 us | p50 × QEMU | fwd CPU % | idle CPU % |',
      '|---|---|---|---|---|---|---|---|---|---|',
    );
    const vsQemu = (fw: string, col: string): string => {
      if (fw === 'qemu') return '1.00x';
      const r = ratio(med(s, fw, col), med(s, 'qemu', col));
      return r === undefined
        ? '–'
        : `${f(r, 2, 'x')} (goal ≤ ${kLatencyGoal}x: ${verdict(r, (x) => x <= kLatencyGoal)})`;
    };
    for (const fw of ['qemu', kNativeLink, kNoPoll]) {
      if (!has(fw)) continue;
      out.push(
        `| ${fw} | ${f(med(s, fw, P50), 1)} | ${f(med(s, fw, P99), 1)} | ${vsQemu(fw, P50)} | ${f(med(s, fw, RTT_CPU), 0)} | ${f(med(s, fw, BUSY_P50), 1)} | ${f(med(s, fw, BUSY_P99), 1)} | ${vsQemu(fw, BUSY_P50)} | ${f(med(s, fw, BUSY_CPU), 0)} | ${f(med(s, fw, IDLE), 2)} |`,
      );
    }
  }

  const series = kScaling.filter(([, fw]) => has(fw));
  if (series.length > 1) out.push(...scalingMarkdown(s, series));
  return out;
}

const PER_CPU = '64B Mframes/CPU-s';
const TCP4 = 'TCP 4 streams Gbit/s';

/** Per queue count of the series: each number and its ratio to the fewest queues in the run. */
function scalingMarkdown(s: Summary, series: [number, string][]): string[] {
  const [n0, fw0] = series[0]!;
  const x = `× ${n0} queue${n0 > 1 ? 's' : ''}`;
  const cols: [string, string, number][] = [
    ['64B Mframes/s', FRAMES, 3],
    ['fwd CPU %', FRAME_CPU, 0],
    ['Mframes/CPU-s', PER_CPU, 3],
    ['TCP 4 streams Gbit/s', TCP4, 2],
  ];
  const out = [
    '',
    '### Scaling with queues=N',
    '',
    `The direct link with N queue pairs, one IOThread per pair; trafgen's 256 flows (UDP source ports) and iperf3's 4 streams are spread over the queues by the TAP. ${x}: the ratio to ${fw0} in the same run.`,
    '',
    `| queue pairs | forwarder | ${cols.map(([title]) => `${title} | ${x}`).join(' | ')} |`,
    `|---|---|${cols.map(() => '---|---').join('|')}|`,
  ];
  for (const [n, fw] of series) {
    const cells = cols.map(([, col, d]) => {
      const v = med(s, fw, col);
      return `${f(v, d)} | ${f(ratio(v, med(s, fw0, col)), 2, 'x')}`;
    });
    out.push(`| ${n} | ${fw} | ${cells.join(' | ')} |`);
  }
  // More queues only help while there are cores for their IOThreads (and for the traffic tools).
  const cores = `${s.cores} CPU core${s.cores === 1 ? '' : 's'}`;
  const placement =
    s.pinned === true
      ? ' This run pinned the forwarder to one CPU: whatever the cores, its queues share that one, so this shows what extra queues cost, not what more cores give.'
      : s.pinned === false
        ? ' This run was unpinned: the IOThreads may spread over the cores, which the traffic tools share.'
        : '';
  out.push(
    '',
    `This machine has ${cores} (os.cpus().length), and they bound the trend: a queue pair's IOThread runs on one core at a time, so at most ${s.cores} queue${s.cores === 1 ? '' : 's'} (one per direction or flow, a core each) work at once, and more queues than cores cannot scale.${placement}`,
  );
  return out;
}
