// The one place that loads the native addon, with a typed interface for every export.
// Each concept keeps its own section below; nothing else in lib/ requires the addon.
import * as path from 'node:path';
import type { SlirpConfig } from './options/user';

// Shapes the addon takes exactly as the public API defines them. They live here, in the
// lowest layer; lib/tap.ts and lib/vnet-hdr.ts re-export them.
export type VnetHdrMode = 'off' | 'auto' | 'on'; // QEMU vnet_hdr=off / absent / on

export interface TapOpenOptions {
  /** Interface name; absent or empty: the kernel picks tap%d. */
  ifname?: string;
  /** Queue count, 1..1024 (default 1); more than one needs IFF_MULTI_QUEUE. */
  queues?: number;
  /** Default 'auto': use vnet headers when the kernel offers them. */
  vnetHdr?: VnetHdrMode;
  /** TUNSETSNDBUF bytes; absent = INT_MAX with failure ignored (QEMU); larger values clamp. */
  sndbuf?: number;
}

export interface TapOffloads {
  csum?: boolean;
  tso4?: boolean;
  tso6?: boolean;
  ecn?: boolean;
  ufo?: boolean;
  uso4?: boolean;
  uso6?: boolean;
}

export interface VnetHdr {
  /** VnetFlag bits. */
  flags: number;
  /** A GsoType value, optionally | GsoType.ECN. */
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
  /** 12- and 20-byte layouts only. */
  numBuffers: number;
  /** 20-byte layout only. */
  hashValue: number;
  /** 20-byte layout only. */
  hashReport: number;
}

/** A Node-style system error from the native core: code 'EPERM', syscall 'ioctl(TUNSETIFF)'. */
export interface NativeSystemError extends Error {
  code?: string;
  errno?: number;
  syscall?: string;
}

// ---- tap (native/binding/tap.cc) ------------------------------------------------------
/** core::TapDevice. Every member throws (code NETPLANE_CLOSED) once closed, except `closed`/close(). */
export interface NativeTapDevice {
  readonly ifname: string;
  readonly queues: number;
  readonly features: number;
  readonly hasVnetHdr: boolean;
  readonly hasUfo: boolean;
  readonly hasUso: boolean;
  readonly vnetHdrLen: number;
  readonly offloadFlags: number;
  readonly closed: boolean;
  fd(queue: number): number;
  queueEnabled(queue: number): boolean;
  setVnetHdrLen(len: number): void;
  setOffloads(offloads: TapOffloads): void;
  setQueueEnabled(queue: number, enabled: boolean): void;
  setSndbuf(bytes: number): void;
  close(): void;
}
export interface NativeTapBinding {
  tapOpen(opts?: TapOpenOptions): NativeTapDevice;
  /** Dups the fds (F_DUPFD_CLOEXEC); sndbuf undefined = QEMU's default. */
  tapAdopt(fds: number[], sndbuf?: number): NativeTapDevice;
}

// ---- vnet header (native/binding/vnet.cc) ---------------------------------------------
/** core::VnetError's names in its order (VnetErrorName), for a code the binding returns as a number. */
export const VNET_ERRORS = [
  'OK',
  'SHORT_FRAME',
  'BAD_FLAGS',
  'BAD_GSO_TYPE',
  'BAD_GSO_SIZE',
  'BAD_CSUM',
  'BAD_HDR_LEN',
  'BAD_PACKET',
  'TOO_MANY_SEGMENTS',
  'FRAME_TOO_LONG',
] as const;
/** What ValidateVnetHdr/CompleteChecksum report (names from VnetErrorName). */
export type NativeVnetError = Exclude<(typeof VNET_ERRORS)[number], 'OK'>;
export interface NativeVnetConstants {
  readonly HDR_LEN_LEGACY: 10;
  readonly HDR_LEN_MRG: 12;
  readonly HDR_LEN_HASH: 20;
  readonly FLAG_NEEDS_CSUM: 1;
  readonly FLAG_DATA_VALID: 2;
  readonly FLAG_RSC_INFO: 4;
  readonly GSO_NONE: 0;
  readonly GSO_TCPV4: 1;
  readonly GSO_UDP: 3;
  readonly GSO_TCPV6: 4;
  readonly GSO_UDP_L4: 5;
  readonly GSO_ECN: 0x80;
  readonly MAX_FRAME_LEN: number;
  readonly MAX_USO_SEGMENTS: number;
}
export interface NativeVnetBinding {
  /** Parse the first len (10, 12 or 20) bytes of buf. */
  parseVnetHdr(buf: Uint8Array, len: number): VnetHdr;
  /** Encode a header into a new len-byte Buffer. */
  writeVnetHdr(hdr: Partial<VnetHdr> | Uint8Array, len: number): Buffer;
  /** Re-layout a 10/12/20-byte header to toLen bytes (common prefix kept, the rest zero). */
  convertVnetHdr(buf: Uint8Array, toLen: number): Buffer;
  /** null if hdr is valid for frame (the ethernet frame after the header), else the reason. */
  validateVnetHdr(hdr: Partial<VnetHdr> | Uint8Array, frame: Uint8Array): NativeVnetError | null;
  /** Fill in the NEEDS_CSUM checksum of frame in place; null or the reason it cannot. */
  completeChecksum(hdr: Partial<VnetHdr> | Uint8Array, frame: Uint8Array): NativeVnetError | null;
  /** RFC 1071 checksum of buf. */
  internetChecksum(buf: Uint8Array): number;
  /** Segment buf (a hdrLen-byte header, then the frame) into wire frames, checksums done.
   *  Throws an Error with code 'ERR_VNET_<reason>' when the header does not fit the frame. */
  segmentFrame(hdrLen: number, buf: Uint8Array): Buffer[];
  readonly vnetConstants: NativeVnetConstants;
}

// ---- event loop (native/binding/iothread.cc, main_loop_context.cc) -------------------
/** Adaptive polling parameters of an IOThread (QEMU's poll-max-ns / poll-grow / poll-shrink). */
export interface NativePollParams {
  /** Longest busy-poll window in ns; 0 (default) = never poll, an idle thread uses no CPU. */
  pollMaxNs?: number;
  /** Window growth factor; 0 = 2. */
  pollGrow?: number;
  /** Window shrink divisor; 0 = reset to 0. */
  pollShrink?: number;
}

/** A named native thread running its own AioContext (QEMU's `-object iothread`). */
export interface NativeIoThread {
  readonly name: string;
  /** Kernel thread id (`/proc/self/task/<tid>`). */
  readonly tid: number;
  readonly running: boolean;
  readonly pollParams: Required<NativePollParams>;
  /** Current adaptive-polling window in ns. */
  readonly currentPollNs: number;
  setPollParams(params: NativePollParams): void;
  /** Ends the loop (one-shot bottom half) and joins the thread. Idempotent. */
  stop(): void;
}

/**
 * An AioContext embedded in Node's libuv loop (QEMU's AioContext as a GSource). Bottom
 * halves, timers and fd handlers are addressed by numeric ids; their callbacks run on the
 * JS thread. `poll`/`prepare`/`check`/`dispatch` drive it by hand.
 */
export interface NativeMainLoopContext {
  readonly name: string;
  readonly closed: boolean;
  /** Whether libuv runs the prepare/check phases. */
  readonly driven: boolean;
  /** How many times a notification actually wrote the eventfd. */
  readonly notifierWrites: number;
  bhNew(cb: () => void): number;
  bhSchedule(id: number): void;
  bhScheduleIdle(id: number): void;
  bhCancel(id: number): void;
  bhDelete(id: number): void;
  oneshot(cb: () => void): void;
  timerNew(cb: () => void): number;
  /** Arm (or re-arm) to fire `delayMs` from now. */
  timerMod(id: number, delayMs: number): void;
  timerDel(id: number): void;
  timerFree(id: number): void;
  timerPending(id: number): boolean;
  /** Install/replace the handler of `fd`; both callbacks absent removes it. */
  setFdHandler(fd: number, read?: (() => void) | null, write?: (() => void) | null): void;
  removeFdHandler(fd: number): void;
  setFdPolling(fd: number, read: boolean, write: boolean): void;
  notify(): void;
  /** One iteration; true if progress was made. Rethrows the first callback exception. */
  poll(blocking: boolean): boolean;
  /** Advertise a waiter; returns the timeout in ns (-1 = infinite, 0 = ready). */
  prepare(): number;
  check(): boolean;
  dispatch(): boolean;
  /** Timeout Prepare would return, without advertising a waiter. */
  nextTimeoutNs(): number;
  setDriven(on: boolean): void;
  ref(): void;
  unref(): void;
  close(): void;
}

export interface NativeAioBinding {
  IoThread: new (name: string, params?: NativePollParams) => NativeIoThread;
  MainLoopContext: new (name?: string, options?: { driven?: boolean }) => NativeMainLoopContext;
  /** A non-blocking close-on-exec pipe: [readFd, writeFd]; the caller closes both (fd_passing.cc). */
  aioPipe(): [number, number];
  /** A non-blocking close-on-exec AF_UNIX stream socketpair. */
  aioSocketPair(): [number, number];
  /** ns -> ms rounding up (-1 stays -1, 0 stays 0, clamped to INT32_MAX). */
  aioTimeoutNsToMs(ns: number): number;
}

// ---- data plane graph (native/binding/graph.cc) ---------------------------------------
/** Event kinds raised by the graph (core::GraphEvent::Kind). */
export const NativeGraphEvent = { tapDead: 0, portRx: 1, portTxRoom: 2, vringError: 3, socketClosed: 4 } as const;
export type NativeGraphEventKind = (typeof NativeGraphEvent)[keyof typeof NativeGraphEvent];
/** Drop reasons in the order the native core defines them (DropReasonName in counters.h). */
export const DROP_REASONS = [
  'linkDown',
  'noPeer',
  'queueFull',
  'oversize',
  'badVnetHdr',
  'writeError',
  'deadDevice',
  'purged',
  'filtered',
] as const;
export type NativeDropReason = (typeof DROP_REASONS)[number];
/** One client's state and counters, taken on its own thread (exactly consistent). */
export interface NativeClientStats {
  handle: number;
  name: string;
  kind: 'tap' | 'hubport' | 'jsport' | 'virtio-device' | 'user' | 'stream' | 'dgram' | 'virtio-driver';
  queueIndex: number;
  iothread: string;
  threadId: number;
  peer: number | null;
  hubId: number | null;
  linkDown: boolean;
  dead: boolean;
  enabled: boolean;
  vnetHdrLen: number;
  offloads: number;
  /** Taps only: reads and writes go through io_uring (asked for and set up). */
  ioUring?: boolean;
  /** The client met hostile input and stopped (a virtio queue pair in its error state). */
  broken: boolean;
  /** How often it entered that state; `error` is the last reason (null: never). */
  errors: number;
  error: string | null;
  /** Virtio queue pairs only. */
  virtio?: NativeVirtioStats;
  framesIn: number;
  bytesIn: number;
  framesOut: number;
  bytesOut: number;
  queued: number;
  dropped: number;
  drops: Record<NativeDropReason, number>;
  deviceRxFrames: number;
  deviceRxBytes: number;
  deviceTxFrames: number;
  deviceTxBytes: number;
  segments: number;
  eagain: number;
  wakeups: number;
}
/** What a virtio-device client adds to its stats. */
export interface NativeVirtioStats {
  /** The negotiated features in force (setVirtioFeatures). */
  features: bigint;
  rxStarted: boolean;
  txStarted: boolean;
  /** Interrupts written to the call fds (at most one per burst and ring). */
  notifies: number;
  /** Notifications the other side waived (EVENT_IDX's used_event / avail_event, or the ring's flags). */
  notifiesSuppressed: number;
  /** tx frames the guest sent with a GSO type (TSO/UFO/USO), handed on whole. */
  txGsoFrames: number;
  /** rx frames written to the guest with a GSO type (whole, not segmented). */
  rxGsoFrames: number;
  /** rx frames written across more than one buffer (MRG_RXBUF, num_buffers > 1). */
  rxMergedFrames: number;
  /** rx buffers (chains) taken by all rx frames. */
  rxBuffers: number;
  /** The largest frame (ethernet bytes, a GSO frame whole) the guest sent / was given. */
  txMaxFrame: number;
  rxMaxFrame: number;
}
/** What every add* call names: the client's handle, name, queue and placement. */
export interface NativeClientSpec {
  handle: number;
  name: string;
  queueIndex: number;
  /** '' = default placement ("np-q<queueIndex>", or the hub's thread). */
  iothread: string;
}
export interface NativeTapSpec extends NativeClientSpec {
  fd: number;
  vnetHdrLen: number;
  /** Batch reads and writes through io_uring; falls back to read/write where it cannot. */
  ioUring?: boolean;
}
export interface NativeHubPortSpec extends NativeClientSpec {
  hubId: number;
}
export interface NativePortSpec extends NativeClientSpec {
  /** Ring memory: Uint8Arrays over SharedArrayBuffers. */
  rx: Uint8Array;
  tx: Uint8Array;
  dropWhenFull: boolean;
  vnetHdrLen: number;
}
/** Where a virtio ring's addresses live: front-end user addresses (vhost-user) or guest-physical. */
export type VringAddrSpace = 'user' | 'guest';
export type VringName = 'rx' | 'tx';
export interface NativeVringSpec {
  ring: VringName;
  memory: NativeGuestMemory;
  /** Queue size: a power of two, 1..32768. */
  size: number;
  descAddr: bigint;
  availAddr: bigint;
  usedAddr: bigint;
  addrSpace: VringAddrSpace;
  /** Next avail index to process (vhost-user SET_VRING_BASE). */
  base: number;
  /** Duplicated natively; the caller keeps its own. */
  kickFd: number;
  /** -1: no interrupts. */
  callFd: number;
  /** Written once when the queue pair enters its error state. */
  errFd?: number;
}
/** One ring of a queue pair netplane drives (virtio_driver_queue.h); addresses guest-physical. */
export interface NativeDriverRingSpec {
  ring: VringName;
  memory: NativeGuestMemory;
  /** A power of two up to 1024. */
  size: number;
  descAddr: bigint;
  availAddr: bigint;
  usedAddr: bigint;
  /** size * bufferSize bytes; buffer k belongs to descriptor k. */
  buffersAddr: bigint;
  bufferSize: number;
  /** Duplicated natively; the caller keeps its own. */
  kickFd: number;
  callFd: number;
  /** Lay the ring out anew (true), or resume it as it was (a reconnect). */
  reset: boolean;
}
/**
 * core::NetGraph. Methods throw an error with a `code` on failure: NETPLANE_NOT_FOUND (no
 * such handle), NETPLANE_IN_USE (handle taken, client already peered), NETPLANE_CLOSED,
 * NETPLANE_INVALID (untrusted input such as a ring layout outside guest memory), or EINVAL
 * (any other bad request).
 */
export interface NativeNetGraph {
  addIothread(name: string, params?: NativePollParams): void;
  addTap(spec: NativeTapSpec): void;
  addHubPort(spec: NativeHubPortSpec): void;
  addPort(spec: NativePortSpec): void;
  addVirtioDevice(spec: NativeClientSpec): void;
  setVirtioFeatures(handle: number, features: bigint): void;
  startVring(handle: number, spec: NativeVringSpec): void;
  /**
   * Stops the ring at once; returns the vhost-user GET_VRING_BASE value (split: the next avail
   * index; packed: avail | used << 16, each position | wrap << 15).
   */
  stopVring(handle: number, ring: VringName): number;
  addVirtioDriver(spec: NativeClientSpec): void;
  setDriverFeatures(handle: number, features: bigint): void;
  startDriverRing(handle: number, spec: NativeDriverRingSpec): void;
  /** Stops the ring at once (its contents stay); returns the used index, the base to resume from. */
  stopDriverRing(handle: number, ring: VringName): number;
  remove(handle: number): void;
  connect(a: number, b: number): void;
  setLinkDown(handle: number, down: boolean): void;
  setVnetHdrLen(handle: number, len: number): void;
  setQueueEnabled(handle: number, enabled: boolean): void;
  setAutoOffloads(on: boolean): void;
  kick(handle: number, tx: boolean): void;
  validateTx(handle: number, pos: number, count: number, hdrLen: number): -1 | [number, string];
  countRejected(handle: number, reason: 'oversize' | 'badVnetHdr' | 'purged', n: number): void;
  /** PacketBatch.forward(): request and result words in `desc` (native/binding/batch_forward.h). */
  forwardBatch(handle: number, desc: Uint32Array): void;
  stats(): NativeClientStats[];
  close(): void;
  /** filter-dump (native/binding/capture.cc). */
  addCapture(id: string, opts: NativeCaptureOptions, handles: number[]): void;
  removeCapture(id: string): NativeCaptureStats;
  captureStats(id: string): NativeCaptureStats;
  /** A stream socket client (core/socket/stream_client.h), without a connection yet. */
  addStream(spec: NativeClientSpec): void;
  /** A datagram socket client sending to `dest` (null: the socket's connected peer). */
  addDgram(spec: NativeClientSpec & { dest: NativeSockAddr | null }): void;
  /** Hand a stream/dgram client its socket (it owns the fd from then on); -1 closes it. */
  setSocketFd(handle: number, fd: number): void;
  /** -netdev user (native/binding/slirp.cc): a libslirp stack; throws NETPLANE_NOT_FOUND without libslirp. */
  addSlirp(spec: NativeSlirpSpec): void;
  /** hostfwd-add / guestfwd-exec: undefined; hostfwd-remove: found; info: the connection table. */
  slirpControl(handle: number, op: string, args?: Record<string, unknown>): boolean | string | undefined;
}
/** addSlirp's options: the spec plus the checked configuration (lib/options/user.ts SlirpConfig). */
export interface NativeSlirpSpec extends NativeClientSpec, SlirpConfig {}
/** libslirpInfo(): the library's version and the SlirpConfig version used, or why it cannot load. */
export interface NativeSlirpBinding {
  libslirpInfo(): { version?: string; configVersion?: number; error?: string };
}
/** filter-dump (core::FilterDumpConfig): the file, the bytes kept per frame, the buffer
 *  between the data plane and the writer thread per captured client, which frames. */
export interface NativeCaptureOptions {
  path: string;
  maxlen: number;
  bufferBytes: number;
  directions: 'rx' | 'tx' | 'all';
}
/** A capture's counters (core::FilterDumpStats): frames captured, frames not captured
 *  because the buffer was full, records written, records lost to a failed write. */
export interface NativeCaptureStats {
  frames: number;
  bytes: number;
  dropped: number;
  droppedBytes: number;
  written: number;
  writeErrors: number;
  fileBytes: number;
  writeError: string | null;
}
export interface NativeGraphBinding {
  /**
   * onEvent's code is the errno's name (EBADFD, ...), '' when errno is 0; ring and reason are
   * set for vringError (ring null otherwise).
   */
  NetGraph: new (
    onEvent: (
      kind: NativeGraphEventKind,
      handle: number,
      errno: number,
      syscall: string,
      code: string,
      ring: VringName | null,
      reason: string,
    ) => void,
  ) => NativeNetGraph;
}

// ---- guest memory (native/binding/guest_memory.cc) ------------------------------------
/** A region of a mapped guest memory table (vhost-user SET_MEM_TABLE's fields). */
export interface NativeGuestRegion {
  guestAddr: bigint;
  size: bigint;
  userAddr: bigint;
  fd: number;
  fdOffset: bigint;
}
/** A region over memory JavaScript owns (its user address is its guest address). */
export interface NativeBorrowedRegion {
  guestAddr: bigint;
  bytes: Uint8Array;
}
/** core::GuestMemory. close() drops this reference; rings using it keep the mapping. */
export interface NativeGuestMemory {
  readonly closed: boolean;
  /** Total bytes of all regions (0n once closed). */
  readonly size: bigint;
  readonly regionCount: number;
  close(): void;
}
export interface NativeGuestMemoryBinding {
  /** Maps every region MAP_SHARED; the fds are only used during the call. Throws NETPLANE_INVALID. */
  guestMemoryMap(regions: NativeGuestRegion[]): NativeGuestMemory;
  guestMemoryWrap(regions: NativeBorrowedRegion[]): NativeGuestMemory;
}

// ---- fd passing (native/binding/fd_passing.cc) ----------------------------------------
/**
 * onData(chunk, fds, null) for every chunk read; the fds arrived with it (SCM_RIGHTS) and
 * now belong to the callee. onData(null, [], null) at end of stream; onData(null, [], err)
 * on a read error. Nothing follows either of those.
 */
export type NativeFdReaderCallback = (data: Buffer | null, fds: number[], error: NativeSystemError | null) => void;
/** Reads a stream socket with recvmsg(2) from its own close-on-exec duplicate of the fd. */
export interface NativeFdReader {
  readonly closed: boolean;
  /** The duplicate being read (-1 once closed). */
  readonly fd: number;
  pause(): void;
  resume(): void;
  /** Stop for good and close the duplicate (the fd given to the constructor stays open). */
  close(): void;
}
export interface NativeFdPassingBinding {
  FdReader: new (fd: number, onData: NativeFdReaderCallback) => NativeFdReader;
  /** One sendmsg(2) of `data` with `fds` attached (at most 253); returns the bytes sent. */
  fdSend(fd: number, data: Uint8Array, fds: number[]): number;
  /** Set FD_CLOEXEC (an inherited fd must not reach the programs we start). */
  fdSetCloexec(fd: number): void;
  /** A close-on-exec duplicate of `fd`; the caller closes it. */
  fdDup(fd: number): number;
  /** A close-on-exec memfd of `size` bytes, sealed against shrinking; the caller closes it. */
  memfdCreate(name: string, size: number | bigint): number;
  /** A non-blocking, close-on-exec eventfd; the caller closes it. */
  eventfdCreate(): number;
}

// ---- sockets (native/binding/socket.cc) -------------------------------------------------
/** A numeric socket address (host names are resolved before they get here). */
export type NativeSockAddr =
  { family: 'inet'; host: string; port: number } | { family: 'unix'; path: string; abstract?: boolean };
/** An address as the kernel reports it: inet { host, port } or unix { path, abstract }. */
export type NativeSockName = { host: string; port: number } | { path: string; abstract: boolean };
export interface NativeSocketInfo {
  type: 'stream' | 'dgram' | 'other';
  family?: 'inet' | 'inet6' | 'unix' | 'other';
  local?: NativeSockName | null;
  peer: NativeSockName | null;
}
export interface NativeSocketBinding {
  /** A bound, listening, close-on-exec stream socket; the caller owns the fd. */
  socketListen(addr: NativeSockAddr, backlog: number): number;
  /** A bound datagram socket (multicast: joined to `group` and bound to it). */
  dgramOpen(opts: { local?: NativeSockAddr | null; group?: NativeSockAddr | null; mcastIf?: string }): number;
  /** fcntl(F_DUPFD_CLOEXEC). */
  socketDup(fd: number): number;
  /** getaddrinfo (blocking): the first address of `host` (family 4, 6, or 0 for either), or null. */
  resolveHost(host: string, family: 0 | 4 | 6): string | null;
  /** getsockopt(SO_TYPE), getsockname, getpeername. */
  socketInfo(fd: number): NativeSocketInfo;
}

export type NativeBinding = NativeTapBinding &
  NativeVnetBinding &
  NativeAioBinding &
  NativeGraphBinding &
  NativeFdPassingBinding &
  NativeGuestMemoryBinding &
  NativeSlirpBinding &
  NativeSocketBinding;

let cached: NativeBinding | undefined;

/** Load the addon once (prebuilds/ first via node-gyp-build, then build/Release). */
export function native(): NativeBinding {
  if (!cached) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const load = require('node-gyp-build') as (dir: string) => unknown;
    cached = load(path.join(__dirname, '..')) as NativeBinding;
  }
  return cached;
}
