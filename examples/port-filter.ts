// A firewall in TypeScript between two TAPs: every frame crosses JavaScript.
//
//   TAP A -> packet port A -> decide(frame) -> packet port B -> TAP B   (and back)
//
// netplane reads the TAPs on its IOThread and moves frames in batches through shared-memory
// rings (no JavaScript call per frame). This program looks at each frame (Ethernet, IPv4,
// TCP/UDP destination port), forwards it or drops it, and counts both. Change decide() to
// write your own filter; the rest (opening the TAPs, wiring the ports, back-pressure,
// shutting down) stays as it is.
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
import { NativeDataPlane, Tap, type PacketPort } from 'netplane';

/** What one direction did. */
export interface FilterCounts {
  forwarded: number;
  blocked: number;
}

/** The verdict for one frame (a view into the receive ring: read it, do not keep it). */
export type Decide = (frame: Uint8Array) => boolean;

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
  const ip = hdr + 14;
  return (f) => {
    if (f.length < ip + 20 || ((f[hdr + 12]! << 8) | f[hdr + 13]!) !== ETH_IPV4) return true;
    const proto = f[ip + 9]!;
    if (proto !== IP_TCP && proto !== IP_UDP) return true;
    if (((f[ip + 6]! << 8) | f[ip + 7]!) & 0x1fff) return true; // a later fragment: no ports in it
    const l4 = ip + (f[ip]! & 0x0f) * 4;
    if (f.length < l4 + 4) return true;
    return blocked[(f[l4 + 2]! << 8) | f[l4 + 3]!] === 0;
  };
}

/** Bytes per packet-port ring (each direction). */
const kRingBytes = 1 << 20;

/** The vnet header length startFilter uses with offloads on. */
export const kVnetHdrLen = 12;

/**
 * Forward every batch `from` receives to `to`, keeping the frames decide() passes. The
 * frames are views into `from`'s ring, valid until the loop asks for the next batch, so
 * they are copied once, into `to`'s ring, by send(). When `to`'s ring is full the loop
 * waits (and `from`'s ring fills, and the sending TAP stops reading): nothing is lost.
 * `ringBytes`: the size of `to`'s ring; frames go out in chunks of at most half of it.
 */
export async function pump(
  from: PacketPort,
  to: PacketPort,
  decide: Decide,
  counts: FilterCounts,
  ringBytes: number,
): Promise<void> {
  const out: Uint8Array[] = [];
  const chunk = ringBytes / 2;
  const flush = async (): Promise<void> => {
    try {
      if (out.length > 0 && !to.send(out)) await to.sendAsync(out);
      counts.forwarded += out.length;
    } catch (e) {
      if (!to.closed) throw e; // closed while we waited for room: shutting down, not an error
    }
    out.length = 0;
  };
  for await (const batch of from) {
    let bytes = 0;
    for (let i = 0; i < batch.length; i++) {
      const f = batch[i]!;
      if (!decide(f)) {
        counts.blocked++;
        continue;
      }
      bytes += f.length + 16;
      if (bytes > chunk) {
        await flush();
        bytes = f.length + 16;
      }
      out.push(f);
    }
    await flush();
  }
}

export interface FilterHandle {
  /** Counts per direction. */
  aToB: FilterCounts;
  bToA: FilterCounts;
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
    dp.addClient({ handle: 1, kind: 'tap', name: ifA, queueIndex: 0, fd: tapA.fd(0), vnetHdrLen: hdr });
    dp.addClient({ handle: 2, kind: 'tap', name: ifB, queueIndex: 0, fd: tapB.fd(0), vnetHdrLen: hdr });
    const ring = { ringBytes: kRingBytes, vnetHdrLen: hdr as 0 | 12 };
    const portA = dp.createPort(`${ifA}-js`, ring);
    const portB = dp.createPort(`${ifB}-js`, ring);
    dp.connect(1, portA.handle);
    dp.connect(2, portB.handle);
    const aToB: FilterCounts = { forwarded: 0, blocked: 0 };
    const bToA: FilterCounts = { forwarded: 0, blocked: 0 };
    const loops = [pump(portA, portB, decide, aToB, kRingBytes), pump(portB, portA, decide, bToA, kRingBytes)];
    // The engine's wake-ups do not hold Node's event loop open: this does, until close().
    const keepAlive = setInterval(() => {}, 1 << 30);
    const b = tapB;
    let closing: Promise<void> | undefined;
    return {
      aToB,
      bToA,
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
