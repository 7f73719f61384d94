// What the user-facing objects (Netdev, Nic, Hub) ask of the Topology that owns them.
import type { Hub } from './hub';
import type { Client } from './net-client';
import type { Netdev } from './netdev';
import type { Nic } from './nic';

/** 'tap-dead': the data plane found the TAP's interface gone. */
export type LinkChangeCause = 'set_link' | 'netdev_del' | 'connection' | 'tap-dead';

export interface TopologyInternal {
  deleteNetdev(netdev: Netdev): void;
  deleteNic(nic: Nic): void;
  deleteHub(hub: Hub): void;
  /** QEMU's net_client_set_link over one set of clients. */
  setClientsLink(clients: readonly Client[], up: boolean, cause: LinkChangeCause): void;
}
