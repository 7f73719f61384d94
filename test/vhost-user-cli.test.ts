// `netplane -netdev tap,... -export type=vhost-user-net,...` as a daemon: option errors in
// QEMU's style, the socket 0600 and listening by the time -pidfile exists, a front-end
// served (the fake one of test/helpers/vhost-user-frontend.ts), -qmp beside -export with
// query-netplane-exports and netplane-export-add/-del, SIGTERM ends it within 3 s and
// removes the socket and the pidfile. The TAP needs privileges.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { parseCliArgs } from '../lib/cli/args';
import { deleteLink, npName } from './helpers/netns';
import { spawnCli, type CliProcess } from './helpers/node-child';
import { privileged } from './helpers/privilege';
import { QmpTestClient } from './helpers/qmp-client';
import { FakeFrontend, state, u64, VU } from './helpers/vhost-user-frontend';

const T = { timeout: 60_000 };

function cliError(argv: string[]): string {
  try {
    parseCliArgs(argv);
  } catch (e) {
    return (e as Error).message;
  }
  return '';
}

describe('-export type=vhost-user-net: option errors', () => {
  const cases: Array<[string[], RegExp]> = [
    [['-export', 'type=vhost-user-net,netdev=hn0,addr.type=unix,addr.path=/tmp/x'], /Parameter 'id' is missing/],
    [['-export', 'id=vu0,netdev=hn0'], /Parameter 'type' is missing/],
    [['-export', 'type=vhost-user-blk,id=vu0'], /Export type 'vhost-user-blk' is not supported by netplane/],
    [['-export', 'type=nope,id=vu0'], /Parameter 'type' does not accept value 'nope'/],
    [['-export', 'type=vhost-user-net,id=vu0,addr.type=unix,addr.path=/x'], /Parameter 'netdev' is missing/],
    [['-export', 'type=vhost-user-net,id=vu0,netdev=hn0'], /Parameter 'addr' is missing/],
    [
      ['-export', 'type=vhost-user-net,id=vu0,netdev=hn0,addr.type=inet,addr.path=/x'],
      /addr.type=inet is not supported/,
    ],
    [['-export', 'type=vhost-user-net,id=vu0,netdev=hn0,addr.type=unix'], /Parameter 'addr.path' is missing/],
    [
      ['-export', 'type=vhost-user-net,id=vu0,netdev=hn0,addr.type=unix,addr.path=/x,num-queues=0'],
      /'num-queues' expects a value of at least 1/,
    ],
    [
      ['-export', 'type=vhost-user-net,id=vu0,netdev=hn0,addr.type=unix,addr.path=/x,num-queues=x'],
      /Parameter 'num-queues' expects/,
    ],
    [
      ['-export', 'type=vhost-user-net,id=vu0,netdev=hn0,addr.type=unix,addr.path=/x,bogus=1'],
      /Invalid parameter 'bogus'/,
    ],
    [['-export', 'type=vhost-user-net,id=vu0,netdev=hn0,chardev=c9'], /chardev "c9" not found/],
    [
      ['-export', 'type=vhost-user-net,id=vu0,netdev=hn0,addr.type=unix,addr.path=/x,packed=maybe'],
      /Parameter 'packed' expects 'on' or 'off'/,
    ],
    [['-chardev', 'socket,path=/x'], /chardev: no id specified/],
    [['-chardev', 'socket,id=c0'], /chardev: socket: no host given/],
    [
      ['-chardev', 'socket,id=c0,path=/x,server=on,reconnect=1'],
      /'reconnect' option is incompatible with socket in server listen mode/,
    ],
    [['-chardev', 'socket,id=c0,path=/x', '-chardev', 'socket,id=c0,path=/y'], /Duplicate ID 'c0' for chardev/],
    [['-chardev', 'file,id=c0,path=/x'], /chardev 'file' is not supported by netplane/],
  ];
  for (const [argv, re] of cases) test(argv.join(' '), () => assert.match(cliError(argv), re));
  test('packed=on parses (RING_PACKED is then offered)', () => {
    const a = parseCliArgs(['-export', 'type=vhost-user-net,id=vu0,netdev=hn0,addr.type=unix,addr.path=/x,packed=on']);
    assert.equal(a.exports[0]!.value.packed, true);
  });
  test('a valid pair parses', () => {
    const a = parseCliArgs([
      '-chardev',
      'socket,id=c0,path=/run/fe.sock,reconnect=2',
      '-export',
      'type=vhost-user-net,id=vu0,netdev=hn0,chardev=c0,num-queues=2',
    ]);
    assert.deepEqual(a.chardevs[0]!.value, {
      backend: 'socket',
      id: 'c0',
      path: '/run/fe.sock',
      server: false,
      reconnect: 2,
    });
    assert.deepEqual(a.exports[0]!.value, {
      type: 'vhost-user-net',
      id: 'vu0',
      netdev: 'hn0',
      chardev: 'c0',
      numQueues: 2,
    });
  });
});

describe('netplane -export as a daemon', privileged(), () => {
  test(
    'socket 0600 before the pidfile, a front-end served, QMP beside it, SIGTERM within 3 s cleans up',
    T,
    async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'np-vu-cli-'));
      const ifname = npName('vu');
      const sock = path.join(dir, 'vu0.sock');
      const pidfile = path.join(dir, 'np.pid');
      const qmpSock = path.join(dir, 'qmp.sock');
      // A stale socket file (a killed instance) must not stop the bind.
      const { spawnSync } = await import('node:child_process');
      spawnSync(process.execPath, [
        '-e',
        `require('net').createServer().listen(${JSON.stringify(sock)}, () => process.kill(process.pid, 'SIGKILL'))`,
      ]);
      let np: CliProcess | undefined;
      try {
        np = await spawnCli(
          [
            '-netdev',
            `tap,id=hn0,ifname=${ifname},vnet_hdr=on,queues=2`,
            '-export',
            `type=vhost-user-net,id=vu0,netdev=hn0,addr.type=unix,addr.path=${sock},num-queues=2`,
            '-qmp',
            `unix:${qmpSock},server=on,wait=off`,
          ],
          { pidfile },
        );
        const child = np.child;
        assert.equal(fs.readFileSync(pidfile, 'utf8').trim(), String(child.pid));
        assert.equal(fs.statSync(sock).mode & 0o777, 0o600);
        const fe = await FakeFrontend.connect(sock);
        const f = await fe.call(VU.GET_FEATURES);
        assert.equal(f.raw.readUInt32LE(4), 0x5);
        const feats = f.payload.readBigUInt64LE(0);
        assert.ok((feats & (1n << 32n)) !== 0n && (feats & (1n << 15n)) !== 0n, 'VERSION_1 and MRG_RXBUF offered');
        assert.ok((feats & (1n << 11n)) !== 0n, 'HOST_TSO4 offered: the TAP has a vnet header');
        const q = await fe.call(VU.GET_QUEUE_NUM);
        assert.equal(q.payload.readBigUInt64LE(0), 2n);
        fe.send(VU.SET_PROTOCOL_FEATURES, u64(0x10009n));
        fe.send(VU.SET_FEATURES, u64(feats));
        fe.send(VU.SET_VRING_NUM, state(0, 256));
        const qmp = await QmpTestClient.connect(qmpSock);
        await qmp.next(); // greeting
        await qmp.execute('qmp_capabilities');
        const list = await qmp.execute('query-netplane-exports');
        assert.equal(list.return[0].id, 'vu0');
        assert.equal(list.return[0].connected, true);
        assert.equal(list.return[0]['num-queues'], 2);
        assert.equal(list.return[0].device.rings[0].size, 256);
        // netplane-export-add on a netdev in use: refused with a reason, nothing changes.
        const busy = await qmp.execute('netplane-export-add', {
          type: 'vhost-user-net',
          id: 'vu1',
          netdev: 'hn0',
          addr: { type: 'unix', path: path.join(dir, 'vu1.sock') },
        });
        assert.match(busy.error.desc, /already in use/);
        const del = await qmp.execute('netplane-export-del', { id: 'vu0' });
        assert.deepEqual(del.return, {});
        await fe.closed;
        assert.equal(fs.existsSync(sock), false);
        const add = await qmp.execute('netplane-export-add', {
          type: 'vhost-user-net',
          id: 'vu0',
          netdev: 'hn0',
          addr: { type: 'unix', path: sock },
        });
        assert.deepEqual(add.return, {});
        const fe2 = await FakeFrontend.connect(sock);
        await fe2.call(VU.GET_FEATURES);
        qmp.close();
        const t0 = Date.now();
        child.kill('SIGTERM');
        await new Promise<void>((r) => child.once('exit', () => r()));
        assert.ok(Date.now() - t0 < 3000, `exited in ${Date.now() - t0} ms`);
        assert.equal(child.exitCode, 0, np.stderr());
        assert.equal(fs.existsSync(sock), false, 'socket removed');
        assert.equal(fs.existsSync(pidfile), false, 'pidfile removed');
        await fe2.closed;
      } finally {
        if (np?.child.exitCode === null) np.child.kill('SIGKILL');
        deleteLink(ifname);
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
