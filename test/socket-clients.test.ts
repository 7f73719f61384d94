// The native stream and dgram clients (native/core/socket/) on their own, unprivileged: a
// packet port peered with a stream client whose socket is one end of a socketpair, the test
// holding the other end, and a dgram client bound on loopback talking to a Node UDP socket.
// Framing (a length split across writes, several frames per write, an empty frame), the
// frames the client writes, a length too large (counted oversize, connection closed,
// socket-closed event), a peer that hangs up, counters conserved and no fd left open.
import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import { test } from 'node:test';
import { NativeDataPlane } from '../lib/dataplane/native-dataplane';
import { native } from '../lib/native';
import type { PacketPort } from '../lib/dataplane/packet-port';
import { leakedFdsSince, openFds } from './helpers/netns';
import { sleep } from './helpers/dataplane-env';

const HANDLE = 7;

function frame(n: number, fill: number): Buffer {
  const f = Buffer.alloc(n, fill);
  f.fill(0xff, 0, 6); // broadcast destination
  return f;
}

function prefixed(f: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt32BE(f.length);
  return Buffer.concat([h, f]);
}

async function collect(port: PacketPort, n: number, ms = 3000): Promise<Buffer[]> {
  const got: Buffer[] = [];
  const end = Date.now() + ms;
  while (got.length < n && Date.now() < end) {
    for (const f of port.read()) got.push(Buffer.from(f));
    if (got.length < n) await sleep(10);
  }
  return got;
}

function readAvailable(fd: number, want: number, ms = 3000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const end = Date.now() + ms;
    const tick = (): void => {
      try {
        const chunk = Buffer.alloc(65536);
        const n = fs.readSync(fd, chunk);
        buf = Buffer.concat([buf, chunk.subarray(0, n)]);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') return reject(e);
      }
      if (buf.length >= want) return resolve(buf);
      if (Date.now() > end) return reject(new Error(`read ${buf.length} of ${want} bytes`));
      setTimeout(tick, 10);
    };
    tick();
  });
}

function stat(dp: NativeDataPlane, handle: number) {
  return dp.stats().find((s) => s.handle === handle)!;
}

test('stream client: framing both ways, empty and oversize frames, hang-up; counted, no fd left', async () => {
  const before = openFds();
  const dp = new NativeDataPlane();
  try {
    dp.addClient({ kind: 'stream', handle: HANDLE, name: 'st', queueIndex: 0 });
    const port = dp.createPort('port');
    dp.connect(port.handle, HANDLE);
    const closed: number[] = [];
    dp.onSocketClosed((e) => closed.push(e.errno));
    const [mine, theirs] = native().aioSocketPair();
    dp.setSocketFd(HANDLE, theirs);

    // A length split across two writes, then two frames in one write, then an empty frame.
    const f1 = frame(60, 1);
    const f2 = frame(1514, 2);
    const f3 = frame(9000, 3);
    const p1 = prefixed(f1);
    fs.writeSync(mine, p1.subarray(0, 2));
    await sleep(20);
    fs.writeSync(mine, p1.subarray(2));
    fs.writeSync(mine, Buffer.concat([prefixed(f2), Buffer.alloc(4), prefixed(f3)]));
    const got = await collect(port, 3);
    assert.deepEqual(
      got.map((g) => g.length),
      [60, 1514, 9000],
    );
    assert.ok(got[0]!.equals(f1) && got[1]!.equals(f2) && got[2]!.equals(f3));
    assert.equal(stat(dp, HANDLE).drops.badVnetHdr, 1, 'the empty frame is counted');

    // What the port sends comes out length-prefixed.
    const out = frame(100, 9);
    assert.equal(port.send([out]), true);
    const wire = await readAvailable(mine, 104);
    assert.equal(wire.readUInt32BE(0), 100);
    assert.ok(wire.subarray(4, 104).equals(out));

    // A length beyond any frame: counted oversize, the connection is closed.
    const bad = Buffer.alloc(4);
    bad.writeUInt32BE(0xffffffff);
    fs.writeSync(mine, bad);
    for (let i = 0; i < 100 && closed.length === 0; i++) await sleep(10);
    assert.equal(closed.length, 1, 'socket-closed raised once');
    const s = stat(dp, HANDLE);
    assert.equal(s.drops.oversize, 1);
    assert.equal(s.enabled, false, 'no connection');
    // With no connection, frames for it are counted (dead-device: a closed connection).
    port.send([out]);
    await sleep(50);
    assert.equal(stat(dp, HANDLE).drops.deadDevice, 1);
    fs.closeSync(mine);

    // A new connection; the peer hangs up: EOF closes it (errno 0).
    const [mine2, theirs2] = native().aioSocketPair();
    dp.setSocketFd(HANDLE, theirs2);
    fs.writeSync(mine2, prefixed(f1));
    assert.equal((await collect(port, 1)).length, 1);
    fs.closeSync(mine2);
    for (let i = 0; i < 100 && closed.length < 2; i++) await sleep(10);
    assert.deepEqual(closed, [closed[0], 0]);
    for (const c of dp.stats()) assert.equal(c.framesIn, c.framesOut + c.queued + c.dropped, `${c.name} conserves`);
  } finally {
    dp.close();
  }
  assert.deepEqual(leakedFdsSince(before), []);
});

test('dgram client: one bare frame per datagram, both ways, on loopback', async () => {
  const before = openFds();
  const dp = new NativeDataPlane();
  const peer = dgram.createSocket('udp4');
  try {
    await new Promise<void>((r) => peer.bind(0, '127.0.0.1', r));
    const peerPort = peer.address().port;
    const fd = native().dgramOpen({ local: { family: 'inet', host: '127.0.0.1', port: 0 } });
    const local = native().socketInfo(fd).local as { host: string; port: number };
    dp.addClient({
      kind: 'dgram',
      handle: HANDLE,
      name: 'dg',
      queueIndex: 0,
      dest: { family: 'inet', host: '127.0.0.1', port: peerPort },
    });
    dp.setSocketFd(HANDLE, fd);
    const port = dp.createPort('port');
    dp.connect(port.handle, HANDLE);

    const received = new Promise<Buffer>((r) => peer.once('message', (m) => r(m)));
    const out = frame(1000, 4);
    assert.equal(port.send([out]), true);
    assert.ok((await received).equals(out), 'the frame, bare');

    const inFrame = frame(1400, 5);
    peer.send(inFrame, local.port, '127.0.0.1');
    const got = await collect(port, 1);
    assert.ok(got[0]?.equals(inFrame));
    // Larger than a UDP datagram can be: counted oversize.
    port.send([frame(65530, 6), frame(65530, 6)]);
    await sleep(50);
    const s = stat(dp, HANDLE);
    for (const c of dp.stats()) assert.equal(c.framesIn, c.framesOut + c.queued + c.dropped, `${c.name} conserves`);
    assert.equal(s.drops.oversize, 2, 'larger than a datagram: counted oversize');
    assert.equal(s.framesOut, 2);
  } finally {
    peer.close();
    dp.close();
  }
  assert.deepEqual(leakedFdsSince(before), []);
});
