// `netplane demo`: the README's main job. Two throwaway namespaces (prefix np), a netplane
// forwarder between them in this process (two TAPs with vnet headers, linked queue by queue
// or through a native hub), real traffic (a round trip with ping or Node's UDP echo, then a TCP stream with iperf3 or Node),
// live per-queue rates on one line, a summary of the data plane's counters with the
// conservation check, and cleanup that also runs after SIGINT/SIGTERM.
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import {
  conservationViolations,
  formatDrops,
  formatStatsTable,
  netplaneStats,
  type NetplaneClientStats,
} from '../control/stats';
import { NativeDataPlane, type ClientStats, type TapDeadEvent } from '../dataplane/native-dataplane';
import { Topology } from '../topology/topology';
import { DemoEnv, demoPrivilegeProblem, Interrupted, liveNamespaces, onPath } from './demo-env';

export const DEMO_USAGE = `usage: netplane demo [--seconds N] [--queues N] [--hub] [--tcp iperf3|node]

Creates two network namespaces, a netplane forwarder between them (two TAPs with vnet
headers), pings across, runs a TCP stream while showing live per-queue rates, prints the
data plane's counters, and removes everything again (also on Ctrl-C). Needs root.

  --seconds N   length of the TCP stream (1..60, default 5)
  --queues N    TAP queues, linked queue by queue (1..8, default 2)
  --hub         forward through a native hub instead of a direct link (1 queue: a hub
                port peers a TAP's first queue only, as in QEMU)
  --tcp TOOL    the TCP stream: iperf3 (default when installed) or node (a Node
                sender and sink run inside the namespaces)`;

interface DemoOptions {
  seconds: number;
  queues: number;
  hub: boolean;
  tcp: 'iperf3' | 'node';
}

const SIGNAL_NUMBERS: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };
const ADDR_A = '10.250.0.1';
const ADDR_B = '10.250.0.2';
const PORT = 5201;

interface Output {
  /** A whole line. */
  line(text: string): void;
  /** The live line: rewritten in place on a terminal, one line per second otherwise. */
  live(text: string): void;
  /** End the live line (a terminal keeps its last state). */
  endLive(): void;
  readonly tty: boolean;
}

function makeOutput(stream: NodeJS.WriteStream): Output {
  const tty = stream.isTTY === true;
  let liveShown = false;
  let lastPlain = 0;
  return {
    tty,
    line(text) {
      if (liveShown && tty) stream.write('\n');
      liveShown = false;
      stream.write(text + '\n');
    },
    live(text) {
      if (tty) {
        stream.write(`\r${text}\x1b[K`);
        liveShown = true;
      } else if (Date.now() - lastPlain >= 1000) {
        lastPlain = Date.now();
        stream.write(text + '\n');
      }
    },
    endLive() {
      if (liveShown && tty) stream.write('\n');
      liveShown = false;
    },
  };
}

function parseDemoArgs(args: string[]): DemoOptions | string {
  let values: { seconds?: string; queues?: string; hub?: boolean; tcp?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args,
      options: {
        seconds: { type: 'string' },
        queues: { type: 'string' },
        hub: { type: 'boolean' },
        tcp: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (e) {
    return (e as Error).message;
  }
  if (values.help) return '';
  const int = (name: string, text: string | undefined, dflt: number, max: number): number | string => {
    if (text === undefined) return dflt;
    const n = Number(text);
    return Number.isInteger(n) && n >= 1 && n <= max
      ? n
      : `--${name} expects an integer between 1 and ${max}, got '${text}'`;
  };
  const seconds = int('seconds', values.seconds, 5, 60);
  if (typeof seconds === 'string') return seconds;
  const queues = int('queues', values.queues, 2, 8);
  if (typeof queues === 'string') return queues;
  if (values.hub && values.queues !== undefined && queues !== 1) {
    return '--hub uses one queue per TAP (a hub port peers only the first queue of a TAP, as in QEMU); drop --queues or use --queues 1';
  }
  const tcp = values.tcp ?? (onPath('iperf3') ? 'iperf3' : 'node');
  if (tcp !== 'iperf3' && tcp !== 'node') return `--tcp expects iperf3 or node, got '${tcp}'`;
  if (tcp === 'iperf3' && !onPath('iperf3'))
    return '--tcp iperf3: iperf3 is not installed (apt-get install iperf3, or use --tcp node)';
  return { seconds, queues: values.hub ? 1 : queues, hub: values.hub === true, tcp };
}

export async function runDemo(args: string[]): Promise<number> {
  const opts = parseDemoArgs(args);
  if (typeof opts === 'string') {
    if (opts === '') {
      console.log(DEMO_USAGE);
      return 0;
    }
    console.error(`netplane demo: ${opts}\n${DEMO_USAGE}`);
    return 2;
  }
  const problem = demoPrivilegeProblem();
  if (problem !== undefined) {
    console.error(`netplane: ${problem}`);
    return 1;
  }
  let dp: NativeDataPlane;
  try {
    dp = new NativeDataPlane();
  } catch (e) {
    console.error(
      `netplane: the native data plane could not be loaded (${(e as Error).message.split('\n')[0]}); build it with npm install or npm run build:native`,
    );
    return 1;
  }

  const out = makeOutput(process.stdout);
  const say = (text: string): void => out.line(`netplane: ${text}`);
  const env = new DemoEnv();
  const removeHandlers = env.installSignalHandlers(say);
  const tag = process.pid.toString(36);
  const names = { nsA: `np-demo-${tag}-a`, nsB: `np-demo-${tag}-b`, tapA: `npd${tag}a`, tapB: `npd${tag}b` };
  const topology = new Topology({ dataPlane: dp, warn: (m) => say(`warning: ${m}`) });
  topology.on('error', (e) => say(e.message));
  dp.on('event', (e: TapDeadEvent) =>
    say(`${e.name}: the TAP interface is gone (${e.code} in ${e.syscall}); its link is down`),
  );

  const started = Date.now();
  let code = 0;
  let summaryShown = false;
  try {
    code = await demo(env, topology, dp, opts, names, out);
    summaryShown = true;
  } catch (e) {
    out.endLive();
    if (e instanceof Interrupted) {
      out.line(`interrupted by ${e.signal}: stopping the traffic and cleaning up`);
      code = 128 + (SIGNAL_NUMBERS[e.signal] ?? 0);
    } else {
      say(e instanceof Error ? e.message : String(e));
      code = 1;
    }
  } finally {
    out.endLive();
    // Counters so far, when the run did not get to its summary.
    if (!summaryShown && !dp.closed && topology.clients.length > 0) {
      try {
        if (summary(topology, dp, out, (Date.now() - started) / 1000, 'counters so far') !== 0 && code === 0) code = 1;
      } catch (e) {
        say(`no counters: ${(e as Error).message}`); // cleanup below must run regardless
      }
    }
    const problems = await teardown(env, topology, dp, names);
    removeHandlers();
    if (problems.length > 0) {
      for (const p of problems) say(`cleanup: ${p}`);
      if (code === 0) code = 1;
    } else {
      out.line(
        `cleanup: child processes stopped, TAPs ${names.tapA} and ${names.tapB} closed, namespaces ${names.nsA} and ${names.nsB} deleted; nothing left`,
      );
    }
  }
  return code;
}

/** Stop the children, close the TAPs (they vanish from the namespaces), delete the namespaces. */
async function teardown(
  env: DemoEnv,
  topology: Topology,
  dp: NativeDataPlane,
  names: Record<'nsA' | 'nsB' | 'tapA' | 'tapB', string>,
): Promise<string[]> {
  const problems: string[] = [];
  const step = async (what: string, fn: () => unknown): Promise<void> => {
    try {
      await fn();
    } catch (e) {
      problems.push(`${what}: ${(e as Error).message}`);
    }
  };
  await step('stopping child processes', () => env.stopChildren());
  await step('closing the TAPs', () => topology.close());
  await step('closing the data plane', () => dp.close());
  for (const p of env.deleteNamespaces()) problems.push(p);
  for (const ns of liveNamespaces([names.nsA, names.nsB])) problems.push(`namespace ${ns} still exists`);
  for (const tap of [names.tapA, names.tapB]) {
    if (fs.existsSync(`/sys/class/net/${tap}`)) problems.push(`interface ${tap} still exists`);
  }
  return problems;
}

async function demo(
  env: DemoEnv,
  topology: Topology,
  dp: NativeDataPlane,
  opts: DemoOptions,
  names: Record<'nsA' | 'nsB' | 'tapA' | 'tapB', string>,
  out: Output,
): Promise<number> {
  const started = Date.now();
  out.line('netplane demo: two namespaces, a netplane forwarder between them, real traffic');

  env.addNamespace(names.nsA);
  env.addNamespace(names.nsB);
  out.line(`  namespaces  ${names.nsA} (${ADDR_A}/24) and ${names.nsB} (${ADDR_B}/24)`);

  // The forwarder: what the netplane command line below builds, done through the library.
  const tapOpts = (id: string, ifname: string) => ({
    type: 'tap' as const,
    id,
    ifname,
    queues: opts.queues,
    vnet_hdr: true,
  });
  topology.addNetdev(tapOpts('a', names.tapA));
  topology.addNetdev(tapOpts('b', names.tapB));
  const q = opts.queues > 1 ? `,queues=${opts.queues}` : '';
  const cmd = [
    `-netdev tap,id=a,ifname=${names.tapA}${q},vnet_hdr=on`,
    `-netdev tap,id=b,ifname=${names.tapB}${q},vnet_hdr=on`,
  ];
  if (opts.hub) {
    topology.addNetdev({ type: 'hubport', id: 'pa', hubid: 0, netdev: 'a' });
    topology.addNetdev({ type: 'hubport', id: 'pb', hubid: 0, netdev: 'b' });
    cmd.push('-netdev hubport,id=pa,hubid=0,netdev=a', '-netdev hubport,id=pb,hubid=0,netdev=b');
  } else {
    topology.link('a', 'b');
    cmd.push('-link a,b');
  }
  out.line(`  forwarder   netplane ${cmd.join(' ')}`);
  const threads = [...new Set(dp.stats().map((s) => s.iothread))].join(', ');
  out.line(
    opts.hub
      ? `              TAP a <-> hub 0 <-> TAP b on IOThread ${threads}; vnet headers on both TAPs, so offloaded (GSO) frames cross the hub whole`
      : `              queue i of TAP a <-> queue i of TAP b, ${opts.queues > 1 ? `each queue pair on its own IOThread (${threads})` : `on IOThread ${threads}`}; vnet headers on, GSO frames pass through`,
  );
  env.adopt(names.nsA, names.tapA, `${ADDR_A}/24`);
  env.adopt(names.nsB, names.tapB, `${ADDR_B}/24`);

  // 1. a round trip: ping when installed, otherwise UDP echo probes sent by Node
  const probe = onPath('ping') ? await pingProbe(env, names) : await udpEchoProbe(env, names);
  out.line(
    `  ${probe.tool.padEnd(11)} ${ADDR_A} -> ${ADDR_B}: ${probe.received}/${PROBES} replies` +
      (probe.avgMs !== undefined ? `, average round trip ${probe.avgMs} ms` : ''),
  );
  if (probe.received === 0) throw new Error(`${probe.tool} got no reply across the forwarder: ${probe.detail}`);

  // 2. a TCP stream, with the live line
  const streams = Math.min(8, Math.max(2, 2 * opts.queues));
  const tool = opts.tcp;
  out.line(
    `  tcp         ${streams} streams ${ADDR_A} -> ${ADDR_B}:${PORT} for ${opts.seconds} s (${tool === 'iperf3' ? 'iperf3' : 'a Node TCP sender and sink'})`,
  );
  const live = new LiveRates(dp, opts.queues);
  const timer = setInterval(() => out.live(live.sample()), out.tty ? 250 : 1000);
  let result: StreamResult;
  try {
    result =
      tool === 'iperf3'
        ? await iperfStream(env, names, opts.seconds, streams)
        : await nodeStream(env, names, opts.seconds, streams);
  } finally {
    clearInterval(timer);
  }
  out.live(live.sample());
  out.endLive();
  out.line(
    `              received ${formatBits(result.bitsPerSecond)} (${formatBytes(result.bytes)} in ${result.seconds.toFixed(1)} s)`,
  );

  return summary(topology, dp, out, (Date.now() - started) / 1000, 'summary');
}

/** Counters table, totals and the conservation check; returns 0 when it holds. */
function summary(topology: Topology, dp: NativeDataPlane, out: Output, elapsed: number, title: string): number {
  const rows = netplaneStats(topology);
  out.line('');
  out.line(`${title} after ${elapsed.toFixed(1)} s (the data plane's counters, as HMP 'info netplane' shows them):`);
  for (const l of formatStatsTable(rows, { conservation: false }).trimEnd().split('\n')) out.line(`  ${l}`);
  const taps = rows.filter((r) => r.kind === 'tap');
  const delivered = deliveredIntoNamespaces(dp);
  const total = (pick: (r: NetplaneClientStats) => number) => rows.reduce((n, r) => n + pick(r), 0);
  const drops: Record<string, number> = {};
  for (const r of rows) for (const [k, v] of Object.entries(r.drops)) drops[k] = (drops[k] ?? 0) + v;
  out.line('');
  out.line(
    `  forwarded   ${delivered.frames} frames, ${formatBytes(delivered.bytes)} written into the namespaces` +
      ` (a->b ${delivered.aToB} frames, b->a ${delivered.bToA} frames)` +
      (delivered.frames > 0 ? `; average frame ${formatBytes(delivered.bytes / delivered.frames)}` : '') +
      (delivered.frames > 0 && delivered.bytes / delivered.frames > 1514 ? ' (GSO frames crossed whole)' : ''),
  );
  out.line(`  queued      ${total((r) => r.queued)}`);
  out.line(
    `  dropped     ${total((r) => r.dropped)}${total((r) => r.dropped) > 0 ? ` (${formatDrops(drops as NetplaneClientStats['drops'])})` : ''}`,
  );
  const bad = conservationViolations(rows);
  if (bad.length > 0) {
    out.line(`  conservation VIOLATED (in = out + queued + dropped):`);
    for (const b of bad) out.line(`    ${b}`);
    return 1;
  }
  out.line(
    `  conservation in = out + queued + dropped holds for all ${rows.length} clients (${taps.length} TAP queues)`,
  );
  return 0;
}

/** Frames the forwarder wrote into each namespace's TAP (the device side of the counters). */
function deliveredIntoNamespaces(dp: NativeDataPlane): { frames: number; bytes: number; aToB: number; bToA: number } {
  const raw = dp.stats();
  let aToB = 0;
  let bToA = 0;
  let bytes = 0;
  for (const s of raw) {
    if (s.kind !== 'tap') continue;
    if (s.name === 'b') aToB += s.deviceTxFrames;
    if (s.name === 'a') bToA += s.deviceTxFrames;
    bytes += s.deviceTxBytes;
  }
  return { frames: aToB + bToA, bytes, aToB, bToA };
}

// ---- live rates ----------------------------------------------------------------------------

/** Per-queue frames/s and bit rate written into the namespaces, from two stats() snapshots. */
class LiveRates {
  readonly #started = Date.now();
  #prev: { t: number; perQueue: Array<{ frames: number; bytes: number }> };

  constructor(
    readonly dp: NativeDataPlane,
    readonly queues: number,
  ) {
    this.#prev = { t: Date.now(), perQueue: this.#perQueue(dp.stats()) };
  }

  #perQueue(stats: ClientStats[]): Array<{ frames: number; bytes: number }> {
    const out = Array.from({ length: this.queues }, () => ({ frames: 0, bytes: 0 }));
    for (const s of stats) {
      if (s.kind !== 'tap' || s.queueIndex >= this.queues) continue;
      out[s.queueIndex]!.frames += s.deviceTxFrames;
      out[s.queueIndex]!.bytes += s.deviceTxBytes;
    }
    return out;
  }

  sample(): string {
    const stats = this.dp.stats();
    const now = Date.now();
    const perQueue = this.#perQueue(stats);
    const dt = Math.max(1e-3, (now - this.#prev.t) / 1000);
    const parts = perQueue.map((q, i) => {
      const p = this.#prev.perQueue[i]!;
      return `q${i} ${formatCount((q.frames - p.frames) / dt)} fr/s ${formatBits(((q.bytes - p.bytes) * 8) / dt)}`;
    });
    this.#prev = { t: now, perQueue };
    const dropped = stats.reduce((n, s) => n + s.dropped, 0);
    const queued = stats.reduce((n, s) => n + s.queued, 0);
    const reasons: Record<string, number> = {};
    for (const s of stats) for (const [k, v] of Object.entries(s.drops)) if (v > 0) reasons[k] = (reasons[k] ?? 0) + v;
    const why = Object.entries(reasons)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    const t = ((now - this.#started) / 1000).toFixed(1).padStart(5);
    return `  live ${t} s | ${parts.join(' | ')} | queued ${queued} | drops ${dropped}${why ? ` (${why})` : ''}`;
  }
}

// ---- round trips ---------------------------------------------------------------------------

const PROBES = 3;

interface ProbeResult {
  tool: string;
  received: number;
  avgMs?: string;
  detail: string;
}

async function pingProbe(env: DemoEnv, names: { nsA: string }): Promise<ProbeResult> {
  const r = await env.run(names.nsA, 'ping', ['-c', String(PROBES), '-i', '0.2', '-W', '1', ADDR_B], 6000);
  const received = Number(/(\d+) received/.exec(r.stdout)?.[1] ?? 0);
  const avgMs = /= [\d.]+\/([\d.]+)\/[\d.]+\/[\d.]+ ms/.exec(r.stdout)?.[1];
  return { tool: 'ping', received, avgMs, detail: `${r.stdout}${r.stderr}`.trim() };
}

// Without ping (a fresh machine has no iputils-ping): this very Node binary answers UDP
// datagrams inside namespace b, and another one inside namespace a sends PROBES of them,
// 200 ms apart, each waiting up to a second for its echo.
const UDP_ECHO = `
const s = require('dgram').createSocket('udp4');
s.on('message', (m, from) => s.send(m, from.port, from.address));
s.bind(Number(process.argv[2]), process.argv[1], () => console.log('ready'));
`;
const UDP_PROBE = `
const [host, port, count] = process.argv.slice(1);
const s = require('dgram').createSocket('udp4');
const rtts = [];
let sent = 0, timer;
const next = () => {
  if (sent === Number(count)) return finish();
  const seq = sent++, t0 = process.hrtime.bigint();
  s.removeAllListeners('message');
  s.on('message', (m) => {
    if (m.readUInt32BE(0) !== seq) return;
    clearTimeout(timer);
    rtts.push(Number(process.hrtime.bigint() - t0) / 1e6);
    setTimeout(next, 200);
  });
  const b = Buffer.alloc(56); b.writeUInt32BE(seq, 0);
  s.send(b, Number(port), host);
  timer = setTimeout(next, 1000);
};
const finish = () => { console.log(JSON.stringify({ received: rtts.length, rtts })); s.close(); };
s.bind(0, next);
`;

async function udpEchoProbe(env: DemoEnv, names: { nsA: string; nsB: string }): Promise<ProbeResult> {
  const tool = 'udp echo';
  const echo = env.spawnIn(names.nsB, process.execPath, ['-e', UDP_ECHO, ADDR_B, String(PORT)]);
  try {
    let ready = '';
    echo.stdout!.setEncoding('utf8').on('data', (d: string) => (ready += d));
    for (let i = 0; i < 100 && !ready.includes('ready'); i++) {
      if (echo.exitCode !== null)
        return { tool, received: 0, detail: 'the UDP echo server exited before it was ready' };
      await env.sleep(30);
    }
    const r = await env.run(
      names.nsA,
      process.execPath,
      ['-e', UDP_PROBE, ADDR_B, String(PORT), String(PROBES)],
      10_000,
    );
    const res = JSON.parse(r.stdout || '{}') as { received?: number; rtts?: number[] };
    const rtts = res.rtts ?? [];
    const avgMs = rtts.length > 0 ? (rtts.reduce((a, b) => a + b, 0) / rtts.length).toFixed(3) : undefined;
    return {
      tool,
      received: res.received ?? 0,
      avgMs,
      detail: `no UDP echo came back (install iputils-ping for ping) ${r.stderr}`.trim(),
    };
  } finally {
    echo.kill('SIGKILL');
  }
}

// ---- TCP streams ---------------------------------------------------------------------------

interface StreamResult {
  bitsPerSecond: number;
  bytes: number;
  seconds: number;
}

/** Poll until something listens on PORT inside the namespace. */
async function waitListening(env: DemoEnv, ns: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 60; i++) {
    if (env.nsExec(ns, 'ss', ['-ltnH', `sport = :${PORT}`]).trim() !== '') return;
    if (child.exitCode !== null) throw new Error('the TCP sink exited before listening');
    await env.sleep(50);
  }
  throw new Error(`nothing listens on ${ADDR_B}:${PORT} after 3 s`);
}

async function iperfStream(
  env: DemoEnv,
  names: { nsA: string; nsB: string },
  seconds: number,
  streams: number,
): Promise<StreamResult> {
  const server = env.spawnIn(names.nsB, 'iperf3', ['-s', '-1', '-B', ADDR_B, '-p', String(PORT)]);
  await waitListening(env, names.nsB, server);
  const r = await env.run(
    names.nsA,
    'iperf3',
    ['-c', ADDR_B, '-p', String(PORT), '-t', String(seconds), '-P', String(streams), '-J'],
    (seconds + 15) * 1000,
  );
  await env.waitExit(server, 3000);
  let json: { error?: string; end?: { sum_received?: { bits_per_second?: number; bytes?: number; seconds?: number } } };
  try {
    json = JSON.parse(r.stdout) as typeof json;
  } catch {
    throw new Error(`iperf3 gave no result (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  }
  if (json.error) throw new Error(`iperf3: ${json.error}`);
  const sum = json.end?.sum_received;
  if (!sum?.bits_per_second) throw new Error('iperf3 received nothing across the forwarder');
  return { bitsPerSecond: sum.bits_per_second, bytes: sum.bytes ?? 0, seconds: sum.seconds ?? seconds };
}

// A sink that counts bytes until every sender closed, and a sender that writes as fast as
// the socket takes it for a fixed time. Run with this very Node binary inside the namespaces.
const NODE_SINK = `
const net = require('net');
const [host, port, conns] = process.argv.slice(1);
let bytes = 0, closed = 0, first = 0;
const server = net.createServer((c) => {
  if (!first) first = Date.now();
  c.on('data', (d) => { bytes += d.length; });
  c.on('error', () => {});
  c.on('close', () => {
    if (++closed < Number(conns)) return;
    console.log(JSON.stringify({ bytes, seconds: (Date.now() - first) / 1000 }));
    server.close();
  });
});
server.listen(Number(port), host);
`;
const NODE_SENDER = `
const net = require('net');
const [host, port, conns, seconds] = process.argv.slice(1);
const chunk = Buffer.alloc(256 * 1024, 0x61);
const end = Date.now() + Number(seconds) * 1000;
for (let i = 0; i < Number(conns); i++) {
  const s = net.connect(Number(port), host, () => {
    const pump = () => {
      while (Date.now() < end) if (!s.write(chunk)) return void s.once('drain', pump);
      s.end();
    };
    pump();
  });
  s.on('error', (e) => { console.error(e.message); process.exitCode = 1; });
}
`;

async function nodeStream(
  env: DemoEnv,
  names: { nsA: string; nsB: string },
  seconds: number,
  streams: number,
): Promise<StreamResult> {
  const sink = env.spawnIn(names.nsB, process.execPath, ['-e', NODE_SINK, ADDR_B, String(PORT), String(streams)]);
  let sinkOut = '';
  sink.stdout!.setEncoding('utf8').on('data', (d: string) => (sinkOut += d));
  await waitListening(env, names.nsB, sink);
  const sender = await env.run(
    names.nsA,
    process.execPath,
    ['-e', NODE_SENDER, ADDR_B, String(PORT), String(streams), String(seconds)],
    (seconds + 15) * 1000,
  );
  if (sender.code !== 0) throw new Error(`the Node TCP sender failed: ${sender.stderr.trim()}`);
  await env.waitExit(sink, 5000);
  const r = JSON.parse(sinkOut || '{}') as { bytes?: number; seconds?: number };
  if (!r.bytes || !r.seconds) throw new Error('the Node TCP sink received nothing across the forwarder');
  return { bitsPerSecond: (r.bytes * 8) / r.seconds, bytes: r.bytes, seconds: r.seconds };
}

// ---- formatting ----------------------------------------------------------------------------

function formatBits(bps: number): string {
  if (bps >= 1e9) return `${(bps / 1e9).toFixed(2)} Gbit/s`;
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(1)} Mbit/s`;
  return `${(bps / 1e3).toFixed(1)} kbit/s`;
}

function formatBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${Math.round(n)} B`;
}

function formatCount(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return `${Math.round(n)}`;
}
