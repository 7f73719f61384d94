// npm run bench -- js-port: frames per second into a JavaScript packet port, against the
// naive Node forwarder's rate measured in the same run (target: at least 10x).
//
// The JavaScript side is bench/forwarders/js-port-sink.ts, run pinned to the forwarder CPU:
// it opens TAP A by name through netplane, attaches a packet port, consumes every frame in
// JavaScript and prints "ready", then "frames <count> <monotonic ns>" every 200 ms. trafgen
// sends 60-byte frames into TAP A from namespace A on the generator CPU.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { addonBuilt, forwarders } from './forwarders';
import { head, sleep, start, stop, tail, waitForOutput, type Proc } from './lib/proc';
import { TestBed, leftovers } from './lib/testbed';
import { buildTools, kBenchDir } from './lib/tools';
import { finalReport, lastSample, median } from './lib/samples';
import { machineLine, newResultsDir, settingsFor, type Options } from './lib/harness';
import { runSession } from './session';
import { kForwarderCpu, startTrafgen, type Settings } from './workloads';

const kSink = path.join(kBenchDir, 'forwarders', 'js-port-sink.ts');
const kTarget = 10;

interface SinkRate {
  mfps: number;
  offeredMfps: number;
  windowSeconds: number;
  /** The sink's final JSON line: its counts and the engine's per-client counters. */
  sinkReport?: unknown;
}

async function sinkRate(s: Settings): Promise<SinkRate> {
  const bed = await TestBed.create();
  const sink = start('js-port-sink', 'taskset', [
    '-c',
    String(kForwarderCpu),
    process.execPath,
    '--import',
    'tsx',
    kSink,
    bed.ifA,
  ]);
  let gen: Proc | undefined;
  try {
    try {
      await bed.waitForTaps(sink, 10_000, true);
      bed.wire(true);
      await waitForOutput(sink, 'ready', 10_000);
    } catch (e) {
      throw new Error(`${(e as Error).message}; the sink said: ${head(sink.stderr() || sink.stdout())}`);
    }
    gen = startTrafgen(bed, s);
    await sleep(s.warmup * 1000);
    const a0 = bed.countersA();
    const s0 = lastSample(sink);
    await sleep(s.duration * 1000);
    const s1 = lastSample(sink);
    const a1 = bed.countersA();
    if (!s0 || !s1 || s1.ns === s0.ns) throw new Error(`the sink printed no frame counts: ${tail(sink.stderr())}`);
    const dt = Number(s1.ns - s0.ns) / 1e9;
    const result: SinkRate = {
      mfps: (s1.frames - s0.frames) / dt / 1e6,
      offeredMfps: (a1.txPackets + a1.txDropped - (a0.txPackets + a0.txDropped)) / dt / 1e6,
      windowSeconds: dt,
    };
    await stop(gen, 'SIGINT', 2000);
    await stop(sink, 'SIGTERM', 3000);
    result.sinkReport = finalReport(sink);
    return result;
  } finally {
    if (gen) await stop(gen, 'SIGINT', 2000);
    await stop(sink, 'SIGTERM', 3000);
    await bed.dispose();
  }
}

export async function runJsPort(o: Options): Promise<void> {
  const tools = buildTools();
  const dir = newResultsDir();
  const s = settingsFor(o, dir);
  const naive = forwarders.find((f) => f.name === 'naive-node')!;
  const skip = addonBuilt() ? undefined : 'the native addon is not built (npm run build)';
  console.log(`js-port: ${machineLine()}; ${o.reps} repetition(s), ${o.duration} s windows`);
  if (skip) console.log(`js-port: JavaScript packet port: ${skip}`);

  const naiveRates: number[] = [];
  const portRates: number[] = [];
  const runs: unknown[] = [];
  for (let rep = 1; rep <= o.reps; rep++) {
    process.stdout.write(`js-port: rep ${rep}/${o.reps} naive-node ... `);
    const r = await runSession(naive, tools, s, rep, ['frameRate']);
    runs.push(r);
    const fr = r.metrics.frameRate;
    if (fr) naiveRates.push(fr.mfps);
    console.log(fr ? `${fr.mfps.toFixed(4)} Mfps` : `FAILED: ${r.reason ?? r.errors.map((e) => e.message).join('; ')}`);
    if (skip) continue;
    process.stdout.write(`js-port: rep ${rep}/${o.reps} js-port ... `);
    try {
      const p = await sinkRate(s);
      portRates.push(p.mfps);
      runs.push({ forwarder: 'js-port', rep, metrics: p });
      console.log(`${p.mfps.toFixed(4)} Mfps into JavaScript (offered ${p.offeredMfps.toFixed(3)})`);
    } catch (e) {
      runs.push({ forwarder: 'js-port', rep, error: (e as Error).message });
      console.log(`FAILED: ${(e as Error).message}`);
    }
  }
  const n = median(naiveRates);
  const p = median(portRates);
  const ratio = n && p !== undefined ? p / n : undefined;
  const lines = [
    `## netplane JS packet port benchmark, ${new Date().toISOString()}`,
    '',
    `- machine: ${machineLine()}`,
    `- command: npm run bench -- ${process.argv.slice(2).join(' ')}`,
    '',
    '| consumer | Mframes/s into JavaScript (median) | x naive-node | target |',
    '|---|---|---|---|',
    `| naive-node (forwarder, fs.read/fs.write) | ${n?.toFixed(4) ?? '–'} | 1.00x | |`,
    `| js-port | ${p?.toFixed(4) ?? (skip ? 'skipped' : '–')} | ${ratio ? `${ratio.toFixed(2)}x` : '–'} | ≥ ${kTarget}x ${ratio === undefined ? '' : ratio >= kTarget ? 'met' : 'NOT met'} |`,
  ];
  if (skip) lines.push('', `js-port skipped: ${skip}`);
  const md = lines.join('\n') + '\n';
  fs.writeFileSync(path.join(dir, 'js-port.md'), md);
  fs.writeFileSync(
    path.join(dir, 'js-port.json'),
    JSON.stringify({ options: o, runs, naiveRates, portRates, ratio }, null, 2) + '\n',
  );
  console.log('\n' + md);
  const left = leftovers();
  if (left.length > 0) {
    console.error(`js-port: LEFT BEHIND: ${left.join(', ')}`);
    process.exitCode = 1;
  }
}
