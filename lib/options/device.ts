// -device virtio-net-pci (key=value or JSON) -> VirtioNetDeviceOptions, with QEMU 7.2's
// property errors (qdev string/QObject input) and its realize-time checks, in QEMU's order
// (properties first, then duplex, speed, rx_queue_size, tx_queue_size).

import { OptionError, checkIdentifier, type ParseContext } from './errors';
import { leftoverKeys, readFields, type FieldSource, type FieldSpec } from './fields';
import { JsonFloat, jsonMembers, parseQemuJson } from './json';
import { lastValues, parseKeyval } from './keyval';
import { jsonInteger } from './scalars';
import type { DeviceOptions, VirtioNetDeviceOptions, VirtioNetFeatureName } from './types';

export const DEVICE_DRIVERS = ['virtio-net-pci'] as const;

/** Feature-bit properties (bools). The USO ones are QEMU 8.2+; netplane accepts them. */
export const VIRTIO_NET_FEATURES: readonly VirtioNetFeatureName[] = [
  'csum',
  'guest_csum',
  'gso',
  'guest_tso4',
  'guest_tso6',
  'guest_ecn',
  'guest_ufo',
  'guest_announce',
  'host_tso4',
  'host_tso6',
  'host_ecn',
  'host_ufo',
  'mrg_rxbuf',
  'status',
  'ctrl_vq',
  'ctrl_rx',
  'ctrl_vlan',
  'ctrl_rx_extra',
  'ctrl_mac_addr',
  'ctrl_guest_offloads',
  'guest_uso4',
  'guest_uso6',
  'host_uso',
  'mq',
  'rss',
  'hash',
  'guest_rsc_ext',
];

const DEVICE_FIELDS: readonly FieldSpec[] = [
  { name: 'netdev', kind: 'str' },
  { name: 'mac', kind: 'str' },
  { name: 'vectors', kind: 'uint32' },
  { name: 'host_mtu', kind: 'uint16' },
  { name: 'speed', kind: 'int32' },
  { name: 'duplex', kind: 'str' },
  { name: 'rx_queue_size', kind: 'uint16' },
  { name: 'tx_queue_size', kind: 'uint16' },
  { name: 'bus', kind: 'str' },
  ...VIRTIO_NET_FEATURES.map((name): FieldSpec => ({ name, kind: 'bool' })),
];

/** Other virtio-net-pci properties of QEMU 7.2: real in QEMU, not modelled by netplane. */
const UNSUPPORTED_PROPERTIES = new Set([
  'acpi-index',
  'aer',
  'any_layout',
  'ats',
  'bootindex',
  'disable-legacy',
  'disable-modern',
  'event_idx',
  'failover',
  'failover_pair_id',
  'indirect_desc',
  'ioeventfd',
  'iommu_platform',
  'migrate-extra',
  'modern-pio-notify',
  'multifunction',
  'notify_on_empty',
  'packed',
  'page-per-vq',
  'queue_reset',
  'rombar',
  'romfile',
  'romsize',
  'rsc_interval',
  'tx',
  'use-disabled-flag',
  'use-started',
  'virtio-backend',
  'virtio-pci-bus-master-bug-migration',
  'x-ats-page-aligned',
  'x-disable-legacy-check',
  'x-disable-pcie',
  'x-ignore-backend-features',
  'x-mtu-bypass-backend',
  'x-pcie-deverr-init',
  'x-pcie-extcap-init',
  'x-pcie-flr-init',
  'x-pcie-lnkctl-init',
  'x-pcie-lnksta-dllla',
  'x-pcie-pm-init',
  'x-txburst',
  'x-txtimer',
]);

/** Network device models QEMU has that netplane does not implement. */
export const OTHER_QEMU_NIC_MODELS: ReadonlySet<string> = new Set([
  'e1000',
  'e1000e',
  'e1000-82544gc',
  'e1000-82545em',
  'igb',
  'rtl8139',
  'ne2k_pci',
  'ne2k_isa',
  'pcnet',
  'vmxnet3',
  'i82550',
  'i82551',
  'i82557a',
  'i82557b',
  'i82557c',
  'i82558a',
  'i82558b',
  'i82559a',
  'i82559b',
  'i82559c',
  'i82559er',
  'i82562',
  'i82801',
  'tulip',
  'usb-net',
  'virtio-net-device',
  'virtio-net-pci-transitional',
  'virtio-net-pci-non-transitional',
]);

/** QEMU's set_mac(): six groups of exactly two hex digits, each followed by ':' or '-'
 *  except the last, which ends the string. Returns the lowercase ':' form. */
export function canonicalMac(text: string): string | undefined {
  if (!/^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$/.test(text)) return undefined;
  return text.replace(/-/g, ':').toLowerCase();
}

/** A PCI address "SLOT[.FN]" (hex slot 0..1f, function 0..7), as QEMU's addr property
 *  parses it; a JSON integer is a devfn (slot << 3 | fn). Returns the text kept. */
function checkPciAddr(raw: unknown, dialect: 'keyval' | 'json'): string {
  if (dialect === 'json' && typeof raw !== 'string') {
    const n = raw instanceof JsonFloat ? undefined : jsonInteger(raw);
    if (n === undefined) throw new OptionError("Invalid parameter type for 'addr', expected int or str");
    if (n < -1n || n > 255n) throw new OptionError("Parameter 'addr' expects a value between -1 and 255");
    if (n === -1n) return '-1'; // QEMU: automatic placement
    const devfn = Number(n);
    return `${(devfn >> 3).toString(16).padStart(2, '0')}.${devfn & 7}`;
  }
  const text = raw as string;
  // sscanf("%x.%x") / sscanf("%x"): white space, '+' and a 0x prefix are allowed.
  const hex = String.raw`\s*\+?(?:0[xX])?([0-9a-fA-F]+)`;
  const m = new RegExp(`^${hex}(?:\\.${hex})?$`).exec(text);
  if (!m || parseInt(m[1]!, 16) > 0x1f || (m[2] !== undefined && parseInt(m[2], 16) > 7)) {
    throw new OptionError(`Property 'virtio-net-pci.addr' doesn't take value '${text}'`);
  }
  return text;
}

function checkQueueSize(name: 'rx_queue_size' | 'tx_queue_size', size: number | undefined): void {
  if (size === undefined) return;
  if (size < 256 || size > 1024 || (size & (size - 1)) !== 0) {
    // QEMU 7.2's tx message has no final period; its rx message does.
    const end = name === 'rx_queue_size' ? '.' : '';
    throw new OptionError(`Invalid ${name} (= ${size}), must be a power of 2 between 256 and 1024${end}`);
  }
}

function checkDriver(driver: string): void {
  if ((DEVICE_DRIVERS as readonly string[]).includes(driver)) return;
  if (OTHER_QEMU_NIC_MODELS.has(driver)) {
    throw new OptionError(`Device model '${driver}' is not supported by netplane (only virtio-net-pci)`);
  }
  throw new OptionError(`'${driver}' is not a valid device model name`);
}

function buildDevice(
  id: string | undefined,
  source: FieldSource,
  dialect: 'keyval' | 'json',
  ctx?: ParseContext,
): VirtioNetDeviceOptions {
  const { values, used } = readFields(DEVICE_FIELDS, source, ctx);
  used.add('driver');
  used.add('id');
  let addr: string | undefined;
  const hasAddr =
    source.kind === 'json' ? Object.prototype.hasOwnProperty.call(source.values, 'addr') : source.values.has('addr');
  if (hasAddr) {
    addr = checkPciAddr(source.kind === 'json' ? source.values.addr : source.values.get('addr'), dialect);
    used.add('addr');
  }
  for (const key of leftoverKeys(source, used)) {
    if (UNSUPPORTED_PROPERTIES.has(key)) {
      throw new OptionError(`Property 'virtio-net-pci.${key}' is not supported by netplane`);
    }
    throw new OptionError(`Property 'virtio-net-pci.${key}' not found`);
  }

  const device: VirtioNetDeviceOptions = { driver: 'virtio-net-pci', features: {} };
  if (id !== undefined) device.id = id;
  if (values.netdev !== undefined) device.netdev = values.netdev as string;
  if (values.mac !== undefined) {
    const mac = canonicalMac(values.mac as string);
    if (mac === undefined)
      throw new OptionError(`Property 'virtio-net-device.mac' doesn't take value '${values.mac as string}'`);
    device.mac = mac;
  }
  for (const key of ['vectors', 'host_mtu', 'speed', 'rx_queue_size', 'tx_queue_size'] as const) {
    if (values[key] !== undefined) device[key] = values[key] as number;
  }
  if (values.bus !== undefined) device.bus = values.bus as string;
  if (addr !== undefined) device.addr = addr;
  for (const name of VIRTIO_NET_FEATURES) {
    if (values[name] !== undefined) device.features[name] = values[name] as boolean;
  }

  // Realize-time checks, in virtio_net_device_realize()'s order.
  if (values.duplex !== undefined) {
    if (values.duplex !== 'half' && values.duplex !== 'full')
      throw new OptionError("'duplex' must be 'half' or 'full'");
    device.duplex = values.duplex;
  }
  if (device.speed !== undefined && device.speed < -1) throw new OptionError("'speed' must be between 0 and INT_MAX");
  checkQueueSize('rx_queue_size', device.rx_queue_size);
  checkQueueSize('tx_queue_size', device.tx_queue_size);
  return device;
}

/** Parses `-device` text: key=value with the implied key `driver`, or JSON ('{' first). */
export function parseDeviceArg(text: string, ctx?: ParseContext): DeviceOptions {
  if (text.startsWith('{')) {
    return deviceFromJson(jsonMembers(parseQemuJson(text)), ctx);
  }
  const kv = parseKeyval(text, 'driver', ctx);
  if (kv.id !== undefined) checkIdentifier(kv.id);
  const values = lastValues(kv.entries);
  const driver = values.get('driver');
  if (driver === undefined) throw new OptionError("Parameter 'driver' is missing");
  checkDriver(driver);
  return buildDevice(kv.id, { kind: 'qdev', values }, 'keyval', ctx);
}

/** device_add-style JSON arguments (also the JSON -device form). */
export function deviceFromJson(input: Record<string, unknown>, ctx?: ParseContext): DeviceOptions {
  const args = jsonMembers(input);
  const own = (key: string): boolean => Object.prototype.hasOwnProperty.call(args, key);
  if (!own('driver')) throw new OptionError("Parameter 'driver' is missing");
  if (typeof args.driver !== 'string') throw new OptionError("Invalid parameter type for 'driver', expected: string");
  checkDriver(args.driver);
  let id: string | undefined;
  if (own('id')) {
    // netplane: QEMU 7.2 takes any JSON id here (even a number); we require an identifier.
    if (typeof args.id !== 'string') throw new OptionError("Invalid parameter type for 'id', expected: string");
    checkIdentifier(args.id);
    id = args.id;
  }
  return buildDevice(id, { kind: 'json', values: args }, 'json', ctx);
}
