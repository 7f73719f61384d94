// -nic and the legacy -net, parsed with QEMU 7.2's rules (net/net.c net_param_nic,
// net_init_nic, net_client_init1):
//
//   -nic TYPE[,id=ID][,model=M][,mac=MAC][,<netdev TYPE options>]   (TYPE default: user)
//   -nic none
//   -net nic[,id=ID][,netdev=ND][,macaddr=MAC][,model=M][,addr=A][,vectors=N]
//   -net TYPE[,id=ID][,<netdev TYPE options>]                        (joins hub 0)
//   -net none
//
// A -nic is a netdev (named ID, or a generated `#net<k><rr>`) plus an on-board NIC slot peered
// with it. A -net backend is a netdev that is not a netdev for netdev_del, peered with a new
// port of hub 0; a -net nic without netdev= gets a new hub 0 port as its peer. The ids are
// generated when the topology is built (lib/cli/legacy-net.ts), in QEMU's order.
import { canonicalMac } from './device';
import { OptionError, checkIdentifier, type ParseContext } from './errors';
import { formatKeyval, parseKeyval, type KeyvalEntry } from './keyval';
import { parseNetdevArg } from './netdev';
import { parseOptsUint } from './scalars';
import type { NetdevOptions } from './types';

/** The model an on-board NIC gets without model= (QEMU's pc machine says e1000; netplane
 *  builds virtio-net-pci only). */
export const DEFAULT_NIC_MODEL = 'virtio-net-pci';

/** An on-board NIC slot (QEMU's NICInfo in nd_table). */
export interface NicSlot {
  /** model= as given, or DEFAULT_NIC_MODEL. */
  model: string;
  /** Canonical MAC, if given. */
  mac?: string;
  addr?: string;
  vectors?: number;
}

export type NicArg =
  | { kind: 'none' }
  | {
      kind: 'nic';
      /** The netdev to create; its id is `id`, or generated at build time when absent. */
      netdev: NetdevOptions;
      id?: string;
      slot: NicSlot;
    };

export type NetArg =
  | { kind: 'none' }
  /** A NIC slot peered with netdev `netdev`, or with a new hub 0 port. `id` names the slot. */
  | { kind: 'nic'; id?: string; netdev?: string; slot: NicSlot }
  /** A backend on a new hub 0 port. */
  | { kind: 'backend'; id?: string; netdev: NetdevOptions };

/** An id that passes the netdev parser; replaced by the real (maybe generated) one. */
const PLACEHOLDER_ID = 'np-legacy-net';

/** Rebuild `TYPE,id=..,rest` and read it with the -netdev parser. */
function netdevOf(type: string, rest: readonly KeyvalEntry[], id: string | undefined, ctx?: ParseContext) {
  const text = formatKeyval([['id', PLACEHOLDER_ID], ...rest.map((e): [string, string] => [e.key, e.value])], {
    key: 'type',
    value: type,
  });
  const netdev = parseNetdevArg(text, ctx);
  if (id !== undefined) netdev.id = id;
  return netdev;
}

function macOf(text: string, multicastText: string): string {
  const mac = canonicalMac(text);
  if (mac === undefined) throw new OptionError('invalid syntax for ethernet address');
  if ((parseInt(mac.slice(0, 2), 16) & 1) !== 0) throw new OptionError(multicastText);
  return mac;
}

/** The last value of each key, and the entries without the keys in `take`. */
function split(entries: readonly KeyvalEntry[], take: readonly string[]) {
  const taken = new Map<string, string>();
  const rest: KeyvalEntry[] = [];
  for (const e of entries) {
    if (take.includes(e.key)) taken.set(e.key, e.value);
    else rest.push(e);
  }
  return { taken, rest };
}

export function parseNicArg(text: string, ctx?: ParseContext): NicArg {
  const kv = parseKeyval(text, 'type', ctx);
  if (kv.id !== undefined) checkIdentifier(kv.id);
  const { taken, rest } = split(kv.entries, ['type', 'model', 'mac']);
  const type = taken.get('type') ?? 'user';
  if (type === 'none') return { kind: 'none' };
  const slot: NicSlot = { model: taken.get('model') ?? DEFAULT_NIC_MODEL };
  const mac = taken.get('mac');
  if (mac !== undefined) slot.mac = macOf(mac, 'NIC cannot have multicast MAC address');
  const netdev = netdevOf(type, rest, kv.id, ctx);
  return { kind: 'nic', netdev, ...(kv.id !== undefined ? { id: kv.id } : {}), slot };
}

const NET_NIC_KEYS = ['type', 'netdev', 'macaddr', 'model', 'addr', 'vectors'];

export function parseNetArg(text: string, ctx?: ParseContext): NetArg {
  const kv = parseKeyval(text, 'type', ctx);
  if (kv.id !== undefined) checkIdentifier(kv.id);
  const type = kv.entries.find((e) => e.key === 'type')?.value;
  if (type === undefined) throw new OptionError("Parameter 'type' is missing");
  const id = kv.id !== undefined ? { id: kv.id } : {};
  if (type === 'none') return { kind: 'none' };
  if (type === 'nic') {
    const bad = kv.entries.find((e) => !NET_NIC_KEYS.includes(e.key));
    if (bad) throw new OptionError(`Invalid parameter '${bad.key}'`);
    const { taken } = split(kv.entries, NET_NIC_KEYS);
    const slot: NicSlot = { model: taken.get('model') ?? DEFAULT_NIC_MODEL };
    const vectors = taken.get('vectors');
    if (vectors !== undefined) {
      const n = parseOptsUint('vectors', vectors, 'uint32');
      if (n > 0x7ffffff) throw new OptionError(`invalid # of vectors: ${n}`);
      slot.vectors = n;
    }
    const addr = taken.get('addr');
    if (addr !== undefined) slot.addr = addr;
    const mac = taken.get('macaddr');
    if (mac !== undefined) slot.mac = macOf(mac, 'NIC cannot have multicast MAC address (odd 1st byte)');
    const netdev = taken.get('netdev');
    return { kind: 'nic', ...id, ...(netdev !== undefined ? { netdev } : {}), slot };
  }
  if (type === 'hubport') throw new OptionError("network backend 'hubport' is only supported with -netdev/-nic");
  const netdev = netdevOf(
    type,
    kv.entries.filter((e) => e.key !== 'type'),
    kv.id,
    ctx,
  );
  if (netdev.type === 'tap' && (netdev.queues !== undefined || netdev.fds !== undefined || netdev.vhostfds))
    throw new OptionError('Multiqueue tap cannot be used with hubs');
  return { kind: 'backend', ...id, netdev };
}
