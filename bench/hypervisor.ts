// npm run bench -- hypervisor: frames per second into and out of a TypeScript hypervisor's
// guest rings, for the two paths of README "For a hypervisor":
//   virtqueues  the guest's split rings served natively (Topology NIC, queues: 'virtqueues')
//   port        an emulator's own model on a bare packet port (read(k), send)
// each in both directions, with a TAP as the NIC's peer:
//   tx  guest -> TAP: the guest keeps its tx ring full of 60-byte frames; counted at the TAP
//       in its namespace (rx_packets) and by the guest (completed chains / frames sent);
//   rx  TAP -> guest: trafgen offers 60-byte UDP frames out of the TAP's namespace; counted
//       by the guest (frames it took into its buffers).
// The hypervisor with its JavaScript guest is one process (bench/forwarders/hypervisor-guest.ts)
// pinned to CPU 0; trafgen runs on CPU 1. Paths interleave over repetitions.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { head, sleep, start, stop, tail, waitForOutput, type Proc } from './lib/proc';
import { TestBed, kMacA } from './lib/testbed';
import { kBenchDir } from './lib/tools';
import { finalReport, lastSample, median } from './lib/samples';
import { machineLine, newResultsDir, settingsFor, type Options } from './lib/harness';
import { machineBusyPct } from './lib/proc';
import { kForwarderCpu, startTrafgen, type Settings } from './workloads';

const kGuest = path.join(kBenchDir, 'forwarders', 'hypervisor-guest.ts');
type PathName = 'virtqueues' | 'port';
type Dir = 'tx' | 'rx';

interface Sample {
  path: PathName;
  dir: Dir;
  rep: number;
  /** Frames per second through the guest's rings (the guest's own count). */
  mfps: number;
  /** tx: frames per second the TAP received; rx: frames per second trafgen offered. */
  tapMfps: number;
  windowSeconds: number;
  report?: unknown;
}

async function session(p: PathName, dir: Dir, rep: number, s: Settings): Promise<Sample> {
  const bed = await TestBed.create();
  const guest = start(`hypervisor-guest ${p} ${dir}`, 'taskset', [
    '-c',
    String(kForwarderCpu),
    process.execPath,
    '--import',
    'tsx',
    kGuest,
    bed.ifA,
    p,
    dir,
    kMacA,
  ]);
  let gen: Proc | undefined;
  try {
    try {
      await bed.waitForTaps(guest, 10_000, true);
      bed.wire(true);
      await waitForOutput(guest, 'ready', 10_000);
    } catch (e) {
      throw new Error(`${(e as Error).message}; the guest said: ${head(guest.stderr() || guest.stdout())}`);
    }
    if (dir === 'rx') gen = startTrafgen(bed, s);
    await sleep(s.warmup * 1000);
    if (gen?.hasExited()) throw new Error(`trafgen exited: ${tail(gen.stderr() || gen.stdout())}`);
    const a0 = bed.countersA();
    const g0 = lastSample(guest);
    await sleep(s.duration * 1000);
    const g1 = lastSample(guest);
    const a1 = bed.countersA();
    if (!g0 || !g1 || g1.ns === g0.ns) throw new Error(`the guest printed no counts: ${tail(guest.stderr())}`);
    const dt = Number(g1.ns - g0.ns) / 1e9;
    const tap =
      dir === 'tx' ? a1.rxPackets - a0.rxPackets : a1.txPackets + a1.txDropped - (a0.txPackets + a0.txDropped);
    const sample: Sample = {
      path: p,
      dir,
      rep,
      mfps: (g1.frames - g0.frames) / dt / 1e6,
      tapMfps: tap / dt / 1e6,
      windowSeconds: dt,
    };
    if (gen) await stop(gen, 'SIGINT', 2000);
    await stop(guest, 'SIGTERM', 3000);
    sample.report = finalReport(guest);
    return sample;
  } finally {
    if (gen) await stop(gen, 'SIGINT', 2000);
    await stop(guest, 'SIGTERM', 3000);
    await bed.dispose();
  }
}

const fmt = (v: number | undefined): string => (v === undefined ? '–' : v.toFixed(3));

export async function runHypervisor(o: Options): Promise<void> {
  const dir = newResultsDir();
  const s = settingsFor(o, dir);
  const paths: PathName[] = (o.only ?? ['virtqueues', 'port']).filter((n): n is PathName =>
    ['virtqueues', 'port'].includes(n),
  );
  if (paths.length === 0) throw new Error('--only takes virtqueues and/or port here');
  console.log(`hypervisor: ${machineLine()}; ${o.reps} repetition(s), ${o.duration} s windows`);
  const busyBefore = await machineBusyPct(1000);
  const samples: Sample[] = [];
  const failures: string[] = [];
  for (let rep = 1; rep <= o.reps; rep++) {
    for (const d of ['tx', 'rx'] as const) {
      for (const p of paths) {
        process.stdout.write(`hypervisor: rep ${rep}/${o.reps} ${p} ${d} ... `);
        try {
          const r = await session(p, d, rep, s);
          samples.push(r);
          console.log(
            `${r.mfps.toFixed(3)} Mframes/s through the guest's rings (${d === 'tx' ? 'TAP received' : 'offered'} ${r.tapMfps.toFixed(3)})`,
          );
        } catch (e) {
          failures.push(`${p} ${d} rep ${rep}: ${(e as Error).message}`);
          console.log(`FAILED: ${(e as Error).message}`);
        }
      }
    }
  }
  const busyAfter = await machineBusyPct(1000);
  const rows: string[] = [];
  for (const d of ['tx', 'rx'] as const) {
    for (const p of paths) {
      const mine = samples.filter((x) => x.path === p && x.dir === d);
      const v = mine.map((x) => x.mfps);
      const t = mine.map((x) => x.tapMfps);
      const range = v.length ? `${fmt(Math.min(...v))}–${fmt(Math.max(...v))}` : '–';
      rows.push(
        `| ${p} | ${d === 'tx' ? 'out of the guest (tx ring -> TAP)' : 'into the guest (TAP -> rx ring)'} | ${fmt(median(v))} (${range}) | ${fmt(median(t))} |`,
      );
    }
  }
  const ratio = (d: Dir): string => {
    const a = median(samples.filter((x) => x.path === 'virtqueues' && x.dir === d).map((x) => x.mfps));
    const b = median(samples.filter((x) => x.path === 'port' && x.dir === d).map((x) => x.mfps));
    return a && b ? `${(a / b).toFixed(2)}x` : '–';
  };
  const lines = [
    `## netplane hypervisor paths benchmark, ${new Date().toISOString()}`,
    '',
    `- machine: ${machineLine()}`,
    `- command: npm run bench -- ${process.argv.slice(2).join(' ')}`,
    `- ${o.reps} repetition(s) interleaved; ${o.duration} s windows after ${s.warmup} s warm-up; 60-byte frames`,
    '- the hypervisor and its JavaScript guest in one process on CPU 0; trafgen on CPU 1',
    `- other load: ${busyBefore.toFixed(0)}% busy before, ${busyAfter.toFixed(0)}% after`,
    '',
    "| path | direction | Mframes/s through the guest's rings, median (min–max) | at the TAP (tx: received, rx: offered) |",
    '|---|---|---|---|',
    ...rows,
    '',
    `virtqueues / port: tx ${ratio('tx')}, rx ${ratio('rx')}`,
  ];
  if (failures.length) lines.push('', '### Failures', '', ...failures.map((f) => `- ${f}`));
  const md = lines.join('\n') + '\n';
  fs.writeFileSync(path.join(dir, 'summary.md'), md);
  fs.writeFileSync(path.join(dir, 'samples.json'), JSON.stringify(samples, null, 2) + '\n');
  console.log('\n' + md);
  console.log(`hypervisor: results in ${path.relative(process.cwd(), dir)}`);
}
