// The guest's side of one split virtqueue over guest RAM held in a SharedArrayBuffer: what a
// guest's virtio driver does (post buffers, publish them, collect completions). A stand-in
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

const F_NEXT = 1;
const F_WRITE = 2;

export class SplitRingDriver {
  readonly desc: number;
  readonly avail: number;
  readonly used: number;
  readonly #ram: DataView;
  readonly #u16: Uint16Array;
  readonly #base: number;
  #availIdx = 0;
  #usedSeen = 0;
  #freeHead = 0;
  #free: number;
  readonly #next: Uint16Array; // free list
  readonly #chainLen: Uint16Array;

  /** `ram` is guest RAM starting at guest-physical `ramBase`; the ring goes at `at`. */
  constructor(
    ram: SharedArrayBuffer,
    ramBase: number,
    at: number,
    readonly size: number,
  ) {
    this.#ram = new DataView(ram);
    this.#u16 = new Uint16Array(ram);
    this.#base = ramBase;
    this.desc = at;
    this.avail = at + 16 * size;
    this.used = (this.avail + 6 + 2 * size + 15) & ~15;
    new Uint8Array(ram, at - ramBase, this.used + 6 + 8 * size - at).fill(0);
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
      const off = this.desc - this.#base + 16 * d;
      this.#ram.setBigUint64(off, BigInt(b.addr), true);
      this.#ram.setUint32(off + 8, b.len, true);
      const last = i + 1 === bufs.length;
      this.#ram.setUint16(off + 12, (b.writable ? F_WRITE : 0) | (last ? 0 : F_NEXT), true);
      const nxt = this.#next[d]!;
      this.#ram.setUint16(off + 14, last ? 0 : nxt, true);
      if (last) this.#freeHead = nxt;
      d = nxt;
    }
    this.#free -= bufs.length;
    this.#chainLen[head] = bufs.length;
    this.#ram.setUint16(this.avail - this.#base + 4 + 2 * (this.#availIdx % this.size), head, true);
    this.#availIdx = (this.#availIdx + 1) & 0xffff;
    return head;
  }

  /** Make the added chains visible to the device (one atomic store of avail.idx). */
  publish(): void {
    Atomics.store(this.#u16, (this.avail - this.#base + 2) >> 1, this.#availIdx);
  }

  /**
   * Whether the device wants a kick for what was published: false while it says it is
   * processing anyway (used.flags NO_NOTIFY; this driver does not negotiate EVENT_IDX).
   */
  kickWanted(): boolean {
    return (Atomics.load(this.#u16, (this.used - this.#base) >> 1) & 1) === 0;
  }

  /** Completed chains as [head, bytes written], their descriptors freed. */
  takeUsed(max = Infinity): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    const idx = Atomics.load(this.#u16, (this.used - this.#base + 2) >> 1);
    while (this.#usedSeen !== idx && out.length < max) {
      const off = this.used - this.#base + 4 + 8 * (this.#usedSeen % this.size);
      const head = this.#ram.getUint32(off, true);
      out.push([head, this.#ram.getUint32(off + 4, true)]);
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
