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
  // netplane: batch each queue's reads and writes through io_uring (default on, off with sndbuf; falls back
  // to read/write where io_uring cannot be set up).
  'io-uring'?: boolean;
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

/** -netdev user,... (NetdevUserOptions): libslirp's user-mode network stack. */
export interface UserNetdevOptions {
  type: 'user';
  id: string;
  hostname?: string;
  restrict?: boolean;
  ipv4?: boolean;
  ipv6?: boolean;
  ip?: string; // legacy: net=<ip>/24
  net?: string; // addr[/mask or /bits]
  host?: string;
  tftp?: string;
  bootfile?: string;
  dhcpstart?: string;
  dns?: string;
  dnssearch?: string[];
  domainname?: string;
  'ipv6-prefix'?: string;
  'ipv6-prefixlen'?: number;
  'ipv6-host'?: string;
  'ipv6-dns'?: string;
  smb?: string; // refused
  smbserver?: string; // refused
  hostfwd?: string[]; // [tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport
  guestfwd?: string[]; // tcp:[addr]:port-cmd:COMMAND
  'tftp-server-name'?: string;
  iothread?: string; // netplane: run the stack on an -object iothread
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

export type NetdevOptions =
  | TapNetdevOptions
  | HubportNetdevOptions
  | UserNetdevOptions
  | StreamNetdevOptions
  | DgramNetdevOptions
  | SocketNetdevOptions
  | VhostUserNetdevOptions;

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

/** A QAPI SocketAddress (stream addr=, dgram local=/remote=). */
export type SocketAddressOptions =
  | {
      type: 'inet';
      host: string;
      port: string;
      numeric?: boolean;
      to?: number;
      ipv4?: boolean;
      ipv6?: boolean;
      'keep-alive'?: boolean;
      mptcp?: boolean;
    }
  | { type: 'unix'; path: string; abstract?: boolean; tight?: boolean }
  | { type: 'vsock'; cid: string; port: string }
  | { type: 'fd'; str: string };

/** -netdev stream,addr.type=..,server=on|off (QEMU 7.2's NetdevStreamOptions). */
export interface StreamNetdevOptions {
  type: 'stream';
  id: string;
  addr: SocketAddressOptions;
  server?: boolean;
  iothread?: string; // netplane
}

/** -netdev dgram,local.type=..,remote.type=.. (NetdevDgramOptions). */
export interface DgramNetdevOptions {
  type: 'dgram';
  id: string;
  local?: SocketAddressOptions;
  remote?: SocketAddressOptions;
  iothread?: string; // netplane
}

/** -netdev socket,listen=|connect=|mcast=|udp=[,localaddr=]|fd= (NetdevSocketOptions). */
export interface SocketNetdevOptions {
  type: 'socket';
  id: string;
  fd?: string;
  listen?: string;
  connect?: string;
  mcast?: string;
  localaddr?: string;
  udp?: string;
  iothread?: string; // netplane
}

/** -object filter-dump,id=..,netdev=..,file=..[,maxlen=..] (QEMU's pcap capture). */
export interface FilterDumpObjectOptions {
  qomType: 'filter-dump';
  id: string;
  netdev: string;
  file: string;
  /** Bytes of each frame kept (default 65536). */
  maxlen?: number;
  /** Which frames: rx (to the netdev), tx (from it), all (default). */
  queue?: 'all' | 'rx' | 'tx';
  /** 'off': the filter exists but captures nothing (default 'on'). */
  status?: 'on' | 'off';
  position?: string;
  insert?: 'before' | 'behind';
  /** netplane: bytes of buffer per captured queue (default 4 MiB). */
  'buffer-size'?: number;
}

/** What -object / object-add create. */
export type ObjectOptions = IothreadObjectOptions | FilterDumpObjectOptions;
