// What the topology needs from a TAP (lib/tap.ts's Tap, or a fake in unit tests), the
// default openers (loaded lazily so tests with fakes never load the native addon), and the
// network script runner QEMU uses for script=/downscript=.
import { spawnSync } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { NetplaneError } from '../errors';
import type { TapOffloads, TapOpenOptions } from '../tap';

export interface TapLike {
  readonly ifname: string;
  readonly queues: number;
  readonly hasVnetHdr: boolean;
  readonly hasUfo: boolean;
  readonly hasUso: boolean;
  /** Current TUNSETVNETHDRSZ (0 without vnet header). */
  readonly vnetHdrLen: number;
  fd(queue: number): number;
  queueEnabled(queue: number): boolean;
  /** Applies to every queue of the interface. */
  setVnetHdrLen(len: 10 | 12 | 20): void;
  setOffloads(o: TapOffloads): void;
  setQueueEnabled(queue: number, enabled: boolean): void;
  close(): Promise<void>;
}

export type OpenTap = (opts: TapOpenOptions) => TapLike;
export type AdoptTap = (fds: number[], opts: { sndbuf?: number }) => TapLike;
/** Run a network script: `path ifname`; throws on failure. */
export type RunScript = (path: string, ifname: string) => void;

type TapModule = typeof import('../tap');

function tapModule(): TapModule {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('../tap') as TapModule;
}

export const defaultOpenTap: OpenTap = (opts) => tapModule().Tap.open(opts);
export const defaultAdoptTap: AdoptTap = (fds, opts) => tapModule().Tap.adopt(fds, opts);

/** script=/downscript= values that mean "none". */
export function scriptDisabled(script: string | undefined): boolean {
  return script === undefined || script === '' || script === 'no';
}

/**
 * Run `path ifname` directly (no shell) with a minimal environment and wait for it, as QEMU
 * does. QEMU reports the raw wait status, so exit code 1 reads "status 256"; an exec failure
 * is the child's exit(1) there, and is reported the same way here.
 */
export const runNetworkScript: RunScript = (path, ifname) => {
  const r = spawnSync(path, [ifname], {
    env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' },
    stdio: ['ignore', 'inherit', 'inherit'],
    shell: false,
  });
  let status: number;
  if (r.error) status = 1 << 8;
  else if (r.status === 0) return;
  else if (r.status !== null) status = r.status << 8;
  else status = (r.signal && osConstants.signals[r.signal]) || 0;
  throw new NetplaneError('NETPLANE_SCRIPT_FAILED', `network script ${path} failed with status ${status}`, {
    cause: r.error,
  });
};
