// "-qmp unix:PATH,server=on,wait=off": the QMP monitor's socket. QEMU parses the text after
// "unix:" as QemuOpts with the implied key `path` (so ",," escapes a comma in the path) and
// still accepts the deprecated short forms "server" and "nowait". netplane listens on unix
// sockets only: no TCP listener unless a future option asks for one explicitly.

import { OptionError, type ParseContext } from './errors';
import { lastValues, parseKeyval } from './keyval';
import { parseBoolText } from './scalars';

export interface QmpArg {
  path: string;
  /** server=on: listen (QEMU's default is off: connect to PATH as a client). */
  server: boolean;
  /** wait=on (QEMU's default for servers): wait for the first client before starting. */
  wait: boolean;
}

/** Character-device backends QEMU knows; netplane's QMP only speaks over unix sockets. */
const OTHER_CHARDEV_BACKENDS = [
  'tcp',
  'telnet',
  'tn3270',
  'websocket',
  'udp',
  'stdio',
  'pipe',
  'file',
  'pty',
  'vc',
  'null',
  'mon',
  'serial',
  'tty',
  'parallel',
  'par',
  'chardev',
  'msmouse',
  'wctablet',
  'braille',
  'testdev',
  'spicevmc',
  'spiceport',
  'qemu-vdagent',
  'ringbuf',
  'memory',
  'dbus',
];

/** QEMU's socket chardev options for unix sockets that no netplane socket implements. */
export const UNIMPLEMENTED_SOCKET_KEYS: readonly string[] = [
  'abstract',
  'tight',
  'telnet',
  'tn3270',
  'websocket',
  'nodelay',
  'delay',
  'tls-creds',
  'tls-authz',
  'mux',
  'logfile',
  'logappend',
  'fd',
  'host',
  'port',
  'to',
  'ipv4',
  'ipv6',
];

/** The QMP socket does not reconnect either (it only listens). */
const UNSUPPORTED_SOCKET_KEYS = new Set([...UNIMPLEMENTED_SOCKET_KEYS, 'reconnect']);

export function parseQmpArg(text: string, ctx?: ParseContext): QmpArg {
  if (!text.startsWith('unix:')) {
    const scheme = /^([a-z0-9-]+)(:|$)/.exec(text)?.[1];
    if (scheme !== undefined && OTHER_CHARDEV_BACKENDS.includes(scheme)) {
      throw new OptionError(
        `-qmp ${scheme}: is not supported by netplane; only unix sockets are (e.g. -qmp unix:/run/np.sock,server=on,wait=off)`,
      );
    }
    throw new OptionError(`'${text}' is not a valid char driver`);
  }
  const kv = parseKeyval(text.slice('unix:'.length), 'path', ctx);
  const values = lastValues(kv.entries);
  // QEMU ignores id= here (the monitor names its chardev itself); so do we.
  for (const key of values.keys()) {
    if (key === 'path' || key === 'server' || key === 'wait') continue;
    if (UNSUPPORTED_SOCKET_KEYS.has(key))
      throw new OptionError(`-qmp unix: parameter '${key}' is not supported by netplane`);
    throw new OptionError(`Invalid parameter '${key}'`);
  }
  const path = values.get('path') ?? '';
  if (path === '') throw new OptionError('-qmp unix: needs a socket path (-qmp unix:PATH,server=on,wait=off)');
  if (path.includes('\0')) throw new OptionError('-qmp unix: the socket path must not contain a NUL character');
  const server = values.has('server') ? parseBoolText('server', values.get('server')!) : false;
  const wait = values.has('wait') ? parseBoolText('wait', values.get('wait')!) : true;
  return { path, server, wait };
}
