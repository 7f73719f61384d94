// A NIC (-device virtio-net-pci): N queue clients peered 1:1 with its netdev's queues, and
// the virtio-net device model the hypervisor drives.
import { formatMac, type MacBytes } from '../devices/mac';
import type { VirtioNet } from '../devices/virtio-net';
import type { DeviceOptions } from '../options/types';
import { TypedEmitter } from '../util/typed-emitter';
import type { OwnerHooks } from './internal';
import type { Client, NetClient } from './net-client';
import type { NicVirtqueues } from './nic-virtqueues';

export type NicEvents = {
  /** The guest-visible link (config status LINK_UP) changed. */
  'link-change': [up: boolean];
  /** The device raised a config-change interrupt (only after DRIVER_OK). */
  'config-change': [];
  /** announce-self sent this RARP frame from queue 0. */
  announce: [frame: Buffer];
  /**
   * A queue pair served natively (queues: 'virtqueues') met hostile ring content and
   * stopped: `pair` is the queue pair, `ring` the ring that failed.
   */
  'queue-error': [info: { pair: number; ring: 'rx' | 'tx'; reason: string }];
  /** NIC_RX_FILTER_CHANGED: the guest changed the rx filter while notification was armed. */
  'rx-filter-changed': [info: { name?: string; path: string }];
  closed: [];
};

export class Nic extends TypedEmitter<NicEvents> implements AsyncDisposable {
  readonly id: string | undefined;
  readonly model: string;
  readonly options: Readonly<DeviceOptions>;
  readonly device: VirtioNet;
  /**
   * The native queues of a NIC added with `queues: 'virtqueues'` (memory, ring set-up);
   * undefined for a NIC on packet ports.
   */
  readonly virtqueues: NicVirtqueues | undefined;
  /** @internal one client per queue pair */
  readonly clients: Client[];
  /** @internal the MAC assigned at realize (conf->macaddr) */
  readonly confMac: MacBytes;
  /** @internal QEMU's peer_deleted */
  peerDeleted = false;
  /** @internal unsubscribe functions for the device listeners */
  readonly disposers: Array<() => void> = [];
  #closed = false;
  readonly #owner: OwnerHooks;

  /** @internal */
  constructor(
    owner: OwnerHooks,
    init: { options: DeviceOptions; device: VirtioNet; clients: Client[]; mac: MacBytes; virtqueues?: NicVirtqueues },
  ) {
    super();
    this.#owner = owner;
    this.id = init.options.id;
    this.model = init.options.driver;
    this.options = init.options;
    this.device = init.device;
    this.virtqueues = init.virtqueues;
    this.clients = init.clients;
    this.confMac = init.mac;
  }

  /** Queue 0's name: the device id, or the automatic `<model>.<k>`. */
  get name(): string {
    return this.clients[0].name;
  }

  /** The configured MAC, as QEMU prints it. */
  get mac(): string {
    return formatMac(this.confMac);
  }

  get queues(): readonly NetClient[] {
    return this.clients;
  }

  /** The guest-visible link state (config status LINK_UP). */
  get linkUp(): boolean {
    return this.device.linkUp;
  }

  /** The hypervisor's config-change interrupt (virtio_notify_config); returns an unsubscribe. */
  onConfigChange(listener: () => void): () => void {
    return this.device.onConfigChange(listener);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** @internal */
  markClosed(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const d of this.disposers.splice(0)) d();
    this.emit('closed');
  }

  /** Unplug the device (device_del): frees its MAC, unpeers its netdev. */
  async close(): Promise<void> {
    if (!this.#closed) this.#owner.remove();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
