// A hypervisor with its own virtio-net model (a JavaScript emulator) on packet ports: the
// NIC's port carries bare frames (frames: 'bare', the emulator adds and strips its own
// header), the emulator takes only as many frames as the guest posted rx buffers
// (port.read(k); the rest waits in the port), and link changes reach it (port.onLinkChange).
// The NIC sits on a hub with a second NIC whose port plays the wire. Unprivileged.
//
//   npm run build:ts && node --import tsx examples/hypervisor-ports.ts
import { NativeDataPlane, Topology } from 'netplane';
import { EmulatedVirtioNet, GUEST_HDR_LEN } from './lib/emulated-nic';
import { within } from './lib/within';

function frame(tag: number): Uint8Array {
  const f = new Uint8Array(64).fill(tag);
  f.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0, 0, tag, 0x88, 0xb5]);
  return f;
}

async function main(): Promise<void> {
  const dp = new NativeDataPlane();
  const topo = new Topology({ dataPlane: dp });
  topo.addNetdev({ type: 'hubport', id: 'h0', hubid: 0 });
  topo.addNetdev({ type: 'hubport', id: 'h1', hubid: 0 });
  const nic = topo.addDevice({ driver: 'virtio-net-pci', netdev: 'h0', id: 'net0', features: {} }, { frames: 'bare' });
  const wire = dp.port(
    topo.addDevice({ driver: 'virtio-net-pci', netdev: 'h1', id: 'net1', features: {} }).clients[0]!.handle,
  )!;
  const emu = new EmulatedVirtioNet(dp.port(nic.clients[0]!.handle)!);

  // Six frames arrive; the guest has posted two rx buffers.
  emu.postRxBuffers(2);
  wire.send([1, 2, 3, 4, 5, 6].map(frame));
  await new Promise((r) => setTimeout(r, 100));
  console.log(`guest has ${emu.delivered.length} frames; the rest waits in the port`);
  emu.postRxBuffers(8); // the guest refills its rx ring
  console.log(
    `guest has ${emu.delivered.length} frames, tags ${emu.delivered.map((b) => b[GUEST_HDR_LEN + 11]).join(',')}`,
  );

  // The guest transmits: the emulator strips its header, the wire gets the bare frame.
  const got = new Promise<Uint8Array>((resolve) => wire.onFrames((b) => resolve(b[0]!.slice())));
  const pkt = new Uint8Array(GUEST_HDR_LEN + 64);
  pkt.set(frame(9), GUEST_HDR_LEN);
  emu.guestTransmit([pkt]);
  console.log(`wire got ${(await within(got, 5000, 'frame on the wire')).length} bytes (no vnet header)`);

  // set_link reaches the emulator as a link change.
  topo.setLink('net0', false);
  console.log(`link up: ${emu.linkUp}, config interrupts: ${emu.configInterrupts}`);
  topo.setLink('net0', true);
  console.log(`link up: ${emu.linkUp}, config interrupts: ${emu.configInterrupts}`);

  // A port made directly (createPort) gets the same events from its peer.
  const a = dp.createPort('np-a');
  const b = dp.createPort('np-b');
  dp.connect(a.handle, b.handle);
  a.onLinkChange((up, cause) => console.log(`direct port: link ${up ? 'up' : 'down'} (${cause})`));
  dp.setLinkDown(b.handle, true);
  dp.setLinkDown(b.handle, false);
  dp.removeClient(b.handle);

  await topo.close();
  dp.close();
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
