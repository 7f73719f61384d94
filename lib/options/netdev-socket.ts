// -netdev stream / dgram / socket options with QEMU 7.2's grammar and error texts:
//  * stream and dgram are QAPI types: on the command line QEMU parses them with keyval
//    (dotted keys, addr.type=inet,addr.host=..), in JSON and QMP as nested objects. Members
//    are visited in schema order (NetdevStreamOptions: addr, server; NetdevDgramOptions:
//    local, remote); a nested struct reports its own unexpected keys before the outer one.
//    QEMU 7.2 does not check the id's form for these two.
//  * socket is the older QemuOpts type (fd, listen, connect, mcast, localaddr, udp).
// Backend checks (net_init_stream / net_init_dgram / net_init_socket) are here too, except
// those needing the system (fds, binds), which the netdev files make.
// Deliberate differences are marked "netplane:".
import { OptionError } from './errors';
import type { DgramNetdevOptions, SocketAddressOptions, SocketNetdevOptions, StreamNetdevOptions } from './types';

export const SOCKET_NETDEV_TYPES = ['stream', 'dgram', 'socket'] as const;
export type SocketNetdevType = (typeof SOCKET_NETDEV_TYPES)[number];

export function isSocketNetdevType(type: unknown): type is SocketNetdevType {
  return type === 'stream' || type === 'dgram' || type === 'socket';
}

type Mode = 'keyval' | 'json';
type Tree = Record<string, unknown>;

/** keyval's dotted keys as nested objects (scalars stay strings; the last value wins). */
export function keyvalTree(entries: readonly { key: string; value: string }[]): Tree {
  const root: Tree = {};
  for (const { key, value } of entries) {
    const parts = key.split('.');
    let node = root;
    for (let i = 0; i < parts.length - 1; i++) {
      const p = parts[i]!;
      const next = node[p];
      if (typeof next !== 'object' || next === null) node[p] = {};
      node = node[p] as Tree;
    }
    node[parts[parts.length - 1]!] = value;
  }
  return root;
}

function own(o: Tree, k: string): boolean {
  return Object.prototype.hasOwnProperty.call(o, k);
}

function join(path: string, name: string): string {
  return path === '' ? name : `${path}.${name}`;
}

function badType(path: string, expected: string): OptionError {
  return new OptionError(`Invalid parameter type for '${path}', expected: ${expected}`);
}

function readStr(_mode: Mode, path: string, v: unknown): string {
  if (typeof v === 'string') return v;
  throw badType(path, 'string');
}

function readBool(mode: Mode, path: string, v: unknown): boolean {
  if (mode === 'json') {
    if (typeof v === 'boolean') return v;
    throw badType(path, 'boolean');
  }
  if (typeof v !== 'string') throw badType(path, 'boolean');
  if (['on', 'yes', 'true', 'y'].includes(v)) return true;
  if (['off', 'no', 'false', 'n'].includes(v)) return false;
  throw new OptionError(`Parameter '${path}' expects 'on' or 'off'`);
}

function readUint16(mode: Mode, path: string, name: string, v: unknown): number {
  let n: number;
  if (mode === 'json') {
    if (typeof v !== 'number' || !Number.isInteger(v)) throw badType(path, 'integer');
    n = v;
  } else {
    if (typeof v !== 'string' || !/^(0x[0-9a-f]+|[0-9]+)$/i.test(v))
      throw new OptionError(`Parameter '${path}' expects integer`);
    n = Number(v);
  }
  // QEMU 7.2 names only the member here.
  if (n < 0 || n > 0xffff) throw new OptionError(`Parameter '${name}' expects uint16_t`);
  return n;
}

function readObject(path: string, v: unknown): Tree {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw badType(path, 'object');
  return v as Tree;
}

function checkLeftovers(path: string, o: Tree, used: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (!used.includes(k)) throw new OptionError(`Parameter '${join(path, k)}' is unexpected`);
  }
}

type MemberKind = 'str' | 'bool' | 'uint16';
const ADDR_MEMBERS: Record<SocketAddressOptions['type'], readonly [string, MemberKind, boolean][]> = {
  inet: [
    ['host', 'str', true],
    ['port', 'str', true],
    ['numeric', 'bool', false],
    ['to', 'uint16', false],
    ['ipv4', 'bool', false],
    ['ipv6', 'bool', false],
    ['keep-alive', 'bool', false],
    ['mptcp', 'bool', false],
  ],
  unix: [
    ['path', 'str', true],
    ['abstract', 'bool', false],
    ['tight', 'bool', false],
  ],
  vsock: [
    ['cid', 'str', true],
    ['port', 'str', true],
  ],
  fd: [['str', 'str', true]],
};

/** A SocketAddress (flat union on `type`). */
function readSocketAddress(mode: Mode, path: string, v: unknown): SocketAddressOptions {
  const o = readObject(path, v);
  if (!own(o, 'type')) throw new OptionError(`Parameter '${join(path, 'type')}' is missing`);
  const type = readStr(mode, join(path, 'type'), o.type);
  if (!Object.hasOwn(ADDR_MEMBERS, type)) throw new OptionError(`Parameter 'type' does not accept value '${type}'`);
  const members = ADDR_MEMBERS[type as SocketAddressOptions['type']];
  const out: Record<string, unknown> = { type };
  for (const [name, kind, required] of members) {
    const p = join(path, name);
    if (!own(o, name)) {
      if (required) throw new OptionError(`Parameter '${p}' is missing`);
      continue;
    }
    out[name] =
      kind === 'str'
        ? readStr(mode, p, o[name])
        : kind === 'bool'
          ? readBool(mode, p, o[name])
          : readUint16(mode, p, name, o[name]);
  }
  checkLeftovers(path, o, ['type', ...members.map((m) => m[0])]);
  return out as unknown as SocketAddressOptions;
}

/**
 * stream / dgram from their members (keyval tree or JSON object, without id and type), in
 * QEMU's visiting order, unexpected members refused. `iothread` is netplane's own member (as
 * for tap). The backend's own checks are checkStreamOrDgram's.
 */
export function streamOrDgramMembers(
  type: 'stream' | 'dgram',
  id: string,
  members: Tree,
  mode: Mode,
): StreamNetdevOptions | DgramNetdevOptions {
  const used: string[] = [];
  let iothread: string | undefined;
  const readIothread = (): void => {
    if (own(members, 'iothread')) iothread = readStr(mode, 'iothread', members.iothread);
    used.push('iothread');
  };
  if (type === 'stream') {
    if (!own(members, 'addr')) throw new OptionError("Parameter 'addr' is missing");
    const addr = readSocketAddress(mode, 'addr', members.addr);
    const opts: StreamNetdevOptions = { type, id, addr };
    if (own(members, 'server')) opts.server = readBool(mode, 'server', members.server);
    used.push('addr', 'server');
    readIothread();
    checkLeftovers('', members, used);
    if (iothread !== undefined) opts.iothread = iothread;
    return opts;
  }
  const opts: DgramNetdevOptions = { type, id };
  if (own(members, 'local')) opts.local = readSocketAddress(mode, 'local', members.local);
  if (own(members, 'remote')) opts.remote = readSocketAddress(mode, 'remote', members.remote);
  used.push('local', 'remote');
  readIothread();
  checkLeftovers('', members, used);
  if (iothread !== undefined) opts.iothread = iothread;
  return opts;
}

/** net_init_stream()'s and net_init_dgram()'s checks of the members. */
export function checkStreamOrDgram(
  o: StreamNetdevOptions | DgramNetdevOptions,
): StreamNetdevOptions | DgramNetdevOptions {
  return o.type === 'stream' ? checkStream(o) : checkDgram(o);
}

function checkStream(o: StreamNetdevOptions): StreamNetdevOptions {
  // netplane: QEMU 7.2 takes vsock too; netplane has no vsock transport.
  if (o.addr.type === 'vsock') throw new OptionError('netplane: addr.type=vsock is not supported by -netdev stream');
  if (o.addr.type === 'inet') checkPortText(o.addr.port);
  return o;
}

/** True for an IPv4 address text in 224.0.0.0/4 (QEMU's IN_MULTICAST on inet_aton's result). */
export function isIpv4Multicast(host: string): boolean {
  const m = /^(\d+)\.\d+\.\d+\.\d+$/.exec(host);
  return m !== null && Number(m[1]) >= 224 && Number(m[1]) <= 239;
}

function checkDgram(o: DgramNetdevOptions): DgramNetdevOptions {
  const { local, remote } = o;
  if (remote && remote.type === 'inet' && isIpv4Multicast(remote.host)) {
    if (local && local.type !== 'inet' && local.type !== 'fd')
      throw new OptionError('only support inet or fd type for local');
    portNumber(remote.port);
    return o;
  }
  if (!local) throw new OptionError('dgram requires local= parameter');
  if (remote) {
    if (local.type === 'fd') throw new OptionError("don't set remote with local.fd");
    if (remote.type !== local.type) throw new OptionError('remote and local types must be the same');
  } else if (local.type !== 'fd') {
    throw new OptionError('type=inet or type=unix requires remote parameter');
  }
  if (local.type !== 'inet' && local.type !== 'unix' && local.type !== 'fd')
    throw new OptionError('only support inet or fd type for local');
  if (local.type === 'inet' && remote?.type === 'inet') {
    portNumber(local.port);
    portNumber(remote.port);
  }
  return o;
}

/** A stream port: a number or a service name (getaddrinfo takes both); never empty. */
function checkPortText(port: string): void {
  if (port === '') throw new OptionError('netplane: addr.port must not be empty');
}

/**
 * QEMU's port parsing for dgram and socket (qemu_strtoi): "port number 'x' is invalid".
 * netplane: QEMU 7.2 truncates ports above 65535 to 16 bits; netplane refuses them.
 */
export function portNumber(text: string): number {
  if (!/^\s*[+-]?(0x[0-9a-f]+|[0-9]+)$/i.test(text)) throw new OptionError(`port number '${text}' is invalid`);
  const n = Number(text.trim());
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new OptionError(`port number '${text}' is invalid`);
  return n;
}

/** QEMU's parse_host_port split (at the first ':'), port checked; the host is resolved later. */
export function splitHostPort(text: string): { host: string; port: number } {
  const colon = text.indexOf(':');
  if (colon < 0) throw new OptionError(`host address '${text}' doesn't contain ':' separating host from port`);
  return { host: text.slice(0, colon), port: portNumber(text.slice(colon + 1)) };
}

/** net_init_socket()'s checks on the members (QemuOpts strings). */
export function checkSocket(id: string, v: Record<string, unknown>): SocketNetdevOptions {
  const opts: SocketNetdevOptions = { type: 'socket', id };
  for (const key of ['fd', 'listen', 'connect', 'mcast', 'localaddr', 'udp', 'iothread'] as const) {
    if (v[key] !== undefined) opts[key] = v[key] as string;
  }
  const modes = (['fd', 'listen', 'connect', 'mcast', 'udp'] as const).filter((k) => opts[k] !== undefined);
  if (modes.length !== 1) throw new OptionError('exactly one of listen=, connect=, mcast= or udp= is required');
  if (opts.localaddr !== undefined && opts.mcast === undefined && opts.udp === undefined)
    throw new OptionError('localaddr= is only valid with mcast= or udp=');
  if (opts.listen !== undefined) splitHostPort(opts.listen);
  if (opts.connect !== undefined) splitHostPort(opts.connect);
  if (opts.mcast !== undefined) splitHostPort(opts.mcast);
  if (opts.udp !== undefined) {
    if (opts.localaddr === undefined) throw new OptionError('localaddr= is mandatory with udp=');
    splitHostPort(opts.udp);
    splitHostPort(opts.localaddr);
  }
  if (opts.fd === '') throw new OptionError("Parameter 'fd' needs a file descriptor number or name");
  return opts;
}

/** NetdevSocketOptions members, in QAPI order (all strings). */
export const SOCKET_MEMBERS = ['fd', 'listen', 'connect', 'mcast', 'localaddr', 'udp', 'iothread'] as const;
