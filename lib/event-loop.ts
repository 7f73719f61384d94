// The event loop from TypeScript: IOThreads (native threads, each running its own
// AioContext) and the main-loop context (an AioContext embedded in Node's libuv loop, the
// way QEMU's AioContext is a GSource in GLib). See native/binding/iothread.cc and
// main_loop_context.cc.
//
// This is an embedding API for programs that want netplane's event loop for their own fd
// handlers, bottom halves and timers. It is not how the data plane is placed: netdevs run on
// the iothreads the data plane creates by name (`-object iothread,id=..` and `iothread=`,
// NativeDataPlane.addIothread), and an IoThread started here cannot host a netdev.
import { native, type NativeIoThread, type NativeMainLoopContext, type NativePollParams } from './native';

export type PollParams = NativePollParams;

/** A named native thread running one event loop (QEMU's `-object iothread,id=...`). */
export class IoThread {
  readonly #native: NativeIoThread;

  private constructor(handle: NativeIoThread) {
    this.#native = handle;
  }

  /**
   * Start a thread named `name` (the kernel keeps 15 characters, visible in
   * /proc/self/task/<tid>/comm). Adaptive polling is off unless `pollMaxNs` > 0.
   */
  static start(name: string, params: PollParams = {}): IoThread {
    return new IoThread(new (native().IoThread)(name, params));
  }

  get name(): string {
    return this.#native.name;
  }
  /** Kernel thread id. */
  get tid(): number {
    return this.#native.tid;
  }
  get running(): boolean {
    return this.#native.running;
  }
  get pollParams(): Required<PollParams> {
    return this.#native.pollParams;
  }
  /** Current adaptive-polling window (ns). */
  get currentPollNs(): number {
    return this.#native.currentPollNs;
  }
  setPollParams(params: PollParams): void {
    this.#native.setPollParams(params);
  }
  /** End the loop with a one-shot bottom half and join the thread. Safe to call twice. */
  stop(): void {
    this.#native.stop();
  }
  [Symbol.dispose](): void {
    this.stop();
  }
}

/** A bottom half: a callback run by its context's loop soon after being scheduled. */
export class BottomHalf {
  #ctx: NativeMainLoopContext;
  #id: number;
  #deleted = false;

  /** @internal use MainLoopContext.bh() */
  constructor(ctx: NativeMainLoopContext, id: number) {
    this.#ctx = ctx;
    this.#id = id;
  }
  /** Run once on a coming iteration; scheduling again before it ran is a no-op. */
  schedule(): void {
    this.#ctx.bhSchedule(this.#id);
  }
  /** Like schedule(), but the run does not count as progress and only caps the sleep at 10 ms. */
  scheduleIdle(): void {
    this.#ctx.bhScheduleIdle(this.#id);
  }
  /** Withdraw a pending run. */
  cancel(): void {
    this.#ctx.bhCancel(this.#id);
  }
  /** Never run again; the native side is freed on the next pass. Idempotent. */
  delete(): void {
    if (this.#deleted) return;
    this.#deleted = true;
    if (!this.#ctx.closed) this.#ctx.bhDelete(this.#id);
  }
  get deleted(): boolean {
    return this.#deleted;
  }
}

/** A timer on the monotonic clock; equal deadlines fire in arming order. */
export class Timer {
  #ctx: NativeMainLoopContext;
  #id: number;
  #freed = false;

  /** @internal use MainLoopContext.timer() */
  constructor(ctx: NativeMainLoopContext, id: number) {
    this.#ctx = ctx;
    this.#id = id;
  }
  /** (Re-)arm to fire `delayMs` from now (may be called from the timer's own callback). */
  mod(delayMs: number): void {
    this.#ctx.timerMod(this.#id, delayMs);
  }
  /** Disarm. */
  del(): void {
    this.#ctx.timerDel(this.#id);
  }
  get pending(): boolean {
    return this.#ctx.timerPending(this.#id);
  }
  /** Disarm and release. Idempotent. */
  free(): void {
    if (this.#freed) return;
    this.#freed = true;
    if (!this.#ctx.closed) this.#ctx.timerFree(this.#id);
  }
}

export interface FdHandlers {
  /** Called while the fd is readable, and on error / hang-up. */
  read?: (() => void) | null;
  /** Called while the fd is writable, and on error. */
  write?: (() => void) | null;
}

export interface MainLoopContextOptions {
  /**
   * Let libuv drive the context (default). With false, nothing runs until you call
   * poll() / prepare()+check()+dispatch() yourself; setDriven() switches later.
   */
  driven?: boolean;
}

/**
 * An event-loop context living inside Node's own loop. Pending bottom halves and armed
 * timers keep the process alive (like setImmediate / setTimeout); fd handlers alone do
 * not, unless ref() is called.
 */
export class MainLoopContext {
  readonly #native: NativeMainLoopContext;

  constructor(name = 'main-loop', options: MainLoopContextOptions = {}) {
    this.#native = new (native().MainLoopContext)(name, options);
  }

  get name(): string {
    return this.#native.name;
  }
  get closed(): boolean {
    return this.#native.closed;
  }
  get driven(): boolean {
    return this.#native.driven;
  }
  /** How many notifications actually wrote the eventfd (only when a waiter was advertised). */
  get notifierWrites(): number {
    return this.#native.notifierWrites;
  }

  bh(cb: () => void): BottomHalf {
    return new BottomHalf(this.#native, this.#native.bhNew(cb));
  }
  /** Run `cb` once on a coming iteration. */
  oneshot(cb: () => void): void {
    this.#native.oneshot(cb);
  }
  timer(cb: () => void): Timer {
    return new Timer(this.#native, this.#native.timerNew(cb));
  }

  /** Install or replace the handlers of `fd`; with neither callback the handler is removed. */
  setFdHandler(fd: number, handlers: FdHandlers): void {
    this.#native.setFdHandler(fd, handlers.read ?? null, handlers.write ?? null);
  }
  /** Removal from inside a callback is safe: the handler is never called again. */
  removeFdHandler(fd: number): void {
    this.#native.removeFdHandler(fd);
  }
  /** Turn read / write polling of a registered fd on or off, keeping its callbacks. */
  setFdPolling(fd: number, read: boolean, write: boolean): void {
    this.#native.setFdPolling(fd, read, write);
  }

  /** Wake the loop if someone is waiting on it. */
  notify(): void {
    this.#native.notify();
  }
  /** One iteration by hand; true if progress was made (a BH, an fd handler or a timer ran). */
  poll(blocking: boolean): boolean {
    return this.#native.poll(blocking);
  }
  /** Embedding phases by hand: prepare returns the timeout in ns (-1 infinite, 0 ready). */
  prepare(): number {
    return this.#native.prepare();
  }
  check(): boolean {
    return this.#native.check();
  }
  dispatch(): boolean {
    return this.#native.dispatch();
  }
  nextTimeoutNs(): number {
    return this.#native.nextTimeoutNs();
  }
  setDriven(on: boolean): void {
    this.#native.setDriven(on);
  }
  /** Keep the process alive while this context is open, even with nothing pending. */
  ref(): this {
    this.#native.ref();
    return this;
  }
  unref(): this {
    this.#native.unref();
    return this;
  }
  /** Close the libuv handles and release every callback. Idempotent. */
  close(): void {
    this.#native.close();
  }
  [Symbol.dispose](): void {
    this.close();
  }
  /** The addon object (tests call its raw methods to check argument validation). */
  get handle(): NativeMainLoopContext {
    return this.#native;
  }
}

/** @internal (tests) A non-blocking, close-on-exec pipe: [readFd, writeFd]. Close both with fs.closeSync. */
export function pipe(): [number, number] {
  return native().aioPipe();
}

/** @internal (tests) A non-blocking, close-on-exec AF_UNIX stream socketpair. */
export function socketPair(): [number, number] {
  return native().aioSocketPair();
}

/** @internal (tests) How a timeout in ns becomes a poll(2) timeout in ms: rounded up, never early. */
export function timeoutNsToMs(ns: number): number {
  return native().aioTimeoutNsToMs(ns);
}
