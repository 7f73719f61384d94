// The benchmark topology: TAP A in namespace A, TAP B in namespace B, the forwarder under
// test holding both TAP fds in the root namespace. The forwarder creates the TAPs by name;
// the test bed then moves them into the namespaces (the fds keep working), addresses them
// inside a private /24 and pins the neighbour entries so no ARP crosses during a run.
// With link 'veth' the test bed itself joins A and B with a veth pair of the same names and
// roles instead: the kernel's own path, with no forwarder in between (the ceiling).
import * as fs from 'node:fs';
import { NetNs, deleteLink, npName, sh } from '../../test/helpers/netns';
import { start, stop, sleep, type Proc } from './proc';

export const kAddrA = '10.77.0.1';
export const kAddrB = '10.77.0.2';
export const kMacA = '02:77:00:00:00:01';
export const kMacB = '02:77:00:00:00:02';

/** What joins namespace A and B: TAPs a forwarder holds, or a veth pair (no forwarder). */
export type LinkKind = 'tap' | 'veth';

export interface IfCounters {
  rxPackets: number;
  rxDropped: number;
  txPackets: number;
  txDropped: number;
  rxBytes: number;
  txBytes: number;
}

// Interfaces named here are deleted on exit if something left them in the root namespace.
const linkNames = new Set<string>();
const nsNames = new Set<string>();
process.on('exit', () => {
  for (const name of linkNames) if (fs.existsSync(`/sys/class/net/${name}`)) deleteLink(name);
});

export class TestBed {
  readonly ifA = npName('a');
  readonly ifB = npName('b');
  readonly nsA: NetNs;
  readonly nsB: NetNs;
  // A sleeping process inside each namespace: /proc/<pid>/net/dev gives that namespace's
  // interface counters (the same numbers as /sys/class/net/X/statistics there) without
  // spawning a reader per sample.
  #anchors: Proc[] = [];

  private constructor(readonly link: LinkKind) {
    linkNames.add(this.ifA);
    linkNames.add(this.ifB);
    this.nsA = new NetNs('A');
    nsNames.add(this.nsA.name);
    try {
      this.nsB = new NetNs('B');
    } catch (e) {
      this.nsA.dispose();
      throw e;
    }
    nsNames.add(this.nsB.name);
  }

  static async create(link: LinkKind = 'tap'): Promise<TestBed> {
    const bed = new TestBed(link);
    try {
      // Created in the root namespace, where a forwarder would create its TAPs: wire() then
      // moves the two ends exactly as it moves TAPs.
      if (link === 'veth') sh('ip', ['link', 'add', bed.ifA, 'type', 'veth', 'peer', 'name', bed.ifB]);
      for (const ns of [bed.nsA, bed.nsB]) {
        // No IPv6: its router solicitations and MLD reports would cross the forwarder.
        ns.disableIpv6();
        const anchor = start(`anchor ${ns.name}`, 'ip', ['netns', 'exec', ns.name, 'sleep', '86400']);
        bed.#anchors.push(anchor);
      }
      for (const anchor of bed.#anchors) await waitForComm(anchor, 'sleep');
      return bed;
    } catch (e) {
      await bed.dispose();
      throw e;
    }
  }

  /** Wait until the forwarder has created the TAPs (both, or only A) in the root namespace. */
  async waitForTaps(forwarder: Proc, limitMs: number, onlyA = false): Promise<void> {
    const names = onlyA ? [this.ifA] : [this.ifA, this.ifB];
    const deadline = Date.now() + limitMs;
    while (!names.every((n) => fs.existsSync(`/sys/class/net/${n}`))) {
      if (forwarder.hasExited()) throw new Error(`exited before creating ${names.join(' and ')}`);
      if (Date.now() > deadline) throw new Error(`did not create ${names.join(' and ')} within ${limitMs} ms`);
      await sleep(20);
    }
  }

  /** Move the TAPs (both, or only A) into their namespaces, address them, pin the neighbours. */
  wire(onlyA = false): void {
    this.nsA.adopt(this.ifA, `${kAddrA}/24`, kMacA);
    this.nsA.exec('ip', ['neigh', 'replace', kAddrB, 'lladdr', kMacB, 'dev', this.ifA, 'nud', 'permanent']);
    if (onlyA) return;
    this.nsB.adopt(this.ifB, `${kAddrB}/24`, kMacB);
    this.nsB.exec('ip', ['neigh', 'replace', kAddrA, 'lladdr', kMacA, 'dev', this.ifB, 'nud', 'permanent']);
  }

  /** True when one ping crosses A -> B -> A (a few tries). */
  async pingOk(tries = 4): Promise<boolean> {
    for (let i = 0; i < tries; i++) {
      const out = this.nsA.exec('ping', ['-c', '1', '-W', '1', kAddrB], { allowFail: true });
      if (/ 1 received/.test(out)) return true;
      await sleep(200);
    }
    return false;
  }

  countersA(): IfCounters {
    return readCounters(this.#anchors[0]!, this.ifA);
  }

  countersB(): IfCounters {
    return readCounters(this.#anchors[1]!, this.ifB);
  }

  /** Offloads as the namespace's stack sees them (ethtool -k), for the run record. */
  offloads(): string {
    const out = this.nsA.exec('ethtool', ['-k', this.ifA], { allowFail: true });
    const on = out
      .split('\n')
      .filter((l) => /^(tx-checksumming|tcp-segmentation-offload|generic-segmentation-offload|scatter-gather):/.test(l))
      .map((l) => l.replace(/\s+/g, ' ').trim());
    return on.join(', ');
  }

  async dispose(): Promise<void> {
    for (const anchor of this.#anchors) await stop(anchor, 'SIGKILL', 500);
    this.#anchors = [];
    this.nsA.dispose();
    this.nsB.dispose();
    // A veth end inside a namespace dies with it (and takes its peer along); one still in the
    // root namespace (wire() never ran) is deleted here.
    for (const name of [this.ifA, this.ifB]) {
      if (fs.existsSync(`/sys/class/net/${name}`)) deleteLink(name);
    }
  }
}

async function waitForComm(p: Proc, comm: string): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    let current = '';
    try {
      current = fs.readFileSync(`/proc/${p.pid}/comm`, 'utf8').trim();
    } catch {
      /* not there yet or gone */
    }
    if (current === comm) return;
    if (p.hasExited() || Date.now() > deadline) throw new Error(`namespace anchor did not start (${p.stderr()})`);
    await sleep(10);
  }
}

function readCounters(anchor: Proc, ifname: string): IfCounters {
  const text = fs.readFileSync(`/proc/${anchor.pid}/net/dev`, 'utf8');
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0 || line.slice(0, colon).trim() !== ifname) continue;
    // rx: bytes packets errs drop fifo frame compressed multicast, tx: bytes packets errs drop ...
    const f = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
      .map(Number);
    return { rxBytes: f[0]!, rxPackets: f[1]!, rxDropped: f[3]!, txBytes: f[8]!, txPackets: f[9]!, txDropped: f[11]! };
  }
  throw new Error(`interface ${ifname} not found in its namespace (did the forwarder close it?)`);
}

/** Namespaces and root-namespace links this process created that still exist. */
export function leftovers(): string[] {
  const liveNs = new Set(
    sh('ip', ['netns', 'list'], { allowFail: true })
      .split('\n')
      .map((l) => l.split(' ')[0]!),
  );
  return [
    ...[...nsNames].filter((n) => liveNs.has(n)).map((n) => `netns ${n}`),
    ...[...linkNames].filter((l) => fs.existsSync(`/sys/class/net/${l}`)).map((l) => `link ${l}`),
  ];
}
