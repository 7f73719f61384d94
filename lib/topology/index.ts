// The topology: QEMU's net object model (clients, netdevs, NICs, hubs, link state), as the
// package root exports it.
export { Topology } from './topology';
export type { TopologyOptions, TopologyEvents, RequestOptions, LinkChangeEvent, NetdevTapDeadEvent } from './topology';
export { Netdev } from './netdev';
export type { NetdevEvents, TapLike } from './netdev';
export { Nic } from './nic';
export type { NicEvents } from './nic';
export { Hub } from './hub';
export type { HubEvents } from './hub';
export type { NetClient, NetClientType } from './net-client';
export type {
  DataPlane,
  ClientDescriptor,
  TapClientDescriptor,
  HubPortClientDescriptor,
  PortClientDescriptor,
  DataPlaneClientStats,
  ClientDeadEvent,
  IothreadParams,
} from './dataplane';
export type { OpenTap, AdoptTap, RunScript } from './netdevs/types';
export type { AnnounceParams } from './announce';
export type { LinkChangeCause } from './internal';
export { NicVirtqueues } from './nic-virtqueues';
export type { QueueStart, QueueHandle, VirtqueueDataPlane } from './nic-virtqueues';
export type { NicQueueOptions } from './nic-realize';
