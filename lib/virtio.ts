// netplane/virtio: the virtio-net device model a hypervisor drives (one per NIC), its
// feature bits, the peer it drives, MAC helpers and the RARP announce-self sends.
export { VirtioNet, DEFAULT_TRANSPORT_FEATURES } from './devices/virtio-net';
export type { VirtioNetPeer, RxFilterInfo, VirtioNetInit } from './devices/virtio-net';
export {
  VirtioNetF,
  VirtioF,
  VirtioStatus,
  VirtioNetS,
  VIRTIO_NET_OK,
  VIRTIO_NET_ERR,
} from './devices/virtio-net-features';
export { parseMac, formatMac, MacPool } from './devices/mac';
export { buildRarp } from './topology/announce';
