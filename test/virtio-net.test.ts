// The virtio-net device model: offered features, negotiation and what it does to the
// backend, config space, status/notification, multiqueue, announce, rx filter.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMac } from '../lib/devices/mac';
import { VirtioNet, type VirtioNetPeer } from '../lib/devices/virtio-net';
import {
  bit,
  VIRTIO_NET_ERR,
  VIRTIO_NET_OK,
  VirtioF,
  VirtioNetF,
  VirtioNetS,
  VirtioStatus,
} from '../lib/devices/virtio-net-features';
import type { VirtioNetDeviceOptions } from '../lib/options/types';
import type { TapOffloads } from '../lib/tap';
import { featureBits } from './helpers/nic-driver';

class FakeBackend implements VirtioNetPeer {
  readonly log: string[] = [];
  readonly isTap = true;
  constructor(
    readonly hasVnetHdr = true,
    readonly hasUfo = true,
    readonly hasUso = false,
  ) {}
  setVnetHdrLen(q: number, len: number): boolean {
    this.log.push(`hdr q${q} ${len}`);
    return this.hasVnetHdr;
  }
  setOffloads(o: TapOffloads): void {
    const on = Object.entries(o)
      .filter(([, v]) => v)
      .map(([k]) => k);
    this.log.push(`offloads ${on.join(',') || '-'}`);
  }
  setQueueEnabled(q: number, enabled: boolean): void {
    this.log.push(`queue ${q} ${enabled ? 'on' : 'off'}`);
  }
}

const MAC = parseMac('52:54:00:12:34:56')!;

function device(opts: { backend?: VirtioNetPeer; pairs?: number; options?: Partial<VirtioNetDeviceOptions> } = {}) {
  const backend = 'backend' in opts ? opts.backend : new FakeBackend();
  return new VirtioNet({
    mac: MAC,
    maxQueuePairs: opts.pairs ?? 1,
    ...(backend ? { peer: backend } : {}),
    options: { driver: 'virtio-net-pci', features: {}, ...opts.options },
  });
}

const F = featureBits;

describe('offered features', () => {
  // QEMU 7.2's legacy host-features register, observed over the I/O BAR.
  test('with a vnet-header backend: 0x79bfffe7', () => {
    assert.equal(device().legacyHostFeatures, 0x79bfffe7);
  });

  test('vnet_hdr=off backend: offloads withdrawn, 0x79bf8064', () => {
    assert.equal(device({ backend: new FakeBackend(false, false) }).legacyHostFeatures, 0x79bf8064);
  });

  test('no backend at all is like a backend without vnet headers', () => {
    assert.equal(device({ backend: undefined }).legacyHostFeatures, 0x79bf8064);
  });

  test('mq=on adds MQ: 0x79ffffe7', () => {
    assert.equal(device({ options: { features: { mq: true } } }).legacyHostFeatures, 0x79ffffe7);
  });

  test('UFO and USO follow the backend', () => {
    const noUfo = device({ backend: new FakeBackend(true, false) });
    assert.equal(noUfo.hostFeatures & F(VirtioNetF.GUEST_UFO, VirtioNetF.HOST_UFO), 0n);
    const uso = device({ backend: new FakeBackend(true, true, true) });
    const usoBits = F(VirtioNetF.GUEST_USO4, VirtioNetF.GUEST_USO6, VirtioNetF.HOST_USO);
    assert.equal(uso.hostFeatures & usoBits, usoBits);
    assert.equal(device().hostFeatures & usoBits, 0n);
  });

  test('modern view: VERSION_1 offered, legacy-only bits hidden', () => {
    const d = device();
    assert.ok(d.modernHostFeatures & bit(VirtioF.VERSION_1));
    for (const b of [VirtioF.NOTIFY_ON_EMPTY, VirtioF.ANY_LAYOUT, VirtioF.BAD_FEATURE, VirtioNetF.GSO]) {
      assert.equal(d.modernHostFeatures & bit(b), 0n, `bit ${b}`);
    }
  });

  test('properties switch bits: host_mtu -> MTU, speed/duplex -> SPEED_DUPLEX, csum=off', () => {
    const d = device({ options: { host_mtu: 9000, speed: 10000, duplex: 'full', features: { csum: false } } });
    assert.ok(d.hostFeatures & bit(VirtioNetF.MTU));
    assert.ok(d.hostFeatures & bit(VirtioNetF.SPEED_DUPLEX));
    assert.equal(d.hostFeatures & bit(VirtioNetF.CSUM), 0n);
  });

  test('invalid properties are refused with QEMU texts', () => {
    assert.throws(() => device({ options: { speed: -2 } }), /'speed' must be between 0 and INT_MAX/);
    assert.throws(
      () => device({ options: { rx_queue_size: 300 } }),
      /Invalid rx_queue_size \(= 300\), must be a power of 2 between 256 and 1024\./,
    );
    assert.throws(
      () => device({ pairs: 512 }),
      /Invalid number of queue pairs \(= 512\), must be a positive integer less than 511\./,
    );
  });
});

describe('negotiation', () => {
  const cases: Array<[string, bigint, number, Partial<VirtioNetDeviceOptions>?]> = [
    ['legacy, no mergeable buffers', 0n, 10],
    ['legacy with MRG_RXBUF', F(VirtioNetF.MRG_RXBUF), 12],
    ['VERSION_1', F(VirtioF.VERSION_1), 12],
    ['VERSION_1 + HASH_REPORT', F(VirtioF.VERSION_1, VirtioNetF.HASH_REPORT), 20, { features: { hash: true } }],
  ];
  for (const [name, features, len, options] of cases) {
    test(`${name}: guest header ${len}, set on every backend queue`, () => {
      const be = new FakeBackend();
      const d = device({ backend: be, pairs: 3, ...(options ? { options } : {}) });
      assert.equal(d.setDriverFeatures(features), true);
      assert.equal(d.guestHdrLen, len);
      assert.equal(d.hostHdrLen, len);
      assert.deepEqual(
        be.log.filter((l) => l.startsWith('hdr')),
        [`hdr q0 ${len}`, `hdr q1 ${len}`, `hdr q2 ${len}`],
      );
    });
  }

  test('backend without vnet headers: host header stays 0, nothing is set', () => {
    const be = new FakeBackend(false, false);
    const d = device({ backend: be });
    d.setDriverFeatures(F(VirtioF.VERSION_1));
    assert.equal(d.guestHdrLen, 12);
    assert.equal(d.hostHdrLen, 0);
    assert.deepEqual(be.log, []);
  });

  test('offloads come from the negotiated GUEST_* bits', () => {
    const be = new FakeBackend(true, true, true);
    const d = device({ backend: be });
    d.setDriverFeatures(
      F(VirtioF.VERSION_1, VirtioNetF.GUEST_CSUM, VirtioNetF.GUEST_TSO4, VirtioNetF.GUEST_USO6, VirtioNetF.HOST_TSO4),
    );
    assert.equal(be.log.at(-1), 'offloads csum,tso4,uso6');
  });

  test('bits not offered are dropped and reported', () => {
    const d = device({ backend: new FakeBackend(false, false) });
    assert.equal(d.setDriverFeatures(F(VirtioF.VERSION_1, VirtioNetF.GUEST_CSUM)), false);
    assert.equal(d.driverFeatures, F(VirtioF.VERSION_1));
  });

  test('features are frozen once FEATURES_OK is set', () => {
    const d = device();
    d.setDriverFeatures(F(VirtioF.VERSION_1));
    d.setStatus(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER | VirtioStatus.FEATURES_OK);
    assert.equal(d.setDriverFeatures(0n), false);
    assert.equal(d.driverFeatures, F(VirtioF.VERSION_1));
  });

  test('guest offload changes over the control queue: only a negotiated subset', () => {
    const be = new FakeBackend();
    const d = device({ backend: be });
    d.setDriverFeatures(
      F(VirtioF.VERSION_1, VirtioNetF.CTRL_GUEST_OFFLOADS, VirtioNetF.GUEST_CSUM, VirtioNetF.GUEST_TSO4),
    );
    assert.equal(d.setGuestOffloads(F(VirtioNetF.GUEST_CSUM)), VIRTIO_NET_OK);
    assert.equal(be.log.at(-1), 'offloads csum');
    assert.equal(d.setGuestOffloads(F(VirtioNetF.GUEST_TSO6)), VIRTIO_NET_ERR);
  });
});

describe('config space', () => {
  test('fields at their offsets, little-endian, any width', () => {
    const d = device({ pairs: 4, options: { host_mtu: 1500, speed: 10000, duplex: 'full', features: { mq: true } } });
    const mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    mac.forEach((b, i) => assert.equal(d.readConfig(i, 1), b));
    assert.equal(d.readConfig(0, 4), 0x12005452);
    assert.equal(d.readConfig(6, 2), VirtioNetS.LINK_UP);
    assert.equal(d.readConfig(8, 2), 4);
    assert.equal(d.readConfig(10, 2), 1500);
    assert.equal(d.readConfig(12, 4), 10000);
    assert.equal(d.readConfig(16, 1), 1);
    assert.equal(d.configSize, 17);
    assert.equal(d.readConfig(5, 2), 0x0156); // unaligned read across mac[5] and status
  });

  test('visible size follows the offered features; beyond it reads all ones', () => {
    const d = device();
    assert.equal(d.configSize, 8); // mac + status (STATUS on by default, MQ off)
    assert.equal(d.readConfig(8, 2), 0xffff);
    assert.equal(d.readConfig(8, 4), 0xffffffff);
    const noStatus = device({ options: { features: { status: false } } });
    assert.equal(noStatus.configSize, 6);
  });

  test('speed and duplex default to unknown', () => {
    const d = device({ options: { speed: 100 } });
    assert.equal(d.readConfig(12, 4), 100);
    assert.equal(d.readConfig(16, 1), 0xff);
  });

  test('a legacy driver without CTRL_MAC_ADDR may write the MAC; others may not', () => {
    const macs: string[] = [];
    const d = device();
    d.onMacChange((m) => macs.push(Buffer.from(m).toString('hex')));
    d.setDriverFeatures(F(VirtioNetF.MRG_RXBUF));
    d.writeConfig(5, 0x99, 1);
    assert.equal(d.readConfig(5, 1), 0x99);
    d.writeConfig(6, 0, 2); // status is read-only
    assert.equal(d.readConfig(6, 2), VirtioNetS.LINK_UP);
    d.reset(); // reset restores the configured MAC
    assert.equal(d.readConfig(5, 1), 0x56);
    d.setDriverFeatures(F(VirtioF.VERSION_1));
    d.writeConfig(5, 0x77, 1);
    assert.equal(d.readConfig(5, 1), 0x56);
    d.reset();
    d.setDriverFeatures(F(VirtioNetF.CTRL_MAC_ADDR));
    d.writeConfig(5, 0x77, 1);
    assert.equal(d.readConfig(5, 1), 0x56);
    assert.deepEqual(macs, ['525400123499', '525400123456']);
  });

  test('bad access arguments are RangeErrors', () => {
    const d = device();
    assert.throws(() => d.readConfig(0, 3 as 1), RangeError);
    assert.throws(() => d.readConfig(-1, 1), RangeError);
  });
});

describe('link status and the config notifier', () => {
  test('LINK_UP starts set; changes notify only after DRIVER_OK and only when the bit moves', () => {
    const d = device();
    let notified = 0;
    d.onConfigChange(() => notified++);
    assert.equal(d.linkUp, true);
    assert.equal(d.linkStatusChanged(true), true); // before DRIVER_OK: bit moves, no interrupt
    assert.equal(d.linkUp, false);
    assert.equal(notified, 0);
    assert.equal(d.readIsr(), 0);
    d.setStatus(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER | VirtioStatus.DRIVER_OK);
    assert.equal(d.linkStatusChanged(true), false); // same state: nothing
    assert.equal(notified, 0);
    const gen = d.configGeneration;
    assert.equal(d.linkStatusChanged(false), true);
    assert.equal(notified, 1);
    assert.equal(d.configGeneration, gen + 1);
    assert.equal(d.readIsr(), 3);
    assert.equal(d.readIsr(), 0); // read clears
    d.linkStatusChanged(false);
    assert.equal(notified, 1);
  });

  test('reset clears ANNOUNCE but keeps LINK_UP as it is', () => {
    const d = device();
    d.setDriverFeatures(F(VirtioNetF.GUEST_ANNOUNCE, VirtioNetF.CTRL_VQ));
    d.linkStatusChanged(true);
    d.announce();
    assert.equal(d.netStatus, VirtioNetS.ANNOUNCE);
    d.setStatus(0);
    assert.equal(d.netStatus, 0);
  });

  test('unsubscribed listeners are not called', () => {
    const d = device();
    let n = 0;
    const off = d.onConfigChange(() => n++);
    d.setStatus(VirtioStatus.DRIVER_OK);
    off();
    d.linkStatusChanged(true);
    assert.equal(n, 0);
  });
});

describe('announce', () => {
  test('ANNOUNCE needs GUEST_ANNOUNCE and CTRL_VQ; notifies; the guest acks it', () => {
    const d = device();
    let n = 0;
    d.onConfigChange(() => n++);
    d.setStatus(VirtioStatus.DRIVER_OK);
    d.announce();
    assert.equal(d.netStatus & VirtioNetS.ANNOUNCE, 0);
    d.setStatus(0);
    d.setDriverFeatures(F(VirtioNetF.GUEST_ANNOUNCE, VirtioNetF.CTRL_VQ));
    d.setStatus(VirtioStatus.DRIVER_OK);
    d.announce();
    assert.equal(d.netStatus & VirtioNetS.ANNOUNCE, VirtioNetS.ANNOUNCE);
    assert.equal(n, 1);
    assert.equal(d.ackAnnounce(), VIRTIO_NET_OK);
    assert.equal(d.netStatus & VirtioNetS.ANNOUNCE, 0);
    assert.equal(d.ackAnnounce(), VIRTIO_NET_ERR);
  });
});

describe('multiqueue', () => {
  test('reset detaches queues >= 1; MQ_VQ_PAIRS_SET attaches and detaches', () => {
    const be = new FakeBackend();
    const d = device({ backend: be, pairs: 4, options: { features: { mq: true } } });
    d.reset();
    assert.deepEqual(
      be.log.filter((l) => l.startsWith('queue')),
      ['queue 0 on', 'queue 1 off', 'queue 2 off', 'queue 3 off'],
    );
    assert.equal(d.setQueuePairs(2), VIRTIO_NET_ERR); // MQ not negotiated yet
    be.log.length = 0;
    d.setDriverFeatures(F(VirtioF.VERSION_1, VirtioNetF.MQ, VirtioNetF.CTRL_VQ));
    assert.equal(d.multiqueue, true);
    assert.equal(d.setQueuePairs(4), VIRTIO_NET_OK);
    assert.equal(d.currQueuePairs, 4);
    assert.deepEqual(be.log.filter((l) => l.startsWith('queue')).slice(-4), [
      'queue 0 on',
      'queue 1 on',
      'queue 2 on',
      'queue 3 on',
    ]);
    assert.equal(d.setQueuePairs(5), VIRTIO_NET_ERR);
    assert.equal(d.setQueuePairs(0), VIRTIO_NET_ERR);
    d.setQueuePairs(1);
    assert.deepEqual(be.log.slice(-3), ['queue 1 off', 'queue 2 off', 'queue 3 off']);
  });

  test('a single queue pair is never attached or detached', () => {
    const be = new FakeBackend();
    const d = device({ backend: be });
    d.reset();
    assert.deepEqual(
      be.log.filter((l) => l.startsWith('queue')),
      [],
    );
  });

  test('after the backend is deleted nothing touches it', () => {
    const be = new FakeBackend();
    const d = device({ backend: be, pairs: 2, options: { features: { mq: true } } });
    d.peerDeleted();
    d.reset();
    d.setDriverFeatures(F(VirtioF.VERSION_1, VirtioNetF.MQ));
    d.setQueuePairs(2);
    assert.deepEqual(be.log, []);
  });
});

describe('rx filter', () => {
  test('after reset: promiscuous, all VLANs before CTRL_VLAN (descending), truthful broadcast', () => {
    const d = device();
    d.reset();
    const info = d.queryRxFilter('nic0');
    assert.equal(info.promiscuous, true);
    assert.equal(info.unicast, 'normal');
    assert.equal(info.multicast, 'normal');
    assert.equal(info.vlan, 'all');
    assert.equal(info['vlan-table'].length, 4096);
    assert.deepEqual(info['vlan-table'].slice(0, 2), [4095, 4094]);
    assert.equal(info['vlan-table'].at(-1), 0);
    assert.equal(info['broadcast-allowed'], true);
    assert.equal(info['main-mac'], '52:54:00:12:34:56');
  });

  test('control-queue changes show up; tables newest first; one event until queried again', () => {
    const d = device();
    let events = 0;
    d.onRxFilterChanged(() => events++);
    d.setDriverFeatures(F(VirtioF.VERSION_1, VirtioNetF.CTRL_VQ, VirtioNetF.CTRL_RX, VirtioNetF.CTRL_VLAN));
    assert.equal(d.queryRxFilter('n').vlan, 'none');
    d.setRxMode('nobcast', true);
    d.setRxMode('alluni', true);
    d.setRxMode('nomulti', true);
    d.setVlan(5, true);
    d.setVlan(100, true);
    d.setMacTable([parseMac('02:00:00:00:00:01')!, parseMac('02:00:00:00:00:02')!], [parseMac('01:00:5e:00:00:01')!]);
    assert.equal(events, 1);
    const info = d.queryRxFilter('n');
    assert.equal(info['broadcast-allowed'], false);
    assert.equal(info.unicast, 'all');
    assert.equal(info.multicast, 'none');
    assert.equal(info.vlan, 'normal');
    assert.deepEqual(info['vlan-table'], [100, 5]);
    assert.deepEqual(info['unicast-table'], ['02:00:00:00:00:02', '02:00:00:00:00:01']);
    assert.deepEqual(info['multicast-table'], ['01:00:5e:00:00:01']);
    d.setRxMode('promisc', false);
    assert.equal(events, 2);
    assert.equal(d.setVlan(4096, true), VIRTIO_NET_ERR);
  });

  test('MAC table overflow sets the overflow flags', () => {
    const d = device();
    const many = Array.from({ length: 65 }, (_, i) => Uint8Array.from([2, 0, 0, 0, 0, i]));
    d.setMacTable(many, []);
    assert.equal(d.queryRxFilter('n')['unicast-overflow'], true);
    d.setMacTable(many.slice(0, 60), many.slice(0, 5));
    const info = d.queryRxFilter('n');
    assert.equal(info['unicast-overflow'], false);
    assert.equal(info['multicast-overflow'], true);
    assert.equal(info['multicast-table'].length, 0);
  });

  test('MAC_ADDR_SET changes the main MAC', () => {
    const d = device();
    d.setMacAddress(parseMac('02:11:22:33:44:55')!);
    assert.equal(d.queryRxFilter('n')['main-mac'], '02:11:22:33:44:55');
    assert.equal(d.readConfig(0, 1), 0x02);
  });
});
