// A guest's side of split virtqueues, in TypeScript, for tests of the native virtio-device
// client: guest memory is either a memfd (read and written with pread/pwrite: the same pages
// the engine maps) or a SharedArrayBuffer (direct views). Kicks and interrupts are pipes
// (Node has no eventfd; the engine reads a kick pipe to EAGAIN and writes 8 bytes per
// interrupt). Layout per ring of size N: descriptors at base, avail at base + 16N, used at
// the next 16-byte boundary after the avail ring.
import * as fs from 'node:fs';
import { native } from '../../lib/native';
import type { QueueStart } from '../../lib/topology/nic-virtqueues';

export interface GuestMem {
  write(gpa: number, bytes: Uint8Array): void;
  read(gpa: number, len: number): Uint8Array;
}

/** A memfd as guest memory at guest-physical 0 (the engine maps the same file). */
export function memfdMem(fd: number): GuestMem {
  return {
    write: (gpa, bytes) => void fs.writeSync(fd, bytes, 0, bytes.length, gpa),
    read: (gpa, len) => {
      const b = new Uint8Array(len);
      fs.readSync(fd, b, 0, len, gpa);
      return b;
    },
  };
}

/** A SharedArrayBuffer as guest memory at guest-physical `base`. */
export function sabMem(sab: SharedArrayBuffer, base: number): GuestMem {
  const u8 = new Uint8Array(sab);
  return {
    write: (gpa, bytes) => u8.set(bytes, gpa - base),
    read: (gpa, len) => Uint8Array.from(u8.subarray(gpa - base, gpa - base + len)),
  };
}

function u16(v: number): Uint8Array {
  return new Uint8Array([v & 0xff, (v >> 8) & 0xff]);
}

export interface Buf {
  addr: number;
  len: number;
  writable: boolean;
}

export class DriverRing {
  readonly desc: number;
  readonly avail: number;
  readonly used: number;
  #availIdx = 0;
  #usedSeen = 0;
  #nextDesc = 0;
  readonly kick: [number, number];
  readonly call: [number, number];

  constructor(
    readonly mem: GuestMem,
    base: number,
    readonly size: number,
  ) {
    this.desc = base;
    this.avail = base + 16 * size;
    this.used = (this.avail + 6 + 2 * size + 15) & ~15;
    mem.write(base, new Uint8Array(this.used + 6 + 8 * size - base));
    this.kick = native().aioPipe();
    this.call = native().aioPipe();
  }

  /** One chain of direct descriptors (descriptors are handed out round-robin). */
  add(bufs: Buf[]): number {
    const head = this.#nextDesc;
    bufs.forEach((b, i) => {
      const idx = (head + i) % this.size;
      const d = new DataView(new ArrayBuffer(16));
      d.setBigUint64(0, BigInt(b.addr), true);
      d.setUint32(8, b.len, true);
      d.setUint16(12, (b.writable ? 2 : 0) | (i + 1 < bufs.length ? 1 : 0), true);
      d.setUint16(14, (idx + 1) % this.size, true);
      this.mem.write(this.desc + 16 * idx, new Uint8Array(d.buffer));
    });
    this.#nextDesc = (head + bufs.length) % this.size;
    this.mem.write(this.avail + 4 + 2 * (this.#availIdx % this.size), u16(head));
    this.#availIdx = (this.#availIdx + 1) & 0xffff;
    return head;
  }

  /** Publish avail.idx (as is, or a raw value a hostile guest picks) and kick. */
  publish(raw?: number): void {
    this.mem.write(this.avail + 2, u16(raw ?? this.#availIdx));
    fs.writeSync(this.kick[1], Buffer.from([1]));
  }

  /** Completed chains: [head, len]. */
  takeUsed(): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    const idx = new DataView(this.mem.read(this.used + 2, 2).buffer).getUint16(0, true);
    while (this.#usedSeen !== idx) {
      const e = new DataView(this.mem.read(this.used + 4 + 8 * (this.#usedSeen % this.size), 8).buffer);
      out.push([e.getUint32(0, true), e.getUint32(4, true)]);
      this.#usedSeen = (this.#usedSeen + 1) & 0xffff;
    }
    return out;
  }

  /** Interrupts received so far (8-byte writes to the call pipe). */
  interrupts(): number {
    const b = Buffer.alloc(4096);
    let n = 0;
    try {
      for (;;) {
        const got = fs.readSync(this.call[0], b);
        if (got <= 0) break;
        n += got / 8;
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
    }
    return n;
  }

  close(): void {
    for (const fd of [...this.kick, ...this.call]) fs.closeSync(fd);
  }

  /** What a hypervisor tells NicVirtqueues.startQueue about this ring (its pipes as kick / call). */
  queueStart(base?: number): QueueStart {
    return {
      size: this.size,
      descAddr: BigInt(this.desc),
      availAddr: BigInt(this.avail),
      usedAddr: BigInt(this.used),
      ...(base !== undefined ? { base } : {}),
      kick: this.kick[0],
      call: this.call[1],
    };
  }
}
