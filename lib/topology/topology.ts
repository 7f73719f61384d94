// The Topology: QEMU's net object model for one engine instance. It owns the list of net
// clients (creation order), netdevs, NICs and hubs; wires queues; applies set_link and
// netdev_del with QEMU 7.2's rules; and reports every change to the data plane.
// (shared/reference/qemu-net-semantics.md sections 1, 2.4, 5, 7.)
import { NetplaneError } from '../errors';
import { formatMac, MacPool, parseMac, type MacBytes } from '../devices/mac';
import { VirtioNet, type RxFilterInfo, type VirtioNetBackend } from '../devices/virtio-net';
import type {
  DeviceOptions,
  HubportNetdevOptions,
  IothreadObjectOptions,
  NetdevOptions,
  TapNetdevOptions,
} from '../options/types';
import type { TapOpenOptions } from '../tap';
import { AnnounceTimer, buildRarp, type AnnounceParams } from './announce';
import type { ClientDeadEvent, DataPlane } from './dataplane';
import { TypedEmitter } from '../util/typed-emitter';
import { Hub } from './hub';
import type { LinkChangeCause, TopologyInternal } from './internal';
import { Client, ClientRegistry, peerClients, type NetClient } from './net-client';
import { Netdev } from './netdev';
import { Nic } from './nic';
import {
  defaultAdoptTap,
  defaultOpenTap,
  runNetworkScript,
  scriptDisabled,
  type AdoptTap,
  type OpenTap,
  type RunScript,
  type TapLike,
} from './tap-backend';

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
}

/** Which front end a request came through; QEMU words some errors differently per path. */
export interface RequestOptions {
  /** 'cli': -netdev/-device/-object or HMP (QemuOpts); 'qmp': QMP and the library (default). */
  via?: 'cli' | 'qmp';
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
};

const ID_RE = /^[A-Za-z][A-Za-z0-9._-]*$/;
const MAX_QUEUES = 1024;
const NIC_MODELS = new Set(['virtio-net-pci']);

function invalid(message: string): NetplaneError {
  return new NetplaneError('NETPLANE_INVALID_OPTION', message);
}

function notFound(name: string): NetplaneError {
  return new NetplaneError('NETPLANE_NOT_FOUND', `Device '${name}' not found`, { qmpClass: 'DeviceNotFound' });
}

export class Topology extends TypedEmitter<TopologyEvents> implements AsyncDisposable {
  readonly #reg = new ClientRegistry();
  readonly #netdevs = new Map<string, Netdev>();
  readonly #nics: Nic[] = [];
  readonly #hubs: Hub[] = []; // newest first
  readonly #iothreads = new Map<string, { options: IothreadObjectOptions; viaCli: boolean }>();
  readonly #macs = new MacPool();
  readonly #announceTimers = new Map<string, AnnounceTimer>();
  readonly #pending = new Set<Promise<void>>();
  readonly #nicByClient = new Map<Client, Nic>();
  readonly #netdevByClient = new Map<Client, Netdev>();
  readonly #dp: DataPlane | undefined;
  readonly #openTap: OpenTap;
  readonly #adoptTap: AdoptTap;
  readonly #resolveFd: ((name: string) => number) | undefined;
  readonly #runScript: RunScript;
  readonly #warn: (msg: string) => void;
  readonly #internal: TopologyInternal;
  readonly #unsubscribeDead: (() => void) | undefined;
  #closing: Promise<void> | undefined;
  #anonDevices = 0;

  constructor(opts: TopologyOptions = {}) {
    super();
    this.#dp = opts.dataPlane;
    this.#openTap = opts.openTap ?? defaultOpenTap;
    this.#adoptTap = opts.adoptTap ?? defaultAdoptTap;
    this.#resolveFd = opts.resolveFd;
    this.#runScript = opts.runScript ?? runNetworkScript;
    this.#warn = opts.warn ?? ((msg) => process.emitWarning(msg, 'NetplaneWarning'));
    this.#internal = {
      deleteNetdev: (n) => this.#deleteNetdev(n),
      deleteNic: (n) => this.#deleteNic(n),
      deleteHub: (h) => this.#deleteHub(h),
      setClientsLink: (clients, up, cause) => this.#setClientsLink(clients, up, cause, clients[0]?.name ?? ''),
    };
    this.#unsubscribeDead = this.#dp?.onClientDead?.((e) => this.#onClientDead(e));
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
    return this.#hubs;
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
    if (opts.qomType !== 'iothread') throw invalid(`Parameter 'qom-type' does not accept value '${String(opts.qomType)}'`);
    if (typeof opts.id !== 'string' || !ID_RE.test(opts.id)) throw invalid("Parameter 'id' expects an identifier");
    if (this.#iothreads.has(opts.id)) {
      throw new NetplaneError(
        'NETPLANE_DUPLICATE_ID',
        req.via === 'cli'
          ? `Duplicate ID '${opts.id}' for object`
          : `attempt to add duplicate property '${opts.id}' to object (type 'container')`,
      );
    }
    this.#iothreads.set(opts.id, { options: opts, viaCli: req.via === 'cli' });
  }

  // ---- netdevs ---------------------------------------------------------------------------

  /** -netdev / netdev_add. */
  addNetdev(opts: NetdevOptions, req: RequestOptions = {}): Netdev {
    this.#checkOpen();
    if (typeof opts !== 'object' || opts === null) throw new TypeError('netdev options must be an object');
    if (typeof opts.id !== 'string' || !ID_RE.test(opts.id)) throw invalid("Parameter 'id' expects an identifier");
    if (this.#reg.findNetdev(opts.id)) {
      // The CLI/HMP path fails in option parsing when the id came through it too (QemuOpts
      // exists); every other combination reaches the net core's check.
      const existing = this.#netdevs.get(opts.id);
      const viaOpts = req.via === 'cli' && existing?.viaCli === true;
      throw new NetplaneError('NETPLANE_DUPLICATE_ID', `Duplicate ID '${opts.id}'${viaOpts ? ' for netdev' : ''}`);
    }
    let netdev: Netdev;
    switch (opts.type) {
      case 'tap':
        netdev = this.#createTap(opts, req.via === 'cli');
        break;
      case 'hubport':
        netdev = this.#createHubport(opts, req.via === 'cli');
        break;
      default:
        throw invalid(`Parameter 'type' does not accept value '${String((opts as { type: unknown }).type)}'`);
    }
    this.#netdevs.set(netdev.id, netdev);
    this.emit('netdev-added', netdev);
    return netdev;
  }

  #createTap(o: TapNetdevOptions, viaCli: boolean): Netdev {
    const vhost = o.vhost === true || (o.vhost === undefined && (o.vhostfd !== undefined || o.vhostfds !== undefined || o.vhostforce === true));
    if (vhost) throw invalid(`vhost-net requested but could not be initialized (netdev '${o.id}': netplane has no vhost-net)`);
    if (o.helper !== undefined || o.br !== undefined) throw invalid(`helper= and br= are not supported (netdev '${o.id}')`);
    this.#checkIothread(o.iothread);
    const queues = o.queues ?? 1;
    if (!Number.isInteger(queues) || queues < 1 || queues > MAX_QUEUES) {
      // QEMU asserts on queues=0; we say what is wrong.
      throw invalid(`Parameter 'queues' expects a value between 1 and ${MAX_QUEUES} (netdev '${o.id}')`);
    }

    let tap: TapLike;
    let infos: string[];
    let downscript: string | undefined;
    if (o.fd !== undefined || o.fds !== undefined) {
      const given = o.fd !== undefined ? [o.fd] : o.fds!;
      if (given.length < 1 || given.length > MAX_QUEUES) throw invalid(`fds= must list 1 to ${MAX_QUEUES} fds`);
      const fds = given.map((f) => this.#fdParam(f));
      tap = this.#tapCall(() => this.#adoptTap(fds, o.sndbuf !== undefined ? { sndbuf: o.sndbuf } : {}), o.id);
      infos = fds.map((fd) => `fd=${fd}`);
    } else {
      const topts: TapOpenOptions = { queues };
      if (o.ifname !== undefined) topts.ifname = o.ifname;
      if (o.vnet_hdr !== undefined) topts.vnetHdr = o.vnet_hdr ? 'on' : 'off';
      if (o.sndbuf !== undefined) topts.sndbuf = o.sndbuf;
      tap = this.#tapCall(() => this.#openTap(topts));
      const script = o.script ?? 'no';
      const down = o.downscript ?? 'no';
      if (!scriptDisabled(script)) {
        try {
          this.#runScript(script, tap.ifname);
        } catch (err) {
          this.#track(tap.close());
          throw err;
        }
      }
      if (!scriptDisabled(down)) downscript = down;
      // Scripts belong to queue 0; the other queues print "no" (QEMU passes "no" for them).
      infos = Array.from({ length: tap.queues }, (_, q) =>
        q === 0 ? `ifname=${tap.ifname},script=${script},downscript=${down}` : `ifname=${tap.ifname},script=no,downscript=no`,
      );
    }

    const clients: Client[] = [];
    try {
      for (let q = 0; q < tap.queues; q++) {
        const c = new Client(this.#reg.nextHandle(), o.id, 'tap', 'tap', true, o.iothread);
        c.infoStr = infos[q];
        c.vnetHdrLen = tap.vnetHdrLen;
        // The data plane gets the TAP queue number now: it places each queue index on its
        // own IOThread and reports it in its counters. `info network` keeps QEMU's index 0
        // until a NIC or -link takes the queues, which pairs queue q with index q anyway.
        this.#dp?.addClient({
          handle: c.handle,
          kind: 'tap',
          name: c.name,
          queueIndex: q,
          fd: tap.fd(q),
          vnetHdrLen: c.vnetHdrLen,
          ...(o.iothread !== undefined ? { iothread: o.iothread } : {}),
        });
        clients.push(c);
      }
    } catch (err) {
      for (const c of clients) this.#dp?.removeClient(c.handle);
      if (downscript !== undefined) this.#runDownscript(downscript, tap.ifname);
      this.#track(tap.close());
      throw err;
    }
    for (const c of clients) this.#reg.add(c);
    const netdev = new Netdev(this.#internal, { options: o, clients, tap, viaCli, downscript });
    for (const c of clients) this.#netdevByClient.set(c, netdev);
    return netdev;
  }

  #createHubport(o: HubportNetdevOptions, viaCli: boolean): Netdev {
    if (!Number.isInteger(o.hubid) || o.hubid < -0x80000000 || o.hubid > 0x7fffffff) {
      throw invalid("Parameter 'hubid' expects int32");
    }
    const target = o.netdev !== undefined ? this.#hubPeer(o.netdev) : undefined;
    if (target) this.#checkHubLoop(o.id, o.hubid, target);
    const hub = this.#hub(o.hubid);
    hub.takePortNumber();
    const port = new Client(this.#reg.nextHandle(), o.id, 'hub', 'hubport', true, undefined);
    this.#attachPort(hub, port, target);
    const netdev = new Netdev(this.#internal, { options: o, clients: [port], hub, viaCli });
    this.#netdevByClient.set(port, netdev);
    return netdev;
  }

  /**
   * A hub port that is not a netdev, like the ones QEMU's legacy `-net` creates on hub 0:
   * named `hub<hubid>port<k>`, optionally peered with the first client of netdev `peer`.
   * netdev_del refuses it ("is not a netdev"); it goes away with its hub.
   */
  addHubPort(hubId: number, opts: { peer?: string } = {}): NetClient {
    this.#checkOpen();
    if (!Number.isInteger(hubId) || hubId < -0x80000000 || hubId > 0x7fffffff) throw invalid("Parameter 'hubid' expects int32");
    const target = opts.peer !== undefined ? this.#hubPeer(opts.peer) : undefined;
    if (target) {
      const k = this.#hubs.find((h) => h.id === hubId)?.nextPortNumber ?? 0;
      this.#checkHubLoop(`hub${hubId}port${k}`, hubId, target);
    }
    const hub = this.#hub(hubId);
    const port = new Client(this.#reg.nextHandle(), `hub${hubId}port${hub.takePortNumber()}`, 'hub', 'hubport', false, undefined);
    this.#attachPort(hub, port, target);
    return port;
  }

  #hub(id: number): Hub {
    let hub = this.#hubs.find((h) => h.id === id);
    if (!hub) {
      hub = new Hub(this.#internal, id);
      this.#hubs.unshift(hub);
    }
    return hub;
  }

  /** The client a hub port links to: the first one of that netdev, which must be unpeered. */
  #hubPeer(netdev: string): Client {
    const target = this.#reg.findNetdev(netdev);
    if (!target) throw invalid(`netdev '${netdev}' not found`);
    // QEMU asserts here (a client is peered at most once).
    if (target.peer) {
      throw new NetplaneError('NETPLANE_IN_USE', `netdev '${netdev}' already has a peer (${target.peer.name}); a hub port needs an unpeered netdev`);
    }
    return target;
  }

  /** The hub a hub port belongs to. */
  #hubOf(c: Client): Hub | undefined {
    return c.type === 'hubport' ? this.#hubs.find((h) => h.portClients.includes(c)) : undefined;
  }

  /** Hubs reachable from `start` through hub ports peered with ports of other hubs. */
  #connectedHubs(start: Hub): Set<Hub> {
    const seen = new Set<Hub>([start]);
    const todo = [start];
    for (let hub = todo.pop(); hub; hub = todo.pop()) {
      for (const port of hub.portClients) {
        const next = port.peer ? this.#hubOf(port.peer) : undefined;
        if (next && !seen.has(next)) {
          seen.add(next);
          todo.push(next);
        }
      }
    }
    return seen;
  }

  /**
   * A hub sends every frame out of all its other ports. Peering a port of hub `hubId` with
   * a port of the same hub, or of a hub already connected to it, closes a loop: a frame
   * would circle forever (QEMU accepts this and hangs or crashes). Refuse it.
   */
  #checkHubLoop(portName: string, hubId: number, target: Client): void {
    const targetHub = this.#hubOf(target);
    if (!targetHub) return;
    if (targetHub.id === hubId) {
      throw invalid(
        `hub port '${portName}' cannot be peered with '${target.name}': both are ports of hub ${hubId}, so frames would loop through the hub forever`,
      );
    }
    const hub = this.#hubs.find((h) => h.id === hubId);
    if (hub && this.#connectedHubs(targetHub).has(hub)) {
      throw invalid(
        `hub port '${portName}' (hub ${hubId}) cannot be peered with '${target.name}' (hub ${targetHub.id}): the two hubs are already connected, so frames would loop between them forever`,
      );
    }
  }

  #attachPort(hub: Hub, port: Client, target: Client | undefined): void {
    this.#dp?.addClient({ handle: port.handle, kind: 'hubport', name: port.name, queueIndex: 0, hubId: hub.id });
    if (target) {
      peerClients(port, target);
      this.#dp?.connect(port.handle, target.handle);
    }
    this.#reg.add(port);
    hub.addPort(port);
  }

  /** netdev_del (QMP/HMP): QEMU 7.2 semantics (section 5.3). */
  delNetdev(id: string): void {
    this.#checkOpen();
    const nc = this.#reg.findNetdev(id);
    if (!nc) throw notFound(id);
    const netdev = this.#netdevByClient.get(nc);
    if (!nc.isNetdev || !netdev) {
      throw new NetplaneError('NETPLANE_INVALID_STATE', `Device '${id}' is not a netdev`, { qmpClass: 'GenericError' });
    }
    this.#deleteNetdev(netdev);
  }

  #deleteNetdev(netdev: Netdev): void {
    if (netdev.deleted) return;
    const queues = netdev.clients;
    const first = queues[0];
    const nicPeer = first.peer?.type === 'nic' ? this.#nicByClient.get(first.peer) : undefined;
    if (nicPeer) {
      // The NIC keeps pointing at the backend (info network still shows it) but loses its
      // link; QEMU 7.2 cleans the backend up at once (tap closed, downscript run).
      nicPeer.peerDeleted = true;
      nicPeer.device.backendDeleted();
      for (const q of queues) if (q.peer) this.#setDown(q.peer, true);
    } else {
      for (const q of queues) unpeer(q);
    }
    for (const q of queues) {
      this.#netdevByClient.delete(q);
      this.#freeClient(q);
      netdev.hub?.removePort(q);
    }
    if (this.#netdevs.get(netdev.id) === netdev) this.#netdevs.delete(netdev.id);
    netdev.closing = this.#track(this.#cleanupBackend(netdev));
    if (nicPeer) {
      this.#nicLinkStatusChanged(nicPeer, first.peer as Client);
      this.emit('link-change', { name: netdev.id, up: false, cause: 'netdev_del' });
    }
    this.emit('netdev-deleted', netdev);
    netdev.emit('closed');
  }

  /** Backend cleanup: downscript (queue 0, while the interface still exists), then close. */
  async #cleanupBackend(netdev: Netdev): Promise<void> {
    const tap = netdev.tap;
    if (!tap) return;
    if (netdev.downscript !== undefined) this.#runDownscript(netdev.downscript, tap.ifname);
    await tap.close();
  }

  #runDownscript(path: string, ifname: string): void {
    try {
      this.#runScript(path, ifname);
    } catch (err) {
      this.#reportError(err);
    }
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
      if (n.clients.some((c) => c.peer)) throw new NetplaneError('NETPLANE_IN_USE', `netdev '${n.id}' is already in use`);
    }
    if (na.clients.length !== nb.clients.length) {
      throw invalid(`cannot link '${a}' (${na.clients.length} queues) with '${b}' (${nb.clients.length} queues)`);
    }
    // Two hub ports: the same loop rule as hubport netdev= (a hubport netdev has one queue).
    const hubA = na.hub;
    if (hubA && nb.hub) this.#checkHubLoop(a, hubA.id, nb.clients[0]!);
    na.clients.forEach((ca, i) => {
      const cb = nb.clients[i];
      peerClients(ca, cb);
      ca.queueIndex = cb.queueIndex = i;
      this.#dp?.connect(ca.handle, cb.handle);
    });
  }

  // ---- devices ---------------------------------------------------------------------------

  /** -device / device_add virtio-net-pci: realize, attach the netdev's queues, reset. */
  addDevice(opts: DeviceOptions, _req: RequestOptions = {}): Nic {
    this.#checkOpen();
    if (typeof opts !== 'object' || opts === null) throw new TypeError('device options must be an object');
    if (!NIC_MODELS.has(opts.driver)) throw invalid(`'${String(opts.driver)}' is not a valid device model name`);
    const model = opts.driver;
    if (opts.id !== undefined) {
      if (!ID_RE.test(opts.id)) throw invalid("Parameter 'id' expects an identifier");
      if (this.#nics.some((n) => n.id === opts.id)) {
        throw new NetplaneError('NETPLANE_DUPLICATE_ID', `Duplicate ID '${opts.id}' for device`);
      }
    }
    let requestedMac: MacBytes | undefined;
    if (opts.mac !== undefined) {
      requestedMac = parseMac(opts.mac);
      if (!requestedMac) throw invalid(`Property 'virtio-net-device.mac' doesn't take value '${opts.mac}'`);
    }

    // set_netdev: every non-NIC client of that name, all unpeered.
    let peers: Client[] = [];
    let backendNetdev: Netdev | undefined;
    if (opts.netdev !== undefined) {
      peers = this.#reg.named(opts.netdev, 'nic');
      if (peers.length === 0) throw invalid(`Property 'virtio-net-device.netdev' can't find value '${opts.netdev}'`);
      if (peers.length > MAX_QUEUES) {
        throw invalid(`queues of backend '${opts.netdev}'(${peers.length}) exceeds QEMU limitation(${MAX_QUEUES})`);
      }
      if (peers.some((p) => p.peer)) {
        throw new NetplaneError('NETPLANE_IN_USE', `Property 'virtio-net-device.netdev' can't take value '${opts.netdev}', it's in use`);
      }
      backendNetdev = this.#netdevByClient.get(peers[0]);
    }

    const mac = this.#macs.assign(requestedMac);
    const clients: Client[] = []; // the NIC's queues, filled at realize below
    let device: VirtioNet;
    try {
      device = new VirtioNet({
        mac,
        maxQueuePairs: Math.max(1, peers.length),
        ...(backendNetdev ? { backend: this.#backendFor(backendNetdev, clients) } : {}),
        options: opts,
      });
    } catch (err) {
      this.#macs.release(mac);
      throw err;
    }

    // Realize: N queue clients, each peered with backend queue i (which takes index i).
    const iothread = peers[0]?.iothread;
    const n = Math.max(1, peers.length);
    for (let i = 0; i < n; i++) {
      const name = opts.id ?? this.#reg.autoName(model);
      const c = new Client(this.#reg.nextHandle(), name, model, 'nic', false, iothread);
      c.queueIndex = i;
      if (i === 0) c.infoStr = nicInfoStr(model, mac);
      c.vnetHdrLen = device.hostHdrLen;
      const peer = peers[i];
      if (peer) {
        peerClients(c, peer);
        peer.queueIndex = i;
      }
      this.#reg.add(c);
      clients.push(c);
      this.#dp?.addClient({
        handle: c.handle,
        kind: 'nic',
        name: c.name,
        queueIndex: i,
        vnetHdrLen: c.vnetHdrLen,
        ...(iothread !== undefined ? { iothread } : {}),
      });
      if (peer) this.#dp?.connect(c.handle, peer.handle);
    }

    // QEMU's QOM path: id-less devices are numbered under peripheral-anon.
    const qomPath = opts.id !== undefined ? `/machine/peripheral/${opts.id}` : `/machine/peripheral-anon/device[${this.#anonDevices++}]`;
    const nic = new Nic(this.#internal, {
      options: opts,
      device,
      clients,
      mac,
      ...(backendNetdev ? { backend: backendNetdev } : {}),
    });
    if (backendNetdev) backendNetdev.nic = nic;
    for (const c of clients) this.#nicByClient.set(c, nic);
    this.#nics.push(nic);
    nic.disposers.push(
      device.onMacChange((m) => (clients[0].infoStr = nicInfoStr(model, m))),
      device.onConfigChange(() => nic.emit('config-change')),
      device.onRxFilterChanged(() =>
        nic.emit('rx-filter-changed', {
          ...(nic.id !== undefined ? { name: nic.id } : {}),
          path: `${qomPath}/virtio-backend`,
        }),
      ),
    );
    // The machine reset a plugged device goes through: QEMU 7.2 detaches queues >= 1 here.
    device.reset();
    this.emit('device-added', nic);
    return nic;
  }

  /**
   * What the virtio-net model may do to the backend peered with its queues. A header length
   * change also reaches the NIC's own queue client: it then exchanges frames with that
   * header with the tap (the device's host_hdr_len), so the data plane passes them unchanged.
   */
  #backendFor(netdev: Netdev, nicClients: readonly Client[]): VirtioNetBackend {
    const tap = netdev.tap;
    if (!tap) {
      const noop = () => undefined;
      return { hasVnetHdr: false, hasUfo: false, hasUso: false, isTap: false, setVnetHdrLen: () => false, setOffloads: noop, setQueueEnabled: noop };
    }
    const queue = (q: number) => netdev.clients[q];
    return {
      hasVnetHdr: tap.hasVnetHdr,
      hasUfo: tap.hasUfo,
      hasUso: tap.hasUso,
      isTap: true,
      setVnetHdrLen: (q, len) =>
        this.#guard(() => {
          if (q === 0) tap.setVnetHdrLen(len); // TUNSETVNETHDRSZ is per interface: queue 0 does all
          for (const c of [queue(q), nicClients[q]]) {
            if (c && c.vnetHdrLen !== len) {
              c.vnetHdrLen = len;
              this.#dp?.setVnetHdrLen(c.handle, len);
            }
          }
        }),
      setOffloads: (o) => void this.#guard(() => tap.setOffloads(o)),
      setQueueEnabled: (q, enabled) =>
        void this.#guard(() => {
          const was = tap.queueEnabled(q);
          tap.setQueueEnabled(q, enabled); // a no-op when already so, as QEMU's tap_enable/disable
          const c = queue(q);
          if (c && was !== enabled) this.#dp?.setQueueEnabled(c.handle, enabled);
        }),
    };
  }

  #deleteNic(nic: Nic): void {
    if (nic.closed) return;
    this.#macs.release(nic.confMac);
    for (const c of [...nic.clients].reverse()) {
      unpeer(c); // a backend deleted earlier is already gone; a live one becomes free
      this.#nicByClient.delete(c);
      this.#freeClient(c);
    }
    if (nic.backend && nic.backend.nic === nic) nic.backend.nic = undefined;
    const i = this.#nics.indexOf(nic);
    if (i >= 0) this.#nics.splice(i, 1);
    nic.markClosed();
    this.emit('device-deleted', nic);
  }

  #deleteHub(hub: Hub): void {
    for (const port of [...hub.portClients]) {
      const netdev = this.#netdevByClient.get(port);
      if (netdev) {
        this.#deleteNetdev(netdev);
      } else {
        unpeer(port);
        this.#freeClient(port);
        hub.removePort(port);
      }
    }
    const i = this.#hubs.indexOf(hub);
    if (i >= 0) this.#hubs.splice(i, 1);
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
    this.emit('tap-dead', { netdev: netdev.id, queueIndex: c.queueIndex, errno: e.errno, code: e.code, syscall: e.syscall });
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
          throw new NetplaneError('NETPLANE_INVALID_STATE', `net client(${name}) isn't a NIC`, { qmpClass: 'GenericError' });
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
    const lines: string[] = [];
    for (const hub of this.#hubs) {
      lines.push(`hub ${hub.id}`);
      for (const port of hub.portClients) {
        lines.push(port.peer ? ` \\ ${port.name}: ${clientLine(port.peer)}` : ` \\ ${port.name}`);
      }
    }
    const all = this.#reg.all;
    for (const nc of all) {
      if (nc.type === 'hubport' || nc.peer?.type === 'hubport') continue;
      if (!nc.peer || nc.type === 'nic') {
        lines.push(clientLine(nc));
        if (nc.peer) lines.push(` \\ ${clientLine(nc.peer)}`);
      } else if (nc.peer.type !== 'nic' && all.indexOf(nc.peer) > all.indexOf(nc)) {
        // netplane's backend-to-backend link (QEMU cannot build one): shown like a NIC's pair.
        lines.push(clientLine(nc), ` \\ ${clientLine(nc.peer)}`);
      }
    }
    return lines.map((l) => l + '\n').join('');
  }

  /** The warnings QEMU prints after machine creation (section 1.9), without the prefix. */
  startupWarnings(): string[] {
    const out: string[] = [];
    for (const hub of this.#hubs) {
      let hasNic = false;
      let hasHost = false;
      for (const port of hub.portClients) {
        if (!port.peer) {
          out.push(`hub port ${port.name} has no peer`);
          continue;
        }
        if (port.peer.type === 'nic') hasNic = true;
        else if (port.peer.type !== 'hubport') hasHost = true;
      }
      if (hasHost && !hasNic) out.push(`hub ${hub.id} with no nics`);
      if (hasNic && !hasHost) out.push(`hub ${hub.id} is not connected to host network`);
    }
    for (const nc of this.#reg.all) {
      if (!nc.peer) out.push(`${nc.type === 'nic' ? 'nic' : 'netdev'} ${nc.name} has no peer`);
    }
    return out;
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
        this.#dp?.sendRaw?.(nc.handle, frame);
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
    for (const nic of [...this.#nics].reverse()) this.#deleteNic(nic);
    for (const netdev of [...this.#netdevs.values()]) this.#deleteNetdev(netdev);
    for (const hub of [...this.#hubs]) this.#deleteHub(hub);
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
    if (id !== undefined && !this.#iothreads.has(id)) throw invalid(`iothread '${id}' not found (add it with -object iothread,id=${id})`);
  }

  /** fd=/fds= entries: a number, or a monitor fd name. */
  #fdParam(text: string): number {
    // QEMU (monitor_fd_param): a leading digit makes it a number, and then all of it must be.
    if (/^[0-9]/.test(text)) {
      if (!/^[0-9]+$/.test(text) || Number(text) > 0x7fffffff) throw invalid(`Invalid file descriptor number '${text}'`);
      return Number(text);
    }
    // Without a monitor (QEMU's command line) a name cannot be looked up.
    if (this.#resolveFd === undefined) throw invalid(`Invalid file descriptor number '${text}'`);
    const fd = this.#resolveFd(text);
    if (fd === undefined || !Number.isInteger(fd) || fd < 0) {
      throw invalid(`File descriptor named '${text}' has not been found`);
    }
    return fd;
  }

  /** Open/adopt a TAP; system errors keep QEMU's message and become NetplaneErrors. */
  #tapCall(fn: () => TapLike, adoptId?: string): TapLike {
    try {
      return fn();
    } catch (err) {
      if (err instanceof NetplaneError) throw err;
      const e = err as Error & { syscall?: string };
      // An fd= that is not open: QEMU names the netdev ("t0: Can't use file descriptor 9: ...").
      if (adoptId !== undefined && e.syscall === 'fcntl(F_GETFL)') {
        throw new NetplaneError('NETPLANE_TAP_OPEN_FAILED', `${adoptId}: ${e.message}`, { cause: e });
      }
      if (e instanceof TypeError || e instanceof RangeError) throw new NetplaneError('NETPLANE_INVALID_OPTION', e.message, { cause: e });
      throw new NetplaneError('NETPLANE_TAP_OPEN_FAILED', e.message, { cause: e });
    }
  }

  /** Run a backend operation the guest caused; failures become 'error' events, not throws. */
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

/** Free a client's link: the survivor (if still alive) loses its peer. */
function unpeer(c: Client): void {
  if (c.peer && !c.peer.removed) c.peer.peer = null;
  c.peer = null;
}

function nicInfoStr(model: string, mac: MacBytes): string {
  return `model=${model},macaddr=${formatMac(mac)}`;
}

function clientLine(nc: Client): string {
  return `${nc.name}: index=${nc.queueIndex},type=${nc.type},${nc.infoStr}`;
}
