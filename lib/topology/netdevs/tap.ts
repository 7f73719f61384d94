// -netdev tap: open a TAP (or adopt fd=/fds=), run its script, one client per queue; at
// netdev_del run the downscript and close it (QEMU's net/tap.c). Also the default openers
// (lib/tap.ts, which loads the addon only when a TAP is opened) and the script runner.
import { spawnSync } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { NetplaneError } from '../../errors';
import { MAX_TAP_QUEUES } from '../../options/netdev';
import type { TapNetdevOptions } from '../../options/types';
import { Tap, type TapOpenOptions } from '../../tap';
import { invalid } from '../internal';
import { Client } from '../net-client';
import type { TapLike } from '../netdev';
import type { AdoptTap, NetdevContext, NetdevType, OpenTap, RunScript } from './types';

/**
 * io-uring defaults to on: bursts go through io_uring, lone frames through read/write. Not by
 * default with a finite `sndbuf`: a batched write that finds the device full is a counted
 * drop, while the plain path holds the frame back until the TAP is writable.
 */
function batchThroughIoUring(o: TapNetdevOptions): boolean {
  return o['io-uring'] ?? o.sndbuf === undefined;
}

export const defaultOpenTap: OpenTap = (opts) => Tap.open(opts);
export const defaultAdoptTap: AdoptTap = (fds, opts) => Tap.adopt(fds, opts);

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

export const tapNetdev: NetdevType<TapNetdevOptions> = {
  create(o, ctx, viaCli) {
    const vhost =
      o.vhost === true ||
      (o.vhost === undefined && (o.vhostfd !== undefined || o.vhostfds !== undefined || o.vhostforce === true));
    if (vhost)
      throw invalid(`vhost-net requested but could not be initialized (netdev '${o.id}': netplane has no vhost-net)`);
    if (o.helper !== undefined || o.br !== undefined)
      throw invalid(`helper= and br= are not supported (netdev '${o.id}')`);
    ctx.checkIothread(o.iothread);
    const queues = o.queues ?? 1;
    if (!Number.isInteger(queues) || queues < 1 || queues > MAX_TAP_QUEUES) {
      // QEMU asserts on queues=0; we say what is wrong.
      throw invalid(`Parameter 'queues' expects a value between 1 and ${MAX_TAP_QUEUES} (netdev '${o.id}')`);
    }

    let tap: TapLike;
    let infos: string[];
    let downscript: string | undefined;
    if (o.fd !== undefined || o.fds !== undefined) {
      const given = o.fd !== undefined ? [o.fd] : o.fds!;
      if (given.length < 1 || given.length > MAX_TAP_QUEUES) throw invalid(`fds= must list 1 to ${MAX_TAP_QUEUES} fds`);
      const fds = given.map((f) => fdParam(f, ctx));
      tap = tapCall(() => ctx.adoptTap(fds, o.sndbuf !== undefined ? { sndbuf: o.sndbuf } : {}), o.id);
      infos = fds.map((fd) => `fd=${fd}`);
    } else {
      const topts: TapOpenOptions = { queues };
      if (o.ifname !== undefined) topts.ifname = o.ifname;
      if (o.vnet_hdr !== undefined) topts.vnetHdr = o.vnet_hdr ? 'on' : 'off';
      if (o.sndbuf !== undefined) topts.sndbuf = o.sndbuf;
      tap = tapCall(() => ctx.openTap(topts));
      const script = o.script ?? 'no';
      const down = o.downscript ?? 'no';
      if (!scriptDisabled(script)) {
        try {
          ctx.runScript(script, tap.ifname);
        } catch (err) {
          void ctx.track(tap.close());
          throw err;
        }
      }
      if (!scriptDisabled(down)) downscript = down;
      // Scripts belong to queue 0; the other queues print "no" (QEMU passes "no" for them).
      infos = Array.from({ length: tap.queues }, (_, q) =>
        q === 0
          ? `ifname=${tap.ifname},script=${script},downscript=${down}`
          : `ifname=${tap.ifname},script=no,downscript=no`,
      );
    }

    const clients: Client[] = [];
    try {
      for (let q = 0; q < tap.queues; q++) {
        const c = new Client(ctx.reg.nextHandle(), o.id, 'tap', 'tap', true, o.iothread);
        c.infoStr = infos[q];
        c.vnetHdrLen = tap.vnetHdrLen;
        // The data plane gets the TAP queue number now: it places each queue index on its
        // own IOThread and reports it in its counters. `info network` keeps QEMU's index 0
        // until a NIC or -link takes the queues, which pairs queue q with index q anyway.
        ctx.dataPlane?.addClient({
          handle: c.handle,
          kind: 'tap',
          name: c.name,
          queueIndex: q,
          fd: tap.fd(q),
          vnetHdrLen: c.vnetHdrLen,
          ...(batchThroughIoUring(o) ? { ioUring: true } : {}),
          ...(o.iothread !== undefined ? { iothread: o.iothread } : {}),
        });
        clients.push(c);
      }
    } catch (err) {
      for (const c of clients) ctx.dataPlane?.removeClient(c.handle);
      if (downscript !== undefined) runDownscript(downscript, tap.ifname, ctx);
      void ctx.track(tap.close());
      throw err;
    }
    for (const c of clients) ctx.reg.add(c);
    return ctx.newNetdev({ options: o, clients, tap, viaCli, downscript });
  },

  /** Downscript (queue 0, while the interface still exists), then close. */
  async cleanup(netdev, ctx) {
    const tap = netdev.tap;
    if (!tap) return;
    if (netdev.downscript !== undefined) runDownscript(netdev.downscript, tap.ifname, ctx);
    await tap.close();
  },
};

function runDownscript(path: string, ifname: string, ctx: NetdevContext): void {
  try {
    ctx.runScript(path, ifname);
  } catch (err) {
    ctx.reportError(err);
  }
}

/** fd=/fds= entries: a number, or a monitor fd name. */
export function fdParam(text: string, ctx: NetdevContext): number {
  // QEMU (monitor_fd_param): a leading digit makes it a number, and then all of it must be.
  if (/^[0-9]/.test(text)) {
    if (!/^[0-9]+$/.test(text) || Number(text) > 0x7fffffff) throw invalid(`Invalid file descriptor number '${text}'`);
    return Number(text);
  }
  // Without a monitor (QEMU's command line) a name cannot be looked up.
  if (ctx.resolveFd === undefined) throw invalid(`Invalid file descriptor number '${text}'`);
  const fd = ctx.resolveFd(text);
  if (fd === undefined || !Number.isInteger(fd) || fd < 0) {
    throw invalid(`File descriptor named '${text}' has not been found`);
  }
  return fd;
}

/** Open/adopt a TAP; system errors keep QEMU's message and become NetplaneErrors. */
function tapCall(fn: () => TapLike, adoptId?: string): TapLike {
  try {
    return fn();
  } catch (err) {
    if (err instanceof NetplaneError) throw err;
    const e = err as Error & { syscall?: string };
    // An fd= that is not open: QEMU names the netdev ("t0: Can't use file descriptor 9: ...").
    if (adoptId !== undefined && e.syscall === 'fcntl(F_GETFL)') {
      throw new NetplaneError('NETPLANE_TAP_OPEN_FAILED', `${adoptId}: ${e.message}`, { cause: e });
    }
    if (e instanceof TypeError || e instanceof RangeError)
      throw new NetplaneError('NETPLANE_INVALID_OPTION', e.message, { cause: e });
    throw new NetplaneError('NETPLANE_TAP_OPEN_FAILED', e.message, { cause: e });
  }
}
