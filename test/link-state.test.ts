// Link state: set_link and netdev_del matrices with QEMU 7.2's rules, what the guest sees
// through the config notifier, and the connection-driven link (vhost-user style).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { NetplaneError } from '../lib/errors';
import { VirtioStatus } from '../lib/devices/virtio-net-features';
import { ConnectionLink } from '../lib/link/connection-link';
import { Topology, type LinkChangeEvent, type Nic } from '../lib/topology';
import { fakeTaps, RecordingDataPlane } from './helpers/fake-tap';

function setup() {
  const fakes = fakeTaps();
  const dp = new RecordingDataPlane();
  const scripts: string[] = [];
  const topo = new Topology({
    openTap: fakes.openTap,
    dataPlane: dp,
    runScript: (p, i) => void scripts.push(`${p} ${i}`),
  });
  const events: LinkChangeEvent[] = [];
  topo.on('link-change', (e) => events.push(e));
  return { topo, fakes, dp, scripts, events };
}

/** Put the NIC's driver in DRIVER_OK and count config interrupts. */
function driverOk(nic: Nic) {
  const counter = { notified: 0 };
  nic.onConfigChange(() => counter.notified++);
  nic.device.setStatus(
    VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER | VirtioStatus.FEATURES_OK | VirtioStatus.DRIVER_OK,
  );
  return counter;
}

const down = (clients: readonly { linkDown: boolean }[]) => clients.map((c) => c.linkDown);

function expectNotFound(fn: () => unknown, name: string) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof NetplaneError);
    assert.equal(e.message, `Device '${name}' not found`);
    assert.equal(e.qmpClass, 'DeviceNotFound');
    return true;
  });
}

/** tap hn0 (2 queues) + virtio-net-pci nic0. */
function tapAndNic() {
  const s = setup();
  const nd = s.topo.addNetdev({ type: 'tap', id: 'hn0', ifname: 'np0', queues: 2, downscript: '/x/down' });
  const nic = s.topo.addDevice({ driver: 'virtio-net-pci', id: 'nic0', netdev: 'hn0', features: { mq: true } });
  return { ...s, nd, nic };
}

describe('set_link', () => {
  test('NIC name: all NIC queues go down, the backend stays up; guest notified once per change', () => {
    const { topo, nd, nic, dp } = tapAndNic();
    const c = driverOk(nic);
    dp.calls.length = 0;
    topo.setLink('nic0', false);
    assert.deepEqual(down(nic.queues), [true, true]);
    assert.deepEqual(down(nd.queues), [false, false]);
    assert.equal(nic.linkUp, false);
    assert.equal(c.notified, 1);
    assert.deepEqual(dp.calls, ['link nic0 down', 'link nic0 down']);
    topo.setLink('nic0', false); // no change: no interrupt
    assert.equal(c.notified, 1);
    topo.setLink('nic0', true);
    assert.equal(nic.linkUp, true);
    assert.equal(c.notified, 2);
  });

  test('backend name: backend queues and their NIC peers go down', () => {
    const { topo, nd, nic } = tapAndNic();
    const c = driverOk(nic);
    topo.setLink('hn0', false);
    assert.deepEqual(down(nd.queues), [true, true]);
    assert.deepEqual(down(nic.queues), [true, true]);
    assert.equal(nic.linkUp, false);
    assert.equal(c.notified, 1);
    topo.setLink('hn0', true);
    assert.deepEqual([...down(nd.queues), ...down(nic.queues)], [false, false, false, false]);
    assert.equal(c.notified, 2);
  });

  test('before DRIVER_OK the status bit moves but no interrupt is raised', () => {
    const { topo, nic } = tapAndNic();
    let notified = 0;
    nic.onConfigChange(() => notified++);
    topo.setLink('hn0', false);
    assert.equal(nic.device.readConfig(6, 2) & 1, 0);
    assert.equal(notified, 0);
  });

  test('hub peers are never touched; a hub port whose peer is a NIC takes the NIC down', () => {
    const { topo } = setup();
    const t0 = topo.addNetdev({ type: 'tap', id: 't0' });
    const hp0 = topo.addNetdev({ type: 'hubport', id: 'hp0', hubid: 0, netdev: 't0' });
    const hp1 = topo.addNetdev({ type: 'hubport', id: 'hp1', hubid: 0 });
    const e0 = topo.addDevice({ driver: 'virtio-net-pci', id: 'e0', netdev: 'hp1', features: {} });
    const c = driverOk(e0);

    topo.setLink('t0', false);
    assert.deepEqual([t0.linkUp, hp0.linkUp], [false, true]);
    topo.setLink('t0', true);

    topo.setLink('hp0', false);
    assert.deepEqual([hp0.linkUp, t0.linkUp], [false, true]);
    topo.setLink('hp0', true);

    topo.setLink('e0', false);
    assert.deepEqual([e0.linkUp, hp1.linkUp], [false, true]);
    topo.setLink('e0', true);
    assert.equal(c.notified, 2);

    topo.setLink('hp1', false);
    assert.deepEqual([hp1.linkUp, e0.linkUp], [false, false]);
    assert.equal(c.notified, 3);
  });

  test('a NIC id equal to a netdev id: set_link hits both, one interrupt', () => {
    const { topo } = setup();
    const x = topo.addNetdev({ type: 'tap', id: 'x', queues: 2 });
    const nic = topo.addDevice({ driver: 'virtio-net-pci', id: 'x', netdev: 'x', features: {} });
    const c = driverOk(nic);
    topo.setLink('x', false);
    assert.deepEqual([...down(x.queues), ...down(nic.queues)], [true, true, true, true]);
    assert.equal(c.notified, 1);
  });

  test('unknown name: DeviceNotFound', () => {
    const { topo } = tapAndNic();
    expectNotFound(() => topo.setLink('nosuch', false), 'nosuch');
  });

  test('events: the topology reports each set_link; the netdev and NIC report their own changes', () => {
    const { topo, nd, nic, events } = tapAndNic();
    const seen: string[] = [];
    nd.on('link-change', (up) => seen.push(`netdev ${up}`));
    nic.on('link-change', (up) => seen.push(`nic ${up}`));
    topo.setLink('hn0', false);
    topo.setLink('nic0', false); // NIC already down: no NIC event
    topo.setLink('hn0', true);
    assert.deepEqual(seen, ['netdev false', 'nic false', 'netdev true', 'nic true']);
    assert.deepEqual(
      events.map((e) => `${e.name} ${e.up} ${e.cause}`),
      ['hn0 false set_link', 'nic0 false set_link', 'hn0 true set_link'],
    );
  });
});

describe('netdev_del', () => {
  test('attached backend: NIC link down, notifier once, backend cleaned up now, id reusable', async () => {
    const { topo, nd, nic, fakes, dp, scripts, events } = tapAndNic();
    const c = driverOk(nic);
    dp.calls.length = 0;
    topo.delNetdev('hn0');
    assert.equal(nic.linkUp, false);
    assert.deepEqual(down(nic.queues), [true, true]);
    assert.equal(c.notified, 1);
    assert.deepEqual(dp.calls, ['link nic0 down', 'link nic0 down', 'remove hn0', 'remove hn0']);
    assert.equal(topo.netdevs.has('hn0'), false);
    assert.equal(nd.deleted, true);
    await nd.close(); // settles once the tap is closed
    assert.equal(fakes.taps[0].closed, true);
    assert.deepEqual(scripts, ['/x/down np0']);
    assert.deepEqual(
      events.map((e) => `${e.name} ${e.up} ${e.cause}`),
      ['hn0 false netdev_del'],
    );

    // A second delete does not find it; the id can be added again.
    expectNotFound(() => topo.delNetdev('hn0'), 'hn0');
    topo.addNetdev({ type: 'tap', id: 'hn0', ifname: 'np1' });
    assert.equal(
      topo.infoNetwork(),
      'nic0: index=0,type=nic,model=virtio-net-pci,macaddr=52:54:00:12:34:56\n' +
        ' \\ hn0: index=0,type=tap,ifname=np0,script=no,downscript=/x/down\n' +
        'nic0: index=1,type=nic,\n' +
        ' \\ hn0: index=1,type=tap,ifname=np0,script=no,downscript=no\n' +
        'hn0: index=0,type=tap,ifname=np1,script=no,downscript=no\n',
    );
    // set_link on the NIC raises the guest link again although no backend exists.
    topo.setLink('nic0', true);
    assert.equal(nic.linkUp, true);
    assert.equal(c.notified, 2);
    // The new hn0 is not the NIC's peer: taking it down leaves the NIC alone.
    topo.setLink('hn0', false);
    assert.equal(nic.linkUp, true);
    // Nothing touches the deleted backend any more (its TAP is closed).
    const errors: Error[] = [];
    topo.on('error', (e) => errors.push(e));
    const tapLog = fakes.taps[0].log.length;
    nic.device.setStatus(0);
    nic.device.setDriverFeatures((1n << 32n) | (1n << 22n)); // VERSION_1 | MQ
    assert.equal(nic.device.setQueuePairs(2), 0);
    assert.equal(fakes.taps[0].log.length, tapLog);
    assert.deepEqual(errors, []);
  });

  test('the NIC, unplugged later, finishes cleanly', async () => {
    const { topo, nic, dp } = tapAndNic();
    topo.delNetdev('hn0');
    await nic.close();
    assert.equal(topo.clients.length, 0);
    assert.equal(dp.clients.size, 0);
    assert.equal(topo.infoNetwork(), '');
  });

  test('notifier fires once for a multiqueue backend, and not at all before DRIVER_OK', () => {
    const a = tapAndNic();
    let notified = 0;
    a.nic.onConfigChange(() => notified++);
    a.topo.delNetdev('hn0');
    assert.equal(notified, 0);
    assert.equal(a.nic.linkUp, false);
  });

  test('NIC names are not netdevs: DeviceNotFound', () => {
    const { topo } = tapAndNic();
    expectNotFound(() => topo.delNetdev('nic0'), 'nic0');
  });

  test('NIC id equal to the netdev id: the netdev is deleted, the NIC stays', () => {
    const { topo } = setup();
    topo.addNetdev({ type: 'tap', id: 'x' });
    const nic = topo.addDevice({ driver: 'virtio-net-pci', id: 'x', netdev: 'x', features: {} });
    topo.delNetdev('x');
    assert.equal(topo.netdevs.size, 0);
    assert.equal(nic.linkUp, false);
    assert.deepEqual(
      topo.clients.map((c) => c.name),
      ['x'],
    );
    expectNotFound(() => topo.delNetdev('x'), 'x');
  });

  test('unattached backend: gone at once, no link change', async () => {
    const { topo, fakes, events, dp } = setup();
    const nd = topo.addNetdev({ type: 'tap', id: 't', queues: 3 });
    topo.delNetdev('t');
    await nd.close();
    assert.equal(topo.clients.length, 0);
    assert.equal(fakes.taps[0].closed, true);
    assert.deepEqual(events, []);
    assert.deepEqual(
      dp.calls.filter((c) => c.startsWith('remove')),
      ['remove t', 'remove t', 'remove t'],
    );
  });

  test('a hub port peered with a NIC: the NIC goes down and drops out of info network (QEMU 7.2 capture)', () => {
    const { topo } = setup();
    topo.addNetdev({ type: 'hubport', id: 'hp1', hubid: 0 });
    topo.addNetdev({ type: 'hubport', id: 'hp2', hubid: 0 });
    const e0 = topo.addDevice({ driver: 'virtio-net-pci', id: 'e0', netdev: 'hp1', features: {} });
    assert.deepEqual(topo.startupWarnings(), [
      'hub port hp2 has no peer',
      'hub 0 is not connected to host network',
      'netdev hp2 has no peer',
    ]);
    topo.delNetdev('hp1');
    assert.equal(e0.linkUp, false);
    assert.equal(topo.infoNetwork(), 'hub 0\n \\ hp2\n');
    topo.setLink('e0', false);
    assert.equal(topo.infoNetwork(), 'hub 0\n \\ hp2\n');
  });

  test('a hub port peered with a tap: the tap stays, unpeered', () => {
    const { topo } = setup();
    const t0 = topo.addNetdev({ type: 'tap', id: 't0' });
    topo.addNetdev({ type: 'hubport', id: 'hp', hubid: 0, netdev: 't0' });
    topo.delNetdev('hp');
    assert.equal(t0.queues[0].peer, null);
    assert.equal(t0.linkUp, true);
  });
});

describe('connection-driven link', () => {
  class FakeConnection extends EventEmitter {
    open() {
      this.emit('open');
    }
    close() {
      this.emit('close');
    }
  }

  function withConnection(opts: { startDown?: boolean; onOpen?: () => void } = {}) {
    const s = tapAndNic();
    const c = driverOk(s.nic);
    const conn = new FakeConnection();
    const tasks: Array<() => void> = [];
    const link = new ConnectionLink(s.nd, conn, { defer: (t) => void tasks.push(t), ...opts });
    const log: string[] = [];
    link.on('connected', () => log.push('connected'));
    link.on('disconnected', () => log.push('disconnected'));
    const runTasks = () => tasks.splice(0).forEach((t) => t());
    return { ...s, c, conn, link, log, tasks, runTasks };
  }

  test('open brings the backend and its NIC up; close takes them down from the deferred task', () => {
    const w = withConnection({ startDown: true });
    assert.equal(w.nd.linkUp, false);
    assert.equal(w.nic.linkUp, false);
    assert.equal(w.c.notified, 1);

    w.conn.open();
    assert.equal(w.nd.linkUp, true);
    assert.equal(w.nic.linkUp, true);
    assert.equal(w.c.notified, 2);

    w.conn.close();
    assert.equal(w.nic.linkUp, true, 'teardown is deferred');
    assert.equal(w.link.closing, true);
    w.runTasks();
    assert.deepEqual(down(w.nd.queues), [true, true]);
    assert.deepEqual(down(w.nic.queues), [true, true]);
    assert.equal(w.c.notified, 3);
    assert.deepEqual(w.log, ['connected', 'disconnected']);
    assert.deepEqual(
      w.events.map((e) => `${e.name} ${e.up} ${e.cause}`),
      ['hn0 false connection', 'hn0 true connection', 'hn0 false connection'],
    );
  });

  test('close before any open, and repeated closes, schedule nothing extra', () => {
    const w = withConnection();
    w.conn.close();
    assert.equal(w.tasks.length, 0);
    w.conn.open();
    w.conn.close();
    w.conn.close();
    assert.equal(w.tasks.length, 1);
  });

  test('an open arriving while the close task is pending is seen after it (reconnect)', () => {
    const w = withConnection();
    w.conn.open();
    w.conn.close();
    w.conn.open();
    assert.deepEqual(w.log, ['connected']);
    w.runTasks();
    assert.deepEqual(w.log, ['connected', 'disconnected', 'connected']);
    assert.equal(w.nic.linkUp, true);
    assert.equal(w.link.connected, true);
  });

  test('a failing start leaves the link as it was and reports the error', () => {
    const w = withConnection({
      startDown: true,
      onOpen: () => {
        throw new Error('vhost start failed');
      },
    });
    const errors: string[] = [];
    w.link.on('error', (e) => errors.push(e.message));
    w.conn.open();
    assert.equal(w.nic.linkUp, false);
    assert.deepEqual(errors, ['vhost start failed']);
  });

  test('dispose stops following the connection and voids a pending task', () => {
    const w = withConnection();
    w.conn.open();
    w.conn.close();
    w.link.dispose();
    w.runTasks();
    assert.equal(w.nic.linkUp, true);
    w.conn.open();
    assert.deepEqual(w.log, ['connected']);
  });

  test('the default deferral runs after the current I/O callbacks (setImmediate)', async () => {
    const s = tapAndNic();
    const conn = new FakeConnection();
    using link = new ConnectionLink(s.nd, conn);
    conn.open();
    conn.close();
    assert.equal(s.nic.linkUp, true);
    await new Promise((r) => setImmediate(r));
    assert.equal(s.nic.linkUp, false);
    assert.equal(link.connected, false);
  });
});
