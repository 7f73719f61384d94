// What a netdev type is (QEMU's net_client_init_fun entry) and what the Topology offers it.
import type { ChardevRegistry } from '../../chardev/socket';
import type { NetdevOptions } from '../../options/types';
import type { DataPlane } from '../dataplane';
import type { HubGraph } from '../hub-graph';
import type { ClientRegistry } from '../net-client';
import type { TapOpenOptions } from '../../tap';
import type { Netdev, NetdevInit, TapLike } from '../netdev';

export type OpenTap = (opts: TapOpenOptions) => TapLike;
export type AdoptTap = (fds: number[], opts: { sndbuf?: number }) => TapLike;
/** Run a network script: `path ifname`; throws on failure. */
export type RunScript = (path: string, ifname: string) => void;

export interface NetdevContext {
  readonly reg: ClientRegistry;
  readonly dataPlane: DataPlane | undefined;
  readonly hubs: HubGraph;
  readonly openTap: OpenTap;
  readonly adoptTap: AdoptTap;
  readonly runScript: RunScript;
  /** Resolves a monitor fd name (QMP getfd); absent without a monitor. */
  readonly resolveFd: ((name: string) => number) | undefined;
  /** A Netdev owned by the Topology (deleted through it). */
  newNetdev(init: NetdevInit): Netdev;
  /** Throws unless `-object iothread,id=<id>` exists. */
  checkIothread(id: string | undefined): void;
  /** Keep a background close in the Topology's pending set; failures are reported. */
  track(p: Promise<void>): Promise<void>;
  /** A failure outside any call: an 'error' event, or a warning. */
  reportError(err: unknown): void;
  /** The -chardev / chardev-add definitions (vhost-user netdevs claim theirs). */
  readonly chardevs: ChardevRegistry;
  /** A QMP event a netdev raises (the Monitor forwards the topology's 'qmp-event'). */
  emitEvent(name: string, data: Record<string, unknown>): void;
}

export interface NetdevType<O extends NetdevOptions> {
  /**
   * Check the options and create the netdev: its clients are registered and in the data
   * plane when this returns; on a throw, nothing is left behind.
   */
  create(opts: O, ctx: NetdevContext, viaCli: boolean): Netdev;
  /** After netdev_del: release what create() acquired besides the clients. */
  cleanup?(netdev: Netdev, ctx: NetdevContext): Promise<void>;
}
