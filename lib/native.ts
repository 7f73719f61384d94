// The one place that loads the native addon, with a typed interface for every export.
// Each concept keeps its own section below; nothing else in lib/ requires the addon.
import * as path from 'node:path';

/** A Node-style system error from the native core: code 'EPERM', syscall 'ioctl(TUNSETIFF)'. */
export interface NativeSystemError extends Error {
  code?: string;
  errno?: number;
  syscall?: string;
}

// ---- tap (native/binding/tap.cc) ------------------------------------------------------
export interface NativeTapOpenOptions {
  ifname?: string;
  queues?: number;
  vnetHdr?: 'off' | 'auto' | 'on';
  sndbuf?: number;
}
export interface NativeTapOffloads {
  csum?: boolean;
  tso4?: boolean;
  tso6?: boolean;
  ecn?: boolean;
  ufo?: boolean;
  uso4?: boolean;
  uso6?: boolean;
}
/** core::TapDevice. Every member throws (code NETPLANE_CLOSED) once closed, except `closed`/close(). */
export interface NativeTapDevice {
  readonly ifname: string;
  readonly queues: number;
  readonly features: number;
  readonly hasVnetHdr: boolean;
  readonly hasUfo: boolean;
  readonly hasUso: boolean;
  readonly vnetHdrLen: number;
  readonly offloadFlags: number;
  readonly closed: boolean;
  fd(queue: number): number;
  queueEnabled(queue: number): boolean;
  setVnetHdrLen(len: number): void;
  setOffloads(offloads: NativeTapOffloads): void;
  setQueueEnabled(queue: number, enabled: boolean): void;
  setSndbuf(bytes: number): void;
  close(): void;
}
export interface NativeTapBinding {
  tapOpen(opts?: NativeTapOpenOptions): NativeTapDevice;
  /** Dups the fds (F_DUPFD_CLOEXEC); sndbuf undefined = QEMU's default. */
  tapAdopt(fds: number[], sndbuf?: number): NativeTapDevice;
}

// ---- vnet header (native/binding/vnet.cc) ---------------------------------------------
export interface NativeVnetBinding {}

// ---- event loop (native/binding/aio.cc) -----------------------------------------------
export interface NativeAioBinding {}

// ---- data plane graph (native/binding/graph.cc) ---------------------------------------
export interface NativeGraphBinding {}

export type NativeBinding = NativeTapBinding & NativeVnetBinding & NativeAioBinding & NativeGraphBinding;

let cached: NativeBinding | undefined;

/** Load the addon once (prebuilds/ first via node-gyp-build, then build/Release). */
export function native(): NativeBinding {
  if (!cached) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const load = require('node-gyp-build') as (dir: string) => unknown;
    cached = load(path.join(__dirname, '..')) as NativeBinding;
  }
  return cached;
}
