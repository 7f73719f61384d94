// A TypeScript hypervisor's NIC with native queues: the hypervisor keeps the virtio-net model
// (nic.device) and hands the engine its guest RAM and each ring as the driver sets it up;
// from then on frames move between the guest's rings and the NIC's peer with no JavaScript.
// Here the peer is a hub port, and a second NIC on the same hub (a packet port) is the far
// end; a small driver (examples/lib/split-ring-driver.ts) plays the guest. Unprivileged.
//
//   npm run build:ts && node --import tsx examples/hypervisor-virtqueues.ts
import { NativeDataPlane, Topology, VirtioF, VirtioNetF, VirtioStatus } from 'netplane';
import { SplitRingDriver } from './lib/split-ring-driver';
import { within } from './lib/within';

const RAM_BASE = 0x40000000; // guest-physical address of the RAM below
const HDR = 12; // the guest's virtio-net header (VERSION_1)

async function main(): Promise<void> {
  const dp = new NativeDataPlane();
  const topo = new Topology({ dataPlane: dp });
  topo.addNetdev({ type: 'hubport', id: 'h0', hubid: 0 });
  topo.addNetdev({ type: 'hubport', id: 'h1', hubid: 0 });
  const nic = topo.addDevice(
    { driver: 'virtio-net-pci', netdev: 'h0', id: 'net0', features: {} },
    { queues: 'virtqueues' },
  );
  const far = dp.port(
    topo.addDevice({ driver: 'virtio-net-pci', netdev: 'h1', id: 'net1', features: {} }).clients[0]!.handle,
  )!;

  // The guest's RAM (an fd-backed memfd works the same: { guestAddr, size, fd }).
  const ram = new SharedArrayBuffer(1 << 20);
  nic.virtqueues!.setMemory([{ guestAddr: BigInt(RAM_BASE), buffer: ram }]);
  const bytes = new Uint8Array(ram);

  // The driver negotiates through the model, then sets up rx (virtqueue 0) and tx (1).
  nic.device.setStatus(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER);
  nic.device.setDriverFeatures((1n << BigInt(VirtioF.VERSION_1)) | (1n << BigInt(VirtioNetF.MRG_RXBUF)));
  nic.device.setStatus(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER | VirtioStatus.FEATURES_OK);
  const rx = new SplitRingDriver(ram, RAM_BASE, RAM_BASE, 256);
  const tx = new SplitRingDriver(ram, RAM_BASE, RAM_BASE + 0x10000, 256);
  let interrupts = 0;
  const queues = [rx, tx].map((r, index) =>
    nic.virtqueues!.startQueue(index, {
      size: r.size,
      descAddr: BigInt(r.desc),
      availAddr: BigInt(r.avail),
      usedAddr: BigInt(r.used),
      kick: 'notify', // the hypervisor's queue-notify trap rings queues[i].notify()
      call: () => interrupts++, // the guest's interrupt (or an irqfd: call: fd)
    }),
  );
  nic.device.setStatus(
    VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER | VirtioStatus.FEATURES_OK | VirtioStatus.DRIVER_OK,
  );

  // The guest posts 8 rx buffers and sends one broadcast frame.
  for (let i = 0; i < 8; i++) rx.add([{ addr: RAM_BASE + 0x40000 + i * 2048, len: 2048, writable: true }]);
  rx.publish();
  queues[0]!.notify();
  const frame = new Uint8Array(60).fill(0xab);
  frame.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x88, 0xb5]);
  bytes.set(frame, 0x20000 + HDR); // header zeroed: no offloads
  tx.add([{ addr: RAM_BASE + 0x20000, len: HDR + frame.length, writable: false }]);
  tx.publish();
  queues[1]!.notify();

  // The far end gets it, and answers with a frame of its own.
  const got = await within(
    new Promise<Uint8Array>((resolve) => far.onFrames((batch) => resolve(batch[0]!.slice()))),
    5000,
    'frame at the far end',
  );
  console.log(`far end received ${got.length} bytes from the guest's tx ring`);
  const answer = Uint8Array.from(frame);
  answer.fill(0xcd, 14);
  far.send([answer]);
  let used = 0;
  for (let i = 0; i < 400 && (used === 0 || interrupts === 0); i++) {
    used += rx.takeUsed().length;
    await new Promise((r) => setTimeout(r, 5));
  }
  const landed = bytes.subarray(0x40000 + HDR, 0x40000 + HDR + answer.length);
  console.log(`guest rx ring got the answer: ${landed[20] === 0xcd ? 'yes' : 'no'}; interrupts: ${interrupts}`);
  const st = dp.stats().find((c) => c.handle === nic.clients[0]!.handle)!;
  console.log(`net0 (${st.kind}): frames in ${st.framesIn}, out ${st.framesOut}, dropped ${st.dropped}`);

  // What another consumer of the same rings takes (a vhost-user front-end passing them on).
  const setup = nic.virtqueues!.setup();
  console.log(`set-up: ${setup.regions.length} region(s), rings ${setup.vrings.map((v) => v.index).join(',')}`);

  nic.device.setStatus(0); // a device reset stops both queues
  await topo.close();
  dp.close();
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
