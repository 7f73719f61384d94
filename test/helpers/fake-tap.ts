// Fakes for topology unit tests: TAPs that record what the topology asked of them, and a
// data plane that records its hook calls and checks their consistency. No addon needed.
import type { TapOffloads, TapOpenOptions } from '../../lib/tap';
import type { ClientDescriptor, DataPlane } from '../../lib/topology/dataplane';
import type { TapLike } from '../../lib/topology/netdev';

export interface FakeTapCaps {
  hasVnetHdr?: boolean;
  hasUfo?: boolean;
  hasUso?: boolean;
}

export class FakeTap implements TapLike {
  readonly ifname: string;
  readonly queues: number;
  readonly hasVnetHdr: boolean;
  readonly hasUfo: boolean;
  readonly hasUso: boolean;
  vnetHdrLen: number;
  offloads: TapOffloads = {};
  readonly enabled: boolean[];
  closed = false;
  /** Every control call in order, e.g. 'hdr 12', 'queue 1 off', 'offloads csum,tso4'. */
  readonly log: string[] = [];

  constructor(
    ifname: string,
    queues: number,
    caps: FakeTapCaps,
    readonly fds: number[],
  ) {
    this.ifname = ifname;
    this.queues = queues;
    this.hasVnetHdr = caps.hasVnetHdr ?? true;
    this.hasUfo = this.hasVnetHdr && (caps.hasUfo ?? true);
    this.hasUso = this.hasVnetHdr && (caps.hasUso ?? false);
    this.vnetHdrLen = this.hasVnetHdr ? 10 : 0;
    this.enabled = new Array<boolean>(queues).fill(true);
  }

  fd(q: number): number {
    this.#live();
    return this.fds[q];
  }
  queueEnabled(q: number): boolean {
    return this.enabled[q];
  }
  setVnetHdrLen(len: 10 | 12 | 20): void {
    this.#live();
    this.vnetHdrLen = len;
    this.log.push(`hdr ${len}`);
  }
  setOffloads(o: TapOffloads): void {
    this.#live();
    this.offloads = { ...o };
    const on = Object.entries(o)
      .filter(([, v]) => v)
      .map(([k]) => k);
    this.log.push(`offloads ${on.join(',') || '-'}`);
  }
  setQueueEnabled(q: number, enabled: boolean): void {
    this.#live();
    if (this.enabled[q] === enabled) return;
    this.enabled[q] = enabled;
    this.log.push(`queue ${q} ${enabled ? 'on' : 'off'}`);
  }
  async close(): Promise<void> {
    this.closed = true;
  }
  get numDisabled(): number {
    return this.enabled.filter((e) => !e).length;
  }
  #live(): void {
    if (this.closed) throw new Error(`tap ${this.ifname} is closed`);
  }
}

/** openTap/adoptTap for a Topology, remembering every TAP it made. */
export function fakeTaps(caps: FakeTapCaps = {}) {
  const taps: FakeTap[] = [];
  let nextFd = 100;
  let nextName = 0;
  return {
    taps,
    openTap(o: TapOpenOptions): FakeTap {
      if (o.vnetHdr === 'on' && caps.hasVnetHdr === false) {
        throw new Error('vnet_hdr=1 requested, but no kernel support for IFF_VNET_HDR available');
      }
      const queues = o.queues ?? 1;
      const fds = Array.from({ length: queues }, () => nextFd++);
      const t = new FakeTap(
        o.ifname || `tap${nextName++}`,
        queues,
        { ...caps, hasVnetHdr: o.vnetHdr !== 'off' && (caps.hasVnetHdr ?? true) },
        fds,
      );
      taps.push(t);
      return t;
    },
    adoptTap(fds: number[]): FakeTap {
      const t = new FakeTap(
        `tap${nextName++}`,
        fds.length,
        caps,
        fds.map((f) => f + 1000),
      );
      taps.push(t);
      return t;
    },
  };
}

/** A data plane that records calls as strings and keeps a peer map to catch bad sequences. */
export class RecordingDataPlane implements DataPlane {
  readonly calls: string[] = [];
  readonly clients = new Map<number, ClientDescriptor>();
  readonly peers = new Map<number, number>();
  readonly linkDown = new Map<number, boolean>();
  readonly raw: Array<{ handle: number; frame: Uint8Array }> = [];

  addClient(c: ClientDescriptor): void {
    if (this.clients.has(c.handle)) throw new Error(`handle ${c.handle} added twice`);
    this.clients.set(c.handle, { ...c });
    const fd = c.kind === 'tap' ? ` fd${c.fd}` : '';
    const hdr = (c.kind === 'tap' || c.kind === 'port') && c.vnetHdrLen !== undefined ? ` hdr${c.vnetHdrLen}` : '';
    this.calls.push(`add ${c.kind} ${c.name} q${c.queueIndex}${fd}${hdr}`);
  }
  removeClient(h: number): void {
    const c = this.#get(h);
    this.clients.delete(h);
    const p = this.peers.get(h);
    if (p !== undefined) {
      this.peers.delete(p);
      this.peers.delete(h);
    }
    this.calls.push(`remove ${c.name}`);
  }
  connect(a: number, b: number): void {
    const ca = this.#get(a);
    const cb = this.#get(b);
    if (this.peers.has(a) || this.peers.has(b)) throw new Error('connect: already peered');
    this.peers.set(a, b);
    this.peers.set(b, a);
    this.calls.push(`connect ${ca.name} ${cb.name}`);
  }
  setLinkDown(h: number, down: boolean): void {
    this.linkDown.set(h, down);
    this.calls.push(`link ${this.#get(h).name} ${down ? 'down' : 'up'}`);
  }
  setVnetHdrLen(h: number, len: number): void {
    this.calls.push(`hdr ${this.#get(h).name} ${len}`);
  }
  setQueueEnabled(h: number, enabled: boolean): void {
    this.calls.push(`queue ${this.#get(h).name} ${enabled ? 'on' : 'off'}`);
  }
  sendRaw(handle: number, frame: Uint8Array): void {
    this.raw.push({ handle, frame });
  }
  #get(h: number): ClientDescriptor {
    const c = this.clients.get(h);
    if (!c) throw new Error(`unknown handle ${h}`);
    return c;
  }
}
