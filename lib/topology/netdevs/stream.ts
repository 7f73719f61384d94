// -netdev stream,addr.type=inet|unix|fd,...,server=on|off (QEMU 7.2's net/stream.c): one
// client whose frames cross a stream socket with a 4-byte big-endian length each. Down
// until connected; the connection's coming and going moves the link through a
// ConnectionLink and raises NETDEV_STREAM_CONNECTED / NETDEV_STREAM_DISCONNECTED as QEMU
// 7.2 does. A server accepts the next client after a disconnect; a client stays down (QEMU
// 7.2 has no reconnect) unless netplane's reconnect=<seconds> is given.
import { lstatSync, unlinkSync } from 'node:fs';
import { ConnectionLink } from '../../link/connection-link';
import { OptionError } from '../../options/errors';
import type { SocketAddressOptions, StreamNetdevOptions } from '../../options/types';
import type { Netdev } from '../netdev';
import { resolveAny, newSocketClient, socketCall, socketDataPlane } from './socket-common';
import { StreamEndpoint, type StreamPeer, type StreamTarget } from './stream-endpoint';
import { fdParam } from './tap';
import type { NetdevContext, NetdevType } from './types';

interface Live {
  endpoint: StreamEndpoint;
  link: ConnectionLink;
  unixPath?: string;
}
const live = new WeakMap<Netdev, Live>();

/** Resolve a stream SocketAddress (inet, unix or fd) into what the endpoint uses. */
export function streamTarget(addr: SocketAddressOptions, ctx: NetdevContext): StreamTarget {
  switch (addr.type) {
    case 'inet': {
      const port = Number(addr.port);
      if (!/^[0-9]+$/.test(addr.port) || port > 65535)
        throw new OptionError(`netplane: addr.port '${addr.port}' is not a port number`);
      const want = addr.ipv6 === true && addr.ipv4 !== true ? 6 : addr.ipv4 === true && addr.ipv6 !== true ? 4 : 0;
      const host = resolveAny(addr.host, want);
      return {
        kind: 'addr',
        addr: { family: 'inet', host, port },
        ...(addr.ipv4 !== undefined ? { ipv4: addr.ipv4 } : {}),
        ...(addr.ipv6 !== undefined ? { ipv6: addr.ipv6 } : {}),
      };
    }
    case 'unix':
      return { kind: 'addr', addr: { family: 'unix', path: addr.path, ...(addr.abstract ? { abstract: true } : {}) } };
    case 'fd':
      return { kind: 'fd', fd: fdParam(addr.str, ctx) };
    default:
      throw new OptionError(`netplane: addr.type=${addr.type} is not supported`);
  }
}

/** QEMU 7.2's NETDEV_STREAM_CONNECTED `addr` (a SocketAddress; inet ports are strings). */
export function peerAddress(peer: StreamPeer): Record<string, unknown> {
  if (peer.type === 'inet')
    return { port: String(peer.port), [peer.ipv6 ? 'ipv6' : 'ipv4']: true, host: peer.host, type: 'inet' };
  return { path: peer.path, type: 'unix' };
}

/** The info network text of a stream connection in QEMU 7.2 (empty while not connected). */
function streamInfo(state: string, peer?: StreamPeer): string {
  if (state === 'error') return 'connection error';
  if (state !== 'connected' || !peer) return '';
  return peer.type === 'inet' ? `tcp:${peer.host}:${peer.port}` : `unix:${peer.path}`;
}

/** Remove a stale unix socket left at `path` (QEMU does so before it binds). */
export function removeStaleSocket(path: string): void {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch {
    // nothing there
  }
}

/** Create the client, the endpoint and the link of a stream-like netdev (stream, socket). */
export function createStreamNetdev(
  o: { id: string; iothread?: string },
  ctx: NetdevContext,
  viaCli: boolean,
  init: {
    type: 'stream' | 'socket';
    server: boolean;
    target: StreamTarget;
    reconnect?: number;
    info: (state: 'listening' | 'connecting' | 'connected' | 'error' | 'closed', peer?: StreamPeer) => string;
    events: boolean;
    options: StreamNetdevOptions | import('../../options/types').SocketNetdevOptions;
  },
): Netdev {
  const dp = socketDataPlane(ctx, o.id, init.type);
  const unixPath =
    init.server && init.target.kind === 'addr' && init.target.addr.family === 'unix' && !init.target.addr.abstract
      ? init.target.addr.path
      : undefined;
  if (unixPath !== undefined) removeStaleSocket(unixPath);
  const client = newSocketClient(ctx, dp, o.id, init.type, o.iothread, { kind: 'stream' }, true);
  const endpoint = new StreamEndpoint({
    id: o.id,
    handle: client.handle,
    dp,
    server: init.server,
    target: init.target,
    ...(init.reconnect !== undefined ? { reconnect: init.reconnect } : {}),
    info: init.info,
    setInfo: (text) => {
      client.infoStr = text;
    },
    onError: (message) => ctx.reportError(new Error(message)),
  });
  try {
    socketCall(o.id, () => endpoint.prepare());
  } catch (err) {
    dp.removeClient(client.handle);
    throw err;
  }
  ctx.reg.add(client);
  const netdev = ctx.newNetdev({ options: init.options, clients: [client], viaCli });
  const link = new ConnectionLink(netdev, endpoint);
  if (init.events) {
    link.on('connected', () => {
      if (endpoint.peer)
        ctx.emitEvent?.('NETDEV_STREAM_CONNECTED', { 'netdev-id': o.id, addr: peerAddress(endpoint.peer) });
    });
    link.on('disconnected', () => ctx.emitEvent?.('NETDEV_STREAM_DISCONNECTED', { 'netdev-id': o.id }));
  }
  link.on('error', (err) => ctx.reportError(err));
  live.set(netdev, { endpoint, link, ...(unixPath !== undefined ? { unixPath } : {}) });
  endpoint.start();
  return netdev;
}

/** netdev_del of a stream-like netdev: stop the endpoint; the data plane closes the socket. */
export async function cleanupStreamNetdev(netdev: Netdev): Promise<void> {
  const l = live.get(netdev);
  if (!l) return;
  live.delete(netdev);
  l.link.dispose();
  l.endpoint.close();
  if (l.unixPath !== undefined) removeStaleSocket(l.unixPath);
}

export const streamNetdev: NetdevType<StreamNetdevOptions> = {
  create(o, ctx, viaCli) {
    const target = streamTarget(o.addr, ctx);
    return createStreamNetdev(o, ctx, viaCli, {
      type: 'stream',
      server: o.server === true,
      target,
      info: streamInfo,
      events: true,
      options: o,
    });
  },
  cleanup: (netdev) => cleanupStreamNetdev(netdev),
};
