// Public API of netplane: what a program needs to build a topology, move frames and serve a
// monitor. More specialised parts have their own entry points (package.json "exports"):
//   netplane/monitor     the QMP/HMP machinery: servers, command tables, fd sets, counters
//   netplane/virtio      the virtio-net device model, feature bits and MAC helpers
//   netplane/event-loop  IoThread and MainLoopContext (QEMU's AioContext), for embedders
export { NetplaneError } from './errors';
export type { NetplaneErrorCode } from './errors';
export { Tap, TunFeature, TunOffload } from './tap';
export type { TapOpenOptions, TapOffloads, VnetHdrMode } from './tap';
export * from './topology';
export { NativeDataPlane } from './dataplane/native-dataplane';
export type {
  ClientStats,
  TapDeadEvent,
  VringErrorEvent,
  DataPlaneEvent,
  NativeDataPlaneOptions,
  GuestMemoryRegion,
  BorrowedGuestMemoryRegion,
  VringConfig,
} from './dataplane/native-dataplane';
export { GuestMemory } from './dataplane/guest-memory';
export { PacketPort, DEFAULT_RING_BYTES, MIN_RING_BYTES } from './dataplane/packet-port';
export type { PacketPortOptions, PortVnetHdrLen } from './dataplane/packet-port';
export { PacketBatch, DEFAULT_BATCH_FRAMES, MAX_BATCH_FRAMES, MAX_BATCH_OUTPUTS } from './dataplane/packet-batch';
export type { PacketBatchOptions, ForwardCounts } from './dataplane/packet-batch';
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
// What a hypervisor sets on nic.device; the model itself is in netplane/virtio.
export { VirtioNetF, VirtioF, VirtioStatus } from './devices/virtio-net-features';
export type { RxFilterInfo } from './devices/virtio-net';
export { ConnectionLink } from './link/connection-link';
export type { ConnectionSource, LinkTarget, ConnectionLinkOptions } from './link/connection-link';
export { serveQmp, Monitor } from './control';
export type { QmpService, MonitorOptions, MonitorEvents } from './control';
// vhost-user back-end: serve a tap netdev's queues to QEMU -netdev vhost-user / DPDK virtio-user.
export { VhostUserExport, VhostUserExports } from './topology/exports/vhost-user-net';
export type { VhostUserNetExportOptions, VhostUserExportInfo } from './topology/exports/vhost-user-net';
export { VhostUserBackend, OFFERED_PROTOCOL_FEATURES } from './vhost-user/backend';
export type { VhostUserBackendOptions, VhostUserDataPath, BackendInfo, RingInfo } from './vhost-user/backend';
export { VhostUserEndpoint } from './vhost-user/endpoint';
export type { EndpointAddress } from './vhost-user/endpoint';
export { VhostUserConnection } from './vhost-user/connection';
export type { ConnectionStatus } from './vhost-user/connection';
// A hypervisor's guest memory and ring set-up, as one value any consumer of the rings takes.
export { checkGuestRegions } from './devices/virtqueue-setup';
export type {
  GuestRegion,
  FdGuestRegion,
  BufferGuestRegion,
  VringSetup,
  VirtqueueSetup,
} from './devices/virtqueue-setup';
export type { PortLinkCause } from './dataplane/packet-port';
