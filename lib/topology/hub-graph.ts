// The hubs of one topology and how their ports are wired: the list (newest first, as QEMU
// lists them), port attachment, and the loop checks that keep a frame from circling forever.
import { NetplaneError } from '../errors';
import type { DataPlane } from './dataplane';
import type { Hub } from './hub';
import { invalid } from './internal';
import { peerClients, type Client, type ClientRegistry } from './net-client';

/** A hub id is an int32 (QEMU's hubid). */
export function checkHubId(id: number): void {
  if (!Number.isInteger(id) || id < -0x80000000 || id > 0x7fffffff) throw invalid("Parameter 'hubid' expects int32");
}

export class HubGraph {
  readonly #hubs: Hub[] = []; // newest first
  readonly #reg: ClientRegistry;
  readonly #dp: DataPlane | undefined;
  readonly #newHub: (id: number) => Hub;
  readonly #holdTap: (target: Client) => void;

  /** `holdTap` runs when a port is peered with `target` (see Topology's hubHoldsTap). */
  constructor(
    reg: ClientRegistry,
    dp: DataPlane | undefined,
    newHub: (id: number) => Hub,
    holdTap: (target: Client) => void,
  ) {
    this.#reg = reg;
    this.#dp = dp;
    this.#newHub = newHub;
    this.#holdTap = holdTap;
  }

  /** Hubs, newest first. */
  get all(): readonly Hub[] {
    return this.#hubs;
  }

  find(id: number): Hub | undefined {
    return this.#hubs.find((h) => h.id === id);
  }

  /** The hub with that id, created (and listed first) on first use. */
  obtain(id: number): Hub {
    let hub = this.find(id);
    if (!hub) {
      hub = this.#newHub(id);
      this.#hubs.unshift(hub);
    }
    return hub;
  }

  remove(hub: Hub): void {
    const i = this.#hubs.indexOf(hub);
    if (i >= 0) this.#hubs.splice(i, 1);
  }

  /** The client a hub port links to: the first one of that netdev, which must be unpeered. */
  peerFor(netdev: string): Client {
    const target = this.#reg.findNetdev(netdev);
    if (!target) throw invalid(`netdev '${netdev}' not found`);
    // QEMU asserts here (a client is peered at most once).
    if (target.peer) {
      throw new NetplaneError(
        'NETPLANE_IN_USE',
        `netdev '${netdev}' already has a peer (${target.peer.name}); a hub port needs an unpeered netdev`,
      );
    }
    return target;
  }

  /** Add a hub port to the data plane and the hub, peered with `target` if given. */
  attachPort(hub: Hub, port: Client, target: Client | undefined): void {
    this.#dp?.addClient({ handle: port.handle, kind: 'hubport', name: port.name, queueIndex: 0, hubId: hub.id });
    if (target) {
      peerClients(port, target);
      this.#dp?.connect(port.handle, target.handle);
      this.#holdTap(target);
    }
    this.#reg.add(port);
    hub.addPort(port);
  }

  /** The hub a hub port belongs to. */
  hubOf(c: Client): Hub | undefined {
    return c.type === 'hubport' ? this.#hubs.find((h) => h.portClients.includes(c)) : undefined;
  }

  /**
   * A hub sends every frame out of all its other ports. Peering a port of hub `hubId` with
   * a port of the same hub, or of a hub already connected to it, closes a loop: a frame
   * would circle forever (QEMU accepts this and hangs or crashes). Refuse it.
   */
  checkLoop(portName: string, hubId: number, target: Client): void {
    const targetHub = this.hubOf(target);
    if (!targetHub) return;
    if (targetHub.id === hubId) {
      throw invalid(
        `hub port '${portName}' cannot be peered with '${target.name}': both are ports of hub ${hubId}, so frames would loop through the hub forever`,
      );
    }
    const hub = this.find(hubId);
    if (hub && this.#connected(targetHub).has(hub)) {
      throw invalid(
        `hub port '${portName}' (hub ${hubId}) cannot be peered with '${target.name}' (hub ${targetHub.id}): the two hubs are already connected, so frames would loop between them forever`,
      );
    }
  }

  /** Hubs reachable from `start` through hub ports peered with ports of other hubs. */
  #connected(start: Hub): Set<Hub> {
    const seen = new Set<Hub>([start]);
    const todo = [start];
    for (let hub = todo.pop(); hub; hub = todo.pop()) {
      for (const port of hub.portClients) {
        const next = port.peer ? this.hubOf(port.peer) : undefined;
        if (next && !seen.has(next)) {
          seen.add(next);
          todo.push(next);
        }
      }
    }
    return seen;
  }
}
