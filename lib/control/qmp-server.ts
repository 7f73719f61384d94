// QMP, the QEMU Machine Protocol, on a unix socket: greeting, capabilities negotiation,
// command dispatch with QEMU's checks and error texts, events with timestamps.
//
// Every client has its own reader, queue and negotiation state, so a client that sends
// garbage, floods, stalls or vanishes affects only itself. Commands of one client run in
// order; replies go out in the same order. The commands themselves are a table handed in by
// the caller (see qmp-commands.ts); this file knows only the protocol, plus QEMU's fd
// commands (getfd, add-fd, ...), which belong to the monitor itself.
//
// Clients may pass fds with SCM_RIGHTS, which a net.Socket cannot receive (it reads with
// read(2), and the kernel drops the fds). So the socket is accepted paused and its input is
// read natively with recvmsg(2) (FdReader); the net.Socket only writes. Without the addon
// the socket reads as usual and every fd command says that no fd came.
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import { native, type NativeFdReader } from '../native';
import { listenPrivate, removeSocketIfOurs } from '../util/unix-listen';
import { closeQuietly, FdSets, NamedFds, ReceivedFds, withMonitorFds } from './monitor-fds';
import { checkArgs, QmpError, toQmpError } from './qmp-args';
import { qmpFdCommands } from './qmp-fd-commands';
import { JsonFloat, QmpJsonReader, toQmpJson, type JsonStreamLimits, type JsonValue } from './qmp-json';
import type { QmpCommand, QmpCommandTable } from './qmp-types';

export interface QmpVersion {
  qemu: { major: number; minor: number; micro: number };
  package: string;
}

export interface QmpServerOptions {
  /** Path of the unix socket to create (created mode 0600). */
  path: string;
  commands: QmpCommandTable;
  version: QmpVersion;
  limits?: Partial<JsonStreamLimits>;
  /** Concurrent clients accepted; more are refused (QEMU serves one at a time). */
  maxClients?: number;
  /** Output a slow reader may leave unread before we stop reading its input. */
  outputHighWater?: number;
  /**
   * add-fd's fd sets; QEMU has one per process, so servers of one process should share one
   * (default: this server's own).
   */
  fdSets?: FdSets;
}

type QueueItem = { value: JsonValue } | { parseError: string };

const CAPABILITIES: readonly string[] = []; // we do not offer "oob"
const KNOWN_CAPABILITIES = new Set(['oob']);

function isObject(v: unknown): v is Record<string, JsonValue> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof JsonFloat);
}

function timestamp(): { seconds: number; microseconds: number } {
  const us = Math.floor((performance.timeOrigin + performance.now()) * 1000);
  return { seconds: Math.floor(us / 1e6), microseconds: us % 1e6 };
}

/** Where a session's input comes from: recvmsg(2) with fds, or the socket itself. */
interface SessionInput {
  pause(): void;
  resume(): void;
  close(): void;
}

/** Load the native reader once; undefined when the addon is unavailable. */
let fdReaderClass:
  | (new (fd: number, onData: (data: Buffer | null, fds: number[], error: Error | null) => void) => NativeFdReader)
  | null
  | undefined;
function nativeFdReader(): typeof fdReaderClass {
  if (fdReaderClass === undefined) {
    try {
      fdReaderClass = native().FdReader;
    } catch {
      fdReaderClass = null;
    }
  }
  return fdReaderClass;
}

/** One connected client. */
class QmpSession {
  negotiated = false;
  /** Fds of the client's latest message that carried any. */
  readonly receivedFds = new ReceivedFds();
  private readonly reader: QmpJsonReader;
  private readonly queue: QueueItem[] = [];
  private readonly input: SessionInput;
  private busy = false;
  private closed = false;
  private waitingForDrain = false;
  private inputEnded = false;

  constructor(
    private readonly server: QmpServer,
    readonly socket: net.Socket,
    limits: Partial<JsonStreamLimits> | undefined,
    private readonly highWater: number,
  ) {
    this.reader = new QmpJsonReader(
      (value) => this.queue.push({ value }),
      (parseError) => this.queue.push({ parseError }),
      limits,
    );
    this.input = this.openInput();
    // A client that resets or vanishes is simply forgotten; pending replies are dropped.
    socket.on('error', () => this.close());
    socket.on('close', () => this.close());
  }

  private onData(chunk: Buffer): void {
    this.reader.feed(chunk);
    this.pump();
  }

  /** The client finished sending: answer what it sent, then close our side. */
  private onEnd(): void {
    this.inputEnded = true;
    this.pump();
  }

  private openInput(): SessionInput {
    const socket = this.socket;
    const Reader = nativeFdReader();
    const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (Reader && typeof fd === 'number' && fd >= 0) {
      const reader = new Reader(fd, (data, fds, error) => {
        if (this.closed) {
          for (const f of fds) closeQuietly(f);
          return;
        }
        if (fds.length > 0) this.receivedFds.replace(fds);
        if (data !== null) this.onData(data);
        else if (error === null) this.onEnd();
        else this.close();
      });
      return reader;
    }
    // No addon: plain reads (fds sent to us are dropped by the kernel).
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.resume();
    return { pause: () => socket.pause(), resume: () => socket.resume(), close: () => {} };
  }

  send(message: unknown): void {
    if (this.closed || this.socket.destroyed || !this.socket.writable) return;
    this.socket.write(toQmpJson(message) + '\r\n');
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.input.close();
    this.receivedFds.closeAll();
    this.socket.destroy();
    this.server.forget(this);
  }

  /**
   * Finish writing what is queued, then close (used at server shutdown). A client that does
   * not read gets a short grace period, then its socket is destroyed so shutdown never hangs.
   */
  end(graceMs = 1000): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.input.close();
    this.receivedFds.closeAll();
    // We read no more, so the socket would wait forever for an end of input: once our
    // output is flushed, it is done.
    this.socket.end(() => this.socket.destroy());
    const timer = setTimeout(() => this.socket.destroy(), graceMs);
    this.socket.once('close', () => clearTimeout(timer));
    this.server.forget(this);
  }

  /** Run queued messages in order, as long as the client keeps reading our replies. */
  private pump(): void {
    this.socket.cork();
    try {
      while (!this.busy && !this.closed && this.queue.length > 0) {
        if (this.socket.writableLength > this.highWater) {
          this.stallUntilDrained();
          return;
        }
        const item = this.queue.shift()!;
        const reply =
          'parseError' in item
            ? { error: { class: 'GenericError', desc: item.parseError } }
            : this.server.dispatch(this, item.value);
        if (reply instanceof Promise) {
          this.busy = true;
          this.input.pause();
          void reply.then((r) => {
            this.busy = false;
            this.send(r);
            if (!this.closed) this.input.resume();
            this.pump();
          });
          return;
        }
        this.send(reply);
      }
      if (this.inputEnded && !this.busy && this.queue.length === 0 && !this.closed) this.end();
    } finally {
      process.nextTick(() => this.socket.uncork());
    }
  }

  /** A flooding client that does not read replies: stop reading it until it catches up. */
  private stallUntilDrained(): void {
    if (this.waitingForDrain) return;
    this.waitingForDrain = true;
    this.input.pause();
    this.socket.once('drain', () => {
      this.waitingForDrain = false;
      if (this.closed) return;
      this.input.resume();
      this.pump();
    });
  }
}

export interface QmpServerEvents {
  connect: [];
  disconnect: [];
}

/** A QMP server on a unix socket. Create with QmpServer.listen(). */
export class QmpServer extends EventEmitter<QmpServerEvents> {
  private readonly sessions = new Set<QmpSession>();
  private server: net.Server | undefined;
  private socketIno: bigint | undefined;
  private closing: Promise<void> | undefined;
  /** getfd's named fds: this socket is one QEMU monitor. */
  readonly namedFds = new NamedFds();
  readonly fdSets: FdSets;
  private readonly ownFdSets: boolean;
  /** The session whose command runs now (fd commands take its received fds). */
  private running: QmpSession | undefined;
  private readonly fdCommands: ReadonlyMap<string, QmpCommand>;

  private constructor(private readonly opts: QmpServerOptions & { maxClients: number; outputHighWater: number }) {
    super();
    this.ownFdSets = opts.fdSets === undefined;
    this.fdSets = opts.fdSets ?? new FdSets();
    this.fdCommands = qmpFdCommands({
      takeReceivedFd: () => this.running?.receivedFds.takeOne(),
      namedFds: this.namedFds,
      fdSets: this.fdSets,
    });
  }

  static async listen(options: QmpServerOptions): Promise<QmpServer> {
    const server = new QmpServer({ maxClients: 64, outputHighWater: 1 << 20, ...options });
    await server.start();
    return server;
  }

  get path(): string {
    return this.opts.path;
  }

  get clientCount(): number {
    return this.sessions.size;
  }

  /** Send an event to every client that finished capabilities negotiation. */
  emitEvent(event: string, data?: Record<string, unknown>): void {
    const message = data === undefined ? { timestamp: timestamp(), event } : { timestamp: timestamp(), event, data };
    for (const s of this.sessions) if (s.negotiated) s.send(message);
  }

  /** Stop accepting, let clients read what was already sent, remove the socket file. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of [...this.sessions]) s.end();
    this.removeSocketFile();
    this.namedFds.closeAll();
    if (this.ownFdSets) this.fdSets.closeAll();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** @internal */
  forget(session: QmpSession): void {
    if (this.sessions.delete(session)) {
      this.fdSets.clientDisconnected();
      this.emit('disconnect');
    }
  }

  private async start(): Promise<void> {
    // Paused: the session reads the socket itself (with recvmsg, for SCM_RIGHTS).
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => this.accept(socket));
    this.socketIno = await listenPrivate(server, this.opts.path, '.netplane-qmp-');
    this.server = server;
    server.on('error', () => {
      /* accept errors (EMFILE) must not kill the process; clients retry */
    });
  }

  private removeSocketFile(): void {
    removeSocketIfOurs(this.opts.path, this.socketIno);
  }

  private accept(socket: net.Socket): void {
    if (this.server === undefined || this.sessions.size >= this.opts.maxClients) {
      socket.on('error', () => {});
      // Accepted paused, it never reads the client's end: done once the refusal is out.
      socket.end(toQmpJson({ error: { class: 'GenericError', desc: 'Too many QMP clients' } }) + '\r\n', () =>
        socket.destroy(),
      );
      return;
    }
    const session = new QmpSession(this, socket, this.opts.limits, this.opts.outputHighWater);
    this.sessions.add(session);
    this.fdSets.clientConnected();
    session.send({ QMP: { version: this.opts.version, capabilities: CAPABILITIES } });
    this.emit('connect');
  }

  /** @internal One request, checked in QEMU's order; returns the reply (or a promise of it). */
  dispatch(session: QmpSession, request: JsonValue): unknown {
    if (!isObject(request)) return { error: { class: 'GenericError', desc: 'QMP input must be a JSON object' } };
    const hasId = Object.prototype.hasOwnProperty.call(request, 'id');
    const id = request['id'];
    const fail = (e: unknown) => {
      const err = toQmpError(e);
      const body = { class: err.errorClass, desc: err.message };
      return hasId ? { id, error: body } : { error: body };
    };
    const ok = (value: unknown) => {
      const ret = value === undefined ? {} : value;
      return hasId ? { return: ret, id } : { return: ret };
    };
    try {
      const { name, args } = checkRequest(request);
      const command = this.lookup(session, name);
      const checked = command.args === 'boxed' ? args : checkArgs(args, command.args ?? {});
      // fd=NAME in netdev_add resolves in this monitor; human-monitor-command runs a fresh
      // HMP monitor, which holds no fds (as in QEMU).
      const named = name === 'human-monitor-command' ? new NamedFds() : this.namedFds;
      this.running = session;
      let result: unknown;
      try {
        result = withMonitorFds(named, () => command.run(checked));
      } finally {
        this.running = undefined;
      }
      if (result instanceof Promise) return result.then(ok, fail);
      return ok(result);
    } catch (e) {
      return fail(e);
    }
  }

  private lookup(session: QmpSession, name: string): QmpCommand {
    if (!session.negotiated) {
      if (name !== 'qmp_capabilities') {
        throw new QmpError('CommandNotFound', "Expecting capabilities negotiation with 'qmp_capabilities'");
      }
      return {
        args: { enable: { type: { list: 'string' }, optional: true } },
        run: (args) => {
          for (const cap of (args['enable'] as string[] | undefined) ?? []) {
            // QEMU's own text for an unknown enum member of this list names it 'null'.
            if (!KNOWN_CAPABILITIES.has(cap))
              throw new QmpError('GenericError', `Parameter 'null' does not accept value '${cap}'`);
            if (!CAPABILITIES.includes(cap)) throw new QmpError('GenericError', `Capability '${cap}' not available`);
          }
          session.negotiated = true;
          return {};
        },
      };
    }
    if (name === 'qmp_capabilities') {
      throw new QmpError('CommandNotFound', 'Capabilities negotiation is already complete, command ignored');
    }
    if (name === 'query-version') return { run: () => this.opts.version };
    if (name === 'query-commands') {
      return {
        run: () =>
          [
            'qmp_capabilities',
            'query-version',
            'query-commands',
            ...this.fdCommands.keys(),
            ...this.opts.commands.keys(),
          ].map((n) => ({ name: n })),
      };
    }
    const command = this.fdCommands.get(name) ?? this.opts.commands.get(name);
    if (command === undefined) throw new QmpError('CommandNotFound', `The command ${name} has not been found`);
    return command;
  }
}

/** The members QMP allows in a request, checked as QEMU does. */
function checkRequest(request: Record<string, JsonValue>): { name: string; args: Record<string, unknown> } {
  for (const [key, value] of Object.entries(request)) {
    switch (key) {
      case 'execute':
        if (typeof value !== 'string')
          throw new QmpError('GenericError', "QMP input member 'execute' must be a string");
        break;
      case 'arguments':
        if (!isObject(value)) throw new QmpError('GenericError', "QMP input member 'arguments' must be an object");
        break;
      case 'id':
        break;
      default:
        // Includes "exec-oob": we never offer the oob capability.
        throw new QmpError('GenericError', `QMP input member '${key}' is unexpected`);
    }
  }
  const name = request['execute'];
  if (typeof name !== 'string') throw new QmpError('GenericError', "QMP input lacks member 'execute'");
  return { name, args: (request['arguments'] as Record<string, unknown> | undefined) ?? {} };
}
