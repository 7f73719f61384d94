// Data plane counters over the control plane: QMP `query-netplane-stats` and HMP
// `info netplane`, thin layers over NativeDataPlane.stats(). Frames really cross the native
// data plane: NIC queues are JavaScript packet ports (no privilege needed) on a hub; with
// privilege, a 2-queue TAP pair linked queue by queue shows each queue on its own IOThread.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { serveQmp, type QmpService } from '../lib/control';
import { formatStatsTable, netplaneStats, type NetplaneClientStats } from '../lib/control/stats';
import { NativeDataPlane } from '../lib/dataplane/native-dataplane';
import { Topology } from '../lib/topology/topology';
import { needsAddon } from './helpers/addon';
import { NetNs, npName } from './helpers/netns';
import { needsPrivileged } from './helpers/tools';
import { tempDir } from './helpers/qemu';
import { QmpTestClient } from './helpers/qmp-client';

const T = { timeout: 30_000 };

interface Fixture {
  topology: Topology;
  dp: NativeDataPlane;
  qmp: QmpService;
  client: QmpTestClient;
}

async function withQmp(topology: Topology, dp: NativeDataPlane, fn: (f: Fixture) => Promise<void>): Promise<void> {
  const dir = tempDir('stats-test');
  const qmp = await serveQmp(topology, { path: path.join(dir, 'qmp.sock'), errorReport: () => {} });
  const { client } = await QmpTestClient.open(path.join(dir, 'qmp.sock'));
  try {
    await fn({ topology, dp, qmp, client });
  } finally {
    client.close();
    await qmp.close();
    await topology.close();
    dp.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A 60-byte broadcast frame of a local experimental ethertype, tagged with `n`. */
function frame(n: number): Uint8Array {
  const f = new Uint8Array(60);
  f.fill(0xff, 0, 6);
  f.set([0x52, 0x54, 0x00, 0x00, 0x00, 0x01], 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  f[14] = n;
  return f;
}

async function receive(port: AsyncIterable<Uint8Array[]>, count: number): Promise<number[]> {
  const tags: number[] = [];
  for await (const batch of port) {
    for (const f of batch) tags.push(f[14]!);
    if (tags.length >= count) break;
  }
  return tags;
}

function byName(rows: NetplaneClientStats[], name: string, queue = 0): NetplaneClientStats {
  const r = rows.find((x) => x.name === name && x['queue-index'] === queue);
  assert.ok(r, `no stats row for ${name}.${queue} in ${JSON.stringify(rows.map((x) => x.name))}`);
  return r;
}

function assertConserved(rows: NetplaneClientStats[]): void {
  for (const r of rows) {
    assert.equal(
      r['frames-in'],
      r['frames-out'] + r.queued + r.dropped,
      `${r.name}.${r['queue-index']}: in = out + queued + dropped`,
    );
    assert.equal(
      Object.values(r.drops).reduce((a, b) => a + b, 0),
      r.dropped,
      `${r.name}: drops by reason sum to dropped`,
    );
  }
}

/** Two NICs on hub 0 through hubports h0 and h1: n0 -> h0 -> hub -> h1 -> n1. */
function hubWithTwoNics(): { topology: Topology; dp: NativeDataPlane } {
  const dp = new NativeDataPlane();
  const topology = new Topology({ dataPlane: dp, warn: () => {} });
  topology.addNetdev({ type: 'hubport', id: 'h0', hubid: 0 });
  topology.addNetdev({ type: 'hubport', id: 'h1', hubid: 0 });
  topology.addDevice({ driver: 'virtio-net-pci', id: 'n0', netdev: 'h0', features: {} });
  topology.addDevice({ driver: 'virtio-net-pci', id: 'n1', netdev: 'h1', features: {} });
  return { topology, dp };
}

function nicPort(f: { topology: Topology; dp: NativeDataPlane }, id: string) {
  const nic = f.topology.nics.find((n) => n.id === id)!;
  const port = f.dp.port(nic.queues[0]!.handle);
  assert.ok(port, `NIC ${id} has a packet port`);
  return port;
}

test(
  'query-netplane-stats: counters of frames that crossed a hub, by client, with drops by reason',
  { ...needsAddon(), ...T },
  async () => {
    const env = hubWithTwoNics();
    await withQmp(env.topology, env.dp, async ({ client }) => {
      const names = (await client.execute('query-commands')).return.map((c: { name: string }) => c.name);
      assert.ok(names.includes('query-netplane-stats'), 'listed in query-commands');

      const tx = nicPort(env, 'n0');
      const rx = nicPort(env, 'n1');
      assert.equal(tx.send([frame(1), frame(2), frame(3)]), true);
      assert.deepEqual(await receive(rx, 3), [1, 2, 3]);

      let rows = (await client.execute('query-netplane-stats')).return as NetplaneClientStats[];
      assert.deepEqual(
        rows.map((r) => [r.name, r.kind]),
        [
          ['h0', 'hubport'],
          ['h1', 'hubport'],
          ['n0', 'nic'],
          ['n1', 'nic'],
        ],
      );
      const n0 = byName(rows, 'n0');
      assert.equal(n0['frames-in'], 3);
      assert.equal(n0['bytes-in'], 180);
      assert.equal(n0['frames-out'], 3, 'handed to its peer');
      assert.equal(n0.peer, 'h0');
      assert.equal(n0['link-up'], true);
      assert.equal(n0.enabled, true);
      assert.equal(typeof n0.iothread, 'string');
      assert.equal(byName(rows, 'h1')['hub-id'], 0);
      assert.equal(byName(rows, 'n1')['frames-out'], 3, 'written to the receiving ring');
      assertConserved(rows);

      // set_link off on n1: the hub still offers frames to it; n1 drops them as link-down.
      assert.deepEqual(await client.execute('set_link', { name: 'n1', up: false }), { return: {} });
      assert.equal(tx.send([frame(4), frame(5)]), true);
      for (let i = 0; i < 100; i++) {
        rows = (await client.execute('query-netplane-stats', { name: 'n1' })).return as NetplaneClientStats[];
        if (rows[0]!.dropped >= 2) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(rows.length, 1, 'name= selects that client');
      assert.equal(rows[0]!['link-up'], false);
      assert.equal(rows[0]!.drops['link-down'], 2);
      assert.equal(rows[0]!['frames-out'], 3, 'nothing more reached the ring');
      assertConserved((await client.execute('query-netplane-stats')).return);

      // Errors: an unknown name, a wrong argument type.
      assert.deepEqual((await client.execute('query-netplane-stats', { name: 'nosuch' })).error, {
        class: 'DeviceNotFound',
        desc: "Device 'nosuch' not found",
      });
      assert.deepEqual((await client.execute('query-netplane-stats', { name: 1 })).error, {
        class: 'GenericError',
        desc: "Invalid parameter type for 'name', expected: string",
      });
    });
  },
);

test(
  'HMP info netplane: a table of the same counters with the conservation check',
  { ...needsAddon(), ...T },
  async () => {
    const env = hubWithTwoNics();
    await withQmp(env.topology, env.dp, async ({ client, qmp }) => {
      assert.equal(nicPort(env, 'n0').send([frame(7)]), true);
      assert.deepEqual(await receive(nicPort(env, 'n1'), 1), [7]);
      const text = qmp.hmp.execute('info netplane');
      const lines = text.trimEnd().split('\n');
      assert.match(
        lines[0]!,
        /^name +queue +kind +iothread +link +peer +frames-in +bytes-in +frames-out +bytes-out +queued +dropped +drops$/,
      );
      assert.equal(lines.length, 6, text);
      assert.match(lines[3]!, /^n0 +0 +nic +\S+ +up +h0 +1 +60 +1 +60 +0 +0 +-$/);
      assert.match(lines[1]!, /^h0 +0 +hubport\/0 /);
      assert.equal(lines[5], 'conservation: frames-in = frames-out + queued + dropped holds for all 4 clients');
      // The same through QMP's human-monitor-command (CRLF line ends), and in `info`'s list.
      const viaQmp = (await client.execute('human-monitor-command', { 'command-line': 'info netplane' }))
        .return as string;
      assert.equal(viaQmp.split('\r\n')[0], lines[0]);
      assert.match(qmp.hmp.execute('info'), /^info netplane  -- /m);
    });
  },
);

test('without a data plane the commands say so instead of inventing zeros', T, async () => {
  const topology = new Topology({ warn: () => {} });
  topology.addNetdev({ type: 'hubport', id: 'h0', hubid: 0 });
  assert.throws(() => netplaneStats(topology), /no data plane is running/);
  const dir = tempDir('stats-nodp');
  const qmp = await serveQmp(topology, { path: path.join(dir, 'q.sock'), errorReport: () => {} });
  const { client } = await QmpTestClient.open(path.join(dir, 'q.sock'));
  try {
    const reply = await client.execute('query-netplane-stats');
    assert.equal(reply.error.class, 'GenericError');
    assert.match(reply.error.desc, /no data plane is running/);
    assert.match(qmp.hmp.execute('info netplane'), /^Error: no data plane is running/);
  } finally {
    client.close();
    await qmp.close();
    await topology.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the table reports a counter that does not balance', () => {
  const row: NetplaneClientStats = {
    name: 'x',
    'queue-index': 1,
    kind: 'tap',
    iothread: 'np-q1',
    'link-up': true,
    dead: false,
    enabled: true,
    'frames-in': 5,
    'bytes-in': 300,
    'frames-out': 3,
    'bytes-out': 180,
    queued: 0,
    dropped: 1,
    drops: {
      'link-down': 0,
      'no-peer': 1,
      'queue-full': 0,
      oversize: 0,
      'bad-vnet-hdr': 0,
      'write-error': 0,
      'dead-device': 0,
      purged: 0,
      filtered: 0,
    },
  };
  const text = formatStatsTable([row]);
  assert.match(text, /no-peer=1\n/);
  assert.match(text, /conservation VIOLATED:\n  x\.1: frames-in 5 != frames-out 3 \+ queued 0 \+ dropped 1\n$/);
});

test(
  'linked 2-queue TAPs: each queue index on its own IOThread, counted per queue',
  { ...needsPrivileged('ping'), ...T },
  async () => {
    const dp = new NativeDataPlane();
    const topology = new Topology({ dataPlane: dp, warn: () => {} });
    const ifA = npName('sa');
    const ifB = npName('sb');
    const nsA = new NetNs('sA');
    const nsB = new NetNs('sB');
    try {
      await withQmp(topology, dp, async ({ client }) => {
        // What `netplane -netdev tap,id=ta,ifname=..,queues=2,vnet_hdr=on ... -link ta,tb` builds.
        topology.addNetdev({ type: 'tap', id: 'ta', ifname: ifA, queues: 2, vnet_hdr: true });
        topology.addNetdev({ type: 'tap', id: 'tb', ifname: ifB, queues: 2, vnet_hdr: true });
        topology.link('ta', 'tb');
        const net = 10 + (process.pid % 200);
        nsA.adopt(ifA, `10.214.${net}.1/24`);
        nsB.adopt(ifB, `10.214.${net}.2/24`);
        const out = nsA.exec('ping', ['-c', '3', '-i', '0.2', '-W', '1', `10.214.${net}.2`], { allowFail: true });
        assert.match(out, / 3 received/, 'ping crosses the linked TAPs');
        const rows = (await client.execute('query-netplane-stats')).return as NetplaneClientStats[];
        assert.deepEqual(
          rows.map((r) => [r.name, r['queue-index'], r.iothread, r.peer]),
          [
            ['ta', 0, 'np-q0', 'tb'],
            ['ta', 1, 'np-q1', 'tb.1'],
            ['tb', 0, 'np-q0', 'ta'],
            ['tb', 1, 'np-q1', 'ta.1'],
          ],
        );
        const read = rows.filter((r) => r.name === 'ta').reduce((n, r) => n + r['frames-in'], 0);
        assert.ok(read >= 3, `echo requests read from ta (${read})`);
        assertConserved(rows);
      });
    } finally {
      nsA.dispose();
      nsB.dispose();
    }
    assert.equal(fs.existsSync(`/sys/class/net/${ifA}`), false);
  },
);
