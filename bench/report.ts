// Turns the per-run records into the summary: medians with min and max over repetitions, the
// ratio of each forwarder to QEMU's hub, and the project's targets next to those ratios.
import * as os from 'node:os';
import { kCeilingForwarders } from './chart';
import { goalsMarkdown } from './goals';
import { kStages, type Stage } from './lib/perf-breakdown';
import { formatStat, stat, type Stat } from './lib/samples';
import type { FrameRate, IdleCpu, RttResult, TcpResult } from './workloads';

export interface Metrics {
  frameRate?: FrameRate;
  tcp1?: TcpResult;
  tcp4?: TcpResult;
  rtt?: RttResult;
  /** Round trips with both ends in one never-sleeping thread: no wake-up of the ends. */
  rttBusy?: RttResult;
  idle?: IdleCpu;
}

export interface RunRecord {
  forwarder: string;
  description: string;
  rep: number;
  startedAt: string;
  command?: string[];
  /** Forwarder pinned to its CPU and tools to theirs (false: --unpinned). */
  pinned?: boolean;
  note?: string;
  /** ok: every workload ran; partial: some failed; failed: never forwarded a ping. */
  status: 'ok' | 'partial' | 'failed';
  reason?: string;
  offloads?: string;
  metrics: Metrics;
  errors: { workload: string; message: string }[];
  forwarderExit?: number;
  forwarderStderr?: string;
}

function perCpuSecond(f: FrameRate | undefined): number | undefined {
  return f && f.forwarderCpuPct > 0 ? f.mfps / (f.forwarderCpuPct / 100) : undefined;
}

interface Column {
  title: string;
  get: (m: Metrics) => number | undefined;
  digits: number;
  /** Ratio to QEMU shown next to it; 'lower' metrics are better when smaller. */
  ratio?: 'higher' | 'lower';
}

const columns: Column[] = [
  { title: '64B Mframes/s', get: (m) => m.frameRate?.mfps, digits: 3, ratio: 'higher' },
  { title: 'fwd CPU % @64B', get: (m) => m.frameRate?.forwarderCpuPct, digits: 0 },
  // Frames per second of forwarder CPU: on a shared machine the forwarder gets whatever share
  // of its core the others leave, and frames/s follow that share; this ratio does not.
  { title: '64B Mframes/CPU-s', get: (m) => perCpuSecond(m.frameRate), digits: 3, ratio: 'higher' },
  // Per frame read, counted by perf stat in a window of their own: steady under load.
  { title: 'syscalls/frame', get: (m) => m.frameRate?.perFrame?.syscalls, digits: 2 },
  { title: 'wake-ups/frame', get: (m) => m.frameRate?.perFrame?.contextSwitches, digits: 3 },
  { title: 'CPU ns/frame', get: (m) => m.frameRate?.perFrame?.cpuNs, digits: 0 },
  { title: 'TCP 1 stream Gbit/s', get: (m) => m.tcp1?.gbps, digits: 2, ratio: 'higher' },
  { title: 'TCP 4 streams Gbit/s', get: (m) => m.tcp4?.gbps, digits: 2, ratio: 'higher' },
  { title: 'UDP RTT p50 us', get: (m) => m.rtt?.p50Us, digits: 1, ratio: 'lower' },
  { title: 'UDP RTT p99 us', get: (m) => m.rtt?.p99Us, digits: 1, ratio: 'lower' },
  { title: 'fwd CPU % @RTT', get: (m) => m.rtt?.fwdCpuPct, digits: 0 },
  // The same ping-pong with ends that never sleep: the forwarder's latency without theirs.
  { title: 'UDP RTT p50 us, busy ends', get: (m) => m.rttBusy?.p50Us, digits: 1, ratio: 'lower' },
  { title: 'UDP RTT p99 us, busy ends', get: (m) => m.rttBusy?.p99Us, digits: 1, ratio: 'lower' },
  { title: 'fwd CPU % @RTT, busy ends', get: (m) => m.rttBusy?.fwdCpuPct, digits: 0 },
  { title: 'idle CPU %', get: (m) => m.idle?.cpuPct, digits: 2 },
  // All CPUs' busy share while the forwarder sat idle: other work on the machine, i.e. noise.
  { title: 'machine busy % (noise)', get: (m) => m.idle?.machineBusyPct, digits: 0 },
];

export interface Summary {
  forwarders: string[];
  /** Forwarders that delivered nearly everything trafgen offered (the generator was the limit). */
  generatorBound: string[];
  stats: Record<string, Record<string, Stat | undefined>>;
  ratios: Record<string, Record<string, number | undefined>>;
  /** With --perf: per forwarder, the median percent of its CPU per stage of the frame's way. */
  cpuStages?: Record<string, Record<Stage, number>>;
  /** CPU cores of the machine that ran it: what bounds any scaling with queues. */
  cores: number;
  /** Every session pinned (true) or none (false); undefined when mixed or not recorded. */
  pinned?: boolean;
}

export function summarize(records: RunRecord[], order: string[], cores = os.cpus().length): Summary {
  const stats: Summary['stats'] = {};
  const ratios: Summary['ratios'] = {};
  const names = order.filter((n) => records.some((r) => r.forwarder === n && r.status !== 'failed'));
  for (const name of names) {
    const mine = records.filter((r) => r.forwarder === name);
    stats[name] = {};
    for (const c of columns) {
      // NaN (a count with nothing to divide by) is no measurement.
      stats[name]![c.title] = stat(
        mine.map((r) => c.get(r.metrics)).filter((x): x is number => x !== undefined && Number.isFinite(x)),
      );
    }
  }
  for (const name of names) {
    ratios[name] = {};
    for (const c of columns) {
      const mine = stats[name]![c.title]?.median;
      const qemu = stats.qemu?.[c.title]?.median;
      ratios[name]![c.title] = c.ratio && mine !== undefined && qemu ? mine / qemu : undefined;
    }
  }
  const generatorBound = names.filter((name) => {
    const runs = records.filter((r) => r.forwarder === name && r.metrics.frameRate);
    const delivered = stat(runs.map((r) => r.metrics.frameRate!.mfps));
    const offered = stat(runs.map((r) => r.metrics.frameRate!.offeredMfps));
    return delivered && offered && delivered.median >= 0.9 * offered.median;
  });
  const cpuStages: NonNullable<Summary['cpuStages']> = {};
  for (const name of names) {
    const runs = records.flatMap((r) => (r.forwarder === name && r.metrics.frameRate?.cpuStages) || []);
    if (runs.length > 0)
      cpuStages[name] = Object.fromEntries(kStages.map((st) => [st, stat(runs.map((x) => x[st]))!.median])) as Record<
        Stage,
        number
      >;
  }
  const placements = new Set(records.map((r) => r.pinned));
  const pinned = placements.size === 1 ? [...placements][0] : undefined;
  return {
    forwarders: names,
    generatorBound,
    stats,
    ratios,
    cores,
    ...(pinned !== undefined ? { pinned } : {}),
    ...(Object.keys(cpuStages).length > 0 ? { cpuStages } : {}),
  };
}

/** The forwarders held to the targets and goals: all but the kernel's own path (the ceiling). */
export function contenders(s: Summary): string[] {
  return s.forwarders.filter((fw) => !kCeilingForwarders.includes(fw));
}

interface Target {
  title: string;
  /** Met when the value passes; value is a ratio to QEMU or an absolute number. */
  text: string;
  value: (s: Summary, fw: string) => number | undefined;
  met: (v: number) => boolean;
  digits: number;
  suffix: string;
}

const targets: Target[] = [
  {
    title: '64B frames/s',
    text: '≥ 1.5x QEMU',
    value: (s, fw) => s.ratios[fw]?.['64B Mframes/s'],
    met: (v) => v >= 1.5,
    digits: 2,
    suffix: 'x',
  },
  {
    title: '64B frames per CPU-second',
    text: '≥ 1.5x QEMU',
    value: (s, fw) => s.ratios[fw]?.['64B Mframes/CPU-s'],
    met: (v) => v >= 1.5,
    digits: 2,
    suffix: 'x',
  },
  {
    title: 'TCP 1 stream',
    text: '≥ 8x QEMU',
    value: (s, fw) => s.ratios[fw]?.['TCP 1 stream Gbit/s'],
    met: (v) => v >= 8,
    digits: 2,
    suffix: 'x',
  },
  {
    title: 'UDP RTT p99',
    text: '≤ 1.0x QEMU',
    value: (s, fw) => s.ratios[fw]?.['UDP RTT p99 us'],
    met: (v) => v <= 1.0,
    digits: 2,
    suffix: 'x',
  },
  {
    title: 'idle CPU',
    text: '0% (< 0.05%)',
    value: (s, fw) => s.stats[fw]?.['idle CPU %']?.median,
    met: (v) => v < 0.05,
    digits: 2,
    suffix: '%',
  },
];

export function markdown(s: Summary, skipped: Map<string, string>, header: string[], failures: RunRecord[]): string {
  const out: string[] = [...header, ''];
  out.push(
    "Medians over repetitions, (min–max) when there was more than one; xQEMU is the ratio of medians to QEMU's hub.",
    '',
  );
  const head = ['forwarder'];
  for (const c of columns) {
    head.push(c.title);
    if (c.ratio) head.push('xQEMU');
  }
  out.push(`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`);
  for (const fw of s.forwarders) {
    const row = [fw];
    for (const c of columns) {
      row.push(formatStat(s.stats[fw]![c.title], c.digits));
      if (c.ratio) {
        const r = s.ratios[fw]![c.title];
        row.push(r === undefined ? '–' : `${r.toFixed(2)}x`);
      }
    }
    out.push(`| ${row.join(' | ')} |`);
  }
  out.push('', '### Targets (netplane; other forwarders shown for scale)', '');
  out.push(`| forwarder | ${targets.map((t) => `${t.title} (${t.text})`).join(' | ')} |`);
  out.push(`|---|${targets.map(() => '---').join('|')}|`);
  const ceilings = s.forwarders.filter((fw) => kCeilingForwarders.includes(fw));
  for (const fw of contenders(s)) {
    if (fw === 'qemu') continue;
    const cells = targets.map((t) => {
      const v = t.value(s, fw);
      if (v === undefined) return '–';
      return `${v.toFixed(t.digits)}${t.suffix} ${t.met(v) ? 'met' : 'NOT met'}`;
    });
    out.push(`| ${fw} | ${cells.join(' | ')} |`);
  }
  if (!s.stats.qemu) out.push('', 'No QEMU result in this run, so no ratios.');
  const bound = s.generatorBound.filter((fw) => !kCeilingForwarders.includes(fw));
  if (bound.length > 0) {
    out.push(
      '',
      `Frame rate limited by the generator (delivered ≥ 90% of what trafgen offered): ${bound.join(', ')}; their 64B ratio is a lower bound.`,
    );
  }
  if (ceilings.length > 0) {
    out.push(
      '',
      `${ceilings.join(', ')}: the kernel's own path with no forwarder, shown as the ceiling and not held to the targets. Its work runs in the senders' context, so its frames/s is bounded by the generator's core and its forwarder CPU columns are ~0.`,
    );
  }
  out.push(...goalsMarkdown(s), ...cpuStagesMarkdown(s));
  if (skipped.size > 0) {
    out.push('', '### Skipped', '');
    for (const [name, why] of skipped) out.push(`- ${name}: ${why}`);
  }
  const errs = failures.flatMap((r) =>
    r.status === 'failed'
      ? [`- ${r.forwarder} rep ${r.rep}: ${r.reason}`]
      : r.errors.map((e) => `- ${r.forwarder} rep ${r.rep} ${e.workload}: ${e.message}`),
  );
  if (errs.length > 0) out.push('', '### Errors', '', ...errs);
  return out.join('\n') + '\n';
}

/**
 * With --perf: where each forwarder's CPU goes while it forwards 64-byte frames, by stage, as
 * a share of its profile and as nanoseconds per frame (the share times its CPU ns/frame).
 */
function cpuStagesMarkdown(s: Summary): string[] {
  const fws = s.forwarders.filter((fw) => s.cpuStages?.[fw]);
  if (fws.length === 0) return [];
  const out = [
    '',
    "### Where the forwarder's CPU goes (64B frames, perf)",
    '',
    "Share of the profile per stage, and ns per frame where the per-frame CPU is known (symbols below perf's 0.1% limit are left out, so columns sum to a little under 100%).",
    '',
    `| stage | ${fws.join(' | ')} |`,
    `|---|${fws.map(() => '---').join('|')}|`,
  ];
  for (const st of kStages) {
    const cells = fws.map((fw) => {
      const pct = s.cpuStages![fw]![st];
      const ns = s.stats[fw]?.['CPU ns/frame']?.median;
      return ns === undefined ? `${pct.toFixed(1)}%` : `${pct.toFixed(1)}% (${Math.round((pct / 100) * ns)} ns)`;
    });
    out.push(`| ${st} | ${cells.join(' | ')} |`);
  }
  return out;
}
