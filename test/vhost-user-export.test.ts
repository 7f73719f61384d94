// VhostUserExport / VhostUserExports on a Topology (the library surface): the served queue
// pairs peer with TAP queues 0..n-1, a netdev in use is refused both ways, num-queues is
// bounded by the TAP's queues, the features follow the TAP's vnet header, and deleting the
// netdev ends the export. Unprivileged: fake TAPs, no data plane (state only).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { VhostUserExport, VhostUserExports } from '../lib/topology/exports/vhost-user-net';
import { Topology } from '../lib/topology/topology';
import { fakeTaps } from './helpers/fake-tap';
import { FakeFrontend, VU } from './helpers/vhost-user-frontend';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function setup(): { topo: Topology; dir: string } {
  const fakes = fakeTaps();
  const topo = new Topology({ openTap: fakes.openTap, warn: () => {} });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'np-vu-ex-'));
  dirs.push(dir);
  return { topo, dir };
}

describe('VhostUserExport on a Topology', () => {
  test('queue pairs peer with TAP queues in order; GET_QUEUE_NUM answers num-queues', { timeout: 20_000 }, async () => {
    const { topo, dir } = setup();
    topo.addNetdev({ type: 'tap', id: 'hn0', queues: 4, vnet_hdr: true });
    const ex = await VhostUserExport.create(topo, {
      id: 'vu0',
      netdev: 'hn0',
      numQueues: 2,
      address: { kind: 'listen', path: path.join(dir, 's') },
    });
    const served = topo.clients.filter((c) => c.name === 'vu0');
    assert.deepEqual(
      served.map((c) => [c.queueIndex, c.peer?.name, c.peer?.queueIndex]),
      [
        [0, 'hn0', 0],
        [1, 'hn0', 1],
      ],
    );
    assert.ok((ex.features & (1n << 11n)) !== 0n, 'HOST_TSO4 with a vnet header');
    assert.equal(ex.features & (1n << 30n), 0n, 'bit 30 is the protocol-features bit, added by the back-end');
    assert.equal(ex.features & (1n << 34n), 0n, 'RING_PACKED not offered by default');
    const fe = await FakeFrontend.connect(path.join(dir, 's'));
    assert.equal((await fe.call(VU.GET_QUEUE_NUM)).payload.readBigUInt64LE(0), 2n);
    assert.equal(ex.info().connected, true);
    assert.equal(ex.info()['data-path'], false);
    // packed: true offers RING_PACKED (on another tap).
    topo.addNetdev({ type: 'tap', id: 'hn2', vnet_hdr: true });
    const ex2 = await VhostUserExport.create(topo, {
      id: 'vu2',
      netdev: 'hn2',
      packed: true,
      address: { kind: 'listen', path: path.join(dir, 'u') },
    });
    assert.ok((ex2.features & (1n << 34n)) !== 0n);
    await ex2.close();
    // The netdev is in use now: -link and a second export are refused.
    topo.addNetdev({ type: 'tap', id: 'hn1' });
    assert.throws(() => topo.link('hn0', 'hn1'), /already in use/);
    await assert.rejects(
      VhostUserExport.create(topo, {
        id: 'vu1',
        netdev: 'hn0',
        address: { kind: 'listen', path: path.join(dir, 't') },
      }),
      /already in use/,
    );
    await ex.close();
    await fe.closed;
    assert.equal(topo.clients.filter((c) => c.name === 'vu0').length, 0, 'clients removed');
    // Free again: -link now fails only because the queue counts differ.
    assert.throws(() => topo.link('hn0', 'hn1'), /cannot link 'hn0' \(4 queues\)/);
    await topo.close();
  });

  test('num-queues beyond the TAP, an unknown or non-tap netdev', async () => {
    const { topo, dir } = setup();
    topo.addNetdev({ type: 'tap', id: 'hn0', queues: 2 });
    topo.addNetdev({ type: 'hubport', id: 'hp0', hubid: 0 });
    const at = (p: string) => ({ kind: 'listen' as const, path: path.join(dir, p) });
    await assert.rejects(
      VhostUserExport.create(topo, { id: 'a', netdev: 'hn0', numQueues: 3, address: at('a') }),
      /num-queues=3 needs 1 to 2 queues/,
    );
    await assert.rejects(
      VhostUserExport.create(topo, { id: 'b', netdev: 'nope', address: at('b') }),
      (e: Error & { code?: string }) => e.code === 'NETPLANE_NOT_FOUND',
    );
    await assert.rejects(
      VhostUserExport.create(topo, { id: 'c', netdev: 'hp0', address: at('c') }),
      /is not a tap netdev/,
    );
    assert.deepEqual(fs.readdirSync(dir), [], 'no socket left by a refused export');
  });

  test('deleting the netdev ends the export; duplicate ids are refused', { timeout: 20_000 }, async () => {
    const { topo, dir } = setup();
    topo.addNetdev({ type: 'tap', id: 'hn0' });
    const exports = new VhostUserExports(topo);
    await exports.add({ id: 'vu0', netdev: 'hn0', address: { kind: 'listen', path: path.join(dir, 's') } });
    await assert.rejects(
      exports.add({ id: 'vu0', netdev: 'hn0', address: { kind: 'listen', path: path.join(dir, 't') } }),
      /Duplicate ID 'vu0' for export/,
    );
    const fe = await FakeFrontend.connect(path.join(dir, 's'));
    await fe.call(VU.GET_FEATURES);
    topo.delNetdev('hn0');
    await fe.closed;
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(fs.existsSync(path.join(dir, 's')), false);
    await exports.closeAll();
    await topo.close();
  });
});
