// -device virtio-net-pci: check the properties, take the netdev's queues, create the
// virtio-net model and one queue client per queue pair (QEMU's virtio_net_device_realize
// and set_netdev), plus the adapter through which the model drives its netdev peer.
import { NetplaneError } from '../errors';
import { formatMac, parseMac, type MacBytes, type MacPool } from '../devices/mac';
import { VirtioNet, type VirtioNetPeer } from '../devices/virtio-net';
import { isIdentifier } from '../options/errors';
import { MAX_TAP_QUEUES } from '../options/netdev';
import type { DeviceOptions } from '../options/types';
import type { DataPlane } from './dataplane';
import { invalid } from './internal';
import { Client, peerClients, type ClientRegistry } from './net-client';
import type { Netdev } from './netdev';
import type { Nic } from './nic';
import { NicVirtqueues, runsVirtqueues } from './nic-virtqueues';
import { vhostUserPassThrough } from './netdevs/vhost-user';
import { PassThroughDevice } from '../vhost-user/passthrough-device';

interface VringEventLike {
  type?: string;
  handle?: number;
  ring?: string;
  reason?: string;
}

/** How a NIC's queues meet the hypervisor (Topology.addDevice's second argument). */
export interface NicQueueOptions {
  /**
   * 'port' (default): each queue is a packet port the hypervisor reads and writes (its own
   * virtio rings, walked in JavaScript). 'virtqueues': the engine serves the guest's rings
   * itself (nic.virtqueues: memory, then each queue as the driver sets it up).
   */
  queues?: 'port' | 'virtqueues';
  /**
   * For 'port': 'vnet-hdr' (default) frames carry the header the model negotiated (the
   * device's host_hdr_len); 'bare': never a vnet header, whatever was negotiated, for a
   * hypervisor whose own model adds and strips it.
   */
  frames?: 'vnet-hdr' | 'bare';
}

const NIC_MODELS = new Set(['virtio-net-pci']);

export interface RealizeContext {
  readonly reg: ClientRegistry;
  readonly dataPlane: DataPlane | undefined;
  readonly macs: MacPool;
  /** NICs in creation order. */
  readonly nics: readonly Nic[];
  netdevOf(c: Client): Netdev | undefined;
  /** A Nic owned by the Topology (deleted through it). */
  newNic(init: ConstructorParameters<typeof Nic>[1]): Nic;
  /** List the NIC and remember its clients and its netdev. */
  adopt(nic: Nic, netdev: Netdev | undefined): void;
  /** The next peripheral-anon index (QEMU numbers id-less devices). */
  nextAnonIndex(): number;
  /** Run an operation the guest caused; failures become 'error' events, not throws. */
  guard(fn: () => void): boolean;
}

/** Realize, attach the netdev's queues, reset; the NIC is listed when this returns. */
export function realizeNic(opts: DeviceOptions, ctx: RealizeContext, q: NicQueueOptions = {}): Nic {
  if (typeof opts !== 'object' || opts === null) throw new TypeError('device options must be an object');
  const queues = q.queues ?? 'port';
  const frames = q.frames ?? 'vnet-hdr';
  if (queues !== 'port' && queues !== 'virtqueues')
    throw invalid(`queues must be 'port' or 'virtqueues', got '${String(queues)}'`);
  if (frames !== 'vnet-hdr' && frames !== 'bare')
    throw invalid(`frames must be 'vnet-hdr' or 'bare', got '${String(frames)}'`);
  if (queues === 'virtqueues' && q.frames !== undefined)
    throw invalid("frames applies to packet ports only (queues: 'port')");
  if (queues === 'virtqueues' && !runsVirtqueues(ctx.dataPlane)) {
    throw new NetplaneError(
      'NETPLANE_INVALID_STATE',
      "queues: 'virtqueues' needs a data plane that runs virtqueues (NativeDataPlane)",
    );
  }
  if (!NIC_MODELS.has(opts.driver)) throw invalid(`'${String(opts.driver)}' is not a valid device model name`);
  const model = opts.driver;
  if (opts.id !== undefined) {
    if (!isIdentifier(opts.id)) throw invalid("Parameter 'id' expects an identifier");
    if (ctx.nics.some((n) => n.id === opts.id)) {
      throw new NetplaneError('NETPLANE_DUPLICATE_ID', `Duplicate ID '${opts.id}' for device`);
    }
  }
  let requestedMac: MacBytes | undefined;
  if (opts.mac !== undefined) {
    requestedMac = parseMac(opts.mac);
    if (!requestedMac) throw invalid(`Property 'virtio-net-device.mac' doesn't take value '${opts.mac}'`);
  }

  // set_netdev: every non-NIC client of that name, all unpeered.
  let peers: Client[] = [];
  let netdev: Netdev | undefined;
  if (opts.netdev !== undefined) {
    peers = ctx.reg.named(opts.netdev, 'nic');
    if (peers.length === 0) throw invalid(`Property 'virtio-net-device.netdev' can't find value '${opts.netdev}'`);
    if (peers.length > MAX_TAP_QUEUES) {
      throw invalid(`queues of backend '${opts.netdev}'(${peers.length}) exceeds QEMU limitation(${MAX_TAP_QUEUES})`);
    }
    if (peers.some((p) => p.peer)) {
      throw new NetplaneError(
        'NETPLANE_IN_USE',
        `Property 'virtio-net-device.netdev' can't take value '${opts.netdev}', it's in use`,
      );
    }
    netdev = ctx.netdevOf(peers[0]);
  }
  // Native virtqueues on a vhost-user netdev pass through to its back-end.
  const passThroughHooks = queues === 'virtqueues' && netdev ? vhostUserPassThrough(netdev) : undefined;

  const mac = ctx.macs.assign(requestedMac);
  const clients: Client[] = []; // the NIC's queues, filled at realize below
  let device: VirtioNet;
  // Made once the device is: the device's queue-pair changes reach it through its peer.
  let passThrough: PassThroughDevice | undefined;
  try {
    device = new VirtioNet({
      mac,
      maxQueuePairs: Math.max(1, peers.length),
      ...(passThroughHooks
        ? { peer: vhostUserPeer((pair, on) => passThrough?.setPairEnabled(pair, on)) }
        : netdev
          ? {
              peer: peerAdapter(
                netdev,
                clients,
                ctx,
                queues === 'port' && frames === 'vnet-hdr',
                queues === 'virtqueues',
              ),
            }
          : {}),
      options: opts,
    });
  } catch (err) {
    ctx.macs.release(mac);
    throw err;
  }

  // Realize: N queue clients, each peered with netdev queue i (which takes index i).
  const iothread = peers[0]?.iothread;
  const n = Math.max(1, peers.length);
  for (let i = 0; i < n; i++) {
    const name = opts.id ?? ctx.reg.autoName(model);
    const c = new Client(ctx.reg.nextHandle(), name, model, 'nic', false, iothread);
    c.queueIndex = i;
    if (i === 0) c.infoStr = nicInfoStr(model, mac);
    c.vnetHdrLen = frames === 'bare' ? 0 : device.hostHdrLen;
    const peer = peers[i];
    if (peer) {
      peerClients(c, peer);
      peer.queueIndex = i;
    }
    ctx.reg.add(c);
    clients.push(c);
    const placed = iothread !== undefined ? { iothread } : {};
    if (queues === 'virtqueues') {
      ctx.dataPlane?.addClient({ handle: c.handle, kind: 'virtio-device', name: c.name, queueIndex: i, ...placed });
    } else {
      ctx.dataPlane?.addClient({
        handle: c.handle,
        kind: 'port',
        name: c.name,
        queueIndex: i,
        vnetHdrLen: c.vnetHdrLen,
        ...(frames === 'bare' ? { bare: true } : {}),
        ...placed,
      });
    }
    if (peer) ctx.dataPlane?.connect(c.handle, peer.handle);
  }

  // QEMU's QOM path: id-less devices are numbered under peripheral-anon.
  const qomPath =
    opts.id !== undefined
      ? `/machine/peripheral/${opts.id}`
      : `/machine/peripheral-anon/device[${ctx.nextAnonIndex()}]`;
  passThrough = passThroughHooks
    ? new PassThroughDevice(
        device,
        (e) =>
          void ctx.guard(() => {
            throw e;
          }),
      )
    : undefined;
  const virtqueues =
    queues === 'virtqueues' && runsVirtqueues(ctx.dataPlane)
      ? new NicVirtqueues(
          ctx.dataPlane,
          device,
          clients.map((c) => c.handle),
          passThrough,
        )
      : undefined;
  const nic = ctx.newNic({ options: opts, device, clients, mac, ...(virtqueues ? { virtqueues } : {}) });
  ctx.adopt(nic, netdev);
  if (passThrough) passThroughHooks!.use(passThrough);
  if (virtqueues) {
    nic.disposers.push(
      device.onReset(() => virtqueues.reset()),
      () => virtqueues.close(),
    );
    if (passThrough) nic.disposers.push(() => void passThroughHooks!.drop(passThrough));
    // The engine's 'vring-error' for one of this NIC's pairs becomes the NIC's 'queue-error'.
    const events = ctx.dataPlane as unknown as {
      on?: (ev: 'event', fn: (e: VringEventLike) => void) => void;
      off?: (ev: 'event', fn: (e: VringEventLike) => void) => void;
    };
    if (typeof events.on === 'function') {
      const onEvent = (e: VringEventLike): void => {
        const pair = clients.findIndex((c) => c.handle === e.handle);
        if (e.type === 'vring-error' && pair >= 0) {
          nic.emit('queue-error', { pair, ring: e.ring === 'tx' ? 'tx' : 'rx', reason: e.reason ?? '' });
        }
      };
      events.on('event', onEvent);
      nic.disposers.push(() => events.off?.('event', onEvent));
    }
  }
  nic.disposers.push(
    device.onMacChange((m) => (clients[0].infoStr = nicInfoStr(model, m))),
    device.onConfigChange(() => nic.emit('config-change')),
    device.onRxFilterChanged(() =>
      nic.emit('rx-filter-changed', {
        ...(nic.id !== undefined ? { name: nic.id } : {}),
        path: `${qomPath}/virtio-backend`,
      }),
    ),
  );
  // The machine reset a plugged device goes through: QEMU 7.2 detaches queues >= 1 here.
  device.reset();
  return nic;
}

/**
 * A vhost-user back-end takes the guest's vnet header itself (its offloads follow the acked
 * features, and the back-end's offer limits them: PassThroughDevice.checkOffer); there is
 * nothing for the model to set on the netdev. No UFO / USO, as QEMU's vhost-user peer. A
 * queue pair the guest enables or disables goes to `setPairEnabled` (SET_VRING_ENABLE).
 */
function vhostUserPeer(setPairEnabled: (pair: number, on: boolean) => void): VirtioNetPeer {
  return {
    hasVnetHdr: true,
    hasUfo: false,
    hasUso: false,
    isTap: false,
    setVnetHdrLen: () => false,
    setOffloads: () => undefined,
    setQueueEnabled: setPairEnabled,
  };
}

/**
 * What the virtio-net model may do to the netdev peered with its queues. A header length
 * change also reaches the NIC's own queue client when `nicFollows` (a packet port with the
 * negotiated header): it then exchanges frames with that header with the tap (the device's
 * host_hdr_len), so the data plane passes them unchanged. A bare port keeps no header, and
 * native virtqueues take theirs (and the tap's offloads) from the features the engine gets.
 */
function peerAdapter(
  netdev: Netdev,
  nicClients: readonly Client[],
  ctx: RealizeContext,
  nicFollows: boolean,
  engineOffloads: boolean,
): VirtioNetPeer {
  const tap = netdev.tap;
  if (!tap) {
    const noop = () => undefined;
    return {
      hasVnetHdr: false,
      hasUfo: false,
      hasUso: false,
      isTap: false,
      setVnetHdrLen: () => false,
      setOffloads: noop,
      setQueueEnabled: noop,
    };
  }
  const dp = ctx.dataPlane;
  const queue = (q: number) => netdev.clients[q];
  return {
    hasVnetHdr: tap.hasVnetHdr,
    hasUfo: tap.hasUfo,
    hasUso: tap.hasUso,
    isTap: true,
    setVnetHdrLen: (q, len) =>
      ctx.guard(() => {
        if (q === 0) tap.setVnetHdrLen(len); // TUNSETVNETHDRSZ is per interface: queue 0 does all
        for (const c of nicFollows ? [queue(q), nicClients[q]] : [queue(q)]) {
          if (c && c.vnetHdrLen !== len) {
            c.vnetHdrLen = len;
            dp?.setVnetHdrLen(c.handle, len);
          }
        }
      }),
    // With native virtqueues the engine sets the tap's offloads from the features it gets.
    setOffloads: (o) => void (engineOffloads || ctx.guard(() => tap.setOffloads(o))),
    setQueueEnabled: (q, enabled) =>
      void ctx.guard(() => {
        const was = tap.queueEnabled(q);
        tap.setQueueEnabled(q, enabled); // a no-op when already so, as QEMU's tap_enable/disable
        const c = queue(q);
        if (c && was !== enabled) dp?.setQueueEnabled(c.handle, enabled);
      }),
  };
}

function nicInfoStr(model: string, mac: MacBytes): string {
  return `model=${model},macaddr=${formatMac(mac)}`;
}
