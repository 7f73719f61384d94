// What the stream, dgram and socket netdevs share: the data plane they need, address
// resolution with QEMU's texts, and the one client each of them has.
import { NetplaneError } from '../../errors';
import { native, type NativeSockAddr } from '../../native';
import { OptionError } from '../../options/errors';
import type { DataPlane } from '../dataplane';
import { Client, type NetClientType } from '../net-client';
import type { NetdevContext } from './types';

export type SocketDataPlane = DataPlane & Required<Pick<DataPlane, 'setSocketFd' | 'onSocketClosed'>>;

/** The data plane, which must move frames over sockets (the native one does). */
export function socketDataPlane(ctx: NetdevContext, id: string, type: string): SocketDataPlane {
  const dp = ctx.dataPlane;
  if (!dp || !dp.setSocketFd || !dp.onSocketClosed) {
    throw new NetplaneError(
      'NETPLANE_INVALID_STATE',
      `netdev '${id}': -netdev ${type} needs the native data plane (a Topology created with one)`,
    );
  }
  return dp as SocketDataPlane;
}

/** The netdev's single client, in the data plane and link-down until a connection exists. */
export function newSocketClient(
  ctx: NetdevContext,
  dp: SocketDataPlane,
  id: string,
  type: NetClientType,
  iothread: string | undefined,
  descriptor: { kind: 'stream' } | { kind: 'dgram'; dest: NativeSockAddr | null },
  startDown: boolean,
): Client {
  ctx.checkIothread(iothread);
  const c = new Client(ctx.reg.nextHandle(), id, type, type, true, iothread);
  dp.addClient({
    ...descriptor,
    handle: c.handle,
    name: c.name,
    queueIndex: 0,
    ...(iothread !== undefined ? { iothread } : {}),
  });
  if (startDown) {
    c.linkDown = true;
    dp.setLinkDown(c.handle, true);
  }
  return c;
}

/**
 * An IPv4 host as QEMU's parse_host_port / convert_host_port take it: empty is INADDR_ANY,
 * a dotted quad as is, anything else looked up (getaddrinfo, IPv4 only as in QEMU 7.2).
 */
export function resolveIpv4(host: string): string {
  if (host === '') return '0.0.0.0';
  if (/^\d+\.\d+\.\d+\.\d+$/.test(host)) return host;
  const addr = native().resolveHost(host, 4);
  if (addr === null) throw new OptionError(`can't resolve host address '${host}'`);
  return addr;
}

/** A stream address host: IPv4 or IPv6 literal as is, a name looked up (either family). */
export function resolveAny(host: string, want: 0 | 4 | 6): string {
  if (host === '') return want === 6 ? '::' : '0.0.0.0';
  if (/^\d+\.\d+\.\d+\.\d+$/.test(host) || host.includes(':')) return host;
  const addr = native().resolveHost(host, want);
  if (addr === null) throw new OptionError(`address resolution failed for ${host}: Name or service not known`);
  return addr;
}

/** Wrap a system error from the socket binding as a NetplaneError naming the netdev. */
export function socketCall<T>(id: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof NetplaneError) throw err;
    const e = err as Error;
    throw new NetplaneError('NETPLANE_SOCKET_FAILED', `${id}: ${e.message}`, { cause: e });
  }
}

/** An fd= socket's type, with QEMU 7.2's texts for an fd that is not open or not a socket. */
export function socketFdType(id: string, fd: number): 'stream' | 'dgram' | 'other' {
  try {
    return native().socketInfo(fd).type;
  } catch (err) {
    if ((err as { code?: string }).code === 'EBADF')
      throw new NetplaneError('NETPLANE_SOCKET_FAILED', `${id}: Can't use file descriptor ${fd}: Bad file descriptor`);
    throw new OptionError("can't get socket option SO_TYPE");
  }
}
