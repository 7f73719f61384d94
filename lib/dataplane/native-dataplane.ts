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
  type VringName,
} from '../native';
import type { ClientDeadEvent, ClientDescriptor, DataPlane, IothreadParams } from '../topology/dataplane';
import { GuestMemory } from './guest-memory';
import { PacketPort, preparePort, type PacketPortOptions, type PortVnetHdrLen } from './packet-port';

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

/** startVring's ring: as the native spec (lib/native.ts NativeVringSpec), with a GuestMemory. */
export type VringConfig = Omit<NativeVringSpec, 'memory'> & { memory: GuestMemory };

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
export type DataPlaneEvent = TapDeadEvent | VringErrorEvent;

export interface NativeDataPlaneOptions {
  /**
   * Enable TAP offloads (TUNSETOFFLOAD) exactly where every receiver takes offloaded frames,
   * so 64 KiB GSO frames cross untouched (default true).
   */
  autoOffloads?: boolean;
  /** Ring options for the packet ports created for 'port' clients (NIC queues). */
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
      case 'port':
        this.#addPort(c.handle, c.name, c.queueIndex, iothread, {
          ...this.#nicPorts,
          vnetHdrLen: (c.vnetHdrLen ?? this.#nicPorts.vnetHdrLen ?? 0) as PortVnetHdrLen,
        });
        break;
      case 'virtio-device':
        this.#call(() =>
          this.#graph.addVirtioDevice({ handle: c.handle, name: c.name, queueIndex: c.queueIndex, iothread }),
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
    if (!(cfg?.memory instanceof GuestMemory)) throw new TypeError('memory must be a GuestMemory');
    const memory = cfg.memory._native();
    this.#call(() => this.#graph.startVring(handle, { ...cfg, memory }));
  }

  /** Stop one ring at once; the next avail index to resume from (GET_VRING_BASE). */
  stopVring(handle: number, ring: VringName): number {
    return this.#call(() => this.#graph.stopVring(handle, ring));
  }

  /** The packet port of a 'port' client (or one made by createPort). */
  port(handle: number): PacketPort | undefined {
    return this.#ports.get(handle);
  }

  removeClient(handle: number): void {
    this.#call(() => this.#graph.remove(handle));
    this.#names.delete(handle);
    const port = this.#ports.get(handle);
    if (port) {
      this.#ports.delete(handle);
      port._closed();
    }
  }

  connect(a: number, b: number): void {
    this.#call(() => this.#graph.connect(a, b));
  }

  setLinkDown(handle: number, down: boolean): void {
    this.#call(() => this.#graph.setLinkDown(handle, down));
  }

  setVnetHdrLen(handle: number, len: number): void {
    this.#call(() => this.#graph.setVnetHdrLen(handle, len));
    this.#ports.get(handle)?._setVnetHdrLen(len as PortVnetHdrLen);
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
    const onEvent = (e: DataPlaneEvent): void => {
      if (e.type === 'tap-dead') listener({ handle: e.handle, errno: e.errno, code: e.code, syscall: e.syscall });
    };
    this.on('event', onEvent);
    return () => void this.off('event', onEvent);
  }

  /** Every client's state and counters. For each: framesIn = framesOut + queued + dropped. */
  stats(): ClientStats[] {
    if (this.#closed) return [];
    return this.#call(() => this.#graph.stats()).sort((a, b) => a.handle - b.handle);
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
    } else if (kind === NativeGraphEvent.tapDead) {
      const event: TapDeadEvent = {
        type: 'tap-dead',
        handle,
        name: this.#names.get(handle) ?? `#${handle}`,
        errno,
        code,
        syscall,
      };
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
