// The vhost-user front-end (-netdev vhost-user): netplane drives a back-end over a real unix
// socket, unprivileged.
//  * Contract: the front-end against netplane's own back-end (VhostUserBackend over the
//    native data plane, a 'virtio-device' queue pair) with packet ports on both ends, so
//    frames cross both roles' rings in shared memory; every request the front-end sends is
//    checked against the back-end's message table on the way; the link follows the
//    connection (QMP events), reconnect resends the set-up with the saved bases, set_link
//    off by hand survives a reconnect.
//  * Hostile back-ends, scripted: closes mid-reply, answers garbage, never acks a
//    REPLY_ACK request, offers fewer queues. Each fails the set-up with a clear reason,
//    within the reply timeout, and leaks no fd.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { NativeDataPlane } from '../lib/dataplane/native-dataplane';
import type { PacketPort } from '../lib/dataplane/packet-port';
import { netplaneStats, type NetplaneClientStats } from '../lib/control/stats';
import { bit, hasBit, VirtioF, VirtioNetF } from '../lib/devices/virtio-net-features';
import { native } from '../lib/native';
import { parseNetdevArg } from '../lib/options';
import { Topology } from '../lib/topology';
import { vhostUserBases } from '../lib/topology/netdevs/vhost-user';
import { VhostUserBackend } from '../lib/vhost-user/backend';
import { VhostUserEndpoint } from '../lib/vhost-user/endpoint';
import { VhostUserFrontend, type FrontendDevice } from '../lib/vhost-user/frontend';
import { Request } from '../lib/vhost-user/protocol';
import { GsoType, VnetFlag } from '../lib/vnet-hdr';
import { TCP_ACK, TCP_PSH, tcpFrame, vnetHeader } from './helpers/tap-frames';

const T = { timeout: 30_000 };
const BACKEND_FEATURES =
  bit(VirtioF.VERSION_1) | bit(VirtioNetF.MRG_RXBUF) | bit(VirtioF.RING_EVENT_IDX) | bit(VirtioNetF.MQ);

let dir: string;
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'np-vufe-'));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

async function until(what: string, cond: () => boolean, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function frame(tag: number, len = 60): Uint8Array {
  const f = new Uint8Array(len);
  f.fill(0xff, 0, 6); // broadcast
  f.set([0x52, 0x54, 0, 0, 0, tag], 6);
  f[12] = 0x88;
  f[13] = 0xb5; // local experimental ethertype
  f[14] = tag;
  return f;
}

function collect(port: PacketPort): Uint8Array[] {
  const got: Uint8Array[] = [];
  port.onFrames((batch) => {
    for (const f of batch) got.push(Uint8Array.from(f));
  });
  return got;
}

function openFds(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

/** netplane's own back-end on `sock`, serving virtio-device client `dev`; `seen` gets every request's name. */
function openNetplaneBackend(
  sock: string,
  dp: NativeDataPlane,
  dev: number,
  features: bigint,
  seen: string[],
): Promise<VhostUserEndpoint> {
  return VhostUserEndpoint.open({ kind: 'listen', path: sock }, () => {
    const be = new VhostUserBackend({ queuePairs: 1, features, dataPath: { path: dp, handles: [dev] } });
    // Every request the front-end sends, as the back-end's table checked it.
    return {
      ringCount: be.ringCount,
      handle: (r) => {
        seen.push(r.name);
        return be.handle(r);
      },
      close: () => be.close(),
    };
  });
}

/** A 64 KiB TSO4 frame (NEEDS_CSUM, GSO_TCPV4, MSS 1448) behind a 12-byte header, as Linux hands it on. */
function tso4Frame(tag: number, payloadLen = 65000 - 54): Buffer {
  const payload = Buffer.alloc(payloadLen, tag);
  const eth = tcpFrame(
    { srcMac: '52:54:00:00:00:0a', dstMac: '52:54:00:00:00:0b', srcIp: '10.0.0.1', dstIp: '10.0.0.2' },
    {
      sport: 4000,
      dport: 5001,
      seq: tag * 100000,
      ack: 1,
      flags: TCP_ACK | TCP_PSH,
      window: 512,
      payload,
      csum: 'partial',
    },
  );
  const hdr = vnetHeader(12, {
    flags: VnetFlag.NEEDS_CSUM,
    gsoType: GsoType.TCPV4,
    gsoSize: 1448,
    hdrLen: 54,
    csumStart: 34,
    csumOffset: 16,
  });
  return Buffer.concat([hdr, eth]);
}

describe('vhost-user front-end against netplane back-end', T, () => {
  test('frames both ways, link follows the connection, reconnect resumes, set_link off survives', async () => {
    const sock = path.join(dir, 'np-be.sock');
    const dp = new NativeDataPlane();
    const topo = new Topology({ dataPlane: dp });
    const events: Array<[string, Record<string, unknown>]> = [];
    topo.on('qmp-event', (n, d) => events.push([n, d]));
    const errors: string[] = [];
    topo.on('error', (e) => errors.push(e.message));
    const DEV = 100000;
    dp.addClient({ kind: 'virtio-device', handle: DEV, name: 'np-dev', queueIndex: 0 });
    const portB = dp.createPort('np-b');
    dp.connect(portB.handle, DEV);
    const seen: string[] = [];
    const openBackend = (): Promise<VhostUserEndpoint> => openNetplaneBackend(sock, dp, DEV, BACKEND_FEATURES, seen);
    let ep = await openBackend();
    try {
      topo.chardevs.add({ backend: 'socket', id: 'c0', path: sock, server: false, reconnect: 1 });
      const nd = topo.addNetdev(parseNetdevArg('vhost-user,id=n0,chardev=c0'));
      assert.equal(nd.linkUp, false, 'down until a back-end is connected');
      assert.match(topo.infoNetwork(), /n0: index=0,type=vhost-user,vhost-user0 to c0/);
      const portA = dp.createPort('np-a');
      dp.connect(portA.handle, nd.clients[0]!.handle);
      await until('link up', () => nd.linkUp);
      assert.deepEqual(
        seen,
        [
          'GET_FEATURES',
          'GET_PROTOCOL_FEATURES',
          'SET_PROTOCOL_FEATURES',
          'GET_QUEUE_NUM',
          'SET_OWNER',
          'SET_FEATURES',
          'SET_MEM_TABLE',
          ...['rx', 'tx'].flatMap(() => [
            'SET_VRING_NUM',
            'SET_VRING_BASE',
            'SET_VRING_ADDR',
            'SET_VRING_KICK',
            'SET_VRING_CALL',
          ]),
          'SET_VRING_ENABLE',
          'SET_VRING_ENABLE',
          'SET_STATUS',
        ],
        'the whole set-up, in order, every message accepted',
      );
      assert.deepEqual(events[0], ['NETPLANE_VHOST_USER_CONNECTED', { 'netdev-id': 'n0', 'chardev-id': 'c0' }]);
      // query-chardev as QEMU 7.2 prints a connected unix client: its local address is unnamed.
      assert.deepEqual(topo.chardevs.query(), [{ label: 'c0', filename: 'unix:', 'frontend-open': true }]);

      const gotA = collect(portA);
      const gotB = collect(portB);
      const N = 2500; // more than a ring (1024): buffers are recycled both ways
      for (let i = 0; i < N; i += 50)
        await portA.sendAsync(Array.from({ length: 50 }, (_, k) => frame((i + k) & 0xff)));
      await until('frames A -> B', () => gotB.length >= N);
      for (let i = 0; i < N; i += 50)
        await portB.sendAsync(Array.from({ length: 50 }, (_, k) => frame((i + k) & 0xff, 1514)));
      await until('frames B -> A', () => gotA.length >= N);
      assert.equal(gotB[7]![14], 7);
      assert.equal(gotA[9]!.length, 1514);
      assert.equal(gotA[9]![14], 9);

      // The back-end goes away: link down (deferred), then back with reconnect=1.
      seen.length = 0;
      await ep.close();
      await until('link down', () => !nd.linkUp);
      const disc = events.find((e) => e[0] === 'NETPLANE_VHOST_USER_DISCONNECTED');
      assert.ok(disc, 'disconnect event');
      assert.equal(disc[1]['netdev-id'], 'n0');
      const before = dp.stats().find((s) => s.handle === nd.clients[0]!.handle)!;
      portA.send([frame(1), frame(2)]);
      await until('drops counted', () => {
        const s = dp.stats().find((x) => x.handle === nd.clients[0]!.handle)!;
        return s.drops.linkDown >= before.drops.linkDown + 2;
      });
      const bases = [...vhostUserBases(nd)];
      assert.ok(bases[0]! > 0 && bases[1]! > 0, `saved bases ${bases.join(',')}`);
      ep = await openBackend();
      const t0 = Date.now();
      await until('link up again', () => nd.linkUp, 5000);
      const reconnectMs = Date.now() - t0;
      assert.ok(seen.includes('SET_MEM_TABLE'), 'the memory table is sent again');
      gotB.length = 0;
      await portA.sendAsync([frame(42)]);
      await until('traffic after reconnect', () => gotB.length >= 1);
      assert.equal(gotB[0]![14], 42);
      process.stdout.write(`# reconnect: link up ${reconnectMs} ms after the back-end listened again\n`);

      // set_link off by hand: down now, and still down after a reconnect.
      topo.setLink('n0', false);
      assert.equal(nd.linkUp, false);
      await ep.close();
      await until(
        'disconnect seen',
        () => events.filter((e) => e[0] === 'NETPLANE_VHOST_USER_DISCONNECTED').length >= 2,
      );
      ep = await openBackend();
      await until(
        'second reconnect',
        () => events.filter((e) => e[0] === 'NETPLANE_VHOST_USER_CONNECTED').length >= 3,
        5000,
      );
      assert.equal(nd.linkUp, false, 'set_link off kept across the reconnect');
      topo.setLink('n0', true);
      assert.equal(nd.linkUp, true);

      // Conservation on every client.
      for (const s of dp.stats()) assert.equal(s.framesIn, s.framesOut + s.queued + s.dropped, `${s.name} conserved`);
      assert.deepEqual(
        errors.filter((e) => !/closed the connection|disconnected|Connection refused|No such file/.test(e)),
        [],
      );
      await nd.close();
    } finally {
      await ep.close();
      await topo.close();
      dp.close();
    }
  });

  test('offloads, mergeable rx and EVENT_IDX: 64 KiB TSO frames cross whole both ways', async () => {
    const sock = path.join(dir, 'np-be-gso.sock');
    const dp = new NativeDataPlane();
    const topo = new Topology({ dataPlane: dp });
    const DEV = 100010;
    const features =
      BACKEND_FEATURES |
      [VirtioNetF.CSUM, VirtioNetF.GUEST_CSUM, VirtioNetF.HOST_TSO4, VirtioNetF.GUEST_TSO4, VirtioNetF.HOST_TSO6]
        .map(bit)
        .reduce((a, b) => a | b);
    dp.addClient({ kind: 'virtio-device', handle: DEV, name: 'np-dev', queueIndex: 0 });
    // Both ends carry 12-byte headers: they take GSO frames whole.
    const portB = dp.createPort('np-b', { vnetHdrLen: 12 });
    dp.connect(portB.handle, DEV);
    const ep = await openNetplaneBackend(sock, dp, DEV, features, []);
    try {
      topo.chardevs.add({ backend: 'socket', id: 'c0', path: sock, server: false, reconnect: 1 });
      const nd = topo.addNetdev(parseNetdevArg('vhost-user,id=n0,chardev=c0'));
      const portA = dp.createPort('np-a', { vnetHdrLen: 12 });
      dp.connect(portA.handle, nd.clients[0]!.handle);
      await until('link up', () => nd.linkUp);
      const drv = (): NetplaneClientStats => netplaneStats(topo).find((c) => c.name === 'n0')!;
      const acked = dp.stats().find((c) => c.handle === nd.clients[0]!.handle)!.virtio!.features;
      for (const f of [VirtioF.RING_EVENT_IDX, VirtioNetF.MRG_RXBUF, VirtioNetF.HOST_TSO4, VirtioNetF.GUEST_TSO4])
        assert.ok(hasBit(acked, f), `feature ${f} acked`);
      assert.ok(!hasBit(acked, VirtioNetF.HOST_TSO6) || hasBit(acked, VirtioNetF.CSUM));

      const gotA = collect(portA);
      const gotB = collect(portB);
      const N = 20;
      for (let i = 0; i < N; i++) await portA.sendAsync([tso4Frame(i)]);
      await until('GSO frames A -> B', () => gotB.length >= N);
      for (let i = 0; i < N; i++) await portB.sendAsync([tso4Frame(i)]);
      await until('GSO frames B -> A', () => gotA.length >= N);
      for (const got of [gotA, gotB]) {
        assert.equal(got.length, N, 'whole, not segmented');
        for (let i = 0; i < N; i++) {
          const want = tso4Frame(i);
          want[10] = 0; // num_buffers is the ring's business
          assert.equal(got[i]!.length, want.length);
          assert.ok(Buffer.from(got[i]!.subarray(0, 12)).equals(want.subarray(0, 12)), 'the GSO header crossed');
          assert.ok(Buffer.from(got[i]!).equals(want), `frame ${i} intact`);
        }
      }
      const v = drv().virtio!;
      assert.equal(v['tx-gso-frames'], N, 'tx: GSO frames to the back-end, whole');
      assert.equal(v['rx-gso-frames'], N, 'rx: GSO frames from the back-end, whole');
      assert.equal(v['rx-merged-frames'], N, 'each over mergeable buffers');
      assert.equal(v['rx-buffers'], N * 32, '65012 bytes in 2 KiB buffers: 32 each');
      assert.equal(v['tx-max-frame'], 65000);
      assert.equal(v['rx-max-frame'], 65000);
      // EVENT_IDX: the back-end waived the interrupts for tx completions the driver keeps off.
      const dev = netplaneStats(topo).find((c) => c.name === 'np-dev');
      process.stdout.write(
        `# event-idx: driver kicks ${v.notifies} (waived ${v['notifies-suppressed']}), device interrupts ${dev?.virtio?.notifies} (waived ${dev?.virtio?.['notifies-suppressed']})\n`,
      );
      assert.ok((dev?.virtio?.['notifies-suppressed'] ?? 0) > 0, 'device interrupts waived by used_event');
      for (const s of dp.stats()) assert.equal(s.framesIn, s.framesOut + s.queued + s.dropped, `${s.name} conserved`);
      for (const s of dp.stats()) assert.equal(s.segments, 0, `${s.name}: nothing segmented in software`);
      await nd.close();
    } finally {
      await ep.close();
      await topo.close();
      dp.close();
    }
  });

  test('option errors as QEMU prints them', () => {
    const topo = new Topology();
    assert.throws(() => parseNetdevArg('vhost-user,id=n0'), { message: "Parameter 'chardev' is missing" });
    assert.throws(() => topo.addNetdev(parseNetdevArg('vhost-user,id=n0,chardev=nope,queues=0')), {
      code: 'NETPLANE_INVALID_OPTION',
      message: 'chardev "nope" not found',
    });
    topo.chardevs.add({
      backend: 'socket',
      id: 'c1',
      path: path.join(dir, 'np-none.sock'),
      server: true,
      reconnect: 0,
    });
    for (const q of [0, 1025]) {
      assert.throws(() => topo.addNetdev(parseNetdevArg(`vhost-user,id=n0,chardev=c1,queues=${q}`)), {
        message: 'vhost-user number of queues must be in range [1, 1024]',
      });
    }
    const nd = topo.addNetdev(parseNetdevArg('vhost-user,id=n1,chardev=c1,queues=2'));
    assert.equal(nd.clients.length, 2);
    assert.throws(() => topo.addNetdev(parseNetdevArg('vhost-user,id=n2,chardev=c1'), { via: 'cli' }), {
      message: "Device 'c1' is in use",
    });
    topo.on('error', () => {}); // QMP's path reports the busy chardev, then fails like QEMU
    assert.throws(() => topo.addNetdev(parseNetdevArg('vhost-user,id=n2,chardev=c1')), {
      code: 'NETPLANE_IN_USE',
      message: "Device 'vhost-user' could not be initialized",
    });
    return topo.close();
  });
});

// ---- hostile back-ends ---------------------------------------------------------------------

type Answer = Buffer | 'close' | 'silence' | undefined;

/** A back-end that answers each request by script (code, flags) -> bytes to write. */
async function fakeBackend(
  name: string,
  script: (code: number, flags: number) => Answer,
): Promise<{ path: string; close(): Promise<void> }> {
  const p = path.join(dir, name);
  const server = net.createServer((s) => {
    let buf = Buffer.alloc(0);
    s.on('error', () => {});
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 12 && buf.length >= 12 + buf.readUInt32LE(8)) {
        const code = buf.readUInt32LE(0);
        const flags = buf.readUInt32LE(4);
        buf = buf.subarray(12 + buf.readUInt32LE(8));
        const a = script(code, flags);
        if (a === 'close') {
          s.destroy();
          return;
        }
        if (Buffer.isBuffer(a)) s.write(a);
      }
    });
  });
  await new Promise<void>((r) => server.listen(p, r));
  return { path: p, close: () => new Promise((r) => server.close(() => r())) };
}

function reply(code: number, value: bigint, flags = 0x5, size = 8): Buffer {
  const b = Buffer.alloc(12 + 8);
  b.writeUInt32LE(code, 0);
  b.writeUInt32LE(flags, 4);
  b.writeUInt32LE(size, 8);
  b.writeBigUInt64LE(value, 12);
  return b;
}

/** A well-behaved script, with one request answered differently. */
function honest(pairs: bigint, override?: (code: number, flags: number) => Answer | null) {
  return (code: number, flags: number): Answer => {
    const o = override?.(code, flags);
    if (o !== null && o !== undefined) return o;
    if (code === Request.GET_FEATURES) return reply(code, bit(VirtioF.VERSION_1) | bit(30) | bit(VirtioNetF.MQ));
    if (code === Request.GET_PROTOCOL_FEATURES) return reply(code, 0x10009n);
    if (code === Request.GET_QUEUE_NUM) return reply(code, pairs);
    if (flags & 0x8) return reply(code, 0n);
    return undefined;
  };
}

function fakeDevice(): FrontendDevice & { close(): void } {
  const fd = native().memfdCreate('np-vufe-test', 1 << 20);
  return {
    memoryTable: () => [{ guestAddr: 0x100000000n, size: 1n << 20n, userAddr: 0x100000000n, mmapOffset: 0n, fd }],
    start: () =>
      [0, 1, 2, 3].map((i) => ({
        index: i,
        size: 256,
        descAddr: 0x100000000n + BigInt(i) * 0x10000n,
        availAddr: 0x100000000n + BigInt(i) * 0x10000n + 0x1000n,
        usedAddr: 0x100000000n + BigInt(i) * 0x10000n + 0x2000n,
        base: 0,
        kickFd: native().eventfdCreate(),
        callFd: native().eventfdCreate(),
      })),
    close: () => fs.closeSync(fd),
  };
}

async function setUpAgainst(
  script: (code: number, flags: number) => Answer,
  name: string,
): Promise<{ error: Error | undefined; ms: number }> {
  const be = await fakeBackend(name, script);
  const fdsBefore = openFds();
  const dev = fakeDevice();
  const socket = net.connect({ path: be.path });
  socket.pause();
  await new Promise<void>((r, j) => socket.once('connect', r).once('error', j));
  const fe = new VhostUserFrontend(socket, { queuePairs: 2, features: bit(VirtioF.VERSION_1), replyTimeoutMs: 300 });
  const t0 = Date.now();
  let error: Error | undefined;
  try {
    await fe.setUp(dev);
  } catch (e) {
    error = e as Error;
  }
  const ms = Date.now() - t0;
  fe.close();
  dev.close();
  await be.close();
  await new Promise((r) => setTimeout(r, 50));
  assert.ok(openFds() <= fdsBefore, `no fd leaked (${openFds()} open, ${fdsBefore} before)`);
  return { error, ms };
}

describe('vhost-user front-end against hostile back-ends', T, () => {
  test('an honest script completes (the baseline)', async () => {
    const r = await setUpAgainst(honest(2n), 'np-h0.sock');
    assert.equal(r.error, undefined);
  });

  test('closes in the middle of a reply', async () => {
    let sent = false;
    const r = await setUpAgainst(
      honest(2n, (code) => {
        if (code !== Request.GET_PROTOCOL_FEATURES) return null;
        sent = true;
        return reply(code, 0x10009n).subarray(0, 7);
      }),
      'np-h1.sock',
    );
    assert.ok(sent);
    // The half reply waits; the back-end then stays silent until the timeout, or closes.
    assert.match(r.error?.message ?? '', /did not answer GET_PROTOCOL_FEATURES|in the middle of a reply/);
    assert.equal((r.error as { code?: string }).code, 'NETPLANE_VHOST_USER_PROTOCOL');
  });

  test('closes after half a reply', async () => {
    const be = honest(2n);
    let half = false;
    const r = await setUpAgainst((code, flags) => {
      if (half) return 'close';
      if (code === Request.GET_QUEUE_NUM) {
        half = true;
        return reply(code, 2n).subarray(0, 15);
      }
      return be(code, flags);
    }, 'np-h1b.sock');
    // The close arrives with the next request, or right away.
    assert.match(r.error?.message ?? '', /in the middle of a reply|did not answer|closed the connection/);
  });

  test('answers garbage', async () => {
    const r = await setUpAgainst(
      honest(2n, (code) => (code === Request.GET_FEATURES ? reply(code, 1n, 0x1) : null)),
      'np-h2.sock',
    );
    assert.match(r.error?.message ?? '', /answered GET_FEATURES with flags 0x1, not a version 1 reply/);
    const r2 = await setUpAgainst(
      honest(2n, (code) => (code === Request.GET_FEATURES ? reply(Request.GET_QUEUE_NUM, 1n) : null)),
      'np-h3.sock',
    );
    assert.match(r2.error?.message ?? '', /answered GET_FEATURES with a reply to GET_QUEUE_NUM/);
    const r3 = await setUpAgainst(
      honest(2n, (code) => (code === Request.GET_FEATURES ? reply(code, 1n, 0x5, 7) : null)),
      'np-h4.sock',
    );
    assert.match(r3.error?.message ?? '', /a 7-byte payload, expected 8/);
  });

  test('never answers a REPLY_ACK request', async () => {
    const r = await setUpAgainst(
      honest(2n, (code) => (code === Request.SET_MEM_TABLE ? 'silence' : null)),
      'np-h5.sock',
    );
    assert.match(r.error?.message ?? '', /did not answer SET_MEM_TABLE within 300 ms/);
    assert.ok(r.ms < 2000, `bounded (${r.ms} ms)`);
  });

  test('refuses a request (a failure ack)', async () => {
    const r = await setUpAgainst(
      honest(2n, (code) => (code === Request.SET_FEATURES ? reply(code, 1n) : null)),
      'np-h6.sock',
    );
    assert.match(r.error?.message ?? '', /refused SET_FEATURES \(ack 1\)/);
  });

  test('offers fewer queues than asked', async () => {
    const r = await setUpAgainst(honest(1n), 'np-h7.sock');
    assert.match(r.error?.message ?? '', /has 1 queue pair\(s\), fewer than the queues=2 asked/);
  });

  test('sends an unasked message', async () => {
    const r = await setUpAgainst(
      honest(2n, (code) =>
        code === Request.GET_PROTOCOL_FEATURES
          ? Buffer.concat([reply(code, 0x10009n), reply(Request.GET_FEATURES, 1n)])
          : null,
      ),
      'np-h8.sock',
    );
    assert.match(r.error?.message ?? '', /unasked message/);
  });
});
