// A vhost-user front-end for tests, written from the wire format (reference note 1.1), not
// from lib/vhost-user's framing (only its request table is shared): requests go out with SCM_RIGHTS as QEMU sends them (header, payload
// and fds in one sendmsg), replies are read raw so tests can compare them byte for byte.
import * as fs from 'node:fs';
import * as net from 'node:net';
import { native } from '../../lib/native';
import { Request } from '../../lib/vhost-user/protocol';

/** The request codes: protocol.ts's one table (the framing below is written independently). */
export const VU = Request;
export const NEED_REPLY = 0x8;

export interface Reply {
  raw: Buffer;
  request: number;
  flags: number;
  size: number;
  payload: Buffer;
}

export function u64(v: bigint | number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v));
  return b;
}
export function state(index: number, num: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(index, 0);
  b.writeUInt32LE(num, 4);
  return b;
}
export function vringAddr(index: number, desc: bigint, used: bigint, avail: bigint, flags = 0): Buffer {
  const b = Buffer.alloc(40);
  b.writeUInt32LE(index, 0);
  b.writeUInt32LE(flags, 4);
  b.writeBigUInt64LE(desc, 8);
  b.writeBigUInt64LE(used, 16);
  b.writeBigUInt64LE(avail, 24);
  b.writeBigUInt64LE(0n, 32);
  return b;
}
export interface Region {
  gpa: bigint;
  size: bigint;
  ua: bigint;
  offset: bigint;
}
export function memTable(regions: Region[], count = regions.length): Buffer {
  const b = Buffer.alloc(8 + 32 * regions.length);
  b.writeUInt32LE(count, 0);
  regions.forEach((r, i) => {
    b.writeBigUInt64LE(r.gpa, 8 + 32 * i);
    b.writeBigUInt64LE(r.size, 16 + 32 * i);
    b.writeBigUInt64LE(r.ua, 24 + 32 * i);
    b.writeBigUInt64LE(r.offset, 32 + 32 * i);
  });
  return b;
}

export class FakeFrontend {
  readonly socket: net.Socket;
  #buf = Buffer.alloc(0);
  #waiters: Array<(r: Reply) => void> = [];
  readonly replies: Reply[] = [];
  readonly closed: Promise<void>;
  #isClosed = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, d]);
      while (this.#buf.length >= 12) {
        const size = this.#buf.readUInt32LE(8);
        if (this.#buf.length < 12 + size) break;
        const raw = Buffer.from(this.#buf.subarray(0, 12 + size));
        this.#buf = this.#buf.subarray(12 + size);
        const r = { raw, request: raw.readUInt32LE(0), flags: raw.readUInt32LE(4), size, payload: raw.subarray(12) };
        const w = this.#waiters.shift();
        if (w) w(r);
        else this.replies.push(r);
      }
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => socket.on('close', () => ((this.#isClosed = true), resolve())));
  }

  static connect(path: string): Promise<FakeFrontend> {
    return new Promise((resolve, reject) => {
      const s = net.connect(path);
      s.once('error', reject);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(new FakeFrontend(s));
      });
    });
  }

  get isClosed(): boolean {
    return this.#isClosed;
  }

  /** One sendmsg: header + payload with `fds` attached. */
  sendRaw(data: Buffer, fds: number[] = []): void {
    const fd = (this.socket as unknown as { _handle: { fd: number } })._handle.fd;
    const sent = native().fdSend(fd, data, fds);
    if (sent !== data.length) throw new Error(`short send ${sent}/${data.length}`);
  }

  send(
    request: number,
    payload: Buffer = Buffer.alloc(0),
    opts: { flags?: number; fds?: number[]; size?: number } = {},
  ): void {
    const h = Buffer.alloc(12);
    h.writeUInt32LE(request, 0);
    h.writeUInt32LE(opts.flags ?? 0x1, 4);
    h.writeUInt32LE(opts.size ?? payload.length, 8);
    this.sendRaw(Buffer.concat([h, payload]), opts.fds ?? []);
  }

  /** The next reply (or rejects when the back-end closes first, or after 3 s). */
  next(): Promise<Reply> {
    const queued = this.replies.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no reply within 3 s')), 3000);
      this.#waiters.push((r) => {
        clearTimeout(timer);
        resolve(r);
      });
      void this.closed.then(() => {
        clearTimeout(timer);
        reject(new Error('closed without a reply'));
      });
    });
  }

  async call(request: number, payload?: Buffer, opts: { flags?: number; fds?: number[] } = {}): Promise<Reply> {
    this.send(request, payload, opts);
    return this.next();
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A memory file (tmpfs, unlinked at once) of `size` bytes: what QEMU's memory-backend-memfd hands over. */
export function memoryFile(tag: string, size: number): { fd: number; name: string } {
  const name = `/dev/shm/np-vu-${process.pid}-${tag}`;
  const fd = fs.openSync(name, 'w+');
  fs.unlinkSync(name);
  fs.ftruncateSync(fd, size);
  return { fd, name };
}

/** How many of this process's fds point at `target` (a path, or e.g. "pipe:[123]"). */
export function fdsPointingAt(target: string): number {
  let n = 0;
  for (const e of fs.readdirSync('/proc/self/fd')) {
    try {
      const link = fs.readlinkSync(`/proc/self/fd/${e}`);
      if (link === target || link === `${target} (deleted)`) n++;
    } catch {
      /* the listing's own fd */
    }
  }
  return n;
}

export function fdTarget(fd: number): string {
  return fs.readlinkSync(`/proc/self/fd/${fd}`).replace(/ \(deleted\)$/, '');
}

/** Mappings of this process backed by `path`. */
export function mappingsOf(path: string): number {
  return fs
    .readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((l) => l.includes(path)).length;
}
