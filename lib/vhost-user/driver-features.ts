// The virtio features netplane acks as the driver of a vhost-user back-end with no guest
// (-netdev vhost-user), from what the back-end offers and what the netdev's peer can take.
// The native driver (native/core/virtio_net/virtio_driver_queue.h) runs whatever this picks.
//
//  - EVENT_IDX, MRG_RXBUF, MQ (more than one pair): whenever offered.
//  - Towards the back-end (HOST_*): CSUM, then HOST_TSO4/6, HOST_ECN, HOST_UFO, HOST_USO
//    whenever offered. A peer without a vnet header never produces such frames, and a TAP
//    peer turns on (TUNSETOFFLOAD) only what was acked, so asking costs nothing.
//  - From the back-end (GUEST_*): GUEST_CSUM and the GSO kinds only when the peer takes
//    offloaded frames (a vnet header: a TAP with vnet_hdr=on), as QEMU offers guest
//    offloads only over a peer with one; otherwise every GSO frame would be segmented here.
//    The GSO kinds also need MRG_RXBUF: our rx buffers are 2 KiB, and a 64 KiB frame spans
//    them only as mergeable buffers (Linux's other way, "big packets" chains of pages per
//    buffer, would cost 64 KiB of posted memory per descriptor).
// Each offload bit is acked only with the bit the spec makes it depend on.
import { bit, hasBit, VirtioF, VirtioNetF } from '../devices/virtio-net-features';

const HOST_GSO = [VirtioNetF.HOST_TSO4, VirtioNetF.HOST_TSO6, VirtioNetF.HOST_UFO, VirtioNetF.HOST_USO];
const GUEST_GSO = [
  VirtioNetF.GUEST_TSO4,
  VirtioNetF.GUEST_TSO6,
  VirtioNetF.GUEST_UFO,
  VirtioNetF.GUEST_USO4,
  VirtioNetF.GUEST_USO6,
];

export interface DriverFeatureChoice {
  /** Queue pairs the netdev has (MQ when more than one). */
  queuePairs: number;
  /** Whether the peer takes offloaded frames (it has a vnet header). */
  peerTakesOffloads: boolean;
}

/** The features to ack for `offered` (a subset of it). */
export function chooseDriverFeatures(offered: bigint, c: DriverFeatureChoice): bigint {
  const has = (n: number): boolean => hasBit(offered, n);
  let f = 0n;
  const take = (n: number, when = true): void => {
    if (when && has(n)) f |= bit(n);
  };
  take(VirtioF.VERSION_1);
  take(VirtioNetF.MQ, c.queuePairs > 1);
  take(VirtioF.RING_EVENT_IDX);
  take(VirtioNetF.MRG_RXBUF);
  take(VirtioNetF.CSUM);
  const csum = hasBit(f, VirtioNetF.CSUM);
  for (const n of HOST_GSO) take(n, csum);
  take(VirtioNetF.HOST_ECN, hasBit(f, VirtioNetF.HOST_TSO4) || hasBit(f, VirtioNetF.HOST_TSO6));
  take(VirtioNetF.GUEST_CSUM, c.peerTakesOffloads);
  const guestGso = hasBit(f, VirtioNetF.GUEST_CSUM) && hasBit(f, VirtioNetF.MRG_RXBUF);
  for (const n of GUEST_GSO) take(n, guestGso);
  take(VirtioNetF.GUEST_ECN, hasBit(f, VirtioNetF.GUEST_TSO4) || hasBit(f, VirtioNetF.GUEST_TSO6));
  return f;
}
