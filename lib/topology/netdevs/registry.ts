// Netdev types by name, as QEMU's net_client_init_fun[] table in net/net.c: a new type is
// a new file here plus one row below.
import type { NetdevOptions } from '../../options/types';
import { dgramNetdev } from './dgram';
import { hubportNetdev } from './hubport';
import { socketNetdev } from './socket';
import { streamNetdev } from './stream';
import { tapNetdev } from './tap';
import { userNetdev } from './user';
import type { NetdevType } from './types';
import { vhostUserNetdev } from './vhost-user';

type Registry = { readonly [T in NetdevOptions['type']]: NetdevType<Extract<NetdevOptions, { type: T }>> };

const REGISTRY: Registry = {
  tap: tapNetdev,
  hubport: hubportNetdev,
  user: userNetdev,
  stream: streamNetdev,
  dgram: dgramNetdev,
  socket: socketNetdev,
  'vhost-user': vhostUserNetdev,
};

/** The type `opts.type` names, or undefined when netplane has none by that name. */
export function netdevType(type: unknown): NetdevType<NetdevOptions> | undefined {
  if (typeof type !== 'string' || !Object.hasOwn(REGISTRY, type)) return undefined;
  return REGISTRY[type as NetdevOptions['type']] as NetdevType<NetdevOptions>;
}

/** Every netdev type netplane builds, in the registry's order (`-netdev help`). */
export function netdevTypeNames(): string[] {
  return Object.keys(REGISTRY);
}
