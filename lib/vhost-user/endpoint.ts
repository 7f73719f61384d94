// The socket side of one vhost-user export: listen on a unix socket (created 0600 in a
// private directory, then renamed into place) or connect to a front-end that listens,
// retrying every `reconnect` seconds. One front-end at a time drives the device: a second
// one is refused (its socket closed at once). Each connection gets a fresh handler from
// `attach` and is detached (the handler's close()) when it ends, whatever the reason.
import type * as net from 'node:net';
import { TypedEmitter } from '../util/typed-emitter';
import { ChardevSocket } from '../chardev/socket';
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
  #chardev: ChardevSocket | undefined;
  #conn: VhostUserConnection | undefined;
  #handler: AttachedHandler | undefined;
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
   * keeps trying in the background. The socket itself is a chardev socket (lib/chardev).
   */
  static async open(address: EndpointAddress, attach: () => AttachedHandler): Promise<VhostUserEndpoint> {
    const ep = new VhostUserEndpoint(address, attach);
    const chardev = await ChardevSocket.open(
      {
        backend: 'socket',
        id: '',
        path: address.path,
        server: address.kind === 'listen',
        reconnect: address.kind === 'connect' ? address.reconnectSeconds : 0,
      },
      '.netplane-vu-',
    );
    ep.#chardev = chardev;
    chardev.on('open', (socket) => ep.#serve(socket));
    chardev.on('refused', () => ep.emit('refused'));
    return ep;
  }

  get connected(): boolean {
    return this.#conn !== undefined;
  }

  /** The current connection's handler (for queries). */
  get handler(): AttachedHandler | undefined {
    return this.#handler;
  }

  #serve(socket: net.Socket): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
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
      if (!this.#closed) this.#chardev?.connectionClosed();
    });
    this.emit('connected');
  }

  /** Stop serving: the connection closes (rings stopped, memory released), the socket goes. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#conn?.close();
    await this.#chardev?.close();
  }
}
