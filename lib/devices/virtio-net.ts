// The virtio-net device model for a hypervisor written in TypeScript: what the guest driver
// sees (offered features, config space, status, link and announce bits) and what its
// choices do to the netdev (vnet header length on every queue, offloads on queue 0, queue
// attach/detach). Behaviour follows QEMU 7.2's hw/net/virtio-net.c; virtqueues and the
// transport (PCI BARs, interrupts) belong to the hypervisor, which calls in here.
import { NetplaneError } from '../errors';
import type { VirtioNetDeviceOptions, VirtioNetFeatureName } from '../options/types';
import type { TapOffloads } from '../tap';
import { formatMac, type MacBytes } from './mac';
import {
  bit,
  configSizeFor,
  guestHdrLenFor,
  hasBit,
  LEGACY_ONLY_FEATURES,
  VIRTIO_NET_ERR,
  VIRTIO_NET_OK,
  VirtioF,
  VirtioNetConfig,
  VirtioNetF,
  VirtioNetS,
  VirtioStatus,
} from './virtio-net-features';
import { VnetHdrLen } from '../vnet-hdr';

/** What the device needs from the netdev peered with its queues (a tap, a hub port, none). */
export interface VirtioNetPeer {
  readonly hasVnetHdr: boolean;
  readonly hasUfo: boolean;
  readonly hasUso: boolean;
  /** A tap's single queue is never attached/detached (QEMU's peer_attach/peer_detach). */
  readonly isTap: boolean;
  /** TUNSETVNETHDRSZ on queue `queue`'s netdev; false when the netdev refuses the length. */
  setVnetHdrLen(queue: number, len: VnetHdrLen): boolean;
  /** TUNSETOFFLOAD; QEMU applies it to queue 0's netdev only (tun offloads are per device). */
  setOffloads(o: TapOffloads): void;
  /** A tap: TUNSETQUEUE attach/detach; vhost-user: SET_VRING_ENABLE; others ignore it. */
  setQueueEnabled(queue: number, enabled: boolean): void;
}

/** QMP RxFilterInfo, keys spelled as on the wire. */
export interface RxFilterInfo {
  name: string;
  promiscuous: boolean;
  multicast: 'normal' | 'none' | 'all';
  unicast: 'normal' | 'none' | 'all';
  vlan: 'normal' | 'none' | 'all';
  'broadcast-allowed': boolean;
  'multicast-overflow': boolean;
  'unicast-overflow': boolean;
  'main-mac': string;
  'vlan-table': number[];
  'unicast-table': string[];
  'multicast-table': string[];
}

/** Properties that offer a feature bit, with QEMU's defaults. */
const FEATURE_PROPERTIES: ReadonlyArray<[VirtioNetFeatureName, number, boolean]> = [
  ['csum', VirtioNetF.CSUM, true],
  ['guest_csum', VirtioNetF.GUEST_CSUM, true],
  ['gso', VirtioNetF.GSO, true],
  ['guest_tso4', VirtioNetF.GUEST_TSO4, true],
  ['guest_tso6', VirtioNetF.GUEST_TSO6, true],
  ['guest_ecn', VirtioNetF.GUEST_ECN, true],
  ['guest_ufo', VirtioNetF.GUEST_UFO, true],
  ['guest_announce', VirtioNetF.GUEST_ANNOUNCE, true],
  ['host_tso4', VirtioNetF.HOST_TSO4, true],
  ['host_tso6', VirtioNetF.HOST_TSO6, true],
  ['host_ecn', VirtioNetF.HOST_ECN, true],
  ['host_ufo', VirtioNetF.HOST_UFO, true],
  ['mrg_rxbuf', VirtioNetF.MRG_RXBUF, true],
  ['status', VirtioNetF.STATUS, true],
  ['ctrl_vq', VirtioNetF.CTRL_VQ, true],
  ['ctrl_rx', VirtioNetF.CTRL_RX, true],
  ['ctrl_vlan', VirtioNetF.CTRL_VLAN, true],
  ['ctrl_rx_extra', VirtioNetF.CTRL_RX_EXTRA, true],
  ['ctrl_mac_addr', VirtioNetF.CTRL_MAC_ADDR, true],
  ['ctrl_guest_offloads', VirtioNetF.CTRL_GUEST_OFFLOADS, true],
  ['guest_uso4', VirtioNetF.GUEST_USO4, true],
  ['guest_uso6', VirtioNetF.GUEST_USO6, true],
  ['host_uso', VirtioNetF.HOST_USO, true],
  ['mq', VirtioNetF.MQ, false],
  ['rss', VirtioNetF.RSS, false],
  ['hash', VirtioNetF.HASH_REPORT, false],
  ['guest_rsc_ext', VirtioNetF.RSC_EXT, false],
];

/** Transport bits QEMU 7.2's virtio-net-pci offers (notify_on_empty, any_layout, indirect, event_idx, modern, legacy bad-feature probe). */
export const DEFAULT_TRANSPORT_FEATURES =
  bit(VirtioF.NOTIFY_ON_EMPTY) |
  bit(VirtioF.ANY_LAYOUT) |
  bit(VirtioF.RING_INDIRECT_DESC) |
  bit(VirtioF.RING_EVENT_IDX) |
  bit(VirtioF.BAD_FEATURE) |
  bit(VirtioF.VERSION_1);

/** Offloads that need the netdev to understand vnet headers. */
const NEEDS_VNET_HDR = [
  VirtioNetF.CSUM,
  VirtioNetF.HOST_TSO4,
  VirtioNetF.HOST_TSO6,
  VirtioNetF.HOST_ECN,
  VirtioNetF.HOST_UFO,
  VirtioNetF.GUEST_CSUM,
  VirtioNetF.GUEST_TSO4,
  VirtioNetF.GUEST_TSO6,
  VirtioNetF.GUEST_ECN,
  VirtioNetF.GUEST_UFO,
  VirtioNetF.GUEST_USO4,
  VirtioNetF.GUEST_USO6,
  VirtioNetF.HOST_USO,
  VirtioNetF.HASH_REPORT,
];
const NEEDS_UFO = [VirtioNetF.GUEST_UFO, VirtioNetF.HOST_UFO];
const NEEDS_USO = [VirtioNetF.HOST_USO, VirtioNetF.GUEST_USO4, VirtioNetF.GUEST_USO6];

/** Guest offload feature bit -> tap offload flag. */
const GUEST_OFFLOADS: ReadonlyArray<[number, keyof TapOffloads]> = [
  [VirtioNetF.GUEST_CSUM, 'csum'],
  [VirtioNetF.GUEST_TSO4, 'tso4'],
  [VirtioNetF.GUEST_TSO6, 'tso6'],
  [VirtioNetF.GUEST_ECN, 'ecn'],
  [VirtioNetF.GUEST_UFO, 'ufo'],
  [VirtioNetF.GUEST_USO4, 'uso4'],
  [VirtioNetF.GUEST_USO6, 'uso6'],
];
const GUEST_OFFLOAD_MASK = GUEST_OFFLOADS.reduce((m, [b]) => m | bit(b), 0n);

/** The TAP offloads (TUNSETOFFLOAD) that the guest offload bits in `features` ask for. */
export function tapOffloadsFor(features: bigint): TapOffloads {
  const o: TapOffloads = {};
  for (const [b, name] of GUEST_OFFLOADS) o[name] = hasBit(features, b);
  return o;
}

const MAX_VLAN = 4096;
const MAC_TABLE_ENTRIES = 64;
const VIRTQUEUE_MAX = 1024;
const SPEED_UNKNOWN = -1;
const DUPLEX_UNKNOWN = 0xff;
const RSS_MAX_KEY_SIZE = 40;
const RSS_MAX_TABLE_LEN = 128;
const RSS_SUPPORTED_HASHES = 0x1ff;

export interface VirtioNetInit {
  /** The NIC's MAC (conf->macaddr): restored by every reset. */
  mac: MacBytes;
  /** Number of netdev queues peered with the NIC (>= 1). */
  maxQueuePairs: number;
  /** The netdev peered with the NIC's queues; absent for a NIC with no netdev. */
  peer?: VirtioNetPeer;
  options?: Partial<VirtioNetDeviceOptions>;
  /** Transport feature bits to offer (default: QEMU 7.2 virtio-net-pci's). */
  transportFeatures?: bigint;
}

export type ConfigChangeListener = () => void;

export class VirtioNet {
  readonly maxQueuePairs: number;
  /** Visible device-config size in bytes. */
  readonly configSize: number;
  readonly mtu: number;
  readonly speed: number;
  readonly duplex: number;

  #hostFeatures: bigint;
  #peer: VirtioNetPeer | undefined;
  readonly #confMac: MacBytes;
  #mac: MacBytes;
  #driverFeatures = 0n;
  #status = 0; // device status register
  #netStatus: number = VirtioNetS.LINK_UP; // config-space status
  #isr = 0;
  #generation = 0;
  #currQueuePairs = 1;
  #multiqueue = false;
  #guestHdrLen: VnetHdrLen = VnetHdrLen.LEGACY;
  #hostHdrLen = 0;
  #guestOffloads = 0n;
  // rx filter state
  #promisc = true;
  #allmulti = false;
  #alluni = false;
  #nomulti = false;
  #nouni = false;
  #nobcast = false;
  #unicast: MacBytes[] = [];
  #multicast: MacBytes[] = [];
  #uniOverflow = false;
  #multiOverflow = false;
  readonly #vlans = new Uint32Array(MAX_VLAN / 32);
  #rxFilterNotify = true;

  readonly #configListeners = new Set<ConfigChangeListener>();
  readonly #macListeners = new Set<(mac: MacBytes) => void>();
  readonly #rxFilterListeners = new Set<() => void>();
  readonly #resetListeners = new Set<() => void>();

  constructor(init: VirtioNetInit) {
    const o = init.options ?? {};
    validateDeviceOptions(o);
    if (!Number.isInteger(init.maxQueuePairs) || init.maxQueuePairs < 1 || init.maxQueuePairs * 2 + 1 > VIRTQUEUE_MAX) {
      throw new NetplaneError(
        'NETPLANE_INVALID_OPTION',
        `Invalid number of queue pairs (= ${init.maxQueuePairs}), must be a positive integer less than ${(VIRTQUEUE_MAX - 1) / 2}.`,
      );
    }
    if (!(init.mac instanceof Uint8Array) || init.mac.length !== 6) throw new TypeError('mac must be 6 bytes');
    this.#peer = init.peer;
    this.#confMac = Uint8Array.from(init.mac);
    this.#mac = Uint8Array.from(init.mac);
    this.maxQueuePairs = init.maxQueuePairs;
    this.mtu = o.host_mtu ?? 0;
    this.speed = o.speed ?? SPEED_UNKNOWN;
    this.duplex = o.duplex === 'full' ? 1 : o.duplex === 'half' ? 0 : DUPLEX_UNKNOWN;

    // Properties first (n->host_features), then what the netdev cannot do is withdrawn
    // (virtio_net_get_features).
    let f = 0n;
    for (const [name, b, dflt] of FEATURE_PROPERTIES) if (o.features?.[name] ?? dflt) f |= bit(b);
    if (this.mtu !== 0) f |= bit(VirtioNetF.MTU);
    if (this.speed >= 0 || o.duplex !== undefined) f |= bit(VirtioNetF.SPEED_DUPLEX);
    this.configSize = configSizeFor(f);
    f |= bit(VirtioNetF.MAC);
    const peer = this.#peer;
    const clear = (bits: readonly number[]) => bits.forEach((b) => (f &= ~bit(b)));
    if (!peer?.hasVnetHdr) clear(NEEDS_VNET_HDR);
    if (!peer?.hasVnetHdr || !peer.hasUfo) clear(NEEDS_UFO);
    if (!peer?.hasVnetHdr || !peer.hasUso) clear(NEEDS_USO);
    this.#hostFeatures = f | (init.transportFeatures ?? DEFAULT_TRANSPORT_FEATURES);

    this.#hostHdrLen = peer?.hasVnetHdr ? VnetHdrLen.LEGACY : 0;
  }

  // ---- features --------------------------------------------------------------------------

  /** Every feature the device offers, 64 bits, transport bits included. */
  get hostFeatures(): bigint {
    return this.#hostFeatures;
  }

  /**
   * Offer no feature outside `mask` from now on (a vhost-user back-end's offer became known,
   * QEMU's vhost_net_get_features). Takes effect at the driver's next negotiation; never
   * widens the offer again.
   */
  limitFeatures(mask: bigint): void {
    this.#hostFeatures &= mask & ((1n << 64n) - 1n);
  }

  /** The 32-bit host-features register of the legacy (I/O BAR) interface. */
  get legacyHostFeatures(): number {
    return Number(this.hostFeatures & 0xffffffffn);
  }

  /** What a modern (VERSION_1) transport offers: legacy-only bits hidden. */
  get modernHostFeatures(): bigint {
    return this.hostFeatures & ~LEGACY_ONLY_FEATURES;
  }

  get driverFeatures(): bigint {
    return this.#driverFeatures;
  }

  hasDriverFeature(b: number): boolean {
    return hasBit(this.#driverFeatures, b);
  }

  /**
   * The driver writes its acked features. Bits the device did not offer are dropped, as
   * QEMU does; returns false when some were dropped or when FEATURES_OK is already set
   * (the write is then ignored).
   */
  setDriverFeatures(features: bigint | number): boolean {
    const wanted = BigInt(features);
    if (wanted < 0n) throw new RangeError('features must be non-negative');
    if (this.#status & VirtioStatus.FEATURES_OK) return false;
    const accepted = wanted & this.hostFeatures;
    this.#driverFeatures = accepted;
    this.#applyFeatures(accepted);
    return accepted === wanted;
  }

  /** The header length the driver uses (12 for VERSION_1, 20 with HASH_REPORT, 10/12 legacy). */
  get guestHdrLen(): VnetHdrLen {
    return this.#guestHdrLen;
  }

  /** The header length the netdev produces/consumes (0 when it has no vnet header). */
  get hostHdrLen(): number {
    return this.#hostHdrLen;
  }

  /** Negotiated guest offloads currently applied to the netdev (feature-bit mask). */
  get guestOffloads(): bigint {
    return this.#guestOffloads;
  }

  // ---- device status ---------------------------------------------------------------------

  get status(): number {
    return this.#status;
  }

  get driverOk(): boolean {
    return (this.#status & VirtioStatus.DRIVER_OK) !== 0;
  }

  /** Driver writes the status register; 0 resets the device. */
  setStatus(value: number): void {
    if (!Number.isInteger(value) || value < 0 || value > 0xff) throw new RangeError('status must be a byte');
    if (value === 0) {
      this.reset();
      return;
    }
    this.#status = value;
  }

  /**
   * Device reset (status 0 from the driver, or the machine reset the hypervisor performs when
   * the device is plugged). Like QEMU 7.2, features fall back to none, which sets the
   * 10-byte header on the netdev, clears offloads and detaches queues >= 1.
   */
  reset(): void {
    this.#status = 0;
    this.#isr = 0;
    this.#driverFeatures = 0n;
    this.#promisc = true;
    this.#allmulti = this.#alluni = this.#nomulti = this.#nouni = this.#nobcast = false;
    this.#currQueuePairs = 1;
    this.#netStatus &= ~VirtioNetS.ANNOUNCE;
    this.#unicast = [];
    this.#multicast = [];
    this.#uniOverflow = this.#multiOverflow = false;
    this.#setMac(this.#confMac);
    this.#applyFeatures(0n);
    for (const l of [...this.#resetListeners]) l();
  }

  /**
   * Called after every device reset (status 0, or the hypervisor's machine reset): whoever
   * runs the device's queues stops them. Returns a function that unregisters it.
   */
  onReset(listener: () => void): () => void {
    this.#resetListeners.add(listener);
    return () => this.#resetListeners.delete(listener);
  }

  // ---- config space ----------------------------------------------------------------------

  /** The visible device config as bytes (little-endian fields). */
  configBytes(): Buffer {
    const b = Buffer.alloc(VirtioNetConfig.SIZE);
    b.set(this.#mac, VirtioNetConfig.MAC);
    b.writeUInt16LE(this.#netStatus, VirtioNetConfig.STATUS);
    b.writeUInt16LE(this.maxQueuePairs, VirtioNetConfig.MAX_VIRTQUEUE_PAIRS);
    b.writeUInt16LE(this.mtu, VirtioNetConfig.MTU);
    b.writeInt32LE(this.speed, VirtioNetConfig.SPEED);
    b.writeUInt8(this.duplex, VirtioNetConfig.DUPLEX);
    b.writeUInt8(RSS_MAX_KEY_SIZE, VirtioNetConfig.RSS_MAX_KEY_SIZE);
    const rss = hasBit(this.hostFeatures, VirtioNetF.RSS);
    b.writeUInt16LE(rss ? RSS_MAX_TABLE_LEN : 1, VirtioNetConfig.RSS_MAX_INDIRECTION_TABLE_LENGTH);
    b.writeUInt32LE(RSS_SUPPORTED_HASHES, VirtioNetConfig.SUPPORTED_HASH_TYPES);
    return b.subarray(0, this.configSize);
  }

  /** Read `width` bytes at `offset` (little-endian). Past the visible size reads all ones, as QEMU. */
  readConfig(offset: number, width: 1 | 2 | 4): number {
    checkAccess(offset, width);
    if (offset + width > this.configSize) return width === 4 ? 0xffffffff : (1 << (8 * width)) - 1;
    return this.configBytes().readUIntLE(offset, width);
  }

  /**
   * Driver config write. Only the MAC is writable, and only by a legacy driver that did not
   * negotiate CTRL_MAC_ADDR (others use the control queue); everything else is ignored.
   */
  writeConfig(offset: number, value: number, width: 1 | 2 | 4): void {
    checkAccess(offset, width);
    if (offset + width > this.configSize) return;
    const b = Buffer.from(this.configBytes());
    b.writeUIntLE(width === 4 ? value >>> 0 : value & ((1 << (8 * width)) - 1), offset, width);
    const mac = b.subarray(VirtioNetConfig.MAC, VirtioNetConfig.MAC + 6);
    if (
      !this.hasDriverFeature(VirtioNetF.CTRL_MAC_ADDR) &&
      !this.hasDriverFeature(VirtioF.VERSION_1) &&
      !mac.equals(this.#mac)
    ) {
      this.#setMac(Uint8Array.from(mac));
    }
  }

  /** The current MAC (the guest may change it); reset restores the NIC's configured one. */
  get mac(): MacBytes {
    return Uint8Array.from(this.#mac);
  }

  // ---- link, notification, announce -------------------------------------------------------

  get linkUp(): boolean {
    return (this.#netStatus & VirtioNetS.LINK_UP) !== 0;
  }

  /** config-space status (LINK_UP | ANNOUNCE). */
  get netStatus(): number {
    return this.#netStatus;
  }

  /**
   * Register the hypervisor's config-change interrupt (virtio_notify_config). Called only
   * after DRIVER_OK. Returns a function that unregisters it.
   */
  onConfigChange(listener: ConfigChangeListener): () => void {
    this.#configListeners.add(listener);
    return () => this.#configListeners.delete(listener);
  }

  /** Read-to-clear interrupt status (bit 1 = config change). */
  readIsr(): number {
    const v = this.#isr;
    this.#isr = 0;
    return v;
  }

  /** Bumped on every config notification (the modern transport's config_generation). */
  get configGeneration(): number {
    return this.#generation;
  }

  /** The NIC's queue-0 link_down changed (link_status_changed): notify only on change. */
  linkStatusChanged(linkDown: boolean): boolean {
    const old = this.#netStatus;
    if (linkDown) this.#netStatus &= ~VirtioNetS.LINK_UP;
    else this.#netStatus |= VirtioNetS.LINK_UP;
    if (this.#netStatus === old) return false;
    this.#notifyConfig();
    return true;
  }

  /** The NIC announce hook: raise ANNOUNCE when the driver can acknowledge it. */
  announce(): void {
    if (this.hasDriverFeature(VirtioNetF.GUEST_ANNOUNCE) && this.hasDriverFeature(VirtioNetF.CTRL_VQ)) {
      this.#netStatus |= VirtioNetS.ANNOUNCE;
      this.#notifyConfig();
    }
  }

  /** VIRTIO_NET_CTRL_ANNOUNCE_ACK. */
  ackAnnounce(): number {
    if (!(this.#netStatus & VirtioNetS.ANNOUNCE)) return VIRTIO_NET_ERR;
    this.#netStatus &= ~VirtioNetS.ANNOUNCE;
    return VIRTIO_NET_OK;
  }

  // ---- multiqueue ------------------------------------------------------------------------

  get currQueuePairs(): number {
    return this.#currQueuePairs;
  }

  /** Whether MQ (or RSS) was negotiated. */
  get multiqueue(): boolean {
    return this.#multiqueue;
  }

  /** VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET: use `pairs` queue pairs; attaches/detaches tap queues. */
  setQueuePairs(pairs: number): number {
    if (!Number.isInteger(pairs) || pairs < 1 || pairs > 0x8000 || pairs > this.maxQueuePairs || !this.#multiqueue) {
      return VIRTIO_NET_ERR;
    }
    this.#currQueuePairs = pairs;
    this.#applyQueuePairs();
    return VIRTIO_NET_OK;
  }

  /**
   * The netdev went away (netdev_del): keep the device running, stop touching the netdev.
   * QEMU's peer_deleted.
   */
  peerDeleted(): void {
    this.#peer = undefined;
  }

  get peerPresent(): boolean {
    return this.#peer !== undefined;
  }

  // ---- control queue: rx filter, MAC, VLAN, guest offloads --------------------------------

  /** VIRTIO_NET_CTRL_RX commands. */
  setRxMode(mode: 'promisc' | 'allmulti' | 'alluni' | 'nomulti' | 'nouni' | 'nobcast', on: boolean): number {
    switch (mode) {
      case 'promisc':
        this.#promisc = on;
        break;
      case 'allmulti':
        this.#allmulti = on;
        break;
      case 'alluni':
        this.#alluni = on;
        break;
      case 'nomulti':
        this.#nomulti = on;
        break;
      case 'nouni':
        this.#nouni = on;
        break;
      case 'nobcast':
        this.#nobcast = on;
        break;
      default:
        return VIRTIO_NET_ERR;
    }
    this.#rxFilterChanged();
    return VIRTIO_NET_OK;
  }

  /** VIRTIO_NET_CTRL_MAC_TABLE_SET (table overflow sets the overflow flags, as QEMU). */
  setMacTable(unicast: MacBytes[], multicast: MacBytes[]): number {
    this.#unicast = [];
    this.#multicast = [];
    this.#uniOverflow = this.#multiOverflow = false;
    if (unicast.length <= MAC_TABLE_ENTRIES) this.#unicast = unicast.map((m) => Uint8Array.from(m));
    else this.#uniOverflow = true;
    if (multicast.length <= MAC_TABLE_ENTRIES - this.#unicast.length)
      this.#multicast = multicast.map((m) => Uint8Array.from(m));
    else this.#multiOverflow = true;
    this.#rxFilterChanged();
    return VIRTIO_NET_OK;
  }

  /** VIRTIO_NET_CTRL_MAC_ADDR_SET. */
  setMacAddress(mac: MacBytes): number {
    if (mac.length !== 6) return VIRTIO_NET_ERR;
    this.#setMac(Uint8Array.from(mac));
    this.#rxFilterChanged();
    return VIRTIO_NET_OK;
  }

  /** VIRTIO_NET_CTRL_VLAN_ADD / _DEL. */
  setVlan(vid: number, member: boolean): number {
    if (!Number.isInteger(vid) || vid < 0 || vid >= MAX_VLAN) return VIRTIO_NET_ERR;
    if (member) this.#vlans[vid >> 5] |= 1 << (vid & 31);
    else this.#vlans[vid >> 5] &= ~(1 << (vid & 31));
    this.#rxFilterChanged();
    return VIRTIO_NET_OK;
  }

  /** VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET: a subset of the negotiated guest offloads. */
  setGuestOffloads(offloads: bigint): number {
    if (!this.hasDriverFeature(VirtioNetF.CTRL_GUEST_OFFLOADS) || !this.#peer?.hasVnetHdr) return VIRTIO_NET_ERR;
    const supported = this.#driverFeatures & GUEST_OFFLOAD_MASK;
    const wanted = offloads & ~bit(VirtioNetF.RSC_EXT);
    if (wanted & ~supported) return VIRTIO_NET_ERR;
    this.#guestOffloads = wanted;
    this.#applyGuestOffloads();
    return VIRTIO_NET_OK;
  }

  /** Called when the rx filter changes while notification is armed (NIC_RX_FILTER_CHANGED). */
  onRxFilterChanged(listener: () => void): () => void {
    this.#rxFilterListeners.add(listener);
    return () => this.#rxFilterListeners.delete(listener);
  }

  /** Called whenever the MAC shown in the NIC's info string changes. */
  onMacChange(listener: (mac: MacBytes) => void): () => void {
    this.#macListeners.add(listener);
    return () => this.#macListeners.delete(listener);
  }

  /**
   * QMP query-rx-filter for this NIC (name = its queue-0 name); re-arms the change event.
   * broadcast-allowed is reported truthfully: QEMU reports its internal "no broadcast" flag
   * under that name, i.e. false while broadcasts are accepted. We report what it says.
   */
  queryRxFilter(name: string): RxFilterInfo {
    const state = (none: boolean, all: boolean) => (none ? 'none' : all ? 'all' : 'normal') as RxFilterInfo['unicast'];
    const vlanTable: number[] = [];
    for (let vid = MAX_VLAN - 1; vid >= 0; vid--) if (this.#vlans[vid >> 5] & (1 << (vid & 31))) vlanTable.push(vid);
    const vlan = !this.hasDriverFeature(VirtioNetF.CTRL_VLAN) ? 'all' : vlanTable.length === 0 ? 'none' : 'normal';
    this.#rxFilterNotify = true;
    return {
      name,
      promiscuous: this.#promisc,
      multicast: state(this.#nomulti, this.#allmulti),
      unicast: state(this.#nouni, this.#alluni),
      vlan,
      'broadcast-allowed': !this.#nobcast,
      'multicast-overflow': this.#multiOverflow,
      'unicast-overflow': this.#uniOverflow,
      'main-mac': formatMac(this.#mac),
      'vlan-table': vlanTable,
      // QEMU lists both tables newest entry first.
      'unicast-table': this.#unicast.map(formatMac).reverse(),
      'multicast-table': this.#multicast.map(formatMac).reverse(),
    };
  }

  // ---- internals -------------------------------------------------------------------------

  /** virtio_net_set_features: multiqueue, header lengths, offloads, VLAN filter. */
  #applyFeatures(f: bigint): void {
    this.#multiqueue = hasBit(f, VirtioNetF.MQ) || hasBit(f, VirtioNetF.RSS);
    this.#applyQueuePairs();

    this.#guestHdrLen = guestHdrLenFor(f);
    const peer = this.#peer;
    if (peer?.hasVnetHdr) {
      for (let q = 0; q < this.maxQueuePairs; q++) {
        if (peer.setVnetHdrLen(q, this.#guestHdrLen)) this.#hostHdrLen = this.#guestHdrLen;
      }
      this.#guestOffloads = f & GUEST_OFFLOAD_MASK;
      this.#applyGuestOffloads();
    }
    // Without CTRL_VLAN every VLAN passes; with it the guest starts from an empty table.
    this.#vlans.fill(hasBit(f, VirtioNetF.CTRL_VLAN) ? 0 : 0xffffffff);
  }

  /**
   * virtio_net_set_queue_pairs: attach pairs < curr, detach the rest (peer_attach /
   * peer_detach: a tap with more than one queue, and a vhost-user peer always).
   */
  #applyQueuePairs(): void {
    const peer = this.#peer;
    if (!peer) return;
    for (let q = 0; q < this.maxQueuePairs; q++) {
      if (q < this.#currQueuePairs) {
        if (!peer.isTap || this.maxQueuePairs > 1) peer.setQueueEnabled(q, true);
      } else {
        peer.setQueueEnabled(q, false);
      }
    }
  }

  #applyGuestOffloads(): void {
    this.#peer?.setOffloads(tapOffloadsFor(this.#guestOffloads));
  }

  #notifyConfig(): void {
    if (!this.driverOk) return;
    this.#isr |= 0x3;
    this.#generation++;
    for (const l of [...this.#configListeners]) l();
  }

  #setMac(mac: MacBytes): void {
    const changed = !Buffer.from(mac).equals(Buffer.from(this.#mac));
    this.#mac = mac;
    if (changed) for (const l of [...this.#macListeners]) l(Uint8Array.from(mac));
  }

  #rxFilterChanged(): void {
    if (!this.#rxFilterNotify) return;
    this.#rxFilterNotify = false;
    for (const l of [...this.#rxFilterListeners]) l();
  }
}

function checkAccess(offset: number, width: number): void {
  if (width !== 1 && width !== 2 && width !== 4) throw new RangeError('config access width must be 1, 2 or 4');
  if (!Number.isInteger(offset) || offset < 0) throw new RangeError('config offset must be a non-negative integer');
}

function validateDeviceOptions(o: Partial<VirtioNetDeviceOptions>): void {
  const bad = (msg: string) => new NetplaneError('NETPLANE_INVALID_OPTION', msg);
  if (o.speed !== undefined && (!Number.isInteger(o.speed) || o.speed < SPEED_UNKNOWN || o.speed > 0x7fffffff)) {
    throw bad("'speed' must be between 0 and INT_MAX");
  }
  if (o.duplex !== undefined && o.duplex !== 'half' && o.duplex !== 'full')
    throw bad("'duplex' must be 'half' or 'full'");
  if (o.host_mtu !== undefined && (!Number.isInteger(o.host_mtu) || o.host_mtu < 0 || o.host_mtu > 0xffff)) {
    throw bad(`Property 'virtio-net-device.host_mtu' doesn't take value '${o.host_mtu}'`);
  }
  for (const key of ['rx_queue_size', 'tx_queue_size'] as const) {
    const v = o[key];
    if (v === undefined) continue;
    if (!Number.isInteger(v) || v < 256 || v > 1024 || (v & (v - 1)) !== 0) {
      throw bad(`Invalid ${key} (= ${v}), must be a power of 2 between 256 and 1024.`);
    }
  }
}
