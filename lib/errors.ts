// Errors thrown by netplane: one base class with a stable string `code`; native failures
// keep Node's system-error shape (code/errno/syscall) and are attached as `cause`.

export type NetplaneErrorCode =
  | 'NETPLANE_INVALID_OPTION'
  /** Untrusted input failed validation: a guest memory table, a ring layout. */
  | 'NETPLANE_INVALID'
  | 'NETPLANE_DUPLICATE_ID'
  | 'NETPLANE_NOT_FOUND'
  | 'NETPLANE_IN_USE'
  | 'NETPLANE_TAP_OPEN_FAILED'
  | 'NETPLANE_CLOSED'
  | 'NETPLANE_INVALID_STATE'
  | 'NETPLANE_INVALID_FRAME'
  /** A PacketBatch used after it was released (forwarded, port.release(), the next read, close). */
  | 'NETPLANE_STALE_BATCH'
  | 'NETPLANE_SCRIPT_FAILED'
  | 'NETPLANE_QMP_ERROR'
  /** -netdev user: libslirp (libslirp.so.0) is not installed or too old. */
  | 'NETPLANE_LIBSLIRP_MISSING'
  /** A stream/dgram/socket netdev's socket could not be created (bind, listen, a bad fd). */
  | 'NETPLANE_SOCKET_FAILED'
  /** A vhost-user back-end failed the protocol (closed mid-message, garbage, no reply, too few queues). */
  | 'NETPLANE_VHOST_USER';

/** QMP error classes a failure maps to (QEMU's ErrorClass names). */
export type QmpErrorClass = 'GenericError' | 'DeviceNotFound' | 'CommandNotFound';

export class NetplaneError extends Error {
  readonly code: NetplaneErrorCode;
  /** How QMP reports this failure; GenericError unless set. */
  readonly qmpClass: QmpErrorClass;

  constructor(code: NetplaneErrorCode, message: string, options?: { cause?: unknown; qmpClass?: QmpErrorClass }) {
    super(message, options);
    this.code = code;
    this.qmpClass = options?.qmpClass ?? (code === 'NETPLANE_NOT_FOUND' ? 'DeviceNotFound' : 'GenericError');
  }
}
Object.defineProperty(NetplaneError.prototype, 'name', { value: 'NetplaneError', enumerable: false });
