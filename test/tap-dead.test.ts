// A TAP whose interface vanishes: the data plane reports it (DataPlane.onClientDead), and the
// topology takes the whole netdev and its NIC link-down (the guest's LINK_UP clears, the
// config notifier fires once when the driver is up), emits one 'tap-dead' per netdev, and
// the monitor turns that into one QMP NETPLANE_TAP_DEAD. Unit tests with a fake data plane,
// then the real thing: `ip link del` under the native data plane, in-process and via the CLI.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { Monitor } from '../lib/control/monitor';
import { NativeDataPlane } from '../lib/dataplane/native-dataplane';
import {
  bit,
  VirtioF,
  VirtioNetConfig,
  VirtioNetF,
  VirtioNetS,
  VirtioStatus,
  VIRTIO_NET_OK,
} from '../lib/devices/virtio-net-features';
import { Topology, type Nic, type NetdevTapDeadEvent } from '../lib/topology';
import type { ClientDeadEvent } from '../lib/topology/dataplane';
import { fakeTaps, RecordingDataPlane } from './helpers/fake-tap';
import { deleteLink, npName, sh } from './helpers/netns';
import { privileged } from './helpers/privilege';
import { QmpProcess } from './helpers/qemu';

/** The fake data plane, able to report a client dead as the native one does. */
class DyingDataPlane extends RecordingDataPlane {
  readonly #listeners = new Set<(e: ClientDeadEvent) => void>();
  onClientDead(listener: (e: ClientDeadEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }
  die(handle: number): void {
    for (const l of [...this.#listeners]) l({ handle, errno: 77, code: 'EBADFD', syscall: 'read' });
  }
  get listeners(): number {
    return this.#listeners.size;
  }
}

/** Put the NIC's driver in DRIVER_OK and count config interrupts. */
function driverOk(nic: Nic, features = 0n) {
  const counter = { notified: 0 };
  nic.onConfigChange(() => counter.notified++);
  const d = nic.device;
  d.setStatus(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER);
  d.setDriverFeatures(features);
  d.setStatus(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER | VirtioStatus.FEATURES_OK | VirtioStatus.DRIVER_OK);
  return counter;
}

/** The LINK_UP bit as the guest reads it from config space. */
const configLinkUp = (nic: Nic) => (nic.device.readConfig(VirtioNetConfig.STATUS, 2) & VirtioNetS.LINK_UP) !== 0;
const down = (clients: readonly { linkDown: boolean }[]) => clients.map((c) => c.linkDown);

function setup() {
  const fakes = fakeTaps();
  const dp = new DyingDataPlane();
  const topo = new Topology({ openTap: fakes.openTap, dataPlane: dp });
  const dead: NetdevTapDeadEvent[] = [];
  topo.on('tap-dead', (e) => dead.push(e));
  const nd = topo.addNetdev({ type: 'tap', id: 'hn0', ifname: 'np0', queues: 2 });
  const nic = topo.addDevice({ driver: 'virtio-net-pci', id: 'nic0', netdev: 'hn0', features: { mq: true } });
  return { topo, dp, nd, nic, dead };
}

describe('dead TAP → topology (fake data plane)', () => {
  test('the netdev and its NIC go link-down, the guest is notified once, one event per netdev', () => {
    const { dp, nd, nic, dead } = setup();
    const irq = driverOk(nic);
    assert.equal(configLinkUp(nic), true);
    dp.calls.length = 0;

    dp.die(nd.queues[0].handle);
    assert.deepEqual(down(nd.queues), [true, true], 'every queue of the netdev');
    assert.deepEqual(down(nic.queues), [true, true], 'every NIC peer');
    assert.deepEqual(
      nd.queues.map((q) => q.dead),
      [true, false],
    );
    assert.equal(configLinkUp(nic), false, 'LINK_UP clear in config space');
    assert.equal(nic.linkUp, false);
    assert.equal(irq.notified, 1);
    assert.deepEqual(dead, [{ netdev: 'hn0', queueIndex: 0, errno: 77, code: 'EBADFD', syscall: 'read' }]);
    assert.deepEqual(dp.calls, ['link hn0 down', 'link hn0 down', 'link nic0 down', 'link nic0 down']);

    // The second queue's fd dies too: marked, nothing else moves.
    dp.die(nd.queues[1].handle);
    assert.deepEqual(
      nd.queues.map((q) => q.dead),
      [true, true],
    );
    assert.equal(dead.length, 1);
    assert.equal(irq.notified, 1);
  });

  test('set_link on a dead netdev cannot bring it (or its NIC) back up', () => {
    const { topo, dp, nd, nic } = setup();
    const irq = driverOk(nic);
    for (const q of nd.queues) dp.die(q.handle);
    topo.setLink('hn0', true);
    assert.deepEqual([...down(nd.queues), ...down(nic.queues)], [true, true, true, true]);
    assert.equal(configLinkUp(nic), false);
    assert.equal(irq.notified, 1);
  });

  test('before DRIVER_OK the bit clears without an interrupt', () => {
    const { dp, nd, nic, dead } = setup();
    let notified = 0;
    nic.onConfigChange(() => notified++);
    dp.die(nd.queues[1].handle);
    assert.equal(configLinkUp(nic), false);
    assert.equal(notified, 0);
    assert.equal(dead[0]?.queueIndex, 1);
  });

  test('a hub-peered TAP: only its own link goes down; a deleted one is ignored', async () => {
    const fakes = fakeTaps();
    const dp = new DyingDataPlane();
    const topo = new Topology({ openTap: fakes.openTap, dataPlane: dp });
    const dead: NetdevTapDeadEvent[] = [];
    topo.on('tap-dead', (e) => dead.push(e));
    const t0 = topo.addNetdev({ type: 'tap', id: 't0', ifname: 'np0' });
    const t1 = topo.addNetdev({ type: 'tap', id: 't1', ifname: 'np1' });
    const hp = topo.addNetdev({ type: 'hubport', id: 'hp0', hubid: 0, netdev: 't0' });
    dp.die(t0.queues[0].handle);
    assert.equal(t0.linkUp, false);
    assert.equal(hp.linkUp, true, 'the hub port keeps its own flag');
    const h1 = t1.queues[0].handle;
    await t1.close();
    dp.die(h1);
    assert.deepEqual(
      dead.map((e) => e.netdev),
      ['t0'],
    );
    await topo.close();
    assert.equal(dp.listeners, 0, 'the topology unsubscribed at close');
  });

  test('the monitor sends NETPLANE_TAP_DEAD once per netdev', () => {
    const { topo, dp, nd } = setup();
    const monitor = new Monitor(topo, { errorReport: () => undefined });
    const events: Array<[string, unknown]> = [];
    monitor.on('event', (name, data) => events.push([name, data]));
    for (const q of nd.queues) dp.die(q.handle);
    assert.deepEqual(events, [['NETPLANE_TAP_DEAD', { 'netdev-id': 'hn0', errno: 'EBADFD', syscall: 'read' }]]);
    monitor.dispose();
  });
});

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('dead TAP → topology (native data plane)', privileged(), () => {
  test('ip link del: NIC link down, one notification, one event, stats say dead', { timeout: 30_000 }, async () => {
    const ifname = npName('dead');
    const dp = new NativeDataPlane();
    const topo = new Topology({ dataPlane: dp });
    try {
      const dead: NetdevTapDeadEvent[] = [];
      topo.on('tap-dead', (e) => dead.push(e));
      const nd = topo.addNetdev({ type: 'tap', id: 'hn0', ifname, queues: 2 });
      const nic = topo.addDevice({ driver: 'virtio-net-pci', id: 'nic0', netdev: 'hn0', features: { mq: true } });
      // Two queue pairs in use, so both TAP queues are polled (a detached queue is not).
      const irq = driverOk(nic, bit(VirtioF.VERSION_1) | bit(VirtioNetF.MQ) | bit(VirtioNetF.CTRL_VQ));
      assert.equal(nic.device.setQueuePairs(2), VIRTIO_NET_OK);
      assert.equal(configLinkUp(nic), true);
      sh('ip', ['link', 'set', ifname, 'up']);

      sh('ip', ['link', 'del', ifname]);
      await waitFor(() => dead.length > 0, 10_000, 'the tap-dead event');
      // Both queue fds die; give the second report time to arrive, then count.
      await waitFor(
        () => dp.stats().filter((s) => s.kind === 'tap' && s.dead).length === 2,
        10_000,
        'both queues dead',
      );
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(dead.length, 1, 'one event per netdev');
      assert.equal(dead[0].netdev, 'hn0');
      assert.match(dead[0].code, /^E[A-Z]+$/);
      assert.equal(irq.notified, 1, 'config notifier fired once');
      assert.equal(configLinkUp(nic), false, 'LINK_UP reads down');
      assert.deepEqual([...down(nd.queues), ...down(nic.queues)], [true, true, true, true]);
      for (const s of dp.stats())
        assert.equal(s.linkDown, true, `${s.name} q${s.queueIndex} link down in the data plane`);
    } finally {
      await topo.close();
      dp.close();
      deleteLink(ifname);
    }
  });

  test('CLI: one NETPLANE_TAP_DEAD for a deleted 2-queue TAP (both queues polled)', { timeout: 30_000 }, async () => {
    const ifname = npName('cdead');
    const other = npName('cdeo');
    const cli = path.join(__dirname, '..', 'lib', 'cli', 'main.ts');
    // Linked backend to backend, so both queues are attached and polled (a NIC's reset
    // would detach queue 1) and each one sees the interface vanish.
    const proc = await QmpProcess.start(
      process.execPath,
      [
        '--import',
        'tsx',
        cli,
        '-netdev',
        `tap,id=t0,ifname=${ifname},queues=2`,
        '-netdev',
        `tap,id=t1,ifname=${other},queues=2`,
        '-link',
        't0,t1',
      ],
      { ifnames: [other] },
    );
    try {
      const qmp = await proc.connect();
      sh('ip', ['link', 'del', ifname]);
      await waitFor(() => qmp.events.some((e) => e.event === 'NETPLANE_TAP_DEAD'), 10_000, 'NETPLANE_TAP_DEAD');
      // Wait until the engine saw both queues die, so a second event would have come by now.
      await waitFor(() => proc.stderr.includes('TAP interface is gone'), 5_000, 'the operator message');
      const deadQueues = async () => {
        const r = await qmp.execute('query-netplane-stats');
        return (r.return as Array<{ kind: string; dead: boolean }>).filter((c) => c.kind === 'tap' && c.dead).length;
      };
      const end = Date.now() + 10_000;
      while ((await deadQueues()) < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      assert.equal(await deadQueues(), 2);
      await new Promise((r) => setTimeout(r, 100));
      const events = qmp.events.filter((e) => e.event === 'NETPLANE_TAP_DEAD');
      assert.equal(events.length, 1, JSON.stringify(events));
      assert.equal(events[0].data['netdev-id'], 't0');
      assert.equal(proc.stderr.split('TAP interface is gone').length - 1, 1, proc.stderr);
      qmp.close();
    } finally {
      await proc.stop();
    }
  });
});
