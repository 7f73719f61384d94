// What the topology reports as text: HMP `info network` and the warnings QEMU prints after
// machine creation. Pure functions over the topology's state.
import type { Hub } from './hub';
import type { Client } from './net-client';

/** The state the reports read. */
export interface NetworkView {
  /** Newest first. */
  readonly hubs: readonly Hub[];
  /** Every live client in creation order. */
  readonly clients: readonly Client[];
  /** Lines QEMU prints after a client's line (its netdev's "filters:" list). */
  readonly after?: (c: Client) => readonly string[];
}

/** HMP `info network` in QEMU 7.2's format and order; lines end in '\n'. */
export function infoNetwork(v: NetworkView): string {
  const lines: string[] = [];
  // print_net_client(): the client's line, then its filters.
  const client = (prefix: string, nc: Client): void => {
    lines.push(prefix + clientLine(nc), ...(v.after?.(nc) ?? []));
  };
  for (const hub of v.hubs) {
    lines.push(`hub ${hub.id}`);
    for (const port of hub.portClients) {
      if (port.peer) client(` \\ ${port.name}: `, port.peer);
      else lines.push(` \\ ${port.name}`);
    }
  }
  const all = v.clients;
  for (const nc of all) {
    if (nc.type === 'hubport' || nc.peer?.type === 'hubport') continue;
    if (!nc.peer || nc.type === 'nic') {
      client('', nc);
      if (nc.peer) client(' \\ ', nc.peer);
    } else if (nc.peer.type !== 'nic' && all.indexOf(nc.peer) > all.indexOf(nc)) {
      // netplane's backend-to-backend link (QEMU cannot build one): shown like a NIC's pair.
      client('', nc);
      client(' \\ ', nc.peer);
    }
  }
  return lines.map((l) => l + '\n').join('');
}

function clientLine(nc: Client): string {
  return `${nc.name}: index=${nc.queueIndex},type=${nc.type},${nc.infoStr}`;
}

/** One kind of startup warning; the checks run in the order QEMU prints them. */
type StartupCheck = (v: NetworkView) => string[];

/** net_hub_check_clients(): ports without peers, hubs with only NICs or only host netdevs. */
const hubChecks: StartupCheck = (v) => {
  const out: string[] = [];
  for (const hub of v.hubs) {
    let hasNic = false;
    let hasHost = false;
    for (const port of hub.portClients) {
      if (!port.peer) {
        out.push(`hub port ${port.name} has no peer`);
        continue;
      }
      if (port.peer.type === 'nic') hasNic = true;
      else if (port.peer.type !== 'hubport') hasHost = true;
    }
    if (hasHost && !hasNic) out.push(`hub ${hub.id} with no nics`);
    if (hasNic && !hasHost) out.push(`hub ${hub.id} is not connected to host network`);
  }
  return out;
};

/** net_check_clients(): every client without a peer. */
const unpeeredChecks: StartupCheck = (v) =>
  v.clients.filter((nc) => !nc.peer).map((nc) => `${nc.type === 'nic' ? 'nic' : 'netdev'} ${nc.name} has no peer`);

const STARTUP_CHECKS: readonly StartupCheck[] = [hubChecks, unpeeredChecks];

/** The warnings QEMU prints after machine creation (section 1.9), without the prefix. */
export function startupWarnings(v: NetworkView): string[] {
  return STARTUP_CHECKS.flatMap((check) => check(v));
}
