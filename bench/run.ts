// npm run bench [-- options]: the benchmark harness. See README "Benchmarks".
//
//   --quick            short windows, 1 repetition
//   --only a,b         forwarders to run (names below, or "netplane" for every variant)
//   --reps N           repetitions (default 3); forwarders interleave A B A B
//   --duration S       frame-rate window and iperf3 length in seconds (default 5)
//   --perf             profile the forwarder CPU during each frame-rate window (perf record)
//   --workloads a,b    only these workloads (frameRate, rtt, rttBusy, tcp1, tcp4, idle; default all)
//   --unpinned         pin nothing (forwarder and tools where the scheduler puts them); the
//                      default pins the forwarder to CPU 0 and the tools to CPU 1
//   js-port            the separate bench: frames per second into a JavaScript packet port
//   vhost              the separate bench: vhost-user back-ends (DPDK's, netplane's) between a
//                      DPDK virtio-user guest and a TAP; --only dpdk-vhost,netplane-vhost
//   hypervisor         the separate bench: frames per second into and out of a TypeScript
//                      hypervisor's guest rings, native virtqueues vs packet port; --only virtqueues,port
//   vhost-frontend     the mirror: vhost-user front-ends (DPDK virtio-user, netplane's
//                      -netdev vhost-user) between a DPDK vhost PMD "switch" and a TAP
import * as fs from 'node:fs';
import * as path from 'node:path';
import { svgChart } from './chart';
import { forwarderNames, selectForwarders } from './forwarders';
import { installSignalCleanup, machineLine, newResultsDir, preflight, settingsFor, type Options } from './lib/harness';
import { killAllSync, machineBusyPct } from './lib/proc';
import { leftovers } from './lib/testbed';
import { buildTools } from './lib/tools';
import { markdown, summarize, type RunRecord } from './report';
import { kAllWorkloads, runSession, type WorkloadName } from './session';
import { kForwarderCpu, kGeneratorCpu } from './workloads';

const usage = `usage: npm run bench -- [js-port | vhost | hypervisor | stream | vhost-frontend] [--quick] [--only NAMES] [--reps N] [--duration S] [--perf] [--unpinned] [--workloads LIST]
forwarders: netplane, ${forwarderNames().join(', ')}`;

export function parseArgs(argv: string[]): Options {
  const o: Options = {
    quick: false,
    reps: 3,
    duration: 5,
    jsPort: false,
    vhost: false,
    perf: false,
    hypervisor: false,
  };
  let reps: number | undefined;
  let duration: number | undefined;
  const number = (flag: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n < min)
      throw new Error(`${flag} needs a number >= ${min}, got ${v ?? 'nothing'}\n${usage}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') o.quick = true;
    else if (a === 'js-port') o.jsPort = true;
    else if (a === 'vhost') o.vhost = true;
    else if (a === 'hypervisor') o.hypervisor = true;
    else if (a === 'stream') o.stream = true;
    else if (a === 'vhost-frontend') o.vhost = o.vhostFrontend = true;
    else if (a === '--perf') o.perf = true;
    else if (a === '--unpinned') o.unpinned = true;
    else if (a === '--workloads') o.workloads = (argv[++i] ?? '').split(',').filter(Boolean);
    else if (a === '--only') o.only = (argv[++i] ?? '').split(',').filter(Boolean);
    else if (a === '--reps') reps = Math.floor(number(a, argv[++i], 1));
    else if (a === '--duration') duration = number(a, argv[++i], 1);
    else if (a === '--help' || a === '-h') {
      console.log(usage);
      process.exit(0);
    } else throw new Error(`unknown argument '${a}'\n${usage}`);
  }
  if (o.only && o.only.length === 0) throw new Error(`--only needs a comma-separated list\n${usage}`);
  if (o.workloads) {
    const unknown = o.workloads.filter((w) => !(kAllWorkloads as string[]).includes(w));
    if (o.workloads.length === 0 || unknown.length > 0)
      throw new Error(`--workloads takes a comma-separated list of ${kAllWorkloads.join(', ')}\n${usage}`);
  }
  o.reps = reps ?? (o.quick ? 1 : 3);
  o.duration = duration ?? (o.quick ? 2 : 5);
  return o;
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  preflight();
  installSignalCleanup();
  if (o.jsPort) {
    const { runJsPort } = await import('./js-port');
    return runJsPort(o);
  }
  if (o.vhost) {
    const { runVhost } = await import('./vhost');
    return runVhost(o);
  }
  if (o.hypervisor) {
    const { runHypervisor } = await import('./hypervisor');
    return runHypervisor(o);
  }
  if (o.stream) {
    const { runStream } = await import('./stream');
    return runStream(o);
  }
  const chosen = selectForwarders(o.only);
  const tools = buildTools();
  const dir = newResultsDir();
  const s = settingsFor(o, dir);
  const skipped = new Map<string, string>();
  for (const fw of chosen) {
    const why = fw.unavailable();
    if (why) skipped.set(fw.name, why);
  }
  console.log(`bench: ${machineLine()}`);
  const busyBefore = await machineBusyPct(1000);
  console.log(`bench: ${busyLine(busyBefore)}`);
  console.log(
    `bench: ${o.reps} repetition(s), ${o.duration} s windows, results in ${path.relative(process.cwd(), dir)}`,
  );
  for (const [name, why] of skipped) console.log(`bench: skipping ${name}: ${why}`);

  const records: RunRecord[] = [];
  for (let rep = 1; rep <= o.reps; rep++) {
    for (const fw of chosen) {
      if (skipped.has(fw.name)) continue;
      process.stdout.write(`bench: rep ${rep}/${o.reps} ${fw.name} ... `);
      let r: RunRecord;
      try {
        r = await runSession(fw, tools, s, rep, (o.workloads as WorkloadName[] | undefined) ?? kAllWorkloads);
      } catch (e) {
        // The test bed itself failed (namespaces, anchors): record it and go on.
        r = {
          forwarder: fw.name,
          description: fw.description,
          rep,
          startedAt: new Date().toISOString(),
          status: 'failed',
          reason: `test bed: ${(e as Error).message}`,
          metrics: {},
          errors: [],
        };
      }
      records.push(r);
      fs.writeFileSync(
        path.join(dir, `${String(rep).padStart(2, '0')}-${fw.name}.json`),
        JSON.stringify(r, null, 2) + '\n',
      );
      console.log(oneLine(r));
      if (r.status === 'failed' && fw.skipWholeRunOnFailure) {
        skipped.set(fw.name, `not available yet: ${r.reason}`);
      }
    }
  }

  const busyAfter = await machineBusyPct(1000);
  const order = chosen.map((f) => f.name);
  const summary = summarize(records, order);
  const header = [
    `## netplane benchmark, ${new Date().toISOString()}`,
    '',
    `- machine: ${machineLine()}`,
    `- command: npm run bench -- ${process.argv.slice(2).join(' ')}`,
    `- ${o.reps} repetition(s) interleaved; ${o.duration} s frame-rate window after ${s.warmup} s warm-up; iperf3 -t ${o.duration}; ${s.rttCount} UDP round trips; ${s.idleSeconds} s idle`,
    `- ${placementLine(s)}; 60-byte frames (64 with FCS) counted at TAP B`,
    `- other load: ${busyLine(busyBefore)} before the run, ${busyAfter.toFixed(0)}% after`,
  ];
  // A forwarder skipped for the whole run is explained under "Skipped", not again as errors.
  const problems = records.filter((r) => r.status !== 'ok' && !(r.status === 'failed' && skipped.has(r.forwarder)));
  const md = markdown(summary, skipped, header, problems);
  fs.writeFileSync(path.join(dir, 'summary.md'), md);
  fs.writeFileSync(
    path.join(dir, 'summary.json'),
    JSON.stringify({ options: o, summary, skipped: Object.fromEntries(skipped) }, null, 2) + '\n',
  );
  console.log('\n' + md);
  console.log(`bench: wrote ${path.relative(process.cwd(), path.join(dir, 'summary.md'))}`);
  const chart = await svgChart(
    summary,
    records,
    `netplane bench, ${new Date().toISOString().slice(0, 16)}Z, ${machineLine()}`,
  );
  if (chart.svg) {
    fs.writeFileSync(path.join(dir, 'chart.svg'), chart.svg);
    console.log(`bench: wrote ${path.relative(process.cwd(), path.join(dir, 'chart.svg'))}`);
  } else console.log(`bench: no chart: ${chart.why}`);
  const left = leftovers();
  if (left.length > 0) {
    console.error(`bench: LEFT BEHIND: ${left.join(', ')}`);
    process.exitCode = 1;
  }
}

/** Where the forwarder and the tools ran, for the summary and each run record. */
export function placementLine(s: { unpinned: boolean }): string {
  return s.unpinned
    ? 'unpinned: forwarder and iperf3/udprtt placed by the scheduler (trafgen pins its one worker to CPU 1 itself)'
    : `pinned: forwarder to CPU ${kForwarderCpu}, trafgen/iperf3/udprtt to CPU ${kGeneratorCpu}`;
}

export function busyLine(pct: number): string {
  const warn = pct > 5 ? ' -- the machine is busy with other work: numbers will be noisy' : '';
  return `${pct.toFixed(0)}% of all CPUs busy${warn}`;
}

function oneLine(r: RunRecord): string {
  if (r.status === 'failed') return `FAILED: ${r.reason}`;
  const m = r.metrics;
  const parts = [
    m.frameRate &&
      `${m.frameRate.mfps.toFixed(3)} Mfps of ${m.frameRate.offeredMfps.toFixed(3)} offered (cpu ${m.frameRate.forwarderCpuPct.toFixed(0)}%)`,
    m.tcp1 && `tcp1 ${m.tcp1.gbps.toFixed(2)} Gb/s`,
    m.tcp4 && `tcp4 ${m.tcp4.gbps.toFixed(2)} Gb/s`,
    m.rtt && `rtt p50 ${m.rtt.p50Us.toFixed(1)} p99 ${m.rtt.p99Us.toFixed(1)} us`,
    m.idle && `idle ${m.idle.cpuPct.toFixed(2)}% (machine ${m.idle.machineBusyPct.toFixed(0)}% busy meanwhile)`,
  ].filter(Boolean);
  const errs = r.errors.map((e) => `${e.workload}: ${e.message}`);
  return [...parts, ...errs.map((e) => `ERROR ${e}`)].join(', ');
}

if (require.main === module) {
  main().catch((e: Error) => {
    console.error(`bench: ${e.message}`);
    killAllSync();
    process.exit(1);
  });
}
