// -export (after qemu-storage-daemon's --export, QEMU's precedent for serving a device over
// vhost-user) and the -chardev socket it may name:
//
//   -export type=vhost-user-net,id=ID,netdev=NETDEV,addr.type=unix,addr.path=PATH[,num-queues=N]
//   -export type=vhost-user-net,id=ID,netdev=NETDEV,chardev=CHARDEV[,num-queues=N]
//   (either form also takes packed=on|off: offer packed virtqueues, default off)
//   -chardev socket,id=ID,path=PATH[,server=on|off][,wait=on|off][,reconnect=SECONDS]
//
// Both are QemuOpts key=value text; the messages are QEMU's where QEMU has the same check.
import { checkIdentifier, OptionError, type ParseContext } from './errors';
import { lastValues, parseKeyval } from './keyval';
import { parseBoolText, parseOptsUint } from './scalars';
import { UNIMPLEMENTED_SOCKET_KEYS } from './qmp-arg';

export interface ExportArg {
  type: 'vhost-user-net';
  id: string;
  netdev: string;
  /** Queue pairs (QEMU's queues=); default 1. */
  numQueues?: number;
  addr?: { type: 'unix'; path: string };
  chardev?: string;
  /** packed=on: offer VIRTIO_F_RING_PACKED (default off; VhostUserNetExportOptions.packed). */
  packed?: boolean;
}

export interface ChardevArg {
  backend: 'socket';
  id: string;
  path: string;
  /** server=on: listen; off (QEMU's default): connect to PATH. */
  server: boolean;
  /** Seconds between connection attempts (client only); 0: connect once, at startup. */
  reconnect: number;
}

const EXPORT_TYPES_OF_QSD = new Set(['nbd', 'vhost-user-blk', 'fuse', 'vduse-blk']);

function checkPath(path: string, what: string): void {
  if (path === '') throw new OptionError(`Parameter '${what}' is missing`);
  if (path.includes('\0')) throw new OptionError(`Parameter '${what}' must not contain a NUL character`);
}

export function parseExportArg(text: string, ctx?: ParseContext): ExportArg {
  const kv = parseKeyval(text, 'type', ctx);
  const v = lastValues(kv.entries);
  const type = v.get('type');
  if (type === undefined) throw new OptionError("Parameter 'type' is missing");
  if (type !== 'vhost-user-net') {
    if (EXPORT_TYPES_OF_QSD.has(type))
      throw new OptionError(`Export type '${type}' is not supported by netplane (only vhost-user-net)`);
    throw new OptionError(`Parameter 'type' does not accept value '${type}'`);
  }
  if (kv.id === undefined) throw new OptionError("Parameter 'id' is missing");
  checkIdentifier(kv.id);
  const netdev = v.get('netdev');
  if (netdev === undefined) throw new OptionError("Parameter 'netdev' is missing");
  for (const key of v.keys()) {
    if (!['type', 'netdev', 'num-queues', 'addr.type', 'addr.path', 'chardev', 'packed'].includes(key))
      throw new OptionError(`Invalid parameter '${key}'`);
  }
  const out: ExportArg = { type: 'vhost-user-net', id: kv.id, netdev };
  const nq = v.get('num-queues');
  if (nq !== undefined) {
    const n = parseOptsUint('num-queues', nq, 'uint16');
    if (n < 1) throw new OptionError("Parameter 'num-queues' expects a value of at least 1");
    out.numQueues = n;
  }
  const packed = v.get('packed');
  if (packed !== undefined) out.packed = parseBoolText('packed', packed);
  const chardev = v.get('chardev');
  const addrType = v.get('addr.type');
  const addrPath = v.get('addr.path');
  if (chardev !== undefined) {
    if (addrType !== undefined || addrPath !== undefined)
      throw new OptionError("Parameters 'addr' and 'chardev' are mutually exclusive");
    out.chardev = chardev;
    return out;
  }
  if (addrType === undefined)
    throw new OptionError(addrPath === undefined ? "Parameter 'addr' is missing" : "Parameter 'addr.type' is missing");
  if (addrType !== 'unix') {
    if (['inet', 'vsock', 'fd'].includes(addrType))
      throw new OptionError(`addr.type=${addrType} is not supported by netplane; vhost-user needs a unix socket`);
    throw new OptionError(`Parameter 'addr.type' does not accept value '${addrType}'`);
  }
  if (addrPath === undefined) throw new OptionError("Parameter 'addr.path' is missing");
  checkPath(addrPath, 'addr.path');
  out.addr = { type: 'unix', path: addrPath };
  return out;
}

/** Socket options QEMU has that netplane's vhost-user sockets do not implement. */
const UNSUPPORTED_SOCKET_KEYS = new Set(UNIMPLEMENTED_SOCKET_KEYS);

export function parseChardevArg(text: string, ctx?: ParseContext): ChardevArg {
  const kv = parseKeyval(text, 'backend', ctx);
  const v = lastValues(kv.entries);
  const backend = v.get('backend');
  if (backend === undefined) throw new OptionError('chardev: "backend" not specified');
  if (kv.id === undefined) throw new OptionError('chardev: no id specified');
  checkIdentifier(kv.id);
  if (backend !== 'socket')
    throw new OptionError(`chardev '${backend}' is not supported by netplane (only socket, for vhost-user)`);
  for (const key of v.keys()) {
    if (['backend', 'path', 'server', 'wait', 'reconnect'].includes(key)) continue;
    if (UNSUPPORTED_SOCKET_KEYS.has(key))
      throw new OptionError(`chardev socket: parameter '${key}' is not supported by netplane (unix sockets only)`);
    throw new OptionError(`Invalid parameter '${key}'`);
  }
  const path = v.get('path');
  if (path === undefined) throw new OptionError('chardev: socket: no host given');
  checkPath(path, 'path');
  const server = v.has('server') ? parseBoolText('server', v.get('server')!) : false;
  // wait= only matters to a server; netplane never delays its start for a client.
  if (v.has('wait')) parseBoolText('wait', v.get('wait')!);
  const reconnect = v.has('reconnect') ? parseOptsUint('reconnect', v.get('reconnect')!, 'uint64') : 0;
  if (server && reconnect > 0)
    throw new OptionError("'reconnect' option is incompatible with socket in server listen mode");
  return { backend: 'socket', id: kv.id, path, server, reconnect };
}

/**
 * QMP chardev-add's ChardevBackend for a socket: { type: 'socket', data: { addr: { type:
 * 'unix', data: { path } }, server?, wait?, reconnect? } } -> the -chardev equivalent.
 */
export function chardevFromQmp(id: string, backend: unknown): ChardevArg {
  checkIdentifier(id);
  const b = (backend ?? {}) as { type?: unknown; data?: Record<string, unknown> };
  if (typeof b.type !== 'string') throw new OptionError("Parameter 'backend.type' is missing");
  if (b.type !== 'socket')
    throw new OptionError(`chardev '${b.type}' is not supported by netplane (only socket, for vhost-user)`);
  const d = b.data ?? {};
  const addr = (d['addr'] ?? {}) as { type?: unknown; data?: Record<string, unknown> };
  if (addr.type === undefined) throw new OptionError("Parameter 'backend.data.addr' is missing");
  if (addr.type !== 'unix')
    throw new OptionError(
      `chardev socket: addr type '${String(addr.type)}' is not supported by netplane (unix sockets only)`,
    );
  const path = addr.data?.['path'];
  if (typeof path !== 'string') throw new OptionError("Parameter 'backend.data.addr.data.path' is missing");
  checkPath(path, 'path');
  for (const key of Object.keys(d)) {
    if (['addr', 'server', 'wait', 'reconnect'].includes(key)) continue;
    throw new OptionError(`chardev socket: parameter '${key}' is not supported by netplane (unix sockets only)`);
  }
  const server = d['server'] === undefined ? true : d['server'] === true; // QMP's default is server=on
  const reconnect = typeof d['reconnect'] === 'number' ? d['reconnect'] : 0;
  if (!Number.isInteger(reconnect) || reconnect < 0) throw new OptionError("Parameter 'reconnect' expects a uint64");
  if (server && reconnect > 0)
    throw new OptionError("'reconnect' option is incompatible with socket in server listen mode");
  return { backend: 'socket', id, path, server, reconnect };
}
