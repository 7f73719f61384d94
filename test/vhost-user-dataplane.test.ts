// Frames both ways through a served queue pair, with the real engine: the fake front-end
// plays the guest's driver side by writing descriptors straight into its memfd (pwrite: the
// engine maps the same pages MAP_SHARED) and reading the used rings back (pread). The TAP
// sits in a namespace with an address; the "guest" sends an ARP request through its tx ring,
// the kernel answers, and the reply arrives in the guest's rx ring. Then the front-end
// vanishes: the rings stop, the mapping and every fd go (checked in /proc/self/maps and
// /proc/self/fd by identity). Privileged (TAP + namespace).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { NativeDataPlane } from '../lib/dataplane/native-dataplane';
import { bit, VirtioF } from '../lib/devices/virtio-net-features';
import { native } from '../lib/native';
import { VhostUserExport } from '../lib/topology/exports/vhost-user-net';
import { Topology } from '../lib/topology/topology';
import { deleteLink, NetNs, npName, sh } from './helpers/netns';
import { privileged } from './helpers/privilege';
import {
  FakeFrontend,
  fdsPointingAt,
  fdTarget,
  memTable,
  NEED_REPLY,
  state,
  u64,
  vringAddr,
  VU,
} from './helpers/vhost-user-frontend';

const MEM = 1 << 21;
const UA = 0x7e0000000000n; // the front-end's virtual address of guest-physical 0
const N = 256;
const HDR = 12; // VERSION_1: virtio_net_hdr_mrg_rxbuf
const RING = [
  { desc: 0x0000, avail: 0x1000, used: 0x2000 }, // rx (vq 0)
  { desc: 0x4000, avail: 0x5000, used: 0x6000 }, // tx (vq 1)
];
const RX_BUF = 0x10000;
const TX_BUF = 0x80000;
const GUEST_MAC = Buffer.from([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

function put(fd: number, at: number, b: Buffer): void {
  fs.writeSync(fd, b, 0, b.length, at);
}
function get(fd: number, at: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  fs.readSync(fd, b, 0, len, at);
  return b;
}
function desc(addr: number, len: number, flags: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(BigInt(addr), 0);
  b.writeUInt32LE(len, 8);
  b.writeUInt16LE(flags, 12);
  return b;
}
function arpRequest(senderIp: number[], targetIp: number[]): Buffer {
  const f = Buffer.alloc(42);
  Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).copy(f, 0);
  GUEST_MAC.copy(f, 6);
  f.writeUInt16BE(0x0806, 12);
  f.writeUInt16BE(1, 14); // ethernet
  f.writeUInt16BE(0x0800, 16);
  f[18] = 6;
  f[19] = 4;
  f.writeUInt16BE(1, 20); // request
  GUEST_MAC.copy(f, 22);
  Buffer.from(senderIp).copy(f, 28);
  Buffer.from(targetIp).copy(f, 38);
  return f;
}

async function until<T>(what: string, fn: () => T | undefined, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('vhost-user back-end with the engine: frames both ways', privileged(), () => {
  test(
    'ARP request out of the tx ring, the kernel reply into the rx ring; nothing left after disconnect',
    { timeout: 60_000 },
    async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'np-vu-dp-'));
      const ifname = npName('vd');
      const dp = new NativeDataPlane();
      const topo = new Topology({ dataPlane: dp, warn: () => {} });
      using ns = new NetNs('vd');
      const memfd = native().memfdCreate('np-vu-guest', MEM);
      const memTarget = fdTarget(memfd);
      const pipes = [native().aioPipe(), native().aioPipe(), native().aioPipe(), native().aioPipe()]; // kick/call x2
      try {
        topo.addNetdev({ type: 'tap', id: 'hn0', ifname, vnet_hdr: true });
        const ex = await VhostUserExport.create(topo, {
          id: 'vu0',
          netdev: 'hn0',
          address: { kind: 'listen', path: path.join(dir, 's') },
        });
        assert.equal(ex.info()['data-path'], true);
        sh('ip', ['link', 'set', ifname, 'netns', ns.name]);
        ns.disableIpv6(); // no MLD or router solicitations in the rx ring
        ns.exec('ip', ['addr', 'add', '10.251.7.1/24', 'dev', ifname]);
        ns.exec('ip', ['link', 'set', ifname, 'up']);

        const fe = await FakeFrontend.connect(path.join(dir, 's'));
        const feats = (await fe.call(VU.GET_FEATURES)).payload.readBigUInt64LE(0);
        assert.ok((feats & bit(VirtioF.VERSION_1)) !== 0n);
        fe.send(VU.SET_PROTOCOL_FEATURES, u64(0x10009n));
        fe.send(VU.SET_FEATURES, u64(bit(VirtioF.VERSION_1) | bit(30)));
        const ack = await fe.call(VU.SET_MEM_TABLE, memTable([{ gpa: 0n, size: BigInt(MEM), ua: UA, offset: 0n }]), {
          flags: 0x1 | NEED_REPLY,
          fds: [memfd],
        });
        assert.equal(ack.payload.readBigUInt64LE(0), 0n);
        assert.ok(fs.readFileSync('/proc/self/maps', 'utf8').includes('np-vu-guest'), 'the engine mapped the memfd');

        // 16 rx buffers of 2 KiB, posted before the ring starts.
        for (let i = 0; i < 16; i++) put(memfd, RING[0]!.desc + 16 * i, desc(RX_BUF + 2048 * i, 2048, 2 /* WRITE */));
        for (let i = 0; i < 16; i++) put(memfd, RING[0]!.avail + 4 + 2 * i, Buffer.from([i, 0]));
        put(memfd, RING[0]!.avail + 2, Buffer.from([16, 0]));
        for (const [i, r] of RING.entries()) {
          fe.send(VU.SET_VRING_NUM, state(i, N));
          fe.send(VU.SET_VRING_BASE, state(i, 0));
          fe.send(VU.SET_VRING_ADDR, vringAddr(i, UA + BigInt(r.desc), UA + BigInt(r.used), UA + BigInt(r.avail)));
          fe.send(VU.SET_VRING_KICK, u64(i), { fds: [pipes[2 * i]![0]] });
          fe.send(VU.SET_VRING_CALL, u64(i), { fds: [pipes[2 * i + 1]![1]] });
          fe.send(VU.SET_VRING_ENABLE, state(i, 1));
        }
        fe.send(VU.SET_STATUS, u64(0xf));
        await fe.call(VU.GET_STATUS);

        // Guest -> TAP: one ARP request (zero header + frame), then a kick.
        const frame = arpRequest([10, 251, 7, 2], [10, 251, 7, 1]);
        put(memfd, TX_BUF, Buffer.concat([Buffer.alloc(HDR), frame]));
        put(memfd, RING[1]!.desc, desc(TX_BUF, HDR + frame.length, 0));
        put(memfd, RING[1]!.avail + 4, Buffer.from([0, 0]));
        put(memfd, RING[1]!.avail + 2, Buffer.from([1, 0]));
        fs.writeSync(pipes[2]![1], u64(1));
        await until('the tx buffer to be used', () =>
          get(memfd, RING[1]!.used + 2, 2).readUInt16LE(0) === 1 ? true : undefined,
        );

        // TAP -> guest: the kernel's ARP reply lands in an rx buffer.
        const eth = await until('the ARP reply in an rx buffer', () => {
          const idx = get(memfd, RING[0]!.used + 2, 2).readUInt16LE(0);
          for (let k = 0; k < idx; k++) {
            const used = get(memfd, RING[0]!.used + 4 + 8 * k, 8);
            const frame = get(memfd, RX_BUF + 2048 * used.readUInt32LE(0), used.readUInt32LE(4)).subarray(HDR);
            if (frame.readUInt16BE(12) === 0x0806 && frame.readUInt16BE(20) === 2) return frame;
          }
          return undefined;
        });
        assert.deepEqual(eth.subarray(0, 6), GUEST_MAC, 'to the guest');
        assert.deepEqual([...eth.subarray(28, 32)], [10, 251, 7, 1]);
        // An interrupt was raised on the rx call fd.
        assert.ok(fs.readSync(pipes[1]![0], Buffer.alloc(64)) >= 8);

        const stats = dp.stats().filter((s) => s.name === 'vu0');
        assert.equal(stats.length, 1);
        assert.equal(stats[0]!.kind, 'virtio-device');
        assert.ok(
          stats[0]!.framesIn >= 1 && stats[0]!.framesOut >= 1,
          `in ${stats[0]!.framesIn}, out ${stats[0]!.framesOut}`,
        );

        // set_link off as QEMU does it: SET_STATUS(0), GET_VRING_BASE: the tx base moved to 1.
        fe.send(VU.SET_STATUS, u64(0));
        const b1 = await fe.call(VU.GET_VRING_BASE, state(1, 0));
        assert.equal(b1.payload.readUInt32LE(4), 1);

        // The front-end vanishes: no mapping, no fd of it is left.
        fe.close();
        await fe.closed;
        await until('the mapping to go', () =>
          fs.readFileSync('/proc/self/maps', 'utf8').includes('np-vu-guest') ? undefined : true,
        );
        assert.equal(fdsPointingAt(memTarget), 1, 'only our memfd');
        for (const p of pipes) assert.equal(fdsPointingAt(fdTarget(p[0])), 2);
        await ex.close();
      } finally {
        for (const p of pipes) for (const f of p) fs.closeSync(f);
        fs.closeSync(memfd);
        await topo.close();
        dp.close();
        deleteLink(ifname);
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  test(
    'packed rings (RING_PACKED, size 200): ARP out and the reply in; GET_VRING_BASE / SET_VRING_BASE resume the lap',
    { timeout: 60_000 },
    async () => {
      const PN = 200; // packed rings need not be a power of two
      const AVAIL = 0x80;
      const USED = 0x8000;
      const pdesc = (addr: number, len: number, id: number, flags: number): Buffer => {
        const b = desc(addr, len, 0);
        b.writeUInt16LE(id, 12);
        b.writeUInt16LE(flags, 14);
        return b;
      };
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'np-vu-dp-'));
      const ifname = npName('vk');
      const dp = new NativeDataPlane();
      const topo = new Topology({ dataPlane: dp, warn: () => {} });
      using ns = new NetNs('vk');
      const memfd = native().memfdCreate('np-vu-packed', MEM);
      const pipes = [native().aioPipe(), native().aioPipe(), native().aioPipe(), native().aioPipe()];
      try {
        topo.addNetdev({ type: 'tap', id: 'hn0', ifname, vnet_hdr: true });
        const ex = await VhostUserExport.create(topo, {
          id: 'vu0',
          netdev: 'hn0',
          packed: true,
          address: { kind: 'listen', path: path.join(dir, 's') },
        });
        sh('ip', ['link', 'set', ifname, 'netns', ns.name]);
        ns.disableIpv6();
        ns.exec('ip', ['addr', 'add', '10.251.8.1/24', 'dev', ifname]);
        ns.exec('ip', ['link', 'set', ifname, 'up']);

        const fe = await FakeFrontend.connect(path.join(dir, 's'));
        const feats = (await fe.call(VU.GET_FEATURES)).payload.readBigUInt64LE(0);
        assert.ok((feats & bit(VirtioF.RING_PACKED)) !== 0n, 'RING_PACKED offered');
        fe.send(VU.SET_PROTOCOL_FEATURES, u64(0x10009n));
        fe.send(VU.SET_FEATURES, u64(bit(VirtioF.VERSION_1) | bit(VirtioF.RING_PACKED) | bit(30)));
        await fe.call(VU.SET_MEM_TABLE, memTable([{ gpa: 0n, size: BigInt(MEM), ua: UA, offset: 0n }]), {
          flags: 0x1 | NEED_REPLY,
          fds: [memfd],
        });
        // 16 rx buffers made available in lap 1 (AVAIL set, USED clear), ids 0..15.
        for (let i = 0; i < 16; i++) put(memfd, RING[0]!.desc + 16 * i, pdesc(RX_BUF + 2048 * i, 2048, i, AVAIL | 2));
        const startRing = (i: number, base: number): void => {
          const r = RING[i]!;
          fe.send(VU.SET_VRING_NUM, state(i, PN));
          fe.send(VU.SET_VRING_BASE, state(i, base));
          // avail = the driver event area, used = the device event area.
          fe.send(VU.SET_VRING_ADDR, vringAddr(i, UA + BigInt(r.desc), UA + BigInt(r.used), UA + BigInt(r.avail)));
          fe.send(VU.SET_VRING_KICK, u64(i), { fds: [pipes[2 * i]![0]] });
          fe.send(VU.SET_VRING_CALL, u64(i), { fds: [pipes[2 * i + 1]![1]] });
          fe.send(VU.SET_VRING_ENABLE, state(i, 1));
        };
        // QEMU's form: avail position | wrap << 15, the used one in the upper half (both wrap 1).
        for (const i of [0, 1]) startRing(i, 0x80008000);
        fe.send(VU.SET_STATUS, u64(0xf));
        await fe.call(VU.GET_STATUS);

        const sendArp = async (pos: number, id: number): Promise<void> => {
          const frame = arpRequest([10, 251, 8, 2], [10, 251, 8, 1]);
          put(memfd, TX_BUF + 256 * pos, Buffer.concat([Buffer.alloc(HDR), frame]));
          put(memfd, RING[1]!.desc + 16 * pos, pdesc(TX_BUF + 256 * pos, HDR + frame.length, id, AVAIL));
          fs.writeSync(pipes[2]![1], u64(1));
          // Used: both bits equal to the device's wrap counter (1), our id written back.
          await until(`tx position ${pos} used`, () => {
            const d = get(memfd, RING[1]!.desc + 16 * pos, 16);
            return d.readUInt16LE(14) === (AVAIL | USED) && d.readUInt16LE(12) === id ? true : undefined;
          });
        };
        const arpReplyIn = (from: number) =>
          until('the ARP reply in an rx buffer', () => {
            for (let k = from; k < 16; k++) {
              const d = get(memfd, RING[0]!.desc + 16 * k, 16);
              if (d.readUInt16LE(14) !== (AVAIL | USED)) return undefined; // in order: the first unused ends it
              const f = get(memfd, RX_BUF + 2048 * d.readUInt16LE(12), d.readUInt32LE(8)).subarray(HDR);
              if (f.readUInt16BE(12) === 0x0806 && f.readUInt16BE(20) === 2) return k;
            }
            return undefined;
          });
        await sendArp(0, 7);
        const k = await arpReplyIn(0);
        assert.ok(fs.readSync(pipes[1]![0], Buffer.alloc(64)) >= 8, 'an rx interrupt');

        // Stop (set_link off): tx resumes at position 1, lap 1, for avail and used alike.
        fe.send(VU.SET_STATUS, u64(0));
        const tx = (await fe.call(VU.GET_VRING_BASE, state(1, 0))).payload.readUInt32LE(4);
        assert.equal(tx, 0x80018001, `tx base 0x${tx.toString(16)}`);
        const rx = (await fe.call(VU.GET_VRING_BASE, state(0, 0))).payload.readUInt32LE(4);
        assert.equal(rx & 0x8000, 0x8000, `rx base 0x${rx.toString(16)}`);
        assert.ok((rx & 0x7fff) > k, `rx base 0x${rx.toString(16)} is past the reply`);
        // ... and restarted from those bases (set_link on): the next buffer is at position 1.
        startRing(0, rx);
        startRing(1, tx);
        fe.send(VU.SET_STATUS, u64(0xf));
        await fe.call(VU.GET_STATUS);
        await sendArp(1, 3);
        await arpReplyIn(rx & 0x7fff);
        const stats = dp.stats().find((s) => s.name === 'vu0')!;
        assert.equal(stats.broken ?? false, false, stats.error ?? undefined);
        assert.ok(stats.framesIn >= 2, `in ${stats.framesIn}`);
        fe.close();
        await fe.closed;
        await ex.close();
      } finally {
        for (const p of pipes) for (const f of p) fs.closeSync(f);
        fs.closeSync(memfd);
        await topo.close();
        dp.close();
        deleteLink(ifname);
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
