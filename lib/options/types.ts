// Typed, validated configuration produced by the option parser (CLI key=value or JSON,
// QMP netdev_add) and consumed by the topology. Keys keep QEMU's spelling.

export type OnOffAuto = boolean | undefined; // undefined = absent (QEMU "auto")

/** -netdev tap,... (NetdevTapOptions, Linux, no vhost). */
export interface TapNetdevOptions {
  type: 'tap';
  id: string;
  ifname?: string;
  fd?: string; // a number, or a monitor fd name (getfd)
  fds?: string[]; // "a:b:c"
  script?: string; // program path; absent or "no" = none (we default to no)
  downscript?: string;
  vnet_hdr?: boolean; // absent: if available; true: required; false: off
  queues?: number; // >= 1
  sndbuf?: number; // bytes
  iothread?: string; // netplane: place this netdev's queues on an -object iothread
  // Accepted for compatibility and rejected with a clear error when enabled (no vhost-net here).
  vhost?: boolean;
  vhostfd?: string;
  vhostfds?: string[];
  vhostforce?: boolean;
  'poll-us'?: number;
  br?: string;
  helper?: string;
}

/** -netdev hubport,id=..,hubid=..[,netdev=..]. */
export interface HubportNetdevOptions {
  type: 'hubport';
  id: string;
  hubid: number;
  netdev?: string;
}

/** -netdev vhost-user,id=..,chardev=..[,queues=N][,vhostforce=on] (NetdevVhostUserOptions). */
export interface VhostUserNetdevOptions {
  type: 'vhost-user';
  id: string;
  chardev: string;
  /** Queue pairs, 1..1024 (default 1). */
  queues?: number;
  /** Accepted and ignored, as in QEMU. */
  vhostforce?: boolean;
}

export type NetdevOptions = TapNetdevOptions | HubportNetdevOptions | VhostUserNetdevOptions;

/** virtio-net feature properties (all default on except mq). */
export type VirtioNetFeatureName =
  | 'csum'
  | 'guest_csum'
  | 'gso'
  | 'guest_tso4'
  | 'guest_tso6'
  | 'guest_ecn'
  | 'guest_ufo'
  | 'guest_announce'
  | 'host_tso4'
  | 'host_tso6'
  | 'host_ecn'
  | 'host_ufo'
  | 'mrg_rxbuf'
  | 'status'
  | 'ctrl_vq'
  | 'ctrl_rx'
  | 'ctrl_vlan'
  | 'ctrl_rx_extra'
  | 'ctrl_mac_addr'
  | 'ctrl_guest_offloads'
  | 'guest_uso4'
  | 'guest_uso6'
  | 'host_uso'
  | 'mq'
  | 'rss'
  | 'hash'
  | 'guest_rsc_ext';

/** -device virtio-net-pci,... */
export interface VirtioNetDeviceOptions {
  driver: 'virtio-net-pci';
  id?: string;
  netdev?: string;
  mac?: string; // normalized "52:54:00:12:34:56"
  vectors?: number;
  host_mtu?: number; // 0 = none
  speed?: number; // -1 = unknown
  duplex?: 'half' | 'full';
  rx_queue_size?: number; // power of two 256..1024
  tx_queue_size?: number;
  features: Partial<Record<VirtioNetFeatureName, boolean>>;
  bus?: string; // PCI placement, kept for the hypervisor that owns the bus
  addr?: string;
}

export type DeviceOptions = VirtioNetDeviceOptions;

/** -object iothread,id=..[,poll-max-ns=,poll-grow=,poll-shrink=] */
export interface IothreadObjectOptions {
  qomType: 'iothread';
  id: string;
  'poll-max-ns'?: number;
  'poll-grow'?: number;
  'poll-shrink'?: number;
}
