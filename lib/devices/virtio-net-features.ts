// virtio-net feature bits, status bits and config-space layout, as numbered by the virtio
// specification (device-specific bits 0..23 and 53..63, transport bits 24..41).
import { VnetHdrLen } from '../vnet-hdr';

export const VirtioNetF = {
  CSUM: 0,
  GUEST_CSUM: 1,
  CTRL_GUEST_OFFLOADS: 2,
  MTU: 3,
  MAC: 5,
  GSO: 6, // legacy only
  GUEST_TSO4: 7,
  GUEST_TSO6: 8,
  GUEST_ECN: 9,
  GUEST_UFO: 10,
  HOST_TSO4: 11,
  HOST_TSO6: 12,
  HOST_ECN: 13,
  HOST_UFO: 14,
  MRG_RXBUF: 15,
  STATUS: 16,
  CTRL_VQ: 17,
  CTRL_RX: 18,
  CTRL_VLAN: 19,
  CTRL_RX_EXTRA: 20,
  GUEST_ANNOUNCE: 21,
  MQ: 22,
  CTRL_MAC_ADDR: 23,
  GUEST_USO4: 54,
  GUEST_USO6: 55,
  HOST_USO: 56,
  HASH_REPORT: 57,
  RSS: 60,
  RSC_EXT: 61,
  STANDBY: 62,
  SPEED_DUPLEX: 63,
} as const;

export const VirtioF = {
  NOTIFY_ON_EMPTY: 24, // legacy only
  ANY_LAYOUT: 27, // legacy only
  RING_INDIRECT_DESC: 28,
  RING_EVENT_IDX: 29,
  BAD_FEATURE: 30, // legacy only: offered so a driver acking it can be detected
  VERSION_1: 32,
  RING_PACKED: 34,
} as const;

export function bit(n: number): bigint {
  return 1n << BigInt(n);
}

export function hasBit(features: bigint, n: number): boolean {
  return (features & bit(n)) !== 0n;
}

/** Bits a modern (VERSION_1) transport hides from the driver. */
/** virtio 1.0's VIRTIO_F_IOMMU_PLATFORM and virtio 1.2's VIRTIO_F_RING_RESET. */
export const IOMMU_PLATFORM = 33;
export const RING_RESET = 40;

/**
 * The virtio bits a vhost-user net back-end implements, the rest being the front-end's own
 * (MAC, STATUS, the control queue...): QEMU 7.2's user_feature_bits (hw/net/vhost_net.c).
 */
export const VHOST_USER_NET_FEATURES = [
  VirtioF.NOTIFY_ON_EMPTY,
  VirtioF.RING_INDIRECT_DESC,
  VirtioF.RING_EVENT_IDX,
  VirtioF.ANY_LAYOUT,
  VirtioF.VERSION_1,
  VirtioNetF.CSUM,
  VirtioNetF.GUEST_CSUM,
  VirtioNetF.GSO,
  VirtioNetF.GUEST_TSO4,
  VirtioNetF.GUEST_TSO6,
  VirtioNetF.GUEST_ECN,
  VirtioNetF.GUEST_UFO,
  VirtioNetF.HOST_TSO4,
  VirtioNetF.HOST_TSO6,
  VirtioNetF.HOST_ECN,
  VirtioNetF.HOST_UFO,
  VirtioNetF.MRG_RXBUF,
  VirtioNetF.MTU,
  IOMMU_PLATFORM,
  VirtioF.RING_PACKED,
  RING_RESET,
  VirtioNetF.RSS,
  VirtioNetF.HASH_REPORT,
  VirtioNetF.GUEST_ANNOUNCE,
  VirtioNetF.MQ,
].reduce((m, b) => m | bit(b), 0n);

export const LEGACY_ONLY_FEATURES =
  bit(VirtioF.NOTIFY_ON_EMPTY) | bit(VirtioF.ANY_LAYOUT) | bit(VirtioF.BAD_FEATURE) | bit(VirtioNetF.GSO);

/** Device status register bits. */
export const VirtioStatus = {
  ACKNOWLEDGE: 1,
  DRIVER: 2,
  DRIVER_OK: 4,
  FEATURES_OK: 8,
  DEVICE_NEEDS_RESET: 0x40,
  FAILED: 0x80,
} as const;

/** virtio_net_config.status bits. */
export const VirtioNetS = {
  LINK_UP: 1,
  ANNOUNCE: 2,
} as const;

/** Control-queue acknowledgement values. */
export const VIRTIO_NET_OK = 0;
export const VIRTIO_NET_ERR = 1;

/** struct virtio_net_config field offsets (little-endian). */
export const VirtioNetConfig = {
  MAC: 0, // u8[6]
  STATUS: 6, // u16
  MAX_VIRTQUEUE_PAIRS: 8, // u16
  MTU: 10, // u16
  SPEED: 12, // u32
  DUPLEX: 16, // u8
  RSS_MAX_KEY_SIZE: 17, // u8
  RSS_MAX_INDIRECTION_TABLE_LENGTH: 18, // u16
  SUPPORTED_HASH_TYPES: 20, // u32
  SIZE: 24,
} as const;

/** Visible config size: the end of the last field an offered feature makes meaningful. */
export function configSizeFor(hostFeatures: bigint): number {
  let size: number = VirtioNetConfig.STATUS; // the mac is always there (F_MAC is always offered)
  const ends: Array<[number, number]> = [
    [VirtioNetF.STATUS, VirtioNetConfig.MAX_VIRTQUEUE_PAIRS],
    [VirtioNetF.MQ, VirtioNetConfig.MTU],
    [VirtioNetF.MTU, VirtioNetConfig.SPEED],
    [VirtioNetF.SPEED_DUPLEX, VirtioNetConfig.RSS_MAX_KEY_SIZE],
    [VirtioNetF.RSS, VirtioNetConfig.SIZE],
    [VirtioNetF.HASH_REPORT, VirtioNetConfig.SIZE],
  ];
  for (const [feature, end] of ends) if (hasBit(hostFeatures, feature)) size = Math.max(size, end);
  return size;
}

/** The header a driver uses for the features it negotiated. */
export function guestHdrLenFor(features: bigint): VnetHdrLen {
  if (hasBit(features, VirtioF.VERSION_1)) {
    return hasBit(features, VirtioNetF.HASH_REPORT) ? VnetHdrLen.HASH : VnetHdrLen.MRG_RXBUF;
  }
  return hasBit(features, VirtioNetF.MRG_RXBUF) ? VnetHdrLen.MRG_RXBUF : VnetHdrLen.LEGACY;
}
