// PacketBatch: the zero-allocation receive/forward API of packet ports, on the native data
// plane without TAPs (port-to-port peers, so no privileges are needed). A "feeder" port
// sends into the source port S; JavaScript reads S in batches and forwards into outputs
// O1/O2, whose peers ("sinks") receive what crossed. Checks contents, order, verdicts, drop
// counts, back-pressure, the errors for stale batches and bad entries, and that every frame
// is accounted for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NativeDataPlane } from '../lib/dataplane/native-dataplane';
import { PacketBatch } from '../lib/dataplane/packet-batch';
import type { PacketPort, PacketPortOptions } from '../lib/dataplane/packet-port';
import { NetplaneError } from '../lib/errors';
import type { Topology } from '../lib/topology/topology';
import { netplaneStats, formatStatsTable } from '../lib/control/stats';
import { unconserved } from './helpers/dataplane-env';

const kSmallRing = 256 * 1024;

/** A frame of `len` bytes (after `hdr` bytes of zero vnet header) whose payload says `seq`. */
function frame(seq: number, len = 60, hdr = 0): Uint8Array {
  const f = new Uint8Array(hdr + len);
  f.set([0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x88, 0xb5], hdr); // local MACs, experimental type
  new DataView(f.buffer).setUint32(hdr + 14, seq);
  return f;
}
const seqOf = (f: Uint8Array, hdr = 0): number => new DataView(f.buffer, f.byteOffset).getUint32(hdr + 14);

interface Bed {
  dp: NativeDataPlane;
  feeder: PacketPort;
  source: PacketPort;
  outputs: PacketPort[];
  sinks: PacketPort[];
}

/** feeder -> source, and outputs[k] -> sinks[k]; closed (and checked conserved) after body. */
async function withBed(
  nOutputs: number,
  opts: { ring?: PacketPortOptions; sinkRing?: PacketPortOptions },
  body: (b: Bed) => Promise<void> | void,
): Promise<void> {
  const dp = new NativeDataPlane();
  try {
    const port = (name: string, o?: PacketPortOptions): PacketPort => dp.createPort(`np-js-${name}`, o);
    const feeder = port('feeder', opts.ring);
    const source = port('source', opts.ring);
    dp.connect(feeder.handle, source.handle);
    const outputs: PacketPort[] = [];
    const sinks: PacketPort[] = [];
    for (let k = 0; k < nOutputs; k++) {
      outputs.push(port(`out${k}`, opts.ring));
      sinks.push(port(`sink${k}`, opts.sinkRing ?? opts.ring));
      dp.connect(outputs[k].handle, sinks[k].handle);
    }
    await body({ dp, feeder, source, outputs, sinks });
    assert.deepEqual(unconserved(dp.stats()), [], 'every client: in = out + queued + dropped');
  } finally {
    dp.close();
  }
}

/** Resolve once `port` has received `n` frames (copies), or reject after `ms`. */
function receive(port: PacketPort, n: number, ms = 10_000): Promise<Uint8Array[]> {
  return new Promise((resolve, reject) => {
    const got: Uint8Array[] = [];
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`${port.name}: ${got.length} of ${n} frames within ${ms} ms`));
    }, ms);
    const stop = port.onFrames((batch) => {
      for (const f of batch) got.push(Uint8Array.from(f));
      if (got.length >= n) {
        clearTimeout(timer);
        stop();
        resolve(got);
      }
    });
  });
}

const isCode = (code: string) => (e: unknown) => e instanceof NetplaneError && e.code === code;

const statsOf = (b: Bed, port: PacketPort) => b.dp.stats().find((c) => c.name === port.name)!;
/** Just what netplaneStats() reads of a topology: the data plane, no netdevs or captures. */
const fakeTopology = (dp: NativeDataPlane): Topology =>
  ({ dataPlane: dp, clients: [], filterStats: () => [] }) as unknown as Topology;
const framesOut = (b: Bed, port: PacketPort): number => statsOf(b, port).framesOut;

/** Publish `frames` on the feeder and wait until the source's ring holds all of them. */
async function feed(b: Bed, frames: Uint8Array[]): Promise<void> {
  const want = framesOut(b, b.source) + frames.length;
  await b.feeder.sendAsync(frames);
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (framesOut(b, b.source) >= want) return;
    if (Date.now() > deadline) throw new Error(`source got ${framesOut(b, b.source)} of ${want} frames`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('a batch holds the frames in order, in place; verdicts route them and drops are counted', async () => {
  await withBed(2, {}, async (b) => {
    const n = 40;
    await feed(
      b,
      Array.from({ length: n }, (_, i) => frame(i, 60 + i)),
    );
    const batch = b.source.createBatch();
    assert.equal(b.source.readBatch(batch), n);
    assert.equal(batch.length, n);
    assert.equal(batch.live, true);
    for (let i = 0; i < n; i++) {
      assert.equal(batch.lengths[i], 60 + i, `frame ${i} length`);
      assert.equal(new DataView(batch.data.buffer, batch.data.byteOffset).getUint32(batch.offsets[i] + 14), i);
      assert.equal(batch.targets[i], 0, 'verdicts start at output 0');
    }
    assert.deepEqual(batch.frame(3), frame(3, 63), 'frame(i) is a view of the same bytes');
    // Route: multiples of 3 dropped, odd ones to output 1, the rest to output 0; frame 4
    // edited in place and shortened to 50 bytes.
    for (let i = 0; i < n; i++) batch.targets[i] = i % 3 === 0 ? PacketBatch.DROP : i % 2;
    batch.data[batch.offsets[4] + 20] = 0xab;
    batch.lengths[4] = 50;
    const want0 = [...Array(n).keys()].filter((i) => i % 3 !== 0 && i % 2 === 0);
    const want1 = [...Array(n).keys()].filter((i) => i % 3 !== 0 && i % 2 === 1);
    const got0 = receive(b.sinks[0], want0.length);
    const got1 = receive(b.sinks[1], want1.length);
    assert.equal(batch.forward(b.outputs), true);
    assert.equal(batch.live, false, 'a completed forward releases the batch');
    assert.equal(batch.length, 0);
    const [f0, f1] = await Promise.all([got0, got1]);
    assert.deepEqual(
      f0.map((f) => seqOf(f)),
      want0,
    );
    assert.deepEqual(
      f1.map((f) => seqOf(f)),
      want1,
    );
    const four = f0[want0.indexOf(4)];
    assert.equal(four.length, 50);
    assert.equal(four[20], 0xab);
    assert.deepEqual(f1[0], frame(1, 61), 'contents cross unchanged');
    const dropped = Math.ceil(n / 3);
    assert.deepEqual(b.source.forwardCounts, { forwarded: n - dropped, dropped });
    assert.equal(framesOut(b, b.sinks[0]) + framesOut(b, b.sinks[1]) + dropped, n, 'conservation of frames');
    // The engine counts the verdicts too, where every drop is: the source port's counters,
    // as frames JavaScript handed back (in) and dropped (filtered), so the port stays conserved.
    const src = statsOf(b, b.source);
    assert.equal(src.drops.filtered, dropped, 'verdict drops are `filtered` in dp.stats()');
    assert.equal(src.dropped, dropped, 'and no other drop');
    assert.equal(src.framesIn, n + dropped, 'in: the n from the feeder and the dropped ones handed back');
    assert.equal(src.framesIn, src.framesOut + src.queued + src.dropped);
    const rows = netplaneStats(fakeTopology(b.dp));
    assert.equal(rows.find((r) => r.name === b.source.name)!.drops.filtered, dropped, 'query-netplane-stats row');
    assert.match(formatStatsTable(rows), new RegExp(`filtered=${dropped}\\b`), 'info netplane');
  });
});

test('frames with a vnet header forward with it; readBatch takes at most max and leaves the rest', async () => {
  const ring: PacketPortOptions = { vnetHdrLen: 12 };
  await withBed(1, { ring }, async (b) => {
    await feed(
      b,
      Array.from({ length: 10 }, (_, i) => frame(i, 60, 12)),
    );
    const batch = b.source.createBatch({ maxFrames: 4 });
    const got = receive(b.sinks[0], 10);
    const seen: number[] = [];
    let n: number;
    while ((n = b.source.readBatch(batch)) > 0) {
      assert.ok(n <= 4);
      for (let i = 0; i < n; i++) seen.push(seqOf(batch.data.subarray(batch.offsets[i]), 12));
      assert.equal(batch.forward(b.outputs[0]), true);
    }
    assert.deepEqual(seen, [...Array(10).keys()]);
    assert.deepEqual(
      (await got).map((f) => seqOf(f, 12)),
      [...Array(10).keys()],
    );
    assert.equal(b.source.readBatch(batch, 0), 0);
  });
});

test('batches() yields the same batch object, refilled, and ends when the port closes', async () => {
  await withBed(1, {}, async (b) => {
    const batch = b.source.createBatch();
    const seen: number[] = [];
    const loop = (async () => {
      for await (const got of b.source.batches(batch)) {
        assert.equal(got, batch);
        for (let i = 0; i < got.length; i++) seen.push(seqOf(got.data.subarray(got.offsets[i])));
        if (!got.forward(b.outputs[0])) await got.forwardAsync(b.outputs[0]);
      }
    })();
    assert.throws(() => b.source.onFrames(() => {}), isCode('NETPLANE_IN_USE'));
    const got = receive(b.sinks[0], 30);
    for (let k = 0; k < 3; k++) {
      await b.feeder.sendAsync(Array.from({ length: 10 }, (_, i) => frame(k * 10 + i)));
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal((await got).length, 30);
    assert.deepEqual(seen, [...Array(30).keys()]);
    b.dp.removeClient(b.source.handle);
    await loop; // the iterator ends with the port
  });
});

test('a stalled output pushes back: forward() stops in place, forwardAsync() finishes, nothing is lost', async () => {
  // Small rings and 1000-byte frames: the sink's ring (~250 frames) fills, then the output's.
  const ring: PacketPortOptions = { ringBytes: kSmallRing };
  await withBed(1, { ring }, async (b) => {
    const total = 1200;
    const batch = b.source.createBatch({ maxFrames: 200 });
    let stoppedOnce = false;
    let sent = 0;
    const feeding = (async () => {
      for (; sent < total; sent += 50) {
        await b.feeder.sendAsync(Array.from({ length: 50 }, (_, i) => frame(sent + i, 1000)));
      }
    })();
    const forwarding = (async () => {
      let moved = 0;
      while (moved < total) {
        const n = b.source.readBatch(batch);
        if (n === 0) {
          await new Promise((r) => setTimeout(r, 1));
          continue;
        }
        if (!batch.forward(b.outputs[0])) {
          stoppedOnce = true;
          assert.equal(batch.live, true, 'a partial forward keeps the batch');
          await batch.forwardAsync(b.outputs[0]);
        }
        moved += n;
      }
    })();
    // The sink reads nothing until the output has pushed back once.
    const deadline = Date.now() + 20_000;
    while (!stoppedOnce) {
      if (Date.now() > deadline) throw new Error('the output never filled');
      await new Promise((r) => setTimeout(r, 5));
    }
    const got = await receive(b.sinks[0], total, 30_000);
    await Promise.all([feeding, forwarding]);
    assert.deepEqual(
      got.map((f) => seqOf(f)),
      [...Array(total).keys()],
      'all frames, in order',
    );
    assert.deepEqual(b.source.forwardCounts, { forwarded: total, dropped: 0 });
    for (const s of b.dp.stats()) assert.equal(s.dropped, 0, `${s.name} dropped nothing`);
  });
});

test('a batch released before its forward finished counts the frames left behind as dropped', async () => {
  const ring: PacketPortOptions = { ringBytes: kSmallRing };
  await withBed(1, { ring }, async (b) => {
    await feed(
      b,
      Array.from({ length: 20 }, (_, i) => frame(i)),
    );
    // Fill the sink (it never reads) until the output's next frame waits in the sink's queue:
    // from then on the engine stops draining the output. Then fill the output's ring.
    const filler = b.outputs[0];
    const big = [frame(0, 1000)];
    const sinkQueued = (): number => b.dp.stats().find((c) => c.name === b.sinks[0].name)!.queued;
    const deadline = Date.now() + 10_000;
    while (sinkQueued() === 0) {
      if (Date.now() > deadline) throw new Error('the sink never filled');
      while (filler.send(big));
      await new Promise((r) => setTimeout(r, 5));
    }
    while (filler.send(big));
    const batch = b.source.createBatch();
    assert.equal(b.source.readBatch(batch), 20);
    batch.targets[0] = PacketBatch.DROP;
    const ok = batch.forward(filler);
    const counts = b.source.forwardCounts;
    assert.equal(ok, false, 'no room in the output');
    assert.equal(counts.dropped, 1);
    b.source.release();
    assert.equal(batch.live, false);
    const after = b.source.forwardCounts;
    assert.equal(after.forwarded + after.dropped, 20, 'every frame of the batch is accounted for');
    assert.equal(after.dropped, 20 - counts.forwarded);
    const src = statsOf(b, b.source);
    assert.equal(src.drops.filtered, 1, 'the verdict');
    assert.equal(src.drops.purged, after.dropped - 1, 'the frames left behind, in the engine too');
  });
});

test('stale batches, bad entries and bad outputs throw with a code and move nothing', async () => {
  await withBed(1, {}, async (b) => {
    const other = new NativeDataPlane();
    try {
      const foreign = other.createPort('np-js-foreign');
      const hdrPort = b.dp.createPort('np-js-hdr', { vnetHdrLen: 12 });
      await feed(
        b,
        Array.from({ length: 5 }, (_, i) => frame(i)),
      );
      const batch = b.source.createBatch();
      // Before any read: not live.
      assert.throws(() => batch.forward(b.outputs[0]), isCode('NETPLANE_STALE_BATCH'));
      assert.throws(() => b.feeder.readBatch(batch), isCode('NETPLANE_INVALID'));
      assert.throws(() => b.source.readBatch(batch, 10_000), isCode('NETPLANE_INVALID'));
      assert.throws(() => b.source.createBatch({ maxFrames: 0 }), isCode('NETPLANE_INVALID_OPTION'));
      assert.throws(() => b.source.createBatch({ maxFrames: 1.5 }), isCode('NETPLANE_INVALID_OPTION'));
      assert.equal(b.source.readBatch(batch), 5);
      assert.throws(() => batch.frame(5), isCode('NETPLANE_INVALID'));
      assert.throws(() => batch.frame(-1), isCode('NETPLANE_INVALID'));
      const frameError = (i: number) => (e: unknown) =>
        isCode('NETPLANE_INVALID_FRAME')(e) &&
        new RegExp(`^frame ${i}: .*nothing was forwarded`).test((e as Error).message);
      batch.targets[2] = 1; // only one output
      assert.throws(() => batch.forward(b.outputs[0]), frameError(2));
      batch.targets[2] = 0;
      batch.lengths[3] = 61; // longer than the frame
      assert.throws(() => batch.forward(b.outputs[0]), frameError(3));
      batch.lengths[3] = 13; // shorter than an Ethernet header
      assert.throws(() => batch.forward(b.outputs[0]), frameError(3));
      batch.lengths[3] = 60;
      const offset1 = batch.offsets[1];
      batch.offsets[1] = offset1 + 3;
      assert.throws(() => batch.forward(b.outputs[0]), frameError(1));
      batch.offsets[1] = batch.offsets[4] + 4096; // past the batch
      assert.throws(() => batch.forward(b.outputs[0]), frameError(1));
      batch.offsets[1] = offset1;
      assert.throws(() => batch.forward(foreign), isCode('NETPLANE_INVALID'));
      assert.throws(() => batch.forward(hdrPort), isCode('NETPLANE_INVALID'));
      assert.throws(() => batch.forward([{} as PacketPort]), isCode('NETPLANE_INVALID'));
      assert.throws(() => batch.forward(new Array(257).fill(b.outputs[0])), isCode('NETPLANE_INVALID'));
      assert.deepEqual(b.source.forwardCounts, { forwarded: 0, dropped: 0 }, 'nothing moved or counted yet');
      assert.equal(framesOut(b, b.sinks[0]), 0);
      // Fixed, it goes through; afterwards the batch is stale.
      const got = receive(b.sinks[0], 5);
      assert.equal(batch.forward(b.outputs[0]), true);
      assert.equal((await got).length, 5);
      assert.throws(() => batch.forward(b.outputs[0]), isCode('NETPLANE_STALE_BATCH'));
      assert.throws(() => batch.frame(0), isCode('NETPLANE_STALE_BATCH'));
      // read() and release() end a batch too.
      await feed(b, [frame(7), frame(8)]);
      assert.equal(b.source.readBatch(batch, 1), 1);
      b.source.read();
      assert.equal(batch.live, false);
      assert.throws(() => batch.forward(b.outputs[0]), isCode('NETPLANE_STALE_BATCH'));
      b.source.release();
      // A closed output, then a closed source.
      assert.equal(b.source.readBatch(batch), 0, 'frame 8 went with read()');
      await feed(b, [frame(9)]);
      assert.equal(b.source.readBatch(batch), 1);
      b.dp.removeClient(hdrPort.handle);
      assert.throws(() => batch.forward(hdrPort), isCode('NETPLANE_CLOSED'));
      b.dp.removeClient(b.source.handle);
      assert.equal(batch.live, false);
      assert.throws(() => batch.forward(b.outputs[0]), isCode('NETPLANE_CLOSED'));
      assert.throws(() => b.source.readBatch(batch), isCode('NETPLANE_CLOSED'));
      assert.throws(() => b.source.createBatch(), isCode('NETPLANE_CLOSED'));
    } finally {
      other.close();
    }
  });
});

test('a vnet header an in-place edit broke is refused at forward(), as send() refuses it, and counted once', async () => {
  const HDR = 12;
  await withBed(1, { ring: { vnetHdrLen: HDR } }, async (b) => {
    await feed(
      b,
      Array.from({ length: 3 }, (_, i) => frame(i, 60, HDR)),
    );
    const batch = b.source.createBatch();
    assert.equal(b.source.readBatch(batch), 3);
    const gsoType = batch.offsets[1] + 1;
    batch.data[gsoType] = 9; // no such gso_type
    const badHdr = (i: number) => new RegExp(`^frame ${i}: invalid vnet header \\(BAD_GSO_TYPE\\)`);
    assert.throws(
      () => batch.forward(b.outputs[0]),
      (e: unknown) =>
        isCode('NETPLANE_INVALID_FRAME')(e) &&
        badHdr(1).test((e as Error).message) &&
        (e as Error).message.endsWith('nothing was forwarded'),
    );
    assert.equal(batch.live, true, 'the batch stays for a fix');
    assert.deepEqual(b.source.forwardCounts, { forwarded: 0, dropped: 0 });
    const out = statsOf(b, b.outputs[0]);
    assert.equal(out.drops.badVnetHdr, 1, 'counted on the output it was meant for, once');
    assert.equal(out.framesOut, 0, 'nothing moved');
    // send() of the same frame into the same port: the same message and the same count.
    assert.throws(
      () => b.outputs[0].send([batch.frame(1)]),
      (e: unknown) =>
        e instanceof RangeError &&
        (e as { code?: string }).code === 'NETPLANE_INVALID_FRAME' &&
        badHdr(0).test(e.message),
    );
    assert.equal(statsOf(b, b.outputs[0]).drops.badVnetHdr, 2);
    // Fixed, the batch forwards whole and the engine drops nothing later.
    batch.data[gsoType] = 0;
    const got = receive(b.sinks[0], 3);
    assert.equal(batch.forward(b.outputs[0]), true);
    assert.deepEqual(
      (await got).map((f) => seqOf(f, HDR)),
      [0, 1, 2],
    );
    assert.equal(statsOf(b, b.outputs[0]).drops.badVnetHdr, 2, 'no later engine drop');
  });
});
