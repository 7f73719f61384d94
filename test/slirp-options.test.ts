// -netdev user without a data plane or privileges: the option grammar (lists, ipv6-net, the
// JSON form), net_slirp_init()'s defaults, the address readers (glibc's inet_aton and
// inet_pton), the forwarding-rule syntax, and the topology's side (info network, a data
// plane without libslirp). The live stack is test/slirp-user.test.ts; QEMU's own texts are
// compared in test/differential-qemu.test.ts.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { NetplaneError } from '../lib/errors';
import { netdevFromQmp, parseNetdevArg, type UserNetdevOptions } from '../lib/options';
import {
  inet6Ntop,
  inet6Pton,
  inetAton,
  parseGuestFwd,
  parseHostFwd,
  parseHostFwdRemove,
  resolveSlirpConfig,
} from '../lib/options/user';
import { Topology } from '../lib/topology';
import type { ClientDescriptor, DataPlane, SlirpControlOp } from '../lib/topology/dataplane';

const user = (text: string): UserNetdevOptions => parseNetdevArg(text) as UserNetdevOptions;

describe('-netdev user options', () => {
  test('QEMU 7.2 defaults', () => {
    assert.deepEqual(resolveSlirpConfig(user('user,id=u0')), {
      restricted: false,
      ipv4: true,
      ipv6: true,
      net: '10.0.2.0',
      mask: '255.255.255.0',
      host: '10.0.2.2',
      dhcpStart: '10.0.2.15',
      dns: '10.0.2.3',
      prefix6: 'fec0::',
      prefix6Len: 64,
      host6: 'fec0::2',
      dns6: 'fec0::3',
      dnssearch: [],
    });
  });

  test('net= forms: bits, a dotted mask, the mask an address class implies; the other addresses follow', () => {
    const c = (net: string) => resolveSlirpConfig(user(`user,id=u0,net=${net}`));
    assert.deepEqual(
      [c('192.168.76.0/24').host, c('192.168.76.0/24').dhcpStart, c('192.168.76.0/24').dns],
      ['192.168.76.2', '192.168.76.15', '192.168.76.3'],
    );
    assert.equal(c('10.9.0.0/255.255.0.0').mask, '255.255.0.0');
    assert.equal(c('10.9.0.0/255.255.0.0').host, '10.9.2.2');
    assert.equal(c('172.20.0.0').mask, '255.240.0.0');
    assert.equal(c('192.168.5.0').mask, '255.255.0.0');
    assert.equal(c('10.0.2.0').mask, '255.0.0.0');
    assert.equal(c('10.0.2.77/24').net, '10.0.2.0');
    assert.equal(resolveSlirpConfig(user('user,id=u0,ip=10.0.5.0')).host, '10.0.5.2');
  });

  test('ipv4=/ipv6= alone set the other to the opposite; restrict=on', () => {
    const v6only = resolveSlirpConfig(user('user,id=u0,ipv6=on'));
    assert.deepEqual([v6only.ipv4, v6only.ipv6], [false, true]);
    const v4only = resolveSlirpConfig(user('user,id=u0,ipv4=on'));
    assert.deepEqual([v4only.ipv4, v4only.ipv6], [true, false]);
    assert.equal(resolveSlirpConfig(user('user,id=u0,restrict=on')).restricted, true);
  });

  test('ipv6-net= is ipv6-prefix= plus ipv6-prefixlen= (64 when not given)', () => {
    const c = resolveSlirpConfig(user('user,id=u0,ipv6-net=fd00:1::/48'));
    assert.deepEqual([c.prefix6, c.prefix6Len, c.host6, c.dns6], ['fd00:1::', 48, 'fd00:1::2', 'fd00:1::3']);
    assert.equal(resolveSlirpConfig(user('user,id=u0,ipv6-net=fd00::')).prefix6Len, 64);
  });

  test('lists: a repeated key adds an element; JSON takes arrays of {"str": ...}', () => {
    const o = user('user,id=u0,hostfwd=tcp::1-:2,dnssearch=a.example,hostfwd=udp::3-:4,dnssearch=b.example');
    assert.deepEqual(o.hostfwd, ['tcp::1-:2', 'udp::3-:4']);
    assert.deepEqual(o.dnssearch, ['a.example', 'b.example']);
    const j = netdevFromQmp({ type: 'user', id: 'u1', hostfwd: [{ str: 'tcp::5-:6' }], restrict: true });
    assert.deepEqual(j, { type: 'user', id: 'u1', hostfwd: ['tcp::5-:6'], restrict: true });
    assert.throws(
      () => netdevFromQmp({ type: 'user', id: 'u1', hostfwd: 'tcp::5-:6' }),
      /Invalid parameter type for 'hostfwd', expected: array/,
    );
    assert.throws(() => netdevFromQmp({ type: 'user', id: 'u1', 'ipv6-net': 'fec0::' }), /'ipv6-net' is unexpected/);
  });

  test('netplane refuses what it cannot do, with a reason', () => {
    assert.throws(() => resolveSlirpConfig(user('user,id=u0,smb=/tmp')), /smb= .* not supported by netplane/);
    assert.throws(() => resolveSlirpConfig(user(`user,id=u0,bootfile=${'b'.repeat(128)}`)), /cannot exceed 127 bytes/);
  });
});

describe('addresses as glibc reads them', () => {
  test('inet_aton: 1 to 4 parts, hex and octal parts, text after a space ignored', () => {
    assert.equal(inetAton('10.0.2.15'), 0x0a00020f);
    assert.equal(inetAton('10.1'), 0x0a000001);
    assert.equal(inetAton('0x7f.1'), 0x7f000001);
    assert.equal(inetAton('012.0.0.1'), 0x0a000001);
    assert.equal(inetAton('1.2.3.4 trailing'), 0x01020304);
    for (const bad of ['', 'x', '256.1.1.1', '1.2.3.4.5', '1..2', ' 1.2.3.4', '1.2.3.4x', '08.1.1.1']) {
      assert.equal(inetAton(bad), undefined, bad);
    }
  });

  test('inet_pton(AF_INET6) and back', () => {
    for (const [text, canon] of [
      ['fec0::', 'fec0::'],
      ['::1', '::1'],
      ['FD00:0:0:0:0:0:0:5', 'fd00::5'],
      ['::ffff:10.0.2.2', '::ffff:a00:202'],
      ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ] as const) {
      assert.equal(inet6Ntop(inet6Pton(text)!), canon, text);
    }
    for (const bad of ['', 'x', '1:2:3', 'fec0::1::2', 'fe80::1%lo', '12345::', '1:2:3:4:5:6:7:8:9']) {
      assert.equal(inet6Pton(bad), undefined, bad);
    }
  });
});

describe('forwarding rules', () => {
  test('hostfwd: protocol, addresses and ports (strtol base 0)', () => {
    assert.deepEqual(parseHostFwd('tcp::2222-:22'), {
      udp: false,
      hostAddr: '0.0.0.0',
      hostPort: 2222,
      guestAddr: '0.0.0.0',
      guestPort: 22,
    });
    assert.deepEqual(parseHostFwd('udp:127.0.0.1:0x10-10.0.2.15:010'), {
      udp: true,
      hostAddr: '127.0.0.1',
      hostPort: 16,
      guestAddr: '10.0.2.15',
      guestPort: 8,
    });
    assert.equal(parseHostFwd(':127.0.0.1:0-:1').hostPort, 0);
    assert.throws(
      () => parseHostFwd('tcp::1-:65536'),
      /Invalid host forwarding rule 'tcp::1-:65536' \(Bad guest port\)/,
    );
  });

  test('hostfwd_remove syntax', () => {
    assert.deepEqual(parseHostFwdRemove('udp:127.0.0.1:40124'), { udp: true, hostAddr: '127.0.0.1', hostPort: 40124 });
    assert.deepEqual(parseHostFwdRemove('::22'), { udp: false, hostAddr: '0.0.0.0', hostPort: 22 });
    for (const bad of ['x', 'icmp::1', 'tcp:x:1', 'tcp::', 'tcp::1x']) assert.equal(parseHostFwdRemove(bad), undefined);
  });

  test('guestfwd: cmd: targets and character devices', () => {
    assert.deepEqual(parseGuestFwd('tcp:10.0.2.100:1234-cmd:cat -u'), {
      guestAddr: '10.0.2.100',
      guestPort: 1234,
      command: 'cat -u',
    });
    assert.deepEqual(parseGuestFwd('::99-chr0'), { guestAddr: '0.0.0.0', guestPort: 99, chardev: 'chr0' });
    assert.throws(() => parseGuestFwd('tcp:10.0.2.100:0x10-cmd:x'), /Invalid guest forwarding rule/);
  });
});

/** A data plane that records what it was asked (no native code). */
function recordingPlane(libslirp: { version: string } | { error: string }) {
  const added: ClientDescriptor[] = [];
  const ops: SlirpControlOp[] = [];
  const removed: number[] = [];
  const dp: DataPlane = {
    addClient: (c) => void added.push(c),
    removeClient: (h) => void removed.push(h),
    connect: () => {},
    setLinkDown: () => {},
    setVnetHdrLen: () => {},
    setQueueEnabled: () => {},
    libslirp: () => libslirp,
    slirpControl: (_h, op) => {
      ops.push(op);
      if (op.op === 'hostfwd-add' && op.hostPort === 1) throw new Error('bind failed');
      return op.op === 'info'
        ? '  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ\r\n'
        : true;
    },
  };
  return { dp, added, ops, removed };
}

describe('the topology side', () => {
  test('a user netdev in info network; rules go to the data plane in order', async () => {
    const { dp, added, ops } = recordingPlane({ version: '4.7.0' });
    const topo = new Topology({ dataPlane: dp, warn: () => {} });
    const nd = topo.addNetdev(
      parseNetdevArg('user,id=u0,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22,guestfwd=tcp:10.0.2.100:7-cmd:cat'),
    );
    assert.equal(topo.infoNetwork(), 'u0: index=0,type=user,net=10.0.2.0,restrict=on\n');
    assert.equal(added[0]!.kind, 'user');
    assert.deepEqual(
      ops.map((o) => o.op),
      ['hostfwd-add', 'guestfwd-exec'],
    );
    assert.equal(nd.user!.removeHostFwd('tcp:127.0.0.1:2222'), 'host forwarding rule for tcp:127.0.0.1:2222 removed\n');
    assert.equal(nd.user!.removeHostFwd('nonsense'), 'invalid format\n');
    await topo.close();
  });

  test("a rule libslirp refuses: QEMU's text, and the stack is removed again", async () => {
    const { dp, removed } = recordingPlane({ version: '4.7.0' });
    const topo = new Topology({ dataPlane: dp, warn: () => {} });
    assert.throws(
      () => topo.addNetdev(parseNetdevArg('user,id=u0,hostfwd=tcp::1-:22')),
      (e: NetplaneError) => e.message === "Could not set up host forwarding rule 'tcp::1-:22'",
    );
    assert.equal(removed.length, 1);
    assert.equal(topo.netdevs.size, 0);
    await topo.close();
  });

  test('no libslirp: NETPLANE_LIBSLIRP_MISSING with what to install, nothing created', async () => {
    const { dp, added } = recordingPlane({ error: '-netdev user needs libslirp ...: install libslirp0' });
    const topo = new Topology({ dataPlane: dp, warn: () => {} });
    assert.throws(
      () => topo.addNetdev(parseNetdevArg('user,id=u0')),
      (e: NetplaneError) => e.code === 'NETPLANE_LIBSLIRP_MISSING' && /libslirp0/.test(e.message),
    );
    assert.equal(added.length, 0);
    await topo.close();
  });
});
