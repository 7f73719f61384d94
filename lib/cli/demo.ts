// `netplane demo`: open a multiqueue TAP with vnet headers the way `-netdev tap,queues=2,
// vnet_hdr=on` does, show what netplane and the kernel say about it, close it and check that
// it is gone. Later the demo forwards traffic; for now it shows the TAP layer working.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';

import { Tap, TunFeature, flagNames } from '../tap';

function ipDetails(ifname: string): string {
  try {
    return execFileSync('ip', ['-d', 'link', 'show', 'dev', ifname], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    return `(ip -d link failed: ${(e as Error).message.split('\n')[0]})`;
  }
}

function row(label: string, value: string): void {
  console.log(`  ${label.padEnd(14)}${value}`);
}

export async function runDemo(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { queues: { type: 'string', default: '2' }, ifname: { type: 'string' } },
    strict: true,
  });
  const queues = Number(values.queues);

  const tap = Tap.open({ ifname: values.ifname, queues, vnetHdr: 'on' });
  const name = tap.ifname;
  try {
    console.log(`opened TAP ${name} (like -netdev tap,ifname=${name},queues=${tap.queues},vnet_hdr=on)`);
    const fds = Array.from({ length: tap.queues }, (_, q) => `q${q}: fd ${tap.fd(q)}${tap.queueEnabled(q) ? '' : ' (detached)'}`);
    row('queues', `${tap.queues} (${fds.join(', ')})`);
    row('kernel offers', `${flagNames(tap.features, TunFeature).join(' ')} (TUNGETFEATURES 0x${tap.features.toString(16)})`);
    row('vnet header', tap.hasVnetHdr ? `on, ${tap.vnetHdrLen} bytes` : 'off');
    // With a vnet header the kernel takes csum/TSO/ECN offloads; UFO and USO are probed.
    const offloads = ['csum', 'tso4', 'tso6', 'ecn', ...(tap.hasUfo ? ['ufo'] : []), ...(tap.hasUso ? ['uso4', 'uso6'] : [])];
    row('offloads', `${offloads.join(' ')} supported (UFO probe: ${tap.hasUfo ? 'yes' : 'no'}, USO probe: ${tap.hasUso ? 'yes' : 'no'}); applied now: ${tap.offloadFlags === 0 ? 'none' : '0x' + tap.offloadFlags.toString(16)}`);
    console.log('  ip -d link:');
    for (const line of ipDetails(name).trimEnd().split('\n')) console.log(`    ${line.trim()}`);
  } finally {
    await tap.close();
  }
  const gone = !fs.existsSync(`/sys/class/net/${name}`);
  console.log(gone ? `closed ${name}: the interface is gone` : `closed ${name}, but the interface still exists (persistent?)`);
  return gone || values.ifname !== undefined ? 0 : 1;
}
