// MAC addresses: parsing with QEMU's device-property rules, formatting as QEMU prints them,
// and the default-MAC pool (QEMU's mac_table), kept per Topology instead of per process.

export type MacBytes = Uint8Array; // always 6 bytes

const MAC_GROUP = /^[0-9a-fA-F]{2}$/;

/**
 * Parse "52:54:00:12:34:56" (or with '-' separators): exactly six 2-hex-digit groups with
 * one separator kind, nothing after the last group. Returns undefined when malformed.
 */
export function parseMac(text: string): MacBytes | undefined {
  if (typeof text !== 'string' || text.length !== 17) return undefined;
  const sep = text[2];
  if (sep !== ':' && sep !== '-') return undefined;
  const groups = text.split(sep);
  if (groups.length !== 6 || !groups.every((g) => MAC_GROUP.test(g))) return undefined;
  return Uint8Array.from(groups.map((g) => parseInt(g, 16)));
}

/** Lower-case colon form, as QEMU's info strings and QMP replies print it. */
export function formatMac(mac: MacBytes): string {
  return Array.from(mac, (b) => b.toString(16).padStart(2, '0')).join(':');
}

export function isMulticastMac(mac: MacBytes): boolean {
  return (mac[0] & 1) === 1;
}

/** The locally administered prefix QEMU hands out default MACs from. */
const DEFAULT_PREFIX = [0x52, 0x54, 0x00, 0x12, 0x34] as const;
const POOL_FIRST = 0x56;
const POOL_END = 0xff; // exclusive

function hasDefaultPrefix(mac: MacBytes): boolean {
  return DEFAULT_PREFIX.every((b, i) => mac[i] === b);
}

/**
 * QEMU's default-MAC usage table. Counts last bytes 0x56..0xFE. A NIC without a MAC gets
 * 52:54:00:12:34:XX with the smallest free XX (0xFF once the pool is exhausted, which QEMU
 * then does not count). A given MAC with the 52:54:00:12:34 prefix is counted too; other MACs
 * never touch the table, so duplicates are possible and are not detected (as in QEMU).
 */
export class MacPool {
  private readonly used = new Array<number>(256).fill(0);

  /** Take a MAC for a new NIC: `requested` (possibly counted) or a fresh default. */
  assign(requested?: MacBytes): MacBytes {
    if (requested !== undefined && requested.some((b) => b !== 0)) {
      const mac = Uint8Array.from(requested);
      if (hasDefaultPrefix(mac)) this.count(mac[5], +1);
      return mac;
    }
    const mac = Uint8Array.from([...DEFAULT_PREFIX, this.firstFree()]);
    this.count(mac[5], +1);
    return mac;
  }

  /** A NIC went away: give its MAC back (only default-prefix MACs were counted). */
  release(mac: MacBytes): void {
    if (hasDefaultPrefix(mac)) this.count(mac[5], -1);
  }

  /** How many live NICs hold last byte `lastByte` (for tests and diagnostics). */
  usage(lastByte: number): number {
    return this.used[lastByte] ?? 0;
  }

  private firstFree(): number {
    for (let b = POOL_FIRST; b < POOL_END; b++) if (this.used[b] === 0) return b;
    return 0xff; // QEMU's -1 stored in a byte
  }

  private count(lastByte: number, delta: number): void {
    if (lastByte >= POOL_FIRST && lastByte < POOL_END) this.used[lastByte] += delta;
  }
}
