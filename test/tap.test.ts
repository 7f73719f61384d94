// Tap against real TAP devices: what `ip -d link` and `ethtool -k` report, frames in both
// directions between the TAP fd and sockets in a throwaway namespace (with and without vnet
// headers, a 64 KiB TSO frame), adoption of pre-opened fds, and every bad input giving a
// clear error without leaking an fd.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { Worker } from 'node:worker_threads';
import { execFileSync } from 'node:child_process';

import { Tap, TunFeature } from '../lib/tap';
import { NetplaneError } from '../lib/errors';
import { NetNs, npName, sh, deleteLink, leakedFdsSince, linkExists, openFds } from './helpers/netns';
import { privileged } from './helpers/privilege';
import { needs, needsPrivileged } from './helpers/tools';
import { GsoType, VnetFlag, decodeVnetHdr } from '../lib/vnet-hdr';
import {
  TCP_ACK,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  parseIpv4,
  parseTcp,
  parseUdp,
  readFrameUntil,
  tcpFrame,
  udpFrame,
  vnetHeader,
  type Endpoints,
} from './helpers/tap-frames';

const TIMEOUT = 20_000;

/** The addon file lib/native.ts loads (prebuilds/ or build/), for workers and child processes. */
function addonPath(): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- node-gyp-build ships no typings
  const gypBuild = require('node-gyp-build') as { path(dir: string): string };
  return gypBuild.path(path.join(__dirname, '..'));
}

function linkDetails(ifname: string, ns?: NetNs): string {
  const args = ['-d', 'link', 'show', 'dev', ifname];
  return ns ? ns.exec('ip', args) : sh('ip', args);
}

/** `ethtool -k` as a map: feature name -> 'on' | 'off'. */
function ethtoolFeatures(ifname: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of sh('ethtool', ['-k', ifname]).split('\n')) {
    const m = /^\s*([\w-]+): (on|off)/.exec(line);
    if (m) out.set(m[1], m[2]);
  }
  return out;
}

/** Run fn and assert it throws `expected` without changing this process's open fd count. */
function throwsWithoutLeak(fn: () => unknown, expected: assert.AssertPredicate): void {
  const before = openFds();
  assert.throws(fn, expected);
  assert.deepEqual(leakedFdsSince(before), [], 'no fd left open');
}

/** "fd -> /dev/net/tun" for each queue fd of a Tap: what opening it adds to this process. */
function tunFds(tap: Tap): string[] {
  return Array.from({ length: tap.queues }, (_, q) => `${tap.fd(q)} -> /dev/net/tun`).sort();
}

describe('Tap: open, queues, headers, offloads', privileged(), () => {
  test(
    'multiqueue open shows multi_queue numqueues N in ip -d link; close removes it',
    { timeout: TIMEOUT },
    async () => {
      const ifname = npName('mq');
      const before = openFds();
      const tap = Tap.open({ ifname, queues: 4 });
      try {
        assert.equal(tap.ifname, ifname);
        assert.equal(tap.queues, 4);
        assert.deepEqual(leakedFdsSince(before).sort(), tunFds(tap), 'the open added exactly the four queue fds');
        const fds = new Set([0, 1, 2, 3].map((q) => tap.fd(q)));
        assert.equal(fds.size, 4);
        assert.match(linkDetails(ifname), /tun type tap pi off vnet_hdr on multi_queue numqueues 4 numdisabled 0/);
        assert.ok(tap.features & TunFeature.IFF_MULTI_QUEUE);
      } finally {
        await tap.close();
      }
      assert.equal(tap.closed, true);
      assert.equal(linkExists(ifname), false);
      assert.deepEqual(leakedFdsSince(before), [], 'close closed every queue fd');
    },
  );

  test('kernel-named TAP: the name read back is used for every queue', { timeout: TIMEOUT }, async () => {
    await using tap = Tap.open({ queues: 2 });
    assert.match(tap.ifname, /^tap\d+$/);
    assert.match(linkDetails(tap.ifname), /multi_queue numqueues 2 /);
  });

  test('detaching a queue shows in numdisabled; attaching it again clears it', { timeout: TIMEOUT }, async () => {
    const ifname = npName('dq');
    await using tap = Tap.open({ ifname, queues: 3 });
    tap.setQueueEnabled(1, false);
    assert.equal(tap.queueEnabled(1), false);
    assert.match(linkDetails(ifname), /numqueues 2 numdisabled 1/);
    tap.setQueueEnabled(2, false);
    assert.match(linkDetails(ifname), /numqueues 1 numdisabled 2/);
    tap.setQueueEnabled(1, true);
    tap.setQueueEnabled(2, true);
    assert.equal(tap.queueEnabled(1), true);
    assert.match(linkDetails(ifname), /numqueues 3 numdisabled 0/);
  });

  test('vnet_hdr on and off are visible in ip -d link', { timeout: TIMEOUT }, async () => {
    const on = npName('vh');
    const off = npName('vh');
    await using a = Tap.open({ ifname: on, vnetHdr: 'on' });
    await using b = Tap.open({ ifname: off, vnetHdr: 'off' });
    assert.equal(a.hasVnetHdr, true);
    assert.equal(a.vnetHdrLen, 10);
    assert.match(linkDetails(on), /vnet_hdr on/);
    assert.equal(b.hasVnetHdr, false);
    assert.equal(b.vnetHdrLen, 0);
    assert.match(linkDetails(off), /vnet_hdr off/);
    // A single-queue open is not multiqueue.
    assert.doesNotMatch(linkDetails(off), /multi_queue/);
  });

  test('vnet header length can be set to 10, 12 and 20 and is reset on reopen', { timeout: TIMEOUT }, async () => {
    const ifname = npName('hl');
    sh('ip', ['tuntap', 'add', ifname, 'mode', 'tap', 'vnet_hdr']);
    try {
      {
        await using tap = Tap.open({ ifname });
        for (const len of [12, 20, 10, 20] as const) {
          tap.setVnetHdrLen(len);
          assert.equal(tap.vnetHdrLen, len);
        }
      }
      // The persistent TAP kept 20; a new open must not inherit it.
      await using again = Tap.open({ ifname });
      assert.equal(again.vnetHdrLen, 10);
    } finally {
      deleteLink(ifname);
    }
  });

  test('offloads are visible in ethtool -k', { ...needs('ethtool'), timeout: TIMEOUT }, async () => {
    const ifname = npName('of');
    await using tap = Tap.open({ ifname });
    let k = ethtoolFeatures(ifname);
    assert.equal(k.get('tx-checksum-ip-generic'), 'off');
    assert.equal(k.get('tx-tcp-segmentation'), 'off');

    tap.setOffloads({ csum: true, tso4: true, tso6: true, ecn: true });
    assert.equal(tap.offloadFlags, 0x0f);
    k = ethtoolFeatures(ifname);
    assert.equal(k.get('tx-checksum-ip-generic'), 'on');
    assert.equal(k.get('tx-tcp-segmentation'), 'on');
    assert.equal(k.get('tx-tcp6-segmentation'), 'on');
    assert.equal(k.get('tx-tcp-ecn-segmentation'), 'on');
    assert.equal(k.get('tx-udp-segmentation'), 'off');

    if (tap.hasUso) {
      tap.setOffloads({ csum: true, uso4: true, uso6: true });
      assert.equal(tap.offloadFlags, 0x61);
      k = ethtoolFeatures(ifname);
      assert.equal(k.get('tx-udp-segmentation'), 'on');
      assert.equal(k.get('tx-tcp-segmentation'), 'off');
    }
    // The kernel takes USO only as a pair: a lone uso4 falls back (QEMU's staged retry).
    tap.setOffloads({ csum: true, tso4: true, uso4: true });
    assert.equal(tap.offloadFlags, 0x03);

    // Without csum nothing is offloaded.
    tap.setOffloads({ tso4: true });
    assert.equal(tap.offloadFlags, 0);
    k = ethtoolFeatures(ifname);
    assert.equal(k.get('tx-checksum-ip-generic'), 'off');
    assert.equal(k.get('tx-tcp-segmentation'), 'off');
  });

  test('sndbuf: explicit, clamped above INT_MAX, and changed later', { timeout: TIMEOUT }, async () => {
    await using tap = Tap.open({ sndbuf: 2 ** 40 });
    tap.setSndbuf(1 << 20);
    tap.setSndbuf(0);
  });

  test(
    'a closed Tap refuses every operation with NETPLANE_CLOSED; close is idempotent',
    { timeout: TIMEOUT },
    async () => {
      const tap = Tap.open();
      await tap.close();
      await tap.close();
      const closedErr = (e: unknown) => e instanceof NetplaneError && e.code === 'NETPLANE_CLOSED';
      assert.throws(() => tap.fd(0), closedErr);
      assert.throws(() => tap.setOffloads({}), closedErr);
      assert.throws(() => tap.setQueueEnabled(0, true), closedErr);
      assert.throws(() => tap.setVnetHdrLen(12), closedErr);
      assert.throws(() => tap.setSndbuf(1), closedErr);
      assert.throws(() => tap.queueEnabled(0), closedErr);
      // What it was stays readable.
      assert.match(tap.ifname, /^tap\d+$/);
      assert.equal(tap.vnetHdrLen, 10);
    },
  );

  test('a TAP left open by a worker is closed when the worker exits', { timeout: TIMEOUT }, async () => {
    const ifname = npName('wk');
    const addon = addonPath();
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       const b = require(workerData.addon);
       globalThis.keep = b.tapOpen({ ifname: workerData.ifname });
       parentPort.on('message', () => {}); // stay alive until terminated
       parentPort.postMessage('open');`,
      { eval: true, workerData: { addon, ifname } },
    );
    const opened = new Promise((resolve) => worker.once('message', resolve));
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    await opened;
    assert.equal(linkExists(ifname), true);
    // terminate() stops the worker without running any JS: only the env cleanup can close it.
    await worker.terminate();
    await exited;
    assert.equal(linkExists(ifname), false);
  });
});

// ---- frames through the fd -------------------------------------------------------------

const NS_IP = '10.77.0.1';
const NS_MAC = '02:6e:70:00:00:01';
const PEER_IP = '10.77.0.2'; // "us", speaking through the TAP fd
const PEER_MAC = '02:6e:70:00:00:02';
const toNs: Endpoints = { srcMac: PEER_MAC, dstMac: NS_MAC, srcIp: PEER_IP, dstIp: NS_IP };

/** A TAP whose interface lives in a fresh namespace at NS_IP, with PEER_IP as a static neighbour. */
function tapInNamespace(opts: Parameters<typeof Tap.open>[0]): {
  tap: Tap;
  ns: NetNs;
  [Symbol.asyncDispose](): Promise<void>;
} {
  const ifname = npName('fr');
  const ns = new NetNs('fr');
  let tap: Tap | undefined;
  try {
    // Fewer unrelated frames on the wire (router solicitations, MLD).
    ns.disableIpv6();
    tap = Tap.open({ ...opts, ifname });
    // The fd keeps working after the interface moves to another namespace.
    ns.adopt(ifname, `${NS_IP}/24`, NS_MAC);
    ns.exec('ip', ['neigh', 'replace', PEER_IP, 'lladdr', PEER_MAC, 'dev', ifname, 'nud', 'permanent']);
  } catch (e) {
    void tap?.close();
    ns.dispose();
    deleteLink(ifname);
    throw e;
  }
  const t = tap;
  return {
    tap: t,
    ns,
    async [Symbol.asyncDispose]() {
      await t.close();
      ns.dispose();
    },
  };
}

/** A node script in the namespace; resolves once it prints "ready", then yields its lines. */
async function startInNs(ns: NetNs, script: string) {
  const child = ns.spawn(process.execPath, ['-e', script]);
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const lines: string[] = [];
  const waiting: Array<(l: string) => void> = [];
  createInterface({ input: child.stdout! }).on('line', (l) => {
    const w = waiting.shift();
    if (w) w(l);
    else lines.push(l);
  });
  const nextLine = (timeoutMs = 5000) =>
    new Promise<string>((resolve, reject) => {
      const l = lines.shift();
      if (l !== undefined) return resolve(l);
      const timer = setTimeout(
        () => reject(new Error(`no output from namespace script; stderr: ${stderr}`)),
        timeoutMs,
      );
      waiting.push((line) => {
        clearTimeout(timer);
        resolve(line);
      });
    });
  assert.equal(await nextLine(), 'ready');
  return {
    nextLine,
    [Symbol.dispose]() {
      child.kill('SIGKILL');
    },
  };
}

const UDP_ECHO = `
  const d = require('node:dgram').createSocket('udp4');
  d.on('message', (m, r) => {
    console.log(JSON.stringify({ hex: m.toString('hex'), address: r.address, port: r.port }));
    d.send(Buffer.concat([Buffer.from('reply:'), m]), r.port, r.address);
  });
  d.bind(5555, '${NS_IP}', () => console.log('ready'));`;

for (const mode of [
  { vnetHdr: 'off' as const, len: 0 },
  { vnetHdr: 'on' as const, len: 10 },
  { vnetHdr: 'on' as const, len: 12 },
]) {
  test(
    `UDP both ways through the fd, vnet header ${mode.len || 'none'}`,
    { ...privileged(), timeout: TIMEOUT },
    async () => {
      await using env = tapInNamespace({ vnetHdr: mode.vnetHdr });
      const { tap, ns } = env;
      if (mode.len === 12) tap.setVnetHdrLen(12);
      assert.equal(tap.vnetHdrLen, mode.len);
      using echo = await startInNs(ns, UDP_ECHO);

      const payload = Buffer.from(`hello from the tap fd (${mode.len})`);
      const frame = udpFrame(toNs, 40000, 5555, payload);
      const written = fs.writeSync(tap.fd(0), Buffer.concat([vnetHeader(mode.len), frame]));
      assert.equal(written, mode.len + frame.length);

      const got = JSON.parse(await echo.nextLine());
      assert.deepEqual(got, { hex: payload.toString('hex'), address: PEER_IP, port: 40000 });

      const reply = await readFrameUntil(tap.fd(0), (raw) => {
        const ip = parseIpv4(raw.subarray(mode.len));
        if (!ip || ip.proto !== 17 || ip.srcIp !== NS_IP) return undefined;
        return {
          hdr: mode.len ? decodeVnetHdr(raw) : undefined,
          ip,
          udp: parseUdp(ip.l4),
          mac: raw.subarray(mode.len, mode.len + 6),
        };
      });
      assert.equal(reply.ip.dstIp, PEER_IP);
      assert.equal(reply.udp.sport, 5555);
      assert.equal(reply.udp.dport, 40000);
      assert.equal(reply.udp.payload.toString(), `reply:${payload}`);
      assert.equal([...reply.mac].map((b) => b.toString(16).padStart(2, '0')).join(':'), PEER_MAC);
      if (reply.hdr) assert.equal(reply.hdr.gsoType, GsoType.NONE); // offloads are off after open
    },
  );
}

/** Deterministic bytes so both ends can check content, not just length. */
function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed) & 0xff;
  return b;
}
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test(
  'TCP through the fd with vnet headers: a 64 KiB TSO frame in, TSO frames out',
  { ...privileged(), timeout: TIMEOUT },
  async (t) => {
    await using env = tapInNamespace({ vnetHdr: 'on' });
    const { tap, ns } = env;
    // Let the kernel hand us unchecksummed TSO frames (what a virtio-net guest would accept).
    tap.setOffloads({ csum: true, tso4: true, tso6: true });
    // The namespace side may advertise a window large enough for one 64 KiB segment.
    ns.exec('ip', ['link', 'set', 'dev', tap.ifname, 'mtu', '65000']);
    const IN = 65_000 - 40; // TCP payload of the one GSO frame we write (IPv4 total 65000)
    const OUT = 200_000; // what the namespace sends back
    using server = await startInNs(
      ns,
      `const crypto = require('node:crypto');
     const pattern = ${pattern.toString()};
     require('node:net').createServer((s) => {
       const chunks = []; let n = 0;
       s.on('error', () => {});
       s.on('data', (c) => {
         chunks.push(c); n += c.length;
         if (n === ${IN}) {
           console.log(JSON.stringify({ len: n, sha: crypto.createHash('sha256').update(Buffer.concat(chunks)).digest('hex') }));
           s.write(pattern(${OUT}, 5));
         }
       });
     }).listen(5556, '${NS_IP}', () => console.log('ready'));`,
    );
    const fd = tap.fd(0);
    const H = 10;
    const write = (f: Buffer, hdr = vnetHeader(H)) => fs.writeSync(fd, Buffer.concat([hdr, f]));
    const sport = 41000;
    const seg = (s: Partial<Parameters<typeof tcpFrame>[1]>) =>
      tcpFrame(toNs, { sport, dport: 5556, seq: 0, ack: 0, flags: TCP_ACK, window: 65535, ...s });
    const fromServer = (raw: Buffer) => {
      const ip = parseIpv4(raw.subarray(H));
      if (!ip || ip.proto !== 6 || ip.srcIp !== NS_IP) return undefined;
      const tcp = parseTcp(ip.l4);
      return tcp.dport === sport ? { hdr: decodeVnetHdr(raw), tcp, frameLen: raw.length - H } : undefined;
    };

    // Handshake: MSS 1460, window scaling with shift 0 (so the server may scale its own).
    const isn = 1_000_000;
    write(seg({ seq: isn, flags: TCP_SYN, options: Buffer.from([2, 4, 0x05, 0xb4, 1, 3, 3, 0]) }));
    const synAck = await readFrameUntil(fd, fromServer);
    assert.equal(synAck.tcp.flags & (TCP_SYN | TCP_ACK), TCP_SYN | TCP_ACK);
    assert.equal(synAck.tcp.ack, isn + 1);
    let rcvNxt = (synAck.tcp.seq + 1) >>> 0;
    write(seg({ seq: isn + 1, ack: rcvNxt }));
    // The server's window (unscaled in the SYN-ACK) must take the whole segment.
    assert.ok(synAck.tcp.window >= IN, `server window ${synAck.tcp.window} < ${IN}`);

    // One 64 KiB frame: the kernel segments nothing here (it is delivered locally), but it
    // must accept the GSO metadata and complete the checksum (NEEDS_CSUM, partial sum).
    const data = pattern(IN, 9);
    const big = seg({ seq: isn + 1, ack: rcvNxt, flags: TCP_ACK | TCP_PSH, payload: data, csum: 'partial' });
    assert.equal(big.length, 14 + 65_000);
    const written = write(
      big,
      vnetHeader(H, {
        flags: VnetFlag.NEEDS_CSUM,
        gsoType: GsoType.TCPV4,
        hdrLen: 54,
        gsoSize: 1448,
        csumStart: 34,
        csumOffset: 16,
      }),
    );
    assert.equal(written, H + big.length);
    assert.deepEqual(JSON.parse(await server.nextLine()), { len: IN, sha: sha256(data) });

    // Back: the server's 200 KB arrive as TSO frames larger than the MTU, with NEEDS_CSUM.
    const received: Buffer[] = [];
    let total = 0;
    let biggest = 0;
    let tsoFrames = 0;
    while (total < OUT) {
      const f = await readFrameUntil(fd, (raw) => {
        const s = fromServer(raw);
        return s && s.tcp.payload.length > 0 ? s : undefined;
      });
      if (f.tcp.seq === rcvNxt) {
        received.push(Buffer.from(f.tcp.payload));
        total += f.tcp.payload.length;
        rcvNxt = (rcvNxt + f.tcp.payload.length) >>> 0;
        biggest = Math.max(biggest, f.frameLen);
        if (f.hdr.gsoType === GsoType.TCPV4) {
          tsoFrames++;
          assert.ok(f.hdr.flags & VnetFlag.NEEDS_CSUM);
          assert.equal(f.hdr.csumStart, 34);
          assert.equal(f.hdr.csumOffset, 16);
          assert.ok(f.hdr.gsoSize > 0 && f.hdr.gsoSize <= 1460);
        }
      }
      write(seg({ seq: isn + 1 + IN, ack: rcvNxt }));
    }
    assert.equal(total, OUT);
    assert.equal(sha256(Buffer.concat(received)), sha256(pattern(OUT, 5)));
    t.diagnostic(`server window ${synAck.tcp.window}; ${tsoFrames} TSO frames back, largest ${biggest} bytes`);
    assert.ok(tsoFrames > 0, 'no TSO frame arrived');
    assert.ok(biggest > 1514, `largest frame ${biggest} bytes is not a TSO frame`);
    write(seg({ seq: isn + 1 + IN, ack: rcvNxt, flags: TCP_RST }));
  },
);

test(
  'a pre-opened fd is adopted and frames flow through the adopted Tap',
  { ...privileged(), timeout: TIMEOUT },
  async () => {
    await using env = tapInNamespace({ vnetHdr: 'on', queues: 2 });
    const { tap, ns } = env;
    const before = openFds();
    await using adopted = Tap.adopt([tap.fd(0), tap.fd(1)], { sndbuf: 1 << 20 });
    assert.deepEqual(leakedFdsSince(before).sort(), tunFds(adopted), 'the adoption added exactly two dups');
    assert.equal(adopted.ifname, tap.ifname);
    assert.equal(adopted.queues, 2);
    assert.equal(adopted.hasVnetHdr, true);
    assert.equal(adopted.vnetHdrLen, 10);
    assert.notEqual(adopted.fd(0), tap.fd(0)); // a dup, owned by the adopted Tap
    using echo = await startInNs(ns, UDP_ECHO);
    const payload = Buffer.from('through an adopted fd');
    fs.writeSync(adopted.fd(1), Buffer.concat([vnetHeader(10), udpFrame(toNs, 40001, 5555, payload)]));
    assert.equal(JSON.parse(await echo.nextLine()).hex, payload.toString('hex'));
    await adopted.close();
    // (the echo child's stdio sockets opened meanwhile stay open until the test ends)
    assert.deepEqual(
      leakedFdsSince(before).filter((f) => f.endsWith(' -> /dev/net/tun')),
      [],
      'close closed both dups',
    );
    // The original fds still hold the interface.
    assert.match(linkDetails(tap.ifname, ns), /numqueues 2/);
  },
);

// ---- bad input ---------------------------------------------------------------------------

describe('Tap: bad input gives a clear error and leaks nothing', () => {
  test('ifname too long or with bad characters', () => {
    throwsWithoutLeak(
      () => Tap.open({ ifname: 'np' + 'x'.repeat(14) }),
      (e: Error) => e instanceof RangeError && /ifname 'npx+' is too long: 16 characters, at most 15/.test(e.message),
    );
    for (const bad of ['np a', 'np/a', 'np:a', 'np\ta', '.', '..']) {
      throwsWithoutLeak(
        () => Tap.open({ ifname: bad }),
        (e: Error) => e instanceof RangeError && e.message.startsWith(`ifname '${bad}'`),
      );
    }
    throwsWithoutLeak(
      () => Tap.open({ ifname: 7 as unknown as string }),
      (e: Error) => e instanceof TypeError && /ifname must be a string/.test(e.message),
    );
  });

  test('queues=0, absurdly large, fractional or not a number', () => {
    for (const q of [0, 1025, 1e9, -1, 1.5, NaN, Infinity]) {
      throwsWithoutLeak(
        () => Tap.open({ queues: q }),
        (e: Error) => e instanceof RangeError && /^queues must be an integer in 1\.\.1024, got /.test(e.message),
      );
    }
    throwsWithoutLeak(() => Tap.open({ queues: '2' as unknown as number }), TypeError);
  });

  test('unknown options and vnetHdr modes', () => {
    throwsWithoutLeak(
      () => Tap.open({ queue: 2 } as never),
      (e: Error) => e instanceof TypeError && /unknown tap option 'queue'/.test(e.message),
    );
    throwsWithoutLeak(
      () => Tap.open({ vnetHdr: 'yes' as never }),
      (e: Error) => e instanceof TypeError && /vnetHdr must be 'off', 'auto' or 'on'/.test(e.message),
    );
  });

  test('negative or huge sndbuf', () => {
    for (const s of [-1, -(2 ** 40), 2 ** 60, Infinity, 0.5]) {
      throwsWithoutLeak(
        () => Tap.open({ sndbuf: s }),
        (e: Error) =>
          e instanceof RangeError && /^sndbuf must be an integer in 0\.\.9007199254740991, got /.test(e.message),
      );
    }
  });

  test('unknown vnet header size, bad queue index, bad offload flags', privileged(), async () => {
    await using tap = Tap.open({ queues: 2 });
    for (const len of [0, 11, 24, 64, -10]) {
      throwsWithoutLeak(
        () => tap.setVnetHdrLen(len as 10),
        (e: Error) => e instanceof RangeError && /vnet header length must be 10, 12 or 20/.test(e.message),
      );
    }
    assert.equal(tap.vnetHdrLen, 10);
    throwsWithoutLeak(
      () => tap.setQueueEnabled(2, false),
      (e: Error) => e instanceof RangeError && /queue must be an integer in 0\.\.1, got 2/.test(e.message),
    );
    throwsWithoutLeak(() => tap.fd(-1), RangeError);
    throwsWithoutLeak(
      () => tap.setOffloads({ csum: 1 } as never),
      (e: Error) => e instanceof TypeError && /offloads\.csum must be a boolean/.test(e.message),
    );
    throwsWithoutLeak(
      () => tap.setOffloads({ gso: true } as never),
      (e: Error) => e instanceof TypeError && /unknown offload 'gso'/.test(e.message),
    );
    throwsWithoutLeak(() => tap.setSndbuf(-5), RangeError);
    // Without a vnet header there is no header size to set and nothing to offload.
    await using plain = Tap.open({ vnetHdr: 'off' });
    throwsWithoutLeak(
      () => plain.setVnetHdrLen(12),
      (e: Error & { code?: string }) => e.code === 'EINVAL' && /has no vnet header/.test(e.message),
    );
    throwsWithoutLeak(
      () => plain.setOffloads({ csum: true }),
      (e: Error & { code?: string }) => e.code === 'EINVAL' && /offloads need a vnet header/.test(e.message),
    );
  });

  test('an fd that is not a TAP: regular file, /dev/null, a pipe, an unattached /dev/net/tun', privileged(), () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'np-tap-'));
    const fds: number[] = [];
    try {
      const fifo = path.join(dir, 'fifo');
      execFileSync('mkfifo', [fifo]);
      fds.push(fs.openSync(path.join(dir, 'file'), 'w+'), fs.openSync('/dev/null', 'r'), fs.openSync(fifo, 'r+'));
      for (const fd of fds) {
        throwsWithoutLeak(
          () => Tap.adopt([fd]),
          (e: Error & { code?: string; syscall?: string }) =>
            e.code === 'ENOTTY' &&
            e.syscall === 'ioctl(TUNGETIFF)' &&
            e.message === `Unable to query TUNGETIFF on FD ${fd}: Inappropriate ioctl for device`,
        );
      }
      const tun = fs.openSync('/dev/net/tun', 'r+');
      fds.push(tun);
      throwsWithoutLeak(
        () => Tap.adopt([tun]),
        (e: Error & { code?: string }) =>
          e.code === 'EBADFD' && e.message.startsWith(`Unable to query TUNGETIFF on FD ${tun}: `),
      );
    } finally {
      for (const fd of fds) fs.closeSync(fd);
      fs.rmSync(dir, { recursive: true, force: true });
    }
    throwsWithoutLeak(
      () => Tap.adopt([]),
      (e: Error) => e instanceof RangeError && /fds must hold 1\.\.1024/.test(e.message),
    );
    throwsWithoutLeak(
      () => Tap.adopt([-1]),
      (e: Error) => e instanceof RangeError && /^fd must be an integer/.test(e.message),
    );
    throwsWithoutLeak(() => Tap.adopt(3 as never), TypeError);
  });

  test('adopting fds that disagree on vnet_hdr', privileged(), async () => {
    await using a = Tap.open({ vnetHdr: 'on' });
    await using b = Tap.open({ vnetHdr: 'off' });
    throwsWithoutLeak(
      () => Tap.adopt([a.fd(0), b.fd(0)]),
      (e: Error & { code?: string }) =>
        e.code === 'EINVAL' && e.message === 'vnet_hdr not consistent across given tap fds',
    );
  });

  test('a multiqueue open of a single-queue persistent TAP', privileged(), () => {
    const ifname = npName('sq');
    sh('ip', ['tuntap', 'add', ifname, 'mode', 'tap']);
    try {
      throwsWithoutLeak(
        () => Tap.open({ ifname, queues: 2 }),
        (e: Error & { code?: string; syscall?: string }) =>
          e.code === 'EINVAL' &&
          e.syscall === 'ioctl(TUNSETIFF)' &&
          e.message.startsWith(`could not configure /dev/net/tun (${ifname}): Invalid argument`) &&
          e.message.includes(`${ifname} is a single-queue TAP`),
      );
      assert.equal(linkExists(ifname), true); // left as it was
    } finally {
      deleteLink(ifname);
    }
  });

  // A child process without the privilege: the addon is copied somewhere any user can read.
  function runUnprivileged(launcher: string[]): { code?: string; syscall?: string; message: string; leaked: number } {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'np-noperm-'));
    try {
      fs.chmodSync(dir, 0o755);
      const addon = path.join(dir, 'netplane.node');
      fs.copyFileSync(addonPath(), addon);
      fs.chmodSync(addon, 0o755);
      const script = `
        const count = () => require('node:fs').readdirSync('/proc/self/fd').length;
        const b = require(${JSON.stringify(addon)});
        const before = count();
        try { b.tapOpen({ ifname: ${JSON.stringify(npName('pm'))} }); console.log('{"message":"opened"}'); }
        catch (e) { console.log(JSON.stringify({ code: e.code, syscall: e.syscall, message: e.message, leaked: count() - before })); }`;
      const out = execFileSync(launcher[0], [...launcher.slice(1), process.execPath, '-e', script], {
        encoding: 'utf8',
        cwd: dir,
      });
      return JSON.parse(out);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  test('no permission: an unprivileged user', needsPrivileged('setpriv'), () => {
    const r = runUnprivileged(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all']);
    // /dev/net/tun is usually 0666 (then TUNSETIFF says EPERM); some systems make it 0600.
    if (r.code === 'EACCES') {
      assert.deepEqual(r, {
        code: 'EACCES',
        syscall: 'open(/dev/net/tun)',
        message: 'could not open /dev/net/tun: Permission denied',
        leaked: 0,
      });
    } else {
      assert.equal(r.code, 'EPERM');
      assert.equal(r.syscall, 'ioctl(TUNSETIFF)');
      assert.match(r.message, /^could not configure \/dev\/net\/tun \(np\w+\): Operation not permitted$/);
      assert.equal(r.leaked, 0);
    }
  });

  test('no permission: root without CAP_NET_ADMIN gets EPERM from TUNSETIFF', needsPrivileged('setpriv'), () => {
    const r = runUnprivileged(['setpriv', '--inh-caps=-all', '--bounding-set=-all']);
    assert.equal(r.code, 'EPERM');
    assert.equal(r.syscall, 'ioctl(TUNSETIFF)');
    assert.match(r.message, /^could not configure \/dev\/net\/tun \(np\w+\): Operation not permitted$/);
    assert.equal(r.leaked, 0);
  });
});
