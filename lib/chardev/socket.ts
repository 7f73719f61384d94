// QEMU's `-chardev socket` for what netplane needs of it (a vhost-user front-end's unix
// socket): the chardevs by id (ChardevRegistry: defined once, claimed by one user at a time,
// as QEMU's qemu_chr_fe_init refuses a chardev already in use) and the connection they make
// (ChardevSocket: connect to PATH, retrying every `reconnect` seconds, or listen on PATH and
// serve one peer at a time).
import * as net from 'node:net';
import { NetplaneError } from '../errors';
import type { ChardevArg } from '../options/export';
import { TypedEmitter } from '../util/typed-emitter';
import { listenPrivate, removeSocketIfOurs } from '../util/unix-listen';

/** chardev errors, coded. */
function chardevError(message: string): NetplaneError {
  return new NetplaneError('NETPLANE_INVALID_OPTION', message);
}

/** One chardev as QMP query-chardev reports it (QEMU's ChardevInfo). */
export interface ChardevInfo {
  label: string;
  filename: string;
  'frontend-open': boolean;
}

export class ChardevRegistry {
  readonly #defs = new Map<
    string,
    { arg: ChardevArg; user: string | undefined; socket: { readonly connected: boolean } | undefined }
  >();

  /** -chardev / chardev-add. */
  add(arg: ChardevArg): void {
    if (this.#defs.has(arg.id)) throw chardevError(`Chardev with id '${arg.id}' already exists`);
    this.#defs.set(arg.id, { arg, user: undefined, socket: undefined });
  }

  /** chardev-remove: only one nobody uses. */
  remove(id: string): void {
    const d = this.#defs.get(id);
    if (d === undefined) throw chardevError(`Chardev '${id}' not found`);
    if (d.user !== undefined) throw chardevError(`Chardev '${id}' is busy`);
    this.#defs.delete(id);
  }

  get(id: string): ChardevArg | undefined {
    return this.#defs.get(id)?.arg;
  }

  get all(): ChardevArg[] {
    return [...this.#defs.values()].map((d) => d.arg);
  }

  /** Take a chardev for `user` (QEMU's wording for each refusal). */
  claim(id: string, user: string): ChardevArg {
    const d = this.#defs.get(id);
    if (d === undefined) throw chardevError(`chardev "${id}" not found`);
    if (d.user !== undefined) throw chardevError(`Device '${id}' is in use`);
    d.user = user;
    return d.arg;
  }

  release(id: string): void {
    const d = this.#defs.get(id);
    if (d) {
      d.user = undefined;
      d.socket = undefined;
    }
  }

  /** The claimed chardev's live socket (its connection state shows in query()). */
  attach(id: string, socket: { readonly connected: boolean }): void {
    const d = this.#defs.get(id);
    if (d) d.socket = socket;
  }

  /**
   * query-chardev, in definition order. The filename is QEMU 7.2's for a unix socket: the
   * local address, `,server=on` when listening, `disconnected:` in front while no peer is
   * connected; a connected client's local address is unnamed, so QEMU prints just `unix:`.
   */
  query(): ChardevInfo[] {
    return [...this.#defs.values()].map(({ arg, user, socket }) => {
      const connected = socket?.connected ?? false;
      const local = arg.server ? `unix:${arg.path},server=on` : connected ? 'unix:' : `unix:${arg.path}`;
      return {
        label: arg.id,
        filename: connected ? local : `disconnected:${local}`,
        'frontend-open': user !== undefined,
      };
    });
  }
}

export type ChardevSocketEvents = {
  /** A connection is up; the socket is paused (read it with recvmsg). */
  open: [socket: net.Socket];
  /** A connection attempt failed (client mode); the next one follows after `reconnect` s. */
  'connect-failed': [message: string];
  /** A second peer tried to connect while one is served (server mode): closed at once. */
  refused: [];
};

/** The text QEMU prints for a failed connect. */
export function connectFailure(path: string, e: NodeJS.ErrnoException): string {
  const why =
    e.code === 'ENOENT' ? 'No such file or directory' : e.code === 'ECONNREFUSED' ? 'Connection refused' : e.message;
  return `Failed to connect to '${path}': ${why}`;
}

export class ChardevSocket extends TypedEmitter<ChardevSocketEvents> {
  readonly arg: ChardevArg;
  #server: net.Server | undefined;
  #ino: bigint | undefined;
  #busy = false;
  #retry: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(arg: ChardevArg) {
    super();
    this.arg = arg;
  }

  /**
   * Listen, or make the first connection attempt. A client without reconnect fails here when
   * nobody listens; with reconnect it keeps trying in the background.
   */
  static async open(arg: ChardevArg, tmpPrefix = '.netplane-chr-'): Promise<ChardevSocket> {
    const s = new ChardevSocket(arg);
    if (arg.server) {
      const server = net.createServer({ pauseOnConnect: true }, (c) => s.#accept(c));
      s.#ino = await listenPrivate(server, arg.path, tmpPrefix);
      server.on('error', () => {
        /* accept errors (EMFILE) must not end the chardev; the peer retries */
      });
      s.#server = server;
    } else {
      await s.#dial(arg.reconnect === 0);
    }
    return s;
  }

  /** A peer is connected now. */
  get connected(): boolean {
    return this.#busy;
  }

  /** The current connection ended: accept or dial the next one. */
  connectionClosed(): void {
    this.#busy = false;
    if (!this.arg.server) this.#scheduleDial();
  }

  #accept(socket: net.Socket): void {
    if (this.#closed || this.#busy) {
      socket.destroy();
      if (!this.#closed) this.emit('refused');
      return;
    }
    this.#busy = true;
    this.emit('open', socket);
  }

  #dial(mustConnect: boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ path: this.arg.path });
      socket.pause();
      const onError = (e: Error): void => {
        socket.destroy();
        const message = connectFailure(this.arg.path, e as NodeJS.ErrnoException);
        if (mustConnect) {
          reject(chardevError(message));
          return;
        }
        this.emit('connect-failed', message);
        this.#scheduleDial();
        resolve();
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.off('error', onError);
        if (this.#closed) {
          socket.destroy();
        } else {
          this.#busy = true;
          // After the caller had a chance to subscribe (the first dial runs inside open()).
          setImmediate(() => (this.#closed ? socket.destroy() : this.emit('open', socket)));
        }
        resolve();
      });
    });
  }

  #scheduleDial(): void {
    if (this.#closed || this.#retry || this.arg.reconnect === 0 || this.#busy) return;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      if (!this.#closed && !this.#busy) void this.#dial(false);
    }, this.arg.reconnect * 1000);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#retry) clearTimeout(this.#retry);
    this.#retry = undefined;
    const server = this.#server;
    this.#server = undefined;
    if (server) {
      removeSocketIfOurs(this.arg.path, this.#ino);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }
}
