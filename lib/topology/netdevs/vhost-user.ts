// -netdev vhost-user,id=ID,chardev=CHR[,queues=N][,vhostforce=on]: a netdev whose back-end
// is a vhost-user socket (QEMU's net/vhost-user.c). Two drivers behind it:
//  * netplane itself (no guest: DPDK virtio-user's model, DriverDevice). Each queue pair is
//    a 'virtio-driver' client on np-q<i>, peered like a TAP queue (-link, a hub port).
//  * a hypervisor in this process: a Topology NIC with queues: 'virtqueues' on this netdev
//    hands its guest memory and rings through (PassThroughDevice); netplane carries only
//    control and its own queue clients stay idle. Plugging such a NIC while a back-end is
//    connected stops netplane's driver rings there (GET_VRING_BASE); unplugging it stops
//    the guest's, and netplane's driver takes over again from the next connection.
//
// The link follows the connection (ConnectionLink): the netdev starts link-down; when the
// chardev connects, the front-end (lib/vhost-user/frontend.ts) sends the whole set-up and
// the link goes up; when the connection closes the rings stop at once (frames for the
// back-end wait, then count as link-down drops) and the link goes down from a deferred
// one-shot task. With reconnect=N (client) or server=on the next connection re-sends
// everything (the acked features, the memory table, every ring with its saved base).
// set_link off by hand keeps the link down across reconnects; set_link on while no back-end
// is connected is undone (the link follows the connection).
//
// QMP events (netplane's, after QEMU 10's NETDEV_VHOST_USER_CONNECTED / _DISCONNECTED):
//   NETPLANE_VHOST_USER_CONNECTED    { "netdev-id", "chardev-id" }
//   NETPLANE_VHOST_USER_DISCONNECTED { "netdev-id", "chardev-id", "reason" }   reason: text or null
// and NETPLANE_LINK_CHANGE (cause "connection") from the link itself.
import type * as net from 'node:net';
import { NetplaneError } from '../../errors';
import { ChardevSocket } from '../../chardev/socket';
import { ConnectionLink } from '../../link/connection-link';
import { MAX_VHOST_USER_QUEUES } from '../../options/netdev';
import type { VhostUserNetdevOptions } from '../../options/types';
import { DriverDevice, isDriverDataPath } from '../../vhost-user/driver-device';
import { chooseDriverFeatures } from '../../vhost-user/driver-features';
import { VhostUserFrontend, type FrontendDevice } from '../../vhost-user/frontend';
import type { PassThroughDevice } from '../../vhost-user/passthrough-device';
import { TypedEmitter } from '../../util/typed-emitter';
import { Client } from '../net-client';
import type { Netdev } from '../netdev';
import type { NetdevContext, NetdevType } from './types';
import type { DataPlaneClientStats } from '../dataplane';
import type { NativeClientStats } from '../../native';

/** How long each reply of a back-end may take. */
export const VHOST_USER_REPLY_TIMEOUT_MS = 5000;

class FrontendSession extends TypedEmitter<{ open: []; close: [] }> {
  readonly #netdev: Netdev;
  readonly #chardevId: string;
  readonly #device: DriverDevice | undefined;
  readonly #ctx: NetdevContext;
  readonly #pairs: number;
  #chardev: ChardevSocket | undefined;
  #frontend: VhostUserFrontend | undefined;
  #passThrough: PassThroughDevice | undefined;
  #link: ConnectionLink | undefined;
  #acked: bigint | undefined;
  #adminUp = true;
  #selfChange = false;
  #closed = false;
  #failLogged = false;
  connects = 0;

  constructor(netdev: Netdev, chardevId: string, pairs: number, device: DriverDevice | undefined, ctx: NetdevContext) {
    super();
    this.#netdev = netdev;
    this.#chardevId = chardevId;
    this.#pairs = pairs;
    this.#device = device;
    this.#ctx = ctx;
    this.#link = new ConnectionLink({ setLink: (up) => this.#setLink(up) }, this);
    this.#link.on('error', (e) => ctx.reportError(e));
    // set_link by hand (any change we did not make): remember it; the link follows the connection.
    netdev.on('link-change', (up) => {
      if (this.#selfChange || this.#closed) return;
      this.#adminUp = up;
      if (up && !this.#link?.connected) this.#setLink(false);
    });
  }

  get connected(): boolean {
    return this.#link?.connected ?? false;
  }

  #setLink(up: boolean): void {
    this.#selfChange = true;
    try {
      this.#netdev.setLink(up && this.#adminUp);
    } finally {
      this.#selfChange = false;
    }
  }

  attach(chardev: ChardevSocket): void {
    this.#chardev = chardev;
    chardev.on('open', (s) => void this.#serve(s));
    // Once per outage, not at every retry.
    chardev.on('connect-failed', (m) => {
      if (this.#failLogged) return;
      this.#failLogged = true;
      this.#log(`${m} (retrying every ${chardev.arg.reconnect} s)`);
    });
  }

  /** A hypervisor's NIC takes the back-end over (see the file comment). */
  usePassThrough(pt: PassThroughDevice): void {
    if (this.#passThrough)
      throw new NetplaneError('NETPLANE_IN_USE', `netdev '${this.#netdev.id}' already has a guest`);
    this.#passThrough = pt;
    this.#acked = undefined; // what netplane's driver acked binds no guest
    this.#setLink(this.connected); // the NIC's link starts as the connection is
    const fe = this.#frontend;
    this.#device?.stop();
    if (!fe?.ready) return;
    for (let i = 0; i < this.#pairs * 2; i++) void fe.stopRing(i).catch(() => undefined);
    pt.connected(fe);
  }

  /** The hypervisor's NIC went away: its rings stop at the back-end. */
  async dropPassThrough(pt: PassThroughDevice): Promise<void> {
    if (this.#passThrough !== pt) return;
    await pt.close();
    this.#passThrough = undefined;
  }

  #log(line: string): void {
    this.#ctx.reportError(new NetplaneError('NETPLANE_VHOST_USER', `vhost-user netdev '${this.#netdev.id}': ${line}`));
  }

  async #serve(socket: net.Socket): Promise<void> {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    const pt = this.#passThrough;
    let fe: VhostUserFrontend;
    try {
      fe = new VhostUserFrontend(socket, {
        queuePairs: this.#pairs,
        // With a guest, its acked features; else the driver's choice from the offer and the
        // peer as it is now (a TAP relinked later takes effect at the next connection).
        features:
          pt?.features ??
          ((offered: bigint) =>
            chooseDriverFeatures(offered, { queuePairs: this.#pairs, peerTakesOffloads: this.#peerTakesOffloads() })),
        // With a guest, what it acked now is the rule (PassThroughDevice.checkOffer).
        ...(this.#acked !== undefined && !pt ? { requiredFeatures: this.#acked } : {}),
        replyTimeoutMs: VHOST_USER_REPLY_TIMEOUT_MS,
      });
    } catch (e) {
      socket.destroy();
      this.#log(e instanceof Error ? e.message : String(e));
      this.#chardev?.connectionClosed();
      return;
    }
    this.#frontend = fe;
    let up = false;
    fe.on('close', (reason) => {
      if (this.#frontend === fe) this.#frontend = undefined;
      // The queues stop at once; the link goes down from the deferred task.
      if (this.#passThrough) this.#passThrough.disconnected(fe);
      else this.#device?.stop();
      if (up) {
        this.emit('close');
        this.#ctx.emitEvent('NETPLANE_VHOST_USER_DISCONNECTED', {
          'netdev-id': this.#netdev.id,
          'chardev-id': this.#chardevId,
          reason,
        });
      }
      if (!this.#closed) this.#log(reason === null ? 'the back-end disconnected' : reason);
      this.#chardev?.connectionClosed();
    });
    try {
      const device: FrontendDevice = pt ?? this.#device ?? stateOnly();
      const r = await fe.setUp(device, pt ? (offered) => pt.checkOffer(offered) : undefined);
      if (fe.closed || this.#closed) return;
      pt?.connected(fe);
      this.#acked = r.features;
      this.#failLogged = false;
      up = true;
      this.connects++;
      this.emit('open');
      this.#ctx.emitEvent('NETPLANE_VHOST_USER_CONNECTED', {
        'netdev-id': this.#netdev.id,
        'chardev-id': this.#chardevId,
      });
    } catch (e) {
      // setUp closed the connection with the reason (logged by the close handler).
      if (!fe.closed) fe.close(e instanceof Error ? e.message : String(e));
    }
  }

  /**
   * Whether every queue's peer has a vnet header (so takes GSO frames whole): as the data
   * plane has them peered (a -link, a port), else as the topology does.
   */
  #peerTakesOffloads(): boolean {
    const rows = this.#ctx.dataPlane?.stats?.() as
      Array<DataPlaneClientStats & Partial<Pick<NativeClientStats, 'vnetHdrLen'>>> | undefined;
    return this.#netdev.clients.every((c) => {
      const peer = rows?.find((r) => r.handle === c.handle)?.peer;
      const hdr = peer != null ? rows?.find((r) => r.handle === peer)?.vnetHdrLen : c.peer?.vnetHdrLen;
      return (hdr ?? 0) > 0;
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#link?.dispose();
    this.#link = undefined;
    this.#frontend?.close();
    await this.#chardev?.close();
  }
}

/** Without a native data plane: the protocol runs against a device with no rings. */
function stateOnly(): FrontendDevice {
  return {
    memoryTable: () => {
      throw new NetplaneError('NETPLANE_VHOST_USER', 'this topology has no native data plane for vhost-user rings');
    },
    start: () => [],
  };
}

const sessions = new WeakMap<Netdev, { session: FrontendSession; device: DriverDevice | undefined; chardev: string }>();

/**
 * The pass-through hooks of a vhost-user netdev (undefined for any other netdev): a NIC with
 * queues: 'virtqueues' hands its device here at realize and takes it back at unplug.
 */
export function vhostUserPassThrough(
  netdev: Netdev,
): { use(pt: PassThroughDevice): void; drop(pt: PassThroughDevice): Promise<void> } | undefined {
  const s = sessions.get(netdev)?.session;
  return s && { use: (pt) => s.usePassThrough(pt), drop: (pt) => s.dropPassThrough(pt) };
}

/** Whether a vhost-user netdev has a back-end connected (for queries and tests). */
export function vhostUserConnected(netdev: Netdev): boolean {
  return sessions.get(netdev)?.session.connected ?? false;
}

/** The ring bases a vhost-user netdev resumes from, per ring (tests, diagnostics). */
export function vhostUserBases(netdev: Netdev): readonly number[] {
  return sessions.get(netdev)?.device?.bases ?? [];
}

export const vhostUserNetdev: NetdevType<VhostUserNetdevOptions> = {
  create(o, ctx, viaCli) {
    const pairs = o.queues ?? 1;
    // QEMU 7.2's order: the chardev exists, the queue count, then the chardev is free.
    if (ctx.chardevs.get(o.chardev) === undefined)
      throw new NetplaneError('NETPLANE_INVALID_OPTION', `chardev "${o.chardev}" not found`);
    if (!Number.isInteger(pairs) || pairs < 1 || pairs > MAX_VHOST_USER_QUEUES) {
      throw new NetplaneError(
        'NETPLANE_INVALID_OPTION',
        `vhost-user number of queues must be in range [1, ${MAX_VHOST_USER_QUEUES}]`,
      );
    }
    let arg;
    try {
      arg = ctx.chardevs.claim(o.chardev, `netdev '${o.id}'`);
    } catch (e) {
      // QEMU reports the busy chardev, then fails the netdev_add with its own line.
      if (viaCli || !/is in use/.test((e as Error).message)) throw e;
      ctx.reportError(e);
      throw new NetplaneError('NETPLANE_IN_USE', "Device 'vhost-user' could not be initialized", { cause: e });
    }
    const dp = ctx.dataPlane;
    const clients: Client[] = [];
    let device: DriverDevice | undefined;
    try {
      if (!arg.path) throw new NetplaneError('NETPLANE_INVALID_OPTION', `chardev "${o.chardev}" is not a unix socket`);
      for (let q = 0; q < pairs; q++) {
        const c = new Client(ctx.reg.nextHandle(), o.id, 'vhost_user', 'vhost-user', true, undefined);
        c.infoStr = `vhost-user${q} to ${o.chardev}`;
        c.queueIndex = q;
        c.vnetHdrLen = 12;
        dp?.addClient({ handle: c.handle, kind: 'virtio-driver', name: c.name, queueIndex: q });
        clients.push(c);
      }
      if (dp && isDriverDataPath(dp))
        device = new DriverDevice(
          dp,
          clients.map((c) => c.handle),
          o.id,
        );
      // No back-end yet: the link starts down.
      for (const c of clients) {
        c.linkDown = true;
        dp?.setLinkDown(c.handle, true);
      }
    } catch (err) {
      for (const c of clients) dp?.removeClient(c.handle);
      device?.close(true);
      ctx.chardevs.release(o.chardev);
      throw err;
    }
    for (const c of clients) ctx.reg.add(c);
    const netdev = ctx.newNetdev({ options: o, clients, viaCli });
    const session = new FrontendSession(netdev, o.chardev, pairs, device, ctx);
    sessions.set(netdev, { session, device, chardev: o.chardev });
    // The socket opens in the background; a client chardev without reconnect that cannot
    // connect is reported and stays down (QEMU would refuse to start).
    void ctx.track(
      ChardevSocket.open(arg).then(
        async (chr) => {
          if (netdev.deleted) {
            await chr.close();
            return;
          }
          ctx.chardevs.attach(o.chardev, chr);
          session.attach(chr);
        },
        (e) =>
          ctx.reportError(
            new NetplaneError('NETPLANE_VHOST_USER', `vhost-user netdev '${o.id}': ${(e as Error).message}`),
          ),
      ),
    );
    return netdev;
  },

  async cleanup(netdev, ctx) {
    const s = sessions.get(netdev);
    if (!s) return;
    sessions.delete(netdev);
    await s.session.close();
    s.device?.close(true);
    // QEMU 7.2 deletes a vhost-user netdev's chardev with it (qemu_chr_fe_deinit(.., true)).
    ctx.chardevs.release(s.chardev);
    ctx.chardevs.remove(s.chardev);
  },
};
