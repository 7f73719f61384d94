// The native virtio-device client driven from TypeScript, unprivileged: guest memory in a
// memfd (and, for the in-process hypervisor, a SharedArrayBuffer), rings written by a
// TypeScript driver (test/helpers/virtio-ring.ts), and a packet port as the peer. Frames go
// both ways with no JavaScript on the engine's side; counters balance; hostile ring content
// puts the queue pair in its error state with an event; invalid tables throw NETPLANE_INVALID.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { NativeDataPlane, type VringErrorEvent, type DataPlaneEvent } from '../lib/dataplane/native-dataplane';
import type { GuestMemory } from '../lib/dataplane/guest-memory';
import type { PacketPort } from '../lib/dataplane/packet-port';
import { native } from '../lib/native';
import { NetplaneError } from '../lib/errors';
import { DriverRing, memfdMem, sabMem, type GuestMem } from './helpers/virtio-ring';
import { waitFor } from './helpers/wait';

const MIB = 1 << 20;
const USER_BASE = 0x7f0000000000n; // where a front-end would have mapped it
const VERSION_1 = 1n << 32n;
const MRG_RXBUF = 1n << 15n;
const HDR = 12;

function ethFrame(len: number, tag: number): Uint8Array {
  const f = new Uint8Array(len).fill(tag);
  f.set([0x52, 0x54, 0, 0, 0, 2, 0x52, 0x54, 0, 0, 0, 1, 0x88, 0xb5]);
  return f;
}

interface Setup {
  dp: NativeDataPlane;
  memory: GuestMemory;
  mem: GuestMem;
  /** Guest-physical base of the memory (buffers are placed relative to it). */
  base: number;
  rx: DriverRing;
  tx: DriverRing;
  port: PacketPort;
  err: [number, number];
  events: DataPlaneEvent[];
  close(): void;
}

const HANDLE = 7;

function setup(kind: 'memfd' | 'sab', portHdr: 0 | 12 = 0): Setup {
  const dp = new NativeDataPlane();
  let memory: GuestMemory;
  let mem: GuestMem;
  let memfd = -1;
  let space: 'user' | 'guest';
  let base = 0;
  if (kind === 'memfd') {
    memfd = native().memfdCreate('np-virtio-test', 2 * MIB);
    // Two regions of one file, as QEMU sends a table: guest 0 and 1 MiB, user addresses apart.
    memory = dp.mapGuestMemory([
      { guestAddr: 0n, size: BigInt(MIB), userAddr: USER_BASE, fd: memfd, fdOffset: 0n },
      {
        guestAddr: BigInt(MIB),
        size: BigInt(MIB),
        userAddr: USER_BASE + 0x100000000n,
        fd: memfd,
        fdOffset: BigInt(MIB),
      },
    ]);
    mem = memfdMem(memfd);
    space = 'user';
  } else {
    base = 0x100000;
    const sab = new SharedArrayBuffer(MIB);
    memory = dp.wrapGuestMemory([{ guestAddr: BigInt(base), buffer: sab }]);
    mem = sabMem(sab, base);
    space = 'guest';
  }
  const rx = new DriverRing(mem, base + 0x0000, 256);
  const tx = new DriverRing(mem, base + 0x10000, 256);
  const err = native().aioPipe();
  const addr = (gpa: number): bigint => (space === 'user' ? USER_BASE + BigInt(gpa) : BigInt(gpa));
  dp.addClient({ kind: 'virtio-device', handle: HANDLE, name: 'np-vd', queueIndex: 0 });
  const port = dp.createPort('np-peer', { vnetHdrLen: portHdr });
  dp.connect(port.handle, HANDLE);
  dp.setVirtioFeatures(HANDLE, VERSION_1 | MRG_RXBUF);
  for (const [ring, r] of [['rx', rx] as const, ['tx', tx] as const]) {
    dp.startVring(HANDLE, {
      ring,
      memory,
      size: r.size,
      descAddr: addr(r.desc),
      availAddr: addr(r.avail),
      usedAddr: addr(r.used),
      addrSpace: space,
      base: 0,
      kickFd: r.kick[0],
      callFd: r.call[1],
      errFd: err[1],
    });
  }
  const events: DataPlaneEvent[] = [];
  dp.on('event', (e: DataPlaneEvent) => events.push(e));
  return {
    dp,
    memory,
    mem,
    base,
    rx,
    tx,
    port,
    err,
    events,
    close() {
      dp.close();
      memory.close();
      rx.close();
      tx.close();
      for (const fd of err) fs.closeSync(fd);
      if (memfd >= 0) fs.closeSync(memfd);
    },
  };
}

function vdStats(s: Setup) {
  const st = s.dp.stats().find((c) => c.handle === HANDLE);
  assert.ok(st);
  return st;
}

for (const kind of ['memfd', 'sab'] as const) {
  test(`frames cross both ways between a ${kind} guest and a packet port`, async () => {
    const s = setup(kind);
    try {
      // Guest -> port: [12-byte header | frame] in one descriptor, then split in two.
      const out = ethFrame(100, 5);
      const pkt = new Uint8Array(HDR + out.length);
      pkt.set(out, HDR);
      const a = s.base + 0x40000;
      s.mem.write(a, pkt);
      s.tx.add([{ addr: a, len: pkt.length, writable: false }]);
      s.tx.add([
        { addr: a, len: HDR, writable: false },
        { addr: a + HDR, len: out.length, writable: false },
      ]);
      s.tx.publish();
      const got: Uint8Array[] = [];
      const stop = s.port.onFrames((batch) => batch.forEach((f) => got.push(f.slice())));
      await waitFor(() => got.length === 2, 'two frames at the port');
      stop();
      for (const f of got) assert.deepEqual(f, out);
      await waitFor(() => s.tx.takeUsed().length === 2 || undefined, 'tx completions');

      // Port -> guest: 8 rx buffers of 2 KiB; the guest sees header + frame, num_buffers 1.
      for (let i = 0; i < 8; i++) s.rx.add([{ addr: s.base + 0x80000 + i * 2048, len: 2048, writable: true }]);
      s.rx.publish();
      const back = ethFrame(300, 9);
      assert.equal(s.port.send([back, back]), true);
      const used = await waitFor(() => {
        const u = s.rx.takeUsed();
        return u.length > 0 ? u : undefined;
      }, 'rx completions');
      const all = used.length === 2 ? used : [...used, ...(await waitFor(() => s.rx.takeUsed(), 'second rx'))];
      assert.equal(all.length, 2);
      for (const [head, len] of all) {
        assert.equal(len, HDR + back.length);
        const b = s.mem.read(s.base + 0x80000 + head * 2048, len);
        assert.equal(b[10], 1); // num_buffers
        assert.deepEqual(b.subarray(HDR), back);
      }
      await waitFor(() => s.rx.interrupts() > 0, 'an rx interrupt');

      const st = vdStats(s);
      assert.equal(st.kind, 'virtio-device');
      assert.equal(st.iothread, 'np-q0');
      assert.equal(st.vnetHdrLen, 12);
      // In: 2 from the guest's tx ring + 2 from the port; out: 2 to the port + 2 into rx.
      assert.equal(st.framesIn, 4);
      assert.equal(st.framesOut, 4);
      assert.equal(st.deviceRxFrames, 2);
      assert.equal(st.deviceTxFrames, 2);
      assert.equal(st.broken, false);
      assert.equal(st.error, null);
      assert.equal(st.virtio?.rxStarted, true);
      assert.equal(st.virtio?.features, VERSION_1 | MRG_RXBUF);
      for (const c of s.dp.stats()) assert.equal(c.framesIn, c.framesOut + c.queued + c.dropped, c.name);

      // GET_VRING_BASE: the next avail index; the ring stops and its fds are closed.
      assert.equal(s.dp.stopVring(HANDLE, 'tx'), 2);
      assert.equal(s.dp.stopVring(HANDLE, 'rx'), 2);
      assert.equal(vdStats(s).virtio?.txStarted, false);
    } finally {
      s.close();
    }
  });
}

test('no rx buffers: frames wait in the engine, none is lost, a refill delivers them', async () => {
  const s = setup('memfd');
  try {
    const frames = Array.from({ length: 10 }, (_, i) => ethFrame(80, i));
    assert.equal(s.port.send(frames), true);
    await waitFor(() => vdStats(s).queued === 1 || undefined, 'a queued frame');
    assert.equal(vdStats(s).dropped, 0);
    for (let i = 0; i < 16; i++) s.rx.add([{ addr: s.base + 0x80000 + i * 2048, len: 2048, writable: true }]);
    s.rx.publish();
    const used: Array<[number, number]> = [];
    await waitFor(() => {
      used.push(...s.rx.takeUsed());
      return used.length === 10;
    }, 'ten rx frames');
    used.forEach(([head], i) => assert.equal(s.mem.read(s.base + 0x80000 + head * 2048 + HDR + 20, 1)[0], i));
    const st = vdStats(s);
    assert.equal(st.dropped, 0);
    assert.equal(st.framesOut, 10);
  } finally {
    s.close();
  }
});

test('a hostile avail index puts the queue pair in its error state, with an event', async () => {
  const s = setup('memfd');
  try {
    s.tx.publish(300); // jumps by more than the ring size
    const ev = (await waitFor(
      () => s.events.find((e) => e.type === 'vring-error'),
      'a vring-error event',
    )) as VringErrorEvent;
    assert.equal(ev.handle, HANDLE);
    assert.equal(ev.name, 'np-vd');
    assert.equal(ev.ring, 'tx');
    assert.match(ev.reason, /avail index moved by more than the ring size/);
    const st = vdStats(s);
    assert.equal(st.broken, true);
    assert.equal(st.errors, 1);
    assert.equal(st.error, ev.reason);
    assert.equal(fs.readSync(s.err[0], Buffer.alloc(8)), 8); // the err fd was written
    // Frames for it are dropped and counted from now on.
    assert.equal(s.port.send([ethFrame(60, 1)]), true);
    await waitFor(() => vdStats(s).drops.deadDevice === 1 || undefined, 'a deadDevice drop');
  } finally {
    s.close();
  }
});

test('invalid tables and ring layouts throw NETPLANE_INVALID', () => {
  const dp = new NativeDataPlane();
  const fd = native().memfdCreate('np-virtio-bad', MIB);
  try {
    const invalid = (fn: () => unknown, re: RegExp) =>
      assert.throws(
        fn,
        (e: unknown) => e instanceof NetplaneError && e.code === 'NETPLANE_INVALID' && re.test(e.message),
      );
    invalid(
      () => dp.mapGuestMemory([{ guestAddr: 0n, size: BigInt(2 * MIB), userAddr: 0n, fd, fdOffset: 0n }]),
      /region 0: .*past the end of its file/,
    );
    invalid(
      () =>
        dp.mapGuestMemory([
          { guestAddr: 0n, size: 8192n, userAddr: 0n, fd, fdOffset: 0n },
          { guestAddr: 4096n, size: 4096n, userAddr: 1n << 40n, fd, fdOffset: 0n },
        ]),
      /region 1 overlaps guest memory region 0 in guest-physical/,
    );
    invalid(
      () => dp.mapGuestMemory([{ guestAddr: 0n, size: 0n, userAddr: 0n, fd, fdOffset: 0n }]),
      /region 0 has size 0/,
    );
    invalid(
      () => dp.mapGuestMemory([{ guestAddr: (1n << 64n) - 4096n, size: 8192n, userAddr: 0n, fd, fdOffset: 0n }]),
      /overflows 64 bits/,
    );
    const memory = dp.mapGuestMemory([{ guestAddr: 0n, size: BigInt(MIB), userAddr: 0n, fd, fdOffset: 0n }]);
    dp.addClient({ kind: 'virtio-device', handle: 1, name: 'np-vd', queueIndex: 0 });
    const [kr, kw] = native().aioPipe();
    const ring = {
      ring: 'tx' as const,
      memory,
      size: 256,
      availAddr: 0x1000n,
      addrSpace: 'guest' as const,
      base: 0,
      kickFd: kr,
      callFd: -1,
    };
    invalid(
      () => dp.startVring(1, { ...ring, descAddr: BigInt(MIB) - 64n, usedAddr: 0x2000n }),
      /descriptor table .* not inside one guest memory region/,
    );
    invalid(
      () => dp.startVring(1, { ...ring, descAddr: 0n, usedAddr: 0x100n }),
      /used ring overlaps the descriptor table/,
    );
    // Refused layouts are hostile input: counted, and the pair is in its error state.
    const st = dp.stats().find((c) => c.handle === 1);
    assert.equal(st?.broken, true);
    assert.equal(st?.errors, 2);
    assert.match(st?.error ?? '', /^tx ring: vring used ring overlaps the descriptor table/);
    invalid(() => {
      // (@types/node 20 lacks the resizable constructor's options.)
      const Resizable = ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer;
      return dp.wrapGuestMemory([{ guestAddr: 0n, buffer: new Resizable(4096, { maxByteLength: 8192 }) }]);
    }, /resizable/);
    memory.close();
    memory.close(); // idempotent
    assert.equal(memory.closed, true);
    assert.throws(() => dp.startVring(1, { ...ring, descAddr: 0n, usedAddr: 0x2000n }), { code: 'NETPLANE_CLOSED' });
    fs.closeSync(kr);
    fs.closeSync(kw);
  } finally {
    dp.close();
    fs.closeSync(fd);
  }
});
