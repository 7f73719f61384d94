// HMP's user-network commands, as QEMU 7.2's net/slirp.c prints them: `info usernet`,
// `hostfwd_add [netdev_id] rule`, `hostfwd_remove [netdev_id] rule`. Without a netdev id
// they act on the first user netdev (QEMU's slirp_stacks head).
import type { Topology } from '../topology';
import type { UserStack } from '../topology/netdevs/user';

function stacks(topo: Topology): UserStack[] {
  return [...topo.netdevs.values()].flatMap((n) => (n.user !== undefined && !n.deleted ? [n.user] : []));
}

/** QEMU's slirp_lookup(): the stack, or the monitor line saying why there is none. */
function lookup(topo: Topology, id: string | undefined): UserStack | string {
  if (id !== undefined) {
    const netdev = topo.netdevs.get(id);
    if (netdev === undefined || netdev.deleted) return `unrecognized netdev id '${id}'\n`;
    if (netdev.user === undefined) return 'invalid device specified\n';
    return netdev.user;
  }
  return stacks(topo)[0] ?? 'user mode network stack not in use\n';
}

/** `info usernet`: per stack "Hub <id> (<name>):" (id -1 unless it hangs off a hub port), then libslirp's table. */
export function infoUsernet(topo: Topology): string {
  return stacks(topo)
    .map((s) => {
      const peer = s.client.peer;
      const hub = peer?.type === 'hubport' ? topo.hubs.find((h) => h.portClients.includes(peer)) : undefined;
      return `Hub ${hub?.id ?? -1} (${s.id}):\n${s.connectionInfo().replace(/\r\n/g, '\n')}`;
    })
    .join('');
}

/** Two-argument commands: `cmd id rule` or `cmd rule`. */
function split(arg1: string, arg2: string | undefined): [string | undefined, string] {
  return arg2 !== undefined ? [arg1, arg2] : [undefined, arg1];
}

export function hmpHostfwdAdd(topo: Topology, arg1: string, arg2: string | undefined): string {
  const [id, rule] = split(arg1, arg2);
  const s = lookup(topo, id);
  if (typeof s === 'string') return s;
  try {
    s.addHostFwd(rule);
  } catch (e) {
    return `${(e as Error).message}\n`; // error_report_err: the message alone in the monitor
  }
  return '';
}

export function hmpHostfwdRemove(topo: Topology, arg1: string, arg2: string | undefined): string {
  const [id, rule] = split(arg1, arg2);
  const s = lookup(topo, id);
  if (typeof s === 'string') return s;
  return s.removeHostFwd(rule);
}
