// Two throwaway namespaces, each holding one TAP, with the forwarder (this process) holding
// both TAPs' fds in the root namespace: the topology of the data plane tests and the bench.
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { Tap, type TapOpenOptions } from '../../lib/tap';
import type { ClientStats } from '../../lib/dataplane/native-dataplane';
import { NetNs, npName } from './netns';

let subnet = 0;

export interface Side {
  ns: NetNs;
  tap: Tap;
  ifname: string;
  ip: string;
}

/** A TAP opened here, then moved into a fresh namespace and addressed (10.213.<n>.<host>/24). */
export function openSide(tag: string, host: number, net: number, opts: Omit<TapOpenOptions, 'ifname'> = {}): Side {
  const ifname = npName(tag);
  const tap = Tap.open({ ...opts, ifname });
  let ns: NetNs | undefined;
  try {
    ns = new NetNs(`${tag}n`);
    const ip = `10.213.${net}.${host}`;
    ns.adopt(ifname, `${ip}/24`);
    return { ns, tap, ifname, ip };
  } catch (e) {
    ns?.dispose();
    void tap.close();
    throw e;
  }
}

/** A pair of sides on one fresh /24. */
export function openPair(
  opts: { a?: Omit<TapOpenOptions, 'ifname'>; b?: Omit<TapOpenOptions, 'ifname'> } = {},
): [Side, Side] {
  const net = (process.pid + subnet++) % 250;
  const a = openSide('a', 1, net, opts.a);
  try {
    return [a, openSide('b', 2, net, opts.b)];
  } catch (e) {
    closeSide(a);
    throw e;
  }
}

export function closeSide(s: Side): void {
  s.ns.dispose(); // deletes the TAP interface's namespace (the TAP stays until its fds close)
  void s.tap.close();
}

/** ping from a side to an address; true when every probe got an answer. */
export function ping(from: Side, to: string, count = 3): boolean {
  const out = from.ns.exec('ping', ['-c', String(count), '-i', '0.2', '-W', '1', to], { allowFail: true });
  return new RegExp(`${count} received`).test(out);
}

/** Start an iperf3 server in a side; returns it (kill it when done). */
export async function iperfServer(side: Side): Promise<ChildProcess> {
  const server = side.ns.spawn('iperf3', ['-s', '-1', '-B', side.ip]);
  await waitForListen(side, 5201);
  return server;
}

async function waitForListen(side: Side, port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const out = side.ns.exec('ss', ['-ltnH', `sport = :${port}`], { allowFail: true });
    if (out.trim() !== '') return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on ${side.ip}:${port}`);
}

/** A TCP transfer with iperf3 (bounded by seconds); returns bits per second received. */
export async function iperf(client: Side, server: Side, args: string[] = [], seconds = 1): Promise<number> {
  const srv = await iperfServer(server);
  try {
    const out = await run(
      client.ns,
      'iperf3',
      ['-c', server.ip, '-t', String(seconds), '-J', ...args],
      (seconds + 15) * 1000,
    );
    const json = JSON.parse(out) as { end?: { sum_received?: { bits_per_second: number } }; error?: string };
    if (json.error) throw new Error(`iperf3: ${json.error}`);
    return json.end?.sum_received?.bits_per_second ?? 0;
  } finally {
    srv.kill('SIGKILL');
  }
}

/** Run a command in a namespace asynchronously (the event loop keeps turning). */
export function run(ns: NetNs, cmd: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = ns.spawn(cmd, args);
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err || out}`));
    });
  });
}

/** Assert-friendly list of clients whose counters do not add up. */
export function unconserved(stats: ClientStats[]): string[] {
  return stats
    .filter((s) => s.framesIn !== s.framesOut + s.queued + s.dropped)
    .map((s) => `${s.name}: in ${s.framesIn} != out ${s.framesOut} + queued ${s.queued} + dropped ${s.dropped}`);
}

/** CPU seconds (user + system) this process used so far, from /proc/self/stat. */
export function cpuSeconds(): number {
  const stat = fs.readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14, 15)
  return ticks / 100;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
