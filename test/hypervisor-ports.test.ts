// Packet ports for a hypervisor with its own virtio-net model, tested with the small model a
// JavaScript emulator has (examples/lib/emulated-nic.ts: few rx buffers, its own header,
// link changes setting its status): partial receive leaves frames in the port and loses
// none, a bare NIC port carries no vnet header whatever the model negotiated (also with
// NativeDataPlane({ nicPorts: { vnetHdrLen: 0 } })), and link changes reach direct ports as
// they reach Topology NICs (set_link, a removed peer, a TAP that died).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { NativeDataPlane, type NativeDataPlaneOptions } from '../lib/dataplane/native-dataplane';
import type { PortLinkCause } from '../lib/dataplane/packet-port';
import { Topology } from '../lib/topology/topology';
import type { Nic } from '../lib/topology/nic';
import { VirtioF, VirtioStatus } from '../lib/devices/virtio-net-features';
import { EmulatedVirtioNet, GUEST_HDR_LEN } from '../examples/lib/emulated-nic';
import { needsPrivileged } from './helpers/tools';
import { closeSide, openSide, unconserved, type Side } from './helpers/dataplane-env';
import { sh } from './helpers/netns';
import { waitFor } from './helpers/wait';

function frame(tag: number, len = 64): Uint8Array {
  const f = new Uint8Array(len).fill(tag);
  f.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0, 0, tag & 0xff, 0x88, 0xb5]);
  return f;
}

/** An emulator's NIC (bare port) and a wire NIC on one hub; no privileges. */
function hubBed(opts: NativeDataPlaneOptions = {}, bare = true) {
  const dp = new NativeDataPlane(opts);
  const topo = new Topology({ dataPlane: dp });
  topo.addNetdev({ type: 'hubport', id: 'nph0', hubid: 0 });
  topo.addNetdev({ type: 'hubport', id: 'nph1', hubid: 0 });
  const nic = topo.addDevice(
    { driver: 'virtio-net-pci', netdev: 'nph0', id: 'npnet0', features: {} },
    bare ? { frames: 'bare' } : {},
  );
  const wireNic = topo.addDevice({ driver: 'virtio-net-pci', netdev: 'nph1', id: 'npnet1', features: {} });
  const wire = dp.port(wireNic.clients[0]!.handle)!;
  const port = dp.port(nic.clients[0]!.handle)!;
  return {
    dp,
    topo,
    nic,
    port,
    wire,
    async close() {
      await topo.close();
      dp.close();
    },
  };
}

test('partial receive: an emulator with 3 rx buffers takes 3 frames at a time, in order, none lost', async () => {
  const b = hubBed();
  try {
    const emu = new EmulatedVirtioNet(b.port);
    emu.postRxBuffers(3);
    const sent = Array.from({ length: 20 }, (_, i) => frame(i + 1, 60 + i));
    assert.equal(b.wire.send(sent), true);
    await waitFor(() => emu.delivered.length === 3, 'the first three frames');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(emu.delivered.length, 3, 'no more than the guest has buffers for');
    assert.equal(b.port.readable, true, 'the rest waits in the port');
    while (emu.delivered.length < sent.length) {
      const before = emu.delivered.length;
      emu.postRxBuffers(3);
      assert.ok(emu.delivered.length > before, 'frames left in the ring are delivered when asked again');
    }
    assert.equal(b.port.readable, false);
    emu.delivered.forEach((pkt, i) => {
      assert.deepEqual(pkt.subarray(0, GUEST_HDR_LEN), new Uint8Array(GUEST_HDR_LEN), 'its own zeroed header');
      assert.deepEqual(pkt.subarray(GUEST_HDR_LEN), sent[i], `frame ${i} whole and in order`);
    });
    const st = b.dp.stats();
    assert.deepEqual(unconserved(st), []);
    assert.equal(
      st.reduce((n, c) => n + c.dropped, 0),
      0,
      'no frame dropped',
    );
  } finally {
    await b.close();
  }
});

test('partial receive: read(0) takes nothing; a bad max is a RangeError; readable fires again for new frames', async () => {
  const b = hubBed();
  try {
    let wakes = 0;
    b.port.onReadable(() => wakes++);
    b.wire.send([frame(1), frame(2)]);
    await waitFor(() => wakes >= 1 && b.port.readable, 'a readable call');
    assert.deepEqual(b.port.read(0), []);
    assert.throws(() => b.port.read(-1), RangeError);
    assert.throws(() => b.port.read(1.5), RangeError);
    await waitFor(() => {
      // Both frames published (the two may come in one batch or two).
      const got = b.port.read(0).length === 0 && b.dp.stats().find((c) => c.handle === b.port.handle)!.framesOut;
      return got === 2;
    }, 'both frames in the ring');
    assert.equal(b.port.read(1).length, 1);
    const w = wakes;
    b.wire.send([frame(3)]);
    await waitFor(() => wakes > w, 'readable again after a read');
    assert.deepEqual(
      b.port.read().map((f) => f[11]),
      [2, 3],
    );
    assert.throws(() => b.port.onFrames(() => undefined), { code: 'NETPLANE_IN_USE' });
  } finally {
    await b.close();
  }
});

test('partial receive with back-pressure: a guest that takes nothing stops the sender, nothing is lost', async () => {
  const b = hubBed({ nicPorts: { ringBytes: 256 * 1024 } });
  try {
    const emu = new EmulatedVirtioNet(b.port);
    // More than the 256 KiB rings hold: the rest waits upstream (the hub's queue, the wire's
    // tx ring, then sendAsync).
    const total = 600;
    const sends = b.wire.sendAsync(Array.from({ length: total }, (_, i) => frame(i, 1500)));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(emu.delivered.length, 0);
    const parked = b.dp.stats().find((c) => c.handle === b.port.handle)!;
    assert.ok(parked.framesOut < total, 'the ring is full and the rest waits');
    emu.postRxBuffers(total);
    // The engine's wake-ups do not keep the event loop alive (an idle data plane must not):
    // poll with a timer while the sender drains.
    let drained = false;
    void sends.then(() => (drained = true));
    await waitFor(() => drained, 'the sender to drain');
    const sent = total;
    await waitFor(() => emu.delivered.length === sent, `all ${sent} frames`);
    const st = b.dp.stats();
    assert.deepEqual(unconserved(st), []);
    assert.equal(
      st.reduce((n, c) => n + c.dropped, 0),
      0,
    );
  } finally {
    await b.close();
  }
});

test('link changes reach the emulator through its port: set_link on the NIC and on its netdev', async () => {
  const b = hubBed();
  try {
    const emu = new EmulatedVirtioNet(b.port);
    const causes: Array<[boolean, PortLinkCause]> = [];
    b.port.onLinkChange((up, cause) => causes.push([up, cause]));
    b.topo.setLink('npnet0', false);
    assert.equal(emu.linkUp, false);
    b.topo.setLink('npnet0', true);
    assert.equal(emu.linkUp, true);
    b.topo.setLink('nph0', false); // the netdev: a NIC peer follows (QEMU's set_link)
    assert.equal(emu.linkUp, false);
    b.topo.setLink('nph0', true);
    assert.equal(emu.configInterrupts, 4);
    assert.deepEqual(causes[0], [false, 'set-link']);
  } finally {
    await b.close();
  }
});

test('direct ports learn their peer link: set_link of the peer, the peer removed', () => {
  const dp = new NativeDataPlane();
  try {
    const a = dp.createPort('np-a');
    const b = dp.createPort('np-b');
    dp.connect(a.handle, b.handle);
    const seen: Array<[boolean, PortLinkCause]> = [];
    a.onLinkChange((up, cause) => seen.push([up, cause]));
    assert.equal(a.linkUp, true);
    dp.setLinkDown(b.handle, true);
    dp.setLinkDown(b.handle, true); // no change, no event
    dp.setLinkDown(b.handle, false);
    dp.setLinkDown(a.handle, true);
    dp.setLinkDown(a.handle, false);
    dp.removeClient(b.handle);
    assert.deepEqual(seen, [
      [false, 'peer-link'],
      [true, 'peer-link'],
      [false, 'set-link'],
      [true, 'set-link'],
      [false, 'peer-removed'],
    ]);
    assert.equal(a.linkUp, false);
    const c = dp.createPort('np-c');
    dp.connect(a.handle, c.handle);
    assert.deepEqual(seen.at(-1), [true, 'connected']);
  } finally {
    dp.close();
  }
});

/** The guest side of negotiation: VERSION_1, so the model's header is 12 bytes. */
function negotiateV1(nic: Nic): void {
  nic.device.setStatus(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER);
  nic.device.setDriverFeatures(1n << BigInt(VirtioF.VERSION_1));
  nic.device.setStatus(
    VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER | VirtioStatus.FEATURES_OK | VirtioStatus.DRIVER_OK,
  );
}

const EMU_MAC = [0x52, 0x54, 0x00, 0x00, 0x00, 0x42];
const EMU_IP_HOST = 77;

/** The ARP reply the emulated guest (EMU_MAC at `ip`) gives, or null. */
function arpReply(f: Uint8Array, ip: number[]): Uint8Array | null {
  if (f.length < 42 || f[12] !== 0x08 || f[13] !== 0x06 || f[21] !== 1) return null;
  if (!ip.every((v, i) => f[38 + i] === v)) return null;
  const r = new Uint8Array(42);
  r.set(f.subarray(6, 12), 0);
  r.set(EMU_MAC, 6);
  r.set([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2], 12);
  r.set(EMU_MAC, 22);
  r.set(ip, 28);
  r.set(f.subarray(22, 32), 32);
  return r;
}

describe('bare frames on a Topology NIC over a real TAP with vnet headers', needsPrivileged('ping'), () => {
  for (const how of ['frames: bare', 'nicPorts.vnetHdrLen: 0'] as const) {
    test(`${how}: the port carries no header although the model negotiated 12 bytes`, async () => {
      let side: Side | undefined;
      const dp = new NativeDataPlane(how === 'nicPorts.vnetHdrLen: 0' ? { nicPorts: { vnetHdrLen: 0 } } : {});
      const net = (process.pid + 37) % 250;
      side = openSide('hb', 1, net, { vnetHdr: 'on' });
      const topo = new Topology({ dataPlane: dp, adoptTap: () => side!.tap, openTap: () => side!.tap });
      try {
        side.ns.disableIpv6();
        topo.addNetdev({ type: 'tap', id: 'nphn0', ifname: side.ifname, script: 'no', downscript: 'no' });
        const nic = topo.addDevice(
          { driver: 'virtio-net-pci', netdev: 'nphn0', id: 'npnet0', features: {} },
          how === 'frames: bare' ? { frames: 'bare' } : {},
        );
        negotiateV1(nic);
        assert.equal(nic.device.hostHdrLen, 12, 'the model moved the TAP to a 12-byte header');
        const port = dp.port(nic.clients[0]!.handle)!;
        assert.equal(port.vnetHdrLen, 0, 'the port stays bare');
        const ip = side.ip.split('.').map(Number);
        ip[3] = EMU_IP_HOST;
        const emu = new EmulatedVirtioNet(port);
        emu.postRxBuffers(1 << 20);
        // The emulated guest answers ARP (its header stripped on the way out).
        let answered = 0;
        const timer = setInterval(() => {
          for (const pkt of emu.delivered.splice(0)) {
            const r = arpReply(pkt.subarray(GUEST_HDR_LEN), ip);
            if (r) {
              const out = new Uint8Array(GUEST_HDR_LEN + r.length);
              out.set(r, GUEST_HDR_LEN);
              emu.guestTransmit([out]);
              answered++;
            } else if (pkt[GUEST_HDR_LEN + 12] === 0x08 && pkt[GUEST_HDR_LEN + 13] === 0x00) {
              icmp.push(pkt.subarray(GUEST_HDR_LEN).slice());
            }
          }
          emu.postRxBuffers(0);
        }, 5);
        const icmp: Uint8Array[] = [];
        try {
          side.ns.exec('ping', ['-c', '2', '-i', '0.2', '-W', '1', ip.join('.')], { allowFail: true });
          await waitFor(() => icmp.length > 0, 'an echo request at the emulated guest');
        } finally {
          clearInterval(timer);
        }
        assert.ok(answered > 0, 'the kernel asked who has the guest address');
        // Bare: the frame starts with the guest MAC, no header in front.
        assert.deepEqual([...icmp[0]!.subarray(0, 6)], EMU_MAC);
        assert.deepEqual(unconserved(dp.stats()), []);
      } finally {
        await topo.close();
        dp.close();
        closeSide(side);
        side = undefined;
      }
    });
  }

  test('a direct port whose TAP dies goes link-down (tap-dead)', async () => {
    const dp = new NativeDataPlane();
    const side = openSide('hd', 1, (process.pid + 41) % 250, { vnetHdr: 'on' });
    try {
      dp.addClient({ handle: 1, kind: 'tap', name: 'nptap', queueIndex: 0, fd: side.tap.fd(0), vnetHdrLen: 10 });
      const port = dp.createPort('np-port', { vnetHdrLen: 0 });
      dp.connect(1, port.handle);
      const seen: Array<[boolean, PortLinkCause]> = [];
      port.onLinkChange((up, cause) => seen.push([up, cause]));
      side.ns.exec('ip', ['link', 'del', side.ifname]);
      await waitFor(() => seen.length > 0, 'the link change');
      assert.deepEqual(seen, [[false, 'tap-dead']]);
      assert.equal(port.linkUp, false);
    } finally {
      dp.close();
      closeSide(side);
      sh('true', []);
    }
  });
});
