// -netdev (key=value or JSON) and QMP netdev_add arguments -> NetdevOptions, with the checks
// and error texts of QEMU 7.2 (net/net.c, net/tap.c and the QAPI visitors), in QEMU's order:
//   key=value: id well-formed (QemuOpts) -> id present -> type -> members in schema order ->
//              unknown keys -> backend checks;
//   JSON/QMP:  id present -> type -> members -> unexpected keys -> id well-formed -> backend.
// Deliberate differences from QEMU are marked "netplane:" below.

import { OptionError, checkIdentifier, type ParseContext } from './errors';
import { leftoverKeys, readFields, type FieldSource, type FieldSpec } from './fields';
import { jsonMembers, parseQemuJson } from './json';
import { lastValues, parseKeyval } from './keyval';
import { checkSocket, checkStreamOrDgram, keyvalTree, SOCKET_MEMBERS, streamOrDgramMembers } from './netdev-socket';
import type { HubportNetdevOptions, NetdevOptions, TapNetdevOptions, VhostUserNetdevOptions } from './types';
import { parseUserKeyval, userFromJson } from './user';

/** QEMU 7.2's NetClientDriver values (what `type` accepts at all). */
const QEMU_NET_CLIENT_DRIVERS = [
  'none',
  'nic',
  'user',
  'tap',
  'l2tpv3',
  'socket',
  'stream',
  'dgram',
  'vde',
  'bridge',
  'hubport',
  'netmap',
  'vhost-user',
  'vhost-vdpa',
] as const;

/** The backends netplane builds. */
export const NETDEV_TYPES = ['tap', 'hubport', 'user', 'stream', 'dgram', 'socket', 'vhost-user'] as const;

/** Most queues a tap netdev may have (QEMU's MAX_TAP_QUEUES). */
export const MAX_TAP_QUEUES = 1024;

/** Longest interface name the kernel takes (IFNAMSIZ - 1). */
const MAX_IFNAME = 15;

// Member order is QAPI's NetdevTapOptions order; QEMU reports the first bad member in it.
const TAP_FIELDS: readonly FieldSpec[] = [
  { name: 'ifname', kind: 'str' },
  { name: 'fd', kind: 'str' },
  { name: 'fds', kind: 'str' },
  { name: 'script', kind: 'str' },
  { name: 'downscript', kind: 'str' },
  { name: 'br', kind: 'str' },
  { name: 'helper', kind: 'str' },
  { name: 'sndbuf', kind: 'size' },
  { name: 'vnet_hdr', kind: 'bool' },
  { name: 'vhost', kind: 'bool' },
  { name: 'vhostfd', kind: 'str' },
  { name: 'vhostfds', kind: 'str' },
  { name: 'vhostforce', kind: 'bool' },
  { name: 'queues', kind: 'uint32' },
  { name: 'poll-us', kind: 'uint32' },
  { name: 'iothread', kind: 'str' }, // netplane: run this netdev's queues on an -object iothread
  { name: 'io-uring', kind: 'bool' }, // netplane: batch each queue's reads and writes through io_uring (default on)
];

const SOCKET_FIELDS: readonly FieldSpec[] = SOCKET_MEMBERS.map((name) => ({ name, kind: 'str' }));

const HUBPORT_FIELDS: readonly FieldSpec[] = [
  { name: 'hubid', kind: 'int32', required: true },
  { name: 'netdev', kind: 'str' },
];

// NetdevVhostUserOptions, in QAPI order.
const VHOST_USER_FIELDS: readonly FieldSpec[] = [
  { name: 'chardev', kind: 'str', required: true },
  { name: 'vhostforce', kind: 'bool' },
  { name: 'queues', kind: 'int64' },
];
/** Most queue pairs a vhost-user netdev may have (QEMU's MAX_QUEUE_NUM). */
export const MAX_VHOST_USER_QUEUES = 1024;

type Backend = (typeof NETDEV_TYPES)[number];

type Dialect = 'keyval' | 'json';

function notCompiled(type: string): OptionError {
  return new OptionError(`network backend '${type}' is not compiled into this binary`);
}

/** The `type` check shared by both dialects; returns the netplane backend. */
function checkType(type: string, id: string, dialect: Dialect): Backend {
  if (!(QEMU_NET_CLIENT_DRIVERS as readonly string[]).includes(type)) {
    throw new OptionError(`Parameter 'type' does not accept value '${type}'`);
  }
  if ((NETDEV_TYPES as readonly string[]).includes(type)) return type as Backend;
  // netplane: QEMU would first check that backend's own members; we do not model them.
  if (dialect === 'json') checkIdentifier(id);
  throw notCompiled(type);
}

function unknownKey(key: string, dialect: Dialect): OptionError {
  return new OptionError(dialect === 'json' ? `Parameter '${key}' is unexpected` : `Invalid parameter '${key}'`);
}

/** Reads the backend members, rejects leftovers, applies the backend's own checks. */
function buildNetdev(
  id: string,
  type: Exclude<Backend, 'stream' | 'dgram' | 'user'>,
  source: FieldSource,
  used: Set<string>,
  dialect: Dialect,
  ctx?: ParseContext,
): NetdevOptions {
  const specs = { tap: TAP_FIELDS, hubport: HUBPORT_FIELDS, socket: SOCKET_FIELDS, 'vhost-user': VHOST_USER_FIELDS }[
    type
  ];
  const { values, used: consumed } = readFields(specs, source, ctx);
  for (const key of consumed) used.add(key);
  const extra = leftoverKeys(source, used);
  if (extra.length > 0) throw unknownKey(extra[0]!, dialect);
  if (dialect === 'json') checkIdentifier(id); // QEMU checks it after the members here
  if (type === 'socket') return checkSocket(id, values);
  if (type === 'vhost-user') return checkVhostUser(id, values);
  if (type === 'hubport') {
    const hubport: HubportNetdevOptions = { type, id, hubid: values.hubid as number };
    if (values.netdev !== undefined) hubport.netdev = values.netdev as string;
    return hubport;
  }
  return checkTap(id, values);
}

/** The members; net_init_vhost_user()'s checks need the chardevs (netdevs/vhost-user.ts). */
function checkVhostUser(id: string, v: Record<string, unknown>): VhostUserNetdevOptions {
  const opts: VhostUserNetdevOptions = { type: 'vhost-user', id, chardev: v.chardev as string };
  if (v.vhostforce !== undefined) opts.vhostforce = v.vhostforce as boolean;
  if (v.queues !== undefined) opts.queues = v.queues as number;
  return opts;
}

function splitFdList(text: string): string[] {
  return text.split(':');
}

function checkPathLike(name: string, value: string): void {
  if (value.includes('\0')) throw new OptionError(`Parameter '${name}' must not contain a NUL character`);
}

/** net_init_tap()'s checks, plus netplane's refusals for what it cannot do. */
function checkTap(id: string, v: Record<string, unknown>): TapNetdevOptions {
  const has = (key: string): boolean => v[key] !== undefined;
  const opts: TapNetdevOptions = { type: 'tap', id };
  for (const key of ['ifname', 'fd', 'script', 'downscript', 'br', 'helper', 'vhostfd', 'iothread'] as const) {
    if (has(key)) opts[key] = v[key] as string;
  }
  for (const key of ['vnet_hdr', 'vhost', 'vhostforce', 'io-uring'] as const)
    if (has(key)) opts[key] = v[key] as boolean;
  for (const key of ['sndbuf', 'queues', 'poll-us'] as const) if (has(key)) opts[key] = v[key] as number;
  if (has('fds')) opts.fds = splitFdList(v.fds as string);
  if (has('vhostfds')) opts.vhostfds = splitFdList(v.vhostfds as string);

  if (has('fd')) {
    if (['ifname', 'script', 'downscript', 'vnet_hdr', 'helper', 'queues', 'fds', 'vhostfds'].some(has)) {
      throw new OptionError(
        'ifname=, script=, downscript=, vnet_hdr=, helper=, queues=, fds=, and vhostfds= are invalid with fd=',
      );
    }
    if (opts.fd === '') throw new OptionError("Parameter 'fd' needs a file descriptor number or name");
  } else if (has('fds')) {
    if (['ifname', 'script', 'downscript', 'vnet_hdr', 'helper', 'queues', 'vhostfd'].some(has)) {
      throw new OptionError(
        'ifname=, script=, downscript=, vnet_hdr=, helper=, queues=, and vhostfd= are invalid with fds=',
      );
    }
    const fds = opts.fds!;
    if (fds.length > MAX_TAP_QUEUES) {
      throw new OptionError(`The number of fds passed exceeds the maximum of ${MAX_TAP_QUEUES}`);
    }
    if (fds.some((fd) => fd === '')) throw new OptionError(`Parameter 'fds' has an empty entry: '${v.fds as string}'`);
    if (opts.vhostfds !== undefined && opts.vhostfds.length !== fds.length) {
      throw new OptionError('The number of fds passed does not match the number of vhostfds passed');
    }
  } else if (has('helper')) {
    if (['ifname', 'script', 'downscript', 'vnet_hdr', 'queues', 'vhostfds'].some(has)) {
      throw new OptionError(
        'ifname=, script=, downscript=, vnet_hdr=, queues=, and vhostfds= are invalid with helper=',
      );
    }
  } else if (has('vhostfds')) {
    throw new OptionError("vhostfds= is invalid if fds= wasn't specified");
  }

  // netplane: QEMU checks this after opening the TAP; nothing needs opening to know it.
  if (opts.vhost === false && (has('vhostfd') || has('vhostfds'))) {
    throw new OptionError('vhostfd(s)= is not valid without vhost');
  }
  // QEMU enables vhost-net when vhost=on, or when vhost is absent and a vhost fd or
  // vhostforce=on asks for it. netplane has no vhost-net: refuse rather than ignore.
  const vhostAsked = opts.vhost ?? (has('vhostfd') || has('vhostfds') || opts.vhostforce === true);
  if (vhostAsked) {
    throw new OptionError(
      'vhost-net is not supported by netplane (asked for by vhost=on, vhostfd=, vhostfds= or vhostforce=on); ' +
        'drop these keys to use the userspace data plane',
    );
  }
  if (has('helper')) {
    throw new OptionError(
      'helper= (qemu-bridge-helper) is not supported by netplane; create the TAP yourself and pass ifname= or fd=',
    );
  }
  if (has('br')) {
    throw new OptionError(
      'br= is not supported by netplane (it only applies with helper=); attach the TAP to the bridge yourself',
    );
  }
  // netplane: QEMU 7.2 does not check queues; queues=0 aborts it with "Assertion 'nc' failed".
  if (opts.queues !== undefined && (opts.queues < 1 || opts.queues > MAX_TAP_QUEUES)) {
    throw new OptionError(`Parameter 'queues' expects a value between 1 and ${MAX_TAP_QUEUES}`);
  }
  if (opts.ifname !== undefined) {
    checkPathLike('ifname', opts.ifname);
    // netplane: QEMU silently truncates a long name; a clear error is kinder.
    if (opts.ifname.length > MAX_IFNAME) {
      throw new OptionError(`Parameter 'ifname' is longer than ${MAX_IFNAME} characters: '${opts.ifname}'`);
    }
    if (/[/:\s]/.test(opts.ifname) || opts.ifname === '.' || opts.ifname === '..') {
      throw new OptionError(`Parameter 'ifname' is not a valid interface name: '${opts.ifname}'`);
    }
  }
  if (opts.script !== undefined) checkPathLike('script', opts.script);
  if (opts.downscript !== undefined) checkPathLike('downscript', opts.downscript);
  return opts;
}

/** Parses `-netdev` text: QemuOpts key=value with the implied key `type`, or JSON when the
 *  text starts with '{' (as QEMU decides). */
export function parseNetdevArg(text: string, ctx?: ParseContext): NetdevOptions {
  if (text.startsWith('{')) return netdevFromQmp(jsonMembers(parseQemuJson(text)), ctx);
  const kv = parseKeyval(text, 'type', ctx);
  const values = lastValues(kv.entries);
  const type = values.get('type');
  // QEMU 7.2 parses stream and dgram with keyval (a QAPI visit: dotted keys, the id checked
  // after the members); the others with QemuOpts, which checks the id first.
  const modern = type === 'stream' || type === 'dgram';
  if (kv.id !== undefined && !modern) checkIdentifier(kv.id);
  if (kv.id === undefined) throw new OptionError("Parameter 'id' is missing");
  if (type === undefined) throw new OptionError("Parameter 'type' is missing");
  const backend = checkType(type, kv.id, 'keyval');
  if (backend === 'stream' || backend === 'dgram') {
    return streamOrDgram(backend, kv.id, keyvalTree(kv.entries.filter((e) => e.key !== 'type')), 'keyval');
  }
  if (backend === 'user') return parseUserKeyval(kv.id, kv.entries, ctx);
  return buildNetdev(kv.id, backend, { kind: 'opts', values }, new Set(['type']), 'keyval', ctx);
}

/** QMP netdev_add arguments (the Netdev union, JSON-typed), with QEMU's QAPI checks. */
export function netdevFromQmp(input: Record<string, unknown>, ctx?: ParseContext): NetdevOptions {
  const args = jsonMembers(input); // tolerate a non-object from an untyped caller
  const own = (key: string): boolean => Object.prototype.hasOwnProperty.call(args, key);
  if (!own('id')) throw new OptionError("Parameter 'id' is missing");
  if (typeof args.id !== 'string') throw new OptionError("Invalid parameter type for 'id', expected: string");
  if (!own('type')) throw new OptionError("Parameter 'type' is missing");
  if (typeof args.type !== 'string') throw new OptionError("Invalid parameter type for 'type', expected: string");
  const backend = checkType(args.type, args.id, 'json');
  if (backend === 'stream' || backend === 'dgram') {
    const { id: _id, type: _type, ...members } = args;
    return streamOrDgram(backend, args.id, members, 'json');
  }
  if (backend === 'user') return userFromJson(args.id, args, ctx);
  return buildNetdev(args.id, backend, { kind: 'json', values: args }, new Set(['id', 'type']), 'json', ctx);
}

/** stream/dgram in QMP netdev_add's order: members, then the id, then the backend's checks.
 *  netplane: QEMU 7.2 takes any id for these two on the command line (keyval or JSON); the
 *  id is checked there too, as for every other netdev. */
function streamOrDgram(
  type: 'stream' | 'dgram',
  id: string,
  members: Record<string, unknown>,
  dialect: Dialect,
): NetdevOptions {
  const opts = streamOrDgramMembers(type, id, members, dialect);
  checkIdentifier(id);
  return checkStreamOrDgram(opts);
}
