// What the topology's parts share and what the user-facing objects (Netdev, Nic, Hub) ask of
// the Topology that owns them. A leaf: the hooks are bound to one object when it is made, so
// this file names none of the object classes.
import { NetplaneError } from '../errors';
import type { Client } from './net-client';

/** 'tap-dead': the data plane found the TAP's interface gone. */
export type LinkChangeCause = 'set_link' | 'netdev_del' | 'connection' | 'tap-dead';

export interface OwnerHooks {
  /** netdev_del, device_del or hub deletion of the object these hooks were made for. */
  remove(): void;
  /** QEMU's net_client_set_link over one set of clients. */
  setClientsLink(clients: readonly Client[], up: boolean, cause: LinkChangeCause): void;
}

export function invalid(message: string): NetplaneError {
  return new NetplaneError('NETPLANE_INVALID_OPTION', message);
}

export function notFound(name: string): NetplaneError {
  return new NetplaneError('NETPLANE_NOT_FOUND', `Device '${name}' not found`, { qmpClass: 'DeviceNotFound' });
}

/** Free a client's link: the survivor (if still alive) loses its peer. */
export function unpeer(c: Client): void {
  if (c.peer && !c.peer.removed) c.peer.peer = null;
  c.peer = null;
}
