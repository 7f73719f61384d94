// The native data plane forwarding real traffic between two namespaces: each holds one TAP,
// this process holds both fds in the root namespace and forwards natively (IOThreads).
// After every test, every client's counters must add up: in = out + queued + dropped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { NativeDataPlane, type ClientStats, type TapDeadEvent } from '../lib/dataplane/native-dataplane';
import { needsPrivileged } from './helpers/tools';
import {
  closeSide,
  cpuSeconds,
  iperf,
  openPair,
  ping,
  run,
  sleep,
  unconserved,
  type Side,
} from './helpers/dataplane-env';
import type { TapOpenOptions } from '../lib/tap';

type Wiring = 'direct' | 'hub';

interface Rig {
  a: Side;
  b: Side;
  dp: NativeDataPlane;
  stat(name: string, queue?: number): ClientStats;
}

// io-uring=on takes effect unless the kernel forbids io_uring to root (io_uring_disabled=2);
// otherwise the TAPs must report the read/write fallback.
function ioUringExpected(): boolean {
  try {
    return fs.readFileSync('/proc/sys/kernel/io_uring_disabled', 'utf8').trim() !== '2';
  } catch {
    return true; // kernels before 6.6 have no switch
  }
}
/** The TAP tests run on both paths: read/write per frame, and io_uring batches. */
const kIoUringModes = [false, true] as const;
const uringLabel = (ioUring: boolean): string => (ioUring ? ', io-uring=on' : '');

/** Wire queue i of A to queue i of B, directly or through hub 0 (hub ports 100+). */
function wire(dp: NativeDataPlane, a: Side, b: Side, how: Wiring, queues = 1, ioUring = false): void {
  for (let q = 0; q < queues; q++) {
    dp.addClient({
      handle: 10 + q,
      kind: 'tap',
      name: 'ta',
      queueIndex: q,
      fd: a.tap.fd(q),
      vnetHdrLen: a.tap.vnetHdrLen,
      ioUring,
    });
    dp.addClient({
      handle: 20 + q,
      kind: 'tap',
      name: 'tb',
      queueIndex: q,
      fd: b.tap.fd(q),
      vnetHdrLen: b.tap.vnetHdrLen,
      ioUring,
    });
  }
  if (how === 'direct') {
    for (let q = 0; q < queues; q++) dp.connect(10 + q, 20 + q);
    return;
  }
  dp.addClient({ handle: 100, kind: 'hubport', name: 'hub0port0', queueIndex: 0, hubId: 0 });
  dp.addClient({ handle: 101, kind: 'hubport', name: 'hub0port1', queueIndex: 0, hubId: 0 });
  dp.connect(10, 100);
  dp.connect(20, 101);
}

async function withRig(
  opts: {
    a?: Omit<TapOpenOptions, 'ifname'>;
    b?: Omit<TapOpenOptions, 'ifname'>;
    how?: Wiring;
    queues?: number;
    autoOffloads?: boolean;
    ioUring?: boolean;
  },
  body: (rig: Rig) => Promise<void>,
): Promise<void> {
  const [a, b] = openPair({ a: opts.a, b: opts.b });
  const dp = new NativeDataPlane({ autoOffloads: opts.autoOffloads });
  try {
    wire(dp, a, b, opts.how ?? 'direct', opts.queues ?? 1, opts.ioUring);
    const uring = opts.ioUring === true && ioUringExpected();
    for (const c of dp.stats().filter((s) => s.kind === 'tap'))
      assert.equal(c.ioUring, uring, `${c.name}.${c.queueIndex}: io_uring in use`);
    const stat = (name: string, queue = 0): ClientStats => {
      const s = dp.stats().find((c) => c.name === name && c.queueIndex === queue);
      assert.ok(s, `no client ${name} queue ${queue}`);
      return s;
    };
    await body({ a, b, dp, stat });
    assert.deepEqual(unconserved(dp.stats()), [], 'every client: in = out + queued + dropped');
  } finally {
    dp.close();
    closeSide(a);
    closeSide(b);
  }
}

for (const [how, ioUring] of kIoUringModes.flatMap((u) => (['direct', 'hub'] as const).map((h) => [h, u] as const))) {
  test(
    `tap-${how === 'hub' ? 'hub-' : ''}tap: ping and TCP cross in both directions${uringLabel(ioUring)}`,
    { ...needsPrivileged('ping', 'iperf3'), timeout: 60_000 },
    async () => {
      await withRig({ a: { vnetHdr: 'on' }, b: { vnetHdr: 'on' }, how, ioUring }, async ({ a, b, stat }) => {
        assert.ok(ping(a, b.ip), `ping ${a.ip} -> ${b.ip}`);
        assert.ok(ping(b, a.ip), `ping ${b.ip} -> ${a.ip}`);
        const ab = await iperf(a, b);
        const ba = await iperf(a, b, ['-R']);
        assert.ok(ab > 50e6, `A->B TCP ${ab} bit/s`);
        assert.ok(ba > 50e6, `B->A TCP ${ba} bit/s`);
        assert.ok(stat('ta').deviceRxFrames > 0 && stat('tb').deviceRxFrames > 0);
        if (how === 'hub') assert.equal(stat('hub0port0').hubId, 0);
      });
    },
  );
}

for (const ioUring of kIoUringModes)
  test(
    `GSO frames of up to 64 KiB cross untouched when both TAPs speak the vnet header${uringLabel(ioUring)}`,
    { ...needsPrivileged('iperf3'), timeout: 60_000 },
    async () => {
      await withRig({ a: { vnetHdr: 'on' }, b: { vnetHdr: 'on' }, how: 'hub', ioUring }, async ({ a, b, stat }) => {
        assert.notEqual(stat('ta').offloads, 0, 'offloads enabled on A');
        assert.notEqual(stat('tb').offloads, 0, 'offloads enabled on B');
        const bps = await iperf(a, b);
        const tb = stat('tb');
        const avg = tb.deviceTxBytes / tb.deviceTxFrames;
        assert.ok(avg > 3000, `average frame written to B is ${avg.toFixed(0)} bytes: GSO frames passed through`);
        assert.equal(tb.segments, 0, 'nothing segmented in software');
        assert.ok(bps > 100e6, `TCP ${bps} bit/s`);
      });
    },
  );

test(
  'without a vnet header on one side, GSO frames arrive segmented',
  { ...needsPrivileged('ping', 'iperf3'), timeout: 60_000 },
  async () => {
    // Default policy first: B takes no offloaded frames, so A's offloads stay off.
    await withRig({ a: { vnetHdr: 'on' }, b: { vnetHdr: 'off' } }, async ({ a, b, stat }) => {
      assert.equal(stat('ta').offloads, 0);
      assert.ok(ping(a, b.ip));
      assert.ok((await iperf(a, b)) > 50e6);
    });
    // Force offloads on A: the kernel hands the engine 64 KiB frames, which the engine
    // segments (and checksums) for B.
    await withRig({ a: { vnetHdr: 'on' }, b: { vnetHdr: 'off' }, autoOffloads: false }, async ({ a, b, stat }) => {
      a.tap.setOffloads({ csum: true, tso4: true, tso6: true, ecn: true });
      const bps = await iperf(a, b);
      const tb = stat('tb');
      assert.ok(tb.segments > tb.deviceTxFrames, `segments ${tb.segments} > frames ${tb.deviceTxFrames}`);
      assert.ok(tb.deviceTxBytes / tb.deviceTxFrames > 1514, 'B was handed GSO frames');
      assert.ok(bps > 50e6, `TCP ${bps} bit/s over software segmentation`);
      assert.equal(tb.drops.badVnetHdr + tb.drops.writeError, 0);
    });
  },
);

for (const ioUring of kIoUringModes)
  test(
    `set link off drops and counts in both directions, on restores${uringLabel(ioUring)}`,
    { ...needsPrivileged('ping'), timeout: 60_000 },
    async () => {
      await withRig({ a: { vnetHdr: 'on' }, b: { vnetHdr: 'on' }, how: 'hub', ioUring }, async ({ a, b, dp, stat }) => {
        assert.ok(ping(a, b.ip));
        dp.setLinkDown(101, true); // hub port towards B
        assert.equal(ping(a, b.ip, 2), false);
        assert.equal(ping(b, a.ip, 2), false);
        const p = stat('hub0port1');
        assert.ok(p.linkDown);
        assert.ok(p.drops.linkDown >= 4, `linkDown drops ${p.drops.linkDown}`);
        dp.setLinkDown(101, false);
        assert.ok(ping(a, b.ip), 'restored');
        dp.setLinkDown(10, true); // the TAP itself
        assert.equal(ping(a, b.ip, 2), false);
        assert.ok(stat('ta').drops.linkDown > 0);
        dp.setLinkDown(10, false);
        assert.ok(ping(b, a.ip));
      });
    },
  );

for (const ioUring of kIoUringModes)
  test(
    `ip link del under traffic: tap-dead event, link down, no spinning core${uringLabel(ioUring)}`,
    { ...needsPrivileged('ping'), timeout: 60_000 },
    async () => {
      await withRig({ a: { vnetHdr: 'on' }, b: { vnetHdr: 'on' }, ioUring }, async ({ a, b, dp, stat }) => {
        const events: TapDeadEvent[] = [];
        dp.on('event', (e: TapDeadEvent) => events.push(e));
        // Traffic from A to B (flood ping) while B's interface is deleted.
        const flood = a.ns.spawn('ping', ['-f', '-w', '4', b.ip]);
        try {
          await sleep(500);
          b.ns.exec('ip', ['link', 'del', b.ifname]);
          for (let i = 0; i < 100 && events.length === 0; i++) await sleep(20);
        } finally {
          flood.kill('SIGKILL');
        }
        assert.equal(events.length, 1, 'one tap-dead event');
        assert.equal(events[0].name, 'tb');
        assert.equal(events[0].code, 'EBADFD');
        const tb = stat('tb');
        assert.ok(tb.dead && tb.linkDown);
        await sleep(200);
        const wakeups = stat('tb').wakeups;
        const cpu0 = cpuSeconds();
        await sleep(1000);
        const used = cpuSeconds() - cpu0;
        assert.ok(used < 0.2, `process used ${used}s of CPU in 1s after the TAP died`);
        assert.equal(stat('tb').wakeups, wakeups, 'the dead fd is not polled');
        // Frames towards the dead TAP are counted, not lost silently.
        ping(a, b.ip, 1);
        assert.ok(stat('tb').drops.deadDevice > 0);
      });
    },
  );

test(
  'multiqueue: flows spread over both queues and both IOThreads',
  { ...needsPrivileged('iperf3'), timeout: 60_000 },
  async () => {
    await withRig(
      { a: { vnetHdr: 'on', queues: 2 }, b: { vnetHdr: 'on', queues: 2 }, queues: 2 },
      async ({ a, b, stat }) => {
        await iperf(a, b, ['-P', '8']);
        await iperf(a, b, ['-P', '8', '-R']);
        const q0 = stat('ta', 0);
        const q1 = stat('ta', 1);
        assert.ok(
          q0.deviceRxFrames > 0 && q1.deviceRxFrames > 0,
          `queue 0 read ${q0.deviceRxFrames}, queue 1 read ${q1.deviceRxFrames}`,
        );
        assert.notEqual(q0.threadId, q1.threadId);
        assert.equal(q0.iothread, 'np-q0');
        assert.equal(q1.iothread, 'np-q1');
        assert.ok(stat('tb', 0).deviceTxFrames > 0 && stat('tb', 1).deviceTxFrames > 0);
      },
    );
  },
);

test(
  'conservation holds under load with an overloaded hub receiver',
  { ...needsPrivileged('socat'), timeout: 60_000 },
  async () => {
    await withRig({ a: { vnetHdr: 'on' }, b: { vnetHdr: 'on' }, how: 'hub' }, async ({ a, b, dp }) => {
      // UDP flood both ways at once, with snapshots taken while it runs.
      b.ns.exec('ip', ['neigh', 'replace', a.ip, 'lladdr', '52:54:00:00:aa:01', 'dev', b.ifname]);
      a.ns.exec('ip', ['neigh', 'replace', b.ip, 'lladdr', '52:54:00:00:bb:01', 'dev', a.ifname]);
      const floods = [
        run(a.ns, 'timeout', ['2', 'socat', '-u', '-b', '1200', '/dev/zero', `UDP-SENDTO:${b.ip}:9`], 10_000).catch(
          () => '',
        ),
        run(b.ns, 'timeout', ['2', 'socat', '-u', '-b', '64', '/dev/zero', `UDP-SENDTO:${a.ip}:9`], 10_000).catch(
          () => '',
        ),
      ];
      for (let i = 0; i < 10; i++) {
        await sleep(150);
        assert.deepEqual(unconserved(dp.stats()), [], `snapshot ${i} under load`);
      }
      await Promise.all(floods);
      const total = dp.stats().reduce((n, s) => n + s.framesIn, 0);
      assert.ok(total > 10_000, `frames moved: ${total}`);
    });
  },
);
