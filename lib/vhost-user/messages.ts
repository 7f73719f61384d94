// The vhost-user message table: for every request netplane understands, its payload codec
// with the exact size, the fds it must carry, what it replies, and whether handling it has
// to quiesce the queues first. connection.ts checks a message against its row before any
// handler sees it; backend.ts implements the rows. A request with no row is refused.
//
// Sizes are exact (rust-vmm's rule): a payload one byte short or long is a protocol error,
// never zero-filled or truncated. Indices are checked against the queue count by the
// connection, before any array is touched (CVE-2020-10723: check all 32 bits).
import { MAX_MEM_REGIONS, Request, VRING_IDX_MASK, VRING_NOFD_MASK, type RequestCode } from './protocol';

/** A violation of the protocol by the peer; the connection closes with `message` as reason. */
export class VhostUserProtocolError extends Error {
  readonly code = 'NETPLANE_VHOST_USER_PROTOCOL';
}

export interface VringState {
  index: number;
  num: number;
}
export interface VringAddr {
  index: number;
  flags: number;
  desc: bigint;
  used: bigint;
  avail: bigint;
  log: bigint;
}
export interface VringFile {
  index: number;
  /** No fd attached: the ring is polled (kick) or raises no interrupt (call/err). */
  noFd: boolean;
}
export interface MemRegion {
  guestAddr: bigint;
  size: bigint;
  userAddr: bigint;
  mmapOffset: bigint;
}

/** Payload codecs, by layout (reference note 1.1). */
export interface Codec<T> {
  /** Exact size, or a function that checks the size against the bytes (variable payloads). */
  readonly size: number | ((payload: Buffer) => void);
  decode(payload: Buffer): T;
  encode(value: T): Buffer;
}

const none: Codec<null> = {
  size: 0,
  decode: () => null,
  encode: () => Buffer.alloc(0),
};

const u64: Codec<bigint> = {
  size: 8,
  decode: (p) => p.readBigUInt64LE(0),
  encode: (v) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(v);
    return b;
  },
};

const state: Codec<VringState> = {
  size: 8,
  decode: (p) => ({ index: p.readUInt32LE(0), num: p.readUInt32LE(4) }),
  encode: (v) => {
    const b = Buffer.alloc(8);
    b.writeUInt32LE(v.index, 0);
    b.writeUInt32LE(v.num, 4);
    return b;
  },
};

const addr: Codec<VringAddr> = {
  size: 40,
  decode: (p) => ({
    index: p.readUInt32LE(0),
    flags: p.readUInt32LE(4),
    desc: p.readBigUInt64LE(8),
    used: p.readBigUInt64LE(16),
    avail: p.readBigUInt64LE(24),
    log: p.readBigUInt64LE(32),
  }),
  encode: (v) => {
    const b = Buffer.alloc(40);
    b.writeUInt32LE(v.index, 0);
    b.writeUInt32LE(v.flags, 4);
    b.writeBigUInt64LE(v.desc, 8);
    b.writeBigUInt64LE(v.used, 16);
    b.writeBigUInt64LE(v.avail, 24);
    b.writeBigUInt64LE(v.log, 32);
    return b;
  },
};

const file: Codec<VringFile> = {
  size: 8,
  decode: (p) => {
    const v = p.readBigUInt64LE(0);
    // Bits above NOFD are reserved: a peer that sets them speaks another protocol.
    if ((v & ~(VRING_IDX_MASK | VRING_NOFD_MASK)) !== 0n) {
      throw new VhostUserProtocolError(`reserved bits set in vring file payload 0x${v.toString(16)}`);
    }
    return { index: Number(v & VRING_IDX_MASK), noFd: (v & VRING_NOFD_MASK) !== 0n };
  },
  encode: (v) => u64.encode(BigInt(v.index) | (v.noFd ? VRING_NOFD_MASK : 0n)),
};

const REGION_SIZE = 32;
const memTable: Codec<MemRegion[]> = {
  size: (p) => {
    if (p.length < 8)
      throw new VhostUserProtocolError(`SET_MEM_TABLE payload of ${p.length} bytes is shorter than its 8-byte header`);
    const n = p.readUInt32LE(0);
    if (n === 0 || n > MAX_MEM_REGIONS)
      throw new VhostUserProtocolError(`SET_MEM_TABLE with ${n} regions (1 to ${MAX_MEM_REGIONS} allowed)`);
    if (p.length !== 8 + REGION_SIZE * n) {
      throw new VhostUserProtocolError(
        `SET_MEM_TABLE with ${n} regions needs ${8 + REGION_SIZE * n} bytes, got ${p.length}`,
      );
    }
  },
  decode: (p) => {
    const n = p.readUInt32LE(0);
    const regions: MemRegion[] = [];
    for (let i = 0; i < n; i++) {
      const o = 8 + REGION_SIZE * i;
      regions.push({
        guestAddr: p.readBigUInt64LE(o),
        size: p.readBigUInt64LE(o + 8),
        userAddr: p.readBigUInt64LE(o + 16),
        mmapOffset: p.readBigUInt64LE(o + 24),
      });
    }
    return regions;
  },
  encode: (regions) => {
    const b = Buffer.alloc(8 + REGION_SIZE * regions.length);
    b.writeUInt32LE(regions.length, 0);
    regions.forEach((r, i) => {
      const o = 8 + REGION_SIZE * i;
      b.writeBigUInt64LE(r.guestAddr, o);
      b.writeBigUInt64LE(r.size, o + 8);
      b.writeBigUInt64LE(r.userAddr, o + 16);
      b.writeBigUInt64LE(r.mmapOffset, o + 24);
    });
    return b;
  },
};

export const codecs = { none, u64, state, addr, file, memTable } as const;

/** The fds a request must carry: none, exactly one, one unless NOFD, or one per region. */
export type FdRule = 'none' | 'one' | 'file' | 'per-region';
/** What a request answers: nothing (an ack only when NEED_REPLY), a u64, or a vring state. */
export type ReplyKind = 'ack' | 'u64' | 'state';
/** Which payload field is a ring index to check against the ring count. */
export type IndexRule = 'none' | 'state' | 'addr' | 'file';

interface RowOf<N extends string, T> {
  code: RequestCode;
  name: N;
  codec: Codec<T>;
  fds: FdRule;
  reply: ReplyKind;
  index: IndexRule;
  /** Handling stops the rings first (on every queue's thread, synchronously). */
  quiescesQueues: boolean;
}

/** Requests and their decoded payload types. */
export interface Payloads {
  GET_FEATURES: null;
  SET_FEATURES: bigint;
  SET_OWNER: null;
  RESET_OWNER: null;
  SET_MEM_TABLE: MemRegion[];
  SET_VRING_NUM: VringState;
  SET_VRING_ADDR: VringAddr;
  SET_VRING_BASE: VringState;
  GET_VRING_BASE: VringState;
  SET_VRING_KICK: VringFile;
  SET_VRING_CALL: VringFile;
  SET_VRING_ERR: VringFile;
  GET_PROTOCOL_FEATURES: null;
  SET_PROTOCOL_FEATURES: bigint;
  GET_QUEUE_NUM: null;
  SET_VRING_ENABLE: VringState;
  SET_STATUS: bigint;
  GET_STATUS: null;
}
export type RequestName = keyof Payloads;
export type Row = { [N in RequestName]: RowOf<N, Payloads[N]> }[RequestName];

function row<N extends RequestName>(
  name: N,
  codec: Codec<Payloads[N]>,
  fds: FdRule,
  reply: ReplyKind,
  index: IndexRule,
  quiescesQueues = false,
): RowOf<N, Payloads[N]> {
  return { code: Request[name], name, codec, fds, reply, index, quiescesQueues };
}

/**
 * The table. What is not here is refused (closes the connection): logging and postcopy
 * (migration), IOTLB, config space (QEMU 7.2 strips CONFIG for net), inflight fds, memory
 * slots, the slave channel, RARP and MTU (their protocol bits are not offered).
 */
export const MESSAGES: readonly Row[] = [
  row('GET_FEATURES', none, 'none', 'u64', 'none'),
  row('SET_FEATURES', u64, 'none', 'ack', 'none'),
  row('SET_OWNER', none, 'none', 'ack', 'none'),
  row('RESET_OWNER', none, 'none', 'ack', 'none', true),
  row('SET_MEM_TABLE', memTable, 'per-region', 'ack', 'none', true),
  row('SET_VRING_NUM', state, 'none', 'ack', 'state'),
  row('SET_VRING_ADDR', addr, 'none', 'ack', 'addr'),
  row('SET_VRING_BASE', state, 'none', 'ack', 'state'),
  row('GET_VRING_BASE', state, 'none', 'state', 'state', true),
  row('SET_VRING_KICK', file, 'file', 'ack', 'file'),
  row('SET_VRING_CALL', file, 'file', 'ack', 'file'),
  row('SET_VRING_ERR', file, 'file', 'ack', 'file'),
  row('GET_PROTOCOL_FEATURES', none, 'none', 'u64', 'none'),
  row('SET_PROTOCOL_FEATURES', u64, 'none', 'ack', 'none'),
  row('GET_QUEUE_NUM', none, 'none', 'u64', 'none'),
  row('SET_VRING_ENABLE', state, 'none', 'ack', 'state'),
  row('SET_STATUS', u64, 'none', 'ack', 'none'),
  row('GET_STATUS', none, 'none', 'u64', 'none'),
];

const BY_CODE = new Map<number, Row>(MESSAGES.map((r) => [r.code, r]));
const NAMES = new Map<number, string>(Object.entries(Request).map(([n, c]) => [c, n]));

export function lookupRequest(code: number): Row | undefined {
  return BY_CODE.get(code);
}

/** A request's name for messages: its protocol name, or its number. */
export function requestName(code: number): string {
  return NAMES.get(code) ?? `request ${code}`;
}

/** The largest payload of any row (the memory table with 8 regions): bigger sizes close at once. */
export const MAX_PAYLOAD = 8 + REGION_SIZE * MAX_MEM_REGIONS;

/** Check a payload's size against its row (throws VhostUserProtocolError). */
export function checkSize(r: Row, payload: Buffer): void {
  if (typeof r.codec.size === 'number') {
    if (payload.length !== r.codec.size) {
      throw new VhostUserProtocolError(`${r.name} needs a ${r.codec.size}-byte payload, got ${payload.length}`);
    }
  } else {
    r.codec.size(payload);
  }
}

/** The ring index a payload names, if its row has one. */
export function ringIndexOf(r: Row, value: unknown): number | undefined {
  switch (r.index) {
    case 'none':
      return undefined;
    case 'state':
    case 'addr':
    case 'file':
      return (value as { index: number }).index;
  }
}

/** How many fds a decoded request must carry. */
export function expectedFds(r: Row, value: unknown): number {
  switch (r.fds) {
    case 'none':
      return 0;
    case 'one':
      return 1;
    case 'file':
      return (value as VringFile).noFd ? 0 : 1;
    case 'per-region':
      return (value as MemRegion[]).length;
  }
}
