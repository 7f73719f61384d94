// The control side of a stream connection (QEMU's net/stream.c and the stream part of
// net/socket.c): it listens, accepts, connects and reconnects with Node's net module, and
// hands every connected socket to the data plane, which owns it from then on and reports
// when it closes. One connection at a time, as in QEMU: while connected, a server leaves
// further clients waiting (QEMU stops accepting; they wait in the backlog), and takes the
// next one when the current one goes. Emits 'open' / 'close' for a ConnectionLink.
import { closeSync } from 'node:fs';
import * as net from 'node:net';
import { native, type NativeSockAddr } from '../../native';
import { TypedEmitter } from '../../util/typed-emitter';
import type { SocketDataPlane } from './socket-common';

/** Where a stream connects or listens (resolved), or an fd given by the user. */
export type StreamTarget =
  { kind: 'addr'; addr: NativeSockAddr; ipv4?: boolean; ipv6?: boolean } | { kind: 'fd'; fd: number };

/** A peer as QEMU's NETDEV_STREAM_CONNECTED reports it. */
export type StreamPeer = { type: 'inet'; host: string; port: number; ipv6: boolean } | { type: 'unix'; path: string };

export interface StreamEndpointOptions {
  id: string;
  handle: number;
  dp: SocketDataPlane;
  server: boolean;
  target: StreamTarget;
  /** Seconds between connection attempts of a client after a failure or a disconnect; 0: never. */
  reconnect?: number;
  /** info network text for each state. */
  info: (state: 'listening' | 'connecting' | 'connected' | 'error' | 'closed', peer?: StreamPeer) => string;
  setInfo: (text: string) => void;
  /** A connection error outside any call (the client's connect failed). */
  onError?: (message: string) => void;
}

export type StreamEndpointEvents = { open: []; close: [] };

export class StreamEndpoint extends TypedEmitter<StreamEndpointEvents> {
  readonly #o: StreamEndpointOptions;
  #server: net.Server | undefined;
  #listenFd = -1;
  readonly #waiting: net.Socket[] = [];
  #connecting: net.Socket | undefined;
  #timer: NodeJS.Timeout | undefined;
  #connected = false;
  #closed = false;
  #unsubscribe: (() => void) | undefined;
  /** The peer of the current connection. */
  peer: StreamPeer | undefined;

  constructor(opts: StreamEndpointOptions) {
    super();
    this.#o = opts;
  }

  /** What can fail at once (a bind, listen): throws; nothing is left open then. */
  prepare(): void {
    const { target } = this.#o;
    if (this.#o.server && target.kind === 'addr') {
      this.#listenFd = native().socketListen(target.addr, 1);
    }
  }

  /** Start listening or connecting (after the ConnectionLink follows this endpoint). */
  start(): void {
    this.#unsubscribe = this.#o.dp.onSocketClosed((e) => {
      if (e.handle === this.#o.handle) this.#onDataPlaneClosed();
    });
    const { target } = this.#o;
    if (this.#o.server) {
      const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: false });
      server.on('connection', (sock) => this.#onConnection(sock));
      server.on('error', (err) => this.#o.onError?.(`${this.#o.id}: ${err.message}`));
      server.listen({ fd: target.kind === 'fd' ? target.fd : this.#listenFd });
      this.#listenFd = -1; // the server owns it now
      this.#server = server;
      this.#o.setInfo(this.#o.info('listening'));
      return;
    }
    if (target.kind === 'fd') {
      this.#adoptFd(target.fd);
      return;
    }
    this.#connect();
  }

  get connected(): boolean {
    return this.#connected;
  }

  #connect(): void {
    if (this.#closed) return;
    const { target } = this.#o;
    if (target.kind !== 'addr') return;
    this.#o.setInfo(this.#o.info('connecting'));
    const sock = new net.Socket({ allowHalfOpen: false });
    sock.pause();
    this.#connecting = sock;
    const onError = (err: Error): void => {
      if (this.#connecting !== sock) return;
      this.#connecting = undefined;
      sock.destroy();
      this.#o.setInfo(this.#o.info('error'));
      this.#o.onError?.(`${this.#o.id}: ${err.message}`);
      this.#scheduleReconnect();
    };
    sock.once('error', onError);
    sock.once('connect', () => {
      if (this.#connecting !== sock) return;
      this.#connecting = undefined;
      sock.off('error', onError);
      this.#adoptSocket(sock);
    });
    const a = target.addr;
    if (a.family === 'unix') sock.connect({ path: a.abstract ? `\0${a.path}` : a.path });
    else sock.connect({ host: a.host, port: a.port, ...(target.ipv6 && !target.ipv4 ? { family: 6 } : {}) });
  }

  #scheduleReconnect(): void {
    const secs = this.#o.reconnect ?? 0;
    if (this.#closed || this.#o.server || secs <= 0 || this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#connect();
    }, secs * 1000);
    this.#timer.unref();
  }

  #onConnection(sock: net.Socket): void {
    if (this.#closed) {
      sock.destroy();
      return;
    }
    if (this.#connected) {
      // QEMU stops accepting while connected: this client waits, as in its backlog.
      this.#waiting.push(sock);
      sock.once('close', () => {
        const i = this.#waiting.indexOf(sock);
        if (i >= 0) this.#waiting.splice(i, 1);
      });
      return;
    }
    this.#adoptSocket(sock);
  }

  /** Move a connected Node socket's fd into the data plane (a duplicate; Node's copy closes). */
  #adoptSocket(sock: net.Socket): void {
    const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (fd === undefined || fd < 0) {
      sock.destroy();
      return;
    }
    let dup: number;
    try {
      dup = native().socketDup(fd);
    } catch (err) {
      sock.destroy();
      this.#o.onError?.(`${this.#o.id}: ${(err as Error).message}`);
      return;
    }
    sock.destroy();
    this.#adoptFd(dup);
  }

  #adoptFd(fd: number): void {
    let peer: StreamPeer | undefined;
    try {
      const info = native().socketInfo(fd);
      const name = this.#o.server ? info.peer : info.peer;
      const local = info.local;
      if (name && 'host' in name)
        peer = { type: 'inet', host: name.host, port: name.port, ipv6: info.family === 'inet6' };
      else if (local && 'path' in local && local.path !== '') peer = { type: 'unix', path: local.path };
      else if (name && 'path' in name) peer = { type: 'unix', path: name.path };
      else peer = { type: 'unix', path: '' };
      this.#o.dp.setSocketFd(this.#o.handle, fd);
    } catch (err) {
      try {
        closeSync(fd);
      } catch {
        // already gone
      }
      this.#o.onError?.(`${this.#o.id}: ${(err as Error).message}`);
      this.#scheduleReconnect();
      return;
    }
    this.peer = peer;
    this.#connected = true;
    this.#o.setInfo(this.#o.info('connected', peer));
    this.emit('open');
  }

  #onDataPlaneClosed(): void {
    if (!this.#connected) return;
    this.#connected = false;
    this.peer = undefined;
    this.#o.setInfo(this.#o.info('closed'));
    this.emit('close');
    if (this.#closed) return;
    if (this.#o.server) {
      const next = this.#waiting.shift();
      if (next) this.#adoptSocket(next);
    } else {
      this.#scheduleReconnect();
    }
  }

  /** netdev_del: stop listening and connecting; the data plane closes the connection. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe?.();
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#connecting?.destroy();
    this.#connecting = undefined;
    for (const s of this.#waiting.splice(0)) s.destroy();
    this.#server?.close();
    this.#server = undefined;
    if (this.#listenFd >= 0) closeSync(this.#listenFd);
    this.#listenFd = -1;
  }
}
