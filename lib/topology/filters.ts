// Net filters on netdevs: QEMU's filter-dump (pcap capture), created by -object or QMP
// object-add and removed by object-del or with its netdev (netdev_del destroys a netdev's
// filters, as in QEMU 7.2). The frames are copied by the data plane into a bounded buffer
// per queue and written by another thread (native/core/net/filter_dump.h); here is the
// bookkeeping: which netdev, which clients, `info network`'s "filters:" lines, counters.
//
// Unlike QEMU, which filters a netdev's first queue only, a capture takes every queue of a
// multiqueue netdev. One capture per netdev at a time.
import { NetplaneError } from '../errors';
import { FILTER_DUMP_DEFAULT_BUFFER, FILTER_DUMP_DEFAULT_MAXLEN, unlocated } from '../options/filter-dump';
import type { FilterDumpObjectOptions } from '../options/types';
import type { CaptureStats, DataPlane } from './dataplane';
import type { Client } from './net-client';
import type { Netdev } from './netdev';

export interface NetFilter {
  readonly id: string;
  readonly options: Readonly<FilterDumpObjectOptions>;
  readonly netdev: Netdev;
  /** Capturing now (status=on and started in the data plane). */
  readonly active: boolean;
}

interface FilterRecord extends NetFilter {
  active: boolean;
}

export interface FilterContext {
  readonly dataPlane: DataPlane | undefined;
  /** The netdev whose first client is named `name` (QEMU's find_netdev), if any. */
  findNetdev(name: string): Netdev | undefined;
  /** Another object (an iothread) already has this id. */
  objectExists(id: string): boolean;
}

/** The counters of one capture, for query-netplane-stats and info netplane. */
export interface FilterStatsRow extends CaptureStats {
  id: string;
  netdev: string;
  file: string;
}

export class NetFilters {
  readonly #filters = new Map<string, FilterRecord>();
  readonly #ctx: FilterContext;

  constructor(ctx: FilterContext) {
    this.#ctx = ctx;
  }

  has(id: string): boolean {
    return this.#filters.has(id);
  }

  get all(): readonly NetFilter[] {
    return [...this.#filters.values()];
  }

  /** -object filter-dump / object-add; `via` decides the duplicate-id wording. */
  add(o: FilterDumpObjectOptions, via: 'cli' | 'qmp'): NetFilter {
    if (this.#filters.has(o.id) || this.#ctx.objectExists(o.id)) {
      throw new NetplaneError(
        'NETPLANE_DUPLICATE_ID',
        via === 'cli'
          ? `Duplicate ID '${o.id}' for object`
          : `attempt to add duplicate property '${o.id}' to object (type 'container')`,
      );
    }
    const netdev = this.#ctx.findNetdev(o.netdev);
    if (!netdev) throw unlocated("Parameter 'netdev' expects a network backend id");
    if (o.position !== undefined && o.position.startsWith('id=')) {
      const other = o.position.slice(3);
      const f = this.#filters.get(other);
      if (!f || f.netdev !== netdev) throw unlocated(`filter '${other}' not found`);
    }
    const on = (o.status ?? 'on') === 'on';
    for (const f of this.#filters.values()) {
      if (on && f.active && f.netdev === netdev) {
        throw new NetplaneError(
          'NETPLANE_IN_USE',
          `netdev '${o.netdev}' is already captured by filter '${f.id}'; netplane runs one capture per netdev at a time`,
        );
      }
    }
    const rec: FilterRecord = { id: o.id, options: o, netdev, active: false };
    if (on) {
      const dp = this.#ctx.dataPlane;
      if (!dp?.addCapture) {
        throw new NetplaneError(
          'NETPLANE_INVALID_STATE',
          'filter-dump needs the native data plane (the topology is state only)',
        );
      }
      // The file is opened (and a failure reported) by the data plane, with QEMU's text.
      try {
        dp.addCapture(
          o.id,
          {
            path: o.file,
            maxlen: o.maxlen ?? FILTER_DUMP_DEFAULT_MAXLEN,
            bufferBytes: o['buffer-size'] ?? FILTER_DUMP_DEFAULT_BUFFER,
            directions: o.queue ?? 'all',
          },
          netdev.clients.map((c) => c.handle),
        );
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        if (msg.startsWith('net dump:')) throw unlocated(msg);
        throw e;
      }
      rec.active = true;
    }
    this.#filters.set(o.id, rec);
    return rec;
  }

  /** object-del: stop the capture (the file is complete on return). */
  delete(id: string): CaptureStats | undefined {
    const f = this.#filters.get(id);
    if (!f) throw new NetplaneError('NETPLANE_NOT_FOUND', `object '${id}' not found`, { qmpClass: 'GenericError' });
    return this.#stop(f);
  }

  /** netdev_del: its filters go with it. */
  deleteFor(netdev: Netdev): void {
    for (const f of [...this.#filters.values()]) if (f.netdev === netdev) this.#stop(f);
  }

  /** Topology.close(): every capture ends. */
  closeAll(): void {
    for (const f of [...this.#filters.values()]) this.#stop(f);
  }

  #stop(f: FilterRecord): CaptureStats | undefined {
    this.#filters.delete(f.id);
    if (!f.active) return undefined;
    f.active = false;
    return this.#ctx.dataPlane?.removeCapture?.(f.id);
  }

  /** `info network`'s lines after a client: QEMU lists a netdev's filters under its first queue. */
  infoLines(c: Client): string[] {
    const mine = [...this.#filters.values()].filter((f) => f.netdev.clients[0] === c);
    if (mine.length === 0) return [];
    return ['filters:', ...mine.map((f) => `  - ${f.id}: type=filter-dump,${describe(f.options)}`)];
  }

  /** The counters of every running capture. */
  stats(): FilterStatsRow[] {
    const dp = this.#ctx.dataPlane;
    const rows: FilterStatsRow[] = [];
    for (const f of this.#filters.values()) {
      if (!f.active || !dp?.captureStats) continue;
      rows.push({ id: f.id, netdev: f.netdev.id, file: f.options.file, ...dp.captureStats(f.id) });
    }
    return rows;
  }
}

/** QEMU's property list for `info network`, in its order. */
function describe(o: FilterDumpObjectOptions): string {
  return [
    `file=${o.file}`,
    `maxlen=${o.maxlen ?? FILTER_DUMP_DEFAULT_MAXLEN}`,
    `position=${o.position ?? 'tail'}`,
    `status=${o.status ?? 'on'}`,
    `insert=${o.insert ?? 'behind'}`,
    `netdev=${o.netdev}`,
    `queue=${o.queue ?? 'all'}`,
  ].join(',');
}
