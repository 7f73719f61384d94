// One owner for a TAP's offloads (TUNSETOFFLOAD). A TAP peered with a NIC (a packet port)
// takes them from the device model only: virtio-net sets what the guest negotiated. The
// graph's automatic offloads apply to backend-to-backend links and hubs. Before this rule
// both wrote, and whoever came last won: a guest that turned offloads off could get 64 KiB
// TSO frames anyway once the data plane connected the port.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NativeDataPlane } from '../lib/dataplane/native-dataplane';
import { VirtioF, VirtioNetF, VIRTIO_NET_OK } from '../lib/devices/virtio-net-features';
import { Tap } from '../lib/tap';
import { Topology } from '../lib/topology';
import { deleteLink, ethtoolFeature, npName } from './helpers/netns';
import { featureBits, startDriver } from './helpers/nic-driver';
import { needsPrivileged } from './helpers/tools';

const tso = (ifname: string): string => ethtoolFeature(ifname, 'tx-tcp-segmentation');
const F = featureBits;

test(
  'a TAP set to no offloads by the device model stays so when the data plane connects its NIC port',
  { ...needsPrivileged('ethtool'), timeout: 30_000 },
  async () => {
    const ifname = npName('own');
    const tap = Tap.open({ ifname, vnetHdr: 'on' });
    const dp = new NativeDataPlane();
    try {
      // What virtio-net does for a VERSION_1 driver without guest offloads: 12-byte header,
      // TUNSETOFFLOAD 0. Then the hypervisor wires its NIC queue to the TAP.
      tap.setVnetHdrLen(12);
      tap.setOffloads({});
      dp.addClient({ handle: 1, kind: 'tap', name: 'hn0', queueIndex: 0, fd: tap.fd(0), vnetHdrLen: 12 });
      dp.addClient({ handle: 2, kind: 'port', name: 'nic0', queueIndex: 0, vnetHdrLen: 12 });
      dp.connect(1, 2);
      assert.equal(tso(ifname), 'off', 'the graph did not turn TSO on behind the device model');
      // Later graph changes leave it alone too.
      dp.setVnetHdrLen(2, 12);
      dp.setLinkDown(2, false);
      assert.equal(tso(ifname), 'off');
      assert.equal(dp.stats().find((s) => s.handle === 1)?.offloads, 0);

      // The port goes: the graph owns the TAP again and says what it wants (nothing, no peer).
      tap.setOffloads({ csum: true, tso4: true, tso6: true });
      assert.equal(tso(ifname), 'on');
      dp.removeClient(2);
      assert.equal(tso(ifname), 'off', 'a peerless TAP gets no offloads');
    } finally {
      dp.close();
      await tap.close();
      deleteLink(ifname);
    }
  },
);

test(
  "Topology: negotiation decides a NIC-peered TAP's offloads; other links keep automatic ones",
  { ...needsPrivileged('ethtool'), timeout: 30_000 },
  async () => {
    const names = { hn0: npName('ownh'), t1: npName('own1'), t2: npName('own2') };
    const dp = new NativeDataPlane();
    const topo = new Topology({ dataPlane: dp });
    try {
      topo.addNetdev({ type: 'tap', id: 'hn0', ifname: names.hn0 });
      const nic = topo.addDevice({ driver: 'virtio-net-pci', id: 'nic0', netdev: 'hn0', features: {} });
      startDriver(nic, F(VirtioF.VERSION_1, VirtioNetF.CSUM, VirtioNetF.CTRL_VQ));
      assert.equal(nic.device.hostHdrLen, 12);
      assert.equal(tso(names.hn0), 'off', 'guest offloads off');

      // A backend-to-backend link elsewhere in the graph: its TAPs get automatic offloads,
      // and the recomputation that does it leaves hn0 alone.
      topo.addNetdev({ type: 'tap', id: 't1', ifname: names.t1 });
      topo.addNetdev({ type: 'tap', id: 't2', ifname: names.t2 });
      topo.link('t1', 't2');
      assert.equal(tso(names.t1), 'on');
      assert.equal(tso(names.t2), 'on');
      assert.equal(tso(names.hn0), 'off');

      // The guest's choices still reach the TAP, in both directions.
      startDriver(
        nic,
        F(
          VirtioF.VERSION_1,
          VirtioNetF.CSUM,
          VirtioNetF.GUEST_CSUM,
          VirtioNetF.GUEST_TSO4,
          VirtioNetF.CTRL_VQ,
          VirtioNetF.CTRL_GUEST_OFFLOADS,
        ),
      );
      assert.equal(tso(names.hn0), 'on');
      assert.equal(nic.device.setGuestOffloads(0n), VIRTIO_NET_OK);
      assert.equal(tso(names.hn0), 'off');
      await topo.netdevs.get('t2')!.close();
      assert.equal(tso(names.hn0), 'off', 'still off after another graph change');
      assert.equal(tso(names.t1), 'off', 't1 lost its peer: no offloads');
    } finally {
      await topo.close();
      dp.close();
      for (const n of Object.values(names)) deleteLink(n);
    }
  },
);
