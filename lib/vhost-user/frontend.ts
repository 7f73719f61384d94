// VhostUserFrontend: netplane drives a vhost-user back-end (DPDK's vhost PMD, OVS-DPDK, VPP,
// netplane's own -export) over one connected unix socket: QEMU's `-netdev vhost-user` with
// no guest, as DPDK's virtio-user.
//
// Theory of operation
// -------------------
// One instance per connection. setUp() sends the whole device start and resolves once the
// back-end has taken it; the driver side (the rings in netplane's shared memory, run by the
// native VirtioDriverQueue, lib/vhost-user/driver-device.ts) or a hypervisor's guest memory
// and rings passed through (lib/vhost-user/passthrough-device.ts) is a FrontendDevice the
// caller supplies. The sequence is QEMU 7.2's (reference note 1.1) with DPDK virtio-user's
// STATUS step:
//
//   GET_FEATURES; [GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES (MQ | REPLY_ACK | STATUS of
//   what is offered)]; [GET_QUEUE_NUM when MQ: fewer pairs than asked is an error]; SET_OWNER;
//   SET_FEATURES (what we want of what is offered, plus bit 30); SET_MEM_TABLE (the device's
//   regions, one fd each; skipped while it has none); per ring SET_VRING_NUM, SET_VRING_BASE (the saved base on a reconnect),
//   SET_VRING_ADDR, SET_VRING_KICK, SET_VRING_CALL; [SET_VRING_ENABLE 1 per ring when bit 30
//   was acked, for the rings the device wants enabled]; [SET_STATUS 0xf when STATUS was
//   acked and there is a ring to start].
//
// With REPLY_ACK every request without a reply of its own carries NEED_REPLY, and a non-zero
// ack is the back-end refusing it. Every reply is checked before it is used: exactly the
// flags of a reply (version 1 | REPLY), the code of the request it answers, the exact payload
// size, no fds (fds that came anyway are closed), nothing unasked. Each reply must arrive
// within `replyTimeoutMs`; a back-end that closes mid-message, answers garbage, never answers
// or offers fewer queues fails setUp() with a VhostUserProtocolError naming what went wrong,
// and the connection closes. Nothing is thrown anywhere else.
//
// Input is read with recvmsg (FdReader), output written with sendmsg (fdSend), so fds go out
// with the message that names them (SET_MEM_TABLE, SET_VRING_KICK / CALL).
//
// After the set-up a device whose rings come and go (the pass-through one) changes them with
// setMemTable / setFeatures / startRing / stopRing (GET_VRING_BASE) / enableRings, and stops
// as a whole with stopDevice, in QEMU 7.2's vhost_dev_stop order. Every request, the set-up
// included, runs in one queue, so they reach the back-end in the order they were made.
import type * as net from 'node:net';
import { closeQuietly } from '../control/monitor-fds';
import { bit, VirtioStatus } from '../devices/virtio-net-features';
import { native, type NativeFdReader } from '../native';
import { TypedEmitter } from '../util/typed-emitter';
import { codecs, requestName, VhostUserProtocolError, type MemRegion } from './messages';
import { Flags, HEADER_SIZE, ProtocolF, REPLY_FLAGS, Request, VHOST_USER_F_PROTOCOL_FEATURES } from './protocol';

/** Protocol features the front-end uses when the back-end offers them. */
export const FRONTEND_PROTOCOL_FEATURES = bit(ProtocolF.MQ) | bit(ProtocolF.REPLY_ACK) | bit(ProtocolF.STATUS);
const PROTOCOL_FEATURES_BIT = bit(VHOST_USER_F_PROTOCOL_FEATURES);

/** One ring as the driver laid it out: what SET_VRING_* tell the back-end. */
export interface FrontendRing {
  /** Virtqueue index: rx of pair i = 2i, tx = 2i + 1. */
  index: number;
  size: number;
  /** Front-end (user) addresses, translated by the back-end through the memory table. */
  descAddr: bigint;
  availAddr: bigint;
  usedAddr: bigint;
  base: number;
  /** Eventfds (or pipes); this front-end sends them and closes its copies. -1 call: none. */
  kickFd: number;
  callFd: number;
  /** false: started but left disabled (a queue pair the guest does not use yet). */
  enabled?: boolean;
}

/** One region of the memory table (its fd stays the device's). */
export type FrontendRegion = MemRegion & { fd: number };

/** The driver side (netplane's rings, or a hypervisor's): the front-end tells the back-end. */
export interface FrontendDevice {
  /** The memory table: every region the rings and buffers live in (empty: none yet). */
  memoryTable(): FrontendRegion[];
  /**
   * Lay out (or resume) and start the rings with the acked virtio features (bit 30
   * removed); returns the rings to set up, in index order.
   */
  start(features: bigint): FrontendRing[];
}

export interface VhostUserFrontendOptions {
  queuePairs: number;
  /** Virtio features wanted, or how to choose them from the offer (bit 30 is added when offered). */
  features: bigint | ((offered: bigint) => bigint);
  /** Features a previous connection acked: a back-end offering less is refused (QEMU's rule). */
  requiredFeatures?: bigint;
  /** How long each reply may take (default 5000 ms). */
  replyTimeoutMs?: number;
  /** One line per request (diagnostics, tests). */
  log?: (line: string) => void;
}

export type FrontendEvents = {
  /** The connection ended: null when the back-end hung up after a complete set-up, else why. */
  close: [reason: string | null];
};

export interface FrontendResult {
  /** Acked virtio features (bit 30 removed). */
  features: bigint;
  protocolFeatures: bigint;
  /** Queue pairs the back-end has (GET_QUEUE_NUM, or 1 without MQ). */
  backendQueuePairs: number;
}

type ReplyKind = 'u64' | 'ack';

interface Pending {
  code: number;
  kind: ReplyKind;
  resolve: (v: bigint) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

function socketFd(socket: net.Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new VhostUserProtocolError('the socket has no fd');
  return fd;
}

export class VhostUserFrontend extends TypedEmitter<FrontendEvents> {
  readonly #socket: net.Socket;
  readonly #opts: VhostUserFrontendOptions;
  readonly #fd: number;
  #reader: NativeFdReader | undefined;
  #buf: Buffer = Buffer.alloc(0);
  #pending: Pending | undefined;
  #replyAck = false;
  #closed = false;
  #reason: string | null = null;
  #ready = false;
  #offered = 0n;
  #sentFeatures = 0n;
  #featuresAcked = false;
  /** The STATUS protocol feature was acked. */
  #statusAcked = false;
  /** SET_STATUS(DRIVER_OK) sent since the last SET_STATUS(0). */
  #deviceStarted = false;
  /** The tail of the request queue (set-up and later changes, in order). */
  #queue: Promise<unknown> = Promise.resolve();
  /** Requests sent (diagnostics). */
  requests = 0;

  /** Wrap a connected socket (paused, not read by Node). */
  constructor(socket: net.Socket, opts: VhostUserFrontendOptions) {
    super();
    if (!Number.isInteger(opts.queuePairs) || opts.queuePairs < 1)
      throw new RangeError('queuePairs must be a positive integer');
    this.#socket = socket;
    this.#opts = opts;
    this.#fd = socketFd(socket);
    socket.on('error', (e) => this.#shut(`socket error: ${e.message}`));
    socket.on('close', () => this.#shut(this.#ready ? null : 'the back-end closed the connection'));
    this.#reader = new (native().FdReader)(this.#fd, (data, fds, error) => {
      for (const f of fds) closeQuietly(f); // a back-end sends no fds on this channel
      if (this.#closed) return;
      if (data === null) {
        this.#shut(
          error !== null
            ? `read error: ${error.message}`
            : this.#buf.length > 0
              ? 'the back-end closed the connection in the middle of a reply'
              : this.#pending
                ? `the back-end closed the connection before answering ${requestName(this.#pending.code)}`
                : this.#ready
                  ? null
                  : 'the back-end closed the connection',
        );
        return;
      }
      this.#buf = this.#buf.length === 0 ? data : Buffer.concat([this.#buf, data]);
      this.#parse();
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The set-up completed and the connection is open. */
  get ready(): boolean {
    return this.#ready && !this.#closed;
  }

  /** Virtio features the back-end offers (bit 30 removed; 0 before GET_FEATURES). */
  get offeredFeatures(): bigint {
    return this.#offered & ~PROTOCOL_FEATURES_BIT;
  }

  /**
   * Negotiate and start the device; rejects (and closes) on any failure. `onOffer` sees the
   * back-end's virtio features first and may refuse them (it throws the reason).
   */
  setUp(device: FrontendDevice, onOffer?: (features: bigint) => void): Promise<FrontendResult> {
    return this.#serial(() => this.#setUp(device, onOffer));
  }

  /** A new memory table (the hypervisor's memory changed). */
  setMemTable(regions: readonly FrontendRegion[]): Promise<void> {
    return this.#serial(() => this.#sendMemTable(regions));
  }

  /** Start one ring, acking `features` (of what is offered) first when they changed. */
  startRing(ring: FrontendRing, features: bigint): Promise<void> {
    return this.#serial(async () => {
      try {
        await this.#sendFeatures(features);
        await this.#sendRing(ring);
        if (ring.enabled !== false) await this.#sendEnable(ring.index, true);
        await this.#startDevice();
      } finally {
        closeQuietly(ring.kickFd);
        closeQuietly(ring.callFd);
      }
    });
  }

  /** Stop one ring (GET_VRING_BASE): the back-end's next avail index. */
  stopRing(index: number): Promise<number> {
    return this.#serial(() => this.#getVringBase(index));
  }

  /**
   * Enable or disable rings (SET_VRING_ENABLE, QEMU's vhost_set_vring_enable when the guest
   * changes its queue pairs); nothing is sent when bit 30 was not acked (rings are then
   * always enabled).
   */
  enableRings(indexes: readonly number[], on: boolean): Promise<void> {
    return this.#serial(async () => {
      for (const i of indexes) await this.#sendEnable(i, on);
    });
  }

  /**
   * Stop the device (a guest reset, the NIC unplugged) as QEMU 7.2's vhost_dev_stop does pair
   * by pair: GET_VRING_BASE for each ring, except that the last pair first sends SET_STATUS(0)
   * when STATUS was acked (vhost_user_dev_start(false)). No SET_VRING_ENABLE(0) is sent.
   * Resolves with each ring's next avail index.
   */
  stopDevice(indexes: readonly number[]): Promise<Map<number, number>> {
    return this.#serial(async () => {
      const sorted = [...indexes].sort((a, b) => a - b);
      const lastPair = sorted.length > 0 ? sorted[sorted.length - 1]! >> 1 : 0;
      const bases = new Map<number, number>();
      for (const i of sorted) {
        if (i >> 1 === lastPair) await this.#stopStatus();
        bases.set(i, await this.#getVringBase(i));
      }
      await this.#stopStatus(); // no ring at all: the status still goes back to 0
      return bases;
    });
  }

  /** Run `fn` after every request queued before it (its failure does not stop the queue). */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #setUp(device: FrontendDevice, onOffer?: (features: bigint) => void): Promise<FrontendResult> {
    const o = this.#opts;
    const offered = await this.#get(Request.GET_FEATURES);
    this.#offered = offered;
    let protocol = 0n;
    if ((offered & PROTOCOL_FEATURES_BIT) !== 0n) {
      const p = await this.#get(Request.GET_PROTOCOL_FEATURES);
      protocol = p & FRONTEND_PROTOCOL_FEATURES;
      await this.#set(Request.SET_PROTOCOL_FEATURES, codecs.u64.encode(protocol));
      this.#replyAck = (protocol & bit(ProtocolF.REPLY_ACK)) !== 0n;
      this.#statusAcked = (protocol & bit(ProtocolF.STATUS)) !== 0n;
    }
    let pairs = 1;
    if ((protocol & bit(ProtocolF.MQ)) !== 0n) {
      const n = await this.#get(Request.GET_QUEUE_NUM);
      if (n < 1n || n > 0x8000n) this.#fail(`GET_QUEUE_NUM answered ${n}`);
      pairs = Number(n);
    }
    if (pairs < o.queuePairs) {
      this.#fail(`the back-end has ${pairs} queue pair(s), fewer than the queues=${o.queuePairs} asked`);
    }
    const missing = (o.requiredFeatures ?? 0n) & ~offered;
    if (missing !== 0n) {
      this.#fail(`the back-end no longer offers features 0x${missing.toString(16)} acked before (flags mismatch)`);
    }
    if (onOffer) {
      try {
        onOffer(offered & ~PROTOCOL_FEATURES_BIT);
      } catch (e) {
        this.#fail(e instanceof Error ? e.message : String(e));
      }
    }
    await this.#set(Request.SET_OWNER, Buffer.alloc(0));
    await this.#sendFeatures(
      typeof o.features === 'function' ? o.features(offered & ~PROTOCOL_FEATURES_BIT) : o.features,
    );
    // The table and the rings are taken together, so both describe the same memory.
    const table = device.memoryTable();
    const virtio = this.#sentFeatures & ~PROTOCOL_FEATURES_BIT;
    const rings = device.start(virtio);
    try {
      await this.#sendMemTable(table);
      for (const r of rings) await this.#sendRing(r);
    } finally {
      for (const r of rings) {
        closeQuietly(r.kickFd);
        closeQuietly(r.callFd);
      }
    }
    for (const r of rings) if (r.enabled !== false) await this.#sendEnable(r.index, true);
    // A guest that has not started a ring yet is not DRIVER_OK for the back-end either.
    if (rings.length > 0) await this.#startDevice();
    this.#ready = true;
    return { features: virtio, protocolFeatures: protocol, backendQueuePairs: pairs };
  }

  /** SET_FEATURES with what is wanted of what is offered, plus bit 30 when offered. */
  async #sendFeatures(wanted: bigint): Promise<void> {
    const offered = this.#offered;
    const features = (wanted & offered & ~PROTOCOL_FEATURES_BIT) | (offered & PROTOCOL_FEATURES_BIT);
    if (this.#featuresAcked && features === this.#sentFeatures) return;
    await this.#set(Request.SET_FEATURES, codecs.u64.encode(features));
    this.#sentFeatures = features;
    this.#featuresAcked = true;
  }

  async #sendEnable(index: number, on: boolean): Promise<void> {
    if ((this.#sentFeatures & PROTOCOL_FEATURES_BIT) === 0n) return;
    await this.#set(Request.SET_VRING_ENABLE, codecs.state.encode({ index, num: on ? 1 : 0 }));
  }

  /** SET_STATUS(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK) once, when STATUS was acked. */
  async #startDevice(): Promise<void> {
    if (!this.#statusAcked || this.#deviceStarted) return;
    const status = VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER | VirtioStatus.FEATURES_OK | VirtioStatus.DRIVER_OK;
    await this.#set(Request.SET_STATUS, codecs.u64.encode(BigInt(status)));
    this.#deviceStarted = true;
  }

  /** SET_STATUS(0) once after a start, when STATUS was acked. */
  async #stopStatus(): Promise<void> {
    if (!this.#statusAcked || !this.#deviceStarted) return;
    await this.#set(Request.SET_STATUS, codecs.u64.encode(0n));
    this.#deviceStarted = false;
  }

  async #getVringBase(index: number): Promise<number> {
    const state = await this.#send(Request.GET_VRING_BASE, codecs.state.encode({ index, num: 0 }), [], 'u64');
    const at = Number(state & 0xffffffffn);
    if (at !== index) this.#fail(`the back-end answered GET_VRING_BASE for ring ${index} with ring ${at}`);
    return Number(state >> 32n) & 0xffff;
  }

  async #sendMemTable(regions: readonly FrontendRegion[]): Promise<void> {
    if (regions.length === 0) return;
    await this.#set(
      Request.SET_MEM_TABLE,
      codecs.memTable.encode([...regions]),
      regions.map((r) => r.fd),
    );
  }

  async #sendRing(r: FrontendRing): Promise<void> {
    const index = r.index;
    await this.#set(Request.SET_VRING_NUM, codecs.state.encode({ index, num: r.size }));
    await this.#set(Request.SET_VRING_BASE, codecs.state.encode({ index, num: r.base }));
    await this.#set(
      Request.SET_VRING_ADDR,
      codecs.addr.encode({ index, flags: 0, desc: r.descAddr, used: r.usedAddr, avail: r.availAddr, log: 0n }),
    );
    await this.#set(Request.SET_VRING_KICK, codecs.file.encode({ index, noFd: false }), [r.kickFd]);
    const noCall = r.callFd < 0;
    await this.#set(Request.SET_VRING_CALL, codecs.file.encode({ index, noFd: noCall }), noCall ? [] : [r.callFd]);
  }

  /** Close our side; `reason` null for a deliberate close. */
  close(reason: string | null = null): void {
    this.#shut(reason);
  }

  // ---- requests -----------------------------------------------------------------------

  #get(code: number): Promise<bigint> {
    return this.#send(code, Buffer.alloc(0), [], 'u64');
  }

  /** A request without a reply of its own: with REPLY_ACK it waits for the ack. */
  async #set(code: number, payload: Buffer, fds: number[] = []): Promise<void> {
    if (this.#replyAck) {
      const ack = await this.#send(code, payload, fds, 'ack');
      if (ack !== 0n) this.#fail(`the back-end refused ${requestName(code)} (ack ${ack})`);
    } else {
      await this.#send(code, payload, fds, undefined);
    }
  }

  #send(code: number, payload: Buffer, fds: number[], kind: ReplyKind | undefined): Promise<bigint> {
    if (this.#closed) {
      return Promise.reject(
        new VhostUserProtocolError(this.#reason ?? `${requestName(code)}: the connection is closed`),
      );
    }
    const msg = Buffer.alloc(HEADER_SIZE + payload.length);
    msg.writeUInt32LE(code, 0);
    msg.writeUInt32LE(Flags.VERSION | (kind === 'ack' ? Flags.NEED_REPLY : 0), 4);
    msg.writeUInt32LE(payload.length, 8);
    payload.copy(msg, HEADER_SIZE);
    this.#opts.log?.(`-> ${requestName(code)}${kind === 'ack' ? ' (need reply)' : ''}`);
    try {
      const n = native().fdSend(this.#fd, msg, fds);
      if (n !== msg.length) throw new Error(`only ${n} of ${msg.length} bytes went out`);
    } catch (e) {
      const reason = `cannot send ${requestName(code)}: ${e instanceof Error ? e.message : String(e)}`;
      this.#shut(reason);
      return Promise.reject(new VhostUserProtocolError(reason));
    }
    this.requests++;
    if (kind === undefined) return Promise.resolve(0n);
    return new Promise((resolve, reject) => {
      const ms = this.#opts.replyTimeoutMs ?? 5000;
      const timer = setTimeout(() => {
        this.#shut(`the back-end did not answer ${requestName(code)} within ${ms} ms`);
      }, ms);
      this.#pending = { code, kind, resolve, reject, timer };
      this.#parse(); // a reply may already be buffered (it would be unasked, and refused)
    });
  }

  #parse(): void {
    while (!this.#closed && this.#buf.length >= HEADER_SIZE) {
      const code = this.#buf.readUInt32LE(0);
      const flags = this.#buf.readUInt32LE(4);
      const size = this.#buf.readUInt32LE(8);
      const p = this.#pending;
      if (p === undefined) {
        this.#shut(`the back-end sent an unasked message (${requestName(code)}, flags 0x${flags.toString(16)})`);
        return;
      }
      const name = requestName(p.code);
      if (flags !== REPLY_FLAGS) {
        this.#shut(`the back-end answered ${name} with flags 0x${flags.toString(16)}, not a version 1 reply`);
        return;
      }
      if (code !== p.code) {
        this.#shut(`the back-end answered ${name} with a reply to ${requestName(code)}`);
        return;
      }
      if (size !== 8) {
        this.#shut(`the back-end answered ${name} with a ${size}-byte payload, expected 8`);
        return;
      }
      if (this.#buf.length < HEADER_SIZE + 8) return;
      const value = this.#buf.readBigUInt64LE(HEADER_SIZE);
      this.#buf = this.#buf.subarray(HEADER_SIZE + 8);
      clearTimeout(p.timer);
      this.#pending = undefined;
      this.#opts.log?.(`<- ${name} 0x${value.toString(16)}`);
      p.resolve(value);
    }
  }

  #fail(reason: string): never {
    this.#shut(reason);
    throw new VhostUserProtocolError(reason);
  }

  #shut(reason: string | null): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#reason = reason;
    this.#reader?.close();
    this.#reader = undefined;
    this.#buf = Buffer.alloc(0);
    const p = this.#pending;
    this.#pending = undefined;
    if (p) {
      clearTimeout(p.timer);
      p.reject(
        new VhostUserProtocolError(reason ?? `the connection closed before ${requestName(p.code)} was answered`),
      );
    }
    this.#socket.destroy();
    this.emit('close', reason);
  }
}
