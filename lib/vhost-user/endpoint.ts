// The socket side of one vhost-user export: listen on a unix socket (created 0600 in a
// private directory, then renamed into place) or connect to a front-end that listens,
// retrying every `reconnect` seconds. One front-end at a time drives the device: a second
// one is refused (its socket closed at once). Each connection gets a fresh handler from
// `attach` and is detached (the handler's close()) when it ends, whatever the reason.
import * as net from 'node:net';
import { TypedEmitter } from '../util/typed-emitter';
import { listenPrivate, removeSocketIfOurs } from '../util/unix-listen';
import { VhostUserConnection, type VhostUserHandler } from './connection';

export type EndpointAddress =
  { kind: 'listen'; path: string } | { kind: 'connect'; path: string; reconnectSeconds: number };

export interface AttachedHandler extends VhostUserHandler {
  close(): void;
}

export type EndpointEvents = {
  connected: [];
  /** A connection ended; `reason` is null when the front-end hung up, else why we closed it. */
  disconnected: [reason: string | null];
  /** A second front-end tried to connect while one is served. */
  refused: [];
};

export class VhostUserEndpoint extends TypedEmitter<EndpointEvents> {
  readonly address: EndpointAddress;
  readonly #attach: () => AttachedHandler;
  #server: net.Server | undefined;
  #ino: bigint | undefined;
  #conn: VhostUserConnection | undefined;
  #handler: AttachedHandler | undefined;
  #retry: NodeJS.Timeout | undefined;
  #closed = false;
  /** Connections served so far. */
  connections = 0;

  private constructor(address: EndpointAddress, attach: () => AttachedHandler) {
    super();
    this.address = address;
    this.#attach = attach;
  }

  /**
   * Listen, or make the first connection attempt. A client endpoint without reconnect
   * fails here when nobody listens (QEMU's "Failed to connect to ..."); with reconnect it
   * keeps trying in the background.
   */
  static async open(address: EndpointAddress, attach: () => AttachedHandler): Promise<VhostUserEndpoint> {
    const ep = new VhostUserEndpoint(address, attach);
    if (address.kind === 'listen') {
      const server = net.createServer({ pauseOnConnect: true }, (s) => ep.#accept(s));
      ep.#ino = await listenPrivate(server, address.path, '.netplane-vu-');
      server.on('error', () => {
        /* accept errors (EMFILE) must not end the export; the front-end retries */
      });
      ep.#server = server;
    } else {
      await ep.#dial(address.reconnectSeconds === 0);
    }
    return ep;
  }

  get connected(): boolean {
    return this.#conn !== undefined;
  }

  /** The current connection's handler (for queries). */
  get handler(): AttachedHandler | undefined {
    return this.#handler;
  }

  #accept(socket: net.Socket): void {
    if (this.#closed || this.#conn !== undefined) {
      socket.destroy();
      this.emit('refused');
      return;
    }
    this.#serve(socket);
  }

  #serve(socket: net.Socket): void {
    const handler = this.#attach();
    const conn = new VhostUserConnection(socket, handler);
    this.#conn = conn;
    this.#handler = handler;
    this.connections++;
    conn.on('close', (reason) => {
      if (this.#conn !== conn) return;
      this.#conn = undefined;
      this.#handler = undefined;
      // Stop the rings and unmap before anyone can connect again.
      handler.close();
      this.emit('disconnected', reason);
      if (this.address.kind === 'connect' && !this.#closed) this.#scheduleDial();
    });
    this.emit('connected');
  }

  #dial(mustConnect: boolean): Promise<void> {
    const address = this.address as Extract<EndpointAddress, { kind: 'connect' }>;
    return new Promise((resolve, reject) => {
      const socket = net.connect({ path: address.path });
      socket.pause();
      const onError = (e: Error): void => {
        socket.destroy();
        if (mustConnect) {
          reject(
            new Error(
              `Failed to connect to '${address.path}': ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'No such file or directory' : (e as NodeJS.ErrnoException).code === 'ECONNREFUSED' ? 'Connection refused' : e.message}`,
            ),
          );
          return;
        }
        this.#scheduleDial();
        resolve();
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.off('error', onError);
        if (this.#closed) {
          socket.destroy();
          resolve();
          return;
        }
        this.#serve(socket);
        resolve();
      });
    });
  }

  #scheduleDial(): void {
    const address = this.address as Extract<EndpointAddress, { kind: 'connect' }>;
    if (this.#closed || this.#retry || address.reconnectSeconds === 0) return;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      if (!this.#closed) void this.#dial(false);
    }, address.reconnectSeconds * 1000);
  }

  /** Stop serving: the connection closes (rings stopped, memory released), the socket goes. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#retry) clearTimeout(this.#retry);
    this.#retry = undefined;
    this.#conn?.close();
    const server = this.#server;
    this.#server = undefined;
    if (server) {
      removeSocketIfOurs(this.address.path, this.#ino);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }
}
