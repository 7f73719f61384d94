// One suite, two data planes: every scenario here runs against the fake the topology tests
// use (RecordingDataPlane) and against the native one, so the fake cannot drift from what
// the engine accepts. Scenarios that need a capability only one of them has (frames,
// counters) say so and run where it exists. Nothing here needs privileges: the native side
// uses hub ports and packet ports only.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { NativeDataPlane } from '../lib/dataplane/native-dataplane';
import type { PacketPort } from '../lib/dataplane/packet-port';
import { DROP_REASONS } from '../lib/native';
import type { DataPlane } from '../lib/topology/dataplane';
import { Topology } from '../lib/topology/topology';
import { RecordingDataPlane } from './helpers/fake-tap';

interface Subject {
  name: string;
  create(): DataPlane;
  /** It keeps counters (DataPlane.stats). */
  counts: boolean;
  /** Two packet ports made directly and connected to each other; absent: moves no frames. */
  portPair?(dp: DataPlane): [PacketPort, PacketPort];
}

const subjects: Subject[] = [
  { name: 'fake (RecordingDataPlane)', create: () => new RecordingDataPlane(), counts: false },
  {
    name: 'native (NativeDataPlane)',
    create: () => new NativeDataPlane(),
    counts: true,
    portPair: (dp) => {
      const native = dp as NativeDataPlane;
      const a = native.createPort('np-ca');
      const b = native.createPort('np-cb');
      native.connect(a.handle, b.handle);
      return [a, b];
    },
  },
];

/** Run `body` on a fresh data plane of that kind and close it afterwards. */
async function withDataPlane(s: Subject, body: (dp: DataPlane) => void | Promise<void>): Promise<void> {
  const dp = s.create();
  try {
    await body(dp);
  } finally {
    dp.close?.();
  }
}

/** Clients 1 (port 'a'), 2 (hub port 'h' on hub 0) and 3 (port 'c'), none peered. */
function addThree(dp: DataPlane): void {
  dp.addClient({ handle: 1, kind: 'port', name: 'a', queueIndex: 0 });
  dp.addClient({ handle: 2, kind: 'hubport', name: 'h', queueIndex: 0, hubId: 0 });
  dp.addClient({ handle: 3, kind: 'port', name: 'c', queueIndex: 0 });
}

/** A 60-byte Ethernet frame whose payload starts with `tag`. */
function frame(tag: number): Uint8Array {
  const f = new Uint8Array(60);
  f.set([0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x88, 0xb5], 0); // local MACs, experimental ethertype
  f[14] = tag;
  return f;
}

/** The next batch `port` delivers, copied (the views are valid only until the next read). */
function nextBatch(port: PacketPort, timeoutMs = 5000): Promise<Uint8Array[]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`no frames on ${port.name} within ${timeoutMs} ms`));
    }, timeoutMs);
    const stop = port.onFrames((batch) => {
      if (batch.length === 0) return;
      clearTimeout(timer);
      stop();
      resolve(batch.map((f) => Uint8Array.from(f)));
    });
  });
}

for (const s of subjects) {
  describe(`data plane contract: ${s.name}`, () => {
    test('a handle is added once', () =>
      withDataPlane(s, (dp) => {
        dp.addClient({ handle: 1, kind: 'port', name: 'a', queueIndex: 0, vnetHdrLen: 0 });
        assert.throws(() => dp.addClient({ handle: 1, kind: 'port', name: 'a', queueIndex: 0, vnetHdrLen: 0 }));
      }));

    test('connect peers two clients, each at most once, and both must exist', () =>
      withDataPlane(s, (dp) => {
        addThree(dp);
        dp.connect(1, 2);
        assert.throws(() => dp.connect(1, 3), 'a is peered already');
        assert.throws(() => dp.connect(3, 99), 'no client 99');
      }));

    test('control operations on an unknown handle throw', () =>
      withDataPlane(s, (dp) => {
        assert.throws(() => dp.removeClient(99));
        assert.throws(() => dp.setLinkDown(99, true));
        assert.throws(() => dp.setVnetHdrLen(99, 12));
      }));

    test('removing a client frees its peer for a new connection', () =>
      withDataPlane(s, (dp) => {
        addThree(dp);
        dp.connect(1, 2);
        dp.setLinkDown(1, true);
        dp.setVnetHdrLen(1, 12);
        dp.removeClient(2);
        dp.connect(1, 3);
        dp.sendRaw?.(1, frame(1));
      }));

    test('a topology of hubs and NICs drives it without a refused call', () =>
      withDataPlane(s, async (dp) => {
        const topo = new Topology({ dataPlane: dp, warn: () => {} });
        const plain = new Topology({ warn: () => {} });
        for (const t of [topo, plain]) {
          t.addNetdev({ type: 'hubport', id: 'h0', hubid: 0 });
          t.addNetdev({ type: 'hubport', id: 'h1', hubid: 0 });
          t.addDevice({ driver: 'virtio-net-pci', netdev: 'h0', id: 'n0', features: {} });
          t.addDevice({ driver: 'virtio-net-pci', netdev: 'h1', id: 'n1', features: {} });
          t.setLink('n0', false);
          t.delNetdev('h1');
          t.announceSelf({ initial: 50, max: 550, rounds: 0, step: 50 });
        }
        // The data plane changes nothing the topology reports.
        assert.equal(topo.infoNetwork(), plain.infoNetwork());
        assert.deepEqual(topo.startupWarnings(), plain.startupWarnings());
        await topo.close();
        await plain.close();
      }));

    // Capabilities a data plane may lack (the fake neither counts nor moves frames): those
    // scenarios exist only for the data planes that have them.
    if (s.counts)
      test('counters: one row per client, conserved, drops by reason in DROP_REASONS order', () =>
        withDataPlane(s, (dp) => {
          dp.addClient({ handle: 1, kind: 'port', name: 'a', queueIndex: 0 });
          dp.addClient({ handle: 2, kind: 'hubport', name: 'h', queueIndex: 0, hubId: 7 });
          dp.connect(1, 2);
          const rows = dp.stats!();
          assert.deepEqual(
            rows.map((r) => [r.handle, r.name, r.peer, r.hubId]),
            [
              [1, 'a', 2, null],
              [2, 'h', 1, 7],
            ],
          );
          for (const r of rows) {
            assert.deepEqual(Object.keys(r.drops), [...DROP_REASONS]);
            assert.equal(r.framesIn, r.framesOut + r.queued + r.dropped);
          }
        }));

    if (s.portPair)
      test('two packet ports connected to each other exchange frames both ways', () =>
        withDataPlane(s, async (dp) => {
          const [a, b] = s.portPair!(dp);
          const atB = nextBatch(b);
          assert.equal(a.send([frame(1), frame(2)]), true);
          assert.deepEqual(
            (await atB).map((f) => f[14]),
            [1, 2],
          );
          const atA = nextBatch(a);
          await b.sendAsync([frame(3)]);
          assert.deepEqual(
            (await atA).map((f) => [f.length, f[14]]),
            [[60, 3]],
          );
          dp.setLinkDown(a.handle, true); // a link-down sender's frames are dropped and counted
          assert.equal(a.send([frame(4)]), true);
          await waitFor(() => dp.stats!().find((r) => r.handle === a.handle)!.drops.linkDown === 1);
        }));
  });
}

async function waitFor(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
