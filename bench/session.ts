// One session: a fresh test bed, one forwarder started pinned to the forwarder CPU, a ping to
// prove it forwards, then every workload in turn; the forwarder and the namespaces are gone
// when it returns, whatever happened. A veth forwarder is no process: the test bed links the
// namespaces itself and the "forwarder" is a placeholder that uses no CPU.
import type { Forwarder } from './forwarders';
import { groupCpu, head, start, stop, tail, waitForOutput } from './lib/proc';
import { TestBed } from './lib/testbed';
import type { Tools } from './lib/tools';
import type { RunRecord } from './report';
import {
  frameRate,
  idleCpu,
  kForwarderCpu,
  pinned,
  rtt,
  rttBusyEnds,
  tcp,
  type RttResult,
  type Settings,
} from './workloads';

export type WorkloadName = 'rtt' | 'rttBusy' | 'frameRate' | 'tcp1' | 'tcp4' | 'idle';
export const kAllWorkloads: WorkloadName[] = ['rtt', 'rttBusy', 'frameRate', 'tcp1', 'tcp4', 'idle'];

export async function runSession(
  fw: Forwarder,
  tools: Tools,
  s: Settings,
  rep: number,
  workloads: WorkloadName[] = kAllWorkloads,
): Promise<RunRecord> {
  const record: RunRecord = {
    forwarder: fw.name,
    description: fw.description,
    rep,
    startedAt: new Date().toISOString(),
    status: 'ok',
    metrics: {},
    errors: [],
  };
  const bed = await TestBed.create(fw.link);
  const { cmd, args, note, readyOutput, cleanup } = fw.command(bed.ifA, bed.ifB, tools);
  record.command = pinned(s, kForwarderCpu, cmd, args);
  record.pinned = !s.unpinned;
  if (note) record.note = note;
  const proc = start(fw.name, record.command[0]!, record.command.slice(1));
  try {
    try {
      await bed.waitForTaps(proc, 10_000);
      if (readyOutput) await waitForOutput(proc, readyOutput, 10_000);
      bed.wire();
    } catch (e) {
      record.status = 'failed';
      record.reason = `${(e as Error).message}; it said: ${head(proc.stderr() || proc.stdout())}`;
      return record;
    }
    if (!(await bed.pingOk())) {
      record.status = 'failed';
      record.reason = `started, but no ping crossed it; it said: ${head(proc.stderr() || proc.stdout())}`;
      return record;
    }
    record.offloads = bed.offloads();
    const pgid = proc.pid; // taskset (when pinned) execs the forwarder: same pid, and it leads its group
    // The forwarder's CPU while it carries a ping-pong: what its polling costs.
    const withFwdCpu = async (measure: () => Promise<RttResult>): Promise<RttResult> => {
      const c0 = groupCpu(pgid);
      const t0 = process.hrtime.bigint();
      const r = await measure();
      const dt = Number(process.hrtime.bigint() - t0) / 1e9;
      r.fwdCpuPct = ((groupCpu(pgid).schedSeconds - c0.schedSeconds) / dt) * 100;
      return r;
    };
    const steps: [WorkloadName, () => Promise<void>][] = [
      ['rtt', async () => void (record.metrics.rtt = await withFwdCpu(() => rtt(bed, tools, s, 7000 + rep)))],
      [
        'rttBusy',
        async () => void (record.metrics.rttBusy = await withFwdCpu(() => rttBusyEnds(bed, tools, s, 7100 + rep))),
      ],
      [
        'frameRate',
        async () =>
          void (record.metrics.frameRate = await frameRate(
            bed,
            tools,
            pgid,
            s,
            `${String(rep).padStart(2, '0')}-${fw.name}`,
          )),
      ],
      ['tcp1', async () => void (record.metrics.tcp1 = await tcp(bed, 1, s, 5201))],
      ['tcp4', async () => void (record.metrics.tcp4 = await tcp(bed, 4, s, 5202))],
      ['idle', async () => void (record.metrics.idle = await idleCpu(pgid, s))],
    ];
    for (const [name, step] of steps) {
      if (!workloads.includes(name)) continue;
      if (proc.hasExited()) {
        record.errors.push({ workload: name, message: `forwarder exited: ${tail(proc.stderr())}` });
        continue;
      }
      try {
        await step();
      } catch (e) {
        record.errors.push({ workload: name, message: (e as Error).message });
      }
    }
    if (record.errors.length > 0) record.status = 'partial';
    return record;
  } finally {
    record.forwarderExit = await stop(proc, 'SIGTERM', 3000);
    record.forwarderStderr = tail(proc.stderr(), 10);
    cleanup?.();
    await bed.dispose();
  }
}
