// A netdev (QEMU's -netdev): a tap with its N queue clients, or a hub port. The types
// themselves live in netdevs/, one file each.
import type { NetdevOptions } from '../options/types';
import type { TapOffloads } from '../tap';
import { TypedEmitter } from '../util/typed-emitter';
import type { Hub } from './hub';
import type { OwnerHooks } from './internal';
import type { Client, NetClient } from './net-client';
import type { Nic } from './nic';
import type { UserStack } from './netdevs/user';

/** What the topology needs from a TAP: lib/tap.ts's Tap, or a fake in unit tests. */
export interface TapLike {
  readonly ifname: string;
  readonly queues: number;
  readonly hasVnetHdr: boolean;
  readonly hasUfo: boolean;
  readonly hasUso: boolean;
  /** Current TUNSETVNETHDRSZ (0 without vnet header). */
  readonly vnetHdrLen: number;
  fd(queue: number): number;
  queueEnabled(queue: number): boolean;
  /** Applies to every queue of the interface. */
  setVnetHdrLen(len: 10 | 12 | 20): void;
  setOffloads(o: TapOffloads): void;
  setQueueEnabled(queue: number, enabled: boolean): void;
  close(): Promise<void>;
}

/** What a netdev type hands the Netdev it creates. */
export interface NetdevInit {
  options: NetdevOptions;
  clients: Client[];
  tap?: TapLike;
  hub?: Hub;
  viaCli: boolean;
  downscript?: string | undefined;
  /** A user netdev's stack (forwarding rules, `info usernet`). */
  user?: UserStack;
}

export type NetdevEvents = {
  /** queue 0's link flag changed (set_link, netdev_del of nothing, a connection coming and going). */
  'link-change': [up: boolean];
  /** Deleted (netdev_del, close(), Topology.close()). */
  closed: [];
};

export class Netdev extends TypedEmitter<NetdevEvents> implements AsyncDisposable {
  readonly id: string;
  readonly type: NetdevOptions['type'];
  readonly options: Readonly<NetdevOptions>;
  /** The TAP behind a tap netdev. */
  readonly tap: TapLike | undefined;
  /** The hub a hubport netdev is a port of. */
  readonly hub: Hub | undefined;
  /** @internal one client per queue */
  readonly clients: Client[];
  /** @internal added through QemuOpts (CLI/HMP): decides the duplicate-id wording */
  readonly viaCli: boolean;
  /** @internal downscript registered on queue 0 (run at cleanup with the ifname) */
  readonly downscript: string | undefined;
  /** @internal set when deleted: settles once the TAP is closed and the downscript ran */
  closing: Promise<void> | undefined;
  /** The libslirp stack of a user netdev. */
  readonly user: UserStack | undefined;
  /** @internal the NIC that took this netdev's queues */
  nic: Nic | undefined;
  readonly #owner: OwnerHooks;

  /** @internal */
  constructor(owner: OwnerHooks, init: NetdevInit) {
    super();
    this.#owner = owner;
    this.id = init.options.id;
    this.type = init.options.type;
    this.options = init.options;
    this.clients = init.clients;
    this.tap = init.tap;
    this.hub = init.hub;
    this.viaCli = init.viaCli;
    this.downscript = init.downscript;
    this.user = init.user;
  }

  /** One net client per queue (a hubport has one). */
  get queues(): readonly NetClient[] {
    return this.clients;
  }

  get deleted(): boolean {
    return this.closing !== undefined;
  }

  get linkUp(): boolean {
    return !this.clients[0].linkDown;
  }

  /** The NIC peered with this netdev's queues, if any. */
  get attachedNic(): Nic | undefined {
    return this.nic;
  }

  /**
   * Set the link of this netdev's own queues (and of their NIC peers), like QEMU's
   * net_client_set_link. Unlike Topology.setLink it never catches a NIC that shares the id.
   */
  setLink(up: boolean): void {
    if (this.deleted) return;
    this.#owner.setClientsLink(this.clients, up, 'connection');
  }

  /** netdev_del this netdev; resolves once the TAP is closed and the downscript ran. */
  async close(): Promise<void> {
    if (!this.deleted) this.#owner.remove();
    await this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
