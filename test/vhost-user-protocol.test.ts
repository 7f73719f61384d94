// The vhost-user back-end's protocol side over a real unix socket, driven by a fake
// front-end (test/helpers/vhost-user-frontend.ts) that speaks the wire format as QEMU 7.2
// does: the sequence of reference note 1.4, replies compared byte for byte where QEMU checks
// them, REPLY_ACK, and every hostile message of section 3.2 that is about messages. Each
// hostile one must close its connection with a reason, leave no fd behind (checked by
// identity in /proc/self/fd), and leave the endpoint serving the next front-end.
// No data path here: the back-end runs its state machine alone (nothing is mapped).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { bit, VirtioF, VirtioNetF } from '../lib/devices/virtio-net-features';
import { native } from '../lib/native';
import { OFFERED_PROTOCOL_FEATURES, VhostUserBackend } from '../lib/vhost-user/backend';
import { VhostUserEndpoint } from '../lib/vhost-user/endpoint';
import { codecs, MESSAGES } from '../lib/vhost-user/messages';
import {
  FakeFrontend,
  fdsPointingAt,
  fdTarget,
  memoryFile,
  memTable,
  NEED_REPLY,
  state,
  u64,
  vringAddr,
  VU,
  type Region,
} from './helpers/vhost-user-frontend';

const T = { timeout: 20_000 };
const FEATURES =
  bit(VirtioF.VERSION_1) |
  bit(VirtioNetF.MRG_RXBUF) |
  bit(VirtioF.RING_EVENT_IDX) |
  bit(VirtioF.RING_INDIRECT_DESC) |
  bit(VirtioNetF.MQ);
const F_PROTOCOL = bit(30);
const MEM_SIZE = 1 << 20;
const UA = 0x7f1234500000n;
const QUEUE = 256;

let dir: string;
let sockPath: string;
let endpoint: VhostUserEndpoint;
const backends: VhostUserBackend[] = [];
const reasons: Array<string | null> = [];
const queuePairs = 2;

function ringAddrs(ring: number): [bigint, bigint, bigint] {
  const base = UA + BigInt(ring) * 0x10000n;
  return [base, base + 0x2000n, base + 0x1000n]; // desc, used, avail
}

/** A pipe standing in for an eventfd (the state machine only holds it). */
function eventPipe(): { fds: [number, number]; target: string; close(): void } {
  const fds = native().aioPipe();
  return { fds, target: fdTarget(fds[0]), close: () => fds.forEach((f) => fs.closeSync(f)) };
}

let seen = 0;
/** The reason of the next disconnect not yet looked at (null: the front-end hung up). */
async function disconnected(): Promise<string | null> {
  return new Promise((resolve) => {
    const tick = (): void => {
      if (reasons.length > seen) resolve(reasons[seen++]!);
      else setTimeout(tick, 5);
    };
    tick();
  });
}

function expectReplyHeader(raw: Buffer, request: number, size: number): void {
  // QEMU 7.2: flags exactly 0x5, the request echoed, the size it expects.
  assert.equal(raw.readUInt32LE(0), request, 'request echoed');
  assert.equal(raw.readUInt32LE(4), 0x5, 'reply flags');
  assert.equal(raw.readUInt32LE(8), size, 'reply size');
  assert.equal(raw.length, 12 + size);
}

/** Steps A (connect) of reference note 1.4, for `pairs` queue pairs; returns the fds to keep. */
async function qemuConnect(fe: FakeFrontend, pairs: number, pipes: ReturnType<typeof eventPipe>[]): Promise<void> {
  for (let p = 0; p < pairs; p++) {
    let r = await fe.call(VU.GET_FEATURES);
    expectReplyHeader(r.raw, VU.GET_FEATURES, 8);
    assert.equal(r.payload.readBigUInt64LE(0), FEATURES | F_PROTOCOL);
    r = await fe.call(VU.GET_PROTOCOL_FEATURES);
    expectReplyHeader(r.raw, VU.GET_PROTOCOL_FEATURES, 8);
    assert.equal(r.payload.readBigUInt64LE(0), 0x10009n); // MQ | REPLY_ACK | STATUS
    fe.send(VU.SET_PROTOCOL_FEATURES, u64(0x10009n));
    if (p === 0) {
      r = await fe.call(VU.GET_QUEUE_NUM);
      expectReplyHeader(r.raw, VU.GET_QUEUE_NUM, 8);
      assert.equal(r.payload.readBigUInt64LE(0), BigInt(queuePairs));
      fe.send(VU.SET_OWNER);
    }
    r = await fe.call(VU.GET_FEATURES);
    assert.equal(r.payload.readBigUInt64LE(0), FEATURES | F_PROTOCOL);
    for (const ring of [2 * p, 2 * p + 1]) {
      const call = eventPipe();
      const err = eventPipe();
      pipes.push(call, err);
      fe.send(VU.SET_VRING_CALL, u64(ring), { fds: [call.fds[1]] });
      fe.send(VU.SET_VRING_ERR, u64(ring), { fds: [err.fds[1]] });
    }
  }
}

/** Step B: ring enables before any ring is configured. */
function qemuProbe(fe: FakeFrontend, pairs: number): void {
  for (let round = 0; round < 3; round++)
    for (let ring = 0; ring < 2 * pairs; ring++) fe.send(VU.SET_VRING_ENABLE, state(ring, 1));
}

/** Step C: DRIVER_OK, per pair. */
async function qemuStart(
  fe: FakeFrontend,
  pairs: number,
  mem: { fd: number },
  regions: Region[],
  pipes: ReturnType<typeof eventPipe>[],
  bases: number[] = [],
): Promise<void> {
  for (let p = 0; p < pairs; p++) {
    fe.send(VU.SET_VRING_ENABLE, state(2 * p, 1));
    fe.send(VU.SET_VRING_ENABLE, state(2 * p + 1, 1));
    fe.send(VU.SET_FEATURES, u64(FEATURES | F_PROTOCOL));
    const st = await fe.call(VU.GET_STATUS);
    expectReplyHeader(st.raw, VU.GET_STATUS, 8);
    const status = st.payload.readBigUInt64LE(0);
    if ((status & 0x8n) === 0n) fe.send(VU.SET_STATUS, u64(status | 0x8n));
    if (p === 0) {
      const ack = await fe.call(VU.SET_MEM_TABLE, memTable(regions), {
        flags: 0x1 | NEED_REPLY,
        fds: regions.map(() => mem.fd),
      });
      expectReplyHeader(ack.raw, VU.SET_MEM_TABLE, 8);
      assert.equal(ack.payload.readBigUInt64LE(0), 0n, 'SET_MEM_TABLE acked with success');
    }
    for (const ring of [2 * p, 2 * p + 1]) {
      const [desc, used, avail] = ringAddrs(ring);
      fe.send(VU.SET_VRING_NUM, state(ring, QUEUE));
      fe.send(VU.SET_VRING_BASE, state(ring, bases[ring] ?? 0));
      fe.send(VU.SET_VRING_ADDR, vringAddr(ring, desc, used, avail));
      const kick = eventPipe();
      const call = eventPipe();
      pipes.push(kick, call);
      fe.send(VU.SET_VRING_KICK, u64(ring), { fds: [kick.fds[0]] });
      fe.send(VU.SET_VRING_CALL, u64(ring), { fds: [call.fds[1]] });
    }
  }
  const st = await fe.call(VU.GET_STATUS);
  fe.send(VU.SET_STATUS, u64(st.payload.readBigUInt64LE(0) | 0x7n));
}

/** Step D: set_link off. */
async function qemuStop(fe: FakeFrontend, pairs: number): Promise<number[]> {
  const bases: number[] = [];
  for (let p = 0; p < pairs; p++) {
    if (p === pairs - 1) fe.send(VU.SET_STATUS, u64(0));
    for (const ring of [2 * p, 2 * p + 1]) {
      const r = await fe.call(VU.GET_VRING_BASE, state(ring, 0));
      expectReplyHeader(r.raw, VU.GET_VRING_BASE, 8);
      assert.equal(r.payload.readUInt32LE(0), ring);
      bases[ring] = r.payload.readUInt32LE(4);
    }
  }
  return bases;
}

/** Wait until the back-end has handled what was sent (a getter round trip). */
async function sync(fe: FakeFrontend): Promise<void> {
  await fe.call(VU.GET_FEATURES);
}

function current(): VhostUserBackend {
  const b = backends[backends.length - 1];
  assert.ok(b);
  return b;
}

describe('vhost-user back-end: protocol over a unix socket', () => {
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'np-vu-'));
    sockPath = path.join(dir, 'vu0.sock');
    endpoint = await VhostUserEndpoint.open({ kind: 'listen', path: sockPath }, () => {
      const b = new VhostUserBackend({ queuePairs, features: FEATURES });
      backends.push(b);
      return b;
    });
    endpoint.on('disconnected', (r) => reasons.push(r));
  });
  after(async () => {
    await endpoint.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the socket is 0600 and no temporary directory is left', T, () => {
    const st = fs.statSync(sockPath);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600);
    assert.deepEqual(fs.readdirSync(dir), ['vu0.sock']);
  });

  test("QEMU 7.2's sequence: connect, probe, start, set_link off/on, disconnect; no fd left", T, async () => {
    const mem = memoryFile('seq', MEM_SIZE);
    const memTarget = fdTarget(mem.fd);
    const regions: Region[] = [{ gpa: 0n, size: BigInt(MEM_SIZE), ua: UA, offset: 0n }];
    const pipes: ReturnType<typeof eventPipe>[] = [];
    const fe = await FakeFrontend.connect(sockPath);
    await qemuConnect(fe, 2, pipes);
    qemuProbe(fe, 2);
    await sync(fe);
    let info = current().info();
    assert.ok(info.owner);
    assert.ok(
      info.rings.every((r) => r.enabled && !r.started),
      'enable remembered for unconfigured rings',
    );

    await qemuStart(fe, 2, mem, regions, pipes);
    await sync(fe);
    info = current().info();
    assert.equal(info.status, 0xf);
    assert.equal(info.memoryRegions, 1);
    assert.deepEqual(
      info.rings.map((r) => r.started),
      [true, true, true, true],
    );
    // The memory fd came and went: the back-end keeps none (the data path dups its own).
    assert.equal(fdsPointingAt(memTarget), 1);

    // set_link off: SET_STATUS(0) stops everything; GET_VRING_BASE answers the base.
    const bases = await qemuStop(fe, 2);
    assert.deepEqual(bases, [0, 0, 0, 0]);
    info = current().info();
    assert.ok(info.rings.every((r) => !r.started && r.kick === 'none'));

    // set_link on: C again, with the bases returned; a second (identical) memory table.
    await qemuStart(fe, 2, mem, regions, pipes, bases);
    await sync(fe);
    assert.ok(
      current()
        .info()
        .rings.every((r) => r.started),
    );

    // Disconnect: every fd the back-end held is closed.
    fe.close();
    assert.equal(await disconnected(), null);
    assert.equal(
      current()
        .info()
        .rings.some((r) => r.started),
      false,
    );
    for (const p of pipes) assert.equal(fdsPointingAt(p.target), 2, `no fd of ${p.target} left in the back-end`);
    for (const p of pipes) p.close();
    fs.closeSync(mem.fd);
  });

  test('item 10: SET_FEATURES changing bits while rings run closes the connection', T, async () => {
    const mem = memoryFile('feat', MEM_SIZE);
    const pipes: ReturnType<typeof eventPipe>[] = [];
    const fe = await FakeFrontend.connect(sockPath);
    await qemuConnect(fe, 2, pipes);
    await qemuStart(fe, 2, mem, [{ gpa: 0n, size: BigInt(MEM_SIZE), ua: UA, offset: 0n }], pipes);
    await sync(fe);
    assert.ok(
      current()
        .info()
        .rings.every((r) => r.started),
    );
    fe.send(VU.SET_FEATURES, u64(FEATURES | F_PROTOCOL)); // the same bits again: fine
    await sync(fe);
    fe.send(VU.SET_FEATURES, u64(bit(VirtioF.VERSION_1) | F_PROTOCOL));
    assert.match(String(await disconnected()), /changes features while rings run/);
    for (const p of pipes) {
      assert.equal(fdsPointingAt(p.target), 2);
      p.close();
    }
    fs.closeSync(mem.fd);
  });

  test('a new connection gets a clean device', T, async () => {
    const fe = await FakeFrontend.connect(sockPath);
    await sync(fe);
    const info = current().info();
    assert.equal(info.features, null);
    assert.equal(info.memoryRegions, 0);
    assert.ok(info.rings.every((r) => !r.started && r.size === null && r.base === 0));
    fe.close();
    await disconnected();
  });

  test('REPLY_ACK: success acks with 0, no reply without NEED_REPLY', T, async () => {
    const fe = await FakeFrontend.connect(sockPath);
    const ack = await fe.call(VU.SET_VRING_NUM, state(0, 256), { flags: 0x9 });
    expectReplyHeader(ack.raw, VU.SET_VRING_NUM, 8);
    assert.equal(ack.payload.readBigUInt64LE(0), 0n);
    fe.send(VU.SET_VRING_NUM, state(1, 256));
    const r = await fe.call(VU.GET_QUEUE_NUM);
    assert.equal(r.request, VU.GET_QUEUE_NUM, 'the next reply is the getter, nothing unasked in between');
    // GET_VRING_BASE of a ring never set up: 0.
    const b = await fe.call(VU.GET_VRING_BASE, state(3, 0));
    assert.deepEqual([b.payload.readUInt32LE(0), b.payload.readUInt32LE(4)], [3, 0]);
    const b2 = await fe.call(VU.GET_VRING_BASE, state(3, 0));
    assert.equal(b2.payload.readUInt32LE(4), 0, 'twice in a row');
    fe.close();
    await disconnected();
  });

  test('a second front-end is refused while one is served; the first goes on', T, async () => {
    const first = await FakeFrontend.connect(sockPath);
    await sync(first);
    const second = await FakeFrontend.connect(sockPath);
    await second.closed;
    await sync(first);
    first.close();
    await disconnected();
  });

  test('the peer closing in the middle of a message, or after half a header', T, async () => {
    for (const bytes of [
      Buffer.from([1, 0, 0, 0, 1]),
      Buffer.concat([Buffer.from([8, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0]), Buffer.alloc(3)]),
    ]) {
      const fe = await FakeFrontend.connect(sockPath);
      await sync(fe);
      fe.sendRaw(bytes);
      await new Promise((r) => setTimeout(r, 30)); // a stalled peer: nothing happens
      assert.equal(fe.isClosed, false);
      fe.close();
      assert.match(String(await disconnected()), /the peer closed in the middle of a message/);
    }
  });

  test('a header split across writes, payload later: handled', T, async () => {
    const fe = await FakeFrontend.connect(sockPath);
    const msg = Buffer.concat([Buffer.from([8, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0]), state(0, 128)]);
    fe.sendRaw(msg.subarray(0, 5));
    await new Promise((r) => setTimeout(r, 20));
    fe.sendRaw(msg.subarray(5, 14));
    await new Promise((r) => setTimeout(r, 20));
    fe.sendRaw(msg.subarray(14));
    await sync(fe);
    assert.equal(current().info().rings[0]!.size, 128);
    fe.close();
    await disconnected();
  });

  describe('hostile messages (reference note 3.2): each closes its connection with a reason', () => {
    const mem = memoryFile('hostile', MEM_SIZE);
    const small = memoryFile('small', 4096);
    const good: Region = { gpa: 0n, size: BigInt(MEM_SIZE), ua: UA, offset: 0n };
    // Another export, with its front-end connected through every hostile case: it must not notice.
    let other: VhostUserEndpoint;
    let otherFe: FakeFrontend;
    before(async () => {
      other = await VhostUserEndpoint.open(
        { kind: 'listen', path: path.join(dir, 'other.sock') },
        () => new VhostUserBackend({ queuePairs: 1, features: FEATURES }),
      );
      otherFe = await FakeFrontend.connect(path.join(dir, 'other.sock'));
      otherFe.send(VU.SET_VRING_NUM, state(0, 64));
    });
    after(async () => {
      assert.equal(other.connections, 1, 'the other front-end stayed on one connection');
      otherFe.close();
      await other.close();
      fs.closeSync(mem.fd);
      fs.closeSync(small.fd);
    });
    type Case = {
      name: string;
      item: number;
      send: (fe: FakeFrontend, p: ReturnType<typeof eventPipe>) => void;
      reason: RegExp;
      ack?: boolean;
    };
    const cases: Case[] = [
      {
        item: 1,
        name: 'size 0xffffffff',
        send: (fe) => fe.send(VU.GET_FEATURES, Buffer.alloc(0), { size: 0xffffffff }),
        reason: /exceeds the maximum/,
      },
      {
        item: 2,
        name: 'SET_VRING_NUM with 7 bytes',
        send: (fe) => fe.send(VU.SET_VRING_NUM, Buffer.alloc(7)),
        reason: /needs a 8-byte payload, got 7/,
      },
      {
        item: 2,
        name: 'SET_VRING_NUM with 0 bytes',
        send: (fe) => fe.send(VU.SET_VRING_NUM),
        reason: /needs a 8-byte payload, got 0/,
      },
      {
        item: 2,
        name: 'GET_FEATURES with a payload',
        send: (fe) => fe.send(VU.GET_FEATURES, u64(0)),
        reason: /needs a 0-byte payload/,
      },
      {
        item: 2,
        name: 'memory table shorter than 8+32n',
        send: (fe) => fe.send(VU.SET_MEM_TABLE, memTable([good], 2), { fds: [mem.fd] }),
        reason: /needs 72 bytes, got 40/,
      },
      {
        item: 2,
        name: 'wrong size with NEED_REPLY gets a failure ack',
        send: (fe) => fe.send(VU.SET_VRING_NUM, Buffer.alloc(4), { flags: 0x9 }),
        reason: /got 4/,
        ack: true,
      },
      {
        item: 3,
        name: 'version 2',
        send: (fe) => fe.send(VU.GET_FEATURES, Buffer.alloc(0), { flags: 0x2 }),
        reason: /version 2/,
      },
      {
        item: 3,
        name: 'REPLY bit on a request',
        send: (fe) => fe.send(VU.GET_FEATURES, Buffer.alloc(0), { flags: 0x5 }),
        reason: /REPLY flag/,
      },
      {
        item: 3,
        name: 'reserved flag bits',
        send: (fe) => fe.send(VU.GET_FEATURES, Buffer.alloc(0), { flags: 0x11 }),
        reason: /reserved flag bits/,
      },
      { item: 4, name: 'request 0', send: (fe) => fe.send(0), reason: /unsupported request NONE/ },
      { item: 4, name: 'request 41', send: (fe) => fe.send(41), reason: /unsupported request request 41/ },
      { item: 4, name: 'request 0xffffffff', send: (fe) => fe.send(0xffffffff), reason: /unsupported request/ },
      {
        item: 4,
        name: 'SET_LOG_BASE (not offered)',
        send: (fe) => fe.send(VU.SET_LOG_BASE, Buffer.alloc(16)),
        reason: /unsupported request SET_LOG_BASE/,
      },
      {
        item: 6,
        name: 'an fd on a request that takes none',
        send: (fe, p) => fe.send(VU.SET_VRING_NUM, state(0, 256), { fds: [p.fds[0]] }),
        reason: /carries 1 fds, expected 0/,
      },
      {
        item: 6,
        name: 'two fds on SET_VRING_KICK',
        send: (fe, p) => fe.send(VU.SET_VRING_KICK, u64(0), { fds: [p.fds[0], p.fds[1]] }),
        reason: /carries 2 fds, expected 1/,
      },
      {
        item: 6,
        name: 'NOFD with an fd attached',
        send: (fe, p) => fe.send(VU.SET_VRING_CALL, u64(0x100), { fds: [p.fds[1]] }),
        reason: /carries 1 fds, expected 0/,
      },
      {
        item: 6,
        name: 'fd missing without NOFD',
        send: (fe) => fe.send(VU.SET_VRING_KICK, u64(0)),
        reason: /carries 0 fds, expected 1/,
      },
      {
        item: 6,
        name: 'fd count != nregions',
        send: (fe) => fe.send(VU.SET_MEM_TABLE, memTable([good]), { fds: [mem.fd, mem.fd] }),
        reason: /carries 2 fds, expected 1/,
      },
      {
        item: 6,
        name: 'GET_INFLIGHT_FD with an fd',
        send: (fe, p) => fe.send(VU.GET_INFLIGHT_FD, Buffer.alloc(24), { fds: [p.fds[0]] }),
        reason: /unsupported request GET_INFLIGHT_FD/,
      },
      {
        item: 7,
        name: 'a kick fd that is a regular file',
        send: (fe) => fe.send(VU.SET_VRING_KICK, u64(0), { fds: [mem.fd] }),
        reason: /ring 0 fd is not an eventfd/,
      },
      {
        item: 10,
        name: 'SET_FEATURES with bits never offered',
        send: (fe) => fe.send(VU.SET_FEATURES, u64(FEATURES | bit(VirtioNetF.HOST_TSO4))),
        reason: /were not offered/,
      },
      {
        item: 10,
        name: 'SET_PROTOCOL_FEATURES with CONFIG',
        send: (fe) => fe.send(VU.SET_PROTOCOL_FEATURES, u64(1n << 9n)),
        reason: /were not offered/,
      },
      {
        item: 11,
        name: 'SET_STATUS without STATUS negotiated',
        send: (fe) => fe.send(VU.SET_STATUS, u64(0xf)),
        reason: /without the STATUS protocol feature/,
      },
      {
        item: 12,
        name: 'ring index = ring count (SET_VRING_NUM)',
        send: (fe) => fe.send(VU.SET_VRING_NUM, state(4, 256)),
        reason: /ring index 4 out of range/,
      },
      {
        item: 12,
        name: 'ring index with high bits (CVE-2020-10723)',
        send: (fe) => fe.send(VU.SET_VRING_BASE, state(0x10000, 0)),
        reason: /ring index 65536 out of range/,
      },
      {
        item: 12,
        name: 'ring index out of range in SET_VRING_ADDR',
        send: (fe) => fe.send(VU.SET_VRING_ADDR, vringAddr(0xffffffff, 0n, 0n, 0n)),
        reason: /ring index 4294967295 out of range/,
      },
      {
        item: 12,
        name: 'ring index out of range in GET_VRING_BASE',
        send: (fe) => fe.send(VU.GET_VRING_BASE, state(7, 0)),
        reason: /out of range/,
      },
      {
        item: 12,
        name: 'ring index out of range in SET_VRING_ENABLE',
        send: (fe) => fe.send(VU.SET_VRING_ENABLE, state(4, 1)),
        reason: /out of range/,
      },
      {
        item: 12,
        name: 'file index past the ring count (bits 0-7)',
        send: (fe, p) => fe.send(VU.SET_VRING_KICK, u64(0xff), { fds: [p.fds[0]] }),
        reason: /ring index 255 out of range/,
      },
      {
        item: 12,
        name: 'reserved bits in a vring file payload',
        send: (fe, p) => fe.send(VU.SET_VRING_CALL, u64(0x10000), { fds: [p.fds[1]] }),
        reason: /reserved bits/,
      },
      { item: 14, name: 'nregions 0', send: (fe) => fe.send(VU.SET_MEM_TABLE, memTable([])), reason: /with 0 regions/ },
      {
        item: 14,
        name: 'nregions 9',
        send: (fe) => fe.send(VU.SET_MEM_TABLE, Buffer.concat([u64(9), Buffer.alloc(32 * 9)])),
        reason: /exceeds the maximum 264/,
      },
      {
        item: 14,
        name: 'region size 0',
        send: (fe) => fe.send(VU.SET_MEM_TABLE, memTable([{ ...good, size: 0n }]), { fds: [mem.fd] }),
        reason: /size 0/,
      },
      {
        item: 14,
        name: 'gpa + size overflows',
        send: (fe) => fe.send(VU.SET_MEM_TABLE, memTable([{ ...good, gpa: 0xfffffffffffff000n }]), { fds: [mem.fd] }),
        reason: /guest address \+ size overflows/,
      },
      {
        item: 14,
        name: 'ua + size overflows',
        send: (fe) => fe.send(VU.SET_MEM_TABLE, memTable([{ ...good, ua: 0xffffffffffffff00n }]), { fds: [mem.fd] }),
        reason: /user address \+ size overflows/,
      },
      {
        item: 14,
        name: 'offset + size overflows',
        send: (fe) =>
          fe.send(VU.SET_MEM_TABLE, memTable([{ ...good, offset: 0xfffffffffff00001n }]), { fds: [mem.fd] }),
        reason: /mmap offset \+ size overflows/,
      },
      {
        item: 15,
        name: 'regions overlapping in GPA',
        send: (fe) =>
          fe.send(
            VU.SET_MEM_TABLE,
            memTable([
              { ...good, size: 0x80000n },
              { gpa: 0x40000n, size: 0x40000n, ua: UA + 0x100000n, offset: 0x80000n },
            ]),
            { fds: [mem.fd, mem.fd] },
          ),
        reason: /overlap in guest-physical/,
      },
      {
        item: 15,
        name: 'regions overlapping in front-end VA',
        send: (fe) =>
          fe.send(
            VU.SET_MEM_TABLE,
            memTable([
              { ...good, size: 0x80000n },
              { gpa: 0x100000n, size: 0x40000n, ua: UA + 0x40000n, offset: 0x80000n },
            ]),
            { fds: [mem.fd, mem.fd] },
          ),
        reason: /overlap in front-end/,
      },
      {
        item: 15,
        name: 'duplicated regions',
        send: (fe) => fe.send(VU.SET_MEM_TABLE, memTable([good, good]), { fds: [mem.fd, mem.fd] }),
        reason: /overlap/,
      },
      {
        item: 16,
        name: 'a region past the end of its file (SIGBUS)',
        send: (fe) => fe.send(VU.SET_MEM_TABLE, memTable([good]), { fds: [small.fd] }),
        reason: /past the end of its 4096-byte file/,
      },
      {
        item: 16,
        name: 'a region fd that is not a memory file',
        send: (fe, p) => fe.send(VU.SET_MEM_TABLE, memTable([good]), { fds: [p.fds[0]] }),
        reason: /not a memory file/,
      },
      {
        item: 19,
        name: 'SET_VRING_NUM 0',
        send: (fe) => fe.send(VU.SET_VRING_NUM, state(0, 0)),
        reason: /size 0 is not a power of 2/,
      },
      { item: 19, name: 'SET_VRING_NUM 3', send: (fe) => fe.send(VU.SET_VRING_NUM, state(0, 3)), reason: /size 3/ },
      {
        item: 19,
        name: 'SET_VRING_NUM 32769',
        send: (fe) => fe.send(VU.SET_VRING_NUM, state(0, 32769)),
        reason: /size 32769/,
      },
      {
        item: 19,
        name: 'SET_VRING_NUM 2048 (over the maximum)',
        send: (fe) => fe.send(VU.SET_VRING_NUM, state(0, 2048)),
        reason: /size 2048/,
      },
      {
        item: 20,
        name: 'SET_VRING_ADDR misaligned',
        send: (fe) => fe.send(VU.SET_VRING_ADDR, vringAddr(0, UA + 8n, UA + 0x1000n, UA + 0x2000n)),
        reason: /misaligned/,
      },
      {
        item: 20,
        name: 'SET_VRING_ADDR unknown flags',
        send: (fe) => fe.send(VU.SET_VRING_ADDR, vringAddr(0, UA, UA + 0x1000n, UA + 0x2000n, 0x2)),
        reason: /unknown flags/,
      },
      {
        item: 20,
        name: 'SET_VRING_ADDR with LOG (not offered)',
        send: (fe) => fe.send(VU.SET_VRING_ADDR, vringAddr(0, UA, UA + 0x1000n, UA + 0x2000n, 0x1)),
        reason: /logging was not offered/,
      },
      {
        item: 21,
        name: 'SET_VRING_BASE past a u16',
        send: (fe) => fe.send(VU.SET_VRING_BASE, state(0, 0x10000)),
        reason: /does not fit/,
      },
      {
        item: 18,
        name: 'SET_VRING_ENABLE with 2',
        send: (fe) => fe.send(VU.SET_VRING_ENABLE, state(0, 2)),
        reason: /neither 0 nor 1/,
      },
    ];
    for (const c of cases) {
      test(`item ${c.item}: ${c.name}`, T, async () => {
        const p = eventPipe();
        const memBefore = fdsPointingAt(fdTarget(mem.fd));
        const fe = await FakeFrontend.connect(sockPath);
        await sync(fe);
        c.send(fe, p);
        if (c.ack) {
          const r = await fe.next();
          expectReplyHeader(r.raw, VU.SET_VRING_NUM, 8);
          assert.equal(r.payload.readBigUInt64LE(0), 1n, 'failure ack');
        }
        const reason = await disconnected();
        assert.match(String(reason), c.reason);
        await fe.closed;
        // Nothing held: the pipe's two ends are only ours, the memory file only ours.
        assert.equal(fdsPointingAt(p.target), 2);
        assert.equal(fdsPointingAt(fdTarget(mem.fd)), memBefore);
        p.close();
        await sync(otherFe);
        // The endpoint serves the next front-end.
        const next = await FakeFrontend.connect(sockPath);
        await sync(next);
        next.close();
        await disconnected();
      });
    }

    test('item 17: ring addresses outside every region at start close the connection', T, async () => {
      const fe = await FakeFrontend.connect(sockPath);
      fe.send(VU.SET_PROTOCOL_FEATURES, u64(0x9n)); // no STATUS: start on completeness
      fe.send(VU.SET_FEATURES, u64(FEATURES | F_PROTOCOL));
      fe.send(VU.SET_MEM_TABLE, memTable([good]), { fds: [mem.fd] });
      fe.send(VU.SET_VRING_NUM, state(0, 256));
      fe.send(VU.SET_VRING_ADDR, vringAddr(0, UA + BigInt(MEM_SIZE) - 16n, UA + 0x1000n, UA + 0x2000n));
      fe.send(VU.SET_VRING_ENABLE, state(0, 1));
      fe.send(VU.SET_VRING_KICK, u64(0x100));
      assert.match(String(await disconnected()), /outside every memory region/);
    });

    test('item 8: replayed messages leave fd counts flat', T, async () => {
      const fe = await FakeFrontend.connect(sockPath);
      const p = eventPipe();
      const memTarget = fdTarget(mem.fd);
      const memBefore = fdsPointingAt(memTarget);
      for (let i = 0; i < 2000; i++) {
        fe.send(VU.SET_VRING_KICK, u64(0), { fds: [p.fds[0]] });
        fe.send(VU.SET_VRING_CALL, u64(1), { fds: [p.fds[1]] });
        fe.send(VU.SET_MEM_TABLE, memTable([{ ...good, gpa: BigInt(i % 2) * 0x100000n }]), { fds: [mem.fd] });
        fe.send(VU.SET_VRING_NUM, state(0, 256));
        if (i % 10 === 0) await sync(fe);
      }
      await sync(fe);
      assert.equal(fdsPointingAt(p.target), 4, 'ours and the one kick + one call the back-end holds');
      assert.equal(fdsPointingAt(memTarget), memBefore);
      fe.close();
      await disconnected();
      assert.equal(fdsPointingAt(p.target), 2);
      p.close();
    });
  });

  test(
    'item 22: order permutations (enable first, kick before enable, memory table last) start the ring',
    T,
    async () => {
      const mem = memoryFile('order', MEM_SIZE);
      const fe = await FakeFrontend.connect(sockPath);
      const [desc, used, avail] = ringAddrs(1);
      const kick = eventPipe();
      fe.send(VU.SET_PROTOCOL_FEATURES, u64(0x9n));
      fe.send(VU.SET_VRING_ENABLE, state(1, 1));
      fe.send(VU.SET_VRING_KICK, u64(1), { fds: [kick.fds[0]] });
      fe.send(VU.SET_VRING_ADDR, vringAddr(1, desc, used, avail));
      fe.send(VU.SET_VRING_NUM, state(1, 64));
      fe.send(VU.SET_FEATURES, u64(FEATURES | F_PROTOCOL));
      await sync(fe);
      assert.equal(current().info().rings[1]!.started, false);
      fe.send(VU.SET_MEM_TABLE, memTable([{ gpa: 0n, size: BigInt(MEM_SIZE), ua: UA, offset: 0n }]), { fds: [mem.fd] });
      await sync(fe);
      assert.equal(current().info().rings[1]!.started, true);
      fe.close();
      await disconnected();
      kick.close();
      fs.closeSync(mem.fd);
    },
  );

  test('a stale socket file from a killed instance does not stop binding; close removes the socket', T, async () => {
    const stale = path.join(dir, 'stale.sock');
    const { spawnSync } = await import('node:child_process');
    spawnSync(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`,
    ]);
    assert.ok(fs.lstatSync(stale).isSocket());
    const ep = await VhostUserEndpoint.open(
      { kind: 'listen', path: stale },
      () => new VhostUserBackend({ queuePairs: 1, features: FEATURES }),
    );
    const fe = await FakeFrontend.connect(stale);
    await sync(fe);
    fe.close();
    await ep.close();
    assert.equal(fs.existsSync(stale), false);
    // A live one is refused.
    await assert.rejects(
      VhostUserEndpoint.open(
        { kind: 'listen', path: sockPath },
        () => new VhostUserBackend({ queuePairs: 1, features: FEATURES }),
      ),
      /Address already in use/,
    );
  });

  test('client mode: connects to a listening front-end, retries, reconnects', T, async () => {
    const net = await import('node:net');
    const fePath = path.join(dir, 'fe.sock');
    const sockets: import('node:net').Socket[] = [];
    const ep = await VhostUserEndpoint.open(
      { kind: 'connect', path: fePath, reconnectSeconds: 0.05 },
      () => new VhostUserBackend({ queuePairs: 1, features: FEATURES }),
    );
    await new Promise((r) => setTimeout(r, 120)); // nobody listens yet: retrying
    const server = net.createServer((s) => sockets.push(s));
    await new Promise<void>((r) => server.listen(fePath, () => r()));
    const connectedOnce = new Promise<void>((r) => ep.once('connected', () => r()));
    await connectedOnce;
    sockets[0]!.destroy();
    await new Promise<void>((r) => ep.once('connected', () => r()));
    assert.equal(ep.connections, 2);
    await ep.close();
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });

  test('GET_PROTOCOL_FEATURES offers MQ | REPLY_ACK | STATUS, never CONFIG', () => {
    assert.equal(OFFERED_PROTOCOL_FEATURES, 0x10009n);
  });

  test('codecs: encode/decode round trip, one row per request code', () => {
    assert.equal(new Set(MESSAGES.map((m) => m.code)).size, MESSAGES.length);
    for (const v of [0n, 1n, 0xffffffffffffffffn]) assert.equal(codecs.u64.decode(codecs.u64.encode(v)), v);
    const a = { index: 3, flags: 0, desc: 1n << 63n, used: 8n, avail: 2n, log: 0n };
    assert.deepEqual(codecs.addr.decode(codecs.addr.encode(a)), a);
    assert.deepEqual(codecs.file.decode(codecs.file.encode({ index: 7, noFd: true })), { index: 7, noFd: true });
  });
});
