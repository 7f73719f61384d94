// Tap: a Linux TAP interface as N queue fds, opened the way QEMU's `-netdev tap` does
// (vnet headers, multiqueue, offloads, queue attach/detach, sndbuf) or adopted from
// pre-opened fds (QEMU's fd= / fds=). A thin typed layer over the native TapDevice.
import { NetplaneError } from './errors';
import { native, type NativeTapDevice, type TapOffloads, type TapOpenOptions } from './native';

export type { TapOffloads, TapOpenOptions, VnetHdrMode } from './native';

/** TUNGETFEATURES / TUNSETIFF flags (linux/if_tun.h). */
export const TunFeature = {
  IFF_TUN: 0x0001,
  IFF_TAP: 0x0002,
  IFF_NAPI: 0x0010,
  IFF_NAPI_FRAGS: 0x0020,
  IFF_NO_CARRIER: 0x0040,
  IFF_MULTI_QUEUE: 0x0100,
  IFF_NO_PI: 0x1000,
  IFF_ONE_QUEUE: 0x2000,
  IFF_VNET_HDR: 0x4000,
  IFF_TUN_EXCL: 0x8000,
} as const;

/** TUNSETOFFLOAD flags (linux/if_tun.h). */
export const TunOffload = {
  TUN_F_CSUM: 0x01,
  TUN_F_TSO4: 0x02,
  TUN_F_TSO6: 0x04,
  TUN_F_TSO_ECN: 0x08,
  TUN_F_UFO: 0x10,
  TUN_F_USO4: 0x20,
  TUN_F_USO6: 0x40,
} as const;

/** The names of the flags set in `mask`, e.g. ['IFF_TAP', 'IFF_VNET_HDR']. */
export function flagNames(mask: number, table: Readonly<Record<string, number>>): string[] {
  return Object.entries(table)
    .filter(([, bit]) => (mask & bit) !== 0)
    .map(([name]) => name);
}

const openKeys = new Set(['ifname', 'queues', 'vnetHdr', 'sndbuf']);
const offloadKeys = new Set(['csum', 'tso4', 'tso6', 'ecn', 'ufo', 'uso4', 'uso6']);

function rejectUnknownKeys(what: string, obj: object, allowed: Set<string>): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.has(key)) {
      throw new TypeError(`unknown ${what} '${key}' (expected one of ${[...allowed].join(', ')})`);
    }
  }
}

export class Tap implements AsyncDisposable {
  readonly ifname: string;
  readonly queues: number;
  /** TUNGETFEATURES (IFF_* bits the kernel offers). */
  readonly features: number;
  readonly hasVnetHdr: boolean;
  readonly hasUfo: boolean;
  readonly hasUso: boolean;

  #dev: NativeTapDevice | undefined;
  // Last known values, still readable after close().
  #vnetHdrLen: number;
  #offloadFlags: number;

  private constructor(dev: NativeTapDevice) {
    this.#dev = dev;
    this.ifname = dev.ifname;
    this.queues = dev.queues;
    this.features = dev.features;
    this.hasVnetHdr = dev.hasVnetHdr;
    this.hasUfo = dev.hasUfo;
    this.hasUso = dev.hasUso;
    this.#vnetHdrLen = dev.vnetHdrLen;
    this.#offloadFlags = dev.offloadFlags;
  }

  /** Open (or create) a TAP with `queues` queue fds. Throws a system error on failure. */
  static open(opts: TapOpenOptions = {}): Tap {
    if (typeof opts !== 'object' || opts === null) throw new TypeError('tap options must be an object');
    rejectUnknownKeys('tap option', opts, openKeys);
    return new Tap(native().tapOpen(opts));
  }

  /** Adopt pre-opened TAP fds, one per queue. The fds are duplicated: the caller keeps its own. */
  static adopt(fds: number[], opts: { sndbuf?: number } = {}): Tap {
    if (typeof opts !== 'object' || opts === null) throw new TypeError('adopt options must be an object');
    rejectUnknownKeys('adopt option', opts, new Set(['sndbuf']));
    return new Tap(native().tapAdopt(fds, opts.sndbuf));
  }

  get closed(): boolean {
    return this.#dev === undefined;
  }

  /** Current TUNSETVNETHDRSZ (0 without a vnet header). */
  get vnetHdrLen(): number {
    return this.#vnetHdrLen;
  }

  /** TUN_F_* bits last applied with setOffloads() (0 after open). */
  get offloadFlags(): number {
    return this.#offloadFlags;
  }

  /** The fd of queue `queue`; owned by the Tap and closed by close(). */
  fd(queue: number): number {
    return this.#device().fd(queue);
  }

  queueEnabled(queue: number): boolean {
    return this.#device().queueEnabled(queue);
  }

  setVnetHdrLen(len: 10 | 12 | 20): void {
    const dev = this.#device();
    dev.setVnetHdrLen(len);
    this.#vnetHdrLen = dev.vnetHdrLen;
  }

  /** TUNSETOFFLOAD with QEMU's fallback (drop USO, then UFO, when the kernel refuses them). */
  setOffloads(o: TapOffloads): void {
    const dev = this.#device();
    if (typeof o !== 'object' || o === null) throw new TypeError('offloads must be an object');
    rejectUnknownKeys('offload', o, offloadKeys);
    dev.setOffloads(o);
    this.#offloadFlags = dev.offloadFlags;
  }

  /** Attach (TUNSETQUEUE IFF_ATTACH_QUEUE) or detach a queue; a no-op when already so. */
  setQueueEnabled(queue: number, enabled: boolean): void {
    this.#device().setQueueEnabled(queue, enabled);
  }

  setSndbuf(bytes: number): void {
    this.#device().setSndbuf(bytes);
  }

  /** Close every queue fd; a non-persistent TAP disappears. Idempotent. */
  async close(): Promise<void> {
    const dev = this.#dev;
    this.#dev = undefined;
    dev?.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #device(): NativeTapDevice {
    if (this.#dev === undefined) throw new NetplaneError('NETPLANE_CLOSED', `tap ${this.ifname} is closed`);
    return this.#dev;
  }
}
