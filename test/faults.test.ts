// Faults injected while traffic flows through the native data plane: TAP interfaces deleted
// under a ping flood, netdevs deleted and re-added under a UDP flood (Topology API and
// QMP), set_link flapping at a high rate, JavaScript consumers that throw or stop reading,
// signals to the CLI while its IOThreads forward, and QMP clients that misbehave while the
// CLI forwards. After each: no crash, every client's counters add up (in = out + queued +
// dropped), no fd left behind. Each test is bounded (well under 60 s); bench/soak.ts is the
// long version of "keeps forwarding without leaking".
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NativeDataPlane, type ClientStats, type TapDeadEvent } from '../lib/dataplane/native-dataplane';
import { serveQmp } from '../lib/control';
import { Topology } from '../lib/topology/topology';
import { cpuSeconds, sleep, unconserved } from './helpers/dataplane-env';
import { NetNs, npName, openFdCount, openFds, fdsOpenedSince } from './helpers/netns';
import { needsPrivileged } from './helpers/tools';
import { QmpProcess, tempDir } from './helpers/qemu';
import { QmpTestClient } from './helpers/qmp-client';

const CLI = path.join(__dirname, '..', 'lib', 'cli', 'main.ts');
const NODE_ARGS = ['--import', 'tsx', CLI];
// 20 rounds in `npm test`; `npm run bench:faults` repeats each fault 200 times.
const ROUNDS = Math.max(1, Number(process.env.NETPLANE_FAULT_ROUNDS ?? 20));
const LONG = { timeout: Math.max(90_000, ROUNDS * 4_000) };

type SideId = 'a' | 'b';
const other = (s: SideId): SideId => (s === 'a' ? 'b' : 'a');
const MAC: Record<SideId, string> = { a: '02:5a:00:00:00:01', b: '02:5a:00:00:00:02' };

let subnet = 0;

/**
 * Two namespaces and the addresses of one /24; TAPs are created by whoever runs the
 * forwarder (this process's Topology, or the CLI) and moved in with place().
 */
class Bed {
  readonly ns: Record<SideId, NetNs>;
  readonly ip: Record<SideId, string>;
  readonly #children = new Set<ChildProcess>();

  constructor() {
    const net = (process.pid + 37 * subnet++) % 250;
    this.ip = { a: `10.214.${net}.1`, b: `10.214.${net}.2` };
    const a = new NetNs('fa');
    let b: NetNs;
    try {
      b = new NetNs('fb');
    } catch (e) {
      a.dispose();
      throw e;
    }
    this.ns = { a, b };
    for (const ns of [a, b]) {
      // No IPv6: its router solicitations would be the only frames not from our floods.
      ns.disableIpv6();
    }
  }

  /** Move a root-namespace TAP into side s, address it, pin the other side's MAC. */
  place(s: SideId, ifname: string): void {
    const ns = this.ns[s];
    ns.adopt(ifname, `${this.ip[s]}/24`, MAC[s]);
    ns.exec('ip', ['neigh', 'replace', this.ip[other(s)], 'lladdr', MAC[other(s)], 'dev', ifname, 'nud', 'permanent']);
  }

  /** A long-running command in side s, killed by stop() or dispose(). */
  spawn(s: SideId, cmd: string, args: string[]): ChildProcess {
    const child = this.ns[s].spawn(cmd, args, { stdio: 'ignore' });
    this.#children.add(child);
    child.once('close', () => this.#children.delete(child));
    return child;
  }

  /** A UDP flood from s to the other side's discard port, bounded by `seconds`. */
  flood(s: SideId, seconds: number, bytes = 200, port = 9): ChildProcess {
    return this.spawn(s, 'timeout', [
      String(seconds),
      'socat',
      '-u',
      '-b',
      String(bytes),
      '/dev/zero',
      `UDP-SENDTO:${this.ip[other(s)]}:${port}`,
    ]);
  }

  /** Kill a child and wait until its pipes are closed (so fd counts are comparable). */
  async stop(child: ChildProcess): Promise<void> {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    if (this.#children.has(child)) await new Promise((r) => child.once('close', r));
  }

  /** rx_packets of an interface inside side s (0 when it is not there). */
  rxPackets(s: SideId, ifname: string): number {
    return Number(
      this.ns[s].exec('cat', [`/sys/class/net/${ifname}/statistics/rx_packets`], { allowFail: true }).trim() || 0,
    );
  }

  async dispose(): Promise<void> {
    for (const c of [...this.#children]) await this.stop(c);
    this.ns.a.dispose();
    this.ns.b.dispose();
  }
}

/** This process's fd count once it stopped changing. */
async function settledFds(): Promise<number> {
  let last = -1;
  for (let i = 0; i < 40 && openFdCount() !== last; i++) {
    last = openFdCount();
    await sleep(25);
  }
  return last;
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** A Topology over a NativeDataPlane in this process, with TAP netdevs a and b placed in a Bed. */
class Forwarder {
  readonly dp = new NativeDataPlane();
  readonly topo = new Topology({ dataPlane: this.dp, warn: (m) => this.warnings.push(m) });
  readonly warnings: string[] = [];
  readonly events: TapDeadEvent[] = [];
  readonly ifname: Partial<Record<string, string>> = {};

  constructor(readonly bed: Bed) {
    this.dp.on('event', (e: TapDeadEvent) => this.events.push(e));
  }

  /** netdev_add a TAP with a fresh interface name and place it in side s. */
  addTap(s: SideId, via?: QmpTestClient): Promise<void> | void {
    const ifname = npName(`f${s}`);
    this.ifname[s] = ifname;
    if (via) {
      return via.execute('netdev_add', { type: 'tap', id: s, ifname, vnet_hdr: true }).then((r) => {
        assert.deepEqual(r, { return: {} }, `QMP netdev_add ${s}`);
        this.bed.place(s, ifname);
      });
    }
    this.topo.addNetdev({ type: 'tap', id: s, ifname, vnet_hdr: true });
    this.bed.place(s, ifname);
  }

  stats(): ClientStats[] {
    return this.dp.stats();
  }

  /** The client of netdev `name` (queue 0). */
  stat(name: string): ClientStats {
    const s = this.dp.stats().find((c) => c.name === name && c.queueIndex === 0);
    assert.ok(s, `no client ${name}`);
    return s;
  }

  async close(): Promise<void> {
    await this.topo.close();
    this.dp.close();
  }
}

async function withForwarder(body: (f: Forwarder, bed: Bed) => Promise<void>): Promise<void> {
  await settledFds();
  const fds0 = openFds();
  const bed = new Bed();
  const f = new Forwarder(bed);
  try {
    await body(f, bed);
    assert.deepEqual(unconserved(f.stats()), [], 'every client: in = out + queued + dropped');
  } finally {
    await bed.dispose().catch(() => {});
    await f.close();
  }
  assert.deepEqual(await fdsOpenedSince(fds0), [], 'no fd left open after closing');
}

/** RSS after a full garbage collection (gc exposed at run time: no node flag needed). */
function rssAfterGc(): number {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  gc();
  return process.memoryUsage().rss;
}

describe('faults under load: the native data plane in this process', needsPrivileged('ping', 'socat'), () => {
  test(
    `a TAP deleted under a ping flood, ${ROUNDS} times: tap-dead, link down, no spinning core, no fd left`,
    LONG,
    async () => {
      await withForwarder(async (f, bed) => {
        f.addTap('a');
        f.addTap('b');
        f.topo.link('a', 'b');
        let fdsAfterReopen: number | undefined;
        for (let round = 0; round < ROUNDS; round++) {
          // Alternate: the receiver of the flood (writes fail) and the sender (reads fail).
          const victim: SideId = round % 2 === 0 ? 'b' : 'a';
          const survivor = other(victim);
          const ifname = f.ifname[victim]!;
          const ping = bed.spawn(survivor, 'ping', ['-f', '-w', '10', bed.ip[victim]]);
          try {
            const tx0 = f.stat(victim).deviceTxFrames;
            await waitFor(
              () => f.stat(victim).deviceTxFrames > tx0 + 50,
              5000,
              `the flood to reach ${victim} (round ${round})`,
            );
            const seen = f.events.length;
            bed.ns[victim].exec('ip', ['link', 'del', ifname]);
            await waitFor(() => f.events.length > seen, 3000, `tap-dead for ${victim} (round ${round})`);
            assert.equal(f.events.length, seen + 1, 'exactly one event per deleted TAP');
            const ev = f.events[seen]!;
            assert.equal(ev.type, 'tap-dead');
            assert.equal(ev.name, victim);
            assert.ok(['EBADFD', 'EIO', 'ENODEV'].includes(ev.code), `errno ${ev.code}`);
            const dead = f.stat(victim);
            assert.ok(dead.dead && dead.linkDown, `round ${round}: ${victim} is dead and its link down`);
            // The flood goes on at ping -f's idle rate (100/s, no replies): frames towards the
            // dead TAP are counted drops, and its fd is no longer polled.
            await sleep(100);
            const wakeups = f.stat(victim).wakeups;
            const cpu0 = cpuSeconds();
            await sleep(1000);
            const used = cpuSeconds() - cpu0;
            assert.ok(
              used < 0.3,
              `round ${round}: the process used ${used.toFixed(2)} s of CPU in the second after the delete`,
            );
            assert.equal(f.stat(victim).wakeups, wakeups, 'the dead fd is not polled');
            if (victim === 'b') assert.ok(f.stat('b').drops.deadDevice > 0, 'frames towards the dead TAP are counted');
          } finally {
            await bed.stop(ping);
          }
          assert.deepEqual(unconserved(f.stats()), [], `round ${round}: conservation`);
          // Reopen: netdev_del of the dead netdev, a new TAP under the same id, linked again.
          await f.topo.netdevs.get(victim)!.close();
          f.addTap(victim);
          f.topo.link('a', 'b');
          const fds = await settledFds();
          fdsAfterReopen ??= fds;
          assert.equal(fds, fdsAfterReopen, `round ${round}: no fd left behind by the dead TAP`);
        }
        assert.equal(f.events.length, ROUNDS);
        // After all that, the last pair still forwards.
        const out = bed.ns.a.exec('ping', ['-c', '2', '-i', '0.2', '-W', '1', bed.ip.b], { allowFail: true });
        assert.match(out, /2 received/);
      });
    },
  );

  test(
    `netdev_del and netdev_add of the same ids under a UDP flood, ${ROUNDS} times (Topology API and QMP)`,
    LONG,
    async () => {
      const dir = tempDir('faults-qmp');
      try {
        await withForwarder(async (f, bed) => {
          const qmp = await serveQmp(f.topo, { path: path.join(dir, 'qmp.sock'), errorReport: () => {} });
          const { client } = await QmpTestClient.open(path.join(dir, 'qmp.sock'));
          try {
            f.addTap('a');
            f.addTap('b');
            f.topo.addNetdev({ type: 'hubport', id: 'pa', hubid: 0, netdev: 'a' });
            f.topo.addNetdev({ type: 'hubport', id: 'pb', hubid: 0, netdev: 'b' });
            const flood = bed.flood('a', 10 + ROUNDS * 4);
            const deleted: string[] = [];
            f.topo.on('netdev-deleted', (n) => deleted.push(n.id));
            let fdsRef: number | undefined;
            let viaQmp = 0;
            for (let round = 0; round < ROUNDS; round++) {
              const qmpRound = round % 4 === 3;
              const ifname = f.ifname.b!;
              // Frames reach the current B before it goes.
              const tx0 = f.stat('b').deviceTxFrames;
              await waitFor(
                () => f.stat('b').deviceTxFrames > tx0 + 100,
                5000,
                `the flood to reach b (round ${round})`,
              ).catch((e: Error) => {
                throw new Error(
                  `${e.message}: ${JSON.stringify(f.stats().map((c) => [c.name, c.handle, c.peer, c.hubId, c.framesIn, c.framesOut, c.deviceTxFrames, c.drops]))}`,
                );
              });
              assert.ok(bed.rxPackets('b', ifname) > 0, `round ${round}: namespace B received frames on ${ifname}`);
              if (qmpRound) {
                viaQmp++;
                const b = f.topo.netdevs.get('b')!;
                assert.deepEqual(await client.execute('netdev_del', { id: 'pb' }), { return: {} });
                assert.deepEqual(await client.execute('netdev_del', { id: 'b' }), { return: {} });
                await b.closing;
                await f.addTap('b', client);
                assert.deepEqual(
                  await client.execute('netdev_add', { type: 'hubport', id: 'pb', hubid: 0, netdev: 'b' }),
                  { return: {} },
                );
              } else {
                await f.topo.netdevs.get('pb')!.close();
                const b = f.topo.netdevs.get('b')!;
                f.topo.delNetdev('b');
                await b.closing;
                f.addTap('b');
                f.topo.addNetdev({ type: 'hubport', id: 'pb', hubid: 0, netdev: 'b' });
              }
              assert.deepEqual(deleted.splice(0), ['pb', 'b'], `round ${round}: both netdevs deleted`);
              assert.deepEqual([...f.topo.netdevs.keys()].sort(), ['a', 'b', 'pa', 'pb']);
              assert.deepEqual(unconserved(f.stats()), [], `round ${round}: conservation`);
              const fds = await settledFds();
              fdsRef ??= fds;
              assert.equal(fds, fdsRef, `round ${round}: fd count stable across netdev_del/netdev_add`);
            }
            assert.equal(viaQmp, Math.floor(ROUNDS / 4));
            const tx0 = f.stat('b').deviceTxFrames;
            await waitFor(() => f.stat('b').deviceTxFrames > tx0 + 100, 5000, 'the flood to reach the last b');
            await bed.stop(flood);
            // Every frame A read was accounted for somewhere: forwarded or a named drop.
            const a = f.stat('a');
            assert.ok(a.deviceRxFrames > 10_000, `frames read from A: ${a.deviceRxFrames}`);
            assert.equal(a.dropped, 0, 'A itself never drops: the hub takes everything');
          } finally {
            client.close();
            await qmp.close();
          }
        });
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  test('set_link flapping at a high rate under a UDP flood: drops only while down, all counted', LONG, async () => {
    await withForwarder(async (f, bed) => {
      f.addTap('a');
      f.addTap('b');
      f.topo.link('a', 'b');
      const flood = bed.flood('a', 10 + ROUNDS);
      const linkDownDrops = (): number => f.stats().reduce((n, s) => n + s.drops.linkDown, 0);
      const otherDrops = (): number => f.stats().reduce((n, s) => n + s.dropped - s.drops.linkDown, 0);
      const delivered = (): number => f.stat('b').deviceTxFrames;
      try {
        await waitFor(() => delivered() > 1000, 5000, 'the flood to reach b');
        let droppedWhileDown = 0;
        let deliveredWhileUp = 0;
        const flaps = ROUNDS * 15;
        for (let i = 0; i < flaps; i++) {
          // set_link returns once the owning IOThread applied it; stats() is a snapshot taken
          // on that thread. So between an "up" snapshot pair the link was up throughout.
          const name = i % 2 === 0 ? 'b' : 'a';
          f.topo.setLink(name, false);
          const d0 = linkDownDrops();
          await sleep(3);
          const d1 = linkDownDrops();
          droppedWhileDown += d1 - d0;
          f.topo.setLink(name, true);
          const u0 = linkDownDrops();
          const t0 = delivered();
          await sleep(3);
          assert.equal(linkDownDrops(), u0, `flap ${i}: a linkDown drop while every link was up`);
          deliveredWhileUp += delivered() - t0;
        }
        // And as fast as the control path goes, without pauses.
        for (let i = 0; i < 2000; i++) f.topo.setLink('b', i % 2 === 1);
        assert.equal(f.stat('b').linkDown, false);
        const up0 = linkDownDrops();
        const t0 = delivered();
        await sleep(200);
        assert.equal(linkDownDrops(), up0, 'no linkDown drop after the last set_link up');
        assert.ok(delivered() > t0, 'frames flow again after the flapping');
        assert.ok(droppedWhileDown > 0, 'frames were dropped (and counted) while down');
        assert.ok(deliveredWhileUp > 0, 'frames were delivered while up');
        assert.equal(
          otherDrops(),
          0,
          `no drop for any other reason: ${JSON.stringify(f.stats().map((s) => [s.name, s.drops]))}`,
        );
      } finally {
        await bed.stop(flood);
      }
      assert.deepEqual(unconserved(f.stats()), []);
    });
  });

  test(
    'a JavaScript consumer that throws, or stops reading: the engine goes on, RSS bounded, drops counted',
    { timeout: 60_000 },
    async () => {
      await withForwarder(async (f, bed) => {
        // The namespace floods a packet port; a TAP-TAP pair on the same data plane is
        // watched too: a bad consumer must not stop anything else.
        f.addTap('a');
        const port = f.dp.createPort('js', { whenFull: 'drop', ringBytes: 256 * 1024 });
        f.dp.connect(f.topo.netdevs.get('a')!.clients[0]!.handle, port.handle);
        // Errors thrown by the consumer surface as uncaught exceptions (as from any callback);
        // count them here instead of letting them end the test process. Only the first is
        // kept: tens of thousands of retained Errors would be the test's own memory growth.
        let thrown = 0;
        let firstError: unknown;
        process.setUncaughtExceptionCaptureCallback((e) => {
          if (thrown++ === 0) firstError = e;
        });
        const rss0 = rssAfterGc();
        const flood = bed.flood('a', 30, 1000);
        try {
          // 1. A callback consumer that throws on every batch.
          let calls = 0;
          const stop = port.onFrames(() => {
            calls++;
            throw new Error(`consumer bug ${calls}`);
          });
          await waitFor(() => calls >= 20, 5000, 'batches to reach the throwing consumer');
          await sleep(1500);
          stop();
          await sleep(50);
          assert.ok(calls >= 20, `the throwing consumer kept being called: ${calls}`);
          assert.equal(thrown, calls, 'every throw surfaced once as an uncaught exception');
          assert.match(String(firstError), /consumer bug 1/);

          // 2. A for-await consumer that throws out of its loop, then nobody reads.
          await assert.rejects(
            (async () => {
              for await (const batch of port) if (batch.length > 0) throw new Error('iterator consumer bug');
            })(),
            /iterator consumer bug/,
          );
          const s0 = f.stats().find((c) => c.name === 'js')!;
          const a0 = f.stat('a');
          const rssUnread0 = rssAfterGc();
          await sleep(1500);
          const s1 = f.stats().find((c) => c.name === 'js')!;
          const a1 = f.stat('a');
          assert.ok(a1.deviceRxFrames > a0.deviceRxFrames, 'the engine still reads the TAP');
          assert.ok(
            s1.drops.queueFull > s0.drops.queueFull,
            'a full ring with nobody reading: drops counted as queueFull',
          );
          assert.ok(s1.queued <= 1);
          // After a full collection: what the engine and the port hold, not garbage V8 has yet
          // to collect (its timing depends on the load).
          const rss1 = rssAfterGc();
          const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
          assert.ok(
            rss1 - rssUnread0 < 8 * 1024 * 1024,
            `RSS grew by ${mib(rss1 - rssUnread0)} while nobody read the flooded port`,
          );
          assert.ok(rss1 - rss0 < 32 * 1024 * 1024, `RSS grew by ${mib(rss1 - rss0)} over the whole test`);

          // 3. A new consumer picks up where the others left.
          let got = 0;
          const stop2 = port.onFrames((batch) => (got += batch.length));
          await waitFor(() => got > 100, 5000, 'frames for a well-behaved consumer');
          stop2();
        } finally {
          process.setUncaughtExceptionCaptureCallback(null);
          await bed.stop(flood);
        }
        await sleep(50);
        assert.deepEqual(unconserved(f.stats()), []);
      });
    },
  );
});

describe('faults under load: the netplane CLI', needsPrivileged('socat'), () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    test(
      `${signal} while two IOThreads forward floods: exit 0, downscripts run, no TAP left`,
      { timeout: 60_000 },
      async () => {
        const bed = new Bed();
        const dir = tempDir('faults-sig');
        const ifA = npName('sa');
        const ifB = npName('sb');
        const marker = path.join(dir, 'down.log');
        const down = path.join(dir, 'down.sh');
        fs.writeFileSync(down, `#!/bin/sh\necho "down $1" >> ${marker}\n`, { mode: 0o755 });
        let proc: QmpProcess | undefined;
        try {
          const tap = (id: string, ifname: string) =>
            `tap,id=${id},ifname=${ifname},queues=2,vnet_hdr=on,script=no,downscript=${down}`;
          proc = await QmpProcess.start(
            process.execPath,
            [...NODE_ARGS, '-netdev', tap('a', ifA), '-netdev', tap('b', ifB), '-link', 'a,b'],
            {
              ifnames: [ifA, ifB],
            },
          );
          const c = await proc.connect();
          bed.place('a', ifA);
          bed.place('b', ifB);
          // Several flows both ways so both queues (one IOThread each) carry traffic.
          for (let p = 0; p < 4; p++) {
            bed.flood('a', 30, 200, 9 + p);
            bed.flood('b', 30, 200, 9 + p);
          }
          await waitFor(
            () => bed.rxPackets('b', ifB) > 20_000 && bed.rxPackets('a', ifA) > 20_000,
            15_000,
            'the floods to cross',
          );
          proc.child.kill(signal);
          assert.deepEqual((await c.nextEvent('SHUTDOWN', 10_000)).data, { guest: false, reason: 'host-signal' });
          assert.equal(await proc.waitExit(20_000), true, 'the CLI exits');
          assert.equal(proc.exitCode, 0, proc.stderr);
          assert.match(proc.stderr, new RegExp(`terminating on signal ${signal === 'SIGTERM' ? 15 : 2}\\n`));
          assert.doesNotMatch(proc.stderr, /Segmentation|Aborted|FATAL|terminate called/);
          assert.deepEqual(
            fs.readFileSync(marker, 'utf8').trim().split('\n').sort(),
            [`down ${ifA}`, `down ${ifB}`].sort(),
          );
          // Non-persistent TAPs vanish with their last fd, in whichever namespace they are.
          assert.equal(bed.ns.a.exec('ip', ['link', 'show', ifA], { allowFail: true }), '');
          assert.equal(bed.ns.b.exec('ip', ['link', 'show', ifB], { allowFail: true }), '');
          assert.equal(fs.existsSync(proc.socketPath), false, 'QMP socket removed');
        } finally {
          await bed.dispose();
          await proc?.stop();
          fs.rmSync(dir, { recursive: true, force: true });
        }
      },
    );
  }

  test(
    'QMP clients that vanish mid-command, stop half-way or flood, while the CLI forwards: others unaffected',
    { timeout: 60_000 },
    async () => {
      const bed = new Bed();
      const ifA = npName('qa');
      const ifB = npName('qb');
      const added = Array.from({ length: 6 }, () => npName('qx'));
      let proc: QmpProcess | undefined;
      const sockets: import('node:net').Socket[] = [];
      try {
        proc = await QmpProcess.start(
          process.execPath,
          [...NODE_ARGS, '-netdev', `tap,id=a,ifname=${ifA}`, '-netdev', `tap,id=b,ifname=${ifB}`, '-link', 'a,b'],
          {
            ifnames: [ifA, ifB, ...added],
          },
        );
        const good = await proc.connect();
        bed.place('a', ifA);
        bed.place('b', ifB);
        const flood = bed.flood('a', 40);
        await waitFor(() => bed.rxPackets('b', ifB) > 5000, 10_000, 'the flood to cross');

        // A flooder that writes commands and never reads its replies.
        const net = await import('node:net');
        const flooder = net.connect(proc.socketPath);
        sockets.push(flooder);
        flooder.on('error', () => {});
        await new Promise<void>((r) => flooder.once('connect', () => r()));
        flooder.pause();
        const burst = Buffer.from('{"execute":"qmp_capabilities"}' + '{"execute":"query-commands"}'.repeat(2000));
        for (let i = 0; i < 100 && flooder.writableLength < 8 << 20; i++) flooder.write(burst);

        // Clients that vanish right after a command that creates a TAP, or in the middle of one.
        for (let i = 0; i < added.length; i++) {
          const bad = await QmpTestClient.connect(proc.socketPath);
          const cmd = `{"execute":"qmp_capabilities"}{"execute":"netdev_add","arguments":{"type":"tap","id":"x${i}","ifname":"${added[i]}"}}`;
          bad.sendRaw(i % 2 === 0 ? cmd : cmd.slice(0, cmd.length - 7));
          if (i % 3 === 0) bad.close();
          else if (i % 3 === 1) bad.socket.end();
          else setTimeout(() => bad.close(), 5);
        }
        // Half a message from a client that stays connected.
        const half = await QmpTestClient.connect(proc.socketPath);
        sockets.push(half.socket);
        half.sendRaw('{"execute":"qmp_capabilities"}{"execute":"netdev_add","arguments":{"type":"tap",');

        // The well-behaved client is answered at once, and traffic keeps flowing.
        const t0 = Date.now();
        assert.deepEqual(await good.execute('query-version', undefined, 'ok'), {
          return: (await good.execute('query-version')).return,
          id: 'ok',
        });
        assert.ok(Date.now() - t0 < 3000, `answered in ${Date.now() - t0} ms`);
        const rx0 = bed.rxPackets('b', ifB);
        await sleep(500);
        assert.ok(bed.rxPackets('b', ifB) > rx0 + 1000, 'the flood still crosses');
        // Commands of the vanished clients ran (their TAPs exist) or were cut before the end;
        // either way the good client can remove what exists.
        const info = await good.hmp('info network');
        assert.match(info, new RegExp(`a: index=0,type=tap,ifname=${ifA}`));
        for (let i = 0; i < added.length; i++) {
          if (info.includes(`x${i}:`))
            assert.deepEqual(await good.execute('netdev_del', { id: `x${i}` }), { return: {} });
        }
        // x4: a complete command, then end(): the bytes were flushed before the FIN, so it ran.
        assert.ok(info.includes('x4:'), 'a complete command from a client that hung up at once still ran');
        assert.ok(!info.includes('x1:') && !info.includes('x3:') && !info.includes('x5:'), 'half commands did nothing');
        await bed.stop(flood);
        proc.child.kill('SIGTERM');
        assert.equal(await proc.waitExit(20_000), true);
        assert.equal(proc.exitCode, 0, proc.stderr);
      } finally {
        for (const s of sockets) s.destroy();
        await bed.dispose();
        await proc?.stop();
      }
    },
  );
});
