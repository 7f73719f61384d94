// Building -nic and -net the way QEMU 7.2 does (net_init_clients, then the machine's
// on-board NIC creation): every -nic in order, then every -net in order; each one without
// id= gets the generated id `#net<k><rr>` (k counts them, rr is random as in QEMU); a -net
// backend or a -net nic without netdev= takes the next port of hub 0 first. The NIC slots
// are realized afterwards, in slot order, before any -device: virtio-net-pci NICs named as
// id-less devices are (`virtio-net-pci.<k>`). A slot whose model netplane does not build is
// not created, and reported with QEMU's warning "requested NIC (..) was not created".
import { NetplaneError } from '../errors';
import { OTHER_QEMU_NIC_MODELS } from '../options/device';
import type { NetArg, NicArg, NicSlot } from '../options/legacy-net';
import type { NetdevOptions } from '../options/types';
import type { Topology } from '../topology/topology';

/** Most on-board NIC slots (QEMU's MAX_NICS). */
const MAX_NICS = 8;

interface PendingSlot {
  slot: NicSlot;
  /** Name for the warning: -net nic's id, 'anonymous' for -nic. */
  name: string;
  /** The client the NIC peers with: a netdev id or a hub 0 port name. */
  peer: string | undefined;
}

/** QEMU's id_generate(ID_NET): "#net", a running counter, two random digits. */
export class NetIdGenerator {
  #next = 0;

  next(): string {
    const rr = Math.floor(Math.random() * 100);
    return `#net${this.#next++}${String(rr).padStart(2, '0')}`;
  }
}

function unlocatedError(message: string): Error {
  const e = new NetplaneError('NETPLANE_INVALID_OPTION', message);
  Object.defineProperty(e, 'located', { value: false, enumerable: false });
  return e;
}

export class LegacyNet {
  readonly #slots: PendingSlot[] = [];
  readonly #ids = new NetIdGenerator();
  readonly #warnings: string[] = [];

  constructor(private readonly topology: Topology) {}

  #takeSlot(message: string): void {
    if (this.#slots.length >= MAX_NICS) throw new NetplaneError('NETPLANE_INVALID_OPTION', message);
  }

  /** -nic: the netdev now, the NIC slot for later. */
  addNic(arg: NicArg): void {
    if (arg.kind === 'none') return;
    this.#takeSlot('no more on-board/default NIC slots available');
    const netdev: NetdevOptions = { ...arg.netdev, id: arg.id ?? this.#ids.next() };
    this.topology.addNetdev(netdev, { via: 'cli', legacy: 'nic' });
    this.#slots.push({ slot: arg.slot, name: 'anonymous', peer: netdev.id });
  }

  /** -net: a hub 0 port (unless a nic names its netdev), then the backend or the NIC slot. */
  addNet(arg: NetArg): void {
    if (arg.kind === 'none') return;
    const id = arg.id ?? this.#ids.next();
    if (arg.kind === 'nic') {
      if (arg.netdev !== undefined && !this.topology.clients.some((c) => c.name === arg.netdev && c.type !== 'nic'))
        throw new NetplaneError('NETPLANE_NOT_FOUND', `netdev '${arg.netdev}' not found`);
      this.#takeSlot('too many NICs');
      const peer = arg.netdev ?? this.topology.addHubPort(0).name;
      this.#slots.push({ slot: arg.slot, name: id, peer });
      return;
    }
    const netdev: NetdevOptions = { ...arg.netdev, id };
    // QEMU takes the hub port first; nothing else numbers ports in between, so peering the
    // port afterwards gives it the same number.
    this.topology.addNetdev(netdev, { via: 'cli', legacy: 'net' });
    this.topology.addHubPort(0, { peer: netdev.id });
  }

  /** The machine's NIC creation: one virtio-net-pci per slot whose model netplane builds. */
  realizeNics(): void {
    for (const s of this.#slots) {
      const model = s.slot.model;
      if (model !== 'virtio-net-pci') {
        if (!OTHER_QEMU_NIC_MODELS.has(model) && model !== 'pvrdma')
          throw unlocatedError(`Unsupported NIC model: ${model}`);
        this.#warnings.push(
          `requested NIC (${s.name}, model ${model}) was not created (not supported by this machine?)`,
        );
        continue;
      }
      this.topology.addDevice(
        {
          driver: 'virtio-net-pci',
          ...(s.peer !== undefined ? { netdev: s.peer } : {}),
          ...(s.slot.mac !== undefined ? { mac: s.slot.mac } : {}),
          ...(s.slot.addr !== undefined ? { addr: s.slot.addr } : {}),
          ...(s.slot.vectors !== undefined ? { vectors: s.slot.vectors } : {}),
          features: {},
        },
        { via: 'cli' },
      );
    }
  }

  /** QEMU's last startup warnings (after net_check_clients' own). */
  get warnings(): readonly string[] {
    return this.#warnings;
  }
}
