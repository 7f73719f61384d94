// Per-frame costs of a forwarder that do not depend on how loaded the machine is: system
// calls, context switches (wake-ups) and CPU time per frame it read, counted by `perf stat`
// over every thread of the forwarder while the flood runs. Frames per second on a shared
// 2-core machine swing by tens of percent between runs; these counts barely move.
import { hasCommand } from './tools';
import { run } from './proc';

export interface PerFrame {
  /** Frames the forwarder read (from either TAP) while perf counted. */
  frames: number;
  /** Where `frames` came from: its read calls of 60 bytes or more, or TAP A's counter. */
  framesFrom: 'read calls' | 'tap counter';
  seconds: number;
  /** Every system call (raw_syscalls:sys_enter). */
  syscalls: number;
  reads: number;
  /** write + writev. */
  writes: number;
  /** poll, ppoll, epoll_wait, epoll_pwait, io_uring_enter: the waits and polls. */
  waits: number;
  contextSwitches: number;
  /** CPU time of the forwarder's threads per frame, nanoseconds (task-clock). */
  cpuNs: number;
}

const kEvents = {
  syscalls: ['raw_syscalls:sys_enter'],
  reads: ['syscalls:sys_enter_read', 'syscalls:sys_enter_readv'],
  writes: ['syscalls:sys_enter_write', 'syscalls:sys_enter_writev'],
  waits: [
    'syscalls:sys_enter_poll',
    'syscalls:sys_enter_ppoll',
    'syscalls:sys_enter_epoll_wait',
    'syscalls:sys_enter_epoll_pwait',
    'syscalls:sys_enter_io_uring_enter',
  ],
  contextSwitches: ['context-switches'],
  taskClockMs: ['task-clock'],
} as const;

/** Why per-frame counts cannot be taken here, or undefined. */
export function perFrameUnavailable(): string | undefined {
  if (!hasCommand('perf')) return 'perf not installed (Debian package linux-perf)';
  return undefined;
}

// The frames: reads of a whole frame (60 bytes and more; eventfd reads are 8) returning, so
// the denominator is counted over exactly the window the rest is.
const kFrameReads = ['syscalls:sys_exit_read', 'syscalls:sys_exit_readv'];

/**
 * Count the events over `seconds` on process `pid` (all its threads), per frame it read.
 * A forwarder that reads through io_uring makes few or no read calls: then the frames are
 * `framesRead()` (TAP A's counter) around the count, scaled from perf's wall time to its window.
 */
export async function countPerFrame(pid: number, seconds: number, framesRead: () => number): Promise<PerFrame> {
  const events = Object.values(kEvents).flat();
  const args = ['stat', '-x', ',', '-e', events.join(',')];
  for (const e of kFrameReads) args.push('-e', e, '--filter', 'ret >= 60');
  args.push('-p', String(pid), '--', 'sleep', String(seconds));
  const f0 = framesRead();
  const t0 = process.hrtime.bigint();
  const r = await run('perf stat', 'perf', args, (seconds + 20) * 1000);
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const byCounter = ((framesRead() - f0) * seconds) / wall;
  const c = parsePerfStat(r.stderr);
  if (!c.has('raw_syscalls:sys_enter'))
    throw new Error(`perf stat counted no system calls: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`);
  const sum = (names: readonly string[]) => names.reduce((a, n) => a + (c.get(n) ?? 0), 0);
  const readCalls = sum(kFrameReads);
  // A forwarder that batches bursts through io_uring still reads a lone frame with read(2):
  // its few read calls are not its frames, so the larger count is.
  const fromCalls = readCalls >= byCounter;
  const frames = fromCalls ? readCalls : byCounter;
  const per = (x: number) => (frames > 0 ? x / frames : NaN);
  return {
    frames,
    framesFrom: fromCalls ? 'read calls' : 'tap counter',
    seconds,
    syscalls: per(sum(kEvents.syscalls)),
    reads: per(sum(kEvents.reads)),
    writes: per(sum(kEvents.writes)),
    waits: per(sum(kEvents.waits)),
    contextSwitches: per(sum(kEvents.contextSwitches)),
    cpuNs: per(sum(kEvents.taskClockMs) * 1e6),
  };
}

/** perf stat -x , lines: value,unit,event,... ; "<not counted>" / "<not supported>" are left out. */
export function parsePerfStat(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const f = line.split(',');
    if (f.length < 3) continue;
    const v = Number(f[0]);
    if (f[0] === '' || !Number.isFinite(v)) continue;
    out.set(f[2]!.trim(), v);
  }
  return out;
}
