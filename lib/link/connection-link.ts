// A link driven by a connection that comes and goes (QEMU's vhost-user chardev handling,
// section 5.5): when the connection opens, the backend and its NIC peer go link-up; when it
// closes, teardown and link-down run from a deferred one-shot task (QEMU's one-shot bottom
// half: the close may arrive while the backend is mid-I/O). Reusable by any backend whose
// transport reconnects (vhost-user, stream).
import { TypedEmitter } from '../util/typed-emitter';

/** Anything that reports its connection opening and closing (a socket wrapper, a chardev). */
export interface ConnectionSource {
  on(event: 'open' | 'close', listener: () => void): unknown;
  off(event: 'open' | 'close', listener: () => void): unknown;
}

/** What the link moves: a Netdev (its queues and their NIC peers), or any other switch. */
export interface LinkTarget {
  setLink(up: boolean): void;
}

export interface ConnectionLinkOptions {
  /** Schedules the one-shot close task. Default: setImmediate (after pending I/O callbacks). */
  defer?: (task: () => void) => void;
  /** Start the backend on open (vhost start); throwing aborts the open (link stays as it was). */
  onOpen?: () => void;
  /** Teardown inside the deferred task, before the link goes down (save acked features...). */
  onClose?: () => void;
  /** Put the link down right away, before the first open (a backend that starts unconnected). */
  startDown?: boolean;
}

export type ConnectionLinkEvents = {
  connected: [];
  disconnected: [];
  /** onOpen/onClose threw. */
  error: [err: Error];
};

export class ConnectionLink extends TypedEmitter<ConnectionLinkEvents> implements Disposable {
  readonly #target: LinkTarget;
  readonly #source: ConnectionSource;
  readonly #opts: ConnectionLinkOptions;
  #up = false;
  #closePending = false;
  #openWhileClosing = false;
  #disposed = false;

  constructor(target: LinkTarget, source: ConnectionSource, opts: ConnectionLinkOptions = {}) {
    super();
    this.#target = target;
    this.#source = source;
    this.#opts = opts;
    if (opts.startDown) target.setLink(false);
    source.on('open', this.#handleOpen);
    source.on('close', this.#handleClose);
  }

  /** True between a handled open and the deferred close task. */
  get connected(): boolean {
    return this.#up;
  }

  /** A close was seen and its deferred task has not run yet. */
  get closing(): boolean {
    return this.#closePending;
  }

  readonly #handleOpen = (): void => {
    if (this.#disposed) return;
    // QEMU detaches the chardev handlers on close and re-installs them from the bottom half,
    // which then reports a connection that is already open again: we replay it the same way.
    if (this.#closePending) {
      this.#openWhileClosing = true;
      return;
    }
    if (this.#up) return;
    try {
      this.#opts.onOpen?.();
    } catch (err) {
      this.#fail(err);
      return;
    }
    this.#up = true;
    this.#target.setLink(true);
    this.emit('connected');
  };

  readonly #handleClose = (): void => {
    // Only an open connection has anything to tear down (QEMU: "only if the watch is active").
    if (this.#disposed || !this.#up || this.#closePending) return;
    this.#closePending = true;
    const defer = this.#opts.defer ?? ((task: () => void) => void setImmediate(task));
    defer(() => this.#closedTask());
  };

  #closedTask(): void {
    this.#closePending = false;
    if (this.#disposed) return;
    this.#up = false;
    try {
      this.#opts.onClose?.();
    } catch (err) {
      this.#fail(err);
    }
    this.#target.setLink(false);
    this.emit('disconnected');
    if (this.#openWhileClosing) {
      this.#openWhileClosing = false;
      this.#handleOpen();
    }
  }

  #fail(err: unknown): void {
    const e = err instanceof Error ? err : new Error(String(err));
    if (this.listenerCount('error') > 0) this.emit('error', e);
    else process.emitWarning(e.message, 'NetplaneWarning');
  }

  /** Stop following the connection; a pending close task becomes a no-op. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#source.off('open', this.#handleOpen);
    this.#source.off('close', this.#handleClose);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
