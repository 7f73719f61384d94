// The seam between the topology (pure TypeScript state: who is peered with whom, link
// flags, queue indices) and the native data plane that moves the frames. The topology
// calls these hooks as it changes; a topology without a data plane (unit tests, a
// hypervisor that moves frames itself) passes none.
import type { NativeCaptureOptions, NativeCaptureStats, NativeClientStats, NativeSockAddr } from '../native';
import type { SlirpConfig } from '../options/user';

interface ClientBase {
  /** Stable numeric handle assigned by the topology, unique for the topology's lifetime. */
  handle: number;
  name: string;
  /**
   * The queue this client serves: a TAP queue's number (given at add, before a NIC or
   * -link pairs queue i with index i), a NIC queue's index, 0 for a hub port. The native
   * data plane places each index on its own IOThread and reports it in its counters.
   */
  queueIndex: number;
  /** IOThread id this client runs on (a hub and its ports share one). */
  iothread?: string;
}

/** One queue of a TAP netdev. */
export interface TapClientDescriptor extends ClientBase {
  kind: 'tap';
  /** The queue's fd (owned by the TapDevice). */
  fd: number;
  /** vnet header length currently set on the fd (0 = none). */
  vnetHdrLen?: number;
  /** Batch reads and writes through io_uring where it can be set up (io-uring, on by default without sndbuf). */
  ioUring?: boolean;
}

/** A hub port (a hubport netdev, or a port of a legacy hub). */
export interface HubPortClientDescriptor extends ClientBase {
  kind: 'hubport';
  hubId: number;
}

/** A NIC queue: a packet port (shared-memory rings) the hypervisor reads and writes. */
export interface PortClientDescriptor extends ClientBase {
  kind: 'port';
  /** The vnet header the device exchanges with its netdev (virtio-net's host_hdr_len). */
  vnetHdrLen?: number;
  /** Bare frames: the port never carries a vnet header (setVnetHdrLen leaves it at 0). */
  bare?: boolean;
}

/**
 * A guest's virtio-net queue pair served natively from its rings (rx vq 2i, tx vq 2i+1 for
 * queueIndex i): the vhost-user back-end's queues. Starts with both rings stopped; the data
 * plane's setVirtioFeatures / startVring / stopVring drive it.
 */
export interface VirtioDeviceClientDescriptor extends ClientBase {
  kind: 'virtio-device';
}

/** A user netdev: a libslirp stack configured as `config` says (checked and defaulted). */
export interface UserClientDescriptor extends ClientBase {
  kind: 'user';
  config: SlirpConfig;
}

/**
 * A stream socket (`-netdev stream`, `socket,listen=|connect=`): 4-byte big-endian length
 * then the frame. Starts without a connection; setSocketFd gives it one.
 */
export interface StreamClientDescriptor extends ClientBase {
  kind: 'stream';
}

/** A datagram socket (`-netdev dgram`, `socket,udp=|mcast=`): one bare frame per datagram. */
export interface DgramClientDescriptor extends ClientBase {
  kind: 'dgram';
  /** Where frames go (null: the socket's connected peer). */
  dest: NativeSockAddr | null;
}

/**
 * A queue pair netplane drives as the virtio driver (the vhost-user front-end with no guest):
 * rings in memory netplane allocated, started by the data plane's startDriverRing.
 */
export interface VirtioDriverClientDescriptor extends ClientBase {
  kind: 'virtio-driver';
}

/** What the data plane needs to know about one net client (one queue of a netdev or NIC). */
export type ClientDescriptor =
  | TapClientDescriptor
  | HubPortClientDescriptor
  | PortClientDescriptor
  | VirtioDeviceClientDescriptor
  | UserClientDescriptor
  | StreamClientDescriptor
  | DgramClientDescriptor
  | VirtioDriverClientDescriptor;

/** A stream/dgram client's socket went away under the data plane (EOF or an error). */
export interface SocketClosedEvent {
  handle: number;
  /** 0 at end of stream; otherwise the errno and its name. */
  errno: number;
  code: string;
  syscall: string;
}

/** Adaptive polling of an IOThread (`-object iothread,poll-max-ns=..,poll-grow=..,poll-shrink=..`). */
export interface IothreadParams {
  pollMaxNs?: number;
  pollGrow?: number;
  pollShrink?: number;
}

/**
 * One client's counters, as a data plane reports them (QMP query-netplane-stats): the part
 * of the engine's record (lib/native.ts) every data plane fills in. For each client
 * framesIn = framesOut + queued + dropped; drops by reason sum to `dropped`.
 */
export type DataPlaneClientStats = Pick<
  NativeClientStats,
  | 'handle'
  | 'name'
  | 'kind'
  | 'queueIndex'
  | 'iothread'
  | 'peer'
  | 'hubId'
  | 'linkDown'
  | 'dead'
  | 'enabled'
  | 'framesIn'
  | 'bytesIn'
  | 'framesOut'
  | 'bytesOut'
  | 'queued'
  | 'dropped'
  | 'drops'
> &
  Partial<Pick<NativeClientStats, 'broken' | 'error' | 'virtio' | 'ioUring'>>;

/** A client whose device the data plane found gone (a TAP whose interface vanished). */
export interface ClientDeadEvent {
  handle: number;
  /** The errno that showed it (EBADFD, EIO, ENODEV, ...) and its name. */
  errno: number;
  code: string;
  /** Where it showed: 'read', 'write', 'poll', ... */
  syscall: string;
}

/** filter-dump: what the data plane captures and where (lib/topology/filters.ts). */
export type CaptureOptions = NativeCaptureOptions;

/** A capture's counters: frames = captured; dropped = not captured (buffer full). */
export type CaptureStats = NativeCaptureStats;

export interface DataPlane {
  /**
   * Optional: create (or retune) the IOThread `-object iothread,id=..` names, so clients
   * added with that iothread run on it.
   */
  addIothread?(id: string, params: IothreadParams): void;
  addClient(client: ClientDescriptor): void;
  removeClient(handle: number): void;
  /** Peer two clients (symmetric; each is peered at most once). */
  connect(a: number, b: number): void;
  setLinkDown(handle: number, down: boolean): void;
  /** The vnet header length a client expects on input changed (TUNSETVNETHDRSZ done). */
  setVnetHdrLen(handle: number, len: number): void;
  /** Queue attached/detached (TUNSETQUEUE done): stop or resume polling it. */
  setQueueEnabled(handle: number, enabled: boolean): void;
  /**
   * Optional: send `frame` from client `handle` to its peer with QEMU's RAW flag (used by
   * announce-self's RARP): a receiver that expects a vnet header gets a zeroed one prepended.
   * Dropped when the sender is link-down or has no peer.
   */
  sendRaw?(handle: number, frame: Uint8Array): void;
  /**
   * Optional: every client's counters as one snapshot, in handle order. For each client
   * framesIn = framesOut + queued + dropped.
   */
  stats?(): DataPlaneClientStats[];
  /**
   * Optional: call `listener` when a client's device dies under the data plane (a TAP whose
   * interface was deleted). The data plane has already stopped polling it and taken its link
   * down; the topology then takes the netdev's link (and its NIC's) down too. Called on the
   * JS thread, once per dead client. Returns a function that unsubscribes.
   */
  onClientDead?(listener: (event: ClientDeadEvent) => void): () => void;
  /**
   * Optional: drive a user netdev's libslirp stack (lib/topology/netdevs/user.ts): add or
   * remove a host forwarding rule, add a guestfwd command, or read `info usernet`'s table.
   * Data planes without it cannot run user netdevs' stacks; the topology then only checks
   * the options.
   */
  slirpControl?(handle: number, op: SlirpControlOp): SlirpControlResult;
  /** Optional: whether user netdevs can run here; `error` names what to install. */
  libslirp?(): { version: string } | { error: string };
  /**
   * Optional (stream/dgram netdevs): give a socket client its connected socket; the data
   * plane owns and closes the fd from then on. -1 closes the current one.
   */
  setSocketFd?(handle: number, fd: number): void;
  /** Optional: call `listener` when a socket client's connection went away. Returns an unsubscribe. */
  onSocketClosed?(listener: (event: SocketClosedEvent) => void): () => void;
  /** Optional: stop forwarding and release every client (TAP fds stay with their owners). */
  close?(): void;
  /**
   * Optional (filter-dump): copy the frames of these clients, both directions as asked,
   * into a pcap file written by another thread; never blocks the clients' threads.
   */
  addCapture?(id: string, opts: CaptureOptions, handles: readonly number[]): void;
  /** Stop capture `id`: the file is complete and closed on return; its last counters. */
  removeCapture?(id: string): CaptureStats;
  captureStats?(id: string): CaptureStats;
}

/** What slirpControl does (the native graph's slirpControl). */
export type SlirpControlOp =
  | { op: 'hostfwd-add'; udp: boolean; hostAddr: string; hostPort: number; guestAddr: string; guestPort: number }
  | { op: 'hostfwd-remove'; udp: boolean; hostAddr: string; hostPort: number }
  | { op: 'guestfwd-exec'; guestAddr: string; guestPort: number; command: string }
  | { op: 'info' };
/** hostfwd-remove: whether a rule was found; info: the table; otherwise undefined. */
export type SlirpControlResult = boolean | string | undefined;
