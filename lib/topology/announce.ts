// announce-self: gratuitous RARP frames from every NIC, in rounds on a timer (QEMU's
// net/announce.c). The timers never keep the process alive.

export interface AnnounceParams {
  /** ms before the second round. */
  initial: number;
  /** upper bound of any delay, ms. */
  max: number;
  /** number of rounds; 0 cancels the timer with this id. */
  rounds: number;
  /** added to the delay after each round, ms. */
  step: number;
  /** only NICs whose queue-0 name is listed (all when absent). */
  interfaces?: string[];
  /** timer id; default ''. */
  id?: string;
}

const ETH_P_RARP = 0x8035;
const ARP_HTYPE_ETH = 1;
const ARP_PTYPE_IP = 0x0800;
const ARP_OP_RARP_REQ = 3;

/** The 60-byte RARP request QEMU broadcasts for `mac` (no FCS). */
export function buildRarp(mac: Uint8Array): Buffer {
  const b = Buffer.alloc(60); // zero: IPs and padding
  b.fill(0xff, 0, 6); // broadcast destination
  b.set(mac, 6);
  b.writeUInt16BE(ETH_P_RARP, 12);
  b.writeUInt16BE(ARP_HTYPE_ETH, 14);
  b.writeUInt16BE(ARP_PTYPE_IP, 16);
  b.writeUInt8(6, 18); // hardware address length
  b.writeUInt8(4, 19); // protocol address length
  b.writeUInt16BE(ARP_OP_RARP_REQ, 20);
  b.set(mac, 22); // sender hardware address
  b.set(mac, 32); // target hardware address
  return b;
}

/**
 * One named announce timer. The first round runs at once; before the k-th later round
 * (k = 0, 1, ...) it waits initial + k*step ms, clamped to max (also when negative).
 */
export class AnnounceTimer {
  #params: AnnounceParams | undefined;
  #remaining = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(private readonly round: (params: AnnounceParams) => void) {}

  start(params: AnnounceParams): void {
    this.cancel();
    this.#params = params;
    this.#remaining = params.rounds;
    if (params.rounds > 0) this.#once();
  }

  cancel(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#remaining = 0;
  }

  get active(): boolean {
    return this.#remaining > 0;
  }

  #once(): void {
    const p = this.#params!;
    this.#timer = undefined;
    this.round(p);
    if (--this.#remaining > 0) {
      let delay = p.initial + (p.rounds - this.#remaining - 1) * p.step;
      if (delay < 0 || delay > p.max) delay = p.max;
      this.#timer = setTimeout(() => this.#once(), delay);
      this.#timer.unref();
    } else {
      this.cancel();
    }
  }
}
