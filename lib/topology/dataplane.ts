// The seam between the topology (pure TypeScript state: who is peered with whom, link
// flags, queue indices) and the native data plane that moves the frames. The topology
// calls these hooks as it changes; a topology without a data plane (unit tests, a
// hypervisor that moves frames itself) passes none.

/** What the data plane needs to know about one net client (one queue of a netdev or NIC). */
export interface ClientDescriptor {
  /** Stable numeric handle assigned by the topology, unique for the topology's lifetime. */
  handle: number;
  kind: 'tap' | 'hubport' | 'nic';
  name: string;
  /**
   * The queue this client serves: a TAP queue's number (given at add, before a NIC or
   * -link pairs queue i with index i), a NIC queue's index, 0 for a hub port. The native
   * data plane places each index on its own IOThread and reports it in its counters.
   */
  queueIndex: number;
  /** tap: the queue's fd (owned by the TapDevice); others: undefined. */
  fd?: number;
  /** tap: vnet header length currently set on the fd (0 = none). */
  vnetHdrLen?: number;
  /** hubport: the hub id. */
  hubId?: number;
  /** IOThread id this client runs on (a hub and its ports share one). */
  iothread?: string;
}

/** One client's counters, as a data plane reports them (QMP query-netplane-stats). */
export interface DataPlaneClientStats {
  handle: number;
  name: string;
  /** 'tap', 'hubport', or 'jsport' (a NIC queue or a JavaScript packet port). */
  kind: string;
  queueIndex: number;
  iothread: string;
  /** The peer's handle, or null. */
  peer: number | null;
  hubId: number | null;
  linkDown: boolean;
  /** A TAP whose interface vanished. */
  dead: boolean;
  /** false: the queue is detached (TUNSETQUEUE) and not polled. */
  enabled: boolean;
  framesIn: number;
  bytesIn: number;
  framesOut: number;
  bytesOut: number;
  queued: number;
  dropped: number;
  /** Drops by reason (camelCase reason names); they sum to `dropped`. */
  drops: Readonly<Record<string, number>>;
}

/** A client whose device the data plane found gone (a TAP whose interface vanished). */
export interface ClientDeadEvent {
  handle: number;
  /** The errno that showed it (EBADFD, EIO, ENODEV, ...) and its name. */
  errno: number;
  code: string;
  /** Where it showed: 'read', 'write', 'poll', ... */
  syscall: string;
}

export interface DataPlane {
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
}
