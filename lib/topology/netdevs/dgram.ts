// -netdev dgram,local.*=..,remote.*=.. (QEMU 7.2's net/dgram.c): one client, one bare frame
// per datagram. Unicast inet (local and remote), multicast (remote in 224.0.0.0/4; the
// socket binds to the group, joins it, loops back, and sends from local.host's interface
// when given), unix datagram sockets (local and remote paths), or a local fd. No connection:
// the link stays up. QEMU 7.2 takes IPv4 only here.
import { closeSync } from 'node:fs';
import { native, type NativeSockAddr } from '../../native';
import { OptionError } from '../../options/errors';
import { isIpv4Multicast, portNumber } from '../../options/netdev-socket';
import type { DgramNetdevOptions, SocketAddressOptions } from '../../options/types';
import type { Netdev } from '../netdev';
import { newSocketClient, resolveIpv4, socketCall, socketDataPlane, socketFdType } from './socket-common';
import { removeStaleSocket } from './stream';
import { fdParam } from './tap';
import type { NetdevContext, NetdevType } from './types';

const unixPaths = new WeakMap<Netdev, string>();

function inetAddr(a: Extract<SocketAddressOptions, { type: 'inet' }>): NativeSockAddr & { family: 'inet' } {
  return { family: 'inet', host: resolveIpv4(a.host), port: portNumber(a.port) };
}

interface Plan {
  fd: number;
  dest: NativeSockAddr | null;
  info: string;
  unixPath?: string;
}

/** The socket and destination a dgram netdev uses, with QEMU 7.2's info text. */
function plan(o: DgramNetdevOptions, ctx: NetdevContext): Plan {
  const { local, remote } = o;
  const dgramOpen = native().dgramOpen;
  if (remote && remote.type === 'inet' && isIpv4Multicast(remote.host)) {
    const group = inetAddr(remote);
    const info = `mcast=${group.host}:${group.port}`;
    if (local?.type === 'fd') return { fd: fdParam(local.str, ctx), dest: group, info };
    let mcastIf: string | undefined;
    if (local?.type === 'inet') {
      if (!/^\d+\.\d+\.\d+\.\d+$/.test(local.host))
        throw new OptionError(`localaddr '${local.host}' is not a valid IPv4 address`);
      mcastIf = local.host;
    }
    const fd = socketCall(o.id, () => dgramOpen({ group, ...(mcastIf !== undefined ? { mcastIf } : {}) }));
    return { fd, dest: group, info };
  }
  if (!local) throw new OptionError('dgram requires local= parameter');
  if (local.type === 'fd') {
    const fd = fdParam(local.str, ctx);
    if (socketFdType(o.id, fd) !== 'dgram') throw new OptionError(`${o.id}: fd=${fd} is not a datagram socket`);
    const si = native().socketInfo(fd);
    return { fd, dest: null, info: `fd=${fd} ${si.family === 'unix' ? 'unix' : 'inet'}` };
  }
  if (local.type === 'inet' && remote?.type === 'inet') {
    const l = inetAddr(local);
    const r = inetAddr(remote);
    const fd = socketCall(o.id, () => dgramOpen({ local: l }));
    return { fd, dest: r, info: `udp=${l.host}:${l.port}/${r.host}:${r.port}` };
  }
  if (local.type === 'unix' && remote?.type === 'unix') {
    removeStaleSocket(local.path);
    const fd = socketCall(o.id, () =>
      dgramOpen({ local: { family: 'unix', path: local.path, ...(local.abstract ? { abstract: true } : {}) } }),
    );
    return {
      fd,
      dest: { family: 'unix', path: remote.path, ...(remote.abstract ? { abstract: true } : {}) },
      info: `udp=${local.path}:${remote.path}`,
      ...(local.abstract ? {} : { unixPath: local.path }),
    };
  }
  throw new OptionError('only support inet or fd type for local');
}

export const dgramNetdev: NetdevType<DgramNetdevOptions> = {
  create(o, ctx, viaCli) {
    const dp = socketDataPlane(ctx, o.id, 'dgram');
    const p = plan(o, ctx);
    let client;
    try {
      client = newSocketClient(ctx, dp, o.id, 'dgram', o.iothread, { kind: 'dgram', dest: p.dest }, false);
    } catch (err) {
      closeSync(p.fd);
      throw err;
    }
    try {
      dp.setSocketFd(client.handle, p.fd);
    } catch (err) {
      dp.removeClient(client.handle);
      closeSync(p.fd);
      throw err;
    }
    client.infoStr = p.info;
    ctx.reg.add(client);
    const netdev = ctx.newNetdev({ options: o, clients: [client], viaCli });
    if (p.unixPath !== undefined) unixPaths.set(netdev, p.unixPath);
    return netdev;
  },
  async cleanup(netdev) {
    const path = unixPaths.get(netdev);
    if (path !== undefined) removeStaleSocket(path);
  },
};
