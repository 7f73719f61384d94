// -netdev socket (QEMU 7.2's net/socket.c, the older spelling): listen=/connect= carry
// frames over TCP with the stream netdev's 4-byte length framing (one connection at a time;
// a listener accepts the next after a disconnect); udp=+localaddr= and mcast=[+localaddr=]
// carry bare frames in datagrams; fd= adopts a socket of either kind. The info texts are
// QEMU 7.2's ("socket: connection from ..", "socket: connect to ..", "socket: udp=..",
// "socket: mcast=..", "socket: fd=.."). QEMU 7.2 raises no QMP events for this netdev.
import { closeSync } from 'node:fs';
import { native, type NativeSockAddr } from '../../native';
import { OptionError } from '../../options/errors';
import { isIpv4Multicast, splitHostPort } from '../../options/netdev-socket';
import type { SocketNetdevOptions } from '../../options/types';
import { newSocketClient, resolveIpv4, socketCall, socketDataPlane, socketFdType } from './socket-common';
import { cleanupStreamNetdev, createStreamNetdev } from './stream';
import type { StreamPeer } from './stream-endpoint';
import { fdParam } from './tap';
import type { NetdevType } from './types';

function hostPort(text: string): NativeSockAddr & { family: 'inet' } {
  const { host, port } = splitHostPort(text);
  return { family: 'inet', host: resolveIpv4(host), port };
}

export const socketNetdev: NetdevType<SocketNetdevOptions> = {
  create(o, ctx, viaCli) {
    if (o.listen !== undefined || o.connect !== undefined) {
      const server = o.listen !== undefined;
      const addr = hostPort((o.listen ?? o.connect)!);
      const info = (state: string, peer?: StreamPeer): string => {
        if (state !== 'connected' || !peer || peer.type !== 'inet') return '';
        return server
          ? `socket: connection from ${peer.host}:${peer.port}`
          : `socket: connect to ${addr.host}:${addr.port}`;
      };
      return createStreamNetdev(o, ctx, viaCli, {
        type: 'socket',
        server,
        target: { kind: 'addr', addr },
        info,
        events: false,
        options: o,
      });
    }
    const dp = socketDataPlane(ctx, o.id, 'socket');
    let fd: number;
    let dest: NativeSockAddr | null;
    let info: string;
    if (o.fd !== undefined) {
      fd = fdParam(o.fd, ctx);
      const type = socketFdType(o.id, fd);
      if (type === 'stream') {
        return createStreamNetdev(o, ctx, viaCli, {
          type: 'socket',
          server: false,
          target: { kind: 'fd', fd },
          info: (state) => (state === 'connected' ? `socket: fd=${fd}` : ''),
          events: false,
          options: o,
        });
      }
      if (type !== 'dgram') throw new OptionError(`socket type=${type} for fd=${fd} is unknown`);
      dest = null;
      info = `socket: fd=${fd}`;
    } else if (o.mcast !== undefined) {
      const group = hostPort(o.mcast);
      if (!isIpv4Multicast(group.host)) {
        const hex = group.host
          .split('.')
          .map((b) => Number(b).toString(16).padStart(2, '0'))
          .join('');
        throw new OptionError(`specified mcastaddr ${group.host} (0x${hex}) does not contain a multicast address`);
      }
      let mcastIf: string | undefined;
      if (o.localaddr !== undefined) {
        if (!/^\d+\.\d+\.\d+\.\d+$/.test(o.localaddr))
          throw new OptionError(`localaddr '${o.localaddr}' is not a valid IPv4 address`);
        mcastIf = o.localaddr;
      }
      fd = socketCall(o.id, () => native().dgramOpen({ group, ...(mcastIf !== undefined ? { mcastIf } : {}) }));
      dest = group;
      info = `socket: mcast=${group.host}:${group.port}`;
    } else {
      const remote = hostPort(o.udp!);
      const local = hostPort(o.localaddr!);
      fd = socketCall(o.id, () => native().dgramOpen({ local }));
      dest = remote;
      info = `socket: udp=${remote.host}:${remote.port}`;
    }
    let client;
    try {
      client = newSocketClient(ctx, dp, o.id, 'socket', o.iothread, { kind: 'dgram', dest }, false);
      dp.setSocketFd(client.handle, fd);
    } catch (err) {
      if (client) dp.removeClient(client.handle);
      if (o.fd === undefined) closeSync(fd);
      throw err;
    }
    client.infoStr = info;
    ctx.reg.add(client);
    return ctx.newNetdev({ options: o, clients: [client], viaCli });
  },
  cleanup: (netdev) => cleanupStreamNetdev(netdev),
};
