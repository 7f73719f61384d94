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
export interface NativeTapBinding {}

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
