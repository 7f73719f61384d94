// The seed topology built with real TAPs (privileged):
//   -netdev tap,id=hostnet0,ifname=<np name>,downscript=no,queues=4
//   -device virtio-net-pci,netdev=hostnet0,id=net0,mac=52:54:00:6b:0d:a1,bus=pci.0,addr=0x3
// What the kernel shows (ip -d link, ethtool -k) must follow what the guest driver does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { VIRTIO_NET_ERR, VIRTIO_NET_OK, VirtioF, VirtioNetF } from '../lib/devices/virtio-net-features';
import { NativeDataPlane } from '../lib/dataplane/native-dataplane';
import { Topology } from '../lib/topology';
import { deleteLink, ethtoolFeature, linkExists, npName, sh } from './helpers/netns';
import { featureBits, startDriver } from './helpers/nic-driver';
import { requirePrivilege } from './helpers/privilege';
import { needsPrivileged, requireTools } from './helpers/tools';

/** `multi_queue numqueues N numdisabled M` from ip -d link. */
function tapQueues(ifname: string): { attached: number; disabled: number } {
  const out = sh('ip', ['-d', 'link', 'show', 'dev', ifname]);
  const m = /numqueues (\d+) numdisabled (\d+)/.exec(out);
  assert.ok(m, `no multi_queue info in: ${out}`);
  return { attached: Number(m[1]), disabled: Number(m[2]) };
}

const F = featureBits;

test(
  'seed topology: 4-queue tap + virtio-net-pci, queues, header, offloads, link, delete',
  { timeout: 60_000 },
  async (t) => {
    if (!requirePrivilege(t) || !requireTools(t, 'ethtool')) return;
    const ifname = npName('seed');
    const topo = new Topology();
    try {
      const nd = topo.addNetdev({ type: 'tap', id: 'hostnet0', ifname, downscript: 'no', queues: 4 });
      assert.equal(nd.queues.length, 4);
      assert.deepEqual(tapQueues(ifname), { attached: 4, disabled: 0 });
      assert.ok(nd.tap?.hasVnetHdr, 'kernel offers IFF_VNET_HDR');

      const nic = topo.addDevice({
        driver: 'virtio-net-pci',
        netdev: 'hostnet0',
        id: 'net0',
        mac: '52:54:00:6b:0d:a1',
        bus: 'pci.0',
        addr: '0x3',
        features: {},
      });
      assert.equal(
        topo.infoNetwork().split('\n')[0],
        'net0: index=0,type=nic,model=virtio-net-pci,macaddr=52:54:00:6b:0d:a1',
      );
      assert.equal(nic.device.legacyHostFeatures, 0x79bfffe7);
      // Plugging resets the device: only queue pair 0 stays attached (QEMU 7.2 shows the same).
      assert.deepEqual(tapQueues(ifname), { attached: 1, disabled: 3 });

      // A modern driver with offloads: 12-byte header on the tap, TSO/checksum offloads on.
      assert.equal(ethtoolFeature(ifname, 'tx-tcp-segmentation'), 'off');
      startDriver(
        nic,
        F(
          VirtioF.VERSION_1,
          VirtioNetF.CSUM,
          VirtioNetF.GUEST_CSUM,
          VirtioNetF.GUEST_TSO4,
          VirtioNetF.GUEST_TSO6,
          VirtioNetF.MRG_RXBUF,
          VirtioNetF.STATUS,
          VirtioNetF.CTRL_VQ,
        ),
      );
      assert.equal(nd.tap?.vnetHdrLen, 12);
      assert.equal(nic.device.hostHdrLen, 12);
      assert.equal(ethtoolFeature(ifname, 'tx-tcp-segmentation'), 'on');
      assert.equal(ethtoolFeature(ifname, 'tx-checksumming'), 'on');
      assert.deepEqual(tapQueues(ifname), { attached: 1, disabled: 3 });
      // Without mq=on the device does not offer MQ: the guest cannot ask for more pairs.
      assert.equal(nic.device.setQueuePairs(4), VIRTIO_NET_ERR);
      assert.deepEqual(tapQueues(ifname), { attached: 1, disabled: 3 });

      // set_link and netdev_del reach the registered config notifier.
      let notified = 0;
      nic.onConfigChange(() => notified++);
      topo.setLink('hostnet0', false);
      assert.equal(notified, 1);
      assert.equal(nic.device.readConfig(6, 2) & 1, 0);
      topo.setLink('hostnet0', false);
      assert.equal(notified, 1);
      topo.setLink('hostnet0', true);
      assert.equal(notified, 2);
      assert.equal(nic.device.readConfig(6, 2) & 1, 1);

      topo.delNetdev('hostnet0');
      assert.equal(notified, 3);
      assert.equal(nic.linkUp, false);
      await nd.close();
      assert.equal(linkExists(ifname), false, 'QEMU 7.2 closes the tap on netdev_del');
      assert.equal(
        topo.infoNetwork().split('\n')[1],
        ` \\ hostnet0: index=0,type=tap,ifname=${ifname},script=no,downscript=no`,
      );
    } finally {
      await topo.close();
      deleteLink(ifname);
    }
  },
);

test('mq=on: the guest enables all 4 queue pairs, and back to 1', { timeout: 60_000 }, async (t) => {
  if (!requirePrivilege(t)) return;
  const ifname = npName('mq');
  const topo = new Topology();
  try {
    topo.addNetdev({ type: 'tap', id: 'hostnet0', ifname, queues: 4 });
    const nic = topo.addDevice({ driver: 'virtio-net-pci', netdev: 'hostnet0', id: 'net0', features: { mq: true } });
    assert.equal(nic.device.legacyHostFeatures, 0x79ffffe7);
    assert.equal(nic.device.readConfig(8, 2), 4); // max_virtqueue_pairs
    startDriver(nic, F(VirtioF.VERSION_1, VirtioNetF.MQ, VirtioNetF.CTRL_VQ, VirtioNetF.STATUS));
    assert.deepEqual(tapQueues(ifname), { attached: 1, disabled: 3 });
    assert.equal(nic.device.setQueuePairs(4), VIRTIO_NET_OK);
    assert.deepEqual(tapQueues(ifname), { attached: 4, disabled: 0 });
    assert.equal(nic.device.setQueuePairs(2), VIRTIO_NET_OK);
    assert.deepEqual(tapQueues(ifname), { attached: 2, disabled: 2 });
    // A device reset (driver unload) goes back to one pair.
    nic.device.setStatus(0);
    assert.deepEqual(tapQueues(ifname), { attached: 1, disabled: 3 });
  } finally {
    await topo.close();
    deleteLink(ifname);
  }
});

test('close() removes the interface and runs the downscript with the ifname', { timeout: 30_000 }, async (t) => {
  if (!requirePrivilege(t)) return;
  const ifname = npName('cl');
  const seen: string[] = [];
  const topo = new Topology({
    runScript: (p, name) => {
      // The interface still exists while the downscript runs (QEMU runs it before closing).
      seen.push(`${p} ${name} ${linkExists(name)}`);
    },
  });
  try {
    topo.addNetdev({ type: 'tap', id: 't0', ifname, queues: 2, downscript: '/etc/np-down' });
    topo.addDevice({ driver: 'virtio-net-pci', netdev: 't0', features: {} });
    assert.equal(linkExists(ifname), true);
    await topo.close();
    assert.equal(linkExists(ifname), false);
    assert.deepEqual(seen, [`/etc/np-down ${ifname} true`]);
  } finally {
    await topo.close();
    deleteLink(ifname);
  }
});

test(
  'a real up script gets the ifname; a failing one fails the netdev and leaves no interface',
  { timeout: 30_000 },
  async (t) => {
    if (!requirePrivilege(t)) return;
    const ifname = npName('sc');
    const topo = new Topology();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'np-up-'));
    try {
      // The script sees the interface already created, by name, as argv[1].
      const script = path.join(dir, 'up');
      fs.writeFileSync(script, `#!/bin/sh\nip link show dev "$1" >/dev/null && echo "$1" > ${dir}/seen\n`, {
        mode: 0o755,
      });
      const nd = topo.addNetdev({ type: 'tap', id: 'ok0', ifname, script });
      assert.equal(fs.readFileSync(path.join(dir, 'seen'), 'utf8'), `${ifname}\n`);
      assert.equal(nd.queues[0].infoStr, `ifname=${ifname},script=${script},downscript=no`);
      await nd.close();
      assert.equal(linkExists(ifname), false);

      assert.throws(
        () => topo.addNetdev({ type: 'tap', id: 't0', ifname, script: '/bin/false' }),
        /^NetplaneError: network script \/bin\/false failed with status 256$/,
      );
      await topo.close();
      assert.equal(linkExists(ifname), false);
    } finally {
      await topo.close();
      deleteLink(ifname);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'a 2-queue TAP on a hub port: its other queue is detached while the port holds it, so every flow crosses',
  { timeout: 60_000 },
  async (t) => {
    if (!requirePrivilege(t)) return;
    const { NativeDataPlane } = await import('../lib/dataplane/native-dataplane');
    const { NetNs } = await import('./helpers/netns');
    const ifA = npName('hqa');
    const ifB = npName('hqb');
    const dp = new NativeDataPlane();
    const topo = new Topology({ dataPlane: dp });
    const nsA = new NetNs('hqx');
    const nsB = new NetNs('hqy');
    try {
      const a = topo.addNetdev({ type: 'tap', id: 'a', ifname: ifA, downscript: 'no', queues: 2 });
      topo.addNetdev({ type: 'tap', id: 'b', ifname: ifB, downscript: 'no' });
      assert.deepEqual(tapQueues(ifA), { attached: 2, disabled: 0 });
      topo.addNetdev({ type: 'hubport', id: 'pa', hubid: 0, netdev: 'a' });
      topo.addNetdev({ type: 'hubport', id: 'pb', hubid: 0, netdev: 'b' });
      assert.deepEqual(
        tapQueues(ifA),
        { attached: 1, disabled: 1 },
        'queue 1 detached: the kernel sends every flow to queue 0',
      );
      assert.equal(a.tap?.queueEnabled(1), false);
      nsA.adopt(ifA, '10.197.4.1/24');
      nsB.adopt(ifB, '10.197.4.2/24');
      // 32 UDP flows (one source port each): the kernel would hash about half onto queue 1.
      const sink = nsB.spawn(process.execPath, ['-e', UDP_SINK, '10.197.4.2', '9']);
      let got = '';
      sink.stdout!.setEncoding('utf8').on('data', (d: string) => (got += d));
      for (let i = 0; i < 100 && !got.includes('ready'); i++) await new Promise((r) => setTimeout(r, 30));
      nsA.exec(process.execPath, ['-e', UDP_FLOWS, '10.197.4.2', '9', '32']);
      for (let i = 0; i < 100 && !got.includes('ports 32\n'); i++) await new Promise((r) => setTimeout(r, 30));
      sink.kill('SIGTERM');
      await new Promise((r) => sink.once('exit', r));
      const ports = Number(/ports (\d+)\s*$/.exec(got)?.[1] ?? -1);
      assert.equal(ports, 32, `every one of the 32 flows arrived (sink said: ${got.trim()})`);
      topo.delNetdev('pa');
      assert.equal(a.tap?.queueEnabled(1), true, 'queue 1 attached again once the hub port is gone');
    } finally {
      await topo.close();
      dp.close();
      nsA.dispose();
      nsB.dispose();
      deleteLink(ifA);
      deleteLink(ifB);
    }
  },
);

// Counts the distinct source ports it hears from; prints "ready", then the count on each datagram.
const UDP_SINK = `
const s = require('dgram').createSocket('udp4');
const ports = new Set();
s.on('message', (m, from) => { ports.add(from.port); console.log('ports ' + ports.size); });
s.bind(Number(process.argv[2]), process.argv[1], () => console.log('ready'));
`;
// One datagram from each of N sockets (N source ports, N flows), three times each (ARP may eat the first).
const UDP_FLOWS = `
const dgram = require('dgram');
const [host, port, n] = process.argv.slice(1);
let left = Number(n);
for (let i = 0; i < Number(n); i++) {
  const s = dgram.createSocket('udp4');
  s.bind(0, () => {
    let k = 0;
    const send = () => s.send(Buffer.from('x'), Number(port), host, () => (++k < 3 ? setTimeout(send, 100) : (s.close(), --left || process.exit(0))));
    send();
  });
}
`;

test(
  'Topology: a tap batches through io_uring by default, not with sndbuf set, and not with io-uring=off',
  { ...needsPrivileged(), timeout: 30_000 },
  async () => {
    // Where the kernel forbids io_uring to root, every queue reports the read/write fallback.
    let allowed = true;
    try {
      allowed = fs.readFileSync('/proc/sys/kernel/io_uring_disabled', 'utf8').trim() !== '2';
    } catch {
      // kernels before 6.6 have no switch
    }
    const names = { d: npName('urd'), s: npName('urs'), o: npName('uro') };
    const dp = new NativeDataPlane();
    const topo = new Topology({ dataPlane: dp });
    try {
      topo.addNetdev({ type: 'tap', id: 'd', ifname: names.d });
      topo.addNetdev({ type: 'tap', id: 's', ifname: names.s, sndbuf: 1 << 20 });
      topo.addNetdev({ type: 'tap', id: 'o', ifname: names.o, 'io-uring': false });
      const uring = (id: string): boolean => dp.stats().find((s) => s.name === id)?.ioUring === true;
      assert.equal(uring('d'), allowed, 'default');
      assert.equal(uring('s'), false, 'sndbuf set: the plain path holds frames back on EAGAIN');
      assert.equal(uring('o'), false, 'io-uring=off');
    } finally {
      await topo.close();
      dp.close();
      for (const n of Object.values(names)) deleteLink(n);
    }
  },
);
