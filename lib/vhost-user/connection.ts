// One vhost-user connection: framing over a unix stream socket, fds with SCM_RIGHTS, strict
// checks against the message table, replies and REPLY_ACK. It knows no device: each checked
// request goes to the handler (backend.ts), synchronously, and its answer goes out at once.
//
// Input is read natively with recvmsg(2) (FdReader, as the QMP server does): a net.Socket
// reads with read(2) and the kernel would drop the fds. The kernel ends a read right after a
// message that carries fds (unix_stream_read_generic), and QEMU and DPDK send each message
// with its fds in one sendmsg, so the fds of a read belong to the message holding the read's
// last byte. Output (replies, a few bytes each) goes through the net.Socket.
//
// Every violation (a size that does not match the request, a version other than 1, reserved
// or REPLY flag bits, an unknown request, the wrong number of fds, a ring index past the
// ring count, fds in the middle of a message) closes this connection with a reason, emitted
// as 'protocol-error'. Nothing is thrown to the caller, and every fd that arrived is closed
// unless a handler took it.
import * as net from 'node:net';
import { closeQuietly } from '../control/monitor-fds';
import { native, type NativeFdReader } from '../native';
import { TypedEmitter } from '../util/typed-emitter';
import {
  checkSize,
  codecs,
  expectedFds,
  lookupRequest,
  MAX_PAYLOAD,
  requestName,
  ringIndexOf,
  VhostUserProtocolError,
  type Payloads,
  type RequestName,
  type Row,
  type VringState,
} from './messages';
import { Flags, HEADER_SIZE, REPLY_FLAGS } from './protocol';

export type ConnectionStatus = 'connecting' | 'ready' | 'closing' | 'closed';

/** The fds of one request; what the handler does not take is closed after it returns. */
export class ReceivedFdList {
  #fds: number[];
  constructor(fds: number[]) {
    this.#fds = fds;
  }
  get length(): number {
    return this.#fds.length;
  }
  /** Take ownership of the next fd (the caller closes it). */
  take(): number {
    const fd = this.#fds.shift();
    if (fd === undefined) throw new VhostUserProtocolError('an fd was expected and none came');
    return fd;
  }
  /** @internal */
  closeRest(): void {
    for (const fd of this.#fds.splice(0)) closeQuietly(fd);
  }
}

/** A checked request, typed by its name. */
export type VhostUserRequest = {
  [N in RequestName]: { name: N; value: Payloads[N]; needReply: boolean; fds: ReceivedFdList };
}[RequestName];

/** What a handler returns: the reply of a getter, nothing for the others. */
export type HandlerResult = bigint | VringState | void;

export interface VhostUserHandler {
  /** Rings the device has (2 per queue pair): every ring index is checked against it. */
  readonly ringCount: number;
  /** Handle one request; throw (any error) to refuse it, which closes the connection. */
  handle(request: VhostUserRequest): HandlerResult;
}

export type ConnectionEvents = {
  /** The peer broke the protocol or a request failed; the connection is closing. */
  'protocol-error': [reason: string];
  /** Closed: `reason` null when the peer hung up, else why we closed. */
  close: [reason: string | null];
};

type ReaderClass = new (
  fd: number,
  onData: (data: Buffer | null, fds: number[], error: Error | null) => void,
) => NativeFdReader;

export class VhostUserConnection extends TypedEmitter<ConnectionEvents> {
  #status: ConnectionStatus;
  readonly #socket: net.Socket;
  #handler: VhostUserHandler | undefined;
  #reader: NativeFdReader | undefined;
  #buf: Buffer = Buffer.alloc(0);
  /** Bytes consumed from the stream before #buf[0]. */
  #consumed = 0;
  /** fds by the stream offset of the last byte of the read they came with. */
  #pendingFds: Array<{ at: number; fds: number[] }> = [];
  #received = 0;
  /** Requests handled (for diagnostics). */
  messages = 0;

  /**
   * Wrap a socket. An accepted socket is 'ready' at once; a socket still connecting
   * (net.connect) is 'connecting' until it connects. Pass it paused (pauseOnConnect, or not
   * yet read): its input is read with recvmsg.
   */
  constructor(socket: net.Socket, handler?: VhostUserHandler) {
    super();
    this.#socket = socket;
    this.#handler = handler;
    this.#status = socket.connecting ? 'connecting' : 'ready';
    socket.on('error', (e) => this.#shut(`socket error: ${e.message}`));
    socket.on('close', () => this.#shut(null));
    if (this.#status === 'connecting') socket.once('connect', () => this.#start());
    else this.#start();
  }

  get status(): ConnectionStatus {
    return this.#status;
  }

  /** Set or replace the handler (before the first request arrives). */
  setHandler(handler: VhostUserHandler): void {
    this.#handler = handler;
  }

  /** Close our side (no reason: a deliberate close). */
  close(reason: string | null = null): void {
    this.#shut(reason);
  }

  #start(): void {
    if (this.#status === 'closed' || this.#status === 'closing') return;
    this.#status = 'ready';
    const fd = (this.#socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
    let Reader: ReaderClass;
    try {
      Reader = native().FdReader;
    } catch (e) {
      this.#shut(`the native addon is unavailable: ${e instanceof Error ? e.message : String(e)}`);
      return;
    }
    if (typeof fd !== 'number' || fd < 0) {
      this.#shut('the socket has no fd to read');
      return;
    }
    this.#reader = new Reader(fd, (data, fds, error) => {
      if (this.#status !== 'ready') {
        for (const f of fds) closeQuietly(f);
        return;
      }
      if (data === null) {
        for (const f of fds) closeQuietly(f);
        this.#shut(
          error === null
            ? this.#buf.length > 0
              ? 'the peer closed in the middle of a message'
              : null
            : `read error: ${error.message}`,
        );
        return;
      }
      this.#received += data.length;
      if (fds.length > 0) this.#pendingFds.push({ at: this.#received - 1, fds });
      this.#buf = this.#buf.length === 0 ? data : Buffer.concat([this.#buf, data]);
      this.#parse();
    });
  }

  /** Take every complete message off the buffer, in order. */
  #parse(): void {
    while (this.#status === 'ready') {
      // A partial message waits (its fds stay queued); a stalled peer blocks only itself.
      if (this.#buf.length < HEADER_SIZE) return;
      const code = this.#buf.readUInt32LE(0);
      const flags = this.#buf.readUInt32LE(4);
      const size = this.#buf.readUInt32LE(8);
      const name = requestName(code);
      try {
        // Header checks first: a bad header is refused before its payload is waited for.
        if ((flags & Flags.VERSION_MASK) !== Flags.VERSION)
          throw new VhostUserProtocolError(`${name}: version ${flags & Flags.VERSION_MASK}, expected 1`);
        if ((flags & Flags.REPLY) !== 0)
          throw new VhostUserProtocolError(`${name}: the REPLY flag is set on a request`);
        if ((flags & ~(Flags.VERSION_MASK | Flags.NEED_REPLY)) !== 0) {
          throw new VhostUserProtocolError(`${name}: reserved flag bits set (flags 0x${flags.toString(16)})`);
        }
        if (size > MAX_PAYLOAD)
          throw new VhostUserProtocolError(`${name}: payload size ${size} exceeds the maximum ${MAX_PAYLOAD}`);
        if (lookupRequest(code) === undefined)
          throw new VhostUserProtocolError(`unsupported request ${name} (${code})`);
      } catch (e) {
        this.#fail(e, (flags & Flags.NEED_REPLY) !== 0 ? code : undefined);
        return;
      }
      const total = HEADER_SIZE + size;
      if (this.#buf.length < total) return;
      const payload = Buffer.from(this.#buf.subarray(HEADER_SIZE, total));
      const end = this.#consumed + total;
      this.#buf = this.#buf.subarray(total);
      this.#consumed = end;
      const fds: number[] = [];
      while (this.#pendingFds.length > 0 && this.#pendingFds[0]!.at < end) fds.push(...this.#pendingFds.shift()!.fds);
      this.#dispatch(lookupRequest(code)!, flags, payload, new ReceivedFdList(fds));
    }
  }

  #dispatch(r: Row, flags: number, payload: Buffer, fds: ReceivedFdList): void {
    const needReply = (flags & Flags.NEED_REPLY) !== 0;
    try {
      checkSize(r, payload);
      const value = r.codec.decode(payload);
      const want = expectedFds(r, value);
      if (fds.length !== want)
        throw new VhostUserProtocolError(`${r.name} carries ${fds.length} fds, expected ${want}`);
      const index = ringIndexOf(r, value);
      const handler = this.#handler;
      if (handler === undefined) throw new VhostUserProtocolError(`${r.name} before the device was attached`);
      if (index !== undefined && index >= handler.ringCount) {
        throw new VhostUserProtocolError(
          `${r.name}: ring index ${index} out of range (the device has ${handler.ringCount} rings)`,
        );
      }
      this.messages++;
      const result = handler.handle({ name: r.name, value, needReply, fds } as VhostUserRequest);
      this.#answer(r, needReply, result);
    } catch (e) {
      this.#fail(e, needReply && r.reply === 'ack' ? r.code : undefined);
    } finally {
      fds.closeRest();
    }
  }

  #answer(r: Row, needReply: boolean, result: HandlerResult): void {
    switch (r.reply) {
      case 'u64':
        if (typeof result !== 'bigint') throw new Error(`${r.name}: the handler returned no u64`);
        this.#send(r.code, codecs.u64.encode(result));
        return;
      case 'state':
        if (typeof result !== 'object') throw new Error(`${r.name}: the handler returned no vring state`);
        this.#send(r.code, codecs.state.encode(result));
        return;
      case 'ack':
        // REPLY_ACK: 0 = success. Without NEED_REPLY nothing goes back: QEMU would read an
        // unasked reply as the answer to its next request.
        if (needReply) this.#send(r.code, codecs.u64.encode(0n));
    }
  }

  #send(code: number, payload: Buffer): void {
    const msg = Buffer.alloc(HEADER_SIZE + payload.length);
    msg.writeUInt32LE(code, 0);
    msg.writeUInt32LE(REPLY_FLAGS, 4);
    msg.writeUInt32LE(payload.length, 8);
    payload.copy(msg, HEADER_SIZE);
    if (!this.#socket.destroyed) this.#socket.write(msg);
  }

  /** Refuse: a failure ack when the request waits for one, then close with the reason. */
  #fail(e: unknown, ackCode: number | undefined): void {
    const reason = e instanceof Error ? e.message : String(e);
    if (ackCode !== undefined && this.#status === 'ready') this.#send(ackCode, codecs.u64.encode(1n));
    this.#shut(reason);
  }

  #shut(reason: string | null): void {
    if (this.#status === 'closed' || this.#status === 'closing') return;
    this.#status = 'closing';
    if (reason !== null) this.emit('protocol-error', reason);
    this.#reader?.close();
    this.#reader = undefined;
    for (const p of this.#pendingFds.splice(0)) for (const f of p.fds) closeQuietly(f);
    this.#buf = Buffer.alloc(0);
    // Flush what is queued (a failure ack), then go; a peer that does not read cannot hold us.
    const socket = this.#socket;
    if (!socket.destroyed) {
      socket.end(() => socket.destroy());
      setTimeout(() => socket.destroy(), 200).unref();
    }
    this.#status = 'closed';
    this.emit('close', reason);
  }
}
