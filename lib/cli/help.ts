// The help forms of QEMU's options, in QEMU 7.2's layout, listing what netplane builds:
//   -netdev help            Available netdev backend types: (from the netdev registry)
//   -device help            the device list; -device virtio-net-pci,help its properties
//   -object help            List of user creatable objects:; -object TYPE,help its options
//   -chardev help           Available chardev backend types:; -chardev socket,help
//   -nic/-net ...,model=help  Supported NIC models:
// Each returns the text to print on stdout (QEMU then exits 0), or undefined when the value
// does not ask for help. A help request for something netplane lacks is an error, as in QEMU.
import { OptionError } from '../options/errors';
import { DEVICE_DRIVERS, VIRTIO_NET_FEATURES } from '../options/device';
import { lastValues, parseKeyval } from '../options/keyval';
import { OBJECT_TYPES } from '../options/object';
import { netdevTypeNames } from '../topology/netdevs/registry';

/** QEMU's is_help_option(). */
export function isHelpWord(s: string | undefined): boolean {
  return s === 'help' || s === '?';
}

/** The first element and whether any later element is a bare help flag (qemu_opt_has_help_opt). */
function splitHelp(text: string): { first: string; help: boolean } {
  const parts = text.split(',');
  return { first: parts[0] ?? '', help: parts.slice(1).some(isHelpWord) };
}

function lines(ls: readonly string[]): string {
  return ls.map((l) => l + '\n').join('');
}

export function netdevHelp(text: string): string | undefined {
  if (!isHelpWord(splitHelp(text).first)) return undefined;
  return lines(['Available netdev backend types:', ...netdevTypeNames()]);
}

interface PropHelp {
  name: string;
  type: string;
  desc?: string;
  def?: string;
}

/** QEMU's property line: "  name=<type>", padded to 24 before " - desc", then the default. */
function propLine(p: PropHelp): string {
  let s = `  ${p.name}=<${p.type}>`;
  if (p.desc !== undefined) s = s.padEnd(24) + ` - ${p.desc}`;
  if (p.def !== undefined) s += ` (default: ${p.def})`;
  return s;
}

const FEATURES_OFF_BY_DEFAULT = new Set(['mq', 'rss', 'hash', 'guest_rsc_ext']);

/** The virtio-net-pci properties netplane takes, with QEMU 7.2's types, texts and defaults. */
function virtioNetProps(): PropHelp[] {
  const props: PropHelp[] = [
    { name: 'addr', type: 'int32', desc: 'Slot and optional function number, example: 06.0 or 06', def: '-1' },
    { name: 'duplex', type: 'str' },
    { name: 'host_mtu', type: 'uint16', desc: '', def: '0' },
    { name: 'mac', type: 'str', desc: 'Ethernet 6-byte MAC Address, example: 52:54:00:12:34:56' },
    { name: 'netdev', type: 'str', desc: 'ID of a netdev to use as a backend' },
    { name: 'rx_queue_size', type: 'uint16', desc: '', def: '256' },
    { name: 'speed', type: 'int32', desc: '', def: '-1' },
    { name: 'tx_queue_size', type: 'uint16', desc: '', def: '256' },
    { name: 'vectors', type: 'uint32', desc: '', def: '4294967295' },
    ...VIRTIO_NET_FEATURES.map((name): PropHelp => ({
      name,
      type: 'bool',
      desc: 'on/off',
      def: FEATURES_OFF_BY_DEFAULT.has(name) ? 'false' : 'true',
    })),
  ];
  return props.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export function deviceHelp(text: string): string | undefined {
  const { first, help } = splitHelp(text);
  if (isHelpWord(first) || (first.startsWith('driver=') && help && isHelpWord(first.slice(7)))) {
    return lines(['Network devices:', ...DEVICE_DRIVERS.map((d) => `name "${d}", bus PCI`)]);
  }
  if (!help) return undefined;
  const driver = first.startsWith('driver=') ? first.slice(7) : first;
  if (driver === 'virtio-net-pci') return lines([`${driver} options:`, ...virtioNetProps().map(propLine)]);
  throw new OptionError(`Device '${driver}' not found`);
}

const OBJECT_PROPS: Record<string, readonly string[]> = {
  iothread: ['poll-grow=<int>', 'poll-max-ns=<int>', 'poll-shrink=<int>'],
  'filter-dump': [
    'buffer-size=<size>',
    'file=<string>',
    'insert=<string>',
    'maxlen=<uint32>',
    'netdev=<string>',
    'position=<string>',
    'queue=<NetFilterDirection>',
    'status=<string>',
  ],
};

export function objectHelp(text: string): string | undefined {
  const { first, help } = splitHelp(text);
  const type = first.startsWith('qom-type=') ? first.slice(9) : first;
  if (isHelpWord(type)) {
    return lines(['List of user creatable objects:', ...[...OBJECT_TYPES].sort().map((t) => `  ${t}`)]);
  }
  if (!help) return undefined;
  const props = OBJECT_PROPS[type];
  if (!props) throw new OptionError(`Parameter 'qom-type' does not accept value '${type}'`);
  return lines([`${type} options:`, ...props.map((p) => `  ${p}`)]);
}

export function chardevHelp(text: string): string | undefined {
  const { first, help } = splitHelp(text);
  const backend = first.startsWith('backend=') ? first.slice(8) : first;
  // QEMU 7.2 prints a space after the colon here.
  if (isHelpWord(backend)) return lines(['Available chardev backend types: ', '  socket']);
  if (!help) return undefined;
  return lines([
    'chardev options:',
    '  backend=<str>',
    '  path=<str>',
    '  reconnect=<num>',
    '  server=<bool (on/off)>',
    '  wait=<bool (on/off)>',
  ]);
}

/** -nic/-net: model=help (or ?) anywhere in the value lists the NIC models. */
export function nicModelHelp(text: string): string | undefined {
  let model: string | undefined;
  try {
    model = lastValues(parseKeyval(text, 'type').entries).get('model');
  } catch {
    return undefined; // the option's own parser reports the syntax error
  }
  if (!isHelpWord(model)) return undefined;
  return lines(['Supported NIC models:', ...DEVICE_DRIVERS]);
}
