// The registry: clients in creation order, multiqueue wiring, hubs, names, MACs, warnings,
// scripts, `info network` — with fake TAPs (no addon, no privileges).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { NetplaneError } from '../lib/errors';
import { Topology, type TopologyOptions } from '../lib/topology';
import type { DeviceOptions, NetdevOptions } from '../lib/options/types';
import { runNetworkScript } from '../lib/topology/netdevs/tap';
import { fakeTaps, RecordingDataPlane } from './helpers/fake-tap';

function setup(extra: Partial<TopologyOptions> = {}) {
  const fakes = fakeTaps();
  const dp = new RecordingDataPlane();
  const scripts: string[] = [];
  const topo = new Topology({
    openTap: fakes.openTap,
    adoptTap: fakes.adoptTap,
    dataPlane: dp,
    runScript: (p, ifname) => void scripts.push(`${p} ${ifname}`),
    ...extra,
  });
  return { topo, fakes, dp, scripts };
}

const tap = (id: string, more: Partial<Extract<NetdevOptions, { type: 'tap' }>> = {}): NetdevOptions => ({
  type: 'tap',
  id,
  ...more,
});
const nic = (more: Partial<DeviceOptions> = {}): DeviceOptions => ({ driver: 'virtio-net-pci', features: {}, ...more });

function throwsNetplane(fn: () => unknown, message: string, qmpClass = 'GenericError') {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof NetplaneError, `expected NetplaneError, got ${String(e)}`);
    assert.equal(e.message, message);
    assert.equal(e.qmpClass, qmpClass);
    return true;
  });
}

describe('multiqueue wiring', () => {
  test('a tap with N queues is N clients sharing the name, index 0 until a NIC takes them', () => {
    const { topo } = setup();
    const nd = topo.addNetdev(tap('hostnet0', { ifname: 'np0', queues: 4 }));
    assert.equal(nd.queues.length, 4);
    assert.deepEqual(
      topo.clients.map((c) => [c.name, c.type, c.queueIndex, c.peer]),
      Array(4).fill(['hostnet0', 'tap', 0, null]),
    );
    assert.ok(nd.queues.every((c) => c.isNetdev && c.model === 'tap'));
  });

  test('netdev= pairs backend and NIC queues 1:1 and sets queue_index on both sides', () => {
    const { topo, dp } = setup();
    const nd = topo.addNetdev(tap('hostnet0', { ifname: 'np0', queues: 4 }));
    const n = topo.addDevice(
      nic({ netdev: 'hostnet0', id: 'net0', mac: '52:54:00:6b:0d:a1', bus: 'pci.0', addr: '0x3' }),
    );
    assert.equal(n.queues.length, 4);
    assert.equal(n.device.maxQueuePairs, 4);
    for (let i = 0; i < 4; i++) {
      assert.equal(n.queues[i].name, 'net0');
      assert.equal(n.queues[i].queueIndex, i);
      assert.equal(n.queues[i].peer, nd.queues[i]);
      assert.equal(nd.queues[i].peer, n.queues[i]);
      assert.equal(nd.queues[i].queueIndex, i);
      assert.equal(dp.peers.get(n.queues[i].handle), nd.queues[i].handle);
    }
    assert.equal(n.queues[0].infoStr, 'model=virtio-net-pci,macaddr=52:54:00:6b:0d:a1');
    assert.equal(n.queues[1].infoStr, '');
    assert.equal(nd.attachedNic, n);
  });

  test('data plane learns every tap queue with its fd, header length and queue number', () => {
    const { topo, dp, fakes } = setup();
    topo.addNetdev(tap('t0', { ifname: 'np0', queues: 2 }));
    const fds = fakes.taps[0].fds;
    // The data plane's index is the TAP queue (placement, counters); info network keeps 0.
    assert.deepEqual(dp.calls, [`add tap t0 q0 fd${fds[0]} hdr10`, `add tap t0 q1 fd${fds[1]} hdr10`]);
    assert.deepEqual(
      topo.clients.map((c) => c.queueIndex),
      [0, 0],
    );
    // A NIC taking the queues pairs queue i with NIC queue i: both sides agree on the index.
    topo.addDevice(nic({ netdev: 't0', id: 'n0', features: { mq: true } }));
    for (const [a, b] of dp.peers) assert.equal(dp.clients.get(a)!.queueIndex, dp.clients.get(b)!.queueIndex);
    assert.deepEqual(
      topo.clients.map((c) => [c.type, c.queueIndex, dp.clients.get(c.handle)!.queueIndex]),
      [
        ['tap', 0, 0],
        ['tap', 1, 1],
        ['nic', 0, 0],
        ['nic', 1, 1],
      ],
    );
  });

  test('a netdev can be taken by one NIC only', () => {
    const { topo } = setup();
    topo.addNetdev(tap('hn0'));
    topo.addDevice(nic({ netdev: 'hn0', id: 'a' }));
    throwsNetplane(
      () => topo.addDevice(nic({ netdev: 'hn0', id: 'b' })),
      "Property 'virtio-net-device.netdev' can't take value 'hn0', it's in use",
    );
    throwsNetplane(
      () => topo.addDevice(nic({ netdev: 'nosuch' })),
      "Property 'virtio-net-device.netdev' can't find value 'nosuch'",
    );
    // The failed attempts left nothing behind.
    assert.equal(topo.nics.length, 1);
    assert.equal(topo.clients.length, 2);
  });

  test('a failed device add releases its MAC', () => {
    const { topo } = setup();
    assert.throws(() => topo.addDevice(nic({ speed: -5 })), /'speed' must be between 0 and INT_MAX/);
    assert.equal(topo.addDevice(nic()).mac, '52:54:00:12:34:56');
  });

  test('device ids are unique among devices, but may equal a netdev id', () => {
    const { topo } = setup();
    topo.addNetdev(tap('x'));
    topo.addDevice(nic({ netdev: 'x', id: 'x' }));
    throwsNetplane(() => topo.addDevice(nic({ id: 'x' })), "Duplicate ID 'x' for device");
    assert.deepEqual(
      topo.clients.map((c) => `${c.name}/${c.type}`),
      ['x/tap', 'x/nic'],
    );
  });

  test('bad MAC is rejected with the inner device type in the message', () => {
    const { topo } = setup();
    throwsNetplane(
      () => topo.addDevice(nic({ mac: 'zz:00:00:00:00:00' })),
      "Property 'virtio-net-device.mac' doesn't take value 'zz:00:00:00:00:00'",
    );
  });

  test('queues=0 is a clear error, not an assertion', () => {
    const { topo } = setup();
    assert.throws(
      () => topo.addNetdev(tap('t', { queues: 0 })),
      /Parameter 'queues' expects a value between 1 and 1024/,
    );
    assert.equal(topo.clients.length, 0);
  });

  test('netplane link(): two backends peered queue by queue', () => {
    const { topo, dp } = setup();
    const a = topo.addNetdev(tap('a', { ifname: 'npa', queues: 2 }));
    const b = topo.addNetdev(tap('b', { ifname: 'npb', queues: 2 }));
    topo.link('a', 'b');
    assert.equal(a.queues[1].peer, b.queues[1]);
    assert.equal(b.queues[1].queueIndex, 1);
    assert.ok(dp.calls.includes('connect a b'));
    assert.throws(() => topo.link('a', 'b'), /netdev 'a' is already in use/);
    topo.addNetdev(tap('c'));
    topo.addNetdev(tap('d', { queues: 2 }));
    assert.throws(() => topo.link('c', 'd'), /cannot link 'c' \(1 queues\) with 'd' \(2 queues\)/);
    assert.equal(
      topo.infoNetwork(),
      'a: index=0,type=tap,ifname=npa,script=no,downscript=no\n' +
        ' \\ b: index=0,type=tap,ifname=npb,script=no,downscript=no\n' +
        'a: index=1,type=tap,ifname=npa,script=no,downscript=no\n' +
        ' \\ b: index=1,type=tap,ifname=npb,script=no,downscript=no\n' +
        'c: index=0,type=tap,ifname=tap0,script=no,downscript=no\n' +
        'd: index=0,type=tap,ifname=tap1,script=no,downscript=no\n' +
        'd: index=0,type=tap,ifname=tap1,script=no,downscript=no\n',
    );
  });
});

describe('duplicate ids', () => {
  test('CLI path reports "for netdev" only when the id came through the CLI too', () => {
    const { topo } = setup();
    topo.addNetdev(tap('hn0'), { via: 'cli' });
    throwsNetplane(() => topo.addNetdev(tap('hn0'), { via: 'cli' }), "Duplicate ID 'hn0' for netdev");
    throwsNetplane(() => topo.addNetdev(tap('hn0'), { via: 'qmp' }), "Duplicate ID 'hn0'");
    topo.addNetdev(tap('q0'), { via: 'qmp' });
    throwsNetplane(() => topo.addNetdev(tap('q0'), { via: 'cli' }), "Duplicate ID 'q0'");
  });

  test('bad ids', () => {
    const { topo } = setup();
    throwsNetplane(() => topo.addNetdev(tap('0abc')), "Parameter 'id' expects an identifier");
    throwsNetplane(
      () => topo.addNetdev({ type: 'bogus', id: 'x' } as unknown as NetdevOptions),
      "Parameter 'type' does not accept value 'bogus'",
    );
  });

  test('iothreads: must exist before a netdev names one; duplicates per path', () => {
    const { topo, dp } = setup();
    assert.throws(() => topo.addNetdev(tap('t', { iothread: 'io0' })), /iothread 'io0' not found/);
    topo.addIothread({ qomType: 'iothread', id: 'io0' }, { via: 'cli' });
    assert.throws(
      () => topo.addIothread({ qomType: 'iothread', id: 'io0' }, { via: 'cli' }),
      /^NetplaneError: Duplicate ID 'io0' for object$/,
    );
    topo.addNetdev(tap('t', { iothread: 'io0' }));
    topo.addDevice(nic({ netdev: 't' }));
    assert.deepEqual(
      [...dp.clients.values()].map((c) => c.iothread),
      ['io0', 'io0'],
    );
  });
});

describe('hubs', () => {
  test('hubport netdev= links the first client of that name only', () => {
    const { topo } = setup();
    const t = topo.addNetdev(tap('t0', { ifname: 'np0', queues: 2 }));
    const hp = topo.addNetdev({ type: 'hubport', id: 'hp0', hubid: 0, netdev: 't0' });
    assert.equal(hp.queues[0].peer, t.queues[0]);
    assert.equal(t.queues[1].peer, null);
    assert.deepEqual(topo.startupWarnings(), ['hub 0 with no nics', 'netdev t0 has no peer']);
  });

  test('a second hubport on an already peered netdev is a clear error (QEMU asserts)', () => {
    const { topo } = setup();
    topo.addNetdev(tap('t0'));
    topo.addNetdev({ type: 'hubport', id: 'hp0', hubid: 0, netdev: 't0' });
    assert.throws(
      () => topo.addNetdev({ type: 'hubport', id: 'hp1', hubid: 0, netdev: 't0' }),
      (e: unknown) =>
        e instanceof NetplaneError && e.code === 'NETPLANE_IN_USE' && /netdev 't0' already has a peer/.test(e.message),
    );
    assert.throws(
      () => topo.addNetdev({ type: 'hubport', id: 'hp2', hubid: 0, netdev: 'none' }),
      /netdev 'none' not found/,
    );
    assert.equal(topo.hubs[0].ports.length, 1);
  });

  test('hubs and ports are listed newest first', () => {
    const { topo } = setup();
    topo.addNetdev({ type: 'hubport', id: 'a', hubid: 1 });
    topo.addNetdev({ type: 'hubport', id: 'b', hubid: 2 });
    topo.addNetdev({ type: 'hubport', id: 'c', hubid: 1 });
    assert.deepEqual(
      topo.hubs.map((h) => h.id),
      [2, 1],
    );
    assert.deepEqual(
      topo.hubs[1].ports.map((p) => p.name),
      ['c', 'a'],
    );
    assert.equal(topo.infoNetwork(), 'hub 2\n \\ b\nhub 1\n \\ c\n \\ a\n');
  });

  test('deleting a hubport removes it from its hub; the hub stays', async () => {
    const { topo } = setup();
    topo.addNetdev(tap('t0', { ifname: 'np0' }));
    topo.addNetdev({ type: 'hubport', id: 'hp', hubid: 3, netdev: 't0' });
    topo.delNetdev('hp');
    assert.equal(topo.hubs[0].ports.length, 0);
    assert.equal(topo.clients.length, 1);
    assert.equal(topo.clients[0].peer, null);
    assert.equal(topo.infoNetwork(), 'hub 3\nt0: index=0,type=tap,ifname=np0,script=no,downscript=no\n');
    await topo.hubs[0].close();
    assert.equal(topo.hubs.length, 0);
  });
});

describe('non-netdev hub ports (QEMU legacy -net style)', () => {
  test("named hub<id>port<k> by the hub's running counter; netdev_del refuses them", async () => {
    const { topo, dp } = setup();
    topo.addNetdev(tap('t0', { ifname: 'np0' }));
    const p0 = topo.addHubPort(0);
    const p1 = topo.addHubPort(0, { peer: 't0' });
    topo.addNetdev({ type: 'hubport', id: 'hp', hubid: 0 });
    const p3 = topo.addHubPort(0);
    assert.deepEqual([p0.name, p1.name, p3.name], ['hub0port0', 'hub0port1', 'hub0port3']);
    assert.equal(p0.isNetdev, false);
    throwsNetplane(() => topo.delNetdev('hub0port1'), "Device 'hub0port1' is not a netdev");
    topo.setLink('hub0port1', false); // accepted, as in QEMU
    assert.equal(p1.linkDown, true);
    assert.equal(topo.netdevs.get('t0')!.linkUp, true);
    assert.equal(
      topo.infoNetwork(),
      'hub 0\n \\ hub0port3\n \\ hp\n \\ hub0port1: t0: index=0,type=tap,ifname=np0,script=no,downscript=no\n \\ hub0port0\n',
    );
    await topo.hubs[0].close();
    assert.equal(topo.clients.length, 1);
    assert.equal(topo.clients[0].peer, null);
    assert.deepEqual(
      [...dp.clients.values()].map((c) => c.name),
      ['t0'],
    );
  });
});

describe('data plane hooks follow the device', () => {
  test('negotiation sets the header length per queue; pair changes attach/detach queues', () => {
    const { topo, dp, fakes } = setup();
    topo.addNetdev(tap('hn0', { queues: 3 }));
    const n = topo.addDevice(nic({ netdev: 'hn0', id: 'n', features: { mq: true } }));
    // The plug-time reset detached queues 1 and 2, on the tap and in the data plane.
    assert.deepEqual(fakes.taps[0].log, ['queue 1 off', 'queue 2 off', 'hdr 10', 'offloads -']);
    assert.deepEqual(
      dp.calls.filter((c) => c.startsWith('queue')),
      ['queue hn0 off', 'queue hn0 off'],
    );
    dp.calls.length = 0;
    n.device.setDriverFeatures((1n << 32n) | (1n << 22n) | (1n << 1n)); // VERSION_1 | MQ | GUEST_CSUM
    assert.deepEqual(dp.calls, ['hdr hn0 12', 'hdr n 12', 'hdr hn0 12', 'hdr n 12', 'hdr hn0 12', 'hdr n 12']);
    assert.deepEqual(
      topo.netdevs.get('hn0')!.queues.map((q) => q.vnetHdrLen),
      [12, 12, 12],
    );
    assert.deepEqual(
      n.queues.map((q) => q.vnetHdrLen),
      [12, 12, 12],
    );
    assert.equal(fakes.taps[0].log.at(-1), 'offloads csum');
    dp.calls.length = 0;
    n.device.setQueuePairs(3);
    assert.deepEqual(dp.calls, ['queue hn0 on', 'queue hn0 on']); // queues 1 and 2; 0 never left
    assert.equal(fakes.taps[0].numDisabled, 0);
  });

  test("NIC queues start with the device's host header length: 10 with a vnet-header tap, 0 otherwise", () => {
    const { topo, dp } = setup();
    topo.addNetdev(tap('hn0'));
    topo.addNetdev({ type: 'hubport', id: 'hp', hubid: 0 });
    topo.addDevice(nic({ netdev: 'hn0', id: 'a' }));
    topo.addDevice(nic({ netdev: 'hp', id: 'b' }));
    topo.addDevice(nic({ id: 'c' }));
    assert.deepEqual(
      dp.calls.filter((c) => c.startsWith('add port')),
      ['add port a q0 hdr10', 'add port b q0 hdr0', 'add port c q0 hdr0'],
    );
  });

  test('a backend operation that fails becomes an error event, not a throw into the guest path', () => {
    const { topo, fakes } = setup();
    topo.addNetdev(tap('hn0'));
    const n = topo.addDevice(nic({ netdev: 'hn0' }));
    const errors: string[] = [];
    topo.on('error', (e) => errors.push(e.message));
    fakes.taps[0].setVnetHdrLen = () => {
      throw new Error('TUNSETVNETHDRSZ ioctl() failed: Bad file descriptor');
    };
    n.device.setDriverFeatures(1n << 32n);
    assert.deepEqual(errors, ['TUNSETVNETHDRSZ ioctl() failed: Bad file descriptor']);
    assert.equal(n.device.hostHdrLen, 10); // the backend kept its old length
  });
});

describe('names and MACs', () => {
  test('automatic names count clients of the same model, per queue', () => {
    const { topo } = setup();
    topo.addNetdev(tap('a', { queues: 2 }));
    topo.addNetdev(tap('b', { queues: 2 }));
    const n1 = topo.addDevice(nic({ netdev: 'a' }));
    const n2 = topo.addDevice(nic({ netdev: 'b' }));
    const n3 = topo.addDevice(nic());
    assert.deepEqual(
      n1.queues.map((q) => q.name),
      ['virtio-net-pci.0', 'virtio-net-pci.1'],
    );
    assert.deepEqual(
      n2.queues.map((q) => q.name),
      ['virtio-net-pci.2', 'virtio-net-pci.3'],
    );
    assert.equal(n3.name, 'virtio-net-pci.4');
  });

  test('auto names can repeat after deletions (they count what exists now)', async () => {
    const { topo } = setup();
    const a = topo.addDevice(nic());
    topo.addDevice(nic());
    await a.close();
    assert.equal(topo.addDevice(nic()).name, 'virtio-net-pci.1');
    assert.deepEqual(
      topo.nics.map((n) => n.name),
      ['virtio-net-pci.1', 'virtio-net-pci.1'],
    );
  });

  test('an id-carrying NIC of the same model counts too', () => {
    const { topo } = setup();
    topo.addDevice(nic({ id: 'e0' }));
    assert.equal(topo.addDevice(nic()).name, 'virtio-net-pci.1');
  });

  test('default MACs: mac=..:56, auto, auto, mac=..:58 gives 56, 57, 58, 58', () => {
    const { topo } = setup();
    const macs = [
      topo.addDevice(nic({ mac: '52:54:00:12:34:56' })),
      topo.addDevice(nic()),
      topo.addDevice(nic()),
      topo.addDevice(nic({ mac: '52:54:00:12:34:58' })),
    ].map((n) => n.mac);
    assert.deepEqual(macs, ['52:54:00:12:34:56', '52:54:00:12:34:57', '52:54:00:12:34:58', '52:54:00:12:34:58']);
  });

  test('deleting a NIC frees its default MAC; other MACs never touch the pool', async () => {
    const { topo } = setup();
    topo.addDevice(nic());
    const b = topo.addDevice(nic());
    topo.addDevice(nic({ mac: '02:00:00:00:00:57' }));
    await b.close();
    assert.equal(topo.addDevice(nic()).mac, '52:54:00:12:34:57');
    assert.equal(topo.addDevice(nic()).mac, '52:54:00:12:34:58');
  });

  test('MAC pools are per topology', () => {
    const a = setup().topo;
    const b = setup().topo;
    assert.equal(a.addDevice(nic()).mac, '52:54:00:12:34:56');
    assert.equal(b.addDevice(nic()).mac, '52:54:00:12:34:56');
  });

  test('dash-separated and upper-case MACs are accepted and printed lower-case with colons', () => {
    const { topo } = setup();
    assert.equal(topo.addDevice(nic({ mac: '52-54-00-AB-CD-EF' })).mac, '52:54:00:ab:cd:ef');
  });
});

describe('startup warnings', () => {
  test('peerless NICs, netdevs and hub ports; hubs without NICs or host side', () => {
    const { topo } = setup();
    topo.addNetdev({ type: 'hubport', id: 'p1', hubid: 1 });
    topo.addNetdev({ type: 'hubport', id: 'p2', hubid: 2 });
    topo.addDevice(nic({ netdev: 'p2', id: 'e0' }));
    topo.addNetdev(tap('lonely'));
    topo.addDevice(nic());
    assert.deepEqual(topo.startupWarnings(), [
      'hub 2 is not connected to host network',
      'hub port p1 has no peer',
      'netdev p1 has no peer',
      'netdev lonely has no peer',
      'nic virtio-net-pci.1 has no peer',
    ]);
  });
});

describe('tap options and scripts', () => {
  test('script runs on queue 0 with the ifname; info strings show it on queue 0 only', () => {
    const { topo, scripts } = setup();
    const nd = topo.addNetdev(tap('t', { ifname: 'np1', queues: 2, script: '/x/up', downscript: '/x/down' }));
    assert.deepEqual(scripts, ['/x/up np1']);
    assert.deepEqual(
      nd.queues.map((q) => q.infoStr),
      ['ifname=np1,script=/x/up,downscript=/x/down', 'ifname=np1,script=no,downscript=no'],
    );
  });

  test('downscript runs at delete, before the tap closes', async () => {
    const order: string[] = [];
    const fakes = fakeTaps();
    const topo = new Topology({
      openTap: (o) => {
        const t = fakes.openTap(o);
        const close = t.close.bind(t);
        t.close = async () => {
          order.push('close');
          await close();
        };
        return t;
      },
      runScript: (p, ifname) => void order.push(`${p} ${ifname}`),
    });
    const nd = topo.addNetdev(tap('t', { ifname: 'np1', downscript: '/x/down' }));
    await nd.close();
    assert.deepEqual(order, ['/x/down np1', 'close']);
    assert.ok(fakes.taps[0].closed);
    assert.ok(nd.deleted);
  });

  test('a failing up script fails the netdev and closes the tap', () => {
    const fakes = fakeTaps();
    const topo = new Topology({
      openTap: fakes.openTap,
      runScript: (p) => {
        throw new NetplaneError('NETPLANE_SCRIPT_FAILED', `network script ${p} failed with status 256`);
      },
    });
    assert.throws(
      () => topo.addNetdev(tap('t', { script: '/bin/false' })),
      /network script \/bin\/false failed with status 256/,
    );
    assert.ok(fakes.taps[0].closed);
    assert.equal(topo.netdevs.size, 0);
  });

  test('script=no and empty disable scripts', () => {
    const { topo, scripts } = setup();
    const nd = topo.addNetdev(tap('t', { ifname: 'np1', script: 'no', downscript: '' }));
    assert.deepEqual(scripts, []);
    assert.equal(nd.queues[0].infoStr, 'ifname=np1,script=no,downscript=');
  });

  test('fd= and fds=: info strings, monitor fd names', () => {
    const { topo } = setup({ resolveFd: (name) => (name === 'myfd' ? 42 : -1) });
    assert.equal(topo.addNetdev(tap('a', { fd: '7' })).queues[0].infoStr, 'fd=7');
    assert.equal(topo.addNetdev(tap('b', { fd: 'myfd' })).queues[0].infoStr, 'fd=42');
    assert.deepEqual(
      topo.addNetdev(tap('c', { fds: ['8', '9'] })).queues.map((q) => q.infoStr),
      ['fd=8', 'fd=9'],
    );
    assert.throws(() => topo.addNetdev(tap('d', { fd: 'nope' })), /File descriptor named 'nope' has not been found/);
  });

  test('vhost and helper are refused clearly', () => {
    const { topo } = setup();
    assert.throws(() => topo.addNetdev(tap('a', { vhost: true })), /vhost-net requested but could not be initialized/);
    assert.throws(() => topo.addNetdev(tap('b', { vhostforce: true })), /vhost-net/);
    assert.throws(
      () => topo.addNetdev(tap('c', { helper: '/usr/lib/qemu/qemu-bridge-helper' })),
      /helper= and br= are not supported/,
    );
    topo.addNetdev(tap('d', { vhost: false }));
  });

  test('tap open failures keep the system error text and become NetplaneErrors', () => {
    const topo = new Topology({
      openTap: () => {
        throw Object.assign(new Error('could not configure /dev/net/tun (np0): Operation not permitted'), {
          code: 'EPERM',
        });
      },
    });
    assert.throws(
      () => topo.addNetdev(tap('t', { ifname: 'np0' })),
      (e: unknown) =>
        e instanceof NetplaneError &&
        e.code === 'NETPLANE_TAP_OPEN_FAILED' &&
        e.message === 'could not configure /dev/net/tun (np0): Operation not permitted' &&
        (e.cause as { code?: string }).code === 'EPERM',
    );
  });
});

describe('runNetworkScript (real processes)', () => {
  test('runs the program directly with the ifname as argv[1] and a minimal environment', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'np-script-'));
    try {
      const out = path.join(dir, 'out');
      const script = path.join(dir, 'up');
      fs.writeFileSync(script, `#!/bin/sh\necho "$1|$#|$HOME" > ${out}\n`, { mode: 0o755 });
      runNetworkScript(script, 'np0;echo pwned');
      assert.equal(fs.readFileSync(out, 'utf8'), 'np0;echo pwned|1|\n');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('failures report the raw wait status as QEMU does', () => {
    assert.throws(
      () => runNetworkScript('/bin/false', 'np0'),
      /^NetplaneError: network script \/bin\/false failed with status 256$/,
    );
    assert.throws(
      () => runNetworkScript('/nonexistent/np-up', 'np0'),
      /network script \/nonexistent\/np-up failed with status 256/,
    );
  });
});

describe('info network (QEMU 7.2 captures)', () => {
  test('multiqueue tap with a virtio-net-pci NIC', () => {
    const { topo } = setup();
    topo.addNetdev(tap('hn0', { ifname: 'spA0', script: 'no', downscript: 'no', queues: 2 }));
    topo.addDevice(nic({ netdev: 'hn0', id: 'nic0', mac: '52:54:00:aa:bb:01', features: { mq: true } }));
    assert.equal(
      topo.infoNetwork(),
      'nic0: index=0,type=nic,model=virtio-net-pci,macaddr=52:54:00:aa:bb:01\n' +
        ' \\ hn0: index=0,type=tap,ifname=spA0,script=no,downscript=no\n' +
        'nic0: index=1,type=nic,\n' +
        ' \\ hn0: index=1,type=tap,ifname=spA0,script=no,downscript=no\n',
    );
  });

  test('same tap netdev, no device yet: both queues print index=0', () => {
    const { topo } = setup();
    topo.addNetdev(tap('hn0', { ifname: 'spA0', script: 'no', downscript: 'no', queues: 2 }));
    assert.equal(
      topo.infoNetwork(),
      'hn0: index=0,type=tap,ifname=spA0,script=no,downscript=no\n' +
        'hn0: index=0,type=tap,ifname=spA0,script=no,downscript=no\n',
    );
  });

  // Captured from qemu-system-x86_64 7.2.22 -M pc -S with:
  //   -netdev tap,id=t0,ifname=npq0,script=no,downscript=no,queues=2
  //   -netdev hubport,id=hp5,hubid=5
  //   -netdev tap,id=u9,ifname=npq1,script=no,downscript=no
  //   -netdev hubport,id=hp6,hubid=5,netdev=u9
  //   -device virtio-net-pci,netdev=hp5,id=e0 -device virtio-net-pci,netdev=t0,mq=on
  //   -device virtio-net-pci -netdev tap,id=t2,ifname=npq2,queues=2
  //   -netdev hubport,id=hp7,hubid=7,netdev=t2
  // (t2's scripts are QEMU's defaults; netplane defaults to no, so they are given here.)
  const captured =
    'hub 7\n' +
    ' \\ hp7: t2: index=0,type=tap,ifname=npq2,script=/etc/qemu-ifup,downscript=/etc/qemu-ifdown\n' +
    'hub 5\n' +
    ' \\ hp6: u9: index=0,type=tap,ifname=npq1,script=no,downscript=no\n' +
    ' \\ hp5: e0: index=0,type=nic,model=virtio-net-pci,macaddr=52:54:00:12:34:56\n' +
    't2: index=0,type=tap,ifname=npq2,script=no,downscript=no\n' +
    'virtio-net-pci.1: index=0,type=nic,model=virtio-net-pci,macaddr=52:54:00:12:34:57\n' +
    ' \\ t0: index=0,type=tap,ifname=npq0,script=no,downscript=no\n' +
    'virtio-net-pci.2: index=1,type=nic,\n' +
    ' \\ t0: index=1,type=tap,ifname=npq0,script=no,downscript=no\n' +
    'virtio-net-pci.3: index=0,type=nic,model=virtio-net-pci,macaddr=52:54:00:12:34:58\n';

  function build(topo: Topology) {
    topo.addNetdev(tap('t0', { ifname: 'npq0', script: 'no', downscript: 'no', queues: 2 }), { via: 'cli' });
    topo.addNetdev({ type: 'hubport', id: 'hp5', hubid: 5 }, { via: 'cli' });
    topo.addNetdev(tap('u9', { ifname: 'npq1', script: 'no', downscript: 'no' }), { via: 'cli' });
    topo.addNetdev({ type: 'hubport', id: 'hp6', hubid: 5, netdev: 'u9' }, { via: 'cli' });
    topo.addNetdev(tap('t2', { ifname: 'npq2', queues: 2, script: '/etc/qemu-ifup', downscript: '/etc/qemu-ifdown' }), {
      via: 'cli',
    });
    topo.addNetdev({ type: 'hubport', id: 'hp7', hubid: 7, netdev: 't2' }, { via: 'cli' });
    topo.addDevice(nic({ netdev: 'hp5', id: 'e0' }));
    topo.addDevice(nic({ netdev: 't0', features: { mq: true } }));
    topo.addDevice(nic());
  }

  test('hubs, hub ports, id-less multiqueue NICs and a peerless NIC', () => {
    const { topo } = setup();
    build(topo);
    assert.equal(topo.infoNetwork(), captured);
    // The same run printed these warnings.
    assert.deepEqual(topo.startupWarnings(), [
      'hub 7 with no nics',
      'netdev t2 has no peer',
      'nic virtio-net-pci.3 has no peer',
    ]);
  });

  test('after netdev_del of an attached backend the NIC still lists it (same capture)', () => {
    const { topo } = setup();
    build(topo);
    topo.delNetdev('t0');
    assert.equal(topo.infoNetwork(), captured);
    assert.equal(topo.netdevs.has('t0'), false);
  });
});

describe('queries', () => {
  test('query-rx-filter: NIC queue 0 only, truthful broadcast-allowed, QEMU errors', () => {
    const { topo } = setup();
    topo.addNetdev(tap('hn0', { queues: 2 }));
    topo.addDevice(nic({ netdev: 'hn0', id: 'nic0', mac: '52:54:00:12:34:56' }));
    topo.addDevice(nic({ id: 'nic1' }));
    const all = topo.queryRxFilter();
    assert.deepEqual(
      all.map((i) => i.name),
      ['nic0', 'nic1'],
    );
    const [info] = topo.queryRxFilter('nic0');
    assert.equal(info['main-mac'], '52:54:00:12:34:56');
    assert.equal(info.promiscuous, true);
    assert.equal(info['broadcast-allowed'], true); // QEMU would say false here
    assert.equal(info.vlan, 'all');
    assert.equal(info['vlan-table'].length, 4096);
    throwsNetplane(() => topo.queryRxFilter('hn0'), "net client(hn0) isn't a NIC");
    throwsNetplane(() => topo.queryRxFilter('nope'), 'invalid net client name: nope');
  });

  test('query-rx-filter on a NIC that shares its id with an earlier netdev hits the netdev first', () => {
    const { topo } = setup();
    topo.addNetdev(tap('x'));
    topo.addDevice(nic({ netdev: 'x', id: 'x' }));
    throwsNetplane(() => topo.queryRxFilter('x'), "net client(x) isn't a NIC");
  });
});

describe('rx filter events', () => {
  test('NIC_RX_FILTER_CHANGED data: device id and QOM path; re-armed by a query', () => {
    const { topo } = setup();
    const a = topo.addDevice(nic({ id: 'vnet0' }));
    const b = topo.addDevice(nic());
    const seen: unknown[] = [];
    a.on('rx-filter-changed', (i) => seen.push(i));
    b.on('rx-filter-changed', (i) => seen.push(i));
    a.device.setRxMode('promisc', false);
    a.device.setRxMode('promisc', true); // not re-armed yet
    b.device.setRxMode('allmulti', true);
    topo.queryRxFilter('vnet0');
    a.device.setRxMode('promisc', false);
    assert.deepEqual(seen, [
      { name: 'vnet0', path: '/machine/peripheral/vnet0/virtio-backend' },
      { path: '/machine/peripheral-anon/device[0]/virtio-backend' },
      { name: 'vnet0', path: '/machine/peripheral/vnet0/virtio-backend' },
    ]);
  });
});

describe('announce-self', () => {
  test("one RARP per NIC per round, from queue 0, with QEMU's layout", () => {
    const { topo, dp } = setup();
    topo.addNetdev(tap('hn0', { queues: 2 }));
    const a = topo.addDevice(nic({ netdev: 'hn0', id: 'a', mac: '52:54:00:6b:0d:a1' }));
    topo.addDevice(nic({ id: 'b' }));
    const seen: Buffer[] = [];
    a.on('announce', (f) => seen.push(f));
    topo.announceSelf({ initial: 50, max: 550, rounds: 1, step: 100 });
    assert.equal(dp.raw.length, 2);
    assert.equal(dp.raw[0].handle, a.queues[0].handle);
    const f = Buffer.from(dp.raw[0].frame);
    assert.equal(f.length, 60);
    assert.equal(
      f.subarray(0, 42).toString('hex'),
      'ffffffffffff' +
        '5254006b0da1' +
        '8035' +
        '0001' +
        '0800' +
        '06' +
        '04' +
        '0003' +
        '5254006b0da1' +
        '00000000' +
        '5254006b0da1' +
        '00000000',
    );
    assert.ok(f.subarray(42).every((b) => b === 0));
    assert.deepEqual(seen, [f]);
  });

  test('rounds follow initial + k*step clamped to max; rounds 0 cancels the named timer', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const { topo, dp } = setup();
    topo.addDevice(nic({ id: 'a' }));
    topo.announceSelf({ initial: 50, max: 120, rounds: 4, step: 60, id: 'x' });
    assert.equal(dp.raw.length, 1); // first round at once
    t.mock.timers.tick(49);
    assert.equal(dp.raw.length, 1);
    t.mock.timers.tick(1); // +50
    assert.equal(dp.raw.length, 2);
    t.mock.timers.tick(109); // next wait 110
    assert.equal(dp.raw.length, 2);
    t.mock.timers.tick(1);
    assert.equal(dp.raw.length, 3);
    topo.announceSelf({ initial: 0, max: 0, rounds: 0, step: 0, id: 'x' });
    t.mock.timers.tick(1000);
    assert.equal(dp.raw.length, 3);
  });

  test('interfaces= restricts by queue-0 name', () => {
    const { topo, dp } = setup();
    topo.addDevice(nic({ id: 'a' }));
    const b = topo.addDevice(nic({ id: 'b' }));
    topo.announceSelf({ initial: 0, max: 0, rounds: 1, step: 0, interfaces: ['b'] });
    assert.deepEqual(
      dp.raw.map((r) => r.handle),
      [b.queues[0].handle],
    );
  });
});

describe('lifetime', () => {
  test('close() unplugs NICs, deletes netdevs (downscripts, taps closed) and refuses further use', async () => {
    const { topo, fakes, scripts, dp } = setup();
    topo.addNetdev(tap('a', { ifname: 'npa', downscript: '/x/down' }));
    topo.addNetdev(tap('b', { ifname: 'npb', queues: 2 }));
    topo.addDevice(nic({ netdev: 'b' }));
    topo.addNetdev({ type: 'hubport', id: 'hp', hubid: 0, netdev: 'a' });
    await topo.close();
    assert.ok(fakes.taps.every((t) => t.closed));
    assert.deepEqual(scripts, ['/x/down npa']);
    assert.equal(topo.clients.length, 0);
    assert.equal(topo.hubs.length, 0);
    assert.equal(dp.clients.size, 0);
    assert.throws(
      () => topo.addNetdev(tap('c')),
      (e: unknown) => e instanceof NetplaneError && e.code === 'NETPLANE_CLOSED',
    );
    await topo.close(); // idempotent
  });

  test('await using disposes the topology', async () => {
    const fakes = fakeTaps();
    {
      await using topo = new Topology({ openTap: fakes.openTap });
      topo.addNetdev(tap('a'));
    }
    assert.ok(fakes.taps[0].closed);
  });

  test('typed events for added and deleted objects', async () => {
    const { topo } = setup();
    const events: string[] = [];
    topo.on('netdev-added', (n) => events.push(`+${n.id}`));
    topo.on('netdev-deleted', (n) => events.push(`-${n.id}`));
    topo.on('device-added', (n) => events.push(`+${n.name}`));
    topo.on('device-deleted', (n) => events.push(`-${n.name}`));
    const nd = topo.addNetdev(tap('a'));
    const n = topo.addDevice(nic({ netdev: 'a', id: 'n' }));
    await n.close();
    await nd.close();
    assert.deepEqual(events, ['+a', '+n', '-n', '-a']);
  });

  test('a NIC unplug leaves its backend listed and unpeered', async () => {
    const { topo } = setup();
    topo.addNetdev(tap('a', { ifname: 'npa', queues: 2 }));
    const n = topo.addDevice(nic({ netdev: 'a', id: 'n' }));
    await n.close();
    assert.equal(
      topo.infoNetwork(),
      'a: index=0,type=tap,ifname=npa,script=no,downscript=no\n' +
        'a: index=1,type=tap,ifname=npa,script=no,downscript=no\n',
    );
    // Reattach works: the queues are free again.
    topo.addDevice(nic({ netdev: 'a', id: 'n2' }));
  });
});
