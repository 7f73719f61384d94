// `-export type=vhost-user-net`: a tap netdev's queues served as a virtio-net device to a
// vhost-user front-end (QEMU's -netdev vhost-user, DPDK's virtio-user). The export owns the
// socket (lib/vhost-user/endpoint.ts), the queue-pair clients (Topology.attachServedDevice)
// and, per connection, a VhostUserBackend that runs the protocol. The TAP's vnet header and
// offloads follow the acked features inside the engine (setVirtioFeatures), not from here. A front-end can make
// netplane map only the memory it hands over and move frames only to this netdev.
import { NetplaneError } from '../../errors';
import {
  bit,
  hasBit,
  IOMMU_PLATFORM,
  RING_RESET,
  VHOST_USER_NET_FEATURES,
  VirtioF,
  VirtioNetF,
} from '../../devices/virtio-net-features';
import { VirtioNet } from '../../devices/virtio-net';
import { VhostUserBackend, type BackendInfo, type VhostUserDataPath } from '../../vhost-user/backend';
import { VhostUserEndpoint, type EndpointAddress } from '../../vhost-user/endpoint';
import type { DataPlane } from '../dataplane';
import type { ServedDevice, Topology } from '../topology';

/**
 * Virtio bits a vhost-user net back-end may offer: QEMU 7.2's user_feature_bits
 * (hw/net/vhost_net.c) less what the engine does not do (ring reset, RSS, hash reports,
 * IOMMU, MTU, USO) and GUEST_ANNOUNCE (QEMU keeps announcing itself). RING_PACKED is added
 * by the export only with its `packed` option (the model does not offer it): see there.
 */
const SERVED_FEATURE_MASK =
  VHOST_USER_NET_FEATURES &
  ~[
    VirtioF.NOTIFY_ON_EMPTY,
    VirtioNetF.GSO,
    VirtioNetF.MTU,
    IOMMU_PLATFORM,
    VirtioF.RING_PACKED,
    RING_RESET,
    VirtioNetF.RSS,
    VirtioNetF.HASH_REPORT,
    VirtioNetF.GUEST_ANNOUNCE,
  ].reduce((m, b) => m | bit(b), 0n);

export interface VhostUserNetExportOptions {
  id: string;
  /** The tap netdev whose queues are served. */
  netdev: string;
  /** Queue pairs (QEMU's queues=); at most the tap's queue count. Default 1. */
  numQueues?: number;
  /** Listen on a unix socket, or connect to a front-end that listens. */
  address: EndpointAddress;
  /**
   * Offer packed virtqueues (VIRTIO_F_RING_PACKED; the guest's packed=on). Default false:
   * QEMU 7.2 cannot tell a restarted back-end where a packed ring stood (it keeps no index in
   * guest memory to resync from, and uses no inflight fd for net), so after netplane is killed
   * and restarted a packed guest's rings stay stuck until its driver resets the device. Split
   * rings resume (QEMU resyncs them from the used index).
   */
  packed?: boolean;
}

export interface VhostUserExportInfo {
  id: string;
  type: 'vhost-user-net';
  netdev: string;
  'num-queues': number;
  addr: { type: 'unix'; path: string; server: boolean };
  connected: boolean;
  /** false: the data plane runs no virtqueues; the protocol runs, no frames move. */
  'data-path': boolean;
  device?: BackendInfo;
}

/** What the tap can do, as VirtioNet sees its peer: decides the offload bits offered. */
function offeredFeatures(served: ServedDevice, queuePairs: number): bigint {
  const tap = served.tap;
  const model = new VirtioNet({
    mac: new Uint8Array([0x52, 0x54, 0, 0, 0, 0]),
    maxQueuePairs: queuePairs,
    options: { features: { mq: true } },
    peer: {
      hasVnetHdr: tap.hasVnetHdr,
      hasUfo: tap.hasUfo,
      hasUso: tap.hasUso,
      isTap: true,
      setVnetHdrLen: () => true,
      setOffloads: () => {},
      setQueueEnabled: () => {},
    },
  });
  return model.hostFeatures & SERVED_FEATURE_MASK;
}

export class VhostUserExport {
  readonly id: string;
  readonly netdev: string;
  readonly queuePairs: number;
  readonly address: EndpointAddress;
  readonly features: bigint;
  readonly #served: ServedDevice;
  readonly #endpoint: VhostUserEndpoint;
  #closing: Promise<void> | undefined;
  #unsubscribe: (() => void) | undefined;

  private constructor(
    opts: VhostUserNetExportOptions,
    served: ServedDevice,
    endpoint: VhostUserEndpoint,
    features: bigint,
  ) {
    this.id = opts.id;
    this.netdev = opts.netdev;
    this.queuePairs = served.handles.length;
    this.address = opts.address;
    this.#served = served;
    this.#endpoint = endpoint;
    this.features = features;
  }

  /**
   * Attach to the netdev's queues, then listen (or connect). `log` gets one line per event
   * worth an operator's eye (a refused message, a front-end coming or going).
   */
  static async create(
    topology: Topology,
    opts: VhostUserNetExportOptions,
    log: (line: string) => void = () => {},
  ): Promise<VhostUserExport> {
    const queuePairs = opts.numQueues ?? 1;
    const served = topology.attachServedDevice(opts.netdev, opts.id, queuePairs);
    const features = offeredFeatures(served, queuePairs) | (opts.packed === true ? bit(VirtioF.RING_PACKED) : 0n);
    const dp = topology.dataPlane;
    const dataPath = served.runsVirtqueues
      ? { path: dp as DataPlane & VhostUserDataPath, handles: served.handles }
      : undefined;
    let endpoint: VhostUserEndpoint;
    try {
      endpoint = await VhostUserEndpoint.open(opts.address, () => {
        return new VhostUserBackend({
          queuePairs,
          features,
          ...(dataPath ? { dataPath } : {}),
          // The TAP takes the guest's header length (12 with MRG_RXBUF or VERSION_1).
          onFeatures: (f) =>
            served.setVnetHdrLen(hasBit(f, VirtioNetF.MRG_RXBUF) || hasBit(f, VirtioF.VERSION_1) ? 12 : 10),
          log: (line) => log(`export '${opts.id}': ${line}`),
        });
      });
    } catch (e) {
      served.detach();
      throw new NetplaneError('NETPLANE_INVALID_OPTION', e instanceof Error ? e.message : String(e), { cause: e });
    }
    const ex = new VhostUserExport(opts, served, endpoint, features);
    endpoint.on('connected', () => log(`export '${opts.id}': front-end connected`));
    endpoint.on('disconnected', (reason) =>
      log(`export '${opts.id}': front-end ${reason === null ? 'disconnected' : `disconnected: ${reason}`}`),
    );
    endpoint.on('refused', () => log(`export '${opts.id}': refused a second front-end`));
    // A queue pair that met hostile ring content stopped itself (the engine's 'vring-error').
    const onEvent = (e: { type?: string; handle?: number; ring?: string; reason?: string }): void => {
      if (e.type === 'vring-error' && e.handle !== undefined && served.handles.includes(e.handle)) {
        log(
          `export '${opts.id}': queue pair ${served.handles.indexOf(e.handle)} ${e.ring ?? ''} ring error: ${e.reason ?? ''}`,
        );
      }
    };
    const emitter = dp as unknown as {
      on?: (ev: string, fn: typeof onEvent) => void;
      off?: (ev: string, fn: typeof onEvent) => void;
    };
    if (served.runsVirtqueues && typeof emitter.on === 'function') {
      emitter.on('event', onEvent);
      ex.#unsubscribe = () => emitter.off?.('event', onEvent);
    }
    // The netdev going away ends the export (its queues are gone).
    topology.netdevs.get(opts.netdev)?.once('closed', () => {
      ex.close().catch((e: unknown) => log(`export '${opts.id}': ${e instanceof Error ? e.message : String(e)}`));
    });
    return ex;
  }

  get connected(): boolean {
    return this.#endpoint.connected;
  }

  info(): VhostUserExportInfo {
    const handler = this.#endpoint.handler;
    return {
      id: this.id,
      type: 'vhost-user-net',
      netdev: this.netdev,
      'num-queues': this.queuePairs,
      addr: { type: 'unix', path: this.address.path, server: this.address.kind === 'listen' },
      connected: this.connected,
      'data-path': this.#served.runsVirtqueues,
      ...(handler instanceof VhostUserBackend ? { device: handler.info() } : {}),
    };
  }

  /** Disconnect the front-end (rings stopped, memory released), remove the socket, detach. */
  close(): Promise<void> {
    this.#closing ??= this.#endpoint.close().then(() => {
      this.#unsubscribe?.();
      this.#served.detach();
    });
    return this.#closing;
  }
}

/** The exports of one process, by id (what -export, QMP and the library share). */
export class VhostUserExports {
  readonly #byId = new Map<string, VhostUserExport>();
  /** Ids being created (binding is asynchronous): taken already. */
  readonly #pending = new Set<string>();

  constructor(
    private readonly topology: Topology,
    private readonly log: (line: string) => void = () => {},
  ) {}

  async add(opts: VhostUserNetExportOptions): Promise<VhostUserExport> {
    if (this.#byId.has(opts.id) || this.#pending.has(opts.id))
      throw new NetplaneError('NETPLANE_DUPLICATE_ID', `Duplicate ID '${opts.id}' for export`);
    this.#pending.add(opts.id);
    try {
      const ex = await VhostUserExport.create(this.topology, opts, this.log);
      this.#byId.set(opts.id, ex);
      return ex;
    } finally {
      this.#pending.delete(opts.id);
    }
  }

  async del(id: string): Promise<void> {
    const ex = this.#byId.get(id);
    if (!ex) throw new NetplaneError('NETPLANE_NOT_FOUND', `Export '${id}' is not found`);
    this.#byId.delete(id);
    await ex.close();
  }

  list(): VhostUserExportInfo[] {
    return [...this.#byId.values()].map((e) => e.info());
  }

  get(id: string): VhostUserExport | undefined {
    return this.#byId.get(id);
  }

  async closeAll(): Promise<void> {
    const all = [...this.#byId.values()];
    this.#byId.clear();
    await Promise.all(all.map((e) => e.close()));
  }
}
