// The in-process hypervisor for `npm run bench -- hypervisor`: one Node process holding the
// data plane, a Topology NIC on TAP IFNAME (created by name) and a JavaScript guest that
// moves 60-byte frames through that NIC as fast as it can, either
//   virtqueues: the guest's split rings in a SharedArrayBuffer (examples/lib/split-ring-driver.ts)
//               served natively (queues: 'virtqueues'), or
//   port:       an emulator's own model on a bare packet port (examples/lib/emulated-nic.ts
//               style: read(k) into k posted buffers, its own header, send of bare frames);
// in one direction: tx (guest -> TAP) or rx (TAP -> guest, frames offered by trafgen).
// Prints "ready" once wired, then "frames <count> <monotonic ns>" every 200 ms (frames
// through the guest's rings); on SIGTERM a JSON line with the engine's counters on stderr.
//
//   node --import tsx bench/forwarders/hypervisor-guest.ts IFNAME virtqueues|port tx|rx DSTMAC
import { NativeDataPlane } from '../../lib/dataplane/native-dataplane';
import { Topology } from '../../lib/topology/topology';
import { VirtioF, VirtioNetF, VirtioStatus } from '../../lib/devices/virtio-net-features';
import { SplitRingDriver } from '../../examples/lib/split-ring-driver';
import { reportFrames } from './report';

const RAM_BASE = 0x40000000;
const RING = 256;
const SLOT = 2048;
const HDR = 12;
const FRAME = 60;

function testFrame(dst: number[]): Uint8Array {
  const f = new Uint8Array(FRAME).fill(0x5a);
  f.set(dst, 0);
  f.set([0x02, 0x77, 0, 0, 0, 0x42, 0x88, 0xb5], 6);
  return f;
}

function main(): void {
  const [ifname, path, dir, mac] = process.argv.slice(2);
  if (!ifname || (path !== 'virtqueues' && path !== 'port') || (dir !== 'tx' && dir !== 'rx') || !mac)
    throw new Error('usage: hypervisor-guest.ts IFNAME virtqueues|port tx|rx DSTMAC');
  const dst = mac.split(':').map((x) => parseInt(x, 16));
  const dp = new NativeDataPlane();
  const topo = new Topology({ dataPlane: dp });
  topo.addNetdev({ type: 'tap', id: 'hn0', ifname, script: 'no', downscript: 'no' });
  const nic = topo.addDevice(
    { driver: 'virtio-net-pci', netdev: 'hn0', id: 'net0', features: {} },
    path === 'virtqueues' ? { queues: 'virtqueues' } : { frames: 'bare' },
  );
  nic.device.setStatus(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER);
  nic.device.setDriverFeatures((1n << BigInt(VirtioF.VERSION_1)) | (1n << BigInt(VirtioNetF.MRG_RXBUF)));
  nic.device.setStatus(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER | VirtioStatus.FEATURES_OK);

  let frames = 0;
  let running = true;
  const ram = new SharedArrayBuffer(4 << 20);
  const bytes = new Uint8Array(ram);
  const frame = testFrame(dst);
  // The guest runs on its interrupts (and the port's wake-ups), as a guest driver does: no
  // busy polling, so the engine's thread on the same CPU gets its share.
  let scheduled = false;
  let step: () => void = () => undefined;
  const wake = (): void => {
    if (scheduled || !running) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      if (running) step();
    });
  };
  if (path === 'virtqueues') {
    const q = nic.virtqueues!;
    q.setMemory([{ guestAddr: BigInt(RAM_BASE), buffer: ram }]);
    const ring = new SplitRingDriver(ram, RAM_BASE, RAM_BASE, RING);
    const index = dir === 'rx' ? 0 : 1;
    const handle = q.startQueue(index, {
      size: RING,
      descAddr: BigInt(ring.desc),
      availAddr: BigInt(ring.avail),
      usedAddr: BigInt(ring.used),
      kick: 'notify',
      call: wake, // the guest's interrupt
    });
    const slotAddr = (i: number): number => RAM_BASE + 0x100000 + i * SLOT;
    for (let i = 0; i < RING; i++) if (dir === 'tx') bytes.set(frame, slotAddr(i) - RAM_BASE + HDR);
    let nextSlot = 0;
    const post = (): void => {
      let added = 0;
      while (ring.freeDescriptors > 0) {
        const addr = slotAddr(nextSlot);
        ring.add([dir === 'tx' ? { addr, len: HDR + FRAME, writable: false } : { addr, len: SLOT, writable: true }]);
        nextSlot = (nextSlot + 1) % RING;
        added++;
      }
      if (added > 0) {
        ring.publish();
        if (ring.kickWanted()) handle.notify();
      }
    };
    step = () => {
      frames += ring.takeUsed().length;
      post();
    };
    post();
  } else {
    const port = dp.port(nic.clients[0]!.handle)!;
    if (dir === 'tx') {
      const packets = Array.from({ length: 64 }, () => {
        const p = new Uint8Array(HDR + FRAME);
        p.set(frame, HDR);
        return p;
      });
      // The emulator strips its header per packet, as its guest wrote it, and sends.
      const batch = (): Uint8Array[] => packets.map((p) => p.subarray(HDR));
      const pump = (): void => {
        while (running && port.send(batch())) frames += packets.length;
        if (running)
          void port.sendAsync(batch()).then(() => {
            frames += packets.length;
            wake();
          });
      };
      step = pump;
      wake();
    } else {
      let slot = 0;
      step = () => {
        // The guest has a full ring of posted buffers: take up to that many, copy each in.
        for (;;) {
          const got = port.read(RING);
          if (got.length === 0) break;
          for (const f of got) {
            const off = 0x100000 + slot * SLOT;
            bytes.fill(0, off, off + HDR);
            bytes.set(f, off + HDR);
            slot = (slot + 1) % RING;
          }
          port.release();
          frames += got.length;
        }
      };
      port.onReadable(wake);
    }
  }
  nic.device.setStatus(
    VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER | VirtioStatus.FEATURES_OK | VirtioStatus.DRIVER_OK,
  );
  reportFrames(
    () => frames,
    async () => {
      running = false;
      const stats = dp.stats();
      await topo.close();
      dp.close();
      return { frames, stats };
    },
  );
}

try {
  main();
} catch (e) {
  console.error(`hypervisor-guest: ${(e as Error).message}`);
  process.exit(2);
}
