// A firewall in TypeScript between two TAPs: every frame crosses JavaScript.
//
//   TAP A -> packet port A -> decide(frame) -> packet port B -> TAP B   (and back)
//
// netplane reads the TAPs on its IOThread and moves frames in batches through shared-memory
// rings (no JavaScript call per frame). This program reads each ring through one reusable
// PacketBatch (offsets and lengths into the ring: no object per frame), looks at each frame
// in place (Ethernet, IPv4, TCP/UDP destination port), gives it a verdict (pass or DROP), and
// lets batch.forward() move the passed ones natively into the other port's ring and count
// the dropped ones. Change decide() to write your own filter (it may also edit the frame in
// place); the rest (opening the TAPs, wiring the ports, back-pressure, shutting down) stays
// as it is.
//
//   node --import tsx examples/port-filter.ts [--offloads] [--block-port N]... TAP_A TAP_B
//
// --offloads: the TAPs carry a 12-byte vnet header and take TCP segmentation and checksum
// offloads, so TCP crosses as frames of up to 64 KiB (one JavaScript look per 64 KiB instead
// of per 1500 bytes); every frame then starts with that header, and decide() looks past it.
//
// It creates the TAPs when they do not exist (that needs CAP_NET_ADMIN; existing TAPs owned
// by your user do not), prints "ready" once both directions forward, and on SIGINT/SIGTERM
// prints its counts as one JSON line on stderr and exits 0.
import { NativeDataPlane, PacketBatch, Tap, type PacketPort } from 'netplane';

/** What one direction did. */
export interface FilterCounts {
  forwarded: number;
  blocked: number;
}

/**
 * The verdict for one frame: true passes it. The frame is data[offset .. offset + length),
 * in the receive ring: read it (or edit it in place), do not keep a reference to it.
 */
export type Decide = (data: Uint8Array, offset: number, length: number) => boolean;

const ETH_IPV4 = 0x0800;
const IP_TCP = 6;
const IP_UDP = 17;

/**
 * A filter that drops IPv4 TCP and UDP frames sent to one of `ports`, and passes the rest.
 * `hdr`: the bytes of vnet header in front of each Ethernet frame (0 or 12 here).
 */
export function blockPorts(ports: readonly number[], hdr = 0): Decide {
  const blocked = new Uint8Array(65536);
  for (const p of ports) blocked[p] = 1;
  return (f, at, len) => {
    const ip = at + hdr + 14;
    const end = at + len;
    if (end < ip + 20 || ((f[ip - 2]! << 8) | f[ip - 1]!) !== ETH_IPV4) return true;
    const proto = f[ip + 9]!;
    if (proto !== IP_TCP && proto !== IP_UDP) return true;
    if (((f[ip + 6]! << 8) | f[ip + 7]!) & 0x1fff) return true; // a later fragment: no ports in it
    const l4 = ip + (f[ip]! & 0x0f) * 4;
    if (end < l4 + 4) return true;
    return blocked[(f[l4 + 2]! << 8) | f[l4 + 3]!] === 0;
  };
}

/** Bytes per packet-port ring (each direction). */
const kRingBytes = 1 << 20;

/** The vnet header length startFilter uses with offloads on. */
export const kVnetHdrLen = 12;

/**
 * Forward every batch `from` receives to `to`, dropping the frames decide() rejects. The
 * batch is one reusable object refilled in place; forward() copies the passed frames natively
 * from `from`'s ring into `to`'s and counts the dropped ones in `from.forwardCounts`. When
 * `to`'s ring is full the loop waits (and `from`'s ring fills, and the sending TAP stops
 * reading): nothing is lost.
 */
export async function pump(from: PacketPort, to: PacketPort, decide: Decide): Promise<void> {
  try {
    for await (const batch of from.batches()) {
      const { data, offsets, lengths, targets } = batch;
      for (let i = 0; i < batch.length; i++) {
        if (!decide(data, offsets[i]!, lengths[i]!)) targets[i] = PacketBatch.DROP;
      }
      if (!batch.forward(to)) await batch.forwardAsync(to);
    }
  } catch (e) {
    if (!from.closed && !to.closed) throw e; // a port closed while we waited: shutting down
  }
}

/** A direction's counts, from its receiving port. */
function countsOf(from: PacketPort): FilterCounts {
  const { forwarded, dropped } = from.forwardCounts;
  return { forwarded, blocked: dropped };
}

export interface FilterHandle {
  /** Counts per direction (blocked: what decide() dropped, and frames a shutdown cut off). */
  readonly aToB: FilterCounts;
  readonly bToA: FilterCounts;
  /** Engine counters per client (frames in/out, drops by reason). */
  stats(): ReturnType<NativeDataPlane['stats']>;
  /** Settles when both directions have ended: resolves after close(), rejects on an error. */
  done: Promise<void>;
  close(): Promise<void>;
}

/**
 * Open (or create) both TAPs, wire each to a packet port, and pump both directions. With
 * `offloads`, frames carry a kVnetHdrLen-byte vnet header (make decide() skip it).
 */
export function startFilter(ifA: string, ifB: string, decide: Decide, offloads = false): FilterHandle {
  const hdr = offloads ? kVnetHdrLen : 0;
  const open = (ifname: string): Tap => {
    const tap = Tap.open({ ifname, vnetHdr: offloads ? 'on' : 'off' });
    if (offloads) {
      tap.setVnetHdrLen(kVnetHdrLen);
      // What the kernel may hand us: checksum-less and TSO frames (we pass them on as they are).
      tap.setOffloads({ csum: true, tso4: true, tso6: true, ecn: true });
    }
    return tap;
  };
  const tapA = open(ifA);
  let tapB: Tap | undefined;
  const dp = new NativeDataPlane();
  try {
    tapB = open(ifB);
    // ioUring: bursts are read and written in batches, as a `-netdev tap` does by default.
    const tap = { kind: 'tap', queueIndex: 0, vnetHdrLen: hdr, ioUring: true } as const;
    dp.addClient({ ...tap, handle: 1, name: ifA, fd: tapA.fd(0) });
    dp.addClient({ ...tap, handle: 2, name: ifB, fd: tapB.fd(0) });
    const ring = { ringBytes: kRingBytes, vnetHdrLen: hdr as 0 | 12 };
    const portA = dp.createPort(`${ifA}-js`, ring);
    const portB = dp.createPort(`${ifB}-js`, ring);
    dp.connect(1, portA.handle);
    dp.connect(2, portB.handle);
    const loops = [pump(portA, portB, decide), pump(portB, portA, decide)];
    // The engine's wake-ups do not hold Node's event loop open: this does, until close().
    const keepAlive = setInterval(() => {}, 1 << 30);
    const b = tapB;
    let closing: Promise<void> | undefined;
    return {
      get aToB() {
        return countsOf(portA);
      },
      get bToA() {
        return countsOf(portB);
      },
      stats: () => dp.stats(),
      done: Promise.all(loops).then(() => undefined),
      close: () =>
        (closing ??= (async () => {
          clearInterval(keepAlive);
          dp.close(); // closes the ports: both loops end
          await Promise.allSettled(loops);
          await Promise.allSettled([tapA.close(), b.close()]);
        })()),
    };
  } catch (e) {
    dp.close();
    void tapA.close();
    void tapB?.close();
    throw e;
  }
}

function main(argv: string[]): void {
  const ports: number[] = [];
  const names: string[] = [];
  let offloads = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--offloads') offloads = true;
    else if (argv[i] === '--block-port') {
      const p = Number(argv[++i]);
      if (!Number.isInteger(p) || p < 0 || p > 65535) throw new Error(`--block-port needs 0..65535, got ${argv[i]}`);
      ports.push(p);
    } else names.push(argv[i]!);
  }
  if (names.length !== 2) throw new Error('usage: port-filter.ts [--offloads] [--block-port N]... TAP_A TAP_B');
  const hdr = offloads ? kVnetHdrLen : 0;
  const filter = startFilter(names[0]!, names[1]!, blockPorts(ports, hdr), offloads);
  const stop = (): void => {
    const report = { aToB: filter.aToB, bToA: filter.bToA, stats: filter.stats() };
    void filter.close().then(() => {
      console.error(JSON.stringify(report));
      process.exit(0);
    });
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  filter.done.catch((e: Error) => {
    console.error(`port-filter: ${e.message}`);
    process.exit(1);
  });
  console.log('ready');
}

if (require.main === module) {
  try {
    main(process.argv.slice(2));
  } catch (e) {
    console.error(`port-filter: ${(e as Error).message}`);
    process.exit(2);
  }
}
