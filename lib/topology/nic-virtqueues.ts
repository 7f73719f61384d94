// NicVirtqueues: the native queues of a Topology NIC realized with `queues: 'virtqueues'`,
// for a hypervisor that runs in this process (a TypeScript VMM). The hypervisor keeps the
// device model (nic.device: features, config space, status, link, the config interrupt and
// the control queue, which it serves itself with the model's methods); its data queues run
// in the engine, on the queue's IOThread, against the NIC's peer, with no JavaScript per
// frame. What the hypervisor tells this object:
//
//   setMemory(regions)       the guest's RAM: memfd regions (mapped MAP_SHARED) or
//                            SharedArrayBuffers it already uses. Again at any time (memory
//                            hot-plug): running rings stop, the new table is mapped, they
//                            restart where they were.
//   startQueue(index, ring)  the driver set virtqueue `index` up (rx of pair i = 2i, tx =
//                            2i + 1): its size, guest-physical desc/avail/used addresses, and
//                            how notifications travel. kick: an fd the driver's notifications
//                            arrive on (an eventfd a KVM ioeventfd writes), or 'notify': the
//                            returned handle's notify() is the doorbell the hypervisor rings
//                            when it traps the guest's queue-notify write. call: an fd the
//                            engine writes per interrupt (an irqfd), a callback (run on the JS
//                            thread, coalesced), or null. The first start of a queue pair
//                            hands the negotiated features (nic.device.driverFeatures) to the
//                            engine.
//   stopQueue(index)         the driver disabled it; returns the next avail index.
//   a device reset           (nic.device.setStatus(0) or reset()) stops every queue and
//                            forgets the set-up.
//   setup()                  the memory and the running rings as a VirtqueueSetup, a plain
//                            value another consumer of the same rings can take (a vhost-user
//                            front-end passing them on).
//
// On a -netdev vhost-user the rings are not the engine's: they pass through to the back-end
// (lib/vhost-user/passthrough-device.ts), netplane carrying only control, as QEMU does. Then
// memory must be fd-backed (a SharedArrayBuffer has no fd to pass), kick: 'notify' is an
// eventfd netplane writes, and stopping a ring asks the back-end for its index
// (GET_VRING_BASE), which takes a round trip: stopQueueAsync().
//
// The guest is untrusted: the engine validates every layout against the memory (refused:
// NETPLANE_INVALID) and every descriptor it reads; hostile ring content puts that queue
// pair in its error state (frames for it counted as dropped) and raises the NIC's
// 'queue-error' event; stopping both rings of the pair and starting them again resets it.
// Fds the hypervisor passes stay its own (the engine duplicates them).
import * as fs from 'node:fs';
import * as net from 'node:net';
import { NetplaneError } from '../errors';
import type { GuestMemory } from '../dataplane/guest-memory';
import type { VirtioNet } from '../devices/virtio-net';
import {
  checkGuestRegions,
  isBufferRegion,
  type FdGuestRegion,
  type GuestRegion,
  type VirtqueueSetup,
  type VringSetup,
} from '../devices/virtqueue-setup';
import { native } from '../native';
import type { PassThroughDevice } from '../vhost-user/passthrough-device';

/** What the NIC needs from the data plane (NativeDataPlane has it). */
export interface VirtqueueDataPlane {
  mapGuestMemory(
    regions: Array<{ guestAddr: bigint; size: bigint; userAddr: bigint; fd: number; fdOffset: bigint }>,
  ): GuestMemory;
  wrapGuestMemory(regions: Array<{ guestAddr: bigint; buffer: SharedArrayBuffer }>): GuestMemory;
  setVirtioFeatures(handle: number, features: bigint): void;
  startVring(
    handle: number,
    cfg: {
      ring: 'rx' | 'tx';
      memory: GuestMemory;
      size: number;
      descAddr: bigint;
      availAddr: bigint;
      usedAddr: bigint;
      addrSpace: 'guest';
      base: number;
      kickFd: number;
      callFd: number;
      errFd?: number;
    },
  ): void;
  stopVring(handle: number, ring: 'rx' | 'tx'): number;
}

export function runsVirtqueues(dp: unknown): dp is VirtqueueDataPlane {
  const d = dp as Partial<VirtqueueDataPlane> | undefined;
  return typeof d?.startVring === 'function' && typeof d.mapGuestMemory === 'function';
}

/** How the driver set one virtqueue up. */
export interface QueueStart {
  size: number;
  descAddr: bigint;
  availAddr: bigint;
  usedAddr: bigint;
  /** Next avail index to process (default 0: a fresh queue). */
  base?: number;
  /** An fd the driver's notifications arrive on, or 'notify' for the returned notify(). */
  kick: number | 'notify';
  /** An fd to write per interrupt, a callback, or null (no interrupts). */
  call: number | (() => void) | null;
}

/** A started queue. */
export interface QueueHandle {
  readonly index: number;
  /** Ring the doorbell (for kick: 'notify'; a queue with its own kick fd throws). */
  notify(): void;
}

interface Running {
  setup: VringSetup;
  kickWrite: number; // our write end for kick: 'notify' (-1 otherwise)
  callReader: net.Socket | undefined; // our read end for a call callback
  ownFds: number[]; // fds we created and close at stop
  handle: QueueHandle;
}

export class NicVirtqueues {
  readonly #dp: VirtqueueDataPlane;
  readonly #device: VirtioNet;
  readonly #handles: readonly number[];
  readonly #running = new Map<number, Running>();
  readonly #featuresSet = new Map<number, bigint>(); // per queue-pair handle
  #regions: readonly GuestRegion[] = [];
  #memory: GuestMemory | undefined;
  readonly #passThrough: PassThroughDevice | undefined;
  #closed = false;

  /** @internal made by the NIC's realize (with `passThrough` on a vhost-user netdev) */
  constructor(dp: VirtqueueDataPlane, device: VirtioNet, handles: readonly number[], passThrough?: PassThroughDevice) {
    this.#dp = dp;
    this.#device = device;
    this.#handles = handles;
    this.#passThrough = passThrough;
  }

  /** The rings pass through to a vhost-user back-end (netplane carries only control). */
  get passThrough(): boolean {
    return this.#passThrough !== undefined;
  }

  /** Queue pairs (data virtqueues 0 .. 2 * queuePairs - 1). */
  get queuePairs(): number {
    return this.#handles.length;
  }

  /** Indexes of the running queues. */
  get started(): number[] {
    return [...this.#running.keys()].sort((a, b) => a - b);
  }

  get hasMemory(): boolean {
    return this.#regions.length > 0;
  }

  /** The guest's RAM (see the file comment). Running queues restart over the new table. */
  setMemory(regions: readonly GuestRegion[]): void {
    this.#checkOpen();
    checkGuestRegions(regions);
    const buffers = regions.filter(isBufferRegion);
    if (this.#passThrough) {
      if (buffers.length > 0) {
        throw new NetplaneError(
          'NETPLANE_INVALID',
          'a SharedArrayBuffer region cannot be passed to a vhost-user back-end (it has no fd): give memfd regions',
        );
      }
      this.#passThrough.setMemory(regions as FdGuestRegion[]);
      this.#regions = regions.map((r) => ({ ...r }));
      return;
    }
    if (buffers.length !== 0 && buffers.length !== regions.length) {
      throw new NetplaneError(
        'NETPLANE_INVALID',
        'guest memory regions must be all fd-backed or all SharedArrayBuffers, not both',
      );
    }
    const memory =
      buffers.length > 0
        ? this.#dp.wrapGuestMemory(buffers.map((r) => ({ guestAddr: r.guestAddr, buffer: r.buffer })))
        : this.#dp.mapGuestMemory(
            (regions as FdGuestRegion[]).map((r) => ({
              guestAddr: r.guestAddr,
              size: r.size,
              // Rings come as guest-physical addresses: the user address only has to be unique.
              userAddr: r.userAddr ?? r.guestAddr,
              fd: r.fd,
              fdOffset: r.fdOffset ?? 0n,
            })),
          );
    const restart = [...this.#running.values()];
    for (const r of restart) this.#stopRing(r.setup.index, false);
    const old = this.#memory;
    this.#memory = memory;
    this.#regions = regions.map((r) => ({ ...r }));
    old?.close();
    let failed: unknown;
    for (const r of restart) {
      try {
        this.#startRing(r.setup);
      } catch (e) {
        // The new table does not hold this ring: it stays stopped (and forgotten).
        this.#release(r);
        failed ??= e;
      }
    }
    if (failed !== undefined) throw failed;
  }

  /** The driver set virtqueue `index` up: from now on the engine serves it. */
  startQueue(index: number, q: QueueStart): QueueHandle {
    this.#checkOpen();
    this.#checkIndex(index);
    if (!this.hasMemory)
      throw new NetplaneError('NETPLANE_INVALID_STATE', 'setMemory() first: the NIC has no guest memory');
    if (this.#running.has(index))
      throw new NetplaneError('NETPLANE_IN_USE', `virtqueue ${index} is already started; stopQueue() it first`);
    if (typeof q !== 'object' || q === null) throw new TypeError('queue set-up must be an object');
    const base = q.base ?? 0;
    if (!Number.isInteger(base) || base < 0 || base > 0xffff) throw new RangeError('base must be a u16');
    const own: number[] = [];
    let kickFd: number;
    let kickWrite = -1;
    let callFd = -1;
    let callReader: net.Socket | undefined;
    try {
      if (q.kick === 'notify' && this.#passThrough) {
        // A back-end in another process reads an eventfd's 8-byte counter.
        kickFd = kickWrite = native().eventfdCreate();
        own.push(kickFd);
      } else if (q.kick === 'notify') {
        [kickFd, kickWrite] = native().aioPipe();
        own.push(kickFd, kickWrite);
      } else if (Number.isInteger(q.kick) && q.kick >= 0) {
        kickFd = q.kick;
      } else {
        throw new TypeError("kick must be an fd or 'notify'");
      }
      if (typeof q.call === 'function') {
        const [r, w] = native().aioPipe();
        own.push(w);
        callFd = w;
        const cb = q.call;
        callReader = new net.Socket({ fd: r, readable: true, writable: false });
        callReader.unref();
        // One callback per batch of interrupts that arrived together (they coalesce anyway).
        callReader.on('data', () => cb());
        callReader.on('error', () => undefined);
      } else if (q.call !== null && q.call !== undefined) {
        if (!Number.isInteger(q.call) || q.call < 0) throw new TypeError('call must be an fd, a function or null');
        callFd = q.call;
      }
      const setup: VringSetup = {
        index,
        size: q.size,
        descAddr: q.descAddr,
        availAddr: q.availAddr,
        usedAddr: q.usedAddr,
        base,
        kickFd,
        callFd,
      };
      const handle: QueueHandle = {
        index,
        notify: () => {
          if (kickWrite < 0)
            throw new NetplaneError('NETPLANE_INVALID_STATE', `virtqueue ${index} is notified through its kick fd`);
          if (!this.#running.has(index)) return;
          try {
            fs.writeSync(kickWrite, this.#passThrough ? EVENTFD_ONE : NOTIFY_BYTE);
          } catch (e) {
            // A full pipe already holds a pending notification.
            if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
          }
        },
      };
      const r: Running = { setup, kickWrite, callReader, ownFds: own, handle };
      this.#applyFeatures(index);
      this.#startRing(setup);
      this.#running.set(index, r);
      return handle;
    } catch (e) {
      callReader?.destroy();
      for (const fd of own) closeQuietly(fd);
      throw e;
    }
  }

  /**
   * The driver disabled virtqueue `index`: stop at once; the next avail index. A
   * pass-through NIC needs the back-end's answer: use stopQueueAsync() (any NIC takes it).
   */
  stopQueue(index: number): number {
    this.#checkOpen();
    this.#checkIndex(index);
    if (this.#passThrough) {
      throw new NetplaneError(
        'NETPLANE_INVALID_STATE',
        "the vhost-user back-end holds this ring's index: use stopQueueAsync()",
      );
    }
    return this.#stopRing(index, true);
  }

  /** stopQueue for every NIC: the next avail index, from the back-end when passed through. */
  async stopQueueAsync(index: number): Promise<number> {
    this.#checkOpen();
    this.#checkIndex(index);
    const pt = this.#passThrough;
    if (!pt) return this.#stopRing(index, true);
    const r = this.#running.get(index);
    if (!r) return 0;
    this.#release(r);
    return pt.stopRing(index);
  }

  /**
   * Resolves once every change this NIC's calls made has reached its rings: at once for
   * native virtqueues; on a pass-through NIC, once the back-end answered (a device reset's
   * SET_STATUS(0) and GET_VRING_BASEs included), so guest memory is no longer in use.
   */
  settled(): Promise<void> {
    return this.#passThrough?.settled() ?? Promise.resolve();
  }

  /** Every running queue stops (a device reset does this). */
  stopAll(): void {
    if (this.#passThrough) {
      void this.#passThrough.stopAll();
      for (const r of [...this.#running.values()]) this.#release(r);
      return;
    }
    for (const index of [...this.#running.keys()]) this.#stopRing(index, true);
  }

  /** The memory and the running rings, for another consumer of the same rings. */
  setup(): VirtqueueSetup {
    return {
      regions: this.#regions.map((r) => ({ ...r })),
      features: this.#device.driverFeatures,
      queuePairs: this.#handles.length,
      vrings: this.started.map((i) => ({ ...this.#running.get(i)!.setup })),
    };
  }

  /** @internal device reset, or the NIC went away */
  reset(): void {
    this.stopAll();
    this.#featuresSet.clear();
  }

  /** @internal the NIC is unplugged: stop everything, release the memory */
  close(): void {
    if (this.#closed) return;
    try {
      this.reset();
    } catch {
      // the data plane closed first: its rings are gone already
      for (const r of [...this.#running.values()]) this.#release(r);
    }
    this.#memory?.close();
    this.#memory = undefined;
    this.#regions = [];
    this.#closed = true;
  }

  // ---- internals ----------------------------------------------------------------------

  #checkOpen(): void {
    if (this.#closed) throw new NetplaneError('NETPLANE_CLOSED', 'the NIC is closed');
  }

  #checkIndex(index: number): void {
    if (!Number.isInteger(index) || index < 0) throw new RangeError('virtqueue index must be an integer >= 0');
    // Without MQ the control queue is virtqueue 2; with it, 2 * max_queue_pairs.
    const data = 2 * (this.#device.multiqueue ? this.#handles.length : 1);
    if (index >= data) {
      const ctrl = this.#device.multiqueue ? 2 * this.#handles.length : 2;
      throw new NetplaneError(
        'NETPLANE_INVALID',
        index === ctrl
          ? `virtqueue ${index} is the control queue: the hypervisor serves it with the device model's methods`
          : `virtqueue ${index} is not a data queue of this device (0..${data - 1})`,
      );
    }
  }

  /** The first ring of a stopped pair hands the negotiated features to the engine. */
  #applyFeatures(index: number): void {
    if (this.#passThrough) return; // SET_FEATURES goes with the ring
    const pair = index >> 1;
    const h = this.#handles[pair]!;
    if (this.#running.has(pair * 2) || this.#running.has(pair * 2 + 1)) return;
    const f = this.#device.driverFeatures;
    if (this.#featuresSet.get(h) === f) return;
    this.#dp.setVirtioFeatures(h, f);
    this.#featuresSet.set(h, f);
  }

  #startRing(s: VringSetup): void {
    if (this.#passThrough) {
      this.#passThrough.startRing(s);
      return;
    }
    this.#dp.startVring(this.#handles[s.index >> 1]!, {
      ring: s.index % 2 === 0 ? 'rx' : 'tx',
      memory: this.#memory!,
      size: s.size,
      descAddr: s.descAddr,
      availAddr: s.availAddr,
      usedAddr: s.usedAddr,
      addrSpace: 'guest',
      base: s.base,
      kickFd: s.kickFd,
      callFd: s.callFd,
    });
  }

  /** Stop one ring; `release` closes what it owns and forgets it (else it restarts). */
  #stopRing(index: number, release: boolean): number {
    const r = this.#running.get(index);
    if (!r) return 0;
    const base = this.#dp.stopVring(this.#handles[index >> 1]!, index % 2 === 0 ? 'rx' : 'tx') & 0xffff;
    r.setup.base = base;
    if (release) this.#release(r);
    return base;
  }

  #release(r: Running): void {
    this.#running.delete(r.setup.index);
    r.callReader?.destroy();
    for (const fd of r.ownFds) closeQuietly(fd);
  }
}

const NOTIFY_BYTE = new Uint8Array([1]);
const EVENTFD_ONE = new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]);

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // already closed
  }
}
