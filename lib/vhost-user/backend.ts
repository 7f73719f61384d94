// VhostUserBackend: netplane serves one virtio-net device to a vhost-user front-end (QEMU's
// `-netdev vhost-user`, DPDK's virtio-user) over one connection.
//
// Theory of operation
// -------------------
// The front-end owns the virtio device as the guest sees it (PCI, config space, link status,
// the control queue); netplane owns its data queues. The protocol is a stream of set-up
// requests on a unix socket (connection.ts frames and checks them against messages.ts); this
// class keeps the device state they build and hands finished pieces to the data path:
//
//  * Negotiation: GET_FEATURES offers the virtio bits the engine and the exported netdev can
//    do (plus bit 30, PROTOCOL_FEATURES); GET_PROTOCOL_FEATURES offers MQ | REPLY_ACK |
//    STATUS. SET_* of a bit never offered is refused. QEMU repeats negotiation once per
//    queue pair: that is legal and idempotent here.
//  * Memory: SET_MEM_TABLE's regions are checked here (count, zero sizes, u64 overflow,
//    overlaps by guest-physical and by front-end virtual address, each region within its
//    file, since a mapping past EOF raises SIGBUS on first touch), then mapped by the data
//    path (which re-checks). Every fd that came with the message is closed once mapped, on
//    errors too. A new table first stops the running rings, then maps, then releases the
//    old mapping, then restarts the rings over the new one.
//  * Rings: each ring (rx of pair i = 2i, tx = 2i+1) accumulates NUM, ADDR, BASE, KICK, CALL,
//    ERR and ENABLE in any order (front-ends differ). A ring starts when it is complete
//    (memory, size, addresses, a kick fd or NOFD), enabled (explicitly, or implicitly when
//    PROTOCOL_FEATURES was not acked), features are set, and, when STATUS was negotiated,
//    the driver set DRIVER_OK. Every change re-evaluates: a running ring whose kick, call,
//    addresses or status change is stopped (its next avail index kept) and started again.
//  * Stop: GET_VRING_BASE stops the ring and answers the next avail index the engine would
//    have consumed; the ring then waits for a new kick fd (QEMU sends one at every start).
//    SET_STATUS without DRIVER_OK stops every ring the same way.
//  * Threading: requests arrive on the JS thread. The engine's startVring/stopVring and
//    mapGuestMemory run synchronously on every affected queue's IOThread, so once a call
//    returns the data path no longer touches what it replaced. Those are the requests the
//    table marks "quiesces queues".
//  * End: close() (the connection went away, or was refused) stops every ring at once,
//    releases the memory and closes every fd this backend holds. The next connection gets a
//    new VhostUserBackend: a clean device.
//
// Without a data path (a topology without the native engine) the same state machine runs
// and reports what it would start; nothing is mapped.
import * as fs from 'node:fs';
import { closeQuietly } from '../control/monitor-fds';
import { bit, VirtioF, VirtioStatus } from '../devices/virtio-net-features';
import type { HandlerResult, VhostUserHandler, VhostUserRequest } from './connection';
import { VhostUserProtocolError, type MemRegion, type VringAddr } from './messages';
import { MAX_QUEUE_SIZE, ProtocolF, VHOST_USER_F_PROTOCOL_FEATURES, VHOST_VRING_F_LOG } from './protocol';

/** What netplane offers in GET_PROTOCOL_FEATURES (not CONFIG: QEMU 7.2 strips it for net). */
export const OFFERED_PROTOCOL_FEATURES = bit(ProtocolF.MQ) | bit(ProtocolF.REPLY_ACK) | bit(ProtocolF.STATUS);

const U64_END = 1n << 64n;
const PROTOCOL_FEATURES_BIT = bit(VHOST_USER_F_PROTOCOL_FEATURES);

/** Guest memory as the data path mapped it. */
export interface GuestMemoryHandle {
  /** Release; the data path unmaps once no queue uses it. */
  close(): void;
}

export interface VringStartSpec {
  ring: 'rx' | 'tx';
  memory: GuestMemoryHandle;
  size: number;
  descAddr: bigint;
  availAddr: bigint;
  usedAddr: bigint;
  /** Ring addresses are front-end virtual addresses (vhost-user), not guest-physical. */
  addrSpace: 'user' | 'guest';
  base: number;
  /** -1: NOFD (the engine polls the ring). The engine duplicates the fds. */
  kickFd: number;
  /** -1: NOFD (no interrupts). */
  callFd: number;
  errFd?: number;
}

/** The data-path calls the back-end makes (NativeDataPlane's, names fixed by the engine). */
export interface VhostUserDataPath {
  mapGuestMemory(
    regions: Array<{ guestAddr: bigint; size: bigint; userAddr: bigint; fd: number; fdOffset: bigint }>,
  ): GuestMemoryHandle;
  setVirtioFeatures(handle: number, features: bigint): void;
  startVring(handle: number, spec: VringStartSpec): void;
  /** Returns the next avail index (GET_VRING_BASE's answer). */
  stopVring(handle: number, ring: 'rx' | 'tx'): number;
}

export interface VhostUserBackendOptions {
  /** Queue pairs served (GET_QUEUE_NUM). */
  queuePairs: number;
  /** Virtio feature bits offered (without bit 30, which is added). */
  features: bigint;
  /** The data path and the client handle of each queue pair; absent: state only. */
  dataPath?: { path: VhostUserDataPath; handles: readonly number[] };
  /** Called with the acked virtio features (bit 30 removed) when SET_FEATURES applies them. */
  onFeatures?: (features: bigint) => void;
  /** Diagnostics (one line each). */
  log?: (line: string) => void;
}

interface Ring {
  readonly index: number;
  size: number | undefined;
  addr: VringAddr | undefined;
  base: number;
  /** undefined: not set; -1: NOFD. */
  kick: number | undefined;
  call: number | undefined;
  err: number | undefined;
  /** undefined: never set (implicitly enabled without PROTOCOL_FEATURES). */
  enabled: boolean | undefined;
  started: boolean;
}

export interface RingInfo {
  index: number;
  size: number | null;
  base: number;
  enabled: boolean;
  started: boolean;
  kick: 'fd' | 'nofd' | 'none';
  call: 'fd' | 'nofd' | 'none';
}

export interface BackendInfo {
  owner: boolean;
  features: bigint | null;
  protocolFeatures: bigint | null;
  status: number;
  memoryRegions: number;
  rings: RingInfo[];
}

interface Memory {
  regions: MemRegion[];
  /** Identity of each region's file (dev:ino) and its offset, to skip an identical remap. */
  keys: string[];
  handle: GuestMemoryHandle | undefined;
}

function fail(message: string): never {
  throw new VhostUserProtocolError(message);
}

/**
 * Kick, call and error fds are eventfds (or pipes/sockets a test front-end uses): a regular
 * file or a directory would poll readable forever and spin the queue's thread.
 */
function checkNotifierFd(what: string, index: number, fd: number): void {
  let st: fs.Stats;
  try {
    st = fs.fstatSync(fd);
  } catch (e) {
    fail(`${what}: ring ${index} fd cannot be examined: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (st.isFile() || st.isDirectory() || st.isBlockDevice()) fail(`${what}: ring ${index} fd is not an eventfd`);
}

function overlaps(a: bigint, asize: bigint, b: bigint, bsize: bigint): boolean {
  return a < b + bsize && b < a + asize;
}

export class VhostUserBackend implements VhostUserHandler {
  readonly ringCount: number;
  readonly #opts: VhostUserBackendOptions;
  readonly #rings: Ring[];
  readonly #offered: bigint;
  #owner = false;
  #features: bigint | undefined;
  #protocolFeatures: bigint | undefined;
  #status = 0;
  #memory: Memory | undefined;
  #closed = false;

  constructor(opts: VhostUserBackendOptions) {
    if (!Number.isInteger(opts.queuePairs) || opts.queuePairs < 1)
      throw new RangeError('queuePairs must be a positive integer');
    if (opts.dataPath && opts.dataPath.handles.length !== opts.queuePairs)
      throw new RangeError('one data-path handle per queue pair');
    this.#opts = opts;
    this.ringCount = opts.queuePairs * 2;
    this.#offered = (opts.features & ~PROTOCOL_FEATURES_BIT) | PROTOCOL_FEATURES_BIT;
    this.#rings = Array.from({ length: this.ringCount }, (_, index) => ({
      index,
      size: undefined,
      addr: undefined,
      base: 0,
      kick: undefined,
      call: undefined,
      err: undefined,
      enabled: undefined,
      started: false,
    }));
  }

  /** The features GET_FEATURES answers. */
  get offeredFeatures(): bigint {
    return this.#offered;
  }

  info(): BackendInfo {
    const fdKind = (fd: number | undefined): 'fd' | 'nofd' | 'none' =>
      fd === undefined ? 'none' : fd < 0 ? 'nofd' : 'fd';
    return {
      owner: this.#owner,
      features: this.#features ?? null,
      protocolFeatures: this.#protocolFeatures ?? null,
      status: this.#status,
      memoryRegions: this.#memory?.regions.length ?? 0,
      rings: this.#rings.map((r) => ({
        index: r.index,
        size: r.size ?? null,
        base: r.base,
        enabled: this.#enabled(r),
        started: r.started,
        kick: fdKind(r.kick),
        call: fdKind(r.call),
      })),
    };
  }

  handle(req: VhostUserRequest): HandlerResult {
    if (this.#closed) fail(`${req.name} after the device was closed`);
    switch (req.name) {
      case 'GET_FEATURES':
        return this.#offered;
      case 'SET_FEATURES':
        return this.#setFeatures(req.value);
      case 'SET_OWNER':
        // QEMU sends it once per connection, after negotiation; a repeat changes nothing.
        this.#owner = true;
        return;
      case 'RESET_OWNER':
        // Deprecated; the spec allows "disable the rings": reset the device, keep the connection.
        this.#reset();
        return;
      case 'SET_MEM_TABLE':
        return this.#setMemTable(
          req.value,
          req.fds.length === req.value.length ? req.value.map(() => req.fds.take()) : [],
        );
      case 'SET_VRING_NUM': {
        const { index, num } = req.value;
        // Packed rings may have any size up to the maximum.
        if (num === 0 || num > MAX_QUEUE_SIZE || (!this.#packed() && (num & (num - 1)) !== 0))
          fail(`SET_VRING_NUM: ring ${index} size ${num} is not a power of 2 from 1 to ${MAX_QUEUE_SIZE}`);
        return this.#change(index, (r) => void (r.size = num));
      }
      case 'SET_VRING_ADDR': {
        const a = req.value;
        if ((a.flags & ~VHOST_VRING_F_LOG) !== 0) fail(`SET_VRING_ADDR: unknown flags 0x${a.flags.toString(16)}`);
        if ((a.flags & VHOST_VRING_F_LOG) !== 0) fail('SET_VRING_ADDR: used-ring logging was not offered');
        if (a.desc % 16n !== 0n || a.avail % 2n !== 0n || a.used % 4n !== 0n)
          fail(`SET_VRING_ADDR: ring ${a.index} addresses are misaligned`);
        return this.#change(a.index, (r) => void (r.addr = a));
      }
      case 'SET_VRING_BASE': {
        const { index, num } = req.value;
        // Split rings: the next avail index, a u16. Packed rings: position | wrap << 15, and QEMU
        // adds the used position | wrap << 15 in the upper half; the engine resumes with used =
        // avail (nothing is in flight across a stop: it completes or rewinds every chain first),
        // as DPDK does, so the upper half is not needed.
        if (this.#packed()) return this.#change(index, (r) => void (r.base = num & 0xffff));
        if (num > 0xffff) fail(`SET_VRING_BASE: ring ${index} base ${num} does not fit a split ring's u16 index`);
        return this.#change(index, (r) => void (r.base = num));
      }
      case 'GET_VRING_BASE':
        return this.#getVringBase(req.value.index);
      case 'SET_VRING_KICK':
      case 'SET_VRING_CALL':
      case 'SET_VRING_ERR': {
        const { index, noFd } = req.value;
        const fd = noFd ? -1 : req.fds.take();
        if (fd >= 0) {
          try {
            checkNotifierFd(req.name, index, fd);
          } catch (e) {
            closeQuietly(fd);
            throw e;
          }
        }
        const key = req.name === 'SET_VRING_KICK' ? 'kick' : req.name === 'SET_VRING_CALL' ? 'call' : 'err';
        return this.#change(index, (r) => {
          const old = r[key];
          r[key] = fd;
          if (old !== undefined && old >= 0) closeQuietly(old);
        });
      }
      case 'GET_PROTOCOL_FEATURES':
        return OFFERED_PROTOCOL_FEATURES;
      case 'SET_PROTOCOL_FEATURES': {
        const extra = req.value & ~OFFERED_PROTOCOL_FEATURES;
        if (extra !== 0n) fail(`SET_PROTOCOL_FEATURES: bits 0x${extra.toString(16)} were not offered`);
        this.#protocolFeatures = req.value;
        return;
      }
      case 'GET_QUEUE_NUM':
        return BigInt(this.#opts.queuePairs);
      case 'SET_VRING_ENABLE': {
        const { index, num } = req.value;
        if (num > 1) fail(`SET_VRING_ENABLE: ring ${index} state ${num} is neither 0 nor 1`);
        this.#opts.log?.(`ring ${index} ${num === 1 ? 'enabled' : 'disabled'}`);
        return this.#change(index, (r) => void (r.enabled = num === 1));
      }
      case 'SET_STATUS': {
        if (!this.#hasProtocol(ProtocolF.STATUS)) fail('SET_STATUS without the STATUS protocol feature');
        if (req.value > 0xffn) fail(`SET_STATUS: 0x${req.value.toString(16)} is not a status byte`);
        this.#status = Number(req.value);
        this.#opts.log?.(`status 0x${this.#status.toString(16)}`);
        this.#reconcile();
        return;
      }
      case 'GET_STATUS':
        if (!this.#hasProtocol(ProtocolF.STATUS)) fail('GET_STATUS without the STATUS protocol feature');
        return BigInt(this.#status);
    }
  }

  /** The connection is gone: stop every ring, release memory, close every fd. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#reset();
    this.#closed = true;
  }

  // ---- state ------------------------------------------------------------------------------

  #hasProtocol(b: number): boolean {
    return this.#protocolFeatures !== undefined && (this.#protocolFeatures & bit(b)) !== 0n;
  }

  #enabled(r: Ring): boolean {
    if (r.enabled !== undefined) return r.enabled;
    // Never enabled explicitly: rings start enabled only when PROTOCOL_FEATURES was not acked.
    return this.#features !== undefined && (this.#features & PROTOCOL_FEATURES_BIT) === 0n;
  }

  #startable(r: Ring): boolean {
    return (
      this.#memory !== undefined &&
      this.#features !== undefined &&
      r.size !== undefined &&
      r.addr !== undefined &&
      r.kick !== undefined &&
      this.#enabled(r) &&
      (!this.#hasProtocol(ProtocolF.STATUS) || (this.#status & VirtioStatus.DRIVER_OK) !== 0)
    );
  }

  /** Apply a change to one ring: a running ring is stopped first, then restarted if it can. */
  #change(index: number, apply: (r: Ring) => void): void {
    const r = this.#rings[index];
    if (r === undefined) fail(`ring index ${index} out of range`);
    this.#stop(r);
    apply(r);
    this.#reconcile();
  }

  #getVringBase(index: number): { index: number; num: number } {
    const r = this.#rings[index];
    if (r === undefined) fail(`ring index ${index} out of range`);
    this.#stop(r);
    // Stopped until the next start sends a kick fd again (DPDK and libvhost-user close both).
    for (const key of ['kick', 'call'] as const) {
      const fd = r[key];
      if (fd !== undefined && fd >= 0) closeQuietly(fd);
      r[key] = undefined;
    }
    this.#opts.log?.(`ring ${index} stopped at base ${r.base}`);
    return { index, num: r.base };
  }

  #stop(r: Ring): void {
    if (!r.started) return;
    r.started = false;
    const dp = this.#opts.dataPath;
    // Split: the next avail index; packed: avail | used << 16 (both position | wrap << 15).
    if (dp) r.base = dp.path.stopVring(dp.handles[r.index >> 1]!, r.index % 2 === 0 ? 'rx' : 'tx') >>> 0;
  }

  #stopAll(): void {
    for (const r of this.#rings) this.#stop(r);
  }

  /** Stop what may no longer run, start what now can. */
  #reconcile(): void {
    for (const r of this.#rings) {
      const can = this.#startable(r);
      if (r.started && !can) this.#stop(r);
      else if (!r.started && can) this.#start(r);
    }
  }

  #start(r: Ring): void {
    const mem = this.#memory!;
    const addr = r.addr!;
    const size = r.size!;
    // Lazily, as DPDK does: the addresses are front-end virtual addresses, each part of the
    // ring must lie inside one region (the engine re-checks).
    const parts: Array<[string, bigint, bigint]> = this.#packed()
      ? [
          ['descriptor ring', addr.desc, 16n * BigInt(size)],
          ['driver event area', addr.avail, 4n],
          ['device event area', addr.used, 4n],
        ]
      : [
          ['descriptor table', addr.desc, 16n * BigInt(size)],
          ['avail ring', addr.avail, 6n + 2n * BigInt(size)],
          ['used ring', addr.used, 6n + 8n * BigInt(size)],
        ];
    for (const [what, at, len] of parts) {
      if (!mem.regions.some((g) => at >= g.userAddr && at + len <= g.userAddr + g.size)) {
        fail(`ring ${r.index}: its ${what} at 0x${at.toString(16)} (+${len}) is outside every memory region`);
      }
    }
    for (let i = 0; i < parts.length; i++) {
      for (let j = i + 1; j < parts.length; j++) {
        const [wa, a, al] = parts[i]!;
        const [wb, b, bl] = parts[j]!;
        if (overlaps(a, al, b, bl)) fail(`ring ${r.index}: its ${wa} overlaps its ${wb}`);
      }
    }
    const dp = this.#opts.dataPath;
    if (dp && mem.handle) {
      const spec: VringStartSpec = {
        ring: r.index % 2 === 0 ? 'rx' : 'tx',
        memory: mem.handle,
        size,
        descAddr: addr.desc,
        availAddr: addr.avail,
        usedAddr: addr.used,
        addrSpace: 'user',
        base: r.base & 0xffff,
        kickFd: r.kick!,
        callFd: r.call ?? -1,
        ...(r.err !== undefined && r.err >= 0 ? { errFd: r.err } : {}),
      };
      dp.path.startVring(dp.handles[r.index >> 1]!, spec);
    }
    r.started = true;
    this.#opts.log?.(`ring ${r.index} started (size ${size}, base ${r.base})`);
  }

  /** VIRTIO_F_RING_PACKED acked: the rings are packed (virtio 1.1 2.8). */
  #packed(): boolean {
    return this.#features !== undefined && (this.#features & bit(VirtioF.RING_PACKED)) !== 0n;
  }

  #setFeatures(value: bigint): void {
    const extra = value & ~this.#offered;
    if (extra !== 0n) fail(`SET_FEATURES: bits 0x${extra.toString(16)} were not offered`);
    if (this.#features === value) return;
    // Features change the header length and offloads of every queue: only on stopped rings.
    if (this.#rings.some((r) => r.started)) fail('SET_FEATURES changes features while rings run');
    this.#features = value;
    const virtio = value & ~PROTOCOL_FEATURES_BIT;
    const dp = this.#opts.dataPath;
    if (dp) for (const h of dp.handles) dp.path.setVirtioFeatures(h, virtio);
    this.#opts.onFeatures?.(virtio);
    this.#reconcile();
  }

  #setMemTable(regions: MemRegion[], fds: number[]): void {
    try {
      if (fds.length !== regions.length) fail(`SET_MEM_TABLE carries ${fds.length} fds for ${regions.length} regions`);
      const keys = this.#checkRegions(regions, fds);
      const cur = this.#memory;
      // An identical table (QEMU resends it at every start): keep the mapping (DPDK does too).
      if (cur && cur.keys.length === keys.length && cur.keys.every((k, i) => k === keys[i])) return;
      // Quiesce: no ring touches the old mapping once stopVring returned.
      const running = this.#rings.filter((r) => r.started);
      this.#stopAll();
      const dp = this.#opts.dataPath;
      const handle = dp
        ? dp.path.mapGuestMemory(
            regions.map((g, i) => ({
              guestAddr: g.guestAddr,
              size: g.size,
              userAddr: g.userAddr,
              fd: fds[i]!,
              fdOffset: g.mmapOffset,
            })),
          )
        : undefined;
      cur?.handle?.close();
      this.#memory = { regions, keys, handle };
      this.#opts.log?.(
        `memory table: ${regions.length} region(s)${running.length ? `, ${running.length} ring(s) restarted` : ''}`,
      );
      this.#reconcile();
    } finally {
      // The data path holds its own duplicates: ours go, on success and on every error.
      for (const fd of fds) closeQuietly(fd);
    }
  }

  /** The checks of reference note 3.2 items 14-16; returns each region's identity. */
  #checkRegions(regions: MemRegion[], fds: number[]): string[] {
    const keys: string[] = [];
    regions.forEach((g, i) => {
      const n = `region ${i}`;
      if (g.size === 0n) fail(`SET_MEM_TABLE: ${n} has size 0`);
      if (g.guestAddr + g.size > U64_END) fail(`SET_MEM_TABLE: ${n} guest address + size overflows`);
      if (g.userAddr + g.size > U64_END) fail(`SET_MEM_TABLE: ${n} user address + size overflows`);
      if (g.mmapOffset + g.size > U64_END) fail(`SET_MEM_TABLE: ${n} mmap offset + size overflows`);
      let st: fs.BigIntStats;
      try {
        st = fs.fstatSync(fds[i]!, { bigint: true });
      } catch (e) {
        fail(`SET_MEM_TABLE: ${n} fd cannot be examined: ${e instanceof Error ? e.message : String(e)}`);
      }
      if (!st.isFile()) fail(`SET_MEM_TABLE: ${n} fd is not a memory file`);
      // A mapping past the end of its file raises SIGBUS on first touch instead of failing.
      if (g.mmapOffset + g.size > st.size) {
        fail(
          `SET_MEM_TABLE: ${n} ends at file offset ${g.mmapOffset + g.size}, past the end of its ${st.size}-byte file`,
        );
      }
      for (let j = 0; j < i; j++) {
        const h = regions[j]!;
        if (overlaps(g.guestAddr, g.size, h.guestAddr, h.size))
          fail(`SET_MEM_TABLE: regions ${j} and ${i} overlap in guest-physical addresses`);
        if (overlaps(g.userAddr, g.size, h.userAddr, h.size))
          fail(`SET_MEM_TABLE: regions ${j} and ${i} overlap in front-end addresses`);
      }
      keys.push(`${st.dev}:${st.ino}:${g.guestAddr}:${g.size}:${g.userAddr}:${g.mmapOffset}`);
    });
    return keys;
  }

  #reset(): void {
    this.#stopAll();
    for (const r of this.#rings) {
      for (const key of ['kick', 'call', 'err'] as const) {
        const fd = r[key];
        if (fd !== undefined && fd >= 0) closeQuietly(fd);
        r[key] = undefined;
      }
      Object.assign(r, { size: undefined, addr: undefined, base: 0, enabled: undefined, started: false });
    }
    this.#memory?.handle?.close();
    this.#memory = undefined;
    this.#features = undefined;
    this.#status = 0;
  }
}
