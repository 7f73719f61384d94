// -netdev stream / dgram / socket against a real QEMU 7.2 (no guest: QEMU joins a TAP and
// the socket netdev with a hub) and against a second netplane:
//   namespace A <-> TAP <-> netplane ⇄ socket over loopback ⇄ QEMU <-> hub <-> TAP <-> namespace B
// Both processes run inside a namespace M the test creates, so the sockets (and multicast,
// on M's own loopback with multicast on) never touch the host's interfaces; each TAP is
// then moved into A or B. Each case: ping both ways and a TCP stream (iperf3) across, in
// both directions of who listens; the stream cases also check NETDEV_STREAM_CONNECTED /
// DISCONNECTED, the link following the connection, and a second connection after the
// first went away. Counters are conserved at the end.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { iperf, sleep, type Side } from './helpers/dataplane-env';
import { NetNs, npName, sh } from './helpers/netns';
import { QEMU, QmpProcess } from './helpers/qemu';
import type { QmpTestClient } from './helpers/qmp-client';
import { needsPrivileged } from './helpers/tools';

const CLI = path.join(__dirname, '..', 'lib', 'cli', 'main.ts');
const QEMU_ARGS = ['-nodefaults', '-display', 'none', '-machine', 'none'];
const opts = needsPrivileged('ping', 'iperf3', QEMU);
const sock = `/tmp/np-st-${process.pid}.sock`;
const dgramUni = (l: number, r: number) =>
  `dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=${l},remote.type=inet,remote.host=127.0.0.1,remote.port=${r}`;
const dgramMcast = 'dgram,id=n0,remote.type=inet,remote.host=239.255.42.1,remote.port=47813';

let M: NetNs, A: NetNs, B: NetNs;
let subnet = 0;

before(() => {
  if (opts.skip) return;
  M = new NetNs('m');
  A = new NetNs('a');
  B = new NetNs('b');
  for (const ns of [A, B]) ns.disableIpv6();
  // Multicast on M's loopback only: the group route points there.
  M.exec('ip', ['link', 'set', 'lo', 'multicast', 'on']);
  M.exec('ip', ['route', 'add', '224.0.0.0/4', 'dev', 'lo']);
});

after(() => {
  for (const ns of [M, A, B]) ns?.dispose();
});

/** A process (netplane's CLI or QEMU) running inside M, with its QMP socket. */
function startInM(program: string[], args: string[]): Promise<QmpProcess> {
  return QmpProcess.start('ip', ['netns', 'exec', M.name, ...program, ...args], { timeoutMs: 20_000 });
}

function netplane(tap: string, netdev: string): Promise<QmpProcess> {
  return startInM(
    [process.execPath, '--import', 'tsx', CLI],
    ['-netdev', `tap,id=t0,ifname=${tap}`, '-netdev', netdev, '-link', 't0,n0'],
  );
}

function qemu(tap: string, netdev: string): Promise<QmpProcess> {
  return startInM(
    [QEMU],
    [
      ...QEMU_ARGS,
      '-netdev',
      `tap,id=t0,ifname=${tap},script=no,downscript=no`,
      '-netdev',
      netdev,
      '-netdev',
      'hubport,id=h0,hubid=0,netdev=t0',
      '-netdev',
      'hubport,id=h1,hubid=0,netdev=n0',
    ],
  );
}

/** Move a TAP the process made in M into ns, addressed; returns the side for iperf. */
async function place(tap: string, ns: NetNs, ip: string): Promise<Side> {
  for (let i = 0; i < 200 && sh('ip', ['-n', M.name, 'link', 'show', tap], { allowFail: true }) === ''; i++)
    await sleep(25);
  sh('ip', ['-n', M.name, 'link', 'set', tap, 'netns', ns.name]);
  ns.exec('ip', ['addr', 'add', `${ip}/24`, 'dev', tap]);
  ns.exec('ip', ['link', 'set', tap, 'up']);
  return { ns, ip, ifname: tap } as unknown as Side;
}

function pings(from: NetNs, to: string): boolean {
  const out = from.exec('ping', ['-c', '3', '-i', '0.2', '-W', '2', to], { allowFail: true });
  return /3 received/.test(out);
}

interface Stat {
  name: string;
  'link-up': boolean;
  'frames-in': number;
  'frames-out': number;
  queued: number;
  dropped: number;
}

async function stats(qmp: QmpTestClient): Promise<Stat[]> {
  const r = await qmp.execute('query-netplane-stats');
  return r.return as Stat[];
}

async function infoNetwork(qmp: QmpTestClient): Promise<string> {
  const r = await qmp.execute('human-monitor-command', { 'command-line': 'info network' });
  return String(r.return).replace(/\r/g, '');
}

async function linkUp(qmp: QmpTestClient, name: string): Promise<boolean> {
  return (await stats(qmp)).find((s) => s.name === name)!['link-up'];
}

async function conserved(qmp: QmpTestClient): Promise<void> {
  for (const s of await stats(qmp))
    assert.equal(s['frames-in'], s['frames-out'] + s.queued + s.dropped, `${s.name} conserves frames`);
}

/** Ping both ways and a TCP stream A -> B. */
async function traffic(a: Side, b: Side): Promise<number> {
  assert.ok(pings(a.ns, b.ip), `ping ${a.ip} -> ${b.ip}`);
  assert.ok(pings(b.ns, a.ip), `ping ${b.ip} -> ${a.ip}`);
  const bps = await iperf(a, b, [], 1);
  assert.ok(bps > 1e6, `TCP across: ${bps} bit/s`);
  return bps;
}

interface Case {
  name: string;
  /** netplane's netdev (id n0) and the peer's (id n0); `peer` 'netplane' runs a second netplane. */
  np: string;
  peer: string;
  peerKind?: 'qemu' | 'netplane';
  /** Who must be up first (the listener). */
  first: 'np' | 'peer';
  infoNp?: RegExp;
}

type Extra = (npQmp: QmpTestClient, peer: QmpProcess, a: Side, b: Side) => Promise<void>;

async function runCase(c: Case, extra?: Extra): Promise<void> {
  const net = 220 + (subnet++ % 30);
  const tapA = npName('ta');
  const tapB = npName('tb');
  const startPeer = (): Promise<QmpProcess> =>
    c.peerKind === 'netplane' ? netplane(tapB, c.peer) : qemu(tapB, c.peer);
  let np: QmpProcess | undefined;
  let peer: QmpProcess | undefined;
  try {
    if (c.first === 'peer') peer = await startPeer();
    np = await netplane(tapA, c.np);
    if (c.first === 'np') peer = await startPeer();
    const npQmp = await np.connect();
    const a = await place(tapA, A, `10.216.${net}.1`);
    const b = await place(tapB, B, `10.216.${net}.2`);
    await traffic(a, b);
    if (c.infoNp) assert.match(await infoNetwork(npQmp), c.infoNp);
    if (extra) await extra(npQmp, peer!, a, b);
    await conserved(npQmp);
  } finally {
    await peer?.stop();
    await np?.stop();
  }
}

const inet = (port: number, server: boolean) =>
  `stream,id=n0,server=${server ? 'on' : 'off'},addr.type=inet,addr.host=127.0.0.1,addr.port=${port}`;

describe('stream / dgram / socket netdevs against QEMU 7.2', opts, () => {
  test('stream: netplane listens, QEMU connects; events, link follows, the next client is taken', async () => {
    await runCase(
      { name: 'stream-np-server', np: inet(47801, true), peer: inet(47801, false), first: 'np' },
      async (npQmp, peer, a, b) => {
        assert.match(await infoNetwork(npQmp), /n0: index=0,type=stream,tcp:127\.0\.0\.1:\d+/);
        assert.equal(await linkUp(npQmp, 'n0'), true);
        await peer.stop();
        const ev = await npQmp.nextEvent('NETDEV_STREAM_DISCONNECTED', 5000);
        assert.deepEqual(ev.data, { 'netdev-id': 'n0' });
        for (let i = 0; i < 100 && (await linkUp(npQmp, 'n0')); i++) await sleep(20);
        assert.equal(await linkUp(npQmp, 'n0'), false, 'link down without a connection');
        assert.match(await infoNetwork(npQmp), /n0: index=0,type=stream,\n/);
        // A second QEMU client: connected again, traffic again.
        const tapB = npName('tb');
        const again = await qemu(tapB, inet(47801, false));
        try {
          const ev2 = await npQmp.nextEvent('NETDEV_STREAM_CONNECTED', 5000);
          assert.equal(ev2.data['netdev-id'], 'n0');
          assert.equal(ev2.data.addr.type, 'inet');
          assert.equal(ev2.data.addr.host, '127.0.0.1');
          assert.equal(ev2.data.addr.ipv4, true);
          assert.match(ev2.data.addr.port, /^\d+$/);
          A.exec('ip', ['neigh', 'flush', 'all']);
          await place(tapB, B, b.ip);
          assert.equal(await linkUp(npQmp, 'n0'), true);
          assert.ok(pings(A, b.ip), 'ping across the second connection');
          void a;
        } finally {
          await again.stop();
        }
      },
    );
  });

  const cases: Case[] = [
    {
      name: 'stream: QEMU listens, netplane connects',
      np: inet(47802, false),
      peer: inet(47802, true),
      first: 'peer',
      infoNp: /n0: index=0,type=stream,tcp:127\.0\.0\.1:47802/,
    },
    {
      name: 'stream over a unix socket: netplane listens, QEMU connects',
      np: `stream,id=n0,server=on,addr.type=unix,addr.path=${sock}`,
      peer: `stream,id=n0,server=off,addr.type=unix,addr.path=${sock}`,
      first: 'np',
      infoNp: new RegExp(`n0: index=0,type=stream,unix:${sock}`),
    },
    {
      name: 'dgram unicast',
      np: dgramUni(47811, 47812),
      peer: dgramUni(47812, 47811),
      first: 'np',
      infoNp: /n0: index=0,type=dgram,udp=127\.0\.0\.1:47811\/127\.0\.0\.1:47812/,
    },
    {
      name: 'dgram multicast (inside the test namespace)',
      np: dgramMcast,
      peer: dgramMcast,
      first: 'np',
      infoNp: /type=dgram,mcast=239\.255\.42\.1:47813/,
    },
    {
      name: 'socket: netplane listen=, QEMU connect=',
      np: 'socket,id=n0,listen=127.0.0.1:47821',
      peer: 'socket,id=n0,connect=127.0.0.1:47821',
      first: 'np',
      infoNp: /n0: index=0,type=socket,socket: connection from 127\.0\.0\.1:\d+/,
    },
    {
      name: 'socket: QEMU listen=, netplane connect=',
      np: 'socket,id=n0,connect=127.0.0.1:47822',
      peer: 'socket,id=n0,listen=127.0.0.1:47822',
      first: 'peer',
      infoNp: /n0: index=0,type=socket,socket: connect to 127\.0\.0\.1:47822/,
    },
    {
      name: 'socket udp=',
      np: 'socket,id=n0,udp=127.0.0.1:47832,localaddr=127.0.0.1:47831',
      peer: 'socket,id=n0,udp=127.0.0.1:47831,localaddr=127.0.0.1:47832',
      first: 'np',
      infoNp: /type=socket,socket: udp=127\.0\.0\.1:47832/,
    },
    {
      name: 'socket mcast=',
      np: 'socket,id=n0,mcast=239.255.42.2:47833',
      peer: 'socket,id=n0,mcast=239.255.42.2:47833',
      first: 'np',
      infoNp: /type=socket,socket: mcast=239\.255\.42\.2:47833/,
    },
    {
      name: 'stream: netplane ⇄ netplane',
      np: inet(47841, true),
      peer: inet(47841, false),
      peerKind: 'netplane',
      first: 'np',
    },
  ];
  for (const c of cases) test(c.name, () => runCase(c));
});
