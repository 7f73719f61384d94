// -netdev stream / socket / dgram in a Topology with the native data plane, unprivileged: a
// stream server on a unix socket with plain sockets as its clients (the connection moving the
// link, NETDEV_STREAM_* events, info network lines, a second client waiting while the first is
// connected and taken next), a client that finds nobody, netdev_del removing the socket file,
// dgram/socket info lines and a failing bind, no fd left. Plus the option parser's results.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { NativeDataPlane } from '../lib/dataplane/native-dataplane';
import { parseNetdevArg } from '../lib/options';
import { Topology } from '../lib/topology/topology';
import { sleep } from './helpers/dataplane-env';
import { leakedFdsSince, openFds } from './helpers/netns';

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await sleep(10);
  assert.ok(cond(), 'condition within time');
}

function prefixed(n: number): Buffer {
  const b = Buffer.alloc(4 + n, 0xab);
  b.writeUInt32BE(n, 0);
  b.fill(0xff, 4, 10);
  return b;
}

test('options: stream/dgram/socket parse to QEMU 7.2 shapes', () => {
  assert.deepEqual(parseNetdevArg('stream,id=s0,server=on,addr.type=inet,addr.host=h,addr.port=1,addr.ipv4=on'), {
    type: 'stream',
    id: 's0',
    addr: { type: 'inet', host: 'h', port: '1', ipv4: true },
    server: true,
  });
  assert.deepEqual(parseNetdevArg('{"type":"dgram","id":"d0","local":{"type":"fd","str":"5"}}'), {
    type: 'dgram',
    id: 'd0',
    local: { type: 'fd', str: '5' },
  });
  assert.deepEqual(parseNetdevArg('socket,id=k0,udp=1.2.3.4:5,localaddr=:6'), {
    type: 'socket',
    id: 'k0',
    udp: '1.2.3.4:5',
    localaddr: ':6',
  });
  assert.throws(() => parseNetdevArg('stream,id=s0,addr.type=vsock,addr.cid=1,addr.port=2'), {
    code: 'NETPLANE_INVALID_OPTION',
    message: /vsock is not supported/,
  });
  assert.throws(() => parseNetdevArg('socket,id=k0,listen=:70000'), { message: "port number '70000' is invalid" });
});

test('stream server and client in one topology: link follows the connection, events, info, cleanup', async () => {
  const before = openFds();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'np-st-'));
  const sock = path.join(dir, 's.sock');
  const dp = new NativeDataPlane();
  const topo = new Topology({ dataPlane: dp });
  const events: Array<[string, Record<string, unknown>]> = [];
  topo.on('qmp-event', (name, data) => events.push([name, data]));
  try {
    const srv = topo.addNetdev(parseNetdevArg(`stream,id=srv,server=on,addr.type=unix,addr.path=${sock}`));
    assert.equal(srv.linkUp, false, 'down while listening');
    assert.match(topo.infoNetwork(), /srv: index=0,type=stream,\n/);
    assert.ok(fs.statSync(sock).isSocket());

    // A plain socket as the client: connected -> up and an event with the socket's path.
    const c1 = net.connect(sock);
    await until(() => srv.linkUp);
    assert.deepEqual(events[0], [
      'NETDEV_STREAM_CONNECTED',
      { 'netdev-id': 'srv', addr: { path: sock, type: 'unix' } },
    ]);
    assert.match(topo.infoNetwork(), new RegExp(`srv: index=0,type=stream,unix:${sock}`));
    // A second client waits while the first is connected.
    const c2 = net.connect(sock);
    await new Promise((r) => c2.once('connect', r));
    await sleep(50);
    assert.equal(events.length, 1);
    c1.destroy();
    await until(() => events.length >= 3);
    assert.deepEqual(events[1], ['NETDEV_STREAM_DISCONNECTED', { 'netdev-id': 'srv' }]);
    assert.equal(events[2]![0], 'NETDEV_STREAM_CONNECTED', 'the waiting client is taken next');
    await until(() => srv.linkUp);
    // Frames from the second client are read (no peer: counted noPeer).
    c2.write(prefixed(60));
    await until(() => (dp.stats().find((s) => s.name === 'srv')?.drops.noPeer ?? 0) === 1);
    c2.destroy();
    await until(() => !srv.linkUp);

    // A stream client netdev that finds nobody: "connection error", stays down.
    const cli = topo.addNetdev(parseNetdevArg(`stream,id=cli,addr.type=unix,addr.path=${dir}/none.sock`), {});
    const errors: Error[] = [];
    topo.on('error', (e) => errors.push(e));
    await until(() => /cli: index=0,type=stream,connection error/.test(topo.infoNetwork()));
    assert.equal(cli.linkUp, false);

    topo.delNetdev('srv');
    await srv.close();
    assert.equal(fs.existsSync(sock), false, 'the socket file is removed at netdev_del');
  } finally {
    await topo.close();
    dp.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  await sleep(50);
  assert.deepEqual(leakedFdsSince(before), []);
});

test('dgram and socket udp netdevs: info lines, a bad bind fails with nothing left', async () => {
  const before = openFds();
  const dp = new NativeDataPlane();
  const topo = new Topology({ dataPlane: dp });
  try {
    topo.addNetdev(
      parseNetdevArg(
        'dgram,id=d0,local.type=inet,local.host=127.0.0.1,local.port=0,remote.type=inet,remote.host=127.0.0.1,remote.port=9',
      ),
    );
    topo.addNetdev(parseNetdevArg('socket,id=k0,udp=127.0.0.1:9,localaddr=127.0.0.1:0'));
    const info = topo.infoNetwork();
    assert.match(info, /d0: index=0,type=dgram,udp=127\.0\.0\.1:0\/127\.0\.0\.1:9/);
    assert.match(info, /k0: index=0,type=socket,socket: udp=127\.0\.0\.1:9/);
    // 192.0.2.1 is not on this machine: the bind fails, with a code.
    assert.throws(
      () => topo.addNetdev(parseNetdevArg('socket,id=k1,udp=127.0.0.1:9,localaddr=192.0.2.1:5')),
      (e: Error & { code?: string }) => e.code === 'NETPLANE_SOCKET_FAILED' && /bind/.test(e.message),
    );
    assert.equal(topo.netdevs.has('k1'), false);
  } finally {
    await topo.close();
    dp.close();
  }
  assert.deepEqual(leakedFdsSince(before), []);
});
