// Public API of netplane.
export { NetplaneError } from './errors';
export type { NetplaneErrorCode } from './errors';
export { Tap, TunFeature, TunOffload } from './tap';
export type { TapOpenOptions, TapOffloads, VnetHdrMode } from './tap';
export { IoThread, MainLoopContext, BottomHalf, Timer } from './event-loop';
export type { PollParams, FdHandlers, MainLoopContextOptions } from './event-loop';
export { Topology, Netdev, Nic, Hub, runNetworkScript, buildRarp } from './topology';
export type {
  TopologyOptions,
  TopologyEvents,
  RequestOptions,
  LinkChangeEvent,
  LinkChangeCause,
  NetdevTapDeadEvent,
  ClientDeadEvent,
  NetdevEvents,
  NicEvents,
  HubEvents,
  NetClient,
  NetClientType,
  DataPlane,
  ClientDescriptor,
  DataPlaneClientStats,
  TapLike,
  AnnounceParams,
} from './topology';
export { NativeDataPlane } from './dataplane/native-dataplane';
export type { ClientStats, TapDeadEvent, DataPlaneEvent, NativeDataPlaneOptions, IothreadParams } from './dataplane/native-dataplane';
export { PacketPort, DEFAULT_RING_BYTES, MIN_RING_BYTES } from './dataplane/packet-port';
export type { PacketPortOptions, PortVnetHdrLen } from './dataplane/packet-port';
export {
  VnetHdrLen,
  VnetFlag,
  GsoType,
  isVnetHdrLen,
  zeroVnetHdr,
  normalizeVnetHdr,
  decodeVnetHdr,
  encodeVnetHdr,
  convertVnetHdr,
  needsSoftwareOffload,
  validateVnetHdr,
  completeChecksum,
  internetChecksum,
  segmentFrame,
} from './vnet-hdr';
export type { VnetHdr, VnetHdrError } from './vnet-hdr';
export { VirtioNet, DEFAULT_TRANSPORT_FEATURES } from './devices/virtio-net';
export type { VirtioNetPeer, RxFilterInfo, VirtioNetInit } from './devices/virtio-net';
export { VirtioNetF, VirtioF, VirtioStatus, VirtioNetS, VIRTIO_NET_OK, VIRTIO_NET_ERR } from './devices/virtio-net-features';
export { parseMac, formatMac, MacPool } from './devices/mac';
export { ConnectionLink } from './link/connection-link';
export type { ConnectionSource, LinkTarget, ConnectionLinkOptions } from './link/connection-link';
export { serveQmp, QmpServer, Monitor, Hmp, runStdioMonitor, qmpCommands, QmpError, FdSets, resolveMonitorFd } from './control';
export type { QmpService, QmpCommand, QmpCommandTable, QmpServerOptions, QmpVersion, MonitorOptions, MonitorEvents } from './control';
export { netplaneStats, formatStatsTable } from './control/stats';
export type { NetplaneClientStats, NetplaneDropReason } from './control/stats';
