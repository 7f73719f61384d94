// npm run bench -- stream: a `-netdev stream` link over loopback, netplane ⇄ netplane against
// QEMU 7.2 ⇄ QEMU 7.2 doing the same job, interleaved over repetitions:
//
//   namespace A <-> TAP <-> [side 1] ⇄ stream over M's loopback ⇄ [side 2] <-> TAP <-> namespace B
//
//   netplane  node dist/cli/main.js -netdev tap -netdev stream,server=on|off -link (both sides)
//   qemu      qemu-system-x86_64 -machine none -netdev tap -netdev stream -netdev hubport x2
//
// Both sides run inside a namespace M made for the run (the stream never leaves its loopback);
// the TAPs are moved into A and B. Per repetition and implementation: frames/s (an iperf3 UDP
// flood of 18-byte payloads, i.e. 60-byte frames, from A; frames counted as rx_packets of B's
// TAP over the window) and Gbit/s (iperf3 TCP A -> B, one stream). Each side is pinned to its
// own CPU when the machine has two. Results in the run's results directory (summary.md).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { netplaneCli } from './forwarders';
import { machineLine, newResultsDir, type Options } from './lib/harness';
import { machineBusyPct, run, sleep, start, stop, type Proc } from './lib/proc';
import { hasCommand } from './lib/tools';
import { NetNs, npName } from '../test/helpers/netns';

const kPort = 47900;

interface Impl {
  name: 'netplane' | 'qemu';
  unavailable(): string | undefined;
  side(tap: string, server: boolean): { cmd: string; args: string[] };
}

function streamArg(server: boolean): string {
  return `stream,id=s0,server=${server ? 'on' : 'off'},addr.type=inet,addr.host=127.0.0.1,addr.port=${kPort}`;
}

const IMPLS: Impl[] = [
  {
    name: 'netplane',
    unavailable: () => (netplaneCli() ? undefined : 'no netplane CLI (npm run build)'),
    side(tap, server) {
      const cli = netplaneCli()!;
      return {
        cmd: cli.cmd,
        args: [...cli.pre, '-netdev', `tap,id=t0,ifname=${tap}`, '-netdev', streamArg(server), '-link', 't0,s0'],
      };
    },
  },
  {
    name: 'qemu',
    unavailable: () => (hasCommand('qemu-system-x86_64') ? undefined : 'needs qemu-system-x86_64 (qemu-system-x86)'),
    side(tap, server) {
      return {
        cmd: 'qemu-system-x86_64',
        args: [
          ...['-nodefaults', '-display', 'none', '-machine', 'none'],
          ...['-netdev', `tap,id=t0,ifname=${tap},script=no,downscript=no`, '-netdev', streamArg(server)],
          ...['-netdev', 'hubport,id=h0,hubid=0,netdev=t0', '-netdev', 'hubport,id=h1,hubid=0,netdev=s0'],
        ],
      };
    },
  },
];

export interface StreamRecord {
  impl: string;
  rep: number;
  mfps?: number;
  offeredMfps?: number;
  gbps?: number;
  error?: string;
}

function inNs(ns: NetNs, cpu: number | undefined, cmd: string, args: string[]): [string, string[]] {
  const pin = cpu !== undefined && hasCommand('taskset') ? ['taskset', '-c', String(cpu)] : [];
  return ['ip', ['netns', 'exec', ns.name, ...pin, cmd, ...args]];
}

async function waitLink(ns: NetNs, tap: string, limitMs: number, p: Proc): Promise<void> {
  const end = Date.now() + limitMs;
  while (ns.exec('ip', ['link', 'show', tap], { allowFail: true }) === '') {
    if (p.hasExited()) throw new Error(`${p.name} exited: ${p.stderr().slice(-400)}`);
    if (Date.now() > end) throw new Error(`${tap} did not appear`);
    await sleep(25);
  }
}

function rxPackets(ns: NetNs, tap: string): number {
  return Number(ns.exec('cat', [`/sys/class/net/${tap}/statistics/rx_packets`]).trim());
}

async function iperfJson(a: NetNs, b: NetNs, ip: string, args: string[], seconds: number): Promise<unknown> {
  const srv = start('iperf3-s', 'ip', ['netns', 'exec', b.name, 'iperf3', '-s', '-1', '-B', ip]);
  try {
    await sleep(300);
    const r = await run(
      'iperf3-c',
      'ip',
      ['netns', 'exec', a.name, 'iperf3', '-c', ip, '-t', String(seconds), '-J', ...args],
      (seconds + 15) * 1000,
    );
    const json = JSON.parse(r.stdout || '{}') as { error?: string };
    if (json.error) throw new Error(`iperf3: ${json.error}`);
    return json;
  } finally {
    await stop(srv, 'SIGTERM', 1000);
  }
}

async function session(impl: Impl, rep: number, seconds: number, nets: { M: NetNs; A: NetNs; B: NetNs }) {
  const { M, A, B } = nets;
  const rec: StreamRecord = { impl: impl.name, rep };
  const tapA = npName('sa');
  const tapB = npName('sb');
  const cpus = (await import('node:os')).cpus().length;
  const procs: Proc[] = [];
  try {
    const s1 = impl.side(tapA, true);
    const p1 = start(`${impl.name}-1`, ...inNs(M, cpus > 1 ? 0 : undefined, s1.cmd, s1.args));
    procs.push(p1);
    await waitLink(M, tapA, 20_000, p1);
    await sleep(300);
    const s2 = impl.side(tapB, false);
    const p2 = start(`${impl.name}-2`, ...inNs(M, cpus > 1 ? 1 : undefined, s2.cmd, s2.args));
    procs.push(p2);
    await waitLink(M, tapB, 20_000, p2);
    for (const [tap, ns, ip] of [
      [tapA, A, '10.217.0.1'],
      [tapB, B, '10.217.0.2'],
    ] as const) {
      M.exec('ip', ['link', 'set', tap, 'netns', ns.name]);
      ns.exec('ip', ['addr', 'add', `${ip}/24`, 'dev', tap]);
      ns.exec('ip', ['link', 'set', tap, 'up']);
    }
    A.exec('ip', ['neigh', 'flush', 'all']);
    B.exec('ip', ['neigh', 'flush', 'all']);
    if (!/ 0% packet loss/.test(A.exec('ping', ['-c', '3', '-i', '0.2', '-W', '2', '10.217.0.2'], { allowFail: true })))
      throw new Error('no ping across the stream link');
    // Frames per second: a UDP flood of 60-byte frames, counted at B's TAP.
    const before = rxPackets(B, tapB);
    const udp = (await iperfJson(A, B, '10.217.0.2', ['-u', '-b', '0', '-l', '18'], seconds)) as {
      end?: { sum?: { packets?: number } };
    };
    const got = rxPackets(B, tapB) - before;
    rec.mfps = got / Math.max(seconds, 1) / 1e6;
    rec.offeredMfps = (udp.end?.sum?.packets ?? 0) / seconds / 1e6;
    const tcp = (await iperfJson(A, B, '10.217.0.2', [], seconds)) as {
      end?: { sum_received?: { bits_per_second?: number } };
    };
    rec.gbps = (tcp.end?.sum_received?.bits_per_second ?? 0) / 1e9;
  } catch (e) {
    rec.error = (e as Error).message;
  } finally {
    for (const p of procs.reverse()) await stop(p, 'SIGTERM', 3000);
  }
  return rec;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor((s.length - 1) / 2)]!;
}

export async function runStream(o: Options): Promise<void> {
  for (const t of ['iperf3', 'ping']) if (!hasCommand(t)) throw new Error(`the stream bench needs ${t}`);
  const impls = IMPLS.filter((i) => !o.only || o.only.includes(i.name));
  const skipped = impls.filter((i) => i.unavailable()).map((i) => `${i.name}: ${i.unavailable()}`);
  const dir = newResultsDir();
  console.log(`bench stream: ${machineLine()}`);
  const busy = await machineBusyPct(1000);
  console.log(`bench stream: ${busy.toFixed(0)}% of all CPUs busy before the run`);
  for (const s of skipped) console.log(`bench stream: skipping ${s}`);
  const M = new NetNs('sm');
  const A = new NetNs('sA');
  const B = new NetNs('sB');
  const records: StreamRecord[] = [];
  try {
    for (const ns of [A, B]) ns.disableIpv6();
    for (let rep = 1; rep <= o.reps; rep++) {
      for (const impl of impls) {
        if (impl.unavailable()) continue;
        process.stdout.write(`bench stream: rep ${rep}/${o.reps} ${impl.name} ... `);
        const r = await session(impl, rep, o.duration, { M, A, B });
        records.push(r);
        console.log(
          r.error
            ? `FAILED: ${r.error}`
            : `${r.mfps!.toFixed(3)} Mfps (offered ${r.offeredMfps!.toFixed(3)}), tcp ${r.gbps!.toFixed(2)} Gb/s`,
        );
      }
    }
  } finally {
    for (const ns of [M, A, B]) ns.dispose();
  }
  const busyAfter = await machineBusyPct(1000);
  const lines = [
    `## netplane stream-link benchmark, ${new Date().toISOString()}`,
    '',
    `- machine: ${machineLine()}; ${busy.toFixed(0)}% busy before, ${busyAfter.toFixed(0)}% after`,
    `- command: npm run bench -- ${process.argv.slice(2).join(' ')}`,
    `- ${o.reps} repetition(s) interleaved, ${o.duration} s windows; both sides in one namespace, stream over its loopback`,
    '',
    '| implementation | frames/s (M, median) | TCP Gbit/s (median) | runs |',
    '|---|---|---|---|',
  ];
  const med: Record<string, { mfps: number; gbps: number }> = {};
  for (const impl of impls) {
    const ok = records.filter((r) => r.impl === impl.name && !r.error);
    med[impl.name] = { mfps: median(ok.map((r) => r.mfps!)), gbps: median(ok.map((r) => r.gbps!)) };
    lines.push(
      `| ${impl.name} | ${med[impl.name]!.mfps.toFixed(3)} | ${med[impl.name]!.gbps.toFixed(2)} | ${ok.length}/${records.filter((r) => r.impl === impl.name).length} |`,
    );
  }
  if (med.netplane && med.qemu)
    lines.push(
      '',
      `netplane / QEMU: frames/s x${(med.netplane.mfps / med.qemu.mfps).toFixed(2)}, TCP x${(med.netplane.gbps / med.qemu.gbps).toFixed(2)}`,
    );
  for (const s of skipped) lines.push(`- skipped ${s}`);
  const md = lines.join('\n') + '\n';
  fs.writeFileSync(path.join(dir, 'summary.md'), md);
  fs.writeFileSync(path.join(dir, 'records.json'), JSON.stringify(records, null, 2) + '\n');
  console.log('\n' + md);
  console.log(`bench stream: wrote ${path.relative(process.cwd(), path.join(dir, 'summary.md'))}`);
}
