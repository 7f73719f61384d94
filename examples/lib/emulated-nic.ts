// A JavaScript emulator's own virtio-net device, reduced to where it meets a netplane packet
// port: the guest posts few rx buffers, the emulator adds and strips its own 12-byte virtio
// header (the port carries bare frames), and a link change sets the device's LINK_UP status
// bit and raises a config interrupt. What such an emulator's author writes on top of a port.
import type { PacketPort } from 'netplane';

export const GUEST_HDR_LEN = 12;

export class EmulatedVirtioNet {
  /** What the guest received: [its 12-byte header | frame], in order. */
  readonly delivered: Uint8Array[] = [];
  /** The device's config-space status bit LINK_UP. */
  linkUp: boolean;
  configInterrupts = 0;
  #freeRxBuffers = 0;
  readonly #port: PacketPort;

  constructor(port: PacketPort) {
    this.#port = port;
    this.linkUp = port.linkUp;
    // Frames arrived: take as many as the guest has buffers for, leave the rest in the port.
    port.onReadable(() => this.#fill());
    port.onLinkChange((up) => this.setLink(up));
  }

  get freeRxBuffers(): number {
    return this.#freeRxBuffers;
  }

  /** The guest posted `n` more rx buffers (its rx kick): fill them from the port. */
  postRxBuffers(n: number): void {
    this.#freeRxBuffers += n;
    this.#fill();
  }

  /** The guest transmits [header | frame]s: the port takes the bare frames. */
  guestTransmit(packets: readonly Uint8Array[]): boolean {
    return this.#port.send(packets.map((p) => p.subarray(GUEST_HDR_LEN)));
  }

  setLink(up: boolean): void {
    if (up === this.linkUp) return;
    this.linkUp = up;
    this.configInterrupts++; // the guest re-reads the status
  }

  #fill(): void {
    if (this.#freeRxBuffers === 0) return;
    for (const f of this.#port.read(this.#freeRxBuffers)) {
      const buf = new Uint8Array(GUEST_HDR_LEN + f.length); // a zeroed header: no offloads
      buf.set(f, GUEST_HDR_LEN);
      this.delivered.push(buf);
      this.#freeRxBuffers--;
    }
    this.#port.release(); // copied: the ring space goes back to the engine
  }
}
