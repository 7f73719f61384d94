// vhost-user protocol constants, as numbered by QEMU's docs/interop/vhost-user.rst (the same
// numbers in QEMU 7.2, DPDK 22.11 and rust-vmm). Only numbers live here; what each message
// carries and how it is checked is the table in messages.ts.

/** Header: request u32, flags u32, size u32, host byte order. */
export const HEADER_SIZE = 12;

/** Front-end → back-end requests (the "master" requests of QEMU 7.2). */
export const Request = {
  NONE: 0,
  GET_FEATURES: 1,
  SET_FEATURES: 2,
  SET_OWNER: 3,
  RESET_OWNER: 4,
  SET_MEM_TABLE: 5,
  SET_LOG_BASE: 6,
  SET_LOG_FD: 7,
  SET_VRING_NUM: 8,
  SET_VRING_ADDR: 9,
  SET_VRING_BASE: 10,
  GET_VRING_BASE: 11,
  SET_VRING_KICK: 12,
  SET_VRING_CALL: 13,
  SET_VRING_ERR: 14,
  GET_PROTOCOL_FEATURES: 15,
  SET_PROTOCOL_FEATURES: 16,
  GET_QUEUE_NUM: 17,
  SET_VRING_ENABLE: 18,
  SEND_RARP: 19,
  NET_SET_MTU: 20,
  SET_SLAVE_REQ_FD: 21,
  IOTLB_MSG: 22,
  SET_VRING_ENDIAN: 23,
  GET_CONFIG: 24,
  SET_CONFIG: 25,
  CREATE_CRYPTO_SESSION: 26,
  CLOSE_CRYPTO_SESSION: 27,
  POSTCOPY_ADVISE: 28,
  POSTCOPY_LISTEN: 29,
  POSTCOPY_END: 30,
  GET_INFLIGHT_FD: 31,
  SET_INFLIGHT_FD: 32,
  GPU_SET_SOCKET: 33,
  RESET_DEVICE: 34,
  VRING_KICK: 35,
  GET_MAX_MEM_SLOTS: 36,
  ADD_MEM_REG: 37,
  REM_MEM_REG: 38,
  SET_STATUS: 39,
  GET_STATUS: 40,
} as const;
export type RequestCode = (typeof Request)[keyof typeof Request];

/** Header flag bits. */
export const Flags = {
  VERSION_MASK: 0x3,
  VERSION: 0x1,
  REPLY: 0x4,
  NEED_REPLY: 0x8,
} as const;
/** QEMU 7.2 accepts a reply only when its flags are exactly this. */
export const REPLY_FLAGS = Flags.VERSION | Flags.REPLY;

/** Protocol feature bits (GET/SET_PROTOCOL_FEATURES). */
export const ProtocolF = {
  MQ: 0,
  LOG_SHMFD: 1,
  RARP: 2,
  REPLY_ACK: 3,
  NET_MTU: 4,
  SLAVE_REQ: 5,
  CROSS_ENDIAN: 6,
  CRYPTO_SESSION: 7,
  PAGEFAULT: 8,
  CONFIG: 9,
  SLAVE_SEND_FD: 10,
  HOST_NOTIFIER: 11,
  INFLIGHT_SHMFD: 12,
  RESET_DEVICE: 13,
  INBAND_NOTIFICATIONS: 14,
  CONFIGURE_MEM_SLOTS: 15,
  STATUS: 16,
} as const;

/** Virtio feature bit 30 in vhost-user: the front-end may send protocol-feature messages. */
export const VHOST_USER_F_PROTOCOL_FEATURES = 30;

/** Bits of the u64 payload of SET_VRING_KICK / CALL / ERR. */
export const VRING_IDX_MASK = 0xffn;
export const VRING_NOFD_MASK = 0x100n;

/** SET_VRING_ADDR flags bit 0: log the used ring (migration; not offered). */
export const VHOST_VRING_F_LOG = 0x1;

/** SET_MEM_TABLE carries at most this many regions (VHOST_MEMORY_BASELINE_NREGIONS). */
export const MAX_MEM_REGIONS = 8;

/** Largest ring netplane serves (QEMU's VIRTQUEUE_MAX_SIZE). */
export const MAX_QUEUE_SIZE = 1024;
