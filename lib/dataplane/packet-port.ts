// PacketPort: the NIC side of the data plane for JavaScript (a TypeScript hypervisor's
// virtio-net queue, a capture, a test). Frames move in batches through two rings in
// SharedArrayBuffers that the native engine reads and writes directly (native/core/port/spsc_ring.h
// has the layout), so there is no JavaScript call per frame:
//
//   receive: `for await (const batch of port)` or `port.onFrames(batch => ...)`. A batch is
//            an array of Uint8Array VIEWS into the ring. They stay valid until the next read
//            (the iterator's next step, or the callback's return); copy (`f.slice()`) to keep
//            one. Each view starts with the vnet header when vnetHdrLen > 0.
//            Partial receive, for a hypervisor with few rx buffers: `port.read(k)` takes at
//            most k frames and leaves the rest in the ring, in order, for the next read();
//            `port.onReadable(cb)` only says that frames arrived (once per batch published
//            after the last read()), and the hypervisor reads as many as the guest has
//            buffers for, now or when the guest posts more; `port.release()` returns the
//            views' ring space once copied (a read inside the onReadable callback is released
//            when it returns). Frames it does not take push back on the sender (or, with
//            whenFull: 'drop', are dropped and counted).
//   batches: `port.createBatch()` + `port.readBatch(batch)` or `for await (const b of
//            port.batches(batch))`: the zero-allocation form for code that touches every
//            frame. One reusable PacketBatch holds offsets and lengths into one view of the
//            ring, refilled in place; a verdict per frame (an output or DROP) and
//            `batch.forward(outputs)` move the passed frames natively into other ports' send
//            rings, counting the dropped ones (`port.forwardCounts`). See packet-batch.ts.
//   link:    `port.linkUp` and `port.onLinkChange((up, cause) => ...)`: false while the port
//            or its peer is link-down (set_link), after the peer's TAP died, or once the peer
//            was removed; the same changes a Topology NIC reports as 'link-change'.
//   send:    `port.send(frames)` writes the whole batch or nothing and returns false when the
//            ring has no room; `await port.sendAsync(frames)` waits for room as needed.
//            Every frame is validated before the engine sees it: its length (vnet header +
//            14..65535 bytes) and, with a vnet header, the header against the frame. A bad
//            frame throws a RangeError naming its index and the reason; nothing of that
//            batch is sent and the bad frame is counted as dropped.
//
// Wake-ups: the engine wakes JavaScript at most once per batch (a flag in the ring that the
// reader clears before it reads), and JavaScript kicks the engine at most once per batch
// the same way. A full receive ring pushes back (the sending TAP stops reading) unless the
// port was created with whenFull: 'drop', which drops and counts (queueFull) instead.
import { NetplaneError } from '../errors';
import type { NativeNetGraph } from '../native';
import { PacketBatch, type BatchHost, type ForwardCounts, type PacketBatchOptions } from './packet-batch';

// Ring header words (u32 index = byte offset / 4); see native/core/port/spsc_ring.h.
const HDR_BYTES = 256;
const W_MAGIC = 0;
const W_HEAD = 16;
const W_TAIL = 32;
const W_WAKE = 48;
const W_BLOCKED = 49;
const RING_MAGIC = 0x3152504e;
const WRAP = 0xffffffff;
const MIN_FRAME = 14;
const MAX_FRAME = 65535;

export const DEFAULT_RING_BYTES = 2 * 1024 * 1024;
export const MIN_RING_BYTES = 256 * 1024;

export type PortVnetHdrLen = 0 | 10 | 12 | 20;

/** Why a port's link changed. */
export type PortLinkCause = 'set-link' | 'peer-link' | 'tap-dead' | 'peer-removed' | 'connected';

export interface PacketPortOptions {
  /** Data bytes per ring (a power of two, 256 KiB .. 1 GiB); default 2 MiB. */
  ringBytes?: number;
  /** What a full receive ring does: push back on the sender (default) or drop and count. */
  whenFull?: 'backpressure' | 'drop';
  /** vnet header bytes in front of every frame, both directions (default 0 = none). */
  vnetHdrLen?: PortVnetHdrLen;
}

/** Validated options plus the ring memory, for the data plane that registers the port. */
export interface PortSetup {
  rx: Uint8Array;
  tx: Uint8Array;
  dropWhenFull: boolean;
  vnetHdrLen: PortVnetHdrLen;
}

export function preparePort(opts: PacketPortOptions = {}): PortSetup {
  const ringBytes = opts.ringBytes ?? DEFAULT_RING_BYTES;
  if (
    !Number.isInteger(ringBytes) ||
    ringBytes < MIN_RING_BYTES ||
    ringBytes > 2 ** 30 ||
    (ringBytes & (ringBytes - 1)) !== 0
  ) {
    throw new RangeError(`ringBytes must be a power of two between ${MIN_RING_BYTES} and ${2 ** 30}, got ${ringBytes}`);
  }
  const whenFull = opts.whenFull ?? 'backpressure';
  if (whenFull !== 'backpressure' && whenFull !== 'drop') {
    throw new RangeError(`whenFull must be 'backpressure' or 'drop', got ${String(whenFull)}`);
  }
  const hdr = opts.vnetHdrLen ?? 0;
  checkHdrLen(hdr);
  return {
    rx: new Uint8Array(new SharedArrayBuffer(HDR_BYTES + ringBytes)),
    tx: new Uint8Array(new SharedArrayBuffer(HDR_BYTES + ringBytes)),
    dropWhenFull: whenFull === 'drop',
    vnetHdrLen: hdr,
  };
}

function checkHdrLen(len: number): asserts len is PortVnetHdrLen {
  if (len !== 0 && len !== 10 && len !== 12 && len !== 20) {
    throw new RangeError(`vnetHdrLen must be 0, 10, 12 or 20, got ${String(len)}`);
  }
}

const align8 = (n: number): number => (n + 7) & ~7;

/**
 * send()'s refusal of a frame: a RangeError (as it always was) that carries the code
 * PacketBatch.forward() throws for the same frame, NETPLANE_INVALID_FRAME.
 */
function invalidFrame(message: string): RangeError & { code: 'NETPLANE_INVALID_FRAME' } {
  return Object.assign(new RangeError(message), { code: 'NETPLANE_INVALID_FRAME' as const });
}

/** One ring as JavaScript sees it. Positions are free-running u32 byte counters. */
class Ring {
  readonly words: Uint32Array;
  readonly bytes: Uint8Array;
  readonly dataWords: Uint32Array;
  readonly cap: number;

  constructor(mem: Uint8Array) {
    this.words = new Uint32Array(mem.buffer, mem.byteOffset, HDR_BYTES / 4);
    if (this.words[W_MAGIC] !== RING_MAGIC) throw new Error('ring memory was not initialised by the engine');
    this.cap = mem.byteLength - HDR_BYTES;
    this.bytes = new Uint8Array(mem.buffer, mem.byteOffset + HDR_BYTES, this.cap);
    this.dataWords = new Uint32Array(mem.buffer, mem.byteOffset + HDR_BYTES, this.cap / 4);
  }
  head(): number {
    return Atomics.load(this.words, W_HEAD);
  }
  tail(): number {
    return Atomics.load(this.words, W_TAIL);
  }
}

type Waiter = (r: IteratorResult<Uint8Array[]>) => void;

export class PacketPort implements AsyncIterable<Uint8Array[]> {
  readonly handle: number;
  readonly name: string;
  #graph: NativeNetGraph;
  #rx: Ring;
  #tx: Ring;
  #hdr: PortVnetHdrLen;
  #closed = false;
  #release: number | undefined; // rx tail to publish when the current batch is done
  #waiter: Waiter | undefined;
  #callback: ((batch: Uint8Array[]) => void) | undefined;
  #roomWaiters: Array<() => void> = [];
  #delivering = false;
  #readable: (() => void) | undefined;
  #linkUp = true;
  #batch: PacketBatch | undefined; // the batch the pending release belongs to, if any
  #host: BatchHost | undefined;
  #forwarded = 0;
  #dropped = 0;
  readonly #linkListeners = new Set<(up: boolean, cause: PortLinkCause) => void>();

  /** @internal Created by NativeDataPlane once the engine initialised the rings. */
  constructor(graph: NativeNetGraph, handle: number, name: string, setup: PortSetup) {
    this.#graph = graph;
    this.handle = handle;
    this.name = name;
    this.#rx = new Ring(setup.rx);
    this.#tx = new Ring(setup.tx);
    this.#hdr = setup.vnetHdrLen;
  }

  get vnetHdrLen(): PortVnetHdrLen {
    return this.#hdr;
  }
  get closed(): boolean {
    return this.#closed;
  }

  /** @internal The data plane changed the negotiated header length (setVnetHdrLen). */
  _setVnetHdrLen(len: PortVnetHdrLen): void {
    this.#hdr = len;
  }

  // ---- receive ------------------------------------------------------------------------

  /**
   * Take the frames the engine has published, at most `max` of them (default: all),
   * releasing the previous batch first. Frames beyond `max` stay in the ring, in order, for
   * the next read(). The views are valid until the next read(). Returns [] when there is
   * nothing (or max is 0).
   */
  read(max = Infinity): Uint8Array[] {
    this.#check();
    if (max !== Infinity && (!Number.isInteger(max) || max < 0)) {
      throw new RangeError(`max must be a non-negative integer, got ${String(max)}`);
    }
    this.#releaseBatch();
    const ring = this.#rx;
    Atomics.store(ring.words, W_WAKE, 0); // from here on a new frame wakes us again
    const head = ring.head();
    let t = ring.tail();
    const out: Uint8Array[] = [];
    const mask = ring.cap - 1;
    while (t !== head && out.length < max) {
      const off = t & mask;
      const len = ring.dataWords[off >>> 2];
      if (len === WRAP) {
        t = (t + ring.cap - off) >>> 0;
        continue;
      }
      out.push(ring.bytes.subarray(off + 8, off + 8 + len));
      t = (t + 8 + align8(len)) >>> 0;
    }
    if (out.length > 0) this.#release = t;
    return out;
  }

  /**
   * Done with the views the last read() returned: their ring space goes back to the engine
   * now rather than at the next read(). A reader that holds a full ring's batch without
   * releasing it stops the engine's deliveries (it waits for room) until it reads again.
   */
  release(): void {
    if (!this.#closed) this.#releaseBatch();
  }

  /**
   * A reusable batch for readBatch()/batches(): offsets and lengths of up to maxFrames frames
   * into one view of this port's receive ring, and a verdict per frame for forward().
   */
  createBatch(opts?: PacketBatchOptions): PacketBatch {
    this.#check();
    return new PacketBatch(this, (this.#host ??= this.#batchHost()), opts);
  }

  /**
   * Refill `batch` in place with the frames the engine has published, at most `max` (default
   * batch.maxFrames), releasing the previous batch or read() first; frames beyond stay in
   * the ring, in order. Returns how many (0: none waited). Allocates nothing.
   */
  readBatch(batch: PacketBatch, max?: number): number {
    this.#check();
    if (!(batch instanceof PacketBatch) || batch.port !== this) {
      throw new NetplaneError('NETPLANE_INVALID', `readBatch needs a batch made by ${this.name}.createBatch()`);
    }
    const limit = max ?? batch.maxFrames;
    if (!Number.isInteger(limit) || limit < 0 || limit > batch.maxFrames) {
      throw new NetplaneError(
        'NETPLANE_INVALID',
        `max must be an integer from 0 to ${batch.maxFrames}, got ${String(max)}`,
      );
    }
    this.#releaseBatch();
    const ring = this.#rx;
    Atomics.store(ring.words, W_WAKE, 0); // from here on a new frame wakes us again
    const head = ring.head();
    const start = ring.tail();
    const mask = ring.cap - 1;
    const words = ring.dataWords;
    const { offsets, lengths } = batch;
    let t = start;
    let n = 0;
    while (t !== head && n < limit) {
      const off = t & mask;
      const len = words[off >>> 2];
      if (len === WRAP) {
        t = (t + ring.cap - off) >>> 0;
        continue;
      }
      offsets[n] = off + 8;
      lengths[n] = len;
      n++;
      t = (t + 8 + align8(len)) >>> 0;
    }
    if (n > 0) {
      this.#release = t;
      this.#batch = batch;
      batch._filled(n, start, (t - start) >>> 0);
    }
    return n;
  }

  /**
   * The batches this port receives, as they arrive: the same `batch` object (default: a new
   * one) refilled in place for every step; a step releases the previous one.
   */
  async *batches(batch: PacketBatch = this.createBatch()): AsyncGenerator<PacketBatch, void, undefined> {
    this.#claimIterator();
    try {
      while (!this.#closed) {
        if (this.readBatch(batch) > 0) yield batch;
        else if (!(await this.#nextWake())) return;
      }
    } finally {
      this.#waiter = undefined;
      if (!this.#closed) this.#releaseBatch();
    }
  }

  /** What this port's batches did: frames forwarded to outputs and frames dropped. */
  get forwardCounts(): ForwardCounts {
    return { forwarded: this.#forwarded, dropped: this.#dropped };
  }

  /** Whether frames wait in the ring beyond the batch the last read() returned. */
  get readable(): boolean {
    if (this.#closed) return false;
    const t = this.#release ?? this.#rx.tail();
    return t !== this.#rx.head();
  }

  /**
   * Be told (no frames handed over) when frames arrive: once per batch the engine
   * publishes after the last read() (and once at the start if frames wait already). Frames
   * a read(k) left behind do not fire it again: read again when the guest has buffers.
   * Returns a function that stops it.
   */
  onReadable(cb: () => void): () => void {
    this.#check();
    if (this.#callback || this.#waiter || this.#readable)
      throw new NetplaneError('NETPLANE_IN_USE', `port ${this.name} already has a reader`);
    this.#readable = cb;
    // From here on the engine's next batch wakes us; frames already there are told at once.
    Atomics.store(this.#rx.words, W_WAKE, 0);
    queueMicrotask(() => {
      if (this.#readable === cb && this.readable) cb();
    });
    return () => {
      if (this.#readable === cb) this.#readable = undefined;
    };
  }

  // ---- link ---------------------------------------------------------------------------

  /** False while the port or its peer is link-down, its peer's TAP died or its peer went. */
  get linkUp(): boolean {
    return this.#linkUp;
  }

  /** Called on every change of linkUp; returns a function that unsubscribes. */
  onLinkChange(listener: (up: boolean, cause: PortLinkCause) => void): () => void {
    this.#linkListeners.add(listener);
    return () => void this.#linkListeners.delete(listener);
  }

  /** @internal The data plane recomputed the link. */
  _setLink(up: boolean, cause: PortLinkCause): void {
    if (this.#closed || up === this.#linkUp) return;
    this.#linkUp = up;
    for (const l of [...this.#linkListeners]) l(up, cause);
  }

  /** Deliver every batch to cb as it arrives; returns a function that stops it. */
  onFrames(cb: (batch: Uint8Array[]) => void): () => void {
    this.#check();
    if (this.#callback || this.#waiter || this.#readable)
      throw new NetplaneError('NETPLANE_IN_USE', `port ${this.name} already has a reader`);
    this.#callback = cb;
    queueMicrotask(() => this._onRx());
    return () => {
      if (this.#callback === cb) this.#callback = undefined;
    };
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array[]> {
    this.#claimIterator();
    try {
      while (!this.#closed) {
        const batch = this.read();
        if (batch.length > 0) yield batch;
        else if (!(await this.#nextWake())) return;
      }
    } finally {
      this.#waiter = undefined;
      if (!this.#closed) this.#releaseBatch();
    }
  }

  #claimIterator(): void {
    if (this.#callback || this.#readable || this.#waiter)
      throw new NetplaneError('NETPLANE_IN_USE', `port ${this.name} already has a reader`);
  }

  /** Wait for the engine's next wake-up; false when the port closed meanwhile. */
  async #nextWake(): Promise<boolean> {
    const r = await new Promise<IteratorResult<Uint8Array[]>>((resolve) => {
      this.#waiter = resolve;
    });
    return !r.done;
  }

  /** @internal The engine published frames (at most one call per batch). */
  _onRx(): void {
    if (this.#closed) return;
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = undefined;
      w({ value: [], done: false });
      return;
    }
    if (this.#readable) {
      try {
        this.#readable();
      } finally {
        // Views a read() inside the callback handed out end with it, as with onFrames.
        if (!this.#closed) this.#releaseBatch();
      }
      return;
    }
    if (!this.#callback || this.#delivering) return;
    this.#delivering = true;
    try {
      // A bounded number of batches per wake-up, then yield to the event loop.
      for (let i = 0; i < 64; i++) {
        const cb = this.#reader();
        if (!cb) return;
        const batch = this.read();
        if (batch.length === 0) return;
        cb(batch);
      }
      setImmediate(() => this._onRx());
    } finally {
      this.#delivering = false;
      if (!this.#closed) this.#releaseBatch();
    }
  }

  // The callback reader, re-read each time (the callback may unsubscribe or close the port).
  #reader(): ((batch: Uint8Array[]) => void) | undefined {
    return this.#closed ? undefined : this.#callback;
  }

  #releaseBatch(): void {
    if (this.#release === undefined) return;
    this.#retireBatch();
    const ring = this.#rx;
    Atomics.store(ring.words, W_TAIL, this.#release);
    this.#release = undefined;
    // The engine found the ring full and waits for room: tell it once.
    if (Atomics.exchange(ring.words, W_BLOCKED, 0) !== 0) this.#graph.kick(this.handle, false);
  }

  // ---- send ---------------------------------------------------------------------------

  /**
   * Queue every frame for the engine, or none: false when the ring lacks room for the whole
   * batch (wait with sendAsync, or retry). Throws RangeError (code NETPLANE_INVALID_FRAME) for an invalid frame.
   */
  send(frames: readonly Uint8Array[]): boolean {
    this.#check();
    this.#validateLengths(frames, 0);
    const total = this.#bytesFor(frames, 0, frames.length);
    if (total > this.#tx.cap) {
      throw new RangeError(
        `batch needs ${total} bytes of ring space but the ring holds ${this.#tx.cap}; use sendAsync or smaller batches`,
      );
    }
    return this.#write(frames, 0, frames.length) === frames.length;
  }

  /** Queue every frame, waiting for ring room as needed. Throws RangeError (code NETPLANE_INVALID_FRAME) for an invalid frame. */
  async sendAsync(frames: readonly Uint8Array[]): Promise<void> {
    this.#check();
    this.#validateLengths(frames, 0);
    let i = 0;
    while (i < frames.length) {
      // The longest prefix that fits right now (one pass: record sizes and wrap waste).
      const n = this.#fitting(frames, i, this.#room());
      if (n > 0 && this.#write(frames, i, n) === n) {
        i += n;
        continue;
      }
      await this.#waitForRoom();
      this.#check();
    }
  }

  /** @internal The engine consumed tx frames after we found the ring full. */
  _onTxRoom(): void {
    const waiters = this.#roomWaiters;
    this.#roomWaiters = [];
    for (const w of waiters) w();
  }

  /**
   * The current PacketBatch is over; frames a started forward() left behind count as dropped,
   * here and (unless the port is gone) as `purged` in the engine's counters of this port.
   */
  #retireBatch(): void {
    if (!this.#batch) return;
    const left = this.#batch._released();
    this.#batch = undefined;
    this.#dropped += left;
    if (left > 0 && !this.#closed) this.#graph.countRejected(this.handle, 'purged', left);
  }

  /** What a PacketBatch of this port reaches through (packet-batch.ts, BatchHost). */
  #batchHost(): BatchHost {
    return {
      graph: this.#graph,
      data: this.#rx.bytes,
      check: () => this.#check(),
      release: () => this.#releaseBatch(),
      count: (forwarded, dropped) => {
        this.#forwarded += forwarded;
        this.#dropped += dropped;
      },
      outputHandle: (output, k) => this.#outputHandle(output, k),
      waitForRoom: (output) => output.#waitForRoom(),
    };
  }

  #outputHandle(output: unknown, k: number): number {
    if (!(output instanceof PacketPort)) {
      throw new NetplaneError('NETPLANE_INVALID', `output ${k} is not a PacketPort`);
    }
    if (output.#graph !== this.#graph) {
      throw new NetplaneError('NETPLANE_INVALID', `output ${k} (${output.name}) belongs to another data plane`);
    }
    output.#check();
    if (output.#hdr !== this.#hdr) {
      throw new NetplaneError(
        'NETPLANE_INVALID',
        `output ${k} (${output.name}) has a ${output.#hdr}-byte vnet header, ${this.name} ${this.#hdr}: frames would not fit it`,
      );
    }
    return output.handle;
  }

  #waitForRoom(): Promise<void> {
    return new Promise((resolve) => {
      this.#roomWaiters.push(resolve);
      // Ask for a wake-up, then look again: if the engine already drained everything it
      // will not consume (and so not wake us) again.
      Atomics.store(this.#tx.words, W_BLOCKED, 1);
      if (this.#tx.head() === this.#tx.tail()) this._onTxRoom();
    });
  }

  #validateLengths(frames: readonly Uint8Array[], from: number): void {
    if (!Array.isArray(frames)) throw new TypeError('frames must be an array of Uint8Array');
    const hdr = this.#hdr;
    for (let i = from; i < frames.length; i++) {
      const f = frames[i];
      if (!(f instanceof Uint8Array)) throw new TypeError(`frame ${i} must be a Buffer or Uint8Array`);
      const eth = f.length - hdr;
      if (eth < MIN_FRAME) {
        this.#graph.countRejected(this.handle, 'badVnetHdr', 1);
        throw invalidFrame(
          `frame ${i}: ${f.length} bytes is too short (${hdr ? `${hdr}-byte vnet header + ` : ''}at least ${MIN_FRAME} bytes of ethernet frame)`,
        );
      }
      if (eth > MAX_FRAME) {
        this.#graph.countRejected(this.handle, 'oversize', 1);
        throw invalidFrame(`frame ${i}: ${eth}-byte ethernet frame is larger than ${MAX_FRAME} bytes`);
      }
    }
  }

  /** Ring bytes (records and wrap waste) frames[from..from+n) take starting at the head. */
  #bytesFor(frames: readonly Uint8Array[], from: number, n: number): number {
    const cap = this.#tx.cap;
    let h = this.#tx.head();
    const start = h;
    for (let i = from; i < from + n; i++) {
      const rec = 8 + align8(frames[i].length);
      const off = h & (cap - 1);
      if (cap - off < rec) h += cap - off;
      h += rec;
    }
    return h - start;
  }

  /** How many of frames[from..] fit, in order, into `room` bytes starting at the head. */
  #fitting(frames: readonly Uint8Array[], from: number, room: number): number {
    const cap = this.#tx.cap;
    let h = this.#tx.head();
    const start = h;
    let n = 0;
    for (let i = from; i < frames.length; i++, n++) {
      const rec = 8 + align8(frames[i]!.length);
      const off = h & (cap - 1);
      const next = h + (cap - off < rec ? cap - off : 0) + rec;
      if (next - start > room) break;
      h = next;
    }
    return n;
  }

  #room(): number {
    const ring = this.#tx;
    return ring.cap - ((ring.head() - ring.tail()) >>> 0);
  }

  /** Write frames[from..from+n) if they all fit; returns n, or 0 when they do not. */
  #write(frames: readonly Uint8Array[], from: number, n: number): number {
    const ring = this.#tx;
    const need = this.#bytesFor(frames, from, n);
    if (need > this.#room()) {
      Atomics.store(ring.words, W_BLOCKED, 1);
      if (need > this.#room()) return 0;
    }
    const cap = ring.cap;
    const mask = cap - 1;
    const start = ring.head();
    let h = start;
    for (let i = from; i < from + n; i++) {
      const f = frames[i];
      const rec = 8 + align8(f.length);
      let off = h & mask;
      if (cap - off < rec) {
        ring.dataWords[off >>> 2] = WRAP;
        h = (h + cap - off) >>> 0;
        off = 0;
      }
      ring.dataWords[off >>> 2] = f.length;
      ring.dataWords[(off >>> 2) + 1] = 0;
      ring.bytes.set(f, off + 8);
      h = (h + rec) >>> 0;
    }
    if (this.#hdr > 0) {
      // One native call checks every header of the batch before it is published.
      const bad = this.#graph.validateTx(this.handle, start, n, this.#hdr);
      if (bad !== -1) {
        throw invalidFrame(`frame ${from + bad[0]}: invalid vnet header (${bad[1]})`);
      }
    }
    Atomics.store(ring.words, W_HEAD, h);
    if (Atomics.exchange(ring.words, W_WAKE, 1) === 0) this.#graph.kick(this.handle, true);
    return n;
  }

  // ---- lifecycle ----------------------------------------------------------------------

  /** @internal Called by the data plane when the port is removed or the plane closes. */
  _closed(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#retireBatch();
    this.#callback = undefined;
    this.#readable = undefined;
    this.#linkListeners.clear();
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.({ value: undefined, done: true });
    this._onTxRoom();
  }

  #check(): void {
    if (this.#closed) throw new NetplaneError('NETPLANE_CLOSED', `packet port ${this.name} is closed`);
  }
}
