// A Topology NIC with native virtqueues (addDevice(..., { queues: 'virtqueues' })), driven
// as an in-process hypervisor drives it: the model negotiates, the hypervisor hands over
// guest memory (a SharedArrayBuffer or a memfd) and each ring as the driver sets it up, and a
// driver-side ring in that memory (test/helpers/virtio-ring.ts) plays the guest. The NIC's
// peer is a hub port; a second NIC on the same hub (a packet port) is the other end.
// Unprivileged: no TAP.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { NativeDataPlane } from '../lib/dataplane/native-dataplane';
import type { PacketPort } from '../lib/dataplane/packet-port';
import { Topology } from '../lib/topology/topology';
import type { Nic } from '../lib/topology/nic';
import { VirtioF, VirtioNetF, VirtioStatus } from '../lib/devices/virtio-net-features';
import { native } from '../lib/native';
import { NetplaneError } from '../lib/errors';
import { DriverRing, memfdMem, sabMem, type GuestMem } from './helpers/virtio-ring';
import { waitFor } from './helpers/wait';

const MIB = 1 << 20;
const HDR = 12;
const bit = (b: number): bigint => 1n << BigInt(b);

function ethFrame(len: number, tag: number): Uint8Array {
  const f = new Uint8Array(len).fill(tag);
  f.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0, 0, 1, 0x88, 0xb5]);
  return f;
}

function openFds(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

/** Every fd the test opened is closed again (sockets close on the next turn of the loop). */
async function noFdLeft(before: number): Promise<void> {
  await waitFor(() => openFds() <= before, `the fd count back to ${before} (now ${openFds()})`, 2000);
}

interface Bed {
  dp: NativeDataPlane;
  topo: Topology;
  nic: Nic;
  peer: PacketPort;
  mem: GuestMem;
  base: number;
  rx: DriverRing;
  tx: DriverRing;
  close(): Promise<void>;
}

function bed(kind: 'sab' | 'memfd'): Bed {
  const dp = new NativeDataPlane();
  const topo = new Topology({ dataPlane: dp });
  topo.addNetdev({ type: 'hubport', id: 'nph0', hubid: 0 });
  topo.addNetdev({ type: 'hubport', id: 'nph1', hubid: 0 });
  const nic = topo.addDevice(
    { driver: 'virtio-net-pci', netdev: 'nph0', id: 'npnet0', features: {} },
    { queues: 'virtqueues' },
  );
  const other = topo.addDevice({ driver: 'virtio-net-pci', netdev: 'nph1', id: 'npnet1', features: {} });
  const peer = dp.port(other.clients[0]!.handle)!;
  let mem: GuestMem;
  let base = 0;
  let memfd = -1;
  if (kind === 'sab') {
    base = 0x40000000;
    const sab = new SharedArrayBuffer(MIB);
    nic.virtqueues!.setMemory([{ guestAddr: BigInt(base), buffer: sab }]);
    mem = sabMem(sab, base);
  } else {
    memfd = native().memfdCreate('np-hv-ram', MIB);
    nic.virtqueues!.setMemory([{ guestAddr: 0n, size: BigInt(MIB), fd: memfd }]);
    mem = memfdMem(memfd);
  }
  const rx = new DriverRing(mem, base, 256);
  const tx = new DriverRing(mem, base + 0x10000, 256);
  return {
    dp,
    topo,
    nic,
    peer,
    mem,
    base,
    rx,
    tx,
    async close() {
      await topo.close();
      dp.close();
      rx.close();
      tx.close();
      if (memfd >= 0) fs.closeSync(memfd);
    },
  };
}

/** The driver's side of negotiation, as a guest's virtio-net driver does it. */
function negotiate(nic: Nic, features: bigint): void {
  nic.device.setStatus(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER);
  assert.equal(nic.device.setDriverFeatures(features), true);
  nic.device.setStatus(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER | VirtioStatus.FEATURES_OK);
}

function startBoth(b: Bed): void {
  const q = b.nic.virtqueues!;
  q.startQueue(0, b.rx.queueStart());
  q.startQueue(1, b.tx.queueStart());
  b.nic.device.setStatus(
    VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER | VirtioStatus.FEATURES_OK | VirtioStatus.DRIVER_OK,
  );
}

function withHdr(frame: Uint8Array): Uint8Array {
  const p = new Uint8Array(HDR + frame.length);
  p.set(frame, HDR);
  return p;
}

for (const kind of ['sab', 'memfd'] as const) {
  test(`native queues of a Topology NIC (${kind} guest memory): frames both ways, counters balance`, async () => {
    const fdsBefore = openFds();
    const b = bed(kind);
    try {
      negotiate(b.nic, bit(VirtioF.VERSION_1) | bit(VirtioNetF.MRG_RXBUF) | bit(VirtioF.RING_EVENT_IDX));
      startBoth(b);
      assert.deepEqual(b.nic.virtqueues!.started, [0, 1]);
      // Guest -> peer.
      const out = ethFrame(100, 7);
      const a = b.base + 0x40000;
      b.mem.write(a, withHdr(out));
      b.tx.add([{ addr: a, len: HDR + out.length, writable: false }]);
      b.tx.publish();
      const got: Uint8Array[] = [];
      b.peer.onFrames((batch) => got.push(...batch.map((f) => f.slice())));
      await waitFor(() => got.length >= 1, 'the guest frame at the peer');
      assert.deepEqual(got[0], out);
      await waitFor(() => b.tx.takeUsed().length === 1, 'the tx chain completed');
      // Peer -> guest: into a posted rx buffer, with the guest's 12-byte header.
      for (let i = 0; i < 4; i++) b.rx.add([{ addr: b.base + 0x80000 + i * 2048, len: 2048, writable: true }]);
      b.rx.publish();
      const back = ethFrame(80, 9);
      assert.equal(b.peer.send([back]), true);
      const used = await waitFor(() => {
        const u = b.rx.takeUsed();
        return u.length > 0 ? u : undefined;
      }, 'the frame in the guest rx ring');
      assert.equal(used[0]![1], HDR + back.length);
      assert.deepEqual(b.mem.read(b.base + 0x80000 + HDR, back.length), back);
      assert.ok(b.rx.interrupts() > 0, 'the guest was interrupted');
      // The counters of the served pair (kind virtio-device) balance.
      const st = b.dp.stats().find((c) => c.handle === b.nic.clients[0]!.handle)!;
      assert.equal(st.kind, 'virtio-device');
      assert.equal(st.framesIn, st.framesOut + st.queued + st.dropped);
      assert.equal(st.framesOut, 2, 'one frame each way');
      assert.equal(st.dropped, 0);
      // The hand-off value: memory plus the running rings.
      const setup = b.nic.virtqueues!.setup();
      assert.equal(setup.queuePairs, 1);
      assert.equal(setup.regions.length, 1);
      assert.deepEqual(
        setup.vrings.map((v) => [v.index, v.size, v.descAddr]),
        [
          [0, 256, BigInt(b.rx.desc)],
          [1, 256, BigInt(b.tx.desc)],
        ],
      );
      assert.equal(setup.features & bit(VirtioF.VERSION_1), bit(VirtioF.VERSION_1));
      // A device reset stops both rings; the next avail index then restarts at 0.
      b.nic.device.setStatus(0);
      assert.deepEqual(b.nic.virtqueues!.started, []);
    } finally {
      await b.close();
    }
    await noFdLeft(fdsBefore);
  });
}

test('native queues: notify() doorbell and call callback, stop returns the next avail index', async () => {
  const fdsBefore = openFds();
  const b = bed('sab');
  try {
    negotiate(b.nic, bit(VirtioF.VERSION_1));
    const q = b.nic.virtqueues!;
    let interrupts = 0;
    const txq = q.startQueue(1, {
      size: b.tx.size,
      descAddr: BigInt(b.tx.desc),
      availAddr: BigInt(b.tx.avail),
      usedAddr: BigInt(b.tx.used),
      kick: 'notify',
      call: () => interrupts++,
    });
    const got: Uint8Array[] = [];
    b.peer.onFrames((batch) => got.push(...batch.map((f) => f.slice())));
    for (let i = 0; i < 3; i++) {
      const a = b.base + 0x40000 + i * 256;
      b.mem.write(a, withHdr(ethFrame(60, i)));
      b.tx.add([{ addr: a, len: HDR + 60, writable: false }]);
    }
    // Publish without the helper's kick pipe: the hypervisor's doorbell instead.
    b.mem.write(b.tx.avail + 2, new Uint8Array([3, 0]));
    txq.notify();
    await waitFor(() => got.length === 3, 'three frames at the peer');
    await waitFor(() => interrupts > 0, 'the call callback');
    assert.equal(q.stopQueue(1), 3);
    assert.throws(
      () =>
        q
          .startQueue(0, {
            size: 256,
            descAddr: BigInt(b.rx.desc),
            availAddr: BigInt(b.rx.avail),
            usedAddr: BigInt(b.rx.used),
            kick: b.rx.kick[0],
            call: null,
          })
          .notify(),
      (e: unknown) => e instanceof NetplaneError && e.code === 'NETPLANE_INVALID_STATE',
    );
  } finally {
    await b.close();
  }
  await noFdLeft(fdsBefore);
});

test('native queues: bad set-up is refused with a code; hostile rings raise queue-error; others go on', async () => {
  const b = bed('sab');
  try {
    negotiate(b.nic, bit(VirtioF.VERSION_1));
    const q = b.nic.virtqueues!;
    const ring = (over: Partial<Parameters<typeof q.startQueue>[1]> = {}) => ({
      size: 256,
      descAddr: BigInt(b.tx.desc),
      availAddr: BigInt(b.tx.avail),
      usedAddr: BigInt(b.tx.used),
      kick: b.tx.kick[0],
      call: b.tx.call[1],
      ...over,
    });
    const code = (c: string) => (e: unknown) => e instanceof NetplaneError && e.code === c;
    assert.throws(() => q.startQueue(2, ring()), code('NETPLANE_INVALID'), 'virtqueue 2 is the control queue');
    assert.throws(() => q.startQueue(1, ring({ descAddr: 0x10n })), code('NETPLANE_INVALID'), 'outside memory');
    assert.throws(() => q.setMemory([]), code('NETPLANE_INVALID'));
    assert.throws(
      () =>
        q.setMemory([
          { guestAddr: 0n, buffer: new SharedArrayBuffer(4096) },
          { guestAddr: 2048n, buffer: new SharedArrayBuffer(4096) },
        ]),
      code('NETPLANE_INVALID'),
    );
    // A memfd region past the end of its file (its first touch would raise SIGBUS).
    const small = native().memfdCreate('np-hv-small', 4096);
    try {
      assert.throws(() => q.setMemory([{ guestAddr: 0n, size: BigInt(MIB), fd: small }]), code('NETPLANE_INVALID'));
    } finally {
      fs.closeSync(small);
    }
    // A refused start with a doorbell and a callback leaves none of their pipes open.
    const fds = openFds();
    assert.throws(
      () => q.startQueue(1, ring({ usedAddr: 0x10n, kick: 'notify', call: () => undefined })),
      code('NETPLANE_INVALID'),
    );
    await noFdLeft(fds);
    // The refused layout put the pair in its error state: stop both rings to reset it.
    q.stopAll();
    const errors: Array<{ pair: number; ring: string; reason: string }> = [];
    b.nic.on('queue-error', (e) => errors.push(e));
    q.startQueue(1, ring());
    // A chain whose descriptor points outside guest memory.
    b.tx.add([{ addr: 0x10, len: 100, writable: false }]);
    b.tx.publish();
    await waitFor(() => errors.length > 0, 'the queue-error event');
    assert.deepEqual(errors[0], { pair: 0, ring: 'tx', reason: errors[0]!.reason });
    const st = b.dp.stats().find((c) => c.handle === b.nic.clients[0]!.handle)!;
    assert.equal(st.broken, true);
    // The other NIC still works.
    assert.equal(b.peer.send([ethFrame(60, 1)]), true);
  } finally {
    await b.close();
  }
});

test("queues: 'virtqueues' needs a data plane that runs them; frames is for ports only", async () => {
  const topo = new Topology();
  try {
    assert.throws(
      () => topo.addDevice({ driver: 'virtio-net-pci', features: {} }, { queues: 'virtqueues' }),
      (e: unknown) => e instanceof NetplaneError && e.code === 'NETPLANE_INVALID_STATE',
    );
    assert.throws(
      () => topo.addDevice({ driver: 'virtio-net-pci', features: {} }, { queues: 'virtqueues', frames: 'bare' }),
      (e: unknown) => e instanceof NetplaneError && e.code === 'NETPLANE_INVALID_OPTION',
    );
  } finally {
    await topo.close();
  }
});

test('native queues: setMemory again while rings run restarts them where they were', async () => {
  const b = bed('sab');
  try {
    negotiate(b.nic, bit(VirtioF.VERSION_1));
    startBoth(b);
    const got: Uint8Array[] = [];
    b.peer.onFrames((batch) => got.push(...batch.map((f) => f.slice())));
    const send = (tag: number): void => {
      const a = b.base + 0x40000 + tag * 256;
      b.mem.write(a, withHdr(ethFrame(60, tag)));
      b.tx.add([{ addr: a, len: HDR + 60, writable: false }]);
      b.tx.publish();
    };
    send(1);
    await waitFor(() => got.length === 1, 'the first frame');
    // Memory hot-plug: the same RAM plus a second region above it.
    const q = b.nic.virtqueues!;
    const ram = q.setup().regions[0]!;
    q.setMemory([ram, { guestAddr: BigInt(b.base + MIB), buffer: new SharedArrayBuffer(MIB) }]);
    assert.deepEqual(q.started, [0, 1]);
    assert.equal(q.setup().regions.length, 2);
    assert.equal(q.setup().vrings[1]!.base, 1, 'tx resumes after the chain it completed');
    send(2);
    await waitFor(() => got.length === 2, 'the frame after the new table');
    assert.equal(got[1]![14], 2);
    // A table that no longer holds the rings: they stop (and say why); the rest is unchanged.
    assert.throws(
      () => q.setMemory([{ guestAddr: BigInt(b.base + MIB), buffer: new SharedArrayBuffer(MIB) }]),
      (e: unknown) => e instanceof NetplaneError && e.code === 'NETPLANE_INVALID',
    );
    assert.deepEqual(q.started, []);
  } finally {
    await b.close();
  }
});
