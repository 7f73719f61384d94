// JavaScript packet ports on real TAPs: a namespace talks to a tiny responder written in
// JavaScript (ARP + ICMP echo) through the shared-memory rings, both reading APIs deliver
// batches, sends are validated, and a stalled consumer neither grows memory nor loses
// frames without counting them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NativeDataPlane } from '../lib/dataplane/native-dataplane';
import type { PacketPort } from '../lib/dataplane/packet-port';
import { privileged } from './helpers/privilege';
import { needsPrivileged } from './helpers/tools';
import { closeSide, openSide, run, sleep, unconserved, type Side } from './helpers/dataplane-env';

const PORT_MAC = [0x52, 0x54, 0x00, 0x00, 0x00, 0x09];

function ipOf(side: Side, host: number): number[] {
  const parts = side.ip.split('.').map(Number);
  return [parts[0], parts[1], parts[2], host];
}

function checksum(b: Uint8Array, start: number, end: number): number {
  let sum = 0;
  for (let i = start; i < end; i += 2) sum += (b[i] << 8) | (i + 1 < end ? b[i + 1] : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** The reply a host with PORT_MAC at `myIp` gives to frame f (ARP request or ICMP echo), or null. */
function reply(f: Uint8Array, myIp: number[]): Uint8Array | null {
  const type = (f[12] << 8) | f[13];
  if (type === 0x0806 && f.length >= 42 && f[21] === 1 && myIp.every((v, i) => f[38 + i] === v)) {
    const r = new Uint8Array(42);
    r.set(f.subarray(6, 12), 0); // to the asker
    r.set(PORT_MAC, 6);
    r.set([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2], 12);
    r.set(PORT_MAC, 22);
    r.set(myIp, 28);
    r.set(f.subarray(22, 32), 32); // sender MAC + IP become target
    return r;
  }
  if (type === 0x0800 && f[23] === 1 && f[34] === 8 && myIp.every((v, i) => f[30 + i] === v)) {
    const ipLen = (f[16] << 8) | f[17];
    const r = Uint8Array.from(f.subarray(0, 14 + ipLen));
    r.set(f.subarray(6, 12), 0);
    r.set(PORT_MAC, 6);
    r.set(f.subarray(30, 34), 26); // swap addresses (the IP header checksum is unchanged)
    r.set(f.subarray(26, 30), 30);
    r[34] = 0; // echo reply
    r[36] = r[37] = 0;
    const c = checksum(r, 34, r.length);
    r[36] = c >> 8;
    r[37] = c & 0xff;
    return r;
  }
  return null;
}

async function withPort(
  opts: { tapVnet: 'on' | 'off'; port?: Parameters<NativeDataPlane['createPort']>[1] },
  body: (side: Side, port: PacketPort, dp: NativeDataPlane) => Promise<void>,
): Promise<void> {
  const side = openSide('p', 1, (process.pid + 100) % 250, { vnetHdr: opts.tapVnet });
  const dp = new NativeDataPlane();
  try {
    dp.addClient({
      handle: 1,
      kind: 'tap',
      name: 'tap',
      queueIndex: 0,
      fd: side.tap.fd(0),
      vnetHdrLen: side.tap.vnetHdrLen,
    });
    const port = dp.createPort('port', opts.port);
    dp.connect(1, port.handle);
    await body(side, port, dp);
    assert.deepEqual(unconserved(dp.stats()), [], 'every client: in = out + queued + dropped');
  } finally {
    dp.close();
    closeSide(side);
  }
}

test(
  'a namespace pings a JavaScript host through the rings (callback API)',
  { ...needsPrivileged('ping'), timeout: 30_000 },
  async () => {
    await withPort({ tapVnet: 'on' }, async (side, port, dp) => {
      const myIp = ipOf(side, 9);
      let batches = 0;
      let frames = 0;
      const stop = port.onFrames((batch) => {
        batches++;
        frames += batch.length;
        const replies = batch.map((f) => reply(f, myIp)).filter((r): r is Uint8Array => r !== null);
        if (replies.length > 0) assert.equal(port.send(replies), true);
      });
      // Asynchronously: the replies come from this very event loop.
      const out = await run(side.ns, 'ping', ['-c', '3', '-i', '0.2', '-W', '1', myIp.join('.')], 10_000).catch(
        (e: Error) => e.message,
      );
      assert.match(out, /3 received/, 'ping to the JavaScript host');
      stop();
      const neigh = side.ns.exec('ip', ['neigh', 'show', myIp.join('.')]);
      assert.match(neigh, /52:54:00:00:00:09/);
      assert.ok(frames >= 4 && batches >= 1 && batches <= frames);
      const s = dp.stats().find((c) => c.name === 'port')!;
      assert.ok(s.deviceRxFrames >= 4, 'replies sent from JavaScript');
      assert.equal(s.dropped, 0);
    });
  },
);

test(
  'for await delivers batches; frames include the negotiated vnet header',
  { ...needsPrivileged('ping'), timeout: 30_000 },
  async () => {
    await withPort({ tapVnet: 'on', port: { vnetHdrLen: 12 } }, async (side, port) => {
      const myIp = ipOf(side, 9);
      const pinger = run(side.ns, 'ping', ['-c', '3', '-i', '0.2', '-W', '1', myIp.join('.')], 10_000).catch(() => '');
      let answered = 0;
      for await (const batch of port) {
        for (const f of batch) {
          assert.ok(f.length >= 12 + 14);
          assert.equal(f[1], 0, 'GSO_NONE header in front of a plain frame');
          const r = reply(f.subarray(12), myIp);
          if (r === null) continue;
          const framed = new Uint8Array(12 + r.length);
          framed.set(r, 12);
          await port.sendAsync([framed]);
          if (r[12] === 0x08 && r[13] === 0x00) answered++;
        }
        if (answered >= 3) break;
      }
      assert.match(await pinger, /3 received/);
    });
  },
);

test(
  'frames from JavaScript are validated: length and vnet header, counted when rejected',
  { ...privileged(), timeout: 30_000 },
  async () => {
    await withPort({ tapVnet: 'on', port: { vnetHdrLen: 10 } }, async (_side, port, dp) => {
      const good = new Uint8Array(10 + 60);
      const badHdr = new Uint8Array(10 + 60);
      badHdr[1] = 9; // no such gso_type
      assert.throws(
        () => port.send([good, badHdr]),
        (e: Error) => e instanceof RangeError && /^frame 1: invalid vnet header/.test(e.message),
      );
      assert.throws(
        () => port.send([new Uint8Array(20)]),
        (e: Error) => e instanceof RangeError && /^frame 0: 20 bytes is too short/.test(e.message),
      );
      assert.throws(
        () => port.send([good, new Uint8Array(10 + 65536)]),
        (e: Error) => e instanceof RangeError && /^frame 1: .*larger than 65535/.test(e.message),
      );
      assert.throws(() => port.send([{} as Uint8Array]), TypeError);
      const s = dp.stats().find((c) => c.name === 'port')!;
      assert.equal(s.drops.badVnetHdr, 2);
      assert.equal(s.drops.oversize, 1);
      assert.equal(s.deviceRxFrames, 0, 'nothing of a rejected batch was sent');
      assert.equal(port.send([good]), true);
    });
  },
);

for (const whenFull of ['backpressure', 'drop'] as const) {
  test(
    `a stalled consumer (${whenFull}): bounded memory, every drop counted`,
    { ...needsPrivileged('socat'), timeout: 30_000 },
    async () => {
      await withPort({ tapVnet: 'on', port: { whenFull, ringBytes: 256 * 1024 } }, async (side, port, dp) => {
        const target = ipOf(side, 9).join('.');
        side.ns.exec('ip', ['neigh', 'replace', target, 'lladdr', '52:54:00:00:00:09', 'dev', side.ifname]);
        const rss0 = process.memoryUsage().rss;
        await run(
          side.ns,
          'timeout',
          ['2', 'socat', '-u', '-b', '1000', '/dev/zero', `UDP-SENDTO:${target}:9`],
          10_000,
        ).catch(() => '');
        await sleep(100);
        const s = dp.stats().find((c) => c.name === 'port')!;
        const rssGrowth = process.memoryUsage().rss - rss0;
        assert.ok(rssGrowth < 64 * 1024 * 1024, `RSS grew by ${rssGrowth} bytes`);
        assert.ok(s.queued <= 1, `queued ${s.queued}`);
        if (whenFull === 'drop') {
          assert.ok(s.drops.queueFull > 0, 'ring-full drops are counted');
          assert.equal(s.framesIn, s.framesOut + s.drops.queueFull + s.queued);
        } else {
          assert.equal(s.dropped, 0, 'back-pressure: the TAP stops reading, nothing is dropped here');
          const tap = dp.stats().find((c) => c.name === 'tap')!;
          // The TAP reads from addClient on, so a frame the namespace sent before connect()
          // (IPv6 neighbour discovery) is a counted noPeer drop; back-pressure itself drops nothing.
          assert.equal(tap.dropped - tap.drops.noPeer, 0, `TAP drops: ${JSON.stringify(tap.drops)}`);
        }
        // The consumer wakes up: the ring drains and traffic flows again.
        const first = port.read();
        assert.ok(first.length > 100, `a full ring of frames waits: ${first.length}`);
        assert.ok(first.every((f) => f.length >= 14));
        port.read(); // releases the first batch
      });
    },
  );
}
