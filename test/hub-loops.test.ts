// Hub loops: a hub sends each frame out of every other port, so two ports of one hub peered
// with each other (or two hubs joined twice) make a frame circle forever. QEMU accepts
// `-netdev hubport,id=t0,hubid=1 -netdev hubport,id=t1,hubid=1,netdev=t0` and then hangs or
// crashes; netplane refuses every such peering with a clear error. Fake TAPs, no privileges.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { NetplaneError } from '../lib/errors';
import { Topology } from '../lib/topology';
import { fakeTaps, RecordingDataPlane } from './helpers/fake-tap';

function setup() {
  const fakes = fakeTaps();
  const dp = new RecordingDataPlane();
  const topo = new Topology({ openTap: fakes.openTap, adoptTap: fakes.adoptTap, dataPlane: dp });
  return { topo, dp };
}

function rejectsLoop(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof NetplaneError, `expected NetplaneError, got ${String(e)}`);
    assert.equal(e.code, 'NETPLANE_INVALID_OPTION');
    assert.match(e.message, message);
    return true;
  });
}

describe('hub loops are refused', () => {
  test('a hubport peered with another port of the same hub', () => {
    const { topo, dp } = setup();
    topo.addNetdev({ type: 'hubport', id: 't0', hubid: 1 });
    rejectsLoop(
      () => topo.addNetdev({ type: 'hubport', id: 't1', hubid: 1, netdev: 't0' }),
      /^hub port 't1' cannot be peered with 't0': both are ports of hub 1, so frames would loop/,
    );
    // Nothing was created: t0 stays unpeered, the hub keeps one port, the data plane saw no connect.
    assert.equal(topo.netdevs.has('t1'), false);
    assert.equal(topo.hubs[0]!.ports.length, 1);
    assert.equal(topo.clients[0]!.peer, null);
    assert.equal(dp.calls.filter((c) => c.startsWith('connect')).length, 0);
    // The id is still free, and a port of the same hub without netdev= is fine.
    topo.addNetdev({ type: 'hubport', id: 't1', hubid: 1 });
    assert.equal(topo.hubs[0]!.ports.length, 2);
  });

  test('a non-netdev hub port peered with a port of its own hub', () => {
    const { topo } = setup();
    topo.addNetdev({ type: 'hubport', id: 'hp', hubid: 0 });
    topo.addHubPort(0);
    rejectsLoop(
      () => topo.addHubPort(0, { peer: 'hp' }),
      /^hub port 'hub0port2' cannot be peered with 'hp': both are ports of hub 0/,
    );
    assert.equal(topo.hubs[0]!.ports.length, 2);
  });

  test('-link between two ports of one hub', () => {
    const { topo } = setup();
    topo.addNetdev({ type: 'hubport', id: 'p', hubid: 4 });
    topo.addNetdev({ type: 'hubport', id: 'q', hubid: 4 });
    rejectsLoop(() => topo.link('p', 'q'), /^hub port 'p' cannot be peered with 'q': both are ports of hub 4/);
    assert.equal(
      topo.clients.every((c) => c.peer === null),
      true,
    );
  });

  test('a second connection between two hubs (directly or through a third)', () => {
    const { topo } = setup();
    // hub 1 <-> hub 2 once is a tree: allowed.
    topo.addNetdev({ type: 'hubport', id: 'a1', hubid: 1 });
    topo.addNetdev({ type: 'hubport', id: 'b1', hubid: 2, netdev: 'a1' });
    // hub 2 <-> hub 3: still a tree.
    topo.addNetdev({ type: 'hubport', id: 'b2', hubid: 2 });
    topo.addNetdev({ type: 'hubport', id: 'c1', hubid: 3, netdev: 'b2' });
    // hub 1 <-> hub 2 again: a cycle of two hubs.
    topo.addNetdev({ type: 'hubport', id: 'a2', hubid: 1 });
    rejectsLoop(
      () => topo.addNetdev({ type: 'hubport', id: 'b3', hubid: 2, netdev: 'a2' }),
      /^hub port 'b3' \(hub 2\) cannot be peered with 'a2' \(hub 1\): the two hubs are already connected/,
    );
    // hub 3 <-> hub 1: a cycle through hub 2, by netdev= and by -link.
    rejectsLoop(() => topo.addNetdev({ type: 'hubport', id: 'c2', hubid: 3, netdev: 'a2' }), /already connected/);
    topo.addNetdev({ type: 'hubport', id: 'c3', hubid: 3 });
    rejectsLoop(() => topo.link('c3', 'a2'), /^hub port 'c3' \(hub 3\) cannot be peered with 'a2' \(hub 1\)/);
    // A fourth hub is not connected to any of them: joining it is fine.
    topo.addNetdev({ type: 'hubport', id: 'd1', hubid: 5, netdev: 'a2' });
    assert.equal(topo.netdevs.get('d1')!.queues[0]!.peer?.name, 'a2');
  });

  test('taps and NICs on a hub are not loops', () => {
    const { topo } = setup();
    topo.addNetdev({ type: 'tap', id: 't0', ifname: 'np0' });
    topo.addNetdev({ type: 'hubport', id: 'h0', hubid: 0, netdev: 't0' });
    topo.addNetdev({ type: 'hubport', id: 'h1', hubid: 0 });
    topo.addDevice({ driver: 'virtio-net-pci', netdev: 'h1', features: {} });
    assert.deepEqual(topo.startupWarnings(), []);
  });
});
