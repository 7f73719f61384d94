// The workloads, each bounded in time, run against a wired test bed while the forwarder
// under test (process group `fwdPgid`, pinned to the forwarder CPU) holds both TAPs. The
// traffic tools run on the generator CPU.
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  busyBetween,
  groupCpu,
  machineTimes,
  run,
  sleep,
  start,
  stop,
  tail,
  waitForOutput,
  type Proc,
} from './lib/proc';
import { kAddrA, kAddrB, kMacA, kMacB, type TestBed } from './lib/testbed';
import type { Tools } from './lib/tools';
import { countPerFrame, perFrameUnavailable, type PerFrame } from './lib/per-frame';
import { breakdown, type Stage } from './lib/perf-breakdown';

export const kForwarderCpu = 0;
export const kGeneratorCpu = 1;
/** Length of the window in which perf counts system calls and wake-ups per frame. */
const kPerFrameSeconds = 2;

export interface Settings {
  /** Measurement window of the frame-rate workload and length of each iperf3 run, seconds. */
  duration: number;
  /** Seconds of traffic before the frame-rate window opens (not counted). */
  warmup: number;
  rttCount: number;
  idleSeconds: number;
  /** Scratch directory for generated files (the trafgen config) and perf reports. */
  workDir: string;
  /** Profile the forwarder CPU during the frame-rate window (perf record -C). */
  perf: boolean;
  /** Nothing pinned: forwarder and tools go where the scheduler puts them (trafgen still pins its worker). */
  unpinned: boolean;
}

export interface FrameRate {
  /** Frames per second delivered at B (rx_packets of TAP B), in millions. */
  mfps: number;
  /** Frames per second trafgen offered to TAP A (sent + dropped at TAP A's ring), in millions. */
  offeredMfps: number;
  /** Frames per second the forwarder read from TAP A, in millions. */
  readMfps: number;
  /** CPU of the forwarder's process group over the window, percent of one core. */
  forwarderCpuPct: number;
  windowSeconds: number;
  /** With --perf: the text report of where the forwarder CPU spent the window. */
  perfReport?: string;
  /** With --perf: percent of the forwarder's CPU per stage of the frame's way (lib/perf-breakdown.ts). */
  cpuStages?: Record<Stage, number>;
  /** System calls, wake-ups and CPU per frame read, over a second window after this one. */
  perFrame?: PerFrame;
  /** Why perFrame is missing. */
  perFrameError?: string;
}

export interface TcpResult {
  streams: number;
  gbps: number;
  retransmits: number;
  seconds: number;
}

export interface RttResult {
  count: number;
  lost: number;
  p50Us: number;
  p99Us: number;
  p999Us: number;
  minUs: number;
  maxUs: number;
  meanUs: number;
  /** CPU of the forwarder's process group while the round trips ran, percent of one core. */
  fwdCpuPct?: number;
}

export interface IdleCpu {
  /** CPU of the forwarder's group with no traffic, percent of one core (schedstat, ns). */
  cpuPct: number;
  /** The same from utime+stime in /proc/<pid>/stat (10 ms ticks). */
  tickCpuPct: number;
  seconds: number;
  /** Percent of all CPUs busy meanwhile: other work on the machine while this session ran. */
  machineBusyPct: number;
}

/** `cmd args` pinned to `cpu`, or as it is when the run is unpinned. */
export const pinned = (s: Pick<Settings, 'unpinned'>, cpu: number, cmd: string, args: string[]): string[] =>
  s.unpinned ? [cmd, ...args] : ['taskset', '-c', String(cpu), cmd, ...args];

const inNs = (s: Settings, ns: string, cpu: number, cmd: string, args: string[]) => [
  'netns',
  'exec',
  ns,
  ...pinned(s, cpu, cmd, args),
];

function hex(mac: string): string {
  return mac
    .split(':')
    .map((b) => `0x${b}`)
    .join(', ');
}

/**
 * A 60-byte Ethernet/IPv4/UDP frame (a 64-byte frame on a wire, FCS included) from A to B's
 * discard port. The low byte of the source port counts up so multiqueue TAPs spread the
 * flows over their queues. trafgen forks one worker per CPU and pins worker i to CPU i; the
 * cpu() prefix gives the packet to the generator CPU's worker only.
 */
function trafgenConfig(): string {
  return [
    `cpu(${kGeneratorCpu}): {`,
    `  ${hex(kMacB)},`,
    `  ${hex(kMacA)},`,
    '  c16(0x0800),',
    '  0x45, 0x00, c16(46), c16(0), c16(0x4000), 64, 17, csumip(14, 33),',
    `  ${kAddrA.split('.').join(', ')},`,
    `  ${kAddrB.split('.').join(', ')},`,
    '  0x04, dinc(0, 255), c16(9), c16(26), c16(0),',
    '  fill(0x00, 18)',
    '}',
    '',
  ].join('\n');
}

/** Start trafgen in namespace A sending 60-byte frames out of TAP A at full rate. */
export function startTrafgen(bed: TestBed, s: Settings): Proc {
  const cfg = path.join(s.workDir, 'udp60.trafgen');
  fs.writeFileSync(cfg, trafgenConfig());
  // -q: the qdisc path (the default bypass path offers far fewer frames to a TAP here);
  // --no-sock-mem / --notouch-irq: leave the host's global settings alone.
  return start('trafgen', 'ip', [
    'netns',
    'exec',
    bed.nsA.name,
    'trafgen',
    '-o',
    bed.ifA,
    '-i',
    cfg,
    '-P',
    String(kGeneratorCpu + 1),
    '-q',
    '--no-sock-mem',
    '--notouch-irq',
  ]);
}

export async function frameRate(
  bed: TestBed,
  tools: Tools,
  fwdPgid: number,
  s: Settings,
  label: string,
): Promise<FrameRate> {
  // B's discard port has a socket that is never read: the flood dies cheaply at its full
  // receive buffer instead of taking the ICMP port-unreachable path on the forwarder's CPU.
  const sink = start('udp sink', 'ip', inNs(s, bed.nsB.name, kGeneratorCpu, tools.udprtt, ['sink', kAddrB, '9']));
  let gen: Proc | undefined;
  let perfData: string | undefined;
  try {
    await waitForOutput(sink, 'listening', 5000);
    gen = startTrafgen(bed, s);
    await sleep(s.warmup * 1000);
    if (gen.hasExited()) throw new Error(`trafgen exited: ${tail(gen.stderr() || gen.stdout())}`);
    const a0 = bed.countersA();
    const b0 = bed.countersB();
    const c0 = groupCpu(fwdPgid);
    const t0 = process.hrtime.bigint();
    let profiler: Proc | undefined;
    if (s.perf && bed.link !== 'veth') {
      perfData = path.join(s.workDir, `${label}.perf.data`);
      profiler = start('perf record', 'perf', [
        'record',
        '-q',
        '-e',
        'cpu-clock',
        '-F',
        '999',
        '-g',
        // The forwarder's own threads (the kernel work they do in syscalls included), not
        // everything on its CPU: on a shared machine the CPU also runs other people's work.
        '-p',
        String(fwdPgid),
        '-o',
        perfData,
        '--',
        'sleep',
        String(s.duration),
      ]);
    }
    await sleep(s.duration * 1000);
    const b1 = bed.countersB();
    const t1 = process.hrtime.bigint();
    const a1 = bed.countersA();
    const c1 = groupCpu(fwdPgid);
    const dt = Number(t1 - t0) / 1e9;
    const offered = a1.txPackets + a1.txDropped - (a0.txPackets + a0.txDropped);
    if (offered === 0) throw new Error(`trafgen offered no frames: ${tail(gen.stderr() || gen.stdout())}`);
    const profile = profiler ? await perfSummary(profiler, perfData!, s, label) : undefined;
    let perFrame: PerFrame | undefined;
    // Over a veth pair no process forwards (the senders' context does): nothing to count per frame.
    let perFrameError = bed.link === 'veth' ? 'no forwarder process on a veth pair' : perFrameUnavailable();
    if (!perFrameError) {
      // A window of its own: the tracepoints perf counts cost the forwarder a little per
      // system call, which must not touch the frames/s above.
      try {
        perFrame = await countPerFrame(fwdPgid, kPerFrameSeconds, () => bed.countersA().txPackets);
      } catch (e) {
        perFrameError = (e as Error).message;
      }
    }
    return {
      perfReport: profile?.file,
      ...(profile?.stages ? { cpuStages: profile.stages } : {}),
      ...(perFrame ? { perFrame } : {}),
      ...(perFrameError ? { perFrameError } : {}),
      mfps: (b1.rxPackets - b0.rxPackets) / dt / 1e6,
      offeredMfps: offered / dt / 1e6,
      readMfps: (a1.txPackets - a0.txPackets) / dt / 1e6,
      forwarderCpuPct: ((c1.tickSeconds - c0.tickSeconds) / dt) * 100,
      windowSeconds: dt,
    };
  } finally {
    if (gen) await stop(gen, 'SIGINT', 2000);
    await stop(sink, 'SIGTERM', 1000);
    if (perfData) fs.rmSync(perfData, { force: true });
  }
}

/** Wait for perf record, write the flat profile next to the run's JSON; its name and stages. */
async function perfSummary(
  profiler: Proc,
  data: string,
  s: Settings,
  label: string,
): Promise<{ file: string; stages?: Record<Stage, number> }> {
  await Promise.race([profiler.exited, sleep(10_000)]);
  await stop(profiler, 'SIGINT', 2000);
  // First the split by thread and object (where the CPU went: which thread, kernel or
  // user space), then the symbols.
  const text: string[] = [];
  for (const sort of ['comm,dso', 'comm,dso,symbol']) {
    const r = await run(
      'perf report',
      'perf',
      ['report', '-i', data, '--stdio', '--no-children', '--sort', sort, '--percent-limit', '0.1', '-g', 'none'],
      60_000,
    );
    text.push(...(r.stdout || r.stderr).split('\n').map((l) => l.trimEnd()));
  }
  const file = path.join(s.workDir, `${label}.perf.txt`);
  fs.writeFileSync(file, text.join('\n'));
  return { file: path.basename(file), stages: breakdown(text.join('\n')) };
}

export async function tcp(bed: TestBed, streams: number, s: Settings, port: number): Promise<TcpResult> {
  const server = start(
    'iperf3 server',
    'ip',
    inNs(s, bed.nsB.name, kGeneratorCpu, 'iperf3', ['-s', '-1', '-B', kAddrB, '-p', String(port)]),
  );
  try {
    await waitForTcpListener(bed, server, port, 5000);
    // -O 1: leave slow start out when the run is long enough to afford it.
    const omit = s.duration >= 4 ? ['-O', '1'] : [];
    const r = await run(
      'iperf3 client',
      'ip',
      inNs(s, bed.nsA.name, kGeneratorCpu, 'iperf3', [
        '-c',
        kAddrB,
        '-p',
        String(port),
        '-t',
        String(s.duration),
        '-P',
        String(streams),
        '-J',
        '--connect-timeout',
        '3000',
        ...omit,
      ]),
      (s.duration + 20) * 1000,
    );
    if (r.timedOut) throw new Error(`iperf3 -P ${streams} did not finish in ${s.duration + 20} s`);
    let json: {
      error?: string;
      end?: { sum_received?: { bits_per_second: number; seconds: number }; sum_sent?: { retransmits?: number } };
    };
    try {
      json = JSON.parse(r.stdout);
    } catch {
      throw new Error(`iperf3 printed no JSON (exit ${r.code}): ${tail(r.stderr || r.stdout)}`);
    }
    if (json.error) throw new Error(`iperf3: ${json.error}`);
    const rx = json.end?.sum_received;
    if (!rx) throw new Error('iperf3 JSON has no end.sum_received');
    return {
      streams,
      gbps: rx.bits_per_second / 1e9,
      retransmits: json.end?.sum_sent?.retransmits ?? 0,
      seconds: rx.seconds,
    };
  } finally {
    await stop(server, 'SIGTERM', 1000);
  }
}

export async function rtt(bed: TestBed, tools: Tools, s: Settings, port: number): Promise<RttResult> {
  const server = start(
    'udprtt server',
    'ip',
    inNs(s, bed.nsB.name, kGeneratorCpu, tools.udprtt, ['server', kAddrB, String(port)]),
  );
  try {
    await waitForOutput(server, 'listening', 5000);
    return await rttClient(bed, tools, s, ['client', kAddrB, String(port)]);
  } finally {
    await stop(server, 'SIGTERM', 1000);
  }
}

/**
 * UDP round trips whose two ends are one thread that never sleeps (`udprtt pair`, its echo
 * socket in namespace B): no end wakes from a sleep, so what is measured is the path between
 * the namespaces, the forwarder's own latency and the kernel's.
 */
export async function rttBusyEnds(bed: TestBed, tools: Tools, s: Settings, port: number): Promise<RttResult> {
  return rttClient(bed, tools, s, ['pair', bed.nsB.name, kAddrB, String(port)]);
}

async function rttClient(bed: TestBed, tools: Tools, s: Settings, mode: string[]): Promise<RttResult> {
  const r = await run(
    `udprtt ${mode[0]}`,
    'ip',
    inNs(s, bed.nsA.name, kGeneratorCpu, tools.udprtt, [...mode, String(s.rttCount), '200', '200', '30']),
    40_000,
  );
  let json: RttResult;
  try {
    json = JSON.parse(r.stdout) as RttResult;
  } catch {
    throw new Error(`udprtt printed no JSON (exit ${r.code}): ${tail(r.stderr || r.stdout)}`);
  }
  if (!json.count) throw new Error(`udprtt: no echo came back (${json.lost} lost)`);
  return json;
}

/** iperf3 buffers its "Server listening" line when stdout is a pipe, so ask ss instead. */
async function waitForTcpListener(bed: TestBed, server: Proc, port: number, limitMs: number): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!bed.nsB.exec('ss', ['-Hltn', `sport = :${port}`], { allowFail: true }).trim()) {
    if (server.hasExited()) throw new Error(`iperf3 server exited: ${tail(server.stderr() || server.stdout())}`);
    if (Date.now() > deadline) throw new Error(`iperf3 server not listening on port ${port} within ${limitMs} ms`);
    await sleep(50);
  }
}

export async function idleCpu(fwdPgid: number, s: Settings): Promise<IdleCpu> {
  await sleep(1000); // let the previous workload's last frames and timers settle
  const c0 = groupCpu(fwdPgid);
  const m0 = machineTimes();
  const t0 = process.hrtime.bigint();
  await sleep(s.idleSeconds * 1000);
  const c1 = groupCpu(fwdPgid);
  const m1 = machineTimes();
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  return {
    cpuPct: ((c1.schedSeconds - c0.schedSeconds) / dt) * 100,
    tickCpuPct: ((c1.tickSeconds - c0.tickSeconds) / dt) * 100,
    seconds: dt,
    machineBusyPct: busyBetween(m0, m1),
  };
}
