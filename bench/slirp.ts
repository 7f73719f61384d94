// node --import tsx bench/slirp.ts [--mib N] [--reps N]: TCP throughput through a user
// netdev (libslirp's NAT), from a namespace to a sink on the host's loopback (10.0.2.2 is
// the host's 127.0.0.1), for netplane (-netdev tap + -netdev user + -link) and for QEMU 7.2
// doing the same job (its tap and user netdevs joined by hub 0; -M none, no guest), interleaved
// A B A B. As root (it creates a namespace and a TAP, removes them again); the traffic stays
// on the host's loopback and in the namespace.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { NetNs, npName, sh } from '../test/helpers/netns';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const MIB = opt('--mib', 256);
const REPS = opt('--reps', 3);
const ROOT = path.join(__dirname, '..');

async function waitFor(what: string, ok: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A sink on the host's loopback: resolves with bytes and seconds from first byte to EOF. */
async function sink(): Promise<{ port: number; done: Promise<{ bytes: number; seconds: number }>; close(): void }> {
  let resolveDone!: (v: { bytes: number; seconds: number }) => void;
  const done = new Promise<{ bytes: number; seconds: number }>((r) => (resolveDone = r));
  const server = net.createServer((s) => {
    let bytes = 0;
    let t0 = 0n;
    s.on('data', (d) => {
      if (bytes === 0) t0 = process.hrtime.bigint();
      bytes += d.length;
    });
    s.on('end', () => {
      resolveDone({ bytes, seconds: Number(process.hrtime.bigint() - t0) / 1e9 });
      s.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, done, close: () => server.close() };
}

type Engine = 'netplane' | 'qemu';

function startEngine(engine: Engine, ifname: string): ChildProcess {
  if (engine === 'netplane') {
    return spawn(
      process.execPath,
      [
        path.join(ROOT, 'dist', 'cli', 'main.js'),
        '-netdev',
        `tap,id=t0,ifname=${ifname},vnet_hdr=on`,
        '-netdev',
        'user,id=u0',
        '-link',
        't0,u0',
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
  }
  return spawn(
    'qemu-system-x86_64',
    [
      // Not -S: QEMU sends no frame at all while the VM is stopped (qemu_can_send_packet).
      ...['-M', 'none', '-nodefaults', '-display', 'none'],
      ...['-netdev', `tap,id=t0,ifname=${ifname},script=no,downscript=no`, '-netdev', 'user,id=u0'],
      ...['-netdev', 'hubport,id=h0,hubid=0,netdev=t0', '-netdev', 'hubport,id=h1,hubid=0,netdev=u0'],
    ],
    { stdio: ['ignore', 'ignore', 'ignore'] },
  );
}

async function once(engine: Engine): Promise<number> {
  const ifname = npName('sb');
  const child = startEngine(engine, ifname);
  const ns = new NetNs('sb');
  const s = await sink();
  try {
    await waitFor(`${engine}'s TAP`, () => fs.existsSync(`/sys/class/net/${ifname}`), 20_000);
    sh('ip', ['link', 'set', ifname, 'netns', ns.name]);
    ns.disableIpv6();
    ns.exec('ip', ['addr', 'add', '10.0.2.15/24', 'dev', ifname]);
    ns.exec('ip', ['link', 'set', ifname, 'up']);
    ns.exec('ip', ['route', 'add', 'default', 'via', '10.0.2.2']);
    const sender = ns.spawn(process.execPath, [
      '-e',
      `const s = require('net').connect(${s.port}, '10.0.2.2');
       const chunk = Buffer.alloc(1 << 20, 0x61); let left = ${MIB};
       const pump = () => { while (left > 0) { left--; if (!s.write(chunk)) return s.once('drain', pump); } s.end(); };
       s.on('connect', pump); s.on('error', (e) => { console.error(e.message); process.exit(1); });`,
    ]);
    const r = await Promise.race([
      s.done,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${engine}: transfer timed out`)), 300_000)),
    ]);
    sender.kill();
    if (r.bytes !== MIB << 20) throw new Error(`${engine}: sink got ${r.bytes} of ${MIB << 20} bytes`);
    return (r.bytes * 8) / r.seconds / 1e9;
  } finally {
    s.close();
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    ns.dispose();
  }
}

async function main(): Promise<void> {
  const results: Record<Engine, number[]> = { netplane: [], qemu: [] };
  for (let i = 0; i < REPS; i++) {
    for (const engine of ['netplane', 'qemu'] as const) {
      const gbps = await once(engine);
      results[engine].push(gbps);
      console.log(
        `rep ${i + 1} ${engine}: ${gbps.toFixed(3)} Gbit/s (${MIB} MiB namespace -> host loopback via slirp)`,
      );
    }
  }
  const median = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
  const n = median(results.netplane);
  const q = median(results.qemu);
  console.log(`median netplane ${n.toFixed(3)} Gbit/s, qemu ${q.toFixed(3)} Gbit/s, ratio ${(n / q).toFixed(2)}`);
}

// Exit explicitly: a sink connection the kernel still holds must not keep the bench alive
// (the exit hook of test/helpers/netns.ts removes any namespace left).
main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
