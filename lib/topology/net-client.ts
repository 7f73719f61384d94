// Net clients (QEMU's NetClientState): one endpoint of a point-to-point link. Every backend
// queue, every NIC queue and every hub port is one. The registry keeps them in creation
// order in one list per Topology and answers QEMU's lookups over it.

export type NetClientType = 'nic' | 'tap' | 'hubport' | 'user' | 'stream' | 'dgram' | 'socket' | 'vhost-user';

/** The read-only view users get. */
export interface NetClient {
  /** Stable numeric id for the data plane, unique within the Topology. */
  readonly handle: number;
  /** Not unique: queues of one netdev share it, and a NIC may carry a netdev's id. */
  readonly name: string;
  /** 'tap', 'hub' or the NIC's device type ('virtio-net-pci'). */
  readonly model: string;
  readonly type: NetClientType;
  readonly queueIndex: number;
  /** The other end of the link (symmetric), or null. */
  readonly peer: NetClient | null;
  readonly linkDown: boolean;
  /** A TAP queue whose interface vanished (the data plane reported it): down for good. */
  readonly dead: boolean;
  /** Free text `info network` prints after the type. */
  readonly infoStr: string;
  /** Created by -netdev/netdev_add (false for NIC queues). */
  readonly isNetdev: boolean;
  /**
   * Length of the vnet header this client expects on input (0 = none). Tap queues: the
   * TUNSETVNETHDRSZ value. NIC queues: the header the device exchanges with its backend
   * (virtio-net's host_hdr_len; QEMU keeps no such field on the NIC).
   */
  readonly vnetHdrLen: number;
  /** The IOThread the client runs on (undefined = main loop). */
  readonly iothread: string | undefined;
}

/** The mutable record the topology works on. */
export class Client implements NetClient {
  queueIndex = 0;
  peer: Client | null = null;
  linkDown = false;
  dead = false;
  infoStr = '';
  vnetHdrLen = 0;
  /** Removed from the registry (deleted); a NIC may still point at it (QEMU 7.2 netdev_del). */
  removed = false;

  constructor(
    readonly handle: number,
    readonly name: string,
    readonly model: string,
    readonly type: NetClientType,
    readonly isNetdev: boolean,
    readonly iothread: string | undefined,
  ) {}
}

export class ClientRegistry {
  readonly #list: Client[] = [];
  #nextHandle = 1;

  nextHandle(): number {
    return this.#nextHandle++;
  }

  /** All live clients in creation order. */
  get all(): readonly Client[] {
    return this.#list;
  }

  add(c: Client): void {
    this.#list.push(c);
  }

  remove(c: Client): void {
    const i = this.#list.indexOf(c);
    if (i >= 0) this.#list.splice(i, 1);
    c.removed = true;
  }

  /** QEMU's assign_name: `<model>.<k>`, k = how many clients of that model exist now. */
  autoName(model: string): string {
    return `${model}.${this.#list.filter((c) => c.model === model).length}`;
  }

  /** Every client with that name, in list order, optionally skipping one type. */
  named(name: string, exceptType?: NetClientType): Client[] {
    return this.#list.filter((c) => c.name === name && c.type !== exceptType);
  }

  /** QEMU's find_netdev: the first non-NIC client with that name. */
  findNetdev(name: string): Client | undefined {
    return this.#list.find((c) => c.name === name && c.type !== 'nic');
  }
}

/** Peer two clients; each may be peered only once (QEMU asserts; we throw). */
export function peerClients(a: Client, b: Client): void {
  if (a.peer !== null || b.peer !== null) {
    const busy = a.peer !== null ? a : b;
    throw new Error(`net client ${busy.name} (queue ${busy.queueIndex}) already has a peer`);
  }
  a.peer = b;
  b.peer = a;
}
