// File descriptors handed to the monitor, kept the way QEMU 7.2 keeps them:
//
//  * ReceivedFds, per QMP connection: the fds that came (SCM_RIGHTS) with the latest message
//    that carried any. A newer such message replaces them (the older ones are closed);
//    getfd / add-fd take the first and close the rest; a disconnect closes what is left.
//  * NamedFds, per monitor (one QMP socket): getfd's named fds, replaced by name, closed by
//    closefd, taken by netdev_add fd=NAME / fds=A:B; they outlive a client's reconnect, as in
//    QEMU, and close with the server.
//  * FdSets, per process (shared by every QMP socket): add-fd / remove-fd / query-fdsets.
//    Whatever is still in a set when the last QMP client disconnects is closed (QEMU does
//    that while its VM runs; netplane is always running).
//
// resolveMonitorFd() is what a Topology's resolveFd should be: it takes a named fd from the
// monitor whose command is running (QEMU's monitor_cur()). The taker owns the fd only for
// that command: the Topology duplicates TAP fds at once, so the monitor closes its copy when
// the command returns, and a netdev_del later really closes the TAP.
import * as fs from 'node:fs';
import { NetplaneError } from '../errors';

/** Close an fd the monitor owns; one already closed is simply gone. */
export function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    /* already closed: nothing to release */
  }
}

/** The fds of the latest message that carried any, on one connection. */
export class ReceivedFds {
  #fds: number[] = [];

  get count(): number {
    return this.#fds.length;
  }

  /** A message brought fds: they replace (and close) any that nobody took. */
  replace(fds: readonly number[]): void {
    this.closeAll();
    this.#fds = [...fds];
  }

  /** QEMU's qemu_chr_fe_get_msgfd(): the first fd is the caller's; the rest are closed. */
  takeOne(): number | undefined {
    const [first, ...rest] = this.#fds;
    this.#fds = [];
    for (const fd of rest) closeQuietly(fd);
    return first;
  }

  closeAll(): void {
    const fds = this.#fds;
    this.#fds = [];
    for (const fd of fds) closeQuietly(fd);
  }
}

/** getfd's named fds of one monitor. */
export class NamedFds {
  readonly #byName = new Map<string, number>();

  get size(): number {
    return this.#byName.size;
  }

  has(name: string): boolean {
    return this.#byName.has(name);
  }

  /** getfd: store under `name`, closing an fd the name held before. */
  set(name: string, fd: number): void {
    const old = this.#byName.get(name);
    this.#byName.set(name, fd);
    if (old !== undefined) closeQuietly(old);
  }

  /** closefd: false when no fd has that name. */
  close(name: string): boolean {
    const fd = this.#byName.get(name);
    if (fd === undefined) return false;
    this.#byName.delete(name);
    closeQuietly(fd);
    return true;
  }

  /** The fd leaves the monitor; the caller owns it now. */
  take(name: string): number | undefined {
    const fd = this.#byName.get(name);
    if (fd !== undefined) this.#byName.delete(name);
    return fd;
  }

  closeAll(): void {
    const fds = [...this.#byName.values()];
    this.#byName.clear();
    for (const fd of fds) closeQuietly(fd);
  }
}

export interface FdsetFdInfo {
  fd: number;
  opaque?: string;
}

export interface FdsetInfo {
  'fdset-id': number | bigint;
  fds: FdsetFdInfo[];
}

/** QAPI integers arrive as number or (beyond 2^53) bigint; keep them exact. */
function toBig(v: number | bigint): bigint {
  return typeof v === 'bigint' ? v : BigInt(v);
}
function fromBig(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** add-fd's fd sets, shared by every monitor of the process. */
export class FdSets {
  // Ordered by id (QEMU keeps its list sorted); each set's fds in the order they came.
  #sets = new Map<bigint, FdsetFdInfo[]>();
  #clients = 0;

  /** add-fd: into set `id` (created if missing) or into a new set with the lowest free id. */
  add(fd: number, id?: number | bigint, opaque?: string): { 'fdset-id': number | bigint; fd: number } {
    let key: bigint;
    if (id !== undefined) {
      key = toBig(id);
      if (!this.#sets.has(key) && key < 0n) {
        throw new NetplaneError('NETPLANE_INVALID_OPTION', "Parameter 'fdset-id' expects a non-negative value");
      }
    } else {
      key = 0n;
      while (this.#sets.has(key)) key++;
    }
    let set = this.#sets.get(key);
    if (set === undefined) {
      set = [];
      this.#sets.set(key, set);
      this.#sets = new Map([...this.#sets].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    }
    set.push(opaque === undefined ? { fd } : { fd, opaque });
    return { 'fdset-id': fromBig(key), fd };
  }

  /** remove-fd: one fd of a set, or the whole set; empty sets disappear. */
  remove(id: number | bigint, fd?: number | bigint): void {
    const key = toBig(id);
    const set = this.#sets.get(key);
    const what = fd === undefined ? `fdset-id:${key}` : `fdset-id:${key}, fd:${toBig(fd)}`;
    const notFound = () => new NetplaneError('NETPLANE_INVALID_OPTION', `File descriptor named '${what}' not found`);
    if (set === undefined) throw notFound();
    if (fd === undefined) {
      for (const entry of set) closeQuietly(entry.fd);
      set.length = 0;
    } else {
      const i = set.findIndex((entry) => toBig(entry.fd) === toBig(fd));
      if (i < 0) throw notFound();
      closeQuietly(set[i]!.fd);
      set.splice(i, 1);
    }
    if (set.length === 0) this.#sets.delete(key);
  }

  /** query-fdsets: highest id first, each set's fds oldest first (QEMU's order). */
  query(): FdsetInfo[] {
    return [...this.#sets].reverse().map(([id, fds]) => ({ 'fdset-id': fromBig(id), fds: fds.map((f) => ({ ...f })) }));
  }

  /** How many fds the sets hold (tests, diagnostics). */
  get fdCount(): number {
    let n = 0;
    for (const set of this.#sets.values()) n += set.length;
    return n;
  }

  /** A QMP client connected (any monitor). */
  clientConnected(): void {
    this.#clients++;
  }

  /** A QMP client left; with the last one gone, every fd still in a set is closed. */
  clientDisconnected(): void {
    if (this.#clients > 0) this.#clients--;
    if (this.#clients === 0) this.closeAll();
  }

  closeAll(): void {
    const sets = [...this.#sets.values()];
    this.#sets.clear();
    for (const set of sets) for (const entry of set) closeQuietly(entry.fd);
  }
}

// ---- the monitor whose command is running (QEMU's monitor_cur()) -------------------------

interface FdScope {
  /** null: no monitor at all (the command line). */
  named: NamedFds | null;
  taken: number[];
}

let current: FdScope | undefined;

/**
 * Run `fn` as a command of the monitor that owns `named` (null: the command line, which has
 * no monitor). Named fds taken during `fn` are closed when it returns: their users have
 * duplicated them by then.
 */
export function withMonitorFds<T>(named: NamedFds | null, fn: () => T): T {
  const previous = current;
  const scope: FdScope = { named, taken: [] };
  current = scope;
  try {
    return fn();
  } finally {
    current = previous;
    for (const fd of scope.taken) closeQuietly(fd);
  }
}

/**
 * A Topology's resolveFd: the fd a monitor holds under `name` (getfd). Outside any command
 * this is an empty monitor (HMP, human-monitor-command); on the command line there is none.
 */
export function resolveMonitorFd(name: string): number {
  if (current?.named === null) {
    throw new NetplaneError('NETPLANE_INVALID_OPTION', `Invalid file descriptor number '${name}'`);
  }
  const fd = current?.named.take(name);
  if (fd === undefined) {
    throw new NetplaneError('NETPLANE_INVALID_OPTION', `File descriptor named '${name}' has not been found`);
  }
  current!.taken.push(fd);
  return fd;
}
