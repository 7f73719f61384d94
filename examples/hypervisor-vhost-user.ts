// A TypeScript hypervisor's NIC on -netdev vhost-user: the hypervisor keeps the virtio-net
// model (nic.device) and hands netplane its guest RAM and each ring, as for native queues;
// because the netdev is vhost-user, netplane passes them on to the back-end (memory table
// with the RAM's fd, ring addresses, kick / call) and carries only control. Frames move
// between the guest's rings and the back-end with no netplane code in between.
//
// The back-end here is netplane's own (VhostUserBackend on a second data plane, standing in
// for a DPDK or OVS switch port) behind a unix socket; its "switch port" is a packet port.
// The guest's RAM is a /dev/shm file (unlinked at once; a memfd works the same), read and
// written by a small driver (examples/lib/split-ring-driver.ts over examples/lib/file-ram.ts).
// Unprivileged.
//
//   npm run build:ts && node --import tsx examples/hypervisor-vhost-user.ts
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { NativeDataPlane, Topology, VhostUserBackend, VhostUserEndpoint, VirtioF, VirtioStatus } from 'netplane';
import { fileRam } from './lib/file-ram';
import { SplitRingDriver } from './lib/split-ring-driver';
import { within } from './lib/within';

const RAM = 1 << 20;
const HDR = 12; // the guest's virtio-net header (VERSION_1)
const DRIVER_OK = VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER | VirtioStatus.FEATURES_OK | VirtioStatus.DRIVER_OK;

async function waitUntil(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; !cond(); i++) {
    if (i > 1000) throw new Error(`no ${what} within 10 s`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'np-hv-vu-'));
  const sock = path.join(dir, 'switch.sock');

  // The "switch": a vhost-user back-end whose port is a packet port.
  const switchDp = new NativeDataPlane();
  switchDp.addClient({ kind: 'virtio-device', handle: 1000, name: 'switch-vu', queueIndex: 0 });
  const switchPort = switchDp.createPort('switch-port');
  switchDp.connect(switchPort.handle, 1000);
  const serve = (): Promise<VhostUserEndpoint> =>
    VhostUserEndpoint.open(
      { kind: 'listen', path: sock },
      () =>
        new VhostUserBackend({
          queuePairs: 1,
          features: 1n << BigInt(VirtioF.VERSION_1),
          dataPath: { path: switchDp, handles: [1000] },
        }),
    );
  let backend = await serve();

  // The hypervisor: a NIC with native queues on -netdev vhost-user.
  const dp = new NativeDataPlane();
  const topo = new Topology({ dataPlane: dp });
  topo.on('error', () => undefined); // "the back-end disconnected" and the like, reported as errors
  topo.chardevs.add({ backend: 'socket', id: 'c0', path: sock, server: false, reconnect: 1 });
  const netdev = topo.addNetdev({ type: 'vhost-user', id: 'n0', chardev: 'c0' });
  // Connected first (netplane's own driver runs the back-end's rings meanwhile); the NIC
  // takes them over: netplane stops its rings there, the guest's replace them.
  await waitUntil('back-end', () => netdev.linkUp);
  const nic = topo.addDevice(
    { driver: 'virtio-net-pci', netdev: 'n0', id: 'net0', features: {} },
    { queues: 'virtqueues' },
  );
  let configInterrupts = 0;
  nic.on('config-change', () => configInterrupts++);
  console.log(`back-end connected: link up in the guest's config: ${nic.device.linkUp}`);

  // Guest RAM must be fd-backed: the back-end maps it (a SharedArrayBuffer is refused).
  const ramPath = path.join('/dev/shm', `np-hv-vu-ram-${process.pid}`);
  const ramFd = fs.openSync(ramPath, 'w+');
  fs.unlinkSync(ramPath);
  fs.ftruncateSync(ramFd, RAM);
  const ram = fileRam(ramFd, 0);
  nic.virtqueues!.setMemory([{ guestAddr: 0n, size: BigInt(RAM), fd: ramFd }]);

  nic.device.setStatus(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER);
  nic.device.setDriverFeatures(1n << BigInt(VirtioF.VERSION_1));
  nic.device.setStatus(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER | VirtioStatus.FEATURES_OK);
  const rx = new SplitRingDriver(ram, 0, 0, 64);
  const tx = new SplitRingDriver(ram, 0, 0x10000, 64);
  let interrupts = 0;
  const start = (index: number, r: SplitRingDriver, base = 0) =>
    nic.virtqueues!.startQueue(index, {
      size: r.size,
      descAddr: BigInt(r.desc),
      availAddr: BigInt(r.avail),
      usedAddr: BigInt(r.used),
      base,
      kick: 'notify', // an eventfd the back-end reads: the queue-notify trap rings notify()
      call: () => interrupts++, // the back-end's interrupts (or an irqfd: call: fd)
    });
  const rxq = start(0, rx);
  const txq = start(1, tx);
  nic.device.setStatus(DRIVER_OK);

  for (let i = 0; i < 8; i++) rx.add([{ addr: 0x40000 + i * 2048, len: 2048, writable: true }]);
  rx.publish();
  rxq.notify();
  const frame = new Uint8Array(60).fill(0xab);
  frame.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x88, 0xb5]);
  const send = (at: number): void => {
    ram.write(at, new Uint8Array(HDR)); // header zeroed: no offloads
    ram.write(at + HDR, frame);
    tx.add([{ addr: at, len: HDR + frame.length, writable: false }]);
    tx.publish();
    txq.notify();
  };
  // The switch port's frames, one waiter at a time.
  let deliver: ((f: Uint8Array) => void) | undefined;
  switchPort.onFrames((batch) => deliver?.(batch[0]!.slice()));
  const atSwitch = (): Promise<Uint8Array> =>
    within(new Promise<Uint8Array>((resolve) => (deliver = resolve)), 5000, 'frame at the switch');

  let arrived = atSwitch();
  send(0x20000);
  console.log(`switch port received ${(await arrived).length} bytes from the guest's tx ring`);
  const answer = Uint8Array.from(frame);
  answer.fill(0xcd, 14);
  switchPort.send([answer]);
  let used = 0;
  await waitUntil('the answer', () => (used += rx.takeUsed().length) > 0 && interrupts > 0);
  console.log(`guest rx ring got the answer: ${ram.read(0x40000 + HDR + 20, 1)[0] === 0xcd ? 'yes' : 'no'}`);
  const carried = dp.stats().reduce((n, s) => n + s.framesIn + s.framesOut, 0);
  console.log(`netplane's own queues moved ${carried} frames (control only)`);

  // The switch restarts: the link follows the connection, reconnect resumes the rings.
  await backend.close();
  await waitUntil('link down', () => !nic.device.linkUp);
  console.log(`back-end gone: link up ${nic.device.linkUp}, config interrupts ${configInterrupts}`);
  backend = await serve();
  await waitUntil('link up', () => nic.device.linkUp);
  arrived = atSwitch();
  send(0x20800);
  await arrived;
  console.log(`back-end back: link up ${nic.device.linkUp}, a second frame crossed`);
  const base = await nic.virtqueues!.stopQueueAsync(1); // GET_VRING_BASE: the back-end's index
  console.log(`tx ring stopped at ${base}`);
  start(1, tx, base);

  nic.device.setStatus(0); // a device reset stops both rings at the back-end
  await topo.close();
  dp.close();
  await backend.close();
  switchDp.close();
  fs.closeSync(ramFd);
  fs.rmSync(dir, { recursive: true, force: true });
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
