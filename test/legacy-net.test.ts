// -nic/-net and filter-dump without privileges or QEMU: the topology -nic/-net build (hub 0,
// generated ids, on-board NICs before -device), and a capture on a hub port while frames from
// JavaScript packet ports cross the native data plane, read back from the pcap file.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { parseCliArgs } from '../lib/cli/args';
import { LegacyNet } from '../lib/cli/legacy-net';
import { NativeDataPlane } from '../lib/dataplane/native-dataplane';
import { parseNetArg, parseNicArg } from '../lib/options/legacy-net';
import { Topology } from '../lib/topology/topology';
import { needsAddon } from './helpers/addon';
import { tempDir } from './helpers/qemu';

const ids = (s: string) => s.replace(/#net([0-9]+)[0-9]{2}/g, '#net$1');

describe('-nic and -net build QEMU 7.2 topology', () => {
  test('hub 0 ports, generated ids, NICs before -device, warnings', async () => {
    const topology = new Topology();
    try {
      const legacy = new LegacyNet(topology);
      legacy.addNic(parseNicArg('hubport,hubid=3,model=virtio-net-pci'));
      legacy.addNet(parseNetArg('nic,model=virtio-net-pci'));
      legacy.addNet(parseNetArg('nic,model=e1000,id=foo'));
      legacy.addNet(parseNetArg('none'));
      legacy.realizeNics();
      topology.addDevice({ driver: 'virtio-net-pci', id: 'd0', features: {} });
      assert.equal(
        ids(topology.infoNetwork()),
        [
          // Hubs newest first, as QEMU lists them.
          'hub 0',
          ' \\ hub0port1',
          ' \\ hub0port0: virtio-net-pci.1: index=0,type=nic,model=virtio-net-pci,macaddr=52:54:00:12:34:57',
          'hub 3',
          ' \\ #net0: virtio-net-pci.0: index=0,type=nic,model=virtio-net-pci,macaddr=52:54:00:12:34:56',
          'd0: index=0,type=nic,model=virtio-net-pci,macaddr=52:54:00:12:34:58',
          '',
        ].join('\n'),
      );
      assert.deepEqual(legacy.warnings, [
        'requested NIC (foo, model e1000) was not created (not supported by this machine?)',
      ]);
      assert.throws(() => topology.delNetdev('hub0port0'), { message: "Device 'hub0port0' is not a netdev" });
    } finally {
      await topology.close();
    }
  });

  test('option errors carry QEMU texts', () => {
    const bad: Array<[string, string]> = [
      ['-net', 'nic,vlan=1'],
      ['-net', 'nic,macaddr=01:00:00:00:00:01'],
      ['-net', 'hubport,hubid=1'],
      ['-nic', 'hubport,hubid=1,mac=zz'],
    ];
    const texts = bad.map(([o, v]) => {
      try {
        parseCliArgs([o, v]);
        return 'no error';
      } catch (e) {
        return (e as Error).message;
      }
    });
    assert.deepEqual(texts, [
      "-net nic,vlan=1: Invalid parameter 'vlan'",
      '-net nic,macaddr=01:00:00:00:00:01: NIC cannot have multicast MAC address (odd 1st byte)',
      "-net hubport,hubid=1: network backend 'hubport' is only supported with -netdev/-nic",
      '-nic hubport,hubid=1,mac=zz: invalid syntax for ethernet address',
    ]);
    assert.match(parseCliArgs(['-netdev', 'help']).helpText ?? '', /^Available netdev backend types:\ntap\nhubport\n/);
  });
});

test(
  'filter-dump on a hub port: frames from packet ports land in the pcap file',
  { timeout: 30_000, ...needsAddon() },
  async () => {
    const dp = new NativeDataPlane();
    const topology = new Topology({ dataPlane: dp, warn: () => {} });
    const dir = tempDir('fdhub');
    try {
      topology.addNetdev({ type: 'hubport', id: 'h0', hubid: 0 });
      topology.addNetdev({ type: 'hubport', id: 'h1', hubid: 0 });
      topology.addDevice({ driver: 'virtio-net-pci', id: 'n0', netdev: 'h0', features: {} });
      topology.addDevice({ driver: 'virtio-net-pci', id: 'n1', netdev: 'h1', features: {} });
      const file = path.join(dir, 'h0.pcap');
      topology.addFilter({ qomType: 'filter-dump', id: 'f0', netdev: 'h0', file, maxlen: 20 });
      const port = (id: string) => dp.port(topology.nics.find((n) => n.id === id)!.queues[0]!.handle)!;
      const frame = (tag: number) => {
        const f = new Uint8Array(60).fill(0xff, 0, 6);
        f.set([0x88, 0xb5, tag], 12);
        return f;
      };
      assert.equal(port('n0').send([frame(1), frame(2)]), true); // rx at h0
      assert.equal(port('n1').send([frame(3)]), true); // tx at h0 (out of the hub to n0)
      const deadline = Date.now() + 5_000;
      while (Date.now() < deadline && (topology.filterStats()[0]?.frames ?? 0) < 3)
        await new Promise((r) => setTimeout(r, 20));
      const last = topology.delFilter('f0')!;
      assert.equal(last.frames, 3);
      assert.equal(last.written, 3);
      const pcap = fs.readFileSync(file);
      assert.equal(pcap.length, 24 + 3 * (16 + 20));
      const tags = [0, 1, 2].map((i) => pcap[24 + i * 36 + 16 + 14]);
      assert.deepEqual(tags.sort(), [1, 2, 3]);
      assert.equal(pcap.readUInt32LE(24 + 12), 60, 'the original length is kept');
    } finally {
      await topology.close();
      dp.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);
