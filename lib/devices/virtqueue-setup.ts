// VirtqueueSetup: a virtio device's guest memory and the set-up of its running rings, as one
// plain value that any consumer of the rings can take: netplane's native queues (a Topology
// NIC with `queues: 'virtqueues'`, lib/topology/nic-virtqueues.ts), or a vhost-user
// front-end that passes the same memory and rings on to a back-end in another process
// (SET_MEM_TABLE from `regions`, SET_FEATURES from `features`, and per ring SET_VRING_NUM /
// ADDR / BASE / KICK / CALL from `vrings`).
//
// Addresses are guest-physical. A region is either fd-backed (a memfd, as a KVM-based
// hypervisor has its RAM; `userAddr` is where this process mapped it, needed only by a
// consumer that speaks in user addresses, such as vhost-user) or a SharedArrayBuffer the
// hypervisor already uses as guest RAM (in-process consumers only: it has no fd to pass).
// Fds in a setup stay owned by whoever put them there; a consumer duplicates what it keeps.
import { NetplaneError } from '../errors';

/** Guest RAM in a file (a memfd): mapped MAP_SHARED by the consumer. */
export interface FdGuestRegion {
  guestAddr: bigint;
  size: bigint;
  fd: number;
  /** Offset of the region in the file (page-aligned; default 0). */
  fdOffset?: bigint;
  /** This process's mapping of the region, if any (vhost-user's userspace_addr). */
  userAddr?: bigint;
}

/** Guest RAM the hypervisor holds as a SharedArrayBuffer (fixed size, never detached). */
export interface BufferGuestRegion {
  guestAddr: bigint;
  buffer: SharedArrayBuffer;
}

export type GuestRegion = FdGuestRegion | BufferGuestRegion;

/** One running split virtqueue as the driver set it up. */
export interface VringSetup {
  /** Virtqueue index: rx of queue pair i is 2i, tx is 2i + 1. */
  index: number;
  /** Ring size (a power of two, at most 32768). */
  size: number;
  descAddr: bigint;
  availAddr: bigint;
  usedAddr: bigint;
  /** Next avail index the device processes (0 after a reset). */
  base: number;
  /** Read end of the driver's notifications (an eventfd, or a pipe). */
  kickFd: number;
  /** Written once per interrupt (an eventfd, or a pipe); -1: no interrupts. */
  callFd: number;
}

export interface VirtqueueSetup {
  readonly regions: readonly GuestRegion[];
  /** The features the driver negotiated (transport bits included). */
  readonly features: bigint;
  /** Queue pairs the device has (its data virtqueues are 0 .. 2 * queuePairs - 1). */
  readonly queuePairs: number;
  /** The rings running now, by index. */
  readonly vrings: readonly VringSetup[];
}

const U64_END = 1n << 64n;

export function isBufferRegion(r: GuestRegion): r is BufferGuestRegion {
  return (r as BufferGuestRegion).buffer !== undefined;
}

function bad(msg: string): NetplaneError {
  return new NetplaneError('NETPLANE_INVALID', msg);
}

/**
 * The checks every consumer needs before it maps anything: at least one region, sizes,
 * overflow, no overlap in guest-physical space, fds that are integers, buffers that are
 * SharedArrayBuffers of a fixed size. (The engine checks again, against the files too.)
 */
export function checkGuestRegions(regions: readonly GuestRegion[]): void {
  if (!Array.isArray(regions)) throw new TypeError('regions must be an array');
  if (regions.length === 0) throw bad('guest memory needs at least one region');
  const spans: Array<[bigint, bigint]> = [];
  regions.forEach((r, i) => {
    const at = `regions[${i}]`;
    if (typeof r !== 'object' || r === null) throw new TypeError(`${at} must be an object`);
    if (typeof r.guestAddr !== 'bigint' || r.guestAddr < 0n)
      throw new TypeError(`${at}.guestAddr must be a bigint >= 0`);
    let size: bigint;
    if (isBufferRegion(r)) {
      if (!(r.buffer instanceof SharedArrayBuffer))
        throw new TypeError(`${at}.buffer must be a SharedArrayBuffer (guest RAM shared with the engine)`);
      if ((r.buffer as SharedArrayBuffer & { growable?: boolean }).growable === true)
        throw bad(`${at}.buffer is growable; guest memory must have a fixed size`);
      size = BigInt(r.buffer.byteLength);
    } else {
      if (!Number.isInteger(r.fd) || r.fd < 0) throw new TypeError(`${at}.fd must be an open file descriptor`);
      if (typeof r.size !== 'bigint') throw new TypeError(`${at}.size must be a bigint`);
      if (r.fdOffset !== undefined && (typeof r.fdOffset !== 'bigint' || r.fdOffset < 0n))
        throw new TypeError(`${at}.fdOffset must be a bigint >= 0`);
      if (r.userAddr !== undefined && (typeof r.userAddr !== 'bigint' || r.userAddr < 0n))
        throw new TypeError(`${at}.userAddr must be a bigint >= 0`);
      size = r.size;
    }
    if (size === 0n) throw bad(`${at} has size 0`);
    if (r.guestAddr + size > U64_END) throw bad(`${at}: guest address + size overflows`);
    for (const [j, [a, n]] of spans.entries()) {
      if (r.guestAddr < a + n && a < r.guestAddr + size) throw bad(`regions[${j}] and ${at} overlap in guest memory`);
    }
    spans.push([r.guestAddr, size]);
  });
}
