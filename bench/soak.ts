// npm run soak [-- options]: a long run of the netplane CLI forwarding at full rate, watching
// the forwarder process for leaks. trafgen floods 60-byte UDP frames from namespace A into
// TAP A (as in the frame-rate benchmark); netplane forwards them to TAP B; every few seconds
// we sample the forwarder's RSS, open fds and threads from /proc/<pid>, and B's received
// frames. The report gives the growth of each between the end of the warm-up and the end.
//
//   --minutes M         length of the flood (default 10)
//   --interval S        seconds between samples (default 5)
//   --warmup S          seconds before the baseline sample (default 30; heap and pools grow
//                       to their working size first)
//   --forwarder NAME    netplane-hub (default) or netplane-link, as in `npm run bench`
//   --max-rss-mib N     growth that fails the run (default 2, the bound)
//
// Exit status 1 when RSS grows more than --max-rss-mib, when the fd count grows, when the
// forwarder dies, or when it does not exit cleanly (code 0) on SIGTERM at the end.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { forwarders } from './forwarders';
import { killAllSync, sleep, start, stop, tail, waitForOutput, type Proc } from './lib/proc';
import { TestBed, kAddrB, leftovers } from './lib/testbed';
import { buildTools } from './lib/tools';
import { installSignalCleanup, machineLine, newResultsDir, preflight } from './lib/harness';
import { kForwarderCpu, kGeneratorCpu, startTrafgen } from './workloads';

interface SoakOptions {
  minutes: number;
  interval: number;
  warmup: number;
  forwarder: string;
  maxRssMib: number;
}

interface Sample {
  t: number; // seconds since the flood started
  rssKib: number;
  fds: number;
  threads: number;
  rxB: number; // frames received by TAP B's namespace side so far
}

const usage =
  'usage: npm run soak -- [--minutes M] [--interval S] [--warmup S] [--forwarder netplane-hub|netplane-link] [--max-rss-mib N]';

export function parseSoakArgs(argv: string[]): SoakOptions {
  const o: SoakOptions = { minutes: 10, interval: 5, warmup: 30, forwarder: 'netplane-hub', maxRssMib: 2 };
  const num = (flag: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n < min)
      throw new Error(`${flag} needs a number >= ${min}, got ${v ?? 'nothing'}\n${usage}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--minutes') o.minutes = num(a, argv[++i], 0.1);
    else if (a === '--interval') o.interval = num(a, argv[++i], 1);
    else if (a === '--warmup') o.warmup = num(a, argv[++i], 0);
    else if (a === '--max-rss-mib') o.maxRssMib = num(a, argv[++i], 0);
    else if (a === '--forwarder') {
      o.forwarder = argv[++i] ?? '';
      if (o.forwarder !== 'netplane-hub' && o.forwarder !== 'netplane-link')
        throw new Error(`--forwarder: netplane-hub or netplane-link\n${usage}`);
    } else if (a === '--help' || a === '-h') {
      console.log(usage);
      process.exit(0);
    } else throw new Error(`unknown argument '${a}'\n${usage}`);
  }
  if (o.warmup >= o.minutes * 60)
    throw new Error(`--warmup (${o.warmup} s) must be shorter than the run (${o.minutes * 60} s)`);
  return o;
}

function procSample(pid: number): { rssKib: number; fds: number; threads: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s*(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
  return { rssKib: field('VmRSS'), fds: fs.readdirSync(`/proc/${pid}/fd`).length, threads: field('Threads') };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

async function main(): Promise<void> {
  const o = parseSoakArgs(process.argv.slice(2));
  preflight();
  installSignalCleanup();
  const fw = forwarders.find((f) => f.name === o.forwarder)!;
  const why = fw.unavailable();
  if (why) throw new Error(`${fw.name}: ${why}`);
  const tools = buildTools();
  const dir = newResultsDir();
  console.log(`soak: ${machineLine()}`);
  console.log(
    `soak: ${fw.description}; ${o.minutes} min flood, a sample every ${o.interval} s, baseline after ${o.warmup} s`,
  );

  const bed = await TestBed.create();
  const cmd = fw.command(bed.ifA, bed.ifB, tools);
  const fwd: Proc = start(fw.name, 'taskset', ['-c', String(kForwarderCpu), cmd.cmd, ...cmd.args]);
  let gen: Proc | undefined;
  let sink: Proc | undefined;
  const samples: Sample[] = [];
  let exitCode: number | undefined;
  let failure: string | undefined;
  try {
    await bed.waitForTaps(fwd, 30_000);
    bed.wire();
    if (!(await bed.pingOk())) throw new Error(`no ping through ${fw.name}: ${tail(fwd.stderr())}`);
    // taskset execs the forwarder, so its pid is the forwarder's.
    const pid = fwd.pid;
    sink = start('udp sink', 'ip', [
      'netns',
      'exec',
      bed.nsB.name,
      'taskset',
      '-c',
      String(kGeneratorCpu),
      tools.udprtt,
      'sink',
      kAddrB,
      '9',
    ]);
    await waitForOutput(sink, 'listening', 5000);
    gen = startTrafgen(bed, {
      duration: 0,
      warmup: 0,
      rttCount: 0,
      idleSeconds: 0,
      workDir: dir,
      perf: false,
      unpinned: false,
    });
    const t0 = Date.now();
    const end = t0 + o.minutes * 60_000;
    for (;;) {
      if (fwd.hasExited()) throw new Error(`the forwarder died: ${tail(fwd.stderr())}`);
      if (gen.hasExited()) throw new Error(`trafgen exited: ${tail(gen.stderr() || gen.stdout())}`);
      const s: Sample = { t: (Date.now() - t0) / 1000, ...procSample(pid), rxB: bed.countersB().rxPackets };
      samples.push(s);
      const prev = samples.at(-2);
      const rate = prev ? (s.rxB - prev.rxB) / (s.t - prev.t) / 1e6 : 0;
      console.log(
        `soak: t=${s.t.toFixed(0).padStart(4)} s  rss ${(s.rssKib / 1024).toFixed(2)} MiB  fds ${s.fds}  threads ${s.threads}  ${rate.toFixed(3)} Mfps at B`,
      );
      if (Date.now() >= end) break;
      await sleep(Math.min(o.interval * 1000, end - Date.now()));
    }
  } catch (e) {
    failure = (e as Error).message;
  } finally {
    if (gen) await stop(gen, 'SIGINT', 2000);
    if (sink) await stop(sink, 'SIGTERM', 1000);
    // A clean shutdown is part of the soak: SIGTERM must end the CLI with status 0.
    exitCode = await stop(fwd, 'SIGTERM', 10_000);
    await bed.dispose();
  }

  const base = samples.filter((s) => s.t >= o.warmup);
  const lines: string[] = [
    `## netplane soak, ${new Date().toISOString()}`,
    '',
    `- machine: ${machineLine()}`,
    `- forwarder: ${fw.description} (${cmd.note ?? cmd.cmd})`,
  ];
  let ok = failure === undefined;
  if (failure) lines.push(`- FAILED: ${failure}`);
  if (base.length >= 2) {
    const first = base[0]!;
    const last = base.at(-1)!;
    const k = Math.min(3, Math.floor(base.length / 2));
    const rssGrowthMib =
      (median(base.slice(-k).map((s) => s.rssKib)) - median(base.slice(0, k).map((s) => s.rssKib))) / 1024;
    const rssRawMib = (last.rssKib - first.rssKib) / 1024;
    const slopeMibPerHour =
      (slope(
        base.map((s) => s.t),
        base.map((s) => s.rssKib),
      ) *
        3600) /
      1024;
    const fdGrowth = last.fds - first.fds;
    const fdMax = Math.max(...base.map((s) => s.fds));
    const threadGrowth = last.threads - first.threads;
    const mfps = (last.rxB - first.rxB) / (last.t - first.t) / 1e6;
    lines.push(
      `- flood: ${((last.t - first.t) / 60).toFixed(1)} min measured after a ${o.warmup} s warm-up, ${mfps.toFixed(3)} Mfps average at B, ${(last.rxB / 1e6).toFixed(1)} M frames in all`,
      `- RSS: ${(first.rssKib / 1024).toFixed(2)} MiB -> ${(last.rssKib / 1024).toFixed(2)} MiB; growth ${rssGrowthMib.toFixed(2)} MiB (median of the first and last ${k} samples; raw ${rssRawMib.toFixed(2)} MiB; trend ${slopeMibPerHour.toFixed(2)} MiB/h); peak ${(Math.max(...base.map((s) => s.rssKib)) / 1024).toFixed(2)} MiB`,
      `- fds: ${first.fds} -> ${last.fds} (growth ${fdGrowth}, peak ${fdMax}); threads: ${first.threads} -> ${last.threads} (growth ${threadGrowth})`,
      `- forwarder exit on SIGTERM: ${exitCode}`,
    );
    if (rssGrowthMib > o.maxRssMib) {
      ok = false;
      lines.push(`- FAILED: RSS grew ${rssGrowthMib.toFixed(2)} MiB (bound ${o.maxRssMib} MiB)`);
    }
    if (fdGrowth > 0 || fdMax > first.fds) {
      ok = false;
      lines.push(`- FAILED: the fd count grew`);
    }
  } else if (!failure) {
    ok = false;
    lines.push('- FAILED: too few samples after the warm-up');
  }
  if (exitCode !== 0) {
    ok = false;
    lines.push(`- FAILED: the forwarder exited with ${exitCode} on SIGTERM: ${tail(fwd.stderr())}`);
  }
  const left = leftovers();
  if (left.length > 0) {
    ok = false;
    lines.push(`- FAILED: left behind: ${left.join(', ')}`);
  }
  const md = lines.join('\n') + '\n';
  fs.writeFileSync(path.join(dir, 'soak.md'), md);
  fs.writeFileSync(
    path.join(dir, 'soak.json'),
    JSON.stringify({ options: o, samples, exitCode, failure }, null, 2) + '\n',
  );
  console.log('\n' + md);
  console.log(`soak: wrote ${path.relative(process.cwd(), path.join(dir, 'soak.md'))}`);
  if (!ok) process.exitCode = 1;
}

if (require.main === module) {
  main().catch((e: Error) => {
    console.error(`soak: ${e.message}`);
    killAllSync();
    process.exit(1);
  });
}
