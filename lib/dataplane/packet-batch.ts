// PacketBatch: a reusable window onto a packet port's receive ring, for code that touches
// every frame (a filter, a NAT, a switch) without allocating per frame or copying in
// JavaScript.
//
//   const batch = portA.createBatch();            // once
//   for await (const b of portA.batches(batch)) { // the same object, refilled in place
//     for (let i = 0; i < b.length; i++) {
//       const at = b.offsets[i], len = b.lengths[i];   // frame i is b.data[at .. at + len)
//       if (blocked(b.data, at, len)) b.targets[i] = PacketBatch.DROP;   // else: output 0
//     }
//     if (!b.forward(portB)) await b.forwardAsync(portB);
//   }
//
// `data` is one view of the whole ring; `offsets`/`lengths` say where each frame of this batch
// lies in it (its vnet header first when the port has one). Frames may be edited in place and
// shortened (lower lengths[i]); `targets[i]` is the verdict: an index into the outputs given
// to forward() (0 after every read) or PacketBatch.DROP. forward() moves the passed frames
// natively, in order, from this ring straight into the outputs' send rings (one call per
// batch), counts the dropped ones in the source port's forwardCounts and, as `filtered`, in
// the engine's counters of the source port, and then releases the batch. It validates every
// vnet header first, as send() does: a frame an edit broke is refused (NETPLANE_INVALID_FRAME,
// one `badVnetHdr` drop on its output) before anything moves.
//
// A batch is valid until it is released: by forward() completing, port.release(), the next
// readBatch()/read() on its port, or the port closing. Using a released batch throws
// NETPLANE_STALE_BATCH (its length reads 0); the typed arrays cannot tell, so loop to length.
// A forward that stopped on a full output keeps its place: call forward() again or await
// forwardAsync(). Frames it had not moved when the batch is released count as dropped (in the
// engine: `purged`, on the source port).
import { NetplaneError } from '../errors';
import { VNET_ERRORS, type NativeNetGraph } from '../native';
import type { PacketPort } from './packet-port';

// The descriptor words shared with the binding (native/core/port/batch_forward.h, BatchDescWord).
const D_FROM = 0;
const D_COUNT = 1;
const D_POS = 2;
const D_BYTES = 3;
const D_OUTPUTS = 4;
const D_HDR = 5;
const D_NEXT = 6;
const D_DROPPED = 7;
const D_STOP = 8;
const D_AT = 9;
const D_WHY = 10;
const HEADER_WORDS = 16;
/** The most outputs one forward() call may name. */
export const MAX_BATCH_OUTPUTS = 256;
const ARRAYS_START = HEADER_WORDS + MAX_BATCH_OUTPUTS;

// Why the native move stopped (core::BatchStop).
const STOP_DONE = 0;
const STOP_OUTPUT_FULL = 1;
const STOP_REASONS = [
  '',
  '',
  'target is neither an output index nor PacketBatch.DROP',
  'offset is not a frame of this batch',
  'length out of range',
  'invalid vnet header',
];
const STOP_BAD_VNET_HDR = 5;

export const DEFAULT_BATCH_FRAMES = 512;
export const MAX_BATCH_FRAMES = 65536;

export interface PacketBatchOptions {
  /** The most frames one read takes (1 .. 65536, default 512). */
  maxFrames?: number;
}

/** What a port's batches did with their frames (see PacketPort.forwardCounts). */
export interface ForwardCounts {
  /** Frames forward() moved into an output's send ring. */
  forwarded: number;
  /**
   * Frames with the DROP verdict, and frames a started forward had not moved when released
   * (the engine counts them too, on this port: `filtered` and `purged`).
   */
  dropped: number;
}

/** @internal What a batch needs from its port beyond the public surface. */
export interface BatchHost {
  readonly graph: NativeNetGraph;
  /** The port's receive ring data area. */
  readonly data: Uint8Array;
  /** Throws NETPLANE_CLOSED once the port is closed. */
  check(): void;
  /** Release the port's current batch (this one, when it is live). */
  release(): void;
  count(forwarded: number, dropped: number): void;
  /** An output's handle once it passed the checks (open, same data plane, same header). */
  outputHandle(output: unknown, index: number): number;
  /** Resolves when `output`'s send ring may have room. */
  waitForRoom(output: PacketPort): Promise<void>;
}

/**
 * A reusable batch of a packet port's received frames, refilled in place by
 * port.readBatch()/port.batches(): frame i is data[offsets[i] .. offsets[i] + lengths[i]).
 * Set targets[i] (an output index, or PacketBatch.DROP) and forward() moves the passed frames
 * natively. Made by port.createBatch().
 */
export class PacketBatch {
  /** The verdict that drops a frame (counted in the source port's forwardCounts.dropped). */
  static readonly DROP = -1;

  /** The port whose receive ring this batch reads. */
  readonly port: PacketPort;
  readonly maxFrames: number;
  /** The receive ring's data area: frame i is data[offsets[i] .. offsets[i] + lengths[i]). */
  readonly data: Uint8Array;
  /** Where each frame starts in `data` (entries at and past `length` are left over). */
  readonly offsets: Uint32Array;
  /** Each frame's bytes, vnet header included; lower one to shorten a frame before forward(). */
  readonly lengths: Uint32Array;
  /** Each frame's verdict: an index into forward()'s outputs (0 after a read), or DROP. */
  readonly targets: Int32Array;
  readonly #host: BatchHost;
  readonly #desc: Uint32Array;
  readonly #outputs: Uint32Array;
  #length = 0;
  #live = false;
  #started = false; // a forward() ran on this fill

  /** @internal Made by PacketPort.createBatch(). */
  constructor(port: PacketPort, host: BatchHost, opts: PacketBatchOptions = {}) {
    const max = opts.maxFrames ?? DEFAULT_BATCH_FRAMES;
    if (!Number.isInteger(max) || max < 1 || max > MAX_BATCH_FRAMES) {
      throw new NetplaneError(
        'NETPLANE_INVALID_OPTION',
        `maxFrames must be an integer from 1 to ${MAX_BATCH_FRAMES}, got ${String(max)}`,
      );
    }
    this.port = port;
    this.#host = host;
    this.maxFrames = max;
    this.data = host.data;
    this.#desc = new Uint32Array(ARRAYS_START + 3 * max);
    const buf = this.#desc.buffer;
    const at = (k: number): number => (ARRAYS_START + k * max) * 4;
    this.#outputs = new Uint32Array(buf, HEADER_WORDS * 4, MAX_BATCH_OUTPUTS);
    this.offsets = new Uint32Array(buf, at(0), max);
    this.lengths = new Uint32Array(buf, at(1), max);
    this.targets = new Int32Array(buf, at(2), max);
  }

  /** Frames in this batch (0 once released). */
  get length(): number {
    return this.#length;
  }

  /** False once released (forwarded, port.release(), the port's next read, or closed). */
  get live(): boolean {
    return this.#live;
  }

  /** Frame i as a view (allocates one; valid while the batch is live). */
  frame(i: number): Uint8Array {
    this.#checkLive();
    this.#checkIndex(i);
    return this.data.subarray(this.offsets[i], this.offsets[i] + this.lengths[i]);
  }

  /**
   * Move every frame not marked DROP into `outputs[targets[i]]` (a single port stands for
   * [port]), in order, then release the batch. False when an output's send ring filled up:
   * the frames before that one have moved; call forward() again or await forwardAsync() to
   * move the rest. Throws NETPLANE_INVALID_FRAME, naming the frame, for a target, offset or
   * length out of range or an invalid vnet header (nothing moves), NETPLANE_STALE_BATCH for a released batch and
   * NETPLANE_CLOSED for a closed port.
   */
  forward(outputs: PacketPort | readonly PacketPort[]): boolean {
    this.#checkLive();
    return this.#move(this.#setOutputs(outputs)) < 0;
  }

  /** forward(), waiting for room in the outputs as needed. */
  async forwardAsync(outputs: PacketPort | readonly PacketPort[]): Promise<void> {
    for (;;) {
      this.#checkLive();
      const full = this.#move(this.#setOutputs(outputs));
      if (full < 0) return;
      await this.#host.waitForRoom(Array.isArray(outputs) ? outputs[full] : (outputs as PacketPort));
    }
  }

  /** Give the batch's ring space back now (port.release()). */
  release(): void {
    if (this.#live) this.#host.release();
  }

  /** @internal The port filled offsets/lengths[0..n) from ring position `pos`, spanning `bytes`. */
  _filled(n: number, pos: number, bytes: number): void {
    this.#length = n;
    this.#live = true;
    this.#started = false;
    const d = this.#desc;
    d[D_FROM] = 0;
    d[D_COUNT] = n;
    d[D_POS] = pos;
    d[D_BYTES] = bytes;
    this.targets.fill(0, 0, n);
  }

  /** @internal The port released the batch; returns the frames a started forward left behind. */
  _released(): number {
    const left = this.#started ? this.#length - this.#desc[D_FROM] : 0;
    this.#live = false;
    this.#length = 0;
    return left;
  }

  #checkLive(): void {
    this.#host.check();
    if (!this.#live) {
      throw new NetplaneError(
        'NETPLANE_STALE_BATCH',
        `this batch of port ${this.port.name} was released (forwarded, port.release(), the next read or close); read again with readBatch()`,
      );
    }
  }

  #checkIndex(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.#length) {
      throw new NetplaneError('NETPLANE_INVALID', `frame index ${String(i)} is not in 0..${this.#length - 1}`);
    }
  }

  /** Write the outputs' handles into the descriptor; returns how many. */
  #setOutputs(outputs: PacketPort | readonly PacketPort[]): number {
    if (!Array.isArray(outputs)) {
      this.#outputs[0] = this.#host.outputHandle(outputs, 0);
      return 1;
    }
    const n = outputs.length;
    if (n > MAX_BATCH_OUTPUTS) {
      throw new NetplaneError('NETPLANE_INVALID', `at most ${MAX_BATCH_OUTPUTS} outputs per forward(), got ${n}`);
    }
    for (let k = 0; k < n; k++) this.#outputs[k] = this.#host.outputHandle(outputs[k], k);
    return n;
  }

  /** One native move from the descriptor's `from`; the index of the full output, or -1 when done. */
  #move(nOutputs: number): number {
    const d = this.#desc;
    d[D_OUTPUTS] = nOutputs;
    d[D_HDR] = this.port.vnetHdrLen;
    const from = d[D_FROM];
    this.#host.graph.forwardBatch(this.port.handle, d);
    const stop = d[D_STOP];
    if (stop !== STOP_DONE && stop !== STOP_OUTPUT_FULL) {
      const i = d[D_AT];
      const why = stop === STOP_BAD_VNET_HDR ? ` (${VNET_ERRORS[d[D_WHY]] ?? d[D_WHY]})` : '';
      throw new NetplaneError(
        'NETPLANE_INVALID_FRAME',
        `frame ${i}: ${STOP_REASONS[stop] ?? `stop ${stop}`}${why} (target ${this.targets[i]}, offset ${this.offsets[i]}, length ${this.lengths[i]}); nothing was forwarded`,
      );
    }
    this.#started = true;
    const next = d[D_NEXT];
    const dropped = d[D_DROPPED];
    d[D_FROM] = next;
    this.#host.count(next - from - dropped, dropped);
    if (stop === STOP_DONE) {
      this.#host.release();
      return -1;
    }
    return d[D_AT];
  }
}
