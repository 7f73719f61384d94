// The vhost-user pass-through path: a TypeScript "hypervisor" (this process) lays a guest's
// split rings in a memfd (test/helpers/virtio-ring.ts) and puts its NIC, with queues:
// 'virtqueues', on -netdev vhost-user; the back-end is netplane's own -export
// type=vhost-user-net on a TAP in a namespace, in a child process. netplane here carries
// only control: frames cross guest -> TAP and TAP -> guest while the front-end's data plane
// counts none. Then the back-end is killed (link down reaches the guest's config status and
// its config interrupt) and restarted (link up, traffic resumes from the saved bases: exactly
// the new frames reach the new TAP), and a back-end with fewer features (a TAP without
// vnet_hdr) is refused. Also: SharedArrayBuffer memory refused with a code, a back-end with
// fewer queue pairs refused. Needs root (TAP, namespace).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { NativeDataPlane } from '../lib/dataplane/native-dataplane';
import { bit, VirtioF, VirtioNetF, VirtioNetS, VirtioStatus } from '../lib/devices/virtio-net-features';
import { native } from '../lib/native';
import { parseNetdevArg } from '../lib/options';
import { Topology } from '../lib/topology';
import type { Nic } from '../lib/topology/nic';
import { kTestpmdReady, removeRuntimeDir, testpmdCommand } from '../bench/lib/dpdk';
import { fdsOpenedSince, NetNs, npName, openFds } from './helpers/netns';
import { spawnCli } from './helpers/node-child';
import { privileged } from './helpers/privilege';
import { needsPrivileged } from './helpers/tools';
import { DriverRing, memfdMem, type GuestMem } from './helpers/virtio-ring';
import { waitFor } from './helpers/wait';

const HDR = 12; // VERSION_1's virtio-net header
const RAM = 1 << 20;
const TX_BUFS = 0x40000;
const RX_BUFS = 0x80000;
const BUF = 2048;

let dir: string;
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nppt-'));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

interface Backend {
  child: ChildProcess;
  tap: string;
  stderr: () => string;
}

/** netplane serving a new TAP over vhost-user at `sock`; the TAP moves into `ns`. */
async function startBackend(
  sock: string,
  ns: NetNs,
  opts: { vnetHdr?: boolean; queues?: number } = {},
): Promise<Backend> {
  const tap = npName('pt');
  const pidfile = path.join(dir, `nppt-${tap}.pid`);
  const q = opts.queues ?? 1;
  const { child, stderr } = await spawnCli(
    [
      '-netdev',
      `tap,id=hn0,ifname=${tap},vnet_hdr=${opts.vnetHdr === false ? 'off' : 'on'},queues=${q}`,
      '-export',
      `type=vhost-user-net,id=vu0,netdev=hn0,addr.type=unix,addr.path=${sock},num-queues=${q}`,
    ],
    { pidfile },
  );
  ns.adopt(tap);
  return { child, tap, stderr };
}

async function stopBackend(b: Backend | undefined): Promise<void> {
  if (!b || b.child.exitCode !== null || b.child.signalCode !== null) return;
  const gone = new Promise((r) => b.child.once('exit', r));
  b.child.kill('SIGKILL');
  await gone;
}

/** Frames the TAP's interface received (written by the back-end: the guest's tx). */
function tapReceived(ns: NetNs, tap: string): number {
  const j = JSON.parse(ns.exec('ip', ['-j', '-s', 'link', 'show', 'dev', tap])) as Array<{
    stats64: { rx: { packets: number } };
  }>;
  return j[0]!.stats64.rx.packets;
}

/** Where pair `p`'s rings and buffers live in the guest's RAM (up to 4 pairs). */
const PAIR_SPAN = 0x10000;
const rxRingAt = (p: number): number => 2 * p * PAIR_SPAN;
const txRingAt = (p: number): number => (2 * p + 1) * PAIR_SPAN;
const txBufsAt = (p: number): number => TX_BUFS + p * PAIR_SPAN;
const rxBufsAt = (p: number): number => RX_BUFS + p * PAIR_SPAN;

/** The guest: a memfd of RAM, an rx and a tx ring per pair, buffers, driven as a virtio-net driver. */
class Guest {
  readonly memfd = native().memfdCreate('nppt-guest-ram', RAM);
  readonly mem: GuestMem = memfdMem(this.memfd);
  rxs: DriverRing[] = [];
  txs: DriverRing[] = [];
  #txNext: number[] = [];
  #booted = false;
  configInterrupts = 0;

  constructor(
    readonly nic: Nic,
    readonly pairs = 1,
  ) {
    nic.on('config-change', () => this.configInterrupts++);
    this.#layRings();
  }

  get rx(): DriverRing {
    return this.rxs[0]!;
  }

  get tx(): DriverRing {
    return this.txs[0]!;
  }

  /** Fresh rings (a driver after a device reset lays its rings out again). */
  #layRings(): void {
    this.#closeRings();
    this.rxs = Array.from({ length: this.pairs }, (_, p) => new DriverRing(this.mem, rxRingAt(p), 64));
    this.txs = Array.from({ length: this.pairs }, (_, p) => new DriverRing(this.mem, txRingAt(p), 64));
    this.#txNext = this.txs.map(() => 0);
  }

  /** Negotiate, hand memory and every ring over, DRIVER_OK; rx buffers posted. */
  boot(features: bigint): void {
    const d = this.nic.device;
    if (this.#booted) {
      d.setStatus(0); // the driver resets the device first (a no-op when it already is)
      this.#layRings();
    }
    this.#booted = true;
    d.setStatus(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER);
    assert.equal(d.setDriverFeatures(features), true, 'the device offers what the guest asks');
    d.setStatus(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER | VirtioStatus.FEATURES_OK);
    const vq = this.nic.virtqueues!;
    vq.setMemory([{ guestAddr: 0n, size: BigInt(RAM), fd: this.memfd }]);
    for (let p = 0; p < this.pairs; p++) {
      const rx = this.rxs[p]!;
      for (let i = 0; i < 32; i++) rx.add([{ addr: rxBufsAt(p) + i * BUF, len: BUF, writable: true }]);
      rx.publish();
      vq.startQueue(2 * p, rx.queueStart());
      vq.startQueue(2 * p + 1, this.txs[p]!.queueStart());
    }
    d.setStatus(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER | VirtioStatus.FEATURES_OK | VirtioStatus.DRIVER_OK);
  }

  /** Send `n` broadcast frames of a local ethertype on pair `pair`'s tx ring. */
  send(n: number, pair = 0): void {
    const tx = this.txs[pair]!;
    for (let i = 0; i < n; i++) {
      const addr = txBufsAt(pair) + (this.#txNext[pair]!++ % 32) * BUF;
      const f = new Uint8Array(HDR + 60);
      f.fill(0xff, HDR, HDR + 6);
      f.set([0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x88, 0xb5], HDR + 6);
      this.mem.write(addr, f);
      tx.add([{ addr, len: f.length, writable: false }]);
    }
    tx.publish();
  }

  /** Ethertypes of the frames the guest received (on any pair) since the last call. */
  received(): number[] {
    return this.rxs.flatMap((rx, p) =>
      rx.takeUsed().map(([head]) => {
        const b = this.mem.read(rxBufsAt(p) + head * BUF + HDR + 12, 2);
        return (b[0]! << 8) | b[1]!;
      }),
    );
  }

  /** The used index pair `pair`'s tx ring shows (frames the back-end took). */
  txUsed(pair = 0): number {
    const t = this.txs[pair]!;
    return this.mem.read(t.used + 2, 2).reduce((v, b, i) => v | (b << (8 * i)), 0);
  }

  get linkUp(): boolean {
    return (this.nic.device.netStatus & VirtioNetS.LINK_UP) !== 0;
  }

  #closeRings(): void {
    for (const r of [...this.rxs, ...this.txs]) r.close();
  }

  close(): void {
    this.#closeRings();
    fs.closeSync(this.memfd);
  }
}

/** An ARP request from the namespace (for an address nobody has) goes out of the TAP and reaches the guest. */
async function arpReachesGuest(ns: NetNs, tap: string, guest: Guest, what: string): Promise<void> {
  ns.exec('ip', ['addr', 'replace', '10.251.0.1/24', 'dev', tap]);
  ns.exec('ping', ['-c', '1', '-W', '1', '10.251.0.2'], { allowFail: true });
  const got: number[] = [];
  await waitFor(() => (got.push(...guest.received()), got.includes(0x0806)), what, 10_000);
}

/** netplane's own queue clients for the netdev and the NIC moved no frame: control only. */
function assertIdle(dp: NativeDataPlane, clients: ReadonlyArray<{ handle: number }>): void {
  const mine = new Set(clients.map((c) => c.handle));
  for (const s of dp.stats().filter((x) => mine.has(x.handle))) {
    assert.equal(s.framesIn + s.framesOut, 0, `${s.name} moved no frame`);
  }
}

/** A pass-through test's surroundings: the back-end's namespace, netplane's engine and topology. */
interface Rig {
  sock: string;
  ns: NetNs;
  dp: NativeDataPlane;
  topo: Topology;
  /** The topology's 'error' messages. */
  errors: string[];
  be?: Backend;
  guest?: Guest;
}

/** Run `body` on a fresh rig; all of it is torn down after, and no fd may be left open. */
async function withRig(sockName: string, body: (rig: Rig) => Promise<void>): Promise<void> {
  const fdsBefore = openFds();
  const ns = new NetNs('pt');
  ns.disableIpv6();
  const dp = new NativeDataPlane();
  const topo = new Topology({ dataPlane: dp });
  const rig: Rig = { sock: path.join(dir, sockName), ns, dp, topo, errors: [] };
  topo.on('error', (e) => rig.errors.push(e.message));
  try {
    await body(rig);
  } finally {
    await topo.close();
    dp.close();
    rig.guest?.close();
    await stopBackend(rig.be);
    ns.dispose();
  }
  assert.deepEqual(await fdsOpenedSince(fdsBefore), [], 'no fd left open (memory table, rings, eventfds)');
}

describe('vhost-user pass-through: a TypeScript hypervisor on -netdev vhost-user', { timeout: 120_000 }, () => {
  test(
    'frames both ways with no netplane data path, link and reconnect reach the guest, fewer features refused',
    privileged(),
    async (t) =>
      withRig('nppt-be.sock', async (rig) => {
        const { sock, ns, dp, topo, errors } = rig;
        let be = (rig.be = await startBackend(sock, ns));
        topo.chardevs.add({ backend: 'socket', id: 'c0', path: sock, server: false, reconnect: 1 });
        const nd = topo.addNetdev(parseNetdevArg('vhost-user,id=n0,chardev=c0'));
        const nic = topo.addDevice(
          { driver: 'virtio-net-pci', netdev: 'n0', id: 'npptnet0', features: {} },
          { queues: 'virtqueues' },
        );
        assert.equal(nic.virtqueues!.passThrough, true);
        // A SharedArrayBuffer has no fd a back-end could map.
        assert.throws(() => nic.virtqueues!.setMemory([{ guestAddr: 0n, buffer: new SharedArrayBuffer(RAM) }]), {
          code: 'NETPLANE_INVALID',
          message: /SharedArrayBuffer region cannot be passed to a vhost-user back-end/,
        });
        const guest = (rig.guest = new Guest(nic));
        await waitFor(() => guest!.linkUp, 'the link up with the back-end connected', 20_000);
        // Negotiated once the back-end's offer narrowed the device's: CSUM is the TAP's (vnet_hdr=on).
        assert.ok((nic.device.hostFeatures & bit(VirtioNetF.CSUM)) !== 0n);
        // GUEST_ANNOUNCE is a back-end bit the export does not offer: hidden now. CTRL_VQ is the model's own.
        assert.equal(nic.device.hostFeatures & bit(VirtioNetF.GUEST_ANNOUNCE), 0n);
        assert.ok((nic.device.hostFeatures & bit(VirtioNetF.CTRL_VQ)) !== 0n);
        guest.boot(bit(VirtioF.VERSION_1) | bit(VirtioNetF.CSUM));
        assert.throws(() => nic.virtqueues!.stopQueue(1), {
          code: 'NETPLANE_INVALID_STATE',
          message: /stopQueueAsync/,
        });

        // guest -> TAP
        guest.send(3);
        await waitFor(() => tapReceived(ns, be!.tap) === 3, 'the 3 guest frames on the TAP', 10_000);
        // TAP -> guest
        await arpReachesGuest(ns, be.tap, guest, 'the ARP request in the guest');
        // netplane's own data plane carried none of it: its queue clients stayed idle.
        assertIdle(dp, [...nd.clients, ...nic.clients]);

        // The back-end dies: link down reaches the guest (status bit, config interrupt).
        const irqs = guest.configInterrupts;
        await stopBackend(be);
        await waitFor(() => !guest!.linkUp, 'link down in the guest config', 10_000);
        assert.ok(guest.configInterrupts > irqs, 'a config interrupt for link down');
        // Restarted: reconnect re-sends the set-up with the saved bases.
        be = rig.be = await startBackend(sock, ns);
        const listening = Date.now();
        await waitFor(() => guest!.linkUp, 'link up again', 20_000);
        t.diagnostic(`reconnect: guest link up ${Date.now() - listening} ms after the back-end listened again`);
        guest.send(2);
        await waitFor(() => tapReceived(ns, be!.tap) >= 2, 'the new frames on the new TAP', 10_000);
        await new Promise((r) => setTimeout(r, 300));
        assert.equal(tapReceived(ns, be.tap), 2, 'exactly the new frames: tx resumed from its saved base');
        await arpReachesGuest(ns, be.tap, guest, 'rx resumed');
        assert.match(be.stderr(), /base/, 'the back-end logged its ring starts');

        // A stopped ring's base is the back-end's answer (GET_VRING_BASE): 5 frames sent.
        assert.equal(await nic.virtqueues!.stopQueueAsync(1), 5);
        nic.virtqueues!.startQueue(1, guest.tx.queueStart(5));
        guest.send(1);
        await waitFor(() => tapReceived(ns, be!.tap) === 3, 'a frame after the ring restarted', 10_000);

        // A guest reset leaves the back-end as QEMU 7.2's vhost_dev_stop does: SET_STATUS(0),
        // then GET_VRING_BASE for each ring, no SET_VRING_ENABLE(0). Its log is its state.
        let mark = be.stderr().length;
        nic.device.setStatus(0);
        await nic.virtqueues!.settled();
        await waitFor(
          () => /ring 1 stopped/.test(be!.stderr().slice(mark)),
          'the rings stopped at the back-end',
          10_000,
        );
        const stopLog = be.stderr().slice(mark);
        assert.match(stopLog, /status 0x0\n[^]*ring 0 stopped at base \d+\n[^]*ring 1 stopped at base 6\n/);
        assert.doesNotMatch(stopLog, /disabled/, 'no SET_VRING_ENABLE(0)');
        // (Lines before the reset's may still be arriving: nothing starts after the stop.)
        assert.doesNotMatch(stopLog.slice(stopLog.indexOf('status 0x0')), /started/);
        // Stopped there: a frame the reset guest still publishes is not taken.
        guest.send(1);
        await new Promise((r) => setTimeout(r, 300));
        assert.equal(guest.txUsed(), 6, 'the back-end took nothing after the reset');
        // The guest boots again: fresh rings from base 0, DRIVER_OK once a ring runs.
        mark = be.stderr().length;
        guest.boot(bit(VirtioF.VERSION_1) | bit(VirtioNetF.CSUM));
        guest.send(2);
        await waitFor(() => tapReceived(ns, be!.tap) === 5, 'frames after the guest rebooted', 10_000).catch(
          (e: Error) => {
            throw new Error(`${e.message} (back-end: ${be!.stderr().slice(mark)}; errors: ${errors.join('; ')})`);
          },
        );
        await waitFor(
          () => /ring 0 enabled\n[^]*status 0xf\n[^]*ring 1 started \(size 64, base 0\)/.test(be!.stderr().slice(mark)),
          'the rings started again after DRIVER_OK',
          10_000,
        );

        // A back-end without the CSUM the guest acked (a TAP without vnet_hdr) is refused.
        await stopBackend(be);
        await waitFor(() => !guest!.linkUp, 'link down', 10_000);
        errors.length = 0;
        be = rig.be = await startBackend(sock, ns, { vnetHdr: false });
        await waitFor(
          () => errors.some((m) => /features 0x1 .*acked.*\(flags mismatch\)/.test(m)),
          `the refusal (errors: ${errors.join('; ')})`,
          20_000,
        );
        assert.equal(guest.linkUp, false, 'the link stays down');
      }),
  );

  test(
    'queues=2: SET_VRING_ENABLE follows the guest queue-pair count; unplug stops the device as QEMU does',
    privileged(),
    async () =>
      withRig('nppt-mq.sock', async (rig) => {
        const { sock, ns, topo, errors } = rig;
        const be = (rig.be = await startBackend(sock, ns, { queues: 2 }));
        topo.chardevs.add({ backend: 'socket', id: 'c0', path: sock, server: false, reconnect: 1 });
        topo.addNetdev(parseNetdevArg('vhost-user,id=n0,chardev=c0,queues=2'));
        const nic = topo.addDevice(
          { driver: 'virtio-net-pci', netdev: 'n0', id: 'npptnet3', features: { mq: true } },
          { queues: 'virtqueues' },
        );
        const guest = (rig.guest = new Guest(nic, 2));
        await waitFor(() => guest!.linkUp, 'link up', 20_000);
        // Packed rings are not offered on the pass-through path.
        assert.equal(nic.device.hostFeatures & bit(VirtioF.RING_PACKED), 0n);
        guest.boot(bit(VirtioF.VERSION_1) | bit(VirtioNetF.CTRL_VQ) | bit(VirtioNetF.MQ));
        assert.equal(nic.device.currQueuePairs, 1);
        // Pair 1 is started but disabled: its frames stay in the guest's ring.
        guest.send(1, 0);
        guest.send(2, 1);
        await waitFor(() => tapReceived(ns, be!.tap) === 1, 'the pair-0 frame', 10_000);
        await new Promise((r) => setTimeout(r, 300));
        assert.equal(guest.txUsed(1), 0, 'a disabled pair moves nothing');
        assert.equal(tapReceived(ns, be.tap), 1);
        // VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET 2: rings 2 and 3 enabled, the pending frames go.
        assert.equal(nic.device.setQueuePairs(2), 0);
        guest.send(1, 1);
        await waitFor(() => tapReceived(ns, be!.tap) === 4, 'the pair-1 frames once enabled', 10_000);
        await waitFor(() => /ring 2 enabled\n[^]*ring 3 enabled\n/.test(be.stderr()), 'rings 2 and 3 enabled', 10_000);
        // Back to 1: disabled again, nothing more leaves pair 1.
        let mark = be.stderr().length;
        assert.equal(nic.device.setQueuePairs(1), 0);
        await waitFor(() => /ring 3 disabled/.test(be!.stderr().slice(mark)), 'pair 1 disabled', 10_000);
        guest.send(1, 1);
        guest.send(1, 0);
        await waitFor(() => tapReceived(ns, be!.tap) === 5, 'the pair-0 frame', 10_000);
        await new Promise((r) => setTimeout(r, 300));
        assert.equal(guest.txUsed(1), 3, 'pair 1 took nothing while disabled');
        assert.equal(tapReceived(ns, be.tap), 5);

        // Unplug: GET_VRING_BASE for pair 0, then SET_STATUS(0) before the last pair's rings.
        mark = be.stderr().length;
        await nic.close();
        await waitFor(() => /ring 3 stopped/.test(be!.stderr().slice(mark)), 'every ring stopped', 10_000);
        assert.match(
          be.stderr().slice(mark),
          /ring 0 stopped at base \d+\n[^]*ring 1 stopped at base 2\n[^]*status 0x0\n[^]*ring 2 stopped at base \d+\n[^]*ring 3 stopped at base 3\n/,
        );
        assert.deepEqual(
          errors.filter((m) => !/disconnect/.test(m)),
          [],
        );
      }),
  );

  test('a back-end with fewer queue pairs than the netdev asks is refused', privileged(), async () => {
    const sock = path.join(dir, 'nppt-be2.sock');
    const ns = new NetNs('pt');
    const dp = new NativeDataPlane();
    const topo = new Topology({ dataPlane: dp });
    const errors: string[] = [];
    topo.on('error', (e) => errors.push(e.message));
    let be: Backend | undefined;
    try {
      be = await startBackend(sock, ns, { queues: 1 });
      topo.chardevs.add({ backend: 'socket', id: 'c0', path: sock, server: false, reconnect: 1 });
      topo.addNetdev(parseNetdevArg('vhost-user,id=n0,chardev=c0,queues=2'));
      const nic = topo.addDevice(
        { driver: 'virtio-net-pci', netdev: 'n0', id: 'npptnet1', features: { mq: true } },
        { queues: 'virtqueues' },
      );
      await waitFor(() => errors.some((m) => /fewer than the queues=2 asked/.test(m)), 'the refusal', 20_000);
      assert.equal(nic.device.linkUp, false);
    } finally {
      await topo.close();
      dp.close();
      await stopBackend(be);
      ns.dispose();
    }
  });
});

interface Testpmd {
  proc: ChildProcess;
  tap: string;
  prefix: string;
  output: () => string;
}

/** testpmd serving `sock` (net_vhost0) with io forwarding to a new TAP, which moves into `ns`. */
async function startTestpmd(sock: string, ns: NetNs): Promise<Testpmd> {
  fs.rmSync(sock, { force: true }); // a killed testpmd leaves its socket file behind
  const tap = npName('pt');
  const base = testpmdCommand({
    cpu: 1,
    vdevs: [`net_vhost0,iface=${sock},queues=1`, `net_tap0,iface=${tap}`],
    forwardMode: 'io',
  });
  base.cleanup(); // our own runtime prefix (np + this test's tag) replaces the helper's
  const prefix = npName('pt');
  const args = base.args.map((a) => (a === base.prefix ? prefix : a));
  const proc = spawn('dpdk-testpmd', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const pmd = { proc, tap, prefix, output: () => out };
  try {
    await waitFor(
      () => {
        if (proc.exitCode !== null) throw new Error(`testpmd exited: ${out.slice(-2000)}`);
        return out.includes(kTestpmdReady);
      },
      'testpmd ready',
      30_000,
    );
    ns.adopt(tap);
  } catch (e) {
    await stopTestpmd(pmd, 'SIGKILL');
    throw e;
  }
  return pmd;
}

/** Stop testpmd (SIGINT lets it tidy up, SIGKILL is the crash) and remove its runtime dir. */
async function stopTestpmd(pmd: Testpmd | undefined, signal: 'SIGINT' | 'SIGKILL' = 'SIGINT'): Promise<void> {
  if (!pmd) return;
  const p = pmd.proc;
  if (p.exitCode === null && p.signalCode === null) {
    const exited = new Promise((r) => p.once('exit', r));
    p.kill(signal);
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (p.exitCode === null && p.signalCode === null) {
      p.kill('SIGKILL');
      await exited;
    }
  }
  removeRuntimeDir(pmd.prefix);
}

describe(
  'vhost-user pass-through against DPDK testpmd (net_vhost0 with io forwarding to net_tap)',
  { timeout: 180_000 },
  () => {
    test(
      'frames both ways, GET_VRING_BASE, guest reset and reboot, testpmd killed and restarted',
      needsPrivileged('dpdk-testpmd', 'ping'),
      async (t) => {
        const sock = path.join(dir, 'nppt-pmd.sock');
        const ns = new NetNs('pt');
        ns.disableIpv6();
        const dp = new NativeDataPlane();
        const topo = new Topology({ dataPlane: dp });
        topo.on('error', () => undefined); // the disconnects
        let pmd: Testpmd | undefined;
        let guest: Guest | undefined;
        try {
          pmd = await startTestpmd(sock, ns);
          topo.chardevs.add({ backend: 'socket', id: 'c0', path: sock, server: false, reconnect: 1 });
          const nd = topo.addNetdev(parseNetdevArg('vhost-user,id=n0,chardev=c0'));
          const nic = topo.addDevice(
            { driver: 'virtio-net-pci', netdev: 'n0', id: 'npptnet2', features: {} },
            { queues: 'virtqueues' },
          );
          guest = new Guest(nic);
          await waitFor(() => guest!.linkUp, 'link up with testpmd connected', 20_000);
          guest.boot(bit(VirtioF.VERSION_1));
          guest.send(4);
          await waitFor(() => tapReceived(ns, pmd!.tap) >= 4, 'the guest frames on the TAP behind testpmd', 20_000);
          await arpReachesGuest(ns, pmd.tap, guest, 'the ARP request in the guest');
          assertIdle(dp, [...nd.clients, ...nic.clients]);
          assert.equal(await nic.virtqueues!.stopQueueAsync(1), 4, "testpmd's next tx avail index");
          nic.virtqueues!.startQueue(1, guest.tx.queueStart(4));

          // Guest reset (SET_STATUS(0), GET_VRING_BASE x2): testpmd takes nothing more...
          nic.device.setStatus(0);
          await nic.virtqueues!.settled(); // the back-end answered the stop
          guest.send(1);
          await new Promise((r) => setTimeout(r, 500));
          assert.equal(guest.txUsed(), 4, 'testpmd took nothing after the reset');
          // ...until the guest boots again with fresh rings.
          guest.boot(bit(VirtioF.VERSION_1));
          guest.send(2);
          await waitFor(() => guest!.txUsed() === 2, 'frames after the reboot', 20_000);
          await arpReachesGuest(ns, pmd.tap, guest, 'rx after the reboot');

          // testpmd killed: link down in the guest (status bit and config interrupt).
          const irqs = guest.configInterrupts;
          await stopTestpmd(pmd, 'SIGKILL');
          await waitFor(() => !guest!.linkUp, 'link down in the guest config', 10_000);
          assert.ok(guest.configInterrupts > irqs, 'a config interrupt for link down');
          // Restarted: reconnect brings the link back; tx resumes from the used index (2).
          pmd = await startTestpmd(sock, ns);
          const listening = Date.now();
          await waitFor(() => guest!.linkUp, 'link up again', 30_000);
          t.diagnostic(`reconnect to testpmd: guest link up ${Date.now() - listening} ms after testpmd was ready`);
          guest.send(3);
          await waitFor(() => guest!.txUsed() === 5, 'the new frames taken by testpmd', 20_000);
          await waitFor(() => tapReceived(ns, pmd!.tap) >= 3, 'the new frames on the new TAP', 10_000);
          await new Promise((r) => setTimeout(r, 300));
          assert.equal(tapReceived(ns, pmd.tap), 3, 'exactly the new frames: tx resumed from its base');
          await arpReachesGuest(ns, pmd.tap, guest, 'rx resumed after the restart');
          assert.equal(await nic.virtqueues!.stopQueueAsync(1), 5, "the restarted testpmd's next tx avail index");
        } finally {
          await topo.close();
          dp.close();
          guest?.close();
          await stopTestpmd(pmd);
          fs.rmSync(sock, { force: true });
          ns.dispose();
        }
      },
    );
  },
);
