// The Topology: QEMU's net object model for one engine instance. It owns the list of net
// clients (creation order), netdevs, NICs and hubs; wires queues; applies set_link and
// netdev_del with QEMU 7.2's rules; and reports every change to the data plane.
// (shared/reference/qemu-net-semantics.md sections 1, 2.4, 5, 7.)
import { ChardevRegistry } from '../chardev/socket';
import { NetplaneError } from '../errors';
import { MacPool } from '../devices/mac';
import type { RxFilterInfo } from '../devices/virtio-net';
import { isIdentifier } from '../options/errors';
import type { IothreadObjectOptions, DeviceOptions, FilterDumpObjectOptions, NetdevOptions } from '../options/types';
import { TypedEmitter } from '../util/typed-emitter';
import { AnnounceTimer, buildRarp, type AnnounceParams } from './announce';
import type { CaptureStats, ClientDeadEvent, DataPlane } from './dataplane';
import { NetFilters, type FilterStatsRow, type NetFilter } from './filters';
import { Hub } from './hub';
import { checkHubId, HubGraph } from './hub-graph';
import { infoNetwork, startupWarnings, type NetworkView } from './info';
import { invalid, notFound, unpeer, type LinkChangeCause, type OwnerHooks } from './internal';
import { Client, ClientRegistry, peerClients, type NetClient } from './net-client';
import { Netdev, type NetdevInit, type TapLike } from './netdev';
import { netdevType } from './netdevs/registry';
import { defaultAdoptTap, defaultOpenTap, runNetworkScript } from './netdevs/tap';
import type { AdoptTap, NetdevContext, OpenTap, RunScript } from './netdevs/types';
import { Nic } from './nic';
import { realizeNic, type NicQueueOptions, type RealizeContext } from './nic-realize';

/** What attachServedDevice() hands out. */
export interface ServedDevice {
  /** The client of each queue pair (the data plane's handle). */
  readonly handles: readonly number[];
  /** The tap queue each one is peered with. */
  readonly tapHandles: readonly number[];
  readonly tap: TapLike;
  /** The data plane runs virtqueues (mapGuestMemory, startVring, ...): rings can be served. */
  readonly runsVirtqueues: boolean;
  /**
   * Make the TAP's vnet header the guest's (TUNSETVNETHDRSZ, as QEMU does when the guest
   * negotiates MRG_RXBUF or VERSION_1), so frames cross with one write each way instead of
   * a header conversion and a writev. No-op for a TAP without vnet header; detach() puts
   * back the length the TAP had.
   */
  setVnetHdrLen(len: 10 | 12 | 20): void;
  /** Unpeer and remove the clients (idempotent). */
  detach(): void;
}

export interface TopologyOptions {
  /** The native data plane to keep in step; absent: the topology is pure state. */
  dataPlane?: DataPlane;
  /** Opens a TAP for `-netdev tap` (default: Tap.open from lib/tap.ts). */
  openTap?: OpenTap;
  /** Adopts fd=/fds= (default: Tap.adopt). */
  adoptTap?: AdoptTap;
  /** Resolves a monitor fd name (QMP getfd) used in fd=/fds=. */
  resolveFd?: (name: string) => number;
  /** Runs script=/downscript= (default: the program itself, no shell, ifname as argv[1]). */
  runScript?: RunScript;
  /** Non-fatal problems at run time (a failing downscript, a TAP that cannot be closed). */
  warn?: (msg: string) => void;
  /** The chardevs (-chardev, chardev-add) vhost-user netdevs name; default: a new, empty set. */
  chardevs?: ChardevRegistry;
}

/** Which front end a request came through; QEMU words some errors differently per path. */
export interface RequestOptions {
  /** 'cli': -netdev/-device/-object or HMP (QemuOpts); 'qmp': QMP and the library (default). */
  via?: 'cli' | 'qmp';
  /**
   * The netdev comes from -nic ('nic') or -net ('net'): its id may be QEMU's generated
   * `#net<k><rr>`; a -net one is not a netdev for netdev_del ("is not a netdev").
   */
  legacy?: 'nic' | 'net';
}

export interface LinkChangeEvent {
  /** The name set_link was given, or the netdev whose connection/deletion moved the link. */
  name: string;
  up: boolean;
  cause: LinkChangeCause;
}

/** A TAP netdev whose interface vanished under the data plane (once per netdev). */
export interface NetdevTapDeadEvent {
  /** The netdev id. */
  netdev: string;
  /** The queue the data plane saw die first, and how. */
  queueIndex: number;
  errno: number;
  code: string;
  syscall: string;
}

export type TopologyEvents = {
  'link-change': [event: LinkChangeEvent];
  'netdev-added': [netdev: Netdev];
  'netdev-deleted': [netdev: Netdev];
  'device-added': [nic: Nic];
  'device-deleted': [nic: Nic];
  /** A TAP's interface vanished: its queues and their NIC peers are link-down now. */
  'tap-dead': [event: NetdevTapDeadEvent];
  /** Failures that happen outside a call (closing a TAP, a failing backend ioctl). */
  error: [err: Error];
  /** A QMP event a netdev raised (a vhost-user back-end connecting or going away). */
  'qmp-event': [name: string, data: Record<string, unknown>];
};

export class Topology extends TypedEmitter<TopologyEvents> implements AsyncDisposable {
  readonly #reg = new ClientRegistry();
  readonly #netdevs = new Map<string, Netdev>();
  readonly #nics: Nic[] = [];
  readonly #hubs: HubGraph;
  readonly #iothreads = new Map<string, { options: IothreadObjectOptions; viaCli: boolean }>();
  readonly #macs = new MacPool();
  readonly #announceTimers = new Map<string, AnnounceTimer>();
  readonly #pending = new Set<Promise<void>>();
  readonly #nicByClient = new Map<Client, Nic>();
  readonly #netdevByClient = new Map<Client, Netdev>();
  /** The netdev a NIC was attached to; kept after that netdev is deleted (QEMU 7.2). */
  readonly #netdevOfNic = new Map<Nic, Netdev>();
  readonly #dp: DataPlane | undefined;
  readonly #warn: (msg: string) => void;
  readonly #netdevCtx: NetdevContext;
  readonly #realizeCtx: RealizeContext;
  readonly #unsubscribeDead: (() => void) | undefined;
  #closing: Promise<void> | undefined;
  #anonDevices = 0;
  readonly #filters: NetFilters;
  /** Netdevs made by -net (QEMU's is_netdev false). */
  readonly #legacyNet = new WeakSet<Netdev>();

  /** The chardevs vhost-user netdevs use (-chardev, QMP chardev-add). */
  readonly chardevs: ChardevRegistry;

  constructor(opts: TopologyOptions = {}) {
    super();
    this.chardevs = opts.chardevs ?? new ChardevRegistry();
    this.#dp = opts.dataPlane;
    this.#warn = opts.warn ?? ((msg) => process.emitWarning(msg, 'NetplaneWarning'));
    this.#hubs = new HubGraph(
      this.#reg,
      this.#dp,
      (id) => {
        const hub: Hub = new Hub(
          this.#hooks(() => this.#deleteHub(hub)),
          id,
        );
        return hub;
      },
      (target) => this.#hubHoldsTap(target, true),
    );
    this.#netdevCtx = {
      reg: this.#reg,
      dataPlane: this.#dp,
      hubs: this.#hubs,
      openTap: opts.openTap ?? defaultOpenTap,
      adoptTap: opts.adoptTap ?? defaultAdoptTap,
      runScript: opts.runScript ?? runNetworkScript,
      resolveFd: opts.resolveFd,
      newNetdev: (init: NetdevInit) => {
        const netdev: Netdev = new Netdev(
          this.#hooks(() => this.#deleteNetdev(netdev)),
          init,
        );
        return netdev;
      },
      checkIothread: (id) => this.#checkIothread(id),
      track: (p) => this.#track(p),
      reportError: (err) => this.#reportError(err),
      chardevs: this.chardevs,
      emitEvent: (name, data) => this.emit('qmp-event', name, data),
    };
    this.#realizeCtx = {
      reg: this.#reg,
      dataPlane: this.#dp,
      macs: this.#macs,
      nics: this.#nics,
      netdevOf: (c) => this.#netdevByClient.get(c),
      newNic: (init) => {
        const nic: Nic = new Nic(
          this.#hooks(() => this.#deleteNic(nic)),
          init,
        );
        return nic;
      },
      adopt: (nic, netdev) => {
        if (netdev) {
          netdev.nic = nic;
          this.#netdevOfNic.set(nic, netdev);
        }
        for (const c of nic.clients) this.#nicByClient.set(c, nic);
        this.#nics.push(nic);
      },
      nextAnonIndex: () => this.#anonDevices++,
      guard: (fn) => this.#guard(fn),
    };
    this.#unsubscribeDead = this.#dp?.onClientDead?.((e) => this.#onClientDead(e));
    this.#filters = new NetFilters({
      dataPlane: this.#dp,
      findNetdev: (name) => {
        const c = this.#reg.findNetdev(name);
        return c ? this.#netdevByClient.get(c) : undefined;
      },
      objectExists: (id) => this.#iothreads.has(id),
    });
  }

  /** The hooks a Netdev, Nic or Hub calls back through. */
  #hooks(remove: () => void): OwnerHooks {
    return {
      remove,
      setClientsLink: (clients, up, cause) => this.#setClientsLink(clients, up, cause, clients[0]?.name ?? ''),
    };
  }

  // ---- what exists -----------------------------------------------------------------------

  /** Listed netdevs by id (a deleted netdev leaves at once, even while a NIC still points at it). */
  get netdevs(): ReadonlyMap<string, Netdev> {
    return this.#netdevs;
  }

  /** NICs in creation order. */
  get nics(): readonly Nic[] {
    return this.#nics;
  }

  /** Hubs, newest first. */
  get hubs(): readonly Hub[] {
    return this.#hubs.all;
  }

  /** Every net client in creation order (QEMU's net_clients). */
  get clients(): readonly NetClient[] {
    return this.#reg.all;
  }

  /** The data plane this topology drives (absent: the topology is pure state). */
  get dataPlane(): DataPlane | undefined {
    return this.#dp;
  }

  get iothreads(): readonly string[] {
    return [...this.#iothreads.keys()];
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  // ---- objects ---------------------------------------------------------------------------

  /** -object iothread,id=... */
  addIothread(opts: IothreadObjectOptions, req: RequestOptions = {}): void {
    this.#checkOpen();
    if (opts.qomType !== 'iothread')
      throw invalid(`Parameter 'qom-type' does not accept value '${String(opts.qomType)}'`);
    if (typeof opts.id !== 'string' || !isIdentifier(opts.id)) throw invalid("Parameter 'id' expects an identifier");
    if (this.#iothreads.has(opts.id) || this.#filters.has(opts.id)) {
      throw new NetplaneError(
        'NETPLANE_DUPLICATE_ID',
        req.via === 'cli'
          ? `Duplicate ID '${opts.id}' for object`
          : `attempt to add duplicate property '${opts.id}' to object (type 'container')`,
      );
    }
    this.#iothreads.set(opts.id, { options: opts, viaCli: req.via === 'cli' });
    // The thread itself belongs to the data plane.
    this.#dp?.addIothread?.(opts.id, {
      pollMaxNs: opts['poll-max-ns'],
      pollGrow: opts['poll-grow'],
      pollShrink: opts['poll-shrink'],
    });
  }

  /** -object filter-dump / object-add: a pcap capture of a netdev's frames (filters.ts). */
  addFilter(opts: FilterDumpObjectOptions, req: RequestOptions = {}): NetFilter {
    this.#checkOpen();
    return this.#filters.add(opts, req.via === 'cli' ? 'cli' : 'qmp');
  }

  /** object-del of a filter: its capture ends, the file complete on return; its last counters. */
  delFilter(id: string): CaptureStats | undefined {
    this.#checkOpen();
    return this.#filters.delete(id);
  }

  /** The net filters (-object filter-dump), in creation order. */
  get filters(): readonly NetFilter[] {
    return this.#filters.all;
  }

  /** The counters of every running capture. */
  filterStats(): FilterStatsRow[] {
    return this.#filters.stats();
  }

  // ---- netdevs ---------------------------------------------------------------------------

  /** -netdev / netdev_add. */
  addNetdev(opts: NetdevOptions, req: RequestOptions = {}): Netdev {
    this.#checkOpen();
    if (typeof opts !== 'object' || opts === null) throw new TypeError('netdev options must be an object');
    const generated = req.legacy !== undefined && typeof opts.id === 'string' && /^#net[0-9]+$/.test(opts.id);
    if (typeof opts.id !== 'string' || (!isIdentifier(opts.id) && !generated))
      throw invalid("Parameter 'id' expects an identifier");
    if (this.#reg.findNetdev(opts.id)) {
      // The CLI/HMP path fails in option parsing when the id came through it too (QemuOpts
      // exists); every other combination reaches the net core's check.
      const existing = this.#netdevs.get(opts.id);
      const viaOpts = req.via === 'cli' && existing?.viaCli === true;
      throw new NetplaneError('NETPLANE_DUPLICATE_ID', `Duplicate ID '${opts.id}'${viaOpts ? ' for netdev' : ''}`);
    }
    const type = netdevType(opts.type);
    if (!type) throw invalid(`Parameter 'type' does not accept value '${String((opts as { type: unknown }).type)}'`);
    const netdev = type.create(opts, this.#netdevCtx, req.via === 'cli');
    for (const c of netdev.clients) this.#netdevByClient.set(c, netdev);
    if (req.legacy === 'net') this.#legacyNet.add(netdev);
    this.#netdevs.set(netdev.id, netdev);
    this.emit('netdev-added', netdev);
    return netdev;
  }

  /**
   * A hub port that is not a netdev, like the ones QEMU's legacy `-net` creates on hub 0:
   * named `hub<hubid>port<k>`, optionally peered with the first client of netdev `peer`.
   * netdev_del refuses it ("is not a netdev"); it goes away with its hub.
   */
  addHubPort(hubId: number, opts: { peer?: string } = {}): NetClient {
    this.#checkOpen();
    checkHubId(hubId);
    const target = opts.peer !== undefined ? this.#hubs.peerFor(opts.peer) : undefined;
    if (target) {
      const k = this.#hubs.find(hubId)?.nextPortNumber ?? 0;
      this.#hubs.checkLoop(`hub${hubId}port${k}`, hubId, target);
    }
    const hub = this.#hubs.obtain(hubId);
    const port = new Client(
      this.#reg.nextHandle(),
      `hub${hubId}port${hub.takePortNumber()}`,
      'hub',
      'hubport',
      false,
      undefined,
    );
    this.#hubs.attachPort(hub, port, target);
    return port;
  }

  /** netdev_del (QMP/HMP): QEMU 7.2 semantics (section 5.3). */
  delNetdev(id: string): void {
    this.#checkOpen();
    const nc = this.#reg.findNetdev(id);
    if (!nc) throw notFound(id);
    const netdev = this.#netdevByClient.get(nc);
    if (!nc.isNetdev || !netdev || this.#legacyNet.has(netdev)) {
      throw new NetplaneError('NETPLANE_INVALID_STATE', `Device '${id}' is not a netdev`, { qmpClass: 'GenericError' });
    }
    this.#deleteNetdev(netdev);
  }

  #deleteNetdev(netdev: Netdev): void {
    if (netdev.deleted) return;
    this.#filters.deleteFor(netdev); // QEMU 7.2: netdev_del destroys the netdev's filters
    const queues = netdev.clients;
    const first = queues[0];
    const nicPeer = first.peer?.type === 'nic' ? this.#nicByClient.get(first.peer) : undefined;
    if (nicPeer) {
      // The NIC keeps pointing at the backend (info network still shows it) but loses its
      // link; QEMU 7.2 cleans the backend up at once (tap closed, downscript run).
      nicPeer.peerDeleted = true;
      nicPeer.device.peerDeleted();
      for (const q of queues) if (q.peer) this.#setDown(q.peer, true);
    } else {
      for (const q of queues) {
        if (q.type === 'hubport' && q.peer) this.#hubHoldsTap(q.peer, false);
        unpeer(q);
      }
    }
    for (const q of queues) {
      this.#netdevByClient.delete(q);
      this.#freeClient(q);
      netdev.hub?.removePort(q);
    }
    if (this.#netdevs.get(netdev.id) === netdev) this.#netdevs.delete(netdev.id);
    netdev.closing = this.#track(netdevType(netdev.type)?.cleanup?.(netdev, this.#netdevCtx) ?? Promise.resolve());
    if (nicPeer) {
      this.#nicLinkStatusChanged(nicPeer, first.peer as Client);
      this.emit('link-change', { name: netdev.id, up: false, cause: 'netdev_del' });
    }
    this.emit('netdev-deleted', netdev);
    netdev.emit('closed');
  }

  /**
   * netplane extension (`-link a,b`): peer two backends queue by queue, as a NIC would.
   * Both must be unpeered and have the same number of queues.
   */
  link(a: string, b: string): void {
    this.#checkOpen();
    const na = this.#netdevs.get(a);
    if (!na) throw notFound(a);
    const nb = this.#netdevs.get(b);
    if (!nb) throw notFound(b);
    if (na === nb) throw invalid(`cannot link netdev '${a}' with itself`);
    for (const n of [na, nb]) {
      if (n.clients.some((c) => c.peer))
        throw new NetplaneError('NETPLANE_IN_USE', `netdev '${n.id}' is already in use`);
    }
    if (na.clients.length !== nb.clients.length) {
      throw invalid(`cannot link '${a}' (${na.clients.length} queues) with '${b}' (${nb.clients.length} queues)`);
    }
    // Two hub ports: the same loop rule as hubport netdev= (a hubport netdev has one queue).
    const hubA = na.hub;
    if (hubA && nb.hub) this.#hubs.checkLoop(a, hubA.id, nb.clients[0]!);
    na.clients.forEach((ca, i) => {
      const cb = nb.clients[i];
      peerClients(ca, cb);
      ca.queueIndex = cb.queueIndex = i;
      this.#dp?.connect(ca.handle, cb.handle);
    });
  }

  // ---- served devices (vhost-user exports) ----------------------------------------------

  /**
   * A virtio-net device that another process drives (a vhost-user export): one client per
   * queue pair, peered with the tap netdev's queue of the same number (the TAP steers a
   * flow's replies to the queue it came in on). With a data plane that runs virtqueues the
   * clients are 'virtio-device' clients on np-q<i>; the caller starts their rings.
   */
  attachServedDevice(netdevId: string, name: string, queuePairs: number): ServedDevice {
    this.#checkOpen();
    const netdev = this.#netdevs.get(netdevId);
    if (!netdev) throw notFound(netdevId);
    const tap = netdev.tap;
    if (netdev.type !== 'tap' || !tap) throw invalid(`netdev '${netdevId}' is not a tap netdev`);
    if (netdev.clients.some((c) => c.peer))
      throw new NetplaneError('NETPLANE_IN_USE', `netdev '${netdevId}' is already in use`);
    if (!Number.isInteger(queuePairs) || queuePairs < 1 || queuePairs > netdev.clients.length) {
      throw invalid(`num-queues=${queuePairs} needs 1 to ${netdev.clients.length} queues of netdev '${netdevId}'`);
    }
    const dp = this.#dp;
    const runsVirtqueues = dp !== undefined && typeof (dp as { startVring?: unknown }).startVring === 'function';
    const clients: Client[] = [];
    // Clients the data plane never saw are only the registry's.
    const free = (c: Client): void => (runsVirtqueues ? this.#freeClient(c) : this.#reg.remove(c));
    try {
      for (let q = 0; q < queuePairs; q++) {
        const tq = netdev.clients[q]!;
        const c = new Client(this.#reg.nextHandle(), name, 'vhost-user-net', 'nic', false, tq.iothread);
        c.queueIndex = tq.queueIndex = q;
        c.vnetHdrLen = tq.vnetHdrLen;
        if (runsVirtqueues) {
          dp.addClient({
            kind: 'virtio-device',
            handle: c.handle,
            name,
            queueIndex: q,
            ...(tq.iothread !== undefined ? { iothread: tq.iothread } : {}),
          });
          dp.connect(c.handle, tq.handle);
        }
        peerClients(c, tq);
        this.#reg.add(c);
        clients.push(c);
      }
    } catch (e) {
      for (const c of clients) {
        unpeer(c);
        free(c);
      }
      throw e;
    }
    let detached = false;
    const hdrLen0 = tap.vnetHdrLen;
    const setHdrLen = (len: number): void => {
      if (!tap.hasVnetHdr || hdrLen0 === 0 || tap.vnetHdrLen === len) return;
      tap.setVnetHdrLen(len as 10 | 12 | 20); // per interface: every queue at once
      for (const tq of netdev.clients) {
        tq.vnetHdrLen = len;
        if (dp && !tq.removed) dp.setVnetHdrLen(tq.handle, len);
      }
      for (const c of clients) c.vnetHdrLen = len;
    };
    return {
      handles: clients.map((c) => c.handle),
      tapHandles: clients.map((_, q) => netdev.clients[q]!.handle),
      tap,
      runsVirtqueues,
      setVnetHdrLen: (len) => {
        if (!detached) setHdrLen(len);
      },
      detach: () => {
        if (detached) return;
        detached = true;
        for (const c of clients) {
          unpeer(c);
          if (!c.removed) free(c);
        }
        setHdrLen(hdrLen0);
      },
    };
  }

  // ---- devices ---------------------------------------------------------------------------

  /**
   * -device / device_add virtio-net-pci: realize, attach the netdev's queues, reset. The
   * second argument also says how the queues meet the hypervisor (NicQueueOptions: packet
   * ports, bare or with the negotiated header, or native virtqueues).
   */
  addDevice(opts: DeviceOptions, req: RequestOptions & NicQueueOptions = {}): Nic {
    this.#checkOpen();
    const nic = realizeNic(opts, this.#realizeCtx, req);
    this.emit('device-added', nic);
    return nic;
  }

  #deleteNic(nic: Nic): void {
    if (nic.closed) return;
    this.#macs.release(nic.confMac);
    for (const c of [...nic.clients].reverse()) {
      unpeer(c); // a backend deleted earlier is already gone; a live one becomes free
      this.#nicByClient.delete(c);
      this.#freeClient(c);
    }
    const netdev = this.#netdevOfNic.get(nic);
    if (netdev && netdev.nic === nic) netdev.nic = undefined;
    this.#netdevOfNic.delete(nic);
    const i = this.#nics.indexOf(nic);
    if (i >= 0) this.#nics.splice(i, 1);
    nic.markClosed();
    this.emit('device-deleted', nic);
  }

  /**
   * A hub port peers the first queue of a TAP only, as in QEMU. The kernel spreads a
   * multiqueue TAP's flows over all its queues by a flow hash seeded per boot, so in QEMU
   * every flow it puts on a queue >= 1 is lost. Here the other queues are detached from
   * the interface (TUNSETQUEUE) while the port holds the TAP, so the kernel sends every flow
   * to queue 0, and attached again when the port lets go.
   */
  #hubHoldsTap(target: Client, held: boolean): void {
    const netdev = this.#netdevByClient.get(target);
    const tap = netdev?.tap;
    if (!netdev || !tap || netdev.clients[0] !== target) return;
    this.#guard(() => {
      for (let q = 1; q < netdev.clients.length; q++) {
        if (tap.queueEnabled(q) === !held) continue;
        tap.setQueueEnabled(q, !held);
        this.#dp?.setQueueEnabled(netdev.clients[q]!.handle, !held);
      }
    });
  }

  #deleteHub(hub: Hub): void {
    for (const port of [...hub.portClients]) {
      const netdev = this.#netdevByClient.get(port);
      if (netdev) {
        this.#deleteNetdev(netdev);
      } else {
        if (port.peer) this.#hubHoldsTap(port.peer, false);
        unpeer(port);
        this.#freeClient(port);
        hub.removePort(port);
      }
    }
    this.#hubs.remove(hub);
    hub.markClosed();
  }

  // ---- link state ------------------------------------------------------------------------

  /** QMP set_link (section 5.1). */
  setLink(name: string, up: boolean): void {
    this.#checkOpen();
    const ncs = this.#reg.named(name);
    if (ncs.length === 0) throw notFound(name);
    this.#setClientsLink(ncs, up, 'set_link', name);
  }

  #setClientsLink(ncs: readonly Client[], up: boolean, cause: LinkChangeCause, name: string): void {
    if (ncs.length === 0) return;
    for (const nc of ncs) this.#setDown(nc, !up);
    const first = ncs[0];
    const firstNic = first.type === 'nic' ? this.#nicByClient.get(first) : undefined;
    if (firstNic) this.#nicLinkStatusChanged(firstNic, first);
    const peer = first.peer;
    if (peer?.type === 'nic') {
      // Only a NIC peer follows; hub ports and other backends keep their own flag. The NIC
      // of a dead TAP queue stays down: no set_link brings that interface back.
      for (const nc of ncs) if (nc.peer && !(up && nc.dead)) this.#setDown(nc.peer, !up);
      const peerNic = this.#nicByClient.get(peer);
      if (peerNic) this.#nicLinkStatusChanged(peerNic, peer);
    }
    this.emit('link-change', { name, up, cause });
  }

  #setDown(c: Client, down: boolean): void {
    if (!down && c.dead) return; // a TAP whose interface vanished stays down
    if (c.linkDown === down) return;
    c.linkDown = down;
    if (!c.removed) this.#dp?.setLinkDown(c.handle, down);
    const netdev = this.#netdevByClient.get(c);
    if (netdev && netdev.clients[0] === c) netdev.emit('link-change', !down);
  }

  /**
   * The data plane found a client's device gone (a TAP whose interface was deleted). It
   * stopped polling that queue and took it down; here the whole netdev follows: every queue
   * and its NIC peer go link-down (the guest sees LINK_UP clear, notified once if the driver
   * is up, as with set_link), then one 'tap-dead' event per netdev. Queues that die after
   * the first are only marked. Events for clients already deleted are ignored.
   */
  #onClientDead(e: ClientDeadEvent): void {
    const c = this.#reg.all.find((x) => x.handle === e.handle);
    if (!c || c.type !== 'tap' || c.dead) return;
    const netdev = this.#netdevByClient.get(c);
    const first = netdev !== undefined && !netdev.clients.some((q) => q.dead);
    c.dead = true;
    if (!netdev || !first) return;
    this.#guard(() => this.#setClientsLink(netdev.clients, false, 'tap-dead', netdev.id));
    this.emit('tap-dead', {
      netdev: netdev.id,
      queueIndex: c.queueIndex,
      errno: e.errno,
      code: e.code,
      syscall: e.syscall,
    });
  }

  /** virtio-net's link_status_changed: LINK_UP follows that queue; notify only on change. */
  #nicLinkStatusChanged(nic: Nic, nc: Client): void {
    if (nic.device.linkStatusChanged(nc.linkDown)) nic.emit('link-change', !nc.linkDown);
  }

  // ---- queries ---------------------------------------------------------------------------

  /** QMP query-rx-filter (section 7.1), NIC queue 0 only; broadcast-allowed is truthful. */
  queryRxFilter(name?: string): RxFilterInfo[] {
    this.#checkOpen();
    const out: RxFilterInfo[] = [];
    for (const nc of this.#reg.all) {
      if (name !== undefined && nc.name !== name) continue;
      if (nc.type !== 'nic') {
        if (name !== undefined) {
          throw new NetplaneError('NETPLANE_INVALID_STATE', `net client(${name}) isn't a NIC`, {
            qmpClass: 'GenericError',
          });
        }
        continue;
      }
      if (nc.queueIndex !== 0) continue;
      const nic = this.#nicByClient.get(nc);
      if (nic) out.push(nic.device.queryRxFilter(nc.name));
      if (name !== undefined) break;
    }
    if (out.length === 0 && name !== undefined) {
      throw new NetplaneError('NETPLANE_NOT_FOUND', `invalid net client name: ${name}`, { qmpClass: 'GenericError' });
    }
    return out;
  }

  /** HMP `info network` in QEMU 7.2's format and order; lines end in '\n'. */
  infoNetwork(): string {
    return infoNetwork(this.#view());
  }

  /** The warnings QEMU prints after machine creation (section 1.9), without the prefix. */
  startupWarnings(): string[] {
    return startupWarnings(this.#view());
  }

  #view(): NetworkView {
    return { hubs: this.#hubs.all, clients: this.#reg.all, after: (c) => this.#filters.infoLines(c) };
  }

  // ---- announce-self ---------------------------------------------------------------------

  /** QMP announce-self: RARP rounds from every (or the listed) NIC; rounds 0 cancels `id`. */
  announceSelf(params: AnnounceParams): void {
    this.#checkOpen();
    for (const k of ['initial', 'max', 'rounds', 'step'] as const) {
      if (!Number.isSafeInteger(params[k])) throw invalid(`Parameter '${k}' expects an integer`);
    }
    if (params.rounds < 0) throw invalid("Parameter 'rounds' must not be negative");
    const id = params.id ?? '';
    let timer = this.#announceTimers.get(id);
    if (!timer) {
      timer = new AnnounceTimer((p) => this.#announceRound(p));
      this.#announceTimers.set(id, timer);
    }
    timer.start({ ...params, ...(params.interfaces ? { interfaces: [...params.interfaces] } : {}) });
  }

  #announceRound(p: AnnounceParams): void {
    for (const nc of [...this.#reg.all]) {
      if (nc.type !== 'nic' || nc.queueIndex !== 0) continue;
      if (p.interfaces && !p.interfaces.includes(nc.name)) continue;
      const nic = this.#nicByClient.get(nc);
      if (!nic) continue;
      const frame = buildRarp(nic.confMac);
      // Runs from a timer: a failure must become an 'error' event, never an uncaught throw.
      this.#guard(() => {
        // Native virtqueues have no port to send from: the guest announces itself (ANNOUNCE).
        if (!nic.virtqueues) this.#dp?.sendRaw?.(nc.handle, frame);
        nic.emit('announce', frame);
        nic.device.announce();
      });
    }
  }

  // ---- lifetime --------------------------------------------------------------------------

  /** Unplug every NIC, delete every netdev (downscripts run), wait for the TAPs to close. */
  close(): Promise<void> {
    if (!this.#closing) this.#closing = this.#closeAll();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #closeAll(): Promise<void> {
    this.#unsubscribeDead?.();
    for (const t of this.#announceTimers.values()) t.cancel();
    this.#announceTimers.clear();
    this.#filters.closeAll();
    for (const nic of [...this.#nics].reverse()) this.#deleteNic(nic);
    for (const netdev of [...this.#netdevs.values()]) this.#deleteNetdev(netdev);
    for (const hub of [...this.#hubs.all]) this.#deleteHub(hub);
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  // ---- helpers ---------------------------------------------------------------------------

  /** Take a client out of the list and the data plane. */
  #freeClient(c: Client): void {
    this.#reg.remove(c);
    this.#dp?.removeClient(c.handle);
  }

  #checkOpen(): void {
    if (this.#closing) throw new NetplaneError('NETPLANE_CLOSED', 'the topology is closed');
  }

  #checkIothread(id: string | undefined): void {
    if (id !== undefined && !this.#iothreads.has(id))
      throw invalid(`iothread '${id}' not found (add it with -object iothread,id=${id})`);
  }

  /** Run an operation the guest caused on a netdev; failures become 'error' events, not throws. */
  #guard(fn: () => void): boolean {
    try {
      fn();
      return true;
    } catch (err) {
      this.#reportError(err);
      return false;
    }
  }

  #track(p: Promise<void>): Promise<void> {
    const tracked = p.catch((err) => this.#reportError(err)).finally(() => this.#pending.delete(tracked));
    this.#pending.add(tracked);
    return tracked;
  }

  #reportError(err: unknown): void {
    const e = err instanceof Error ? err : new Error(String(err));
    if (this.listenerCount('error') > 0) this.emit('error', e);
    else this.#warn(e.message);
  }
}
