// NativeDataPlane: the DataPlane seam (lib/topology/dataplane.ts) implemented by the native
// graph (native/core/net/net_graph.h). Frames between TAP queues, hub ports and packet ports
// never touch JavaScript; this class only issues control operations (each runs on the
// owning IOThread and returns when done), reads counters as one snapshot, and turns the
// engine's events into 'event' emissions:
//
//   { type: 'tap-dead', handle, name, errno, code, syscall }  a TAP queue's device vanished
//                                                              (handler removed, link down)
//   { type: 'vring-error', handle, name, ring, reason }         a virtio queue pair met hostile
//                                                              ring content and stopped
//
// Placement: each queue index runs on its own IOThread ("np-q<i>") unless the client names
// an iothread (`-object iothread,id=..` + `iothread=`); a hub and its ports share a thread.
// A 'port' client becomes a PacketPort (shared-memory rings) that the hypervisor reads with
// port(handle).
//
// Virtio queue pairs ('virtio-device' clients): the guest's rings are served natively on the
// queue's IOThread, no JavaScript per frame. The API a vhost-user back-end (or an in-process
// hypervisor) drives, all synchronous and run on the owning thread:
//
//   mapGuestMemory(regions: { guestAddr, size, userAddr, fd, fdOffset: bigint... }[]): GuestMemory
//       mmap MAP_SHARED of each fd region; the fds are only used during the call (the caller
//       keeps and closes them). Invalid tables (zero size, overflow, overlap in guest or user
//       space, past the end of the file, too many regions) throw NETPLANE_INVALID naming the
//       region and the reason.
//   wrapGuestMemory(regions: { guestAddr, buffer: SharedArrayBuffer | ArrayBuffer }[]): GuestMemory
//       regions over memory this process owns (never unmapped by us; do not transfer or
//       detach an ArrayBuffer while a ring uses it).
//   addClient({ kind: 'virtio-device', handle, name, queueIndex, iothread? })
//       queue pair `queueIndex` (rx vq 2i, tx vq 2i+1), placed on np-q<queueIndex> like a TAP
//       queue; connect() it to the TAP queue with the same index.
//   setVirtioFeatures(handle, features: bigint)
//       the negotiated features, while both rings are stopped: header length (12 with
//       MRG_RXBUF or VERSION_1, else 10), MRG_RXBUF, EVENT_IDX, and the GUEST_* offloads the
//       guest takes. A peer TAP's offloads then follow those bits (autoOffloads): do not also
//       set them from the virtio-net model. PACKED and HASH_REPORT are refused.
//   startVring(handle, { ring: 'rx' | 'tx', memory, size, descAddr, availAddr, usedAddr,
//                        addrSpace: 'user' | 'guest', base, kickFd, callFd, errFd? })
//       validates the layout (the whole ring must lie in guest memory, NETPLANE_INVALID
//       otherwise), dups the fds (callFd -1: no interrupts), polls the kick fd and scans the
//       ring once (a kick may have been lost).
//   stopVring(handle, ring): number
//       stops at once, closes the fd dups, drops the memory reference and returns the next
//       avail index (vhost-user GET_VRING_BASE).
//   stats(): kind 'virtio-device', the usual counters, `broken` / `errors` / `error`, and
//       `virtio: { features, rxStarted, txStarted, notifies, txGsoFrames, rxGsoFrames,
//       rxMergedFrames, rxBuffers, txMaxFrame, rxMaxFrame }`.
//   'event' { type: 'vring-error', handle, name, ring, reason } when a queue pair enters its
//       error state (it also writes errFd once); stopping both rings and starting them again
//       resets it.
import { EventEmitter } from 'node:events';
import { NetplaneError, type NetplaneErrorCode } from '../errors';
import {
  native,
  NativeGraphEvent,
  type NativeClientStats,
  type NativeNetGraph,
  type NativeSystemError,
  type NativeVringSpec,
  type NativeDriverRingSpec,
  type VringName,
} from '../native';
import type {
  CaptureOptions,
  CaptureStats,
  ClientDeadEvent,
  ClientDescriptor,
  DataPlane,
  IothreadParams,
  SocketClosedEvent,
} from '../topology/dataplane';
import type { SlirpControlOp, SlirpControlResult } from '../topology/dataplane';
import { GuestMemory } from './guest-memory';
import {
  PacketPort,
  preparePort,
  type PacketPortOptions,
  type PortLinkCause,
  type PortVnetHdrLen,
} from './packet-port';

export type ClientStats = NativeClientStats;

/** One fd-backed region of a guest memory table (vhost-user SET_MEM_TABLE's fields). */
export interface GuestMemoryRegion {
  guestAddr: bigint;
  size: bigint;
  /** The front-end's virtual address of the region (rings come as these in vhost-user). */
  userAddr: bigint;
  /** Used only during the call; the caller keeps ownership. */
  fd: number;
  fdOffset: bigint;
}

/** A region over memory this process owns; its user address equals its guest address. */
export interface BorrowedGuestMemoryRegion {
  guestAddr: bigint;
  buffer: SharedArrayBuffer | ArrayBuffer;
}

/** The native handle of a ring config's memory (a GuestMemory, checked: configs come from JS). */
function nativeMemoryOf(cfg: { memory: GuestMemory } | undefined): ReturnType<GuestMemory['_native']> {
  if (!(cfg?.memory instanceof GuestMemory)) throw new TypeError('memory must be a GuestMemory');
  return cfg.memory._native();
}

/** startVring's ring: as the native spec (lib/native.ts NativeVringSpec), with a GuestMemory. */
export type VringConfig = Omit<NativeVringSpec, 'memory'> & { memory: GuestMemory };
/** startDriverRing's ring: the native spec with a GuestMemory. */
export type DriverRingConfig = Omit<NativeDriverRingSpec, 'memory'> & { memory: GuestMemory };

export interface VringErrorEvent {
  type: 'vring-error';
  handle: number;
  name: string;
  ring: VringName;
  reason: string;
}

export interface TapDeadEvent {
  type: 'tap-dead';
  handle: number;
  name: string;
  errno: number;
  code: string;
  syscall: string;
}
/** A stream/dgram client's socket went away (errno 0: end of stream). */
export interface SocketClosedDataPlaneEvent {
  type: 'socket-closed';
  handle: number;
  name: string;
  errno: number;
  code: string;
  syscall: string;
}
export type DataPlaneEvent = TapDeadEvent | VringErrorEvent | SocketClosedDataPlaneEvent;

export interface NativeDataPlaneOptions {
  /**
   * Enable TAP offloads (TUNSETOFFLOAD) exactly where every receiver takes offloaded frames,
   * so 64 KiB GSO frames cross untouched (default true).
   */
  autoOffloads?: boolean;
  /**
   * Ring options for the packet ports created for 'port' clients (NIC queues). A
   * `vnetHdrLen` given here is fixed for every NIC port: it no longer follows what the
   * device model negotiates (`vnetHdrLen: 0`: bare frames, for a hypervisor whose own
   * model adds and strips the header). Without it a NIC port starts with the model's
   * header and follows it.
   */
  nicPorts?: PacketPortOptions;
}

export type { IothreadParams };

// Handles for ports created directly (createPort), kept apart from the topology's.
const DIRECT_HANDLE_BASE = 0x80000000;

export class NativeDataPlane extends EventEmitter implements DataPlane {
  #graph: NativeNetGraph;
  #names = new Map<number, string>();
  #ports = new Map<number, PacketPort>();
  #nicPorts: PacketPortOptions;
  #nextDirect = DIRECT_HANDLE_BASE;
  #closed = false;
  // Ports whose vnet header never follows setVnetHdrLen (bare NICs, nicPorts.vnetHdrLen).
  readonly #fixedHdr = new Set<number>();
  // Link state as the ports see it: peers, link-down and dead clients, ports whose peer went.
  readonly #peers = new Map<number, number>();
  readonly #down = new Set<number>();
  readonly #dead = new Set<number>();
  readonly #peerGone = new Set<number>();

  constructor(opts: NativeDataPlaneOptions = {}) {
    super();
    this.#nicPorts = opts.nicPorts ?? {};
    this.#graph = new (native().NetGraph)((kind, handle, errno, syscall, code, ring, reason) =>
      this.#onEvent(kind, handle, errno, syscall, code, ring, reason),
    );
    if (opts.autoOffloads === false) this.#graph.setAutoOffloads(false);
  }

  /** `-object iothread,id=..`: create (or retune) a named IOThread. */
  addIothread(id: string, params: IothreadParams = {}): void {
    this.#call(() => this.#graph.addIothread(id, params));
  }

  addClient(c: ClientDescriptor): void {
    const iothread = c.iothread ?? '';
    switch (c.kind) {
      case 'tap':
        if (c.fd === undefined) {
          throw new NetplaneError(
            'NETPLANE_INVALID_OPTION',
            `tap client '${c.name}' (queue ${c.queueIndex}) has no fd`,
          );
        }
        this.#call(() =>
          this.#graph.addTap({
            handle: c.handle,
            name: c.name,
            queueIndex: c.queueIndex,
            iothread,
            fd: c.fd!,
            vnetHdrLen: c.vnetHdrLen ?? 0,
            ioUring: c.ioUring === true,
          }),
        );
        break;
      case 'hubport':
        if (c.hubId === undefined)
          throw new NetplaneError('NETPLANE_INVALID_OPTION', `hub port '${c.name}' has no hub id`);
        this.#call(() =>
          this.#graph.addHubPort({
            handle: c.handle,
            name: c.name,
            queueIndex: c.queueIndex,
            iothread,
            hubId: c.hubId!,
          }),
        );
        break;
      case 'port': {
        const fixed = c.bare === true ? 0 : this.#nicPorts.vnetHdrLen;
        this.#addPort(c.handle, c.name, c.queueIndex, iothread, {
          ...this.#nicPorts,
          vnetHdrLen: (fixed ?? c.vnetHdrLen ?? 0) as PortVnetHdrLen,
        });
        if (fixed !== undefined) this.#fixedHdr.add(c.handle);
        break;
      }
      case 'virtio-device':
        this.#call(() =>
          this.#graph.addVirtioDevice({ handle: c.handle, name: c.name, queueIndex: c.queueIndex, iothread }),
        );
        break;
      case 'user':
        this.#call(() =>
          this.#graph.addSlirp({ handle: c.handle, name: c.name, queueIndex: c.queueIndex, iothread, ...c.config }),
        );
        break;
      case 'stream':
        this.#call(() => this.#graph.addStream({ handle: c.handle, name: c.name, queueIndex: c.queueIndex, iothread }));
        break;
      case 'dgram':
        this.#call(() =>
          this.#graph.addDgram({ handle: c.handle, name: c.name, queueIndex: c.queueIndex, iothread, dest: c.dest }),
        );
        break;
      case 'virtio-driver':
        this.#call(() =>
          this.#graph.addVirtioDriver({ handle: c.handle, name: c.name, queueIndex: c.queueIndex, iothread }),
        );
        break;
      default:
        throw new NetplaneError(
          'NETPLANE_INVALID_OPTION',
          `unknown client kind '${String((c as ClientDescriptor).kind)}'`,
        );
    }
    this.#names.set(c.handle, c.name);
  }

  /** A user netdev's stack: forwarding rules and `info usernet` (DataPlane.slirpControl). */
  slirpControl(handle: number, op: SlirpControlOp): SlirpControlResult {
    const { op: name, ...args } = op;
    return this.#call(() => this.#graph.slirpControl(handle, name, args));
  }

  /** Whether libslirp loads here (it is opened on first use; `error` names what to install). */
  libslirp(): { version: string } | { error: string } {
    const info = native().libslirpInfo();
    return info.error !== undefined ? { error: info.error } : { version: info.version! };
  }

  /**
   * A packet port not described by the topology (a benchmark sink, a capture, a test):
   * connect it with connect(port.handle, other).
   */
  createPort(name: string, opts: PacketPortOptions & { queueIndex?: number; iothread?: string } = {}): PacketPort {
    const handle = this.#nextDirect++;
    const port = this.#addPort(handle, name, opts.queueIndex ?? 0, opts.iothread ?? '', opts);
    this.#names.set(handle, name);
    return port;
  }

  #addPort(handle: number, name: string, queueIndex: number, iothread: string, opts: PacketPortOptions): PacketPort {
    const setup = preparePort(opts);
    this.#call(() =>
      this.#graph.addPort({
        handle,
        name,
        queueIndex,
        iothread,
        rx: setup.rx,
        tx: setup.tx,
        dropWhenFull: setup.dropWhenFull,
        vnetHdrLen: setup.vnetHdrLen,
      }),
    );
    const port = new PacketPort(this.#graph, handle, name, setup);
    this.#ports.set(handle, port);
    return port;
  }

  /** Map a guest memory table of fd-backed regions (see the file comment). */
  mapGuestMemory(regions: readonly GuestMemoryRegion[]): GuestMemory {
    if (!Array.isArray(regions)) throw new TypeError('regions must be an array');
    return new GuestMemory(this.#call(() => native().guestMemoryMap(regions.map((r) => ({ ...r })))));
  }

  /** Guest memory over buffers this process owns (an in-process hypervisor's RAM). */
  wrapGuestMemory(regions: readonly BorrowedGuestMemoryRegion[]): GuestMemory {
    if (!Array.isArray(regions)) throw new TypeError('regions must be an array');
    const list = regions.map((r, i) => {
      if (!(r?.buffer instanceof SharedArrayBuffer) && !(r?.buffer instanceof ArrayBuffer)) {
        throw new TypeError(`regions[${i}].buffer must be a SharedArrayBuffer or an ArrayBuffer`);
      }
      // A resizable ArrayBuffer can shrink under a running ring: only fixed-size memory.
      if ((r.buffer as ArrayBuffer & { resizable?: boolean }).resizable === true) {
        throw new NetplaneError(
          'NETPLANE_INVALID',
          `regions[${i}].buffer is resizable; guest memory must have a fixed size`,
        );
      }
      return { guestAddr: r.guestAddr, bytes: new Uint8Array(r.buffer) };
    });
    return new GuestMemory(this.#call(() => native().guestMemoryWrap(list)));
  }

  /** A virtio-device client's negotiated features (both rings stopped). */
  setVirtioFeatures(handle: number, features: bigint): void {
    this.#call(() => this.#graph.setVirtioFeatures(handle, features));
  }

  /** Start serving one ring of a virtio-device client. */
  startVring(handle: number, cfg: VringConfig): void {
    const memory = nativeMemoryOf(cfg);
    this.#call(() => this.#graph.startVring(handle, { ...cfg, memory }));
  }

  /** Stop one ring at once; the next avail index to resume from (GET_VRING_BASE). */
  stopVring(handle: number, ring: VringName): number {
    return this.#call(() => this.#graph.stopVring(handle, ring));
  }

  /** A virtio-driver client's negotiated features (both rings stopped). */
  setDriverFeatures(handle: number, features: bigint): void {
    this.#call(() => this.#graph.setDriverFeatures(handle, features));
  }

  /** Start (reset: lay out) one ring of a virtio-driver client. */
  startDriverRing(handle: number, cfg: DriverRingConfig): void {
    const memory = nativeMemoryOf(cfg);
    this.#call(() => this.#graph.startDriverRing(handle, { ...cfg, memory }));
  }

  /** Stop one ring at once; its used index, the base a back-end resumes from. */
  stopDriverRing(handle: number, ring: VringName): number {
    return this.#call(() => this.#graph.stopDriverRing(handle, ring));
  }

  /** The packet port of a 'port' client (or one made by createPort). */
  port(handle: number): PacketPort | undefined {
    return this.#ports.get(handle);
  }

  removeClient(handle: number): void {
    this.#call(() => this.#graph.remove(handle));
    this.#names.delete(handle);
    this.#fixedHdr.delete(handle);
    this.#down.delete(handle);
    this.#dead.delete(handle);
    this.#peerGone.delete(handle);
    const peer = this.#peers.get(handle);
    this.#peers.delete(handle);
    if (peer !== undefined) {
      this.#peers.delete(peer);
      this.#peerGone.add(peer);
      this.#updateLink(peer, 'peer-removed');
    }
    const port = this.#ports.get(handle);
    if (port) {
      this.#ports.delete(handle);
      port._closed();
    }
  }

  connect(a: number, b: number): void {
    this.#call(() => this.#graph.connect(a, b));
    this.#peers.set(a, b);
    this.#peers.set(b, a);
    for (const h of [a, b]) {
      this.#peerGone.delete(h);
      this.#updateLink(h, 'connected');
    }
  }

  setLinkDown(handle: number, down: boolean): void {
    this.#call(() => this.#graph.setLinkDown(handle, down));
    if (down) this.#down.add(handle);
    else this.#down.delete(handle);
    this.#updateLink(handle, 'set-link');
    const peer = this.#peers.get(handle);
    if (peer !== undefined) this.#updateLink(peer, 'peer-link');
  }

  setVnetHdrLen(handle: number, len: number): void {
    if (this.#fixedHdr.has(handle)) return; // a bare port keeps its header whatever was negotiated
    this.#call(() => this.#graph.setVnetHdrLen(handle, len));
    this.#ports.get(handle)?._setVnetHdrLen(len as PortVnetHdrLen);
  }

  /** A port's link as its peer and the graph leave it (PacketPort.linkUp). */
  #updateLink(handle: number, cause: PortLinkCause): void {
    const port = this.#ports.get(handle);
    if (!port) return;
    const peer = this.#peers.get(handle);
    const up =
      !this.#down.has(handle) &&
      !this.#peerGone.has(handle) &&
      (peer === undefined || (!this.#down.has(peer) && !this.#dead.has(peer)));
    port._setLink(up, cause);
  }

  setQueueEnabled(handle: number, enabled: boolean): void {
    this.#call(() => this.#graph.setQueueEnabled(handle, enabled));
  }

  /**
   * QEMU's qemu_send_packet_raw from a NIC queue (announce-self's RARP): the frame leaves
   * through that client's packet port like a frame the hypervisor sent, with a zeroed vnet
   * header in front when the port uses one (the engine reshapes it for the peer). The engine
   * drops and counts it when the port is link-down or has no peer. A full tx ring delays the
   * frame until there is room; a port removed meanwhile takes it along.
   */
  sendRaw(handle: number, frame: Uint8Array): void {
    const port = this.#ports.get(handle);
    if (!port) {
      const what = this.#names.has(handle) ? `net client '${this.#names.get(handle)}'` : `net client handle ${handle}`;
      throw new NetplaneError(
        'NETPLANE_INVALID_STATE',
        `${what} is not a packet port; only a NIC queue sends raw frames`,
      );
    }
    const hdr = port.vnetHdrLen;
    const framed = new Uint8Array(hdr + frame.length);
    framed.set(frame, hdr);
    if (port.send([framed])) return;
    port.sendAsync([framed]).catch((e: unknown) => {
      if (e instanceof NetplaneError && e.code === 'NETPLANE_CLOSED') return;
      process.nextTick(() => {
        throw e;
      });
    });
  }

  /** DataPlane.onClientDead: the 'tap-dead' events as the topology consumes them. */
  onClientDead(listener: (event: ClientDeadEvent) => void): () => void {
    return this.#follow('tap-dead', listener);
  }

  /** Call `listener` with the errno part of every event of `type`; returns the unsubscribe. */
  #follow(type: 'tap-dead' | 'socket-closed', listener: (event: ClientDeadEvent) => void): () => void {
    const onEvent = (e: DataPlaneEvent): void => {
      if (e.type === type) listener({ handle: e.handle, errno: e.errno, code: e.code, syscall: e.syscall });
    };
    this.on('event', onEvent);
    return () => void this.off('event', onEvent);
  }

  /** DataPlane.setSocketFd: the stream/dgram client owns `fd` from now on (-1 closes its socket). */
  setSocketFd(handle: number, fd: number): void {
    this.#call(() => this.#graph.setSocketFd(handle, fd));
  }

  /** DataPlane.onSocketClosed: the 'socket-closed' events. */
  onSocketClosed(listener: (event: SocketClosedEvent) => void): () => void {
    return this.#follow('socket-closed', listener);
  }

  /** Every client's state and counters. For each: framesIn = framesOut + queued + dropped. */
  stats(): ClientStats[] {
    if (this.#closed) return [];
    return this.#call(() => this.#graph.stats()).sort((a, b) => a.handle - b.handle);
  }

  /** filter-dump: capture these clients' frames into a pcap file (another thread writes it). */
  addCapture(id: string, opts: CaptureOptions, handles: readonly number[]): void {
    this.#call(() => this.#graph.addCapture(id, { ...opts }, [...handles]));
  }

  /** Stop a capture: drained and closed on return. */
  removeCapture(id: string): CaptureStats {
    return this.#call(() => this.#graph.removeCapture(id));
  }

  captureStats(id: string): CaptureStats {
    return this.#call(() => this.#graph.captureStats(id));
  }

  /** Stop every IOThread and release every client; TAP fds stay with their owners. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#graph.close();
    for (const port of this.#ports.values()) port._closed();
    this.#ports.clear();
  }

  get closed(): boolean {
    return this.#closed;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #onEvent(
    kind: number,
    handle: number,
    errno: number,
    syscall: string,
    code: string,
    ring: VringName | null,
    reason: string,
  ): void {
    // This runs as a Node-API callback. An exception escaping it (a throwing onFrames
    // consumer or 'event' listener) is not an uncaught exception there: Node 20 drops it
    // with a deprecation warning per throw, so a consumer's bug would vanish. Rethrow it
    // from a plain tick instead, where it is uncaught as it would be from any callback.
    try {
      this.#dispatch(kind, handle, errno, syscall, code, ring, reason);
    } catch (e) {
      process.nextTick(() => {
        throw e;
      });
    }
  }

  #dispatch(
    kind: number,
    handle: number,
    errno: number,
    syscall: string,
    code: string,
    ring: VringName | null,
    reason: string,
  ): void {
    if (kind === NativeGraphEvent.portRx) {
      this.#ports.get(handle)?._onRx();
    } else if (kind === NativeGraphEvent.portTxRoom) {
      this.#ports.get(handle)?._onTxRoom();
    } else if (kind === NativeGraphEvent.tapDead || kind === NativeGraphEvent.socketClosed) {
      const base = { handle, name: this.#names.get(handle) ?? `#${handle}`, errno, code, syscall };
      const event: TapDeadEvent | SocketClosedDataPlaneEvent =
        kind === NativeGraphEvent.tapDead ? { type: 'tap-dead', ...base } : { type: 'socket-closed', ...base };
      if (kind === NativeGraphEvent.tapDead) {
        this.#dead.add(handle);
        const peer = this.#peers.get(handle);
        if (peer !== undefined) this.#updateLink(peer, 'tap-dead');
      }
      this.emit('event', event);
    } else if (kind === NativeGraphEvent.vringError) {
      const event: VringErrorEvent = {
        type: 'vring-error',
        handle,
        name: this.#names.get(handle) ?? `#${handle}`,
        ring: ring ?? 'rx',
        reason,
      };
      this.emit('event', event);
    }
  }

  #call<T>(fn: () => T): T {
    if (this.#closed) throw new NetplaneError('NETPLANE_CLOSED', 'the data plane is closed');
    try {
      return fn();
    } catch (e) {
      throw toNetplaneError(e);
    }
  }
}

// The codes the graph sets natively (native/binding/errors.cc); any other failure is a
// request the graph's state does not allow.
const GRAPH_CODES: ReadonlySet<string> = new Set<NetplaneErrorCode>([
  'NETPLANE_CLOSED',
  'NETPLANE_INVALID',
  'NETPLANE_NOT_FOUND',
  'NETPLANE_IN_USE',
]);

function toNetplaneError(e: unknown): unknown {
  if (!(e instanceof Error) || e instanceof TypeError || e instanceof RangeError) return e;
  const err = e as NativeSystemError;
  const code = GRAPH_CODES.has(err.code ?? '') ? (err.code as NetplaneErrorCode) : 'NETPLANE_INVALID_STATE';
  return new NetplaneError(code, err.message, { cause: e });
}
