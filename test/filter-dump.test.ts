// filter-dump: a pcap capture of a netdev's frames, started and stopped over QMP while
// traffic crosses two TAPs in namespaces; tcpdump reads the file back. A flood into a tiny
// buffer shows that what the capture could not keep is counted (never silently lost) and
// that the forwarding itself is not held back.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { serveQmp } from '../lib/control';
import { formatStatsTable, netplaneStats } from '../lib/control/stats';
import { NativeDataPlane } from '../lib/dataplane/native-dataplane';
import { Topology } from '../lib/topology/topology';
import { NetNs, npName, sh } from './helpers/netns';
import { tempDir } from './helpers/qemu';
import { QmpTestClient } from './helpers/qmp-client';
import { needsPrivileged } from './helpers/tools';

const T = { timeout: 60_000 };

interface Pair {
  topology: Topology;
  dp: NativeDataPlane;
  nsA: NetNs;
  nsB: NetNs;
  ipB: string;
  client: QmpTestClient;
  dir: string;
}

/** Two TAPs linked by netplane, one per namespace, with static neighbours (no ARP) and no
 *  IPv6, so the only frames crossing are the ones the test sends. */
async function withPair(fn: (p: Pair) => Promise<void>): Promise<void> {
  const dp = new NativeDataPlane();
  const topology = new Topology({ dataPlane: dp, warn: () => {} });
  const dir = tempDir('fdump');
  const ifA = npName('fa');
  const ifB = npName('fb');
  const nsA = new NetNs('fA');
  const nsB = new NetNs('fB');
  const qmp = await serveQmp(topology, { path: path.join(dir, 'qmp.sock'), errorReport: () => {} });
  const { client } = await QmpTestClient.open(path.join(dir, 'qmp.sock'));
  try {
    topology.addNetdev({ type: 'tap', id: 'ta', ifname: ifA, vnet_hdr: true });
    topology.addNetdev({ type: 'tap', id: 'tb', ifname: ifB, vnet_hdr: true });
    topology.link('ta', 'tb');
    const net = 10 + (process.pid % 200);
    const [macA, macB] = ['52:54:00:f0:00:01', '52:54:00:f0:00:02'];
    for (const ns of [nsA, nsB]) ns.disableIpv6();
    nsA.adopt(ifA, `10.215.${net}.1/24`, macA);
    nsB.adopt(ifB, `10.215.${net}.2/24`, macB);
    nsA.exec('ip', ['neigh', 'replace', `10.215.${net}.2`, 'lladdr', macB, 'dev', ifA, 'nud', 'permanent']);
    nsB.exec('ip', ['neigh', 'replace', `10.215.${net}.1`, 'lladdr', macA, 'dev', ifB, 'nud', 'permanent']);
    await fn({ topology, dp, nsA, nsB, ipB: `10.215.${net}.2`, client, dir });
  } finally {
    client.close();
    await qmp.close();
    await topology.close();
    dp.close();
    nsA[Symbol.dispose]();
    nsB[Symbol.dispose]();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** tcpdump's one line per frame. */
function readPcap(file: string): string[] {
  return sh('tcpdump', ['-n', '-r', file], {})
    .split('\n')
    .filter((l) => l.trim() !== '');
}

test(
  'object-add starts a capture at run time, object-del completes it; tcpdump reads every frame',
  { ...needsPrivileged('ping', 'tcpdump'), ...T },
  async () => {
    await withPair(async ({ topology, nsA, ipB, client, dir }) => {
      const file = path.join(dir, 'cap.pcap');
      nsA.exec('ping', ['-c', '2', '-i', '0.2', '-W', '1', ipB]); // before: not captured
      const add = await client.execute('object-add', {
        'qom-type': 'filter-dump',
        id: 'f0',
        netdev: 'ta',
        file,
        maxlen: 96,
      });
      assert.deepEqual(add, { return: {} });
      const info = await client.execute('human-monitor-command', { 'command-line': 'info network' });
      assert.match(info.return, /filters:\r\n {2}- f0: type=filter-dump,file=.*,maxlen=96,position=tail,status=on/);
      const ping = nsA.exec('ping', ['-c', '5', '-i', '0.2', '-W', '1', ipB]);
      assert.match(ping, /5 received/);
      const row = netplaneStats(topology, 'ta')[0]!;
      assert.equal(row.capture?.frames, 10, JSON.stringify(row.capture));
      assert.equal(row.capture?.dropped, 0);
      assert.deepEqual(await client.execute('object-del', { id: 'f0' }), { return: {} });
      nsA.exec('ping', ['-c', '2', '-i', '0.2', '-W', '1', ipB]); // after: not captured
      const frames = readPcap(file);
      assert.equal(frames.length, 10, frames.join('\n'));
      assert.equal(frames.filter((l) => /ICMP echo request/.test(l)).length, 5);
      assert.equal(frames.filter((l) => /ICMP echo reply/.test(l)).length, 5);
      // maxlen=96: the snap length in the header, and tcpdump sees the frames cut there.
      assert.equal(fs.readFileSync(file).readUInt32LE(16), 96);
      const again = await client.execute('object-del', { id: 'f0' });
      assert.deepEqual(again, { error: { class: 'GenericError', desc: "object 'f0' not found" } });
    });
  },
);

test(
  'a flood into a 4 KiB buffer: what the capture could not keep is counted, forwarding goes on',
  { ...needsPrivileged('ping', 'tcpdump'), ...T },
  async () => {
    await withPair(async ({ topology, nsA, ipB, dir }) => {
      const file = path.join(dir, 'flood.pcap');
      topology.addFilter({
        qomType: 'filter-dump',
        id: 'f1',
        netdev: 'ta',
        file,
        'buffer-size': 4096,
      });
      const out = nsA.exec('ping', ['-f', '-c', '3000', '-s', '1200', '-W', '1', ipB], { allowFail: true });
      const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
      assert.ok(m, out);
      const crossed = Number(m[1]) + Number(m[2]);
      assert.ok(Number(m[2]) > 2900, `the flood crossed: ${out}`);
      const table = formatStatsTable(netplaneStats(topology));
      const row = netplaneStats(topology, 'ta')[0]!;
      const cap = row.capture!;
      assert.ok(cap.dropped > 0, `a 4 KiB buffer cannot keep a flood: ${JSON.stringify(cap)}`);
      assert.equal(cap.frames + cap.dropped, crossed, JSON.stringify(cap));
      assert.match(
        table,
        new RegExp(
          `capture f1 on ta \\(.*\\): ${cap.frames} frames captured, .* ${cap.dropped} not captured \\(buffer full\\)`,
        ),
      );
      const last = topology.delFilter('f1')!;
      assert.equal(last.frames, cap.frames);
      assert.equal(last.written, last.frames, 'every captured frame reached the file');
      assert.equal(last.writeErrors, 0);
      assert.equal(readPcap(file).length, last.written);
    });
  },
);
