// GuestMemory: a guest's memory as the native virtqueue engine sees it (native/core/virtio/
// guest_memory.h). Made by NativeDataPlane.mapGuestMemory (fd-backed regions, e.g. a
// vhost-user SET_MEM_TABLE or a memfd) or NativeDataPlane.wrapGuestMemory (memory this
// process owns, e.g. a SharedArrayBuffer of an in-process hypervisor), then handed to
// startVring. close() (or `using`) drops this handle's reference; a running ring keeps its
// own, so the mapping goes when the last ring using it stops. Idempotent.
import { NetplaneError } from '../errors';
import type { NativeGuestMemory } from '../native';

export class GuestMemory {
  readonly #native: NativeGuestMemory;

  /** @internal made by NativeDataPlane.mapGuestMemory / wrapGuestMemory */
  constructor(native: NativeGuestMemory) {
    this.#native = native;
  }

  /** Total bytes of all regions (0n once closed). */
  get size(): bigint {
    return this.#native.size;
  }

  get regionCount(): number {
    return this.#native.regionCount;
  }

  get closed(): boolean {
    return this.#native.closed;
  }

  close(): void {
    this.#native.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** @internal the native object startVring takes */
  _native(): NativeGuestMemory {
    if (this.#native.closed) throw new NetplaneError('NETPLANE_CLOSED', 'guest memory is closed');
    return this.#native;
  }
}
