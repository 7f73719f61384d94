// The guest driver's side of a virtio-net NIC in tests that drive the device model directly.
import assert from 'node:assert/strict';
import { bit, VirtioStatus } from '../../lib/devices/virtio-net-features';
import type { Nic } from '../../lib/topology';

/** A feature mask from VirtioF / VirtioNetF bit numbers. */
export const featureBits = (...bits: number[]): bigint => bits.reduce((m, b) => m | bit(b), 0n);

/** Bring-up as a driver does it: reset, ACKNOWLEDGE|DRIVER, features, FEATURES_OK, DRIVER_OK. */
export function startDriver(nic: Nic, features: bigint): void {
  const d = nic.device;
  d.setStatus(0);
  d.setStatus(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER);
  assert.equal(d.setDriverFeatures(features), true);
  d.setStatus(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER | VirtioStatus.FEATURES_OK);
  d.setStatus(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER | VirtioStatus.FEATURES_OK | VirtioStatus.DRIVER_OK);
}
