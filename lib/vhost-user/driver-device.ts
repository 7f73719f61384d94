// DriverDevice: the driver side of a vhost-user front-end with no guest (DPDK virtio-user's
// model): one memfd holds every ring and buffer of the device's queue pairs; each pair is a
// native 'virtio-driver' client (native/core/virtio_net/virtio_driver_queue.h) that runs its
// rings on the pair's IOThread. This class lays the memory out, starts the rings for a
// connection (fresh eventfds each time), stops them at once when it ends and keeps each
// ring's used index as the base the next connection resumes from.
//
// Layout, per ring (rx of pair i = ring 2i, tx = 2i + 1), page-aligned parts:
//   descriptor table (16 N) | avail ring (6 + 2 N) | used ring (6 + 8 N) | N buffers
// Guest-physical and front-end addresses are the same (GUEST_BASE + offset), as virtio-user
// sends GPA = VA; the back-end maps the region from the memfd.
import { closeQuietly } from '../control/monitor-fds';
import type { GuestMemory } from '../dataplane/guest-memory';
import type { DriverRingConfig, GuestMemoryRegion } from '../dataplane/native-dataplane';
import { native, type VringName } from '../native';
import type { FrontendDevice, FrontendRegion, FrontendRing } from './frontend';

/** What the device needs of the data plane (NativeDataPlane has it). */
export interface DriverDataPath {
  mapGuestMemory(regions: readonly GuestMemoryRegion[]): GuestMemory;
  setDriverFeatures(handle: number, features: bigint): void;
  startDriverRing(handle: number, cfg: DriverRingConfig): void;
  stopDriverRing(handle: number, ring: VringName): number;
}

export function isDriverDataPath(dp: unknown): dp is DriverDataPath {
  const d = dp as Partial<DriverDataPath> | undefined;
  return typeof d?.startDriverRing === 'function' && typeof d.mapGuestMemory === 'function';
}

export interface DriverDeviceOptions {
  /** Descriptors per ring, a power of two up to 1024 (default 1024: bursts of a polling switch fit). */
  ringSize?: number;
  /** Bytes per buffer, header included (default 2048: a 1514-byte frame and more). */
  bufferSize?: number;
}

const PAGE = 4096n;
/** Where the region sits in the (virtual) guest-physical space. */
export const GUEST_BASE = 0x100000000n;

const align = (v: bigint): bigint => (v + PAGE - 1n) & ~(PAGE - 1n);

interface RingLayout {
  desc: bigint;
  avail: bigint;
  used: bigint;
  buffers: bigint;
}

export class DriverDevice implements FrontendDevice {
  readonly ringSize: number;
  readonly bufferSize: number;
  readonly #dp: DriverDataPath;
  readonly #handles: readonly number[];
  readonly #layout: RingLayout[];
  readonly #size: bigint;
  #fd: number;
  #memory: GuestMemory | undefined;
  #bases: number[];
  #running = false;
  /** Features the rings were laid out for (undefined: never started). */
  #features: bigint | undefined;
  #gone = false;

  constructor(dp: DriverDataPath, handles: readonly number[], name: string, opts: DriverDeviceOptions = {}) {
    const n = opts.ringSize ?? 1024;
    if (!Number.isInteger(n) || n < 1 || n > 1024 || (n & (n - 1)) !== 0)
      throw new RangeError(`ringSize must be a power of 2 up to 1024, got ${n}`);
    const b = opts.bufferSize ?? 2048;
    if (!Number.isInteger(b) || b < 64 || b > 65600) throw new RangeError(`bufferSize must be 64 to 65600, got ${b}`);
    this.ringSize = n;
    this.bufferSize = b;
    this.#dp = dp;
    this.#handles = handles;
    const N = BigInt(n);
    let at = 0n;
    this.#layout = [];
    for (let i = 0; i < handles.length * 2; i++) {
      const desc = at;
      const avail = align(desc + 16n * N);
      const used = align(avail + 6n + 2n * N);
      const buffers = align(used + 6n + 8n * N);
      at = align(buffers + N * BigInt(b));
      this.#layout.push({ desc, avail, used, buffers });
    }
    this.#size = at;
    this.#bases = this.#layout.map(() => 0);
    this.#fd = native().memfdCreate(`netplane-vu-${name}`, at);
    try {
      this.#memory = dp.mapGuestMemory([
        { guestAddr: GUEST_BASE, size: at, userAddr: GUEST_BASE, fd: this.#fd, fdOffset: 0n },
      ]);
    } catch (e) {
      closeQuietly(this.#fd);
      throw e;
    }
  }

  /** Bytes of shared memory. */
  get size(): bigint {
    return this.#size;
  }

  memoryTable(): FrontendRegion[] {
    return [{ guestAddr: GUEST_BASE, size: this.#size, userAddr: GUEST_BASE, mmapOffset: 0n, fd: this.#fd }];
  }

  /** Each ring's base for the next start (its used index when it last stopped). */
  get bases(): readonly number[] {
    return this.#bases;
  }

  start(features: bigint): FrontendRing[] {
    if (this.#gone || this.#memory === undefined) throw new Error('the device is closed');
    this.stop();
    // New features (or the first start): the rings are laid out anew, from base 0.
    const reset = this.#features !== features;
    if (reset) {
      for (const h of this.#handles) this.#dp.setDriverFeatures(h, features);
      this.#bases = this.#layout.map(() => 0);
      this.#features = features;
    }
    const rings: FrontendRing[] = [];
    try {
      this.#layout.forEach((l, i) => {
        const kick = native().eventfdCreate();
        let call: number;
        try {
          call = native().eventfdCreate();
        } catch (e) {
          closeQuietly(kick);
          throw e;
        }
        rings.push({
          index: i,
          size: this.ringSize,
          descAddr: GUEST_BASE + l.desc,
          availAddr: GUEST_BASE + l.avail,
          usedAddr: GUEST_BASE + l.used,
          base: this.#bases[i]!,
          kickFd: kick,
          callFd: call,
        });
        this.#running = true;
        this.#dp.startDriverRing(this.#handles[i >> 1]!, {
          ring: i % 2 === 0 ? 'rx' : 'tx',
          memory: this.#memory!,
          size: this.ringSize,
          descAddr: GUEST_BASE + l.desc,
          availAddr: GUEST_BASE + l.avail,
          usedAddr: GUEST_BASE + l.used,
          buffersAddr: GUEST_BASE + l.buffers,
          bufferSize: this.bufferSize,
          kickFd: kick,
          callFd: call,
          reset,
        });
      });
    } catch (e) {
      for (const r of rings) {
        closeQuietly(r.kickFd);
        closeQuietly(r.callFd);
      }
      this.stop();
      throw e;
    }
    return rings;
  }

  /** Stop every ring at once (the connection is gone); idempotent. */
  stop(): void {
    if (!this.#running || this.#gone) return;
    this.#running = false;
    this.#layout.forEach((_, i) => {
      try {
        this.#bases[i] = this.#dp.stopDriverRing(this.#handles[i >> 1]!, i % 2 === 0 ? 'rx' : 'tx') & 0xffff;
      } catch {
        /* a ring that never started */
      }
    });
  }

  /** Stop, then release the memory (the clients may already be gone: `clientsGone`). */
  close(clientsGone = false): void {
    if (this.#gone) return;
    if (!clientsGone) this.stop();
    this.#gone = true;
    this.#memory?.close();
    this.#memory = undefined;
    closeQuietly(this.#fd);
    this.#fd = -1;
  }
}
