// PassThroughDevice: the driver side of a vhost-user front-end when a hypervisor in this
// process is the virtio driver (a Topology NIC with queues: 'virtqueues' on a -netdev
// vhost-user). netplane carries only control, as QEMU does: the hypervisor's guest memory
// goes to the back-end as the memory table (each region with its fd), each ring it starts
// as SET_VRING_NUM / BASE / ADDR / KICK / CALL (+ ENABLE), each ring it stops as
// GET_VRING_BASE. Frames move between the guest's rings and the back-end with no netplane
// code in between.
//
// The device keeps its own duplicates of every fd it was given, so that each connection
// (reconnect=N, server=on) gets the whole set-up again: the memory table and every running
// ring with its saved base. When a connection ends without a GET_VRING_BASE (the back-end
// died), a ring's base is the used index in guest memory, as QEMU 7.2 does
// (virtio_queue_restore_last_avail_idx): in-flight tx may go out again, rx buffers are
// reused, nothing is skipped.
//
// Features: the guest's negotiated features, limited to the bits a vhost-user back-end
// controls (QEMU 7.2's user_feature_bits), are what SET_FEATURES carries. When a back-end's
// offer is known, the device's own offer to the guest is narrowed to it (QEMU intersects
// them); a back-end that lacks a bit the guest already acked is refused. Packed rings are
// not offered on this path: the base after a back-end died would be the packed ring's used
// index and wrap counter, which no guest memory field holds (QEMU keeps them in its device
// model), and no test guest drives packed rings here.
//
// Queue pairs: a pair the guest does not use (VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET below it) is
// started but left disabled; a change sends SET_VRING_ENABLE for both of its rings, as QEMU's
// peer_attach / peer_detach (vhost_set_vring_enable). Stopping every ring (guest reset,
// unplug) is QEMU's vhost_dev_stop: SET_STATUS(0) before the last pair's GET_VRING_BASEs.
import * as fs from 'node:fs';
import { closeQuietly } from '../control/monitor-fds';
import type { FdGuestRegion, VringSetup } from '../devices/virtqueue-setup';
import type { VirtioNet } from '../devices/virtio-net';
import { bit, VHOST_USER_NET_FEATURES, VirtioF, VirtioStatus } from '../devices/virtio-net-features';
import { NetplaneError } from '../errors';
import { native } from '../native';
import type { FrontendDevice, FrontendRegion, FrontendRing, VhostUserFrontend } from './frontend';

export class PassThroughDevice implements FrontendDevice {
  readonly #device: VirtioNet;
  readonly #report: (e: Error) => void;
  /** The memory table, fds our own duplicates. */
  #regions: FdGuestRegion[] = [];
  /** Running rings by index, fds our own duplicates. */
  readonly #rings = new Map<number, VringSetup>();
  /** The connection whose set-up took our state (rings started later go to it). */
  #frontend: VhostUserFrontend | undefined;
  /** Whether each queue pair is enabled (the guest's queue-pair count; pair 0 always is). */
  readonly #pairEnabled: boolean[] = [true];
  /** The last change sent (settled() waits for it; changes reach the back-end in order). */
  #last: Promise<void> = Promise.resolve();
  #closed = false;

  /** `report` receives what goes wrong on the connection after a call returned. */
  constructor(device: VirtioNet, report: (e: Error) => void) {
    this.#device = device;
    this.#report = report;
    device.limitFeatures(~bit(VirtioF.RING_PACKED));
  }

  /** The guest's negotiated features a back-end is told (SET_FEATURES). */
  get features(): bigint {
    return this.#device.driverFeatures & VHOST_USER_NET_FEATURES & ~bit(VirtioF.RING_PACKED);
  }

  /** Indexes of the running rings. */
  get started(): number[] {
    return [...this.#rings.keys()].sort((a, b) => a - b);
  }

  // ---- the front-end's side (FrontendDevice) ------------------------------------------

  memoryTable(): FrontendRegion[] {
    return this.#regions.map((r) => ({
      guestAddr: r.guestAddr,
      size: r.size,
      // Ring addresses are guest-physical: the user address only has to be unique.
      userAddr: r.userAddr ?? r.guestAddr,
      mmapOffset: r.fdOffset ?? 0n,
      fd: r.fd,
    }));
  }

  start(): FrontendRing[] {
    return this.started.map((i) => this.#ring(this.#rings.get(i)!));
  }

  /**
   * A back-end's offer, before anything is set up: one that lacks a bit the guest acked is
   * refused (throws the reason); otherwise the device offers the guest no more than it.
   */
  checkOffer(offered: bigint): void {
    const acked = (this.#device.status & VirtioStatus.FEATURES_OK) !== 0 ? this.features : 0n;
    const missing = acked & ~offered;
    if (missing !== 0n) {
      throw new NetplaneError(
        'NETPLANE_VHOST_USER',
        `the back-end lacks features 0x${missing.toString(16)} the guest acked (flags mismatch)`,
      );
    }
    this.#device.limitFeatures(~(VHOST_USER_NET_FEATURES & ~offered));
  }

  /** The set-up of `fe` took this device's state: later changes go to it. */
  connected(fe: VhostUserFrontend): void {
    this.#frontend = fe;
  }

  /** The connection of `fe` ended: each running ring resumes from its used index. */
  disconnected(fe: VhostUserFrontend): void {
    if (this.#frontend !== fe) return;
    this.#frontend = undefined;
    for (const r of this.#rings.values()) r.base = this.#usedIndex(r) ?? r.base;
  }

  // ---- the hypervisor's side (through NicVirtqueues) ------------------------------------

  /** A new memory table: sent at once when connected, else with the next set-up. */
  setMemory(regions: readonly FdGuestRegion[]): void {
    this.#checkOpen();
    const own: FdGuestRegion[] = [];
    try {
      for (const r of regions) own.push({ ...r, fd: native().fdDup(r.fd) });
    } catch (e) {
      for (const r of own) closeQuietly(r.fd);
      throw e;
    }
    const old = this.#regions;
    this.#regions = own;
    void this.#forward((fe) => fe.setMemTable(this.memoryTable())).finally(() => {
      for (const r of old) closeQuietly(r.fd);
    });
  }

  /**
   * The guest enabled or disabled queue pair `pair` (the device model's queue-pair count):
   * SET_VRING_ENABLE for both of its rings when it changed and a back-end is connected.
   */
  setPairEnabled(pair: number, on: boolean): void {
    if (this.#closed || (this.#pairEnabled[pair] ?? false) === on) return;
    this.#pairEnabled[pair] = on;
    void this.#forward((fe) => fe.enableRings([2 * pair, 2 * pair + 1], on));
  }

  /** The driver started a ring (`setup`'s fds stay the caller's). */
  startRing(setup: VringSetup): void {
    this.#checkOpen();
    const own: VringSetup = { ...setup, ...dupNotifiers(setup) };
    this.#rings.set(setup.index, own);
    const features = this.features;
    void this.#forward((fe) => fe.startRing(this.#ring(own), features));
  }

  /** The driver stopped a ring: the back-end's next avail index (or the saved base). */
  async stopRing(index: number): Promise<number> {
    const r = this.#rings.get(index);
    if (!r) return 0;
    this.#rings.delete(index);
    const fe = this.#frontend;
    try {
      if (fe?.ready) {
        try {
          r.base = await fe.stopRing(index);
        } catch (e) {
          // The connection failed under us: resume from the guest's used index, as at a close.
          r.base = this.#usedIndex(r) ?? r.base;
          this.#report(e as Error);
        }
      }
      return r.base;
    } finally {
      closeQuietly(r.kickFd);
      closeQuietly(r.callFd);
    }
  }

  /** Resolves once the back-end answered every change made so far (a reset's stop too). */
  settled(): Promise<void> {
    return this.#last;
  }

  /**
   * Stop every ring (a device reset, the NIC unplugged) in QEMU's vhost_dev_stop order
   * (VhostUserFrontend.stopDevice); the bases are forgotten.
   */
  stopAll(): Promise<void> {
    const rings = [...this.#rings.values()];
    this.#rings.clear();
    return this.#track(
      this.#forward((fe) => fe.stopDevice(rings.map((r) => r.index)).then(() => undefined)).finally(() => {
        for (const r of rings) {
          closeQuietly(r.kickFd);
          closeQuietly(r.callFd);
        }
      }),
    );
  }

  /** The NIC went away: stop the rings at the back-end, release the memory's fds. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    return this.stopAll().finally(() => {
      for (const r of this.#regions) closeQuietly(r.fd);
      this.#regions = [];
      this.#frontend = undefined;
    });
  }

  // ---- internals ------------------------------------------------------------------------

  #checkOpen(): void {
    if (this.#closed) throw new NetplaneError('NETPLANE_CLOSED', 'the NIC is closed');
  }

  /** Run one change on the live connection; a failure is reported (the front-end closed it). */
  #forward(op: (fe: VhostUserFrontend) => Promise<void>): Promise<void> {
    const fe = this.#frontend;
    if (!fe?.ready) return Promise.resolve();
    return this.#track(op(fe).catch((e: Error) => this.#report(e)));
  }

  #track(p: Promise<void>): Promise<void> {
    this.#last = p;
    return p;
  }

  /** A ring for one request sequence: fresh duplicates the front-end closes after sending. */
  #ring(r: VringSetup): FrontendRing {
    const { kickFd, callFd } = dupNotifiers(r);
    return {
      index: r.index,
      size: r.size,
      descAddr: r.descAddr,
      availAddr: r.availAddr,
      usedAddr: r.usedAddr,
      base: r.base,
      kickFd,
      callFd,
      enabled: this.#pairEnabled[r.index >> 1] ?? false,
    };
  }

  /** The used ring's idx in guest memory (read through the region's fd), or undefined. */
  #usedIndex(r: VringSetup): number | undefined {
    const at = r.usedAddr + 2n;
    const region = this.#regions.find((m) => at >= m.guestAddr && at + 2n <= m.guestAddr + m.size);
    if (!region) return undefined;
    const b = Buffer.alloc(2);
    try {
      fs.readSync(region.fd, b, 0, 2, Number((region.fdOffset ?? 0n) + at - region.guestAddr));
    } catch {
      return undefined;
    }
    return b.readUInt16LE(0);
  }
}

/** Our own copies of a ring's kick and call fds (call -1 stays -1). */
function dupNotifiers(r: { kickFd: number; callFd: number }): { kickFd: number; callFd: number } {
  const kickFd = native().fdDup(r.kickFd);
  try {
    return { kickFd, callFd: r.callFd >= 0 ? native().fdDup(r.callFd) : -1 };
  } catch (e) {
    closeQuietly(kickFd);
    throw e;
  }
}
