// Bad input, systematically: malformed option strings (the command line), malformed QMP
// messages (a live server), and malformed frames from JavaScript into a packet port (the
// API, and records written into the ring directly). Each must end in a clear error that
// names what is wrong, or a counted drop; the process, the connection and the topology go
// on unaffected; nothing malformed reaches a TAP.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CliError, parseCliArgs } from '../lib/cli/args';
import { serveQmp } from '../lib/control';
import { NativeDataPlane } from '../lib/dataplane/native-dataplane';
import { native } from '../lib/native';
import { parseDeviceArg, parseNetdevArg } from '../lib/options';
import { Topology } from '../lib/topology/topology';
import { closeSide, openSide, sleep, unconserved, type Side } from './helpers/dataplane-env';
import { privileged } from './helpers/privilege';
import { tempDir } from './helpers/qemu';
import { QmpTestClient } from './helpers/qmp-client';

let tried = 0; // bad inputs tried, reported at the end

// ---- option strings ----------------------------------------------------------------------

/** [option, value, what the message must contain (the culprit)] */
const OPTION_CASES: Array<[string, string, RegExp]> = [
  ['netdev', '', /'id' is missing/],
  ['netdev', ',', /'id' is missing/],
  ['netdev', 'tap', /'id' is missing/],
  ['netdev', 'tap,id=', /'id' expects an identifier/],
  ['netdev', 'tap,id=1a', /'id' expects an identifier/],
  ['netdev', 'tap,id=a b', /'id' expects an identifier/],
  ['netdev', 'tap,id=t,,', /'id' expects an identifier/],
  ['netdev', 'tap,id=t,queues=0', /'queues' expects a value between 1 and 1024/],
  ['netdev', 'tap,id=t,queues=1025', /'queues' expects a value between 1 and 1024/],
  ['netdev', 'tap,id=t,queues=-1', /'queues' expects/],
  ['netdev', 'tap,id=t,queues=abc', /'queues' expects/],
  ['netdev', 'tap,id=t,queues=1.5', /'queues' expects/],
  ['netdev', 'tap,id=t,queues=99999999999999999999999', /'queues' expects/],
  ['netdev', 'tap,id=t,vnet_hdr=maybe', /'vnet_hdr' expects 'on' or 'off'/],
  ['netdev', 'tap,id=t,sndbuf=-5', /'sndbuf' expects a size/],
  ['netdev', 'tap,id=t,sndbuf=1Q', /'sndbuf' expects a size/],
  ['netdev', 'tap,id=t,sndbuf=99999999999999999999T', /'sndbuf' expects a size/],
  ['netdev', 'tap,id=t,bogus=1', /Invalid parameter 'bogus'/],
  ['netdev', 'tap,\u00e9=1,id=t', /Invalid parameter '\u00e9'/],
  ['netdev', 'tap,id=t,=x', /Invalid parameter ''/],
  ['netdev', `tap,id=t,ifname=${'x'.repeat(16)}`, /'ifname' is longer than 15 characters/],
  ['netdev', 'tap,id=t,ifname=a/b', /'ifname' is not a valid interface name: 'a\/b'/],
  ['netdev', 'tap,id=t,fd=3,fds=4', /invalid with fd=/],
  ['netdev', 'tap,id=t,fd=3,ifname=x', /invalid with fd=/],
  ['netdev', 'tap,id=t,queues=2,fds=3', /invalid with fds=/],
  ['netdev', 'tap,id=t,fds=', /'fds' has an empty entry/],
  ['netdev', 'tap,id=t,vhost=on', /vhost/],
  ['netdev', 'tap,id=t,poll-us=abc', /'poll-us' expects/],
  ['netdev', 'hubport,id=h', /'hubid' is missing/],
  ['netdev', 'hubport,id=h,hubid=x', /'hubid' expects/],
  ['netdev', 'hubport,id=h,hubid=2147483648', /'hubid' expects int32/],
  ['netdev', 'hubport,id=h,hubid=-2147483649', /'hubid' expects int32/],
  ['netdev', 'hubport,id=h,hubid=1,queues=2', /Invalid parameter 'queues'/],
  ['netdev', 'vde,id=u', /'vde' is not compiled/],
  ['netdev', 'vhost-user,id=n0', /'chardev' is missing/],
  ['netdev', 'dgram,id=d', /requires local=/],
  ['netdev', 'bogus,id=b', /'type' does not accept value 'bogus'/],
  ['netdev', '{"type":"tap"', /JSON parse error/],
  ['netdev', '{"type":"tap","id":1}', /type for 'id', expected: string/],
  ['netdev', '{"type":"tap","id":"t","queues":"2"}', /'queues' expects/],
  ['netdev', '{"type":"tap","id":"t","queues":-1}', /'queues' expects/],
  ['netdev', '{"type":"tap","id":"t","queues":18446744073709551616}', /'queues' expects/],
  ['netdev', '{"type":"tap","id":"t","bogus":1}', /'bogus' is unexpected/],
  ['netdev', '{"type":"hubport","id":"h","hubid":1.5}', /type for 'hubid', expected: integer/],
  ['netdev', '{"id":"t"}', /'type' is missing/],
  ['netdev', '{"type":"tap","id":"t","vnet_hdr":"on"}', /type for 'vnet_hdr', expected: boolean/],
  ['netdev', '{"type":"tap","id":"t","id":"u"}', /duplicate key/],
  ['device', '', /'driver' is missing/],
  ['device', 'e1000', /'e1000'/],
  ['device', 'virtio-net-pci,mac=zz', /'virtio-net-device.mac' doesn't take value 'zz'/],
  ['device', 'virtio-net-pci,mac=52:54:00:00:00', /mac' doesn't take value '52:54:00:00:00'/],
  ['device', 'virtio-net-pci,bogus=1', /'virtio-net-pci.bogus' not found/],
  ['device', 'virtio-net-pci,mq=maybe', /'mq' expects 'on' or 'off'/],
  ['device', 'virtio-net-pci,csum=2', /'csum' expects 'on' or 'off'/],
  ['device', 'virtio-net-pci,vectors=-1', /'vectors' expects/],
  ['device', 'virtio-net-pci,host_mtu=70000', /'host_mtu' expects uint16/],
  ['device', 'virtio-net-pci,rx_queue_size=100', /rx_queue_size \(= 100\)/],
  ['device', 'virtio-net-pci,tx_queue_size=5000', /tx_queue_size \(= 5000\)/],
  ['device', 'virtio-net-pci,id=1x', /'id' expects an identifier/],
  ['device', 'virtio-net-pci,speed=abc', /'speed' expects/],
  ['device', 'virtio-net-pci,duplex=sideways', /'duplex' must be/],
  ['device', 'virtio-net-pci,addr=0xzz', /'virtio-net-pci.addr' doesn't take value '0xzz'/],
  ['device', '{"driver":"virtio-net-pci","mac":5}', /type for 'mac', expected: string/],
  ['device', '{"driver":7}', /type for 'driver', expected: string/],
  ['device', 'virtio-net-pci,x-txburst=-3', /'virtio-net-pci.x-txburst'/],
  ['object', '', /'qom-type' is missing/],
  ['object', 'iothread', /'id' is missing/],
  ['object', 'iothread,id=', /'id' expects an identifier/],
  ['object', 'iothread,id=1i', /'id' expects an identifier/],
  ['object', 'iothread,id=i,poll-max-ns=-1', /poll-max-ns value must be in range/],
  ['object', 'iothread,id=i,poll-max-ns=abc', /'poll-max-ns' expects/],
  ['object', 'iothread,id=i,poll-max-ns=99999999999999999999999', /'poll-max-ns' expects/],
  ['object', 'iothread,id=i,poll-grow=1.5', /'poll-grow' expects/],
  ['object', 'iothread,id=i,bogus=1', /Invalid parameter 'bogus'/],
  ['object', 'iothread,id=i,aio-max-batch=-2', /'iothread.aio-max-batch'/],
  ['object', 'memory-backend-ram,id=m', /'memory-backend-ram'/],
  ['qmp', '', /'' is not a valid char driver/],
  ['qmp', 'bogus', /'bogus' is not a valid char driver/],
  ['qmp', 'tcp:1.2.3.4:5,server=on,wait=off', /tcp: is not supported/],
  ['qmp', 'stdio', /stdio: is not supported/],
  ['qmp', 'unix:', /needs a socket path/],
  ['qmp', 'unix:/x,server=maybe', /'server' expects 'on' or 'off'/],
  ['qmp', 'unix:/x,server=on,wait=off,bogus=1', /Invalid parameter 'bogus'/],
  ['link', '', /expects two netdev ids/],
  ['link', 'a', /got 'a'/],
  ['link', 'a,b,c', /got 'a,b,c'/],
  ['link', ',b', /got ',b'/],
  ['link', '1a,b', /'1a' is not a valid netdev id/],
  ['link', 'a,a', /cannot link netdev 'a' to itself/],
];

describe('bad input: option strings', () => {
  test(`${OPTION_CASES.length} malformed -netdev/-device/-object/-qmp/-link values: each refused, naming the option and the culprit`, () => {
    for (const [option, text, culprit] of OPTION_CASES) {
      let err: unknown;
      try {
        parseCliArgs([`-${option}`, text]);
      } catch (e) {
        err = e;
      }
      assert.ok(
        err instanceof CliError,
        `-${option} ${text.slice(0, 60)}: ${err === undefined ? 'accepted' : String(err)}`,
      );
      assert.ok(
        err.text.startsWith(`-${option} ${text}: `) || err.text.startsWith(`-${option}: `),
        `located: ${err.text.slice(0, 120)}`,
      );
      assert.match(err.text, culprit, `-${option} ${text.slice(0, 60)}`);
      tried++;
    }
  });

  test('a huge value and many keys are parsed or refused in bounded time, never thrown as a crash', () => {
    const huge = `tap,id=t,ifname=${'x'.repeat(1 << 20)}`;
    assert.throws(() => parseNetdevArg(huge), /'ifname' is longer than 15 characters/);
    const many = 'tap,id=t' + ',bogus=1'.repeat(50_000);
    assert.throws(() => parseNetdevArg(many), /Invalid parameter 'bogus'/);
    const deep = '{"driver":"virtio-net-pci","x":' + '['.repeat(5000) + ']'.repeat(5000) + '}';
    assert.throws(() => parseDeviceArg(deep), /JSON/);
    tried += 3;
  });

  test('values the grammar accepts but the topology refuses: duplicate ids, dangling references', async () => {
    const topo = new Topology();
    try {
      const build = (args: string[]) => {
        const a = parseCliArgs(args);
        for (const o of a.objects) if (o.value.qomType === 'iothread') topo.addIothread(o.value, { via: 'cli' });
        for (const n of a.netdevs) topo.addNetdev(n.value, { via: 'cli' });
        for (const l of a.links) topo.link(...l.value);
        for (const d of a.devices) topo.addDevice(d.value, { via: 'cli' });
      };
      build(['-object', 'iothread,id=io0', '-netdev', 'hubport,id=h0,hubid=0', '-netdev', 'hubport,id=h1,hubid=1']);
      const before = topo.infoNetwork();
      const cases: Array<[string[], RegExp]> = [
        [['-netdev', 'hubport,id=h0,hubid=5'], /Duplicate ID 'h0'/],
        [['-object', 'iothread,id=io0'], /Duplicate ID 'io0'/],
        [['-netdev', 'hubport,id=h2,hubid=2,netdev='], /netdev '' not found/],
        [['-netdev', 'hubport,id=h2,hubid=2,netdev=nosuch'], /netdev 'nosuch' not found/],
        [['-netdev', 'tap,id=t9,fd=-1'], /(file descriptor|File descriptor).*'-1'/],
        [['-netdev', 'tap,id=t9,iothread='], /iothread '' not found/],
        [['-netdev', 'tap,id=t9,iothread=nosuch'], /iothread 'nosuch' not found/],
        [['-device', 'virtio-net-pci,netdev='], /'virtio-net-device.netdev' can't find value ''/],
        [['-device', 'virtio-net-pci,netdev=nosuch'], /can't find value 'nosuch'/],
        [['-link', 'h0,nosuch'], /'nosuch' not found/],
      ];
      for (const [args, culprit] of cases) {
        assert.throws(() => build(args), culprit, args.join(' '));
        tried++;
      }
      assert.equal(topo.infoNetwork(), before, 'nothing half-created by a refused option');
    } finally {
      await topo.close();
    }
  });
});

// ---- QMP messages ------------------------------------------------------------------------

interface QmpCase {
  /** What is sent (a line of text, or raw bytes). */
  send: string | Buffer;
  /** The error description must match (it names the culprit). */
  desc: RegExp;
  /** The stream cannot be resynchronised after it (an unterminated token): skip the follow-up check. */
  desync?: boolean;
}

const u8 = (...parts: Array<string | number[]>): Buffer =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));

const QMP_CASES: QmpCase[] = [
  // Wrong types, unknown keys, missing members.
  {
    send: '{"execute":"netdev_add","arguments":{"type":"hubport","id":"h2","hubid":"1"}}',
    desc: /type for 'hubid', expected: integer/,
  },
  { send: '{"execute":"netdev_add","arguments":{"type":"hubport","id":"h2"}}', desc: /'hubid' is missing/ },
  { send: '{"execute":"netdev_add","arguments":{"type":"tap","id":{"a":1}}}', desc: /type for 'id', expected: string/ },
  {
    send: '{"execute":"netdev_add","arguments":{"type":"tap","id":"t1","vnet_hdr":1}}',
    desc: /type for 'vnet_hdr', expected: boolean/,
  },
  { send: '{"execute":"netdev_add","arguments":{"type":"tap","id":"t1","bogus":true}}', desc: /'bogus' is unexpected/ },
  {
    send: '{"execute":"netdev_add","arguments":{"type":"nope","id":"t1"}}',
    desc: /'type' does not accept value 'nope'/,
  },
  { send: '{"execute":"netdev_add","arguments":{"type":"tap","id":"1t"}}', desc: /'id' expects an identifier/ },
  {
    send: '{"execute":"netdev_add","arguments":{"type":"tap","id":"t1","ifname":"xxxxxxxxxxxxxxxxxxxx"}}',
    desc: /'ifname' is longer than 15/,
  },
  {
    send: '{"execute":"netdev_add","arguments":{"type":"tap","id":"t1","fd":"nosuch"}}',
    desc: /(file descriptor|File descriptor).*'nosuch'/,
  },
  {
    send: '{"execute":"netdev_add","arguments":{"type":"hubport","id":"h3","hubid":3,"netdev":"nosuch"}}',
    desc: /netdev 'nosuch' not found/,
  },
  { send: '{"execute":"netdev_del","arguments":{"id":5}}', desc: /type for 'id', expected: string/ },
  { send: '{"execute":"netdev_del","arguments":{}}', desc: /'id' is missing/ },
  { send: '{"execute":"netdev_del","arguments":{"id":"h0","extra":1}}', desc: /'extra' is unexpected/ },
  { send: '{"execute":"netdev_del","arguments":{"id":"nosuch"}}', desc: /Device 'nosuch' not found/ },
  { send: '{"execute":"set_link","arguments":{"name":"h0","up":"yes"}}', desc: /type for 'up', expected: boolean/ },
  { send: '{"execute":"set_link","arguments":{"name":["h0"],"up":true}}', desc: /type for 'name', expected: string/ },
  { send: '{"execute":"set_link","arguments":{"name":"nosuch","up":true}}', desc: /Device 'nosuch' not found/ },
  { send: '{"execute":"set_link","arguments":{"up":true}}', desc: /'name' is missing/ },
  {
    send: '{"execute":"announce-self","arguments":{"initial":1,"max":1,"rounds":1,"step":1,"interfaces":"x"}}',
    desc: /type for 'interfaces', expected: array/,
  },
  { send: '{"execute":"announce-self","arguments":{"initial":1,"max":1,"rounds":1}}', desc: /'step' is missing/ },
  { send: '{"execute":"query-rx-filter","arguments":{"name":true}}', desc: /type for 'name', expected: string/ },
  { send: '{"execute":"query-rx-filter","arguments":{"name":"h0"}}', desc: /net client\(h0\) isn't a NIC/ },
  {
    send: '{"execute":"human-monitor-command","arguments":{"command-line":5}}',
    desc: /type for 'command-line', expected: string/,
  },
  {
    send: '{"execute":"human-monitor-command","arguments":{"command-line":"info network","cpu-index":"x"}}',
    desc: /type for 'cpu-index', expected: integer/,
  },
  { send: '{"execute":"quit","arguments":{"now":true}}', desc: /'now' is unexpected/ },
  {
    send: '{"execute":"device_add","arguments":{"driver":"virtio-net-pci"}}',
    desc: /command device_add has not been found/,
  },
  { send: '{"execute":"no-such-command"}', desc: /command no-such-command has not been found/ },
  { send: '{"execute":7}', desc: /'execute' must be a string/ },
  { send: '{"execute":"query-version","arguments":[1]}', desc: /'arguments' must be an object/ },
  { send: '{"execute":"query-version","bogus":1}', desc: /'bogus' is unexpected/ },
  { send: '{"arguments":{}}', desc: /lacks member 'execute'/ },
  { send: '[{"execute":"query-version"}]', desc: /must be a JSON object/ },
  { send: '42', desc: /must be a JSON object/ },
  // Duplicate ids and out-of-range numbers.
  { send: '{"execute":"netdev_add","arguments":{"type":"hubport","id":"h0","hubid":7}}', desc: /Duplicate ID 'h0'/ },
  {
    send: '{"execute":"netdev_add","arguments":{"type":"hubport","id":"h2","hubid":2147483648}}',
    desc: /'hubid' expects int32/,
  },
  {
    send: '{"execute":"netdev_add","arguments":{"type":"hubport","id":"h2","hubid":-2147483649}}',
    desc: /'hubid' expects int32/,
  },
  {
    send: '{"execute":"netdev_add","arguments":{"type":"hubport","id":"h2","hubid":1e400}}',
    desc: /type for 'hubid', expected: integer/,
  },
  {
    send: '{"execute":"netdev_add","arguments":{"type":"hubport","id":"h2","hubid":1.0}}',
    desc: /type for 'hubid', expected: integer/,
  },
  {
    send: '{"execute":"netdev_add","arguments":{"type":"tap","id":"t1","queues":0}}',
    desc: /'queues' expects a value between 1 and 1024/,
  },
  {
    send: '{"execute":"netdev_add","arguments":{"type":"tap","id":"t1","queues":1025}}',
    desc: /'queues' expects a value between 1 and 1024/,
  },
  {
    send: '{"execute":"netdev_add","arguments":{"type":"tap","id":"t1","queues":18446744073709551616}}',
    desc: /'queues' expects/,
  },
  { send: '{"execute":"netdev_add","arguments":{"type":"tap","id":"t1","sndbuf":"big"}}', desc: /'sndbuf' expects/ },
  {
    send: '{"execute":"announce-self","arguments":{"initial":1,"max":1,"rounds":-1,"step":1}}',
    desc: /'rounds' must not be negative/,
  },
  {
    send: '{"execute":"announce-self","arguments":{"initial":1,"max":1,"rounds":99999999999999999999,"step":1}}',
    desc: /type for 'rounds', expected: integer/,
  },
  // Invalid UTF-8: overlong, surrogate, beyond U+10FFFF, lone continuation, truncated, 0xff.
  { send: u8('{"execute":"query-version","id":"', [0xc0, 0xaf], '"}'), desc: /invalid UTF-8/ },
  { send: u8('{"execute":"query-version","id":"', [0xed, 0xa0, 0x80], '"}'), desc: /invalid UTF-8/ },
  { send: u8('{"execute":"query-version","id":"', [0xf4, 0x90, 0x80, 0x80], '"}'), desc: /invalid UTF-8/ },
  { send: u8('{"execute":"query-version","id":"', [0x80], '"}'), desc: /invalid UTF-8/ },
  { send: u8('{"execute":"query-version","id":"', [0xe2, 0x82], '"}'), desc: /invalid UTF-8/ },
  { send: u8('{"execute":"', [0xff], '"}'), desc: /invalid UTF-8/ },
  {
    send: u8('{"execute":"netdev_add","arguments":{"type":"hubport","id":"h', [0xc3, 0x28], '","hubid":1}}'),
    desc: /invalid UTF-8/,
  },
  // Syntax.
  { send: '{"execute":"query-version","id":"\\u00"}', desc: /invalid escape sequence/ },
  { send: '{"execute":"query-version","id":-}', desc: /stray '-/ },
  { send: '{"execute":"query-version","id":01}', desc: /stray '01'/ },
  { send: '{"execute":"query-version","id":tru}', desc: /invalid keyword 'tru'/ },
  { send: '{"execute":"query-version",}', desc: /expecting value/ },
  { send: '{"execute":"query-version" "id":1}', desc: /expected separator in dict/ },
  { send: '{"execute":"query-version","execute":"quit"}', desc: /duplicate key/ },
  { send: '{1:2}', desc: /key is not a string/ },
  { send: '@', desc: /stray '@'/ },
  // Huge and deeply nested.
  { send: `{"execute":"query-version","id":"${'a'.repeat(2 << 20)}"}`, desc: /token size limit exceeded/ },
  { send: `{"execute":"${'x'.repeat(70_000)}"}`, desc: /command x+ has not been found|token size/ },
  {
    send: `{"execute":"netdev_add","arguments":{"type":"hubport","id":"${'h'.repeat(100_000)}","hubid":0}}`,
    desc: /./,
  },
  {
    send: '{"execute":"netdev_add","arguments":' + '{"a":'.repeat(1100) + '1' + '}'.repeat(1100) + '}',
    desc: /nesting depth limit exceeded/,
  },
  { send: '['.repeat(5000) + ']'.repeat(5000), desc: /nesting depth limit exceeded/ },
  { send: '[' + '1,'.repeat(100_000) + '1]', desc: /token count limit exceeded/ },
];

describe('bad input: QMP messages', () => {
  test(
    `${QMP_CASES.length} malformed QMP messages, each on a fresh connection: an error naming the culprit, the connection and the topology go on`,
    { timeout: 60_000 },
    async () => {
      const dir = tempDir('bad-qmp');
      const sock = path.join(dir, 'qmp.sock');
      const topo = new Topology();
      topo.addNetdev({ type: 'hubport', id: 'h0', hubid: 0 });
      const svc = await serveQmp(topo, { path: sock, errorReport: () => {} });
      const { client: observer } = await QmpTestClient.open(sock);
      try {
        const before = topo.infoNetwork();
        for (const [i, c] of QMP_CASES.entries()) {
          const label = `case ${i}: ${String(c.send).slice(0, 90)}`;
          const { client } = await QmpTestClient.open(sock);
          try {
            client.sendRaw(c.send);
            client.sendRaw('\n');
            const reply = await client.next(10_000);
            // The long-id netdev_add may legitimately succeed (QEMU has no id length limit).
            if (!('error' in reply)) {
              assert.match(String(c.send), /"h{100000}"/, `${label}: accepted: ${JSON.stringify(reply).slice(0, 200)}`);
              assert.deepEqual(await client.execute('netdev_del', { id: 'h'.repeat(100_000) }), { return: {} });
            } else {
              assert.match(reply.error.desc, c.desc, label);
              assert.ok(
                ['GenericError', 'CommandNotFound', 'DeviceNotFound'].includes(reply.error.class),
                `${label}: class ${reply.error.class}`,
              );
            }
            if (!c.desync) {
              const v = await client.execute('query-version', undefined, `after-${i}`);
              assert.equal(v.id, `after-${i}`, `${label}: the connection goes on`);
            }
          } finally {
            client.close();
          }
          tried++;
        }
        // The process, the other client and the topology are as they were.
        assert.equal((await observer.execute('query-version', undefined, 'observer')).id, 'observer');
        assert.equal(topo.infoNetwork(), before);
        for (let i = 0; i < 100 && svc.server.clientCount !== 1; i++) await sleep(20);
        assert.equal(svc.server.clientCount, 1, 'every closed connection was forgotten');
      } finally {
        observer.close();
        await svc.close();
        await topo.close();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});

// ---- frames from JavaScript --------------------------------------------------------------

const HDR = 10; // the port's vnet header length in these tests

/** An Ethernet + IPv4 + TCP frame with `payload` bytes (checksums left alone), behind a zero vnet header. */
function tcpFrame(
  payload: number,
  hdr: Partial<{
    flags: number;
    gsoType: number;
    hdrLen: number;
    gsoSize: number;
    csumStart: number;
    csumOffset: number;
  }> = {},
  ipv6 = false,
): Uint8Array {
  const l3 = ipv6 ? 40 : 20;
  const f = new Uint8Array(HDR + 14 + l3 + 20 + payload);
  const v = new DataView(f.buffer);
  v.setUint8(0, hdr.flags ?? 0);
  v.setUint8(1, hdr.gsoType ?? 0);
  v.setUint16(2, hdr.hdrLen ?? 0, true);
  v.setUint16(4, hdr.gsoSize ?? 0, true);
  v.setUint16(6, hdr.csumStart ?? 0, true);
  v.setUint16(8, hdr.csumOffset ?? 0, true);
  const e = HDR;
  f.fill(0xff, e, e + 6); // broadcast: the namespace's interface counts it if it ever arrives
  f.set([0x02, 0, 0, 0, 0, 0x09], e + 6);
  v.setUint16(e + 12, ipv6 ? 0x86dd : 0x0800);
  if (ipv6) {
    v.setUint8(e + 14, 0x60);
    v.setUint16(e + 18, 20 + payload);
    v.setUint8(e + 20, 6);
    v.setUint8(e + 21, 64);
  } else {
    v.setUint8(e + 14, 0x45);
    v.setUint16(e + 16, 20 + 20 + payload);
    v.setUint8(e + 22, 64);
    v.setUint8(e + 23, 6);
  }
  v.setUint8(e + 14 + l3 + 12, 0x50); // TCP data offset 5
  return f;
}

/** [what, frame, the RangeError must match, the counter that must move] */
function frameCases(): Array<[string, Uint8Array, RegExp, 'badVnetHdr' | 'oversize']> {
  const csumTcp4 = { flags: 1, csumStart: 34, csumOffset: 16 };
  return [
    ['an empty frame', new Uint8Array(0), /^frame 0: 0 bytes is too short/, 'badVnetHdr'],
    ['a vnet header alone', new Uint8Array(HDR), /^frame 0: 10 bytes is too short/, 'badVnetHdr'],
    ['13 bytes of ethernet', new Uint8Array(HDR + 13), /^frame 0: 23 bytes is too short/, 'badVnetHdr'],
    [
      '65536 bytes of ethernet',
      new Uint8Array(HDR + 65536),
      /^frame 0: 65536-byte ethernet frame is larger than 65535/,
      'oversize',
    ],
    ['1 MiB', new Uint8Array(HDR + (1 << 20)), /^frame 0: .*larger than 65535/, 'oversize'],
    ['gso_type 9', tcpFrame(100, { gsoType: 9 }), /^frame 0: invalid vnet header \(BAD_GSO_TYPE\)/, 'badVnetHdr'],
    ['ECN without GSO', tcpFrame(100, { gsoType: 0x80 }), /BAD_GSO_TYPE/, 'badVnetHdr'],
    ['UDP_L4 without NEEDS_CSUM', tcpFrame(100, { gsoType: 5, gsoSize: 100 }), /BAD_GSO_TYPE/, 'badVnetHdr'],
    ['unknown flag bits', tcpFrame(100, { flags: 0x80 }), /BAD_FLAGS/, 'badVnetHdr'],
    [
      'TCPV4 with gso_size 0',
      tcpFrame(3000, { gsoType: 1, gsoSize: 0, hdrLen: 54, ...csumTcp4 }),
      /BAD_GSO_SIZE/,
      'badVnetHdr',
    ],
    [
      'TCPV4 with gso_size 65535',
      tcpFrame(3000, { gsoType: 1, gsoSize: 65535, hdrLen: 54, ...csumTcp4 }),
      /BAD_GSO_SIZE/,
      'badVnetHdr',
    ],
    ['hdr_len 65535', tcpFrame(100, { hdrLen: 65535 }), /BAD_HDR_LEN/, 'badVnetHdr'],
    [
      'csum_start beyond the frame',
      tcpFrame(100, { flags: 1, csumStart: 0xfff0, csumOffset: 16 }),
      /BAD_CSUM/,
      'badVnetHdr',
    ],
    ['csum_offset 65535', tcpFrame(100, { flags: 1, csumStart: 34, csumOffset: 0xffff }), /BAD_CSUM/, 'badVnetHdr'],
    [
      'TCPV4 csum_start not at the TCP header',
      tcpFrame(3000, { gsoType: 1, gsoSize: 1448, hdrLen: 54, flags: 1, csumStart: 20, csumOffset: 16 }),
      /BAD_CSUM/,
      'badVnetHdr',
    ],
    [
      'TCPV6 on an IPv4 frame',
      tcpFrame(3000, { gsoType: 4, gsoSize: 1448, hdrLen: 54, ...csumTcp4 }),
      /BAD_PACKET/,
      'badVnetHdr',
    ],
    [
      'TCPV4 on an IPv6 frame',
      tcpFrame(3000, { gsoType: 1, gsoSize: 1428, hdrLen: 74, flags: 1, csumStart: 54, csumOffset: 16 }, true),
      /BAD_PACKET/,
      'badVnetHdr',
    ],
  ];
}

async function withPortOnTap(body: (side: Side, dp: NativeDataPlane) => Promise<void>): Promise<void> {
  const side = openSide('bi', 1, (process.pid + 150) % 250, { vnetHdr: 'on' });
  const dp = new NativeDataPlane();
  try {
    side.ns.disableIpv6();
    dp.addClient({
      handle: 1,
      kind: 'tap',
      name: 'tap',
      queueIndex: 0,
      fd: side.tap.fd(0),
      vnetHdrLen: side.tap.vnetHdrLen,
    });
    await body(side, dp);
    assert.deepEqual(unconserved(dp.stats()), [], 'every client: in = out + queued + dropped');
  } finally {
    dp.close();
    closeSide(side);
  }
}

function rxPackets(side: Side): number {
  return Number(side.ns.exec('cat', [`/sys/class/net/${side.ifname}/statistics/rx_packets`]).trim());
}

describe('bad input: frames from JavaScript', privileged(), () => {
  test(
    'malformed frames into a packet port: a RangeError naming frame and reason, counted, nothing reaches the TAP',
    { timeout: 30_000 },
    async () => {
      await withPortOnTap(async (side, dp) => {
        const port = dp.createPort('port', { vnetHdrLen: HDR });
        dp.connect(1, port.handle);
        const portStats = () => dp.stats().find((c) => c.name === 'port')!;
        const rx0 = rxPackets(side);
        for (const [what, frame, message, counter] of frameCases()) {
          const before = portStats();
          for (const send of [(f: Uint8Array[]) => port.send(f), (f: Uint8Array[]) => port.sendAsync(f)]) {
            let err: unknown;
            try {
              await send([frame]);
            } catch (e) {
              err = e;
            }
            assert.ok(err instanceof RangeError, `${what}: ${String(err)}`);
            assert.match(err.message, message, what);
            tried++;
          }
          const after = portStats();
          assert.equal(
            after.drops[counter],
            before.drops[counter] + 2,
            `${what}: counted as ${counter}, once per attempt`,
          );
          assert.equal(after.deviceRxFrames, 0, `${what}: nothing was sent`);
        }
        // A bad frame poisons its whole batch, and only its batch.
        assert.throws(
          () => port.send([tcpFrame(100), tcpFrame(100, { gsoType: 9 })]),
          /^RangeError: frame 1: invalid vnet header/,
        );
        await sleep(200);
        assert.equal(rxPackets(side), rx0, 'nothing malformed arrived in the namespace');
        // The port still works: a good frame arrives.
        assert.equal(port.send([tcpFrame(100)]), true);
        for (let i = 0; i < 100 && rxPackets(side) === rx0; i++) await sleep(10);
        assert.equal(rxPackets(side), rx0 + 1, 'a good frame still goes through');
        assert.equal(portStats().deviceRxFrames, 1);
      });
    },
  );

  test(
    'records written into the tx ring directly (bypassing send): bad lengths, broken positions and bad headers are dropped and counted',
    { timeout: 30_000 },
    async () => {
      const RING = 256 * 1024;
      const HDR_BYTES = 256;
      await withPortOnTap(async (side) => {
        const events: number[] = [];
        const graph = new (native().NetGraph)((kind) => events.push(kind));
        try {
          graph.addTap({
            handle: 1,
            name: 'tap',
            queueIndex: 0,
            iothread: '',
            fd: side.tap.fd(0),
            vnetHdrLen: side.tap.vnetHdrLen,
          });
          const rx = new Uint8Array(new SharedArrayBuffer(HDR_BYTES + RING));
          const tx = new Uint8Array(new SharedArrayBuffer(HDR_BYTES + RING));
          graph.addPort({
            handle: 2,
            name: 'raw',
            queueIndex: 0,
            iothread: '',
            rx,
            tx,
            dropWhenFull: true,
            vnetHdrLen: HDR,
          });
          graph.connect(1, 2);
          const words = new Uint32Array(tx.buffer, 0, HDR_BYTES / 4);
          const data = new DataView(tx.buffer, HDR_BYTES);
          const portStats = () => graph.stats().find((c) => c.name === 'raw')!;
          // Write one record at the current head and publish it (or publish `head` as given).
          const publish = (len: number, body?: Uint8Array, head?: number) => {
            const h = Atomics.load(words, 16);
            const off = h & (RING - 1);
            data.setUint32(off, len, true);
            data.setUint32(off + 4, 0, true);
            if (body) new Uint8Array(tx.buffer, HDR_BYTES + off + 8, body.length).set(body);
            Atomics.store(words, 16, head ?? h + 8 + ((Math.min(len, 1 << 20) + 7) & ~7));
            graph.kick(2, true);
          };
          const rx0 = rxPackets(side);
          const cases: Array<[string, () => void, 'badVnetHdr' | 'oversize']> = [
            ['a record longer than the ring', () => publish(RING * 2), 'badVnetHdr'],
            [
              'a record longer than what was published',
              () => publish(4096, undefined, Atomics.load(words, 16) + 64),
              'badVnetHdr',
            ],
            ['a zero-length record', () => publish(0), 'oversize'],
            ['a header-only record', () => publish(HDR, new Uint8Array(HDR)), 'oversize'],
            [
              'a bad vnet header (gso_type 9) never validated by send()',
              () => publish(HDR + 154, tcpFrame(100, { gsoType: 9 })),
              'badVnetHdr',
            ],
            ['hdr_len beyond the frame', () => publish(HDR + 154, tcpFrame(100, { hdrLen: 60000 })), 'badVnetHdr'],
            ['an unaligned head', () => publish(HDR + 154, tcpFrame(100), Atomics.load(words, 16) + 3), 'badVnetHdr'],
            [
              'a head more than a ring ahead',
              () => publish(HDR + 154, tcpFrame(100), Atomics.load(words, 32) + RING * 4),
              'badVnetHdr',
            ],
          ];
          for (const [what, inject, counter] of cases) {
            const before = portStats().drops[counter];
            inject();
            for (let i = 0; i < 200 && portStats().drops[counter] === before; i++) await sleep(5);
            assert.ok(portStats().drops[counter] > before, `${what}: counted as ${counter}`);
            // Resynchronise as a well-behaved producer would: tail is where the engine stopped.
            await sleep(20);
            Atomics.store(words, 16, Atomics.load(words, 32));
            tried++;
          }
          await sleep(200);
          assert.equal(rxPackets(side), rx0, 'nothing from a broken ring arrived in the namespace');
          assert.equal(portStats().deviceRxFrames, 0);
          // Restarted from the engine's tail, the ring works again.
          Atomics.store(words, 16, Atomics.load(words, 32));
          publish(HDR + 154, tcpFrame(100));
          for (let i = 0; i < 100 && rxPackets(side) === rx0; i++) await sleep(10);
          assert.equal(rxPackets(side), rx0 + 1, 'a good record goes through');
          assert.deepEqual(unconserved(graph.stats() as never), []);
        } finally {
          graph.close();
        }
      });
    },
  );
});

test('bad inputs tried in this file', () => {
  // A summary for the issue note (printed by the runner's diagnostic output).
  console.log(`# bad-input: ${tried} malformed inputs tried, each refused with a clear error or counted`);
  assert.ok(tried >= 100, `only ${tried} bad inputs were tried`);
});
