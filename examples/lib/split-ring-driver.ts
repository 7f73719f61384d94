// The guest's side of one split virtqueue over guest RAM (a SharedArrayBuffer, or a file such
// as a memfd read and written through its fd: GuestRam below): what a guest's virtio driver does (post buffers, publish them, collect completions). A stand-in
// for the guest in the examples, tests and benchmark; a hypervisor never needs it (its
// guest has a real driver). Layout of a ring of size N at guest-physical `at`: descriptors,
// then the avail ring, then the used ring on the next 16-byte boundary.
export interface GuestBuffer {
  /** Guest-physical address. */
  addr: number;
  len: number;
  /** Device-writable (an rx buffer). */
  writable: boolean;
}

/** Guest RAM as the driver touches it; addresses are guest-physical. */
export interface GuestRam {
  u16(gpa: number): number;
  u32(gpa: number): number;
  setU16(gpa: number, v: number): void;
  setU32(gpa: number, v: number): void;
  setU64(gpa: number, v: bigint): void;
  /** A store the device must see after every store before it (avail.idx). */
  publishU16(gpa: number, v: number): void;
  zero(gpa: number, len: number): void;
}

/** RAM in a SharedArrayBuffer at guest-physical `base` (Atomics for the shared indexes). */
export function sharedRam(ram: SharedArrayBuffer, base: number): GuestRam {
  const view = new DataView(ram);
  const u16 = new Uint16Array(ram);
  return {
    u16: (gpa) => Atomics.load(u16, (gpa - base) >> 1),
    u32: (gpa) => view.getUint32(gpa - base, true),
    setU16: (gpa, v) => view.setUint16(gpa - base, v, true),
    setU32: (gpa, v) => view.setUint32(gpa - base, v, true),
    setU64: (gpa, v) => view.setBigUint64(gpa - base, v, true),
    publishU16: (gpa, v) => void Atomics.store(u16, (gpa - base) >> 1, v),
    zero: (gpa, len) => new Uint8Array(ram, gpa - base, len).fill(0),
  };
}

const F_NEXT = 1;
const F_WRITE = 2;

export class SplitRingDriver {
  readonly desc: number;
  readonly avail: number;
  readonly used: number;
  readonly #ram: GuestRam;
  #availIdx = 0;
  #usedSeen = 0;
  #freeHead = 0;
  #free: number;
  readonly #next: Uint16Array; // free list
  readonly #chainLen: Uint16Array;

  /** `ram` is guest RAM (a SharedArrayBuffer starts at guest-physical `ramBase`); the ring goes at `at`. */
  constructor(
    ram: SharedArrayBuffer | GuestRam,
    ramBase: number,
    at: number,
    readonly size: number,
  ) {
    this.#ram = ram instanceof SharedArrayBuffer ? sharedRam(ram, ramBase) : ram;
    this.desc = at;
    this.avail = at + 16 * size;
    this.used = (this.avail + 6 + 2 * size + 15) & ~15;
    this.#ram.zero(at, this.used + 6 + 8 * size - at);
    this.#free = size;
    this.#next = new Uint16Array(size).map((_, i) => (i + 1) % size);
    this.#chainLen = new Uint16Array(size);
  }

  get freeDescriptors(): number {
    return this.#free;
  }

  /** One chain of direct descriptors; returns its head, or -1 when descriptors run out. */
  add(bufs: readonly GuestBuffer[]): number {
    if (bufs.length === 0 || bufs.length > this.#free) return -1;
    const head = this.#freeHead;
    let d = head;
    for (let i = 0; i < bufs.length; i++) {
      const b = bufs[i]!;
      const at = this.desc + 16 * d;
      this.#ram.setU64(at, BigInt(b.addr));
      this.#ram.setU32(at + 8, b.len);
      const last = i + 1 === bufs.length;
      this.#ram.setU16(at + 12, (b.writable ? F_WRITE : 0) | (last ? 0 : F_NEXT));
      const nxt = this.#next[d]!;
      this.#ram.setU16(at + 14, last ? 0 : nxt);
      if (last) this.#freeHead = nxt;
      d = nxt;
    }
    this.#free -= bufs.length;
    this.#chainLen[head] = bufs.length;
    this.#ram.setU16(this.avail + 4 + 2 * (this.#availIdx % this.size), head);
    this.#availIdx = (this.#availIdx + 1) & 0xffff;
    return head;
  }

  /** Make the added chains visible to the device (one atomic store of avail.idx). */
  publish(): void {
    this.#ram.publishU16(this.avail + 2, this.#availIdx);
  }

  /**
   * Whether the device wants a kick for what was published: false while it says it is
   * processing anyway (used.flags NO_NOTIFY; this driver does not negotiate EVENT_IDX).
   */
  kickWanted(): boolean {
    return (this.#ram.u16(this.used) & 1) === 0;
  }

  /** Completed chains as [head, bytes written], their descriptors freed. */
  takeUsed(max = Infinity): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    const idx = this.#ram.u16(this.used + 2);
    while (this.#usedSeen !== idx && out.length < max) {
      const at = this.used + 4 + 8 * (this.#usedSeen % this.size);
      const head = this.#ram.u32(at);
      out.push([head, this.#ram.u32(at + 4)]);
      this.#release(head);
      this.#usedSeen = (this.#usedSeen + 1) & 0xffff;
    }
    return out;
  }

  #release(head: number): void {
    // Walk the chain to its last descriptor and put the whole chain back on the free list.
    let d = head;
    for (let i = 1; i < this.#chainLen[head]!; i++) d = this.#next[d]!;
    this.#next[d] = this.#freeHead;
    this.#freeHead = head;
    this.#free += this.#chainLen[head]!;
  }
}
