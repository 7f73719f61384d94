// The option grammar: table-driven good and bad cases for -netdev, -device, -object, -link,
// -qmp and QMP netdev_add, each bad case with its exact message; then a differential block
// that runs the bad command lines through the real qemu-system-x86_64 7.2 and checks that
// we print the same text.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { NetplaneError } from '../lib/errors';
import {
  IDENTIFIER_HINT,
  OptionError,
  escapeValue,
  formatKeyval,
  netdevFromQmp,
  parseDeviceArg,
  parseKeyval,
  parseLinkArg,
  parseNetdevArg,
  parseObjectArg,
  parseQemuJson,
  parseQmpArg,
  JsonFloat,
} from '../lib/options';
import { strtosz } from '../lib/options/scalars';
import fc from 'fast-check';

/** Runs `fn`, expecting an OptionError with exactly `message` (and `hint`, when given). */
function expectError(fn: () => unknown, message: string, hint?: string): void {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  assert.ok(thrown !== undefined, `expected "${message}" but nothing was thrown`);
  assert.ok(thrown instanceof NetplaneError, `expected a NetplaneError, got ${String(thrown)}`);
  assert.equal(thrown.code, 'NETPLANE_INVALID_OPTION');
  assert.equal(thrown.message, message);
  if (hint !== undefined) assert.equal((thrown as OptionError).hint, hint);
}

// ---- QemuOpts key=value splitting

describe('key=value splitting (QemuOpts)', () => {
  const cases: Array<[string, string | undefined, { id?: string; entries: Array<[string, string]> }]> = [
    [
      'tap,id=x,ifname=a',
      'type',
      {
        id: 'x',
        entries: [
          ['type', 'tap'],
          ['ifname', 'a'],
        ],
      },
    ],
    ['tap,,x,id=y', 'type', { id: 'y', entries: [['type', 'tap,x']] }],
    ['type=tap,id=x', 'type', { id: 'x', entries: [['type', 'tap']] }],
    [
      'tap,id=x,ifname=a,,b',
      'type',
      {
        id: 'x',
        entries: [
          ['type', 'tap'],
          ['ifname', 'a,b'],
        ],
      },
    ],
    [
      'tap,id=x,script=a=b',
      'type',
      {
        id: 'x',
        entries: [
          ['type', 'tap'],
          ['script', 'a=b'],
        ],
      },
    ],
    ['tap,id=x,', 'type', { id: 'x', entries: [['type', 'tap']] }],
    ['tap,id=x,id=y', 'type', { id: 'x', entries: [['type', 'tap']] }], // the first id wins
    [
      'tap,id=x,vnet_hdr,novhost',
      'type',
      {
        id: 'x',
        entries: [
          ['type', 'tap'],
          ['vnet_hdr', 'on'],
          ['vhost', 'off'],
        ],
      },
    ],
    [
      'tap,id=x,=1',
      'type',
      {
        id: 'x',
        entries: [
          ['type', 'tap'],
          ['', '1'],
        ],
      },
    ],
    [',id=x', 'type', { id: 'x', entries: [['type', '']] }],
    ['id=x', 'type', { id: 'x', entries: [] }],
    ['a=1,,', undefined, { entries: [['a', '1,']] }],
    ['tap,id=x,,y', 'type', { id: 'x,y', entries: [['type', 'tap']] }],
  ];
  for (const [text, implied, expected] of cases) {
    test(`${JSON.stringify(text)} splits as QemuOpts does`, () => {
      const kv = parseKeyval(text, implied);
      assert.equal(kv.id, expected.id);
      assert.deepEqual(
        kv.entries.map((e) => [e.key, e.value]),
        expected.entries,
      );
    });
  }

  test('short-form booleans warn with QEMU wording', () => {
    const warnings: string[] = [];
    parseKeyval('tap,id=x,vnet_hdr,nodelay', 'type', { warn: (m) => warnings.push(m) });
    assert.deepEqual(warnings, [
      "short-form boolean option 'vnet_hdr' deprecated\nPlease use vnet_hdr=on instead",
      "short-form boolean option 'nodelay' deprecated\nPlease use nodelay=on instead",
    ]);
  });

  test('escapeValue/formatKeyval round-trip through the parser', () => {
    const text = formatKeyval(
      [
        ['ifname', 'a,b'],
        ['script', ',,x=,'],
      ],
      { key: 'type', value: 't=ap,x' },
    );
    const kv = parseKeyval(text, 'type');
    assert.deepEqual(
      kv.entries.map((e) => [e.key, e.value]),
      [
        ['type', 't=ap,x'],
        ['ifname', 'a,b'],
        ['script', ',,x=,'],
      ],
    );
    assert.equal(escapeValue('a,,b'), 'a,,,,b');
  });
});

// ---- sizes (values observed with QEMU 7.2's memory-backend-ram size= and `info memdev`)

describe('size values (qemu_strtosz)', () => {
  const good: Array<[string, bigint]> = [
    ['1.5k', 1536n],
    ['0x10', 16n],
    ['0x10k', 16384n],
    [' 4k', 4096n],
    ['+4k', 4096n],
    ['1b', 1n],
    ['4K', 4096n],
    ['1.25M', 1310720n],
    ['0.5k', 512n],
    ['5.k', 5120n],
    ['1.0', 1n],
    ['010', 10n],
    ['1.1k', 1126n],
    ['1.0009765625k', 1025n],
    ['0X10', 16n],
    ['18446744073709551615', 18446744073709551615n],
    ['1E', 1n << 60n],
    ['2P', 2n << 50n],
    ['1T', 1n << 40n],
    ['3G', 3n << 30n],
  ];
  for (const [text, value] of good) {
    test(`${JSON.stringify(text)} is ${value}`, () => assert.equal(strtosz(text), value));
  }
  const bad = [
    '1.5',
    '.5k',
    '4k ',
    '4kB',
    '1.5 k',
    '1e3',
    '16E',
    '-1',
    '18446744073709551616',
    '',
    'abc',
    '1x',
    '0x',
    '0x1.8k',
  ];
  for (const text of bad) {
    test(`${JSON.stringify(text)} is not a size`, () => assert.equal(strtosz(text), undefined));
  }
  test('hex with a suffix warns as QEMU does', () => {
    const warnings: string[] = [];
    assert.equal(strtosz('0x10k', { warn: (m) => warnings.push(m) }), 16384n);
    assert.deepEqual(warnings, ['Using a multiplier suffix on hex numbers is deprecated: 0x10k']);
  });
});

// ---- -netdev, good

describe('-netdev accepted', () => {
  const cases: Array<[string, object]> = [
    [
      'tap,id=hostnet0,ifname=vnet2,downscript=no,queues=4',
      { type: 'tap', id: 'hostnet0', ifname: 'vnet2', downscript: 'no', queues: 4 },
    ],
    ['tap,id=x,sndbuf=1.5k,vnet_hdr=yes', { type: 'tap', id: 'x', sndbuf: 1536, vnet_hdr: true }],
    ['tap,id=x,vnet_hdr=n,vhost=false', { type: 'tap', id: 'x', vnet_hdr: false, vhost: false }],
    ['tap,id=x,sndbuf=zz,sndbuf=1k', { type: 'tap', id: 'x', sndbuf: 1024 }], // the last value wins
    ['tap,id=x,fd=3', { type: 'tap', id: 'x', fd: '3' }],
    ['tap,id=x,fd=mytap', { type: 'tap', id: 'x', fd: 'mytap' }],
    ['tap,id=x,fds=3:4:5', { type: 'tap', id: 'x', fds: ['3', '4', '5'] }],
    ['tap,id=x,queues=0x10', { type: 'tap', id: 'x', queues: 16 }],
    ['tap,id=x,queues=010', { type: 'tap', id: 'x', queues: 8 }], // base 0: octal, as strtoull
    ['tap,id=x,script=/etc/np-up,,v2,downscript=', { type: 'tap', id: 'x', script: '/etc/np-up,v2', downscript: '' }],
    ['tap,id=x,iothread=io0,poll-us=50', { type: 'tap', id: 'x', iothread: 'io0', 'poll-us': 50 }],
    ['tap,id=x,io-uring=on', { type: 'tap', id: 'x', 'io-uring': true }],
    ['tap,id=x,io-uring=off', { type: 'tap', id: 'x', 'io-uring': false }],
    ['tap,id=x,vhost=off', { type: 'tap', id: 'x', vhost: false }],
    ['type=tap,id=x.y-z_1', { type: 'tap', id: 'x.y-z_1' }],
    ['hubport,id=h0,hubid=0', { type: 'hubport', id: 'h0', hubid: 0 }],
    ['hubport,id=h0,hubid=-5,netdev=tap0', { type: 'hubport', id: 'h0', hubid: -5, netdev: 'tap0' }],
    ['hubport,id=h0,hubid=0X1f', { type: 'hubport', id: 'h0', hubid: 31 }],
    ['hubport,id=h0,hubid= +1', { type: 'hubport', id: 'h0', hubid: 1 }],
    [
      '{"type":"tap","id":"x","queues":2,"vnet_hdr":false,"ifname":"np0"}',
      { type: 'tap', id: 'x', ifname: 'np0', vnet_hdr: false, queues: 2 },
    ],
    ["{'type':'hubport','id':'h','hubid':-2147483648}", { type: 'hubport', id: 'h', hubid: -2147483648 }],
    ['{"type":"tap","id":"x","sndbuf":-1}', { type: 'tap', id: 'x', sndbuf: 2 ** 64 }], // QAPI wraps negative unsigned values
  ];
  for (const [text, expected] of cases) {
    test(text, () => assert.deepEqual(parseNetdevArg(text), expected));
  }

  test('script= and downscript= default to none (QEMU: /etc/qemu-ifup): absent stays absent', () => {
    const tap = parseNetdevArg('tap,id=x,ifname=np0');
    assert.equal('script' in tap, false);
    assert.equal('downscript' in tap, false);
  });
});

// ---- -netdev, bad (messages are QEMU 7.2's unless the name says "netplane")

const ID_HINT = IDENTIFIER_HINT;
const BAD_NETDEV: Array<[string, string, string?]> = [
  ['tap,id=x,bogus=1', "Invalid parameter 'bogus'"],
  ['tap', "Parameter 'id' is missing"],
  ['tap,bogus=1', "Parameter 'id' is missing"],
  ['bogus,bogus=1', "Parameter 'id' is missing"],
  ['id=x', "Parameter 'type' is missing"],
  ['tap,id=1x', "Parameter 'id' expects an identifier", ID_HINT],
  ['tap,id=,bogus=1', "Parameter 'id' expects an identifier", ID_HINT],
  ['tap,id=1y,id=x,bogus=1', "Parameter 'id' expects an identifier", ID_HINT],
  ['tap,id=x,,bogus=1', "Parameter 'id' expects an identifier", ID_HINT],
  ['bogus,id=x', "Parameter 'type' does not accept value 'bogus'"],
  ['bogus,id=x,foo=1', "Parameter 'type' does not accept value 'bogus'"],
  [',id=x', "Parameter 'type' does not accept value ''"],
  ['tap,,x,id=y', "Parameter 'type' does not accept value 'tap,x'"],
  ['tap,id=x,vnet_hdr=maybe', "Parameter 'vnet_hdr' expects 'on' or 'off'"],
  ['tap,id=x,vnet_hdr=ON', "Parameter 'vnet_hdr' expects 'on' or 'off'"],
  ['tap,id=x,vnet_hdr=,bogus=1', "Parameter 'vnet_hdr' expects 'on' or 'off'"],
  ['tap,id=x,sndbuf=abc', "Parameter 'sndbuf' expects a size value"],
  ['tap,id=x,sndbuf=1k,sndbuf=zz', "Parameter 'sndbuf' expects a size value"],
  ['tap,id=x,sndbuf=1e3,bogus=1', "Parameter 'sndbuf' expects a size value"],
  ['tap,id=x,sndbuf=-1,bogus=1', "Parameter 'sndbuf' expects a size value"],
  ['tap,id=x,sndbuf=16E,bogus=1', "Parameter 'sndbuf' expects a size value"],
  ['tap,id=x,queues=abc', "Parameter 'queues' expects a uint64 value"],
  ['tap,id=x,queues=-1', "Parameter 'queues' expects a uint64 value"],
  ['tap,id=x,queues=,bogus=1', "Parameter 'queues' expects a uint64 value"],
  ['tap,id=x,queues=1k', "Parameter 'queues' expects a uint64 value"],
  ['tap,id=x,queues=99999999999,bogus=1', "Parameter 'queues' expects uint32_t"],
  ['tap,id=x,queues=abc,sndbuf=zz', "Parameter 'sndbuf' expects a size value"], // schema order
  ['tap,id=x,poll-us=abc', "Parameter 'poll-us' expects a uint64 value"],
  ['tap,id=x,nosuch', "Invalid parameter 'such'"],
  ['tap,id=x,=1', "Invalid parameter ''"],
  [
    'tap,id=x,fd=3,ifname=a',
    'ifname=, script=, downscript=, vnet_hdr=, helper=, queues=, fds=, and vhostfds= are invalid with fd=',
  ],
  [
    'tap,id=x,fd=3,queues=2',
    'ifname=, script=, downscript=, vnet_hdr=, helper=, queues=, fds=, and vhostfds= are invalid with fd=',
  ],
  [
    'tap,id=x,fds=3:4,ifname=a',
    'ifname=, script=, downscript=, vnet_hdr=, helper=, queues=, and vhostfd= are invalid with fds=',
  ],
  [
    'tap,id=x,fds=3:4,vhostfd=5',
    'ifname=, script=, downscript=, vnet_hdr=, helper=, queues=, and vhostfd= are invalid with fds=',
  ],
  ['tap,id=x,fds=3:4,vhostfds=5', 'The number of fds passed does not match the number of vhostfds passed'],
  ['tap,id=x,vhostfds=3', "vhostfds= is invalid if fds= wasn't specified"],
  [
    'tap,id=x,helper=/bin/false,ifname=a',
    'ifname=, script=, downscript=, vnet_hdr=, queues=, and vhostfds= are invalid with helper=',
  ],
  ['tap,id=x,vhost=off,vhostfd=3', 'vhostfd(s)= is not valid without vhost'],
  ['hubport,id=x', "Parameter 'hubid' is missing"],
  ['hubport,id=x,hubid=abc', "Parameter 'hubid' expects an int64 value"],
  ['hubport,id=x,hubid=08', "Parameter 'hubid' expects an int64 value"],
  ['hubport,id=x,hubid=1 ', "Parameter 'hubid' expects an int64 value"],
  ['hubport,id=x,hubid=99999999999', "Parameter 'hubid' expects int32_t"],
  ['hubport,id=x,hubid=-2147483649', "Parameter 'hubid' expects int32_t"],
  ['hubport,id=x,hubid=1,bogus=1', "Invalid parameter 'bogus'"],
  ['nic,id=x', "network backend 'nic' is not compiled into this binary"],
  ['none,id=x', "network backend 'none' is not compiled into this binary"],
  // JSON form (QObject input visitor wording)
  ['{"type":"tap","id":"x","queues":"abc"}', "Parameter 'queues' expects uint64"],
  ['{"type":"tap","id":"x","queues":1.5}', "Parameter 'queues' expects uint64"],
  ['{"type":"tap","id":"x","queues":1.0}', "Parameter 'queues' expects uint64"],
  ['{"type":"tap","id":"x","queues":null}', "Parameter 'queues' expects uint64"],
  ['{"type":"tap","id":"x","queues":true}', "Parameter 'queues' expects uint64"],
  ['{"type":"tap","id":"x","queues":-1}', "Parameter 'queues' expects uint32_t"],
  ['{"type":"tap","id":"x","queues":4294967296}', "Parameter 'queues' expects uint32_t"],
  ['{"type":"tap","id":"x","queues":18446744073709551616}', "Parameter 'queues' expects uint64"],
  ['{"type":"tap","id":"x","sndbuf":"1k"}', "Parameter 'sndbuf' expects uint64"],
  ['{"type":"tap","id":"x","vnet_hdr":"on"}', "Invalid parameter type for 'vnet_hdr', expected: boolean"],
  ['{"type":"tap","id":"x","vnet_hdr":1}', "Invalid parameter type for 'vnet_hdr', expected: boolean"],
  ['{"type":"tap","id":"x","bogus":1}', "Parameter 'bogus' is unexpected"],
  ['{"type":"tap"}', "Parameter 'id' is missing"],
  ['{}', "Parameter 'id' is missing"],
  ['{"id":"x"}', "Parameter 'type' is missing"],
  ['{"type":"bogus","id":"x"}', "Parameter 'type' does not accept value 'bogus'"],
  ['{"type":5,"id":"x"}', "Invalid parameter type for 'type', expected: string"],
  ['{"type":"tap","id":5}', "Invalid parameter type for 'id', expected: string"],
  ['{"type":"tap","id":"x","ifname":5}', "Invalid parameter type for 'ifname', expected: string"],
  ['{"type":"hubport","id":"x","hubid":"1"}', "Invalid parameter type for 'hubid', expected: integer"],
  ['{"type":"hubport","id":"x","hubid":4294967296}', "Parameter 'hubid' expects int32_t"],
  ['{"type":"hubport","id":"x"}', "Parameter 'hubid' is missing"],
  [
    '{"type":"tap","id":"x","fds":"3:4","ifname":"a"}',
    'ifname=, script=, downscript=, vnet_hdr=, helper=, queues=, and vhostfd= are invalid with fds=',
  ],
  ["{'type':'tap','id':'x','queues':'a'}", "Parameter 'queues' expects uint64"],
  ['{"type":"tap","id":"x",', 'JSON parse error, premature EOI'],
  ['{', 'JSON parse error, premature EOI'],
  ['{"type":"tap","id":"x","ifname":"a","ifname":"b","bogus":1}', 'JSON parse error, duplicate key'],
  ['{"type":"tap" "id":"x"}', 'JSON parse error, expected separator in dict'],
  ['{"type":"tap","id":"x","queues":1,}', 'JSON parse error, expecting value'],
  ['{"type":"tap","id":"x","queues":01}', "JSON parse error, stray '01'"],
  ['{"type":"tap","id":"x","vnet_hdr":True}', "JSON parse error, stray 'T'"],
  ['{"a":tru}', "JSON parse error, invalid keyword 'tru'"],
  ['{"a":-}', "JSON parse error, stray '-}'"],
  ['{"a":1a}', 'JSON parse error, expected separator in dict'],
  ['{"a":@}', "JSON parse error, stray '@'"],
  ['{"a":1.}', "JSON parse error, stray '1.}'"],
  ['{"a":.5}', "JSON parse error, stray '.'"],
  ['{"a":"x', `JSON parse error, stray '"x'`],
  ['{"a" 1}', 'JSON parse error, missing : in object pair'],
  ['{1:2}', 'JSON parse error, key is not a string in object'],
  ['{"a":1]', 'JSON parse error, expected separator in dict'],
  ['{"type":"tap","id":"x","ifname":"\\x"}', 'JSON parse error, invalid escape sequence in string'],
  ['{"type":"tap","id":"x","q":[1,2}', 'JSON parse error, expected separator in list'],
  ['{"type":"tap","id":"x"} x', 'Expecting at most one JSON value'],
  ['{"type":"tap","id":"x"}{}', 'Expecting at most one JSON value'],
  ['[1]', "Parameter 'id' is missing"], // not JSON to QEMU: only a leading '{' selects JSON
];

// netplane's own refusals and the places where QEMU crashes or misbehaves.
const BAD_NETDEV_NETPLANE: Array<[string, string, string]> = [
  [
    'QEMU 7.2 aborts (Assertion nc failed)',
    'tap,id=x,queues=0',
    "Parameter 'queues' expects a value between 1 and 1024",
  ],
  ['QEMU would try 2000 queues', 'tap,id=x,queues=2000', "Parameter 'queues' expects a value between 1 and 1024"],
  [
    'QEMU 7.2 aborts on JSON -0 too',
    '{"type":"tap","id":"x","queues":-0}',
    "Parameter 'queues' expects a value between 1 and 1024",
  ],
  [
    'no vhost-net',
    'tap,id=x,vhost=on',
    'vhost-net is not supported by netplane (asked for by vhost=on, vhostfd=, vhostfds= or vhostforce=on); drop these keys to use the userspace data plane',
  ],
  [
    'vhostforce enables vhost',
    'tap,id=x,vhostforce=on',
    'vhost-net is not supported by netplane (asked for by vhost=on, vhostfd=, vhostfds= or vhostforce=on); drop these keys to use the userspace data plane',
  ],
  [
    'vhostfd enables vhost',
    'tap,id=x,vhostfd=7',
    'vhost-net is not supported by netplane (asked for by vhost=on, vhostfd=, vhostfds= or vhostforce=on); drop these keys to use the userspace data plane',
  ],
  [
    'no bridge helper',
    'tap,id=x,helper=/usr/lib/qemu/qemu-bridge-helper',
    'helper= (qemu-bridge-helper) is not supported by netplane; create the TAP yourself and pass ifname= or fd=',
  ],
  [
    'br only with helper',
    'tap,id=x,br=br0',
    'br= is not supported by netplane (it only applies with helper=); attach the TAP to the bridge yourself',
  ],
  [
    'QEMU truncates long names',
    'tap,id=x,ifname=np0123456789abcd',
    "Parameter 'ifname' is longer than 15 characters: 'np0123456789abcd'",
  ],
  [
    'the kernel rejects these names',
    'tap,id=x,ifname=np/0',
    "Parameter 'ifname' is not a valid interface name: 'np/0'",
  ],
  ['empty fd list entry', 'tap,id=x,fds=3::4', "Parameter 'fds' has an empty entry: '3::4'"],
  [
    'too many fds',
    `tap,id=x,fds=${Array.from({ length: 1025 }, (_, i) => i + 3).join(':')}`,
    'The number of fds passed exceeds the maximum of 1024',
  ],
  ['socket needs one mode', 'socket,id=x', 'exactly one of listen=, connect=, mcast= or udp= is required'],
  ['stream needs addr', 'stream,id=x', "Parameter 'addr' is missing"],
  ['dgram needs local', 'dgram,id=x', 'dgram requires local= parameter'],
  ['backends not built', 'vde,id=x', "network backend 'vde' is not compiled into this binary"],
  ['backends not built', 'bridge,id=x', "network backend 'bridge' is not compiled into this binary"],
  ['backends not built', 'l2tpv3,id=x', "network backend 'l2tpv3' is not compiled into this binary"],
  ['backends not built', 'vhost-vdpa,id=x', "network backend 'vhost-vdpa' is not compiled into this binary"],
  ['QEMU 7.2 takes any JSON id', '{"type":"hubport","id":"1x","hubid":1}', "Parameter 'id' expects an identifier"],
  [
    'QEMU 7.2 takes any JSON id',
    '{"type":"stream","id":"1x","addr":{"type":"unix","path":"/tmp/npcl-s"}}',
    "Parameter 'id' expects an identifier",
  ],
  [
    'QEMU 7.2 takes any stream id',
    'stream,id=1x,addr.type=unix,addr.path=/tmp/npcl-s',
    "Parameter 'id' expects an identifier",
  ],
  [
    'QEMU 7.2 takes any dgram id',
    'dgram,id=1x,local.type=unix,local.path=/tmp/npcl-l,remote.type=unix,remote.path=/tmp/npcl-r',
    "Parameter 'id' expects an identifier",
  ],
  // The members are read first, as netdev_add reads them.
  ['QEMU 7.2 takes any stream id', 'stream,id=1x', "Parameter 'addr' is missing"],
  [
    'NUL cannot reach execve',
    '{"type":"tap","id":"x","script":"/bin/a\\u0000b"}',
    "Parameter 'script' must not contain a NUL character",
  ],
];

describe('-netdev rejected with QEMU 7.2 texts', () => {
  for (const [text, message, hint] of BAD_NETDEV) {
    test(`${text.length > 90 ? text.slice(0, 90) + '…' : text} -> ${message}`, () =>
      expectError(() => parseNetdevArg(text), message, hint));
  }
});

describe('-netdev rejected where netplane differs on purpose', () => {
  for (const [why, text, message] of BAD_NETDEV_NETPLANE) {
    test(`netplane (${why}): ${text.length > 70 ? text.slice(0, 70) + '…' : text}`, () =>
      expectError(() => parseNetdevArg(text), message));
  }
  test('the identifier hint is a separate property, and the CLI text has it as a second line', () => {
    try {
      parseNetdevArg('tap,id=9');
      assert.fail('no error');
    } catch (e) {
      assert.ok(e instanceof OptionError);
      assert.equal(e.fullText, `Parameter 'id' expects an identifier\n${IDENTIFIER_HINT}`);
    }
  });
});

// ---- QMP netdev_add arguments (JSON types as JSON.parse gives them)

describe('QMP netdev_add arguments', () => {
  test('a hubport and a tap are accepted', () => {
    assert.deepEqual(netdevFromQmp({ type: 'hubport', id: 'h1', hubid: 3 }), { type: 'hubport', id: 'h1', hubid: 3 });
    assert.deepEqual(netdevFromQmp({ type: 'tap', id: 't1', ifname: 'np1', queues: 2, vnet_hdr: true }), {
      type: 'tap',
      id: 't1',
      ifname: 'np1',
      queues: 2,
      vnet_hdr: true,
    });
  });
  const bad: Array<[Record<string, unknown>, string]> = [
    [{ type: 'hubport', id: '1x', hubid: 1 }, "Parameter 'id' expects an identifier"],
    [{ type: 'hubport', id: '', hubid: 1 }, "Parameter 'id' expects an identifier"],
    [{ type: 'hubport', id: 'y', hubid: 1.5 }, "Invalid parameter type for 'hubid', expected: integer"],
    [{ type: 'hubport', id: 'z', hubid: null }, "Invalid parameter type for 'hubid', expected: integer"],
    [{ type: 'hubport', id: null, hubid: 1 }, "Invalid parameter type for 'id', expected: string"],
    [{ type: 'hubport', hubid: 1 }, "Parameter 'id' is missing"],
    [{ type: 'bogus', id: 'b' }, "Parameter 'type' does not accept value 'bogus'"],
    [{ type: 'hubport', id: 'w', hubid: 1, bogus: 1 }, "Parameter 'bogus' is unexpected"],
    [{ type: 'hubport', id: '1x', hubid: 1, bogus: 1 }, "Parameter 'bogus' is unexpected"], // members before the id check
    [{ type: 'hubport', id: '1x', hubid: 'a' }, "Invalid parameter type for 'hubid', expected: integer"],
    [{ type: 'tap', id: 'w', queues: '2' }, "Parameter 'queues' expects uint64"],
    [{ type: 'tap', id: 'w', vnet_hdr: 'on' }, "Invalid parameter type for 'vnet_hdr', expected: boolean"],
    [{ type: 'tap', id: '1x', fd: '3', ifname: 'a' }, "Parameter 'id' expects an identifier"],
    // stream and dgram: members, then the id, then the backend's own checks (QEMU 7.2's order).
    [{ type: 'stream', id: '1x', addr: { type: 'unix', path: '/tmp/npcl-s' } }, "Parameter 'id' expects an identifier"],
    [{ type: 'stream', id: '1x' }, "Parameter 'addr' is missing"],
    [
      { type: 'stream', id: '1x', addr: { type: 'unix', path: '/tmp/npcl-s' }, bogus: 1 },
      "Parameter 'bogus' is unexpected",
    ],
    [{ type: 'dgram', id: '1x' }, "Parameter 'id' expects an identifier"],
    [{ type: 'dgram', id: '1x', local: { type: 'unix', path: '/tmp/npcl-l' } }, "Parameter 'id' expects an identifier"],
    [{ type: 'dgram', id: 'd' }, 'dgram requires local= parameter'],
  ];
  for (const [args, message] of bad) {
    test(`${JSON.stringify(args)} -> ${message}`, () => expectError(() => netdevFromQmp(args), message));
  }
  test('QMP errors carry no hint line (QEMU sends the first line only)', () => {
    try {
      netdevFromQmp({ type: 'hubport', id: '1x', hubid: 1 });
    } catch (e) {
      assert.ok(e instanceof NetplaneError);
      assert.equal(e.qmpClass, 'GenericError');
    }
  });
});

// ---- -device virtio-net-pci

describe('-device virtio-net-pci accepted', () => {
  test('the libvirt-style line of the seeds', () => {
    assert.deepEqual(
      parseDeviceArg('virtio-net-pci,netdev=hostnet0,id=net0,mac=52:54:00:6b:0d:a1,bus=pci.0,addr=0x3'),
      {
        driver: 'virtio-net-pci',
        id: 'net0',
        netdev: 'hostnet0',
        mac: '52:54:00:6b:0d:a1',
        bus: 'pci.0',
        addr: '0x3',
        features: {},
      },
    );
  });
  const cases: Array<[string, object]> = [
    ['virtio-net-pci,mac=AA-BB-cc:DD-ee-FF', { mac: 'aa:bb:cc:dd:ee:ff' }],
    ['virtio-net-pci,mac=zz,mac=52:54:00:12:34:56', { mac: '52:54:00:12:34:56' }], // the last value wins
    [
      'virtio-net-pci,mq=on,vectors=10,csum=off,guest_tso4=no,host_uso=y',
      { vectors: 10, features: { mq: true, csum: false, guest_tso4: false, host_uso: true } },
    ],
    ['virtio-net-pci,speed=-1,duplex=full,host_mtu=9000', { speed: -1, duplex: 'full', host_mtu: 9000 }],
    ['virtio-net-pci,speed=0x10,duplex=half', { speed: 16, duplex: 'half' }],
    ['virtio-net-pci,rx_queue_size=1024,tx_queue_size=256', { rx_queue_size: 1024, tx_queue_size: 256 }],
    ['virtio-net-pci,addr=1f.7', { addr: '1f.7' }],
    ['driver=virtio-net-pci,id=n1', { id: 'n1' }],
    [
      '{"driver":"virtio-net-pci","id":"n2","mq":true,"speed":100,"addr":255}',
      { id: 'n2', speed: 100, addr: '1f.7', features: { mq: true } },
    ],
  ];
  for (const [text, partial] of cases) {
    test(text, () => {
      const expected = { driver: 'virtio-net-pci', features: {}, ...partial };
      assert.deepEqual(parseDeviceArg(text), expected);
    });
  }
});

const BAD_DEVICE: Array<[string, string, string?]> = [
  ['virtio-net-pci,bogus=1', "Property 'virtio-net-pci.bogus' not found"],
  ['virtio-net-pci,=1', "Property 'virtio-net-pci.' not found"],
  ['foo', "'foo' is not a valid device model name"],
  ['foo,id=x', "'foo' is not a valid device model name"],
  ['', "Parameter 'driver' is missing"],
  ['virtio-net-pci,mac=zz:00:00:00:00:00', "Property 'virtio-net-device.mac' doesn't take value 'zz:00:00:00:00:00'"],
  ['virtio-net-pci,mac=52:54:00:12:34:567', "Property 'virtio-net-device.mac' doesn't take value '52:54:00:12:34:567'"],
  ['virtio-net-pci,mac=52:54:00:12:34:56:', "Property 'virtio-net-device.mac' doesn't take value '52:54:00:12:34:56:'"],
  ['virtio-net-pci,mac=5:54:00:12:34:56', "Property 'virtio-net-device.mac' doesn't take value '5:54:00:12:34:56'"],
  ['virtio-net-pci,mac=52:54:00:12:34:56,mac=zz', "Property 'virtio-net-device.mac' doesn't take value 'zz'"],
  ['virtio-net-pci,speed=-2', "'speed' must be between 0 and INT_MAX"],
  ['virtio-net-pci,speed=abc', "Parameter 'speed' expects integer"],
  ['virtio-net-pci,speed=1k,duplex=x', "Parameter 'speed' expects integer"],
  ['virtio-net-pci,speed=,duplex=x', "Parameter 'speed' expects integer"],
  ['virtio-net-pci,speed=2147483648', "Parameter 'speed' expects int32_t"],
  ['virtio-net-pci,duplex=quarter', "'duplex' must be 'half' or 'full'"],
  ['virtio-net-pci,duplex=x,speed=-2', "'duplex' must be 'half' or 'full'"],
  ['virtio-net-pci,rx_queue_size=100,speed=-2', "'speed' must be between 0 and INT_MAX"],
  ['virtio-net-pci,rx_queue_size=100', 'Invalid rx_queue_size (= 100), must be a power of 2 between 256 and 1024.'],
  ['virtio-net-pci,rx_queue_size=0', 'Invalid rx_queue_size (= 0), must be a power of 2 between 256 and 1024.'],
  ['virtio-net-pci,tx_queue_size=2048', 'Invalid tx_queue_size (= 2048), must be a power of 2 between 256 and 1024'],
  [
    'virtio-net-pci,tx_queue_size=100,rx_queue_size=100',
    'Invalid rx_queue_size (= 100), must be a power of 2 between 256 and 1024.',
  ],
  ['virtio-net-pci,rx_queue_size=abc', "Parameter 'rx_queue_size' expects integer"],
  ['virtio-net-pci,host_mtu=70000', "Parameter 'host_mtu' expects uint16_t"],
  ['virtio-net-pci,host_mtu=-1', "Parameter 'host_mtu' expects uint16_t"],
  ['virtio-net-pci,host_mtu=abc', "Parameter 'host_mtu' expects integer"],
  ['virtio-net-pci,mq=maybe', "Parameter 'mq' expects 'on' or 'off'"],
  ['virtio-net-pci,mq=ON,speed=-2', "Parameter 'mq' expects 'on' or 'off'"],
  ['virtio-net-pci,csum=maybe', "Parameter 'csum' expects 'on' or 'off'"],
  ['virtio-net-pci,vectors=abc', "Parameter 'vectors' expects integer"],
  ['virtio-net-pci,vectors=-1', "Parameter 'vectors' expects uint32_t"],
  ['virtio-net-pci,id=1x', "Parameter 'id' expects an identifier", IDENTIFIER_HINT],
  ['virtio-net-pci,id=', "Parameter 'id' expects an identifier", IDENTIFIER_HINT],
  ['virtio-net-pci,addr=zz', "Property 'virtio-net-pci.addr' doesn't take value 'zz'"],
  ['virtio-net-pci,addr=20', "Property 'virtio-net-pci.addr' doesn't take value '20'"],
  ['virtio-net-pci,addr=3.8', "Property 'virtio-net-pci.addr' doesn't take value '3.8'"],
  ['virtio-net-pci,addr=0x20', "Property 'virtio-net-pci.addr' doesn't take value '0x20'"],
  ['{"driver":"virtio-net-pci","mq":"on"}', "Invalid parameter type for 'mq', expected: boolean"],
  ['{"driver":"virtio-net-pci","mq":1}', "Invalid parameter type for 'mq', expected: boolean"],
  ['{"driver":"virtio-net-pci","speed":"1"}', "Invalid parameter type for 'speed', expected: integer"],
  ['{"driver":"virtio-net-pci","speed":1.5}', "Invalid parameter type for 'speed', expected: integer"],
  ['{"driver":"virtio-net-pci","speed":-2}', "'speed' must be between 0 and INT_MAX"],
  ['{"driver":"virtio-net-pci","bogus":1}', "Property 'virtio-net-pci.bogus' not found"],
  ['{"driver":"virtio-net-pci","mac":"zz"}', "Property 'virtio-net-device.mac' doesn't take value 'zz'"],
  ['{"driver":"virtio-net-pci","mac":5}', "Invalid parameter type for 'mac', expected: string"],
  ['{"driver":"virtio-net-pci","duplex":5}', "Invalid parameter type for 'duplex', expected: string"],
  ['{"driver":"virtio-net-pci","netdev":5}', "Invalid parameter type for 'netdev', expected: string"],
  ['{"driver":"virtio-net-pci","host_mtu":70000}', "Parameter 'host_mtu' expects uint16_t"],
  ['{"driver":"virtio-net-pci","vectors":-1}', "Parameter 'vectors' expects uint32_t"],
  ['{"driver":"virtio-net-pci","vectors":"1"}', "Parameter 'vectors' expects uint64"],
  ['{"driver":"virtio-net-pci","rx_queue_size":"x"}', "Parameter 'rx_queue_size' expects uint64"],
  ['{"driver":"virtio-net-pci","addr":"0x20"}', "Property 'virtio-net-pci.addr' doesn't take value '0x20'"],
  ['{"driver":"virtio-net-pci","addr":256}', "Parameter 'addr' expects a value between -1 and 255"],
  ['{"driver":"virtio-net-pci","addr":true}', "Invalid parameter type for 'addr', expected int or str"],
  ['{"driver":"foo"}', "'foo' is not a valid device model name"],
  ['{}', "Parameter 'driver' is missing"],
];

const BAD_DEVICE_NETPLANE: Array<[string, string, string]> = [
  ['other NIC models', 'e1000,netdev=n', "Device model 'e1000' is not supported by netplane (only virtio-net-pci)"],
  [
    'QEMU property netplane does not model',
    'virtio-net-pci,bootindex=1',
    "Property 'virtio-net-pci.bootindex' is not supported by netplane",
  ],
  ['QEMU 7.2 takes any JSON id', '{"driver":"virtio-net-pci","id":"1x"}', "Parameter 'id' expects an identifier"],
  [
    'QEMU 7.2 ignores a numeric JSON id',
    '{"driver":"virtio-net-pci","id":5}',
    "Invalid parameter type for 'id', expected: string",
  ],
  [
    'QEMU 7.2 ignores a numeric JSON bus',
    '{"driver":"virtio-net-pci","bus":5}',
    "Invalid parameter type for 'bus', expected: string",
  ],
];

describe('-device rejected', () => {
  for (const [text, message, hint] of BAD_DEVICE) {
    test(`${text || '(empty)'} -> ${message}`, () => expectError(() => parseDeviceArg(text), message, hint));
  }
  for (const [why, text, message] of BAD_DEVICE_NETPLANE) {
    test(`netplane (${why}): ${text}`, () => expectError(() => parseDeviceArg(text), message));
  }
});

// ---- -object iothread

describe('-object iothread', () => {
  test('accepted with poll parameters (key=value and JSON)', () => {
    assert.deepEqual(parseObjectArg('iothread,id=io0,poll-max-ns=32768,poll-grow=2,poll-shrink=0x4'), {
      qomType: 'iothread',
      id: 'io0',
      'poll-max-ns': 32768,
      'poll-grow': 2,
      'poll-shrink': 4,
    });
    assert.deepEqual(parseObjectArg('{"qom-type":"iothread","id":"io1","poll-max-ns":0}'), {
      qomType: 'iothread',
      id: 'io1',
      'poll-max-ns': 0,
    });
  });
  const bad: Array<[string, string, string?]> = [
    ['iothread', "Parameter 'id' is missing"],
    ['iothread,bogus=1', "Parameter 'id' is missing"],
    ['iothread,id=1x', "Parameter 'id' expects an identifier", IDENTIFIER_HINT],
    ['iothread,id=io0,poll-max-ns=-1', 'poll-max-ns value must be in range [0, 9223372036854775807]'],
    ['iothread,id=io0,poll-grow=-5', 'poll-grow value must be in range [0, 9223372036854775807]'],
    ['iothread,id=io0,poll-max-ns=5,poll-max-ns=-1', 'poll-max-ns value must be in range [0, 9223372036854775807]'],
    ['iothread,id=io0,poll-max-ns=-1,poll-grow=x', "Parameter 'poll-grow' expects an int64 value"],
    ['iothread,id=io0,poll-max-ns=-1,bogus=1', "Invalid parameter 'bogus'"],
    ['iothread,id=io0,poll-shrink=abc', "Parameter 'poll-shrink' expects an int64 value"],
    ['iothread,id=io0,poll-max-ns=1k', "Parameter 'poll-max-ns' expects an int64 value"],
    ['iothread,id=io0,poll-max-ns=1.5', "Parameter 'poll-max-ns' expects an int64 value"],
    ['iothread,id=io0,poll-max-ns=9223372036854775808', "Parameter 'poll-max-ns' expects an int64 value"],
    ['iothread,id=io0,bogus=1', "Invalid parameter 'bogus'"],
    ['bogus,id=x', "Parameter 'qom-type' does not accept value 'bogus'"],
    ['id=x', "Parameter 'qom-type' is missing"],
    [
      '{"qom-type":"iothread","id":"io0","poll-max-ns":-1}',
      'poll-max-ns value must be in range [0, 9223372036854775807]',
    ],
    [
      '{"qom-type":"iothread","id":"io0","poll-max-ns":"1"}',
      "Invalid parameter type for 'poll-max-ns', expected: integer",
    ],
    ['{"qom-type":"iothread","id":"1x","bogus":1}', "Parameter 'bogus' is unexpected"],
    ['{"qom-type":"iothread","id":"1x"}', "Parameter 'id' expects an identifier", IDENTIFIER_HINT],
    ['{"qom-type":"iothread"}', "Parameter 'id' is missing"],
    [
      'memory-backend-ram,id=m',
      "Object type 'memory-backend-ram' is not supported by netplane (only iothread and filter-dump)",
    ],
    ['iothread,id=io0,aio-max-batch=4', "Property 'iothread.aio-max-batch' is not supported by netplane"],
  ];
  for (const [text, message, hint] of bad) {
    test(`${text} -> ${message}`, () => expectError(() => parseObjectArg(text), message, hint));
  }
});

// ---- -link and -qmp

describe('-link', () => {
  test('two ids', () => assert.deepEqual(parseLinkArg('hn0,hn1'), ['hn0', 'hn1']));
  const bad: Array<[string, string]> = [
    ['hn0', "-link expects two netdev ids separated by a comma (-link hn0,hn1), got 'hn0'"],
    ['a,b,c', "-link expects two netdev ids separated by a comma (-link hn0,hn1), got 'a,b,c'"],
    ['a,', "-link expects two netdev ids separated by a comma (-link hn0,hn1), got 'a,'"],
    ['a,1b', "-link: '1b' is not a valid netdev id"],
    ['a,a', "-link: cannot link netdev 'a' to itself"],
  ];
  for (const [text, message] of bad)
    test(`-link ${text} -> ${message}`, () => expectError(() => parseLinkArg(text), message));
});

describe('-qmp', () => {
  const good: Array<[string, object]> = [
    ['unix:/run/np.sock,server=on,wait=off', { path: '/run/np.sock', server: true, wait: false }],
    ['unix:/run/np.sock,server,nowait', { path: '/run/np.sock', server: true, wait: false }],
    ['unix:/run/np.sock', { path: '/run/np.sock', server: false, wait: true }],
    ['unix:/tmp/a,,b,server=yes', { path: '/tmp/a,b', server: true, wait: true }],
    ['unix:path=/tmp/q.sock,server=on', { path: '/tmp/q.sock', server: true, wait: true }],
  ];
  for (const [text, expected] of good) test(`-qmp ${text}`, () => assert.deepEqual(parseQmpArg(text), expected));
  const bad: Array<[string, string]> = [
    ['unix:/tmp/npq.sock,server=maybe', "Parameter 'server' expects 'on' or 'off'"],
    ['unix:/tmp/npq.sock,wait=maybe', "Parameter 'wait' expects 'on' or 'off'"],
    ['unix:/tmp/npq.sock,bogus=1', "Invalid parameter 'bogus'"],
    ['unix:/tmp/npq.sock,server,nowait,bogus=1', "Invalid parameter 'bogus'"],
    ['foo:bar', "'foo:bar' is not a valid char driver"],
    ['/tmp/x', "'/tmp/x' is not a valid char driver"],
    [
      'tcp:127.0.0.1:4444,server=on,wait=off',
      '-qmp tcp: is not supported by netplane; only unix sockets are (e.g. -qmp unix:/run/np.sock,server=on,wait=off)',
    ],
    [
      'stdio',
      '-qmp stdio: is not supported by netplane; only unix sockets are (e.g. -qmp unix:/run/np.sock,server=on,wait=off)',
    ],
    ['unix:', '-qmp unix: needs a socket path (-qmp unix:PATH,server=on,wait=off)'],
    ['unix:/tmp/q.sock,abstract=on', "-qmp unix: parameter 'abstract' is not supported by netplane"],
  ];
  for (const [text, message] of bad)
    test(`-qmp ${text} -> ${message}`, () => expectError(() => parseQmpArg(text), message));
});

// ---- the JSON dialect

describe('QEMU JSON dialect', () => {
  test('integers stay exact, doubles are marked, single quotes work', () => {
    const v = parseQemuJson(
      '{\'a\': 18446744073709551615, "b": 1.0, "c": -9007199254740993, "d": [true, null]}',
    ) as Record<string, unknown>;
    assert.equal(v.a, 18446744073709551615n);
    assert.ok(v.b instanceof JsonFloat && v.b.value === 1);
    assert.equal(v.c, -9007199254740993n);
    assert.deepEqual(v.d, [true, null]);
  });
  test('a "__proto__" key is an ordinary member', () => {
    const v = parseQemuJson('{"__proto__": {"x": 1}}') as Record<string, unknown>;
    assert.deepEqual(Object.keys(v), ['__proto__']);
    assert.equal(Object.getPrototypeOf(v), Object.prototype);
  });
  test('deep nesting is an error, not a stack overflow', () => {
    expectError(() => parseQemuJson('['.repeat(100000)), 'JSON parse error, too many nested data structures');
  });
});

// ---- differential: the same bad command lines through QEMU 7.2

const QEMU = 'qemu-system-x86_64';
const qemuVersion = spawnSync(QEMU, ['-version'], { encoding: 'utf8', timeout: 10_000 });
const haveQemu = qemuVersion.status === 0 && /version 7\.2\./.test(qemuVersion.stdout);
const qemuSkip =
  haveQemu || process.env.CI === 'true'
    ? undefined
    : `${QEMU} 7.2 is not installed (Debian package qemu-system-x86: bash scripts/install-test-deps.sh)`;
// A private network namespace when we may make one: even a line that unexpectedly succeeds
// then cannot leave anything behind in the host's network.
const unshare = spawnSync('unshare', ['-n', 'true'], { timeout: 10_000 }).status === 0 ? ['unshare', '-n', '--'] : [];

/** Runs QEMU (in its own network namespace when possible) and returns its stderr. */
function runQemu(machine: string, options: string[]): string {
  const argv = [
    ...unshare,
    QEMU,
    '-M',
    machine,
    '-nodefaults',
    '-display',
    'none',
    '-S',
    '-monitor',
    'none',
    ...options,
  ];
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 15_000, killSignal: 'SIGKILL' });
  assert.notEqual(r.signal, 'SIGKILL', `QEMU did not exit by itself for ${options.join(' ')}`);
  return r.stderr;
}

/** QEMU's first error for `option arg`: the text after its location prefix (or after the
 *  program name when QEMU printed no location), plus the hint line if one follows. */
function qemuError(option: string, arg: string, machine = 'none'): { message: string; hint?: string } {
  const stderr = runQemu(machine, [option, arg]);
  const lines = stderr.split('\n');
  const prefix = `${QEMU}: `;
  const located = `${prefix}${option} ${arg}: `;
  const index = lines.findIndex((l) => l.startsWith(prefix) && !l.includes(': warning: '));
  assert.ok(index >= 0, `QEMU printed no error for ${option} ${arg}:\n${stderr}`);
  const line = lines[index]!;
  const message = line.startsWith(located) ? line.slice(located.length) : line.slice(prefix.length);
  const next = lines[index + 1];
  const hint = next !== undefined && next !== '' && !next.startsWith(prefix) ? next : undefined;
  return hint === undefined ? { message } : { message, hint };
}

/** True when QEMU accepted `option arg` and stopped only at a second option known to fail. */
function qemuAccepts(
  option: string,
  arg: string,
  machine: string,
  failing: [string, string],
  failure: string,
): boolean {
  const stderr = runQemu(machine, [option, arg, ...failing]);
  const errors = stderr.split('\n').filter((l) => l.startsWith(`${QEMU}: `) && !l.includes(': warning: '));
  return errors.length === 1 && errors[0] === `${QEMU}: ${failing[0]} ${failing[1]}: ${failure}`;
}

function ourError(fn: () => unknown): { message: string; hint?: string } {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof OptionError, `not an OptionError: ${String(e)}`);
    return e.hint === undefined ? { message: e.message } : { message: e.message, hint: e.hint };
  }
  assert.fail('netplane accepted the line');
}

describe('differential against qemu-system-x86_64 7.2', { skip: qemuSkip, timeout: 600_000 }, () => {
  if (process.env.CI === 'true' && !haveQemu) {
    test('QEMU 7.2 must be installed under CI', () =>
      assert.fail(`${QEMU} 7.2 missing: ${qemuVersion.error ?? qemuVersion.stdout}`));
    return;
  }
  // Every line below fails in QEMU before any TAP is opened (parse or option checks).
  const netdevLines = BAD_NETDEV.map(([text]) => text).filter((t) => !t.includes('vhost=off')); // 7.2 opens the TAP first there
  for (const text of netdevLines) {
    test(`-netdev ${text}`, { timeout: 20_000 }, () => {
      const ours = ourError(() => parseNetdevArg(text));
      const theirs = qemuError('-netdev', text);
      assert.equal(ours.message, theirs.message);
      assert.equal(ours.hint, theirs.hint);
    });
  }
  const deviceLines = BAD_DEVICE.map(([text]) => text);
  for (const text of deviceLines) {
    test(`-device ${text}`, { timeout: 20_000 }, () => {
      const ours = ourError(() => parseDeviceArg(text));
      // -M pc: with -M none there is no PCI bus and QEMU would stop before the properties.
      const theirs = qemuError('-device', text, 'pc');
      assert.equal(ours.message, theirs.message);
      assert.equal(ours.hint, theirs.hint);
    });
  }
  const objectLines = [
    'iothread',
    'iothread,id=1x',
    'iothread,id=io0,poll-max-ns=-1',
    'iothread,id=io0,poll-shrink=abc',
    'iothread,id=io0,bogus=1',
    'bogus,id=x',
    'id=x',
    '{"qom-type":"iothread","id":"io0","poll-max-ns":"1"}',
    '{"qom-type":"iothread","id":"1x"}',
    'iothread,id=io0,poll-max-ns=-1,poll-grow=x',
  ];
  for (const text of objectLines) {
    test(`-object ${text}`, { timeout: 20_000 }, () => {
      const ours = ourError(() => parseObjectArg(text));
      const theirs = qemuError('-object', text);
      assert.equal(ours.message, theirs.message);
      assert.equal(ours.hint, theirs.hint);
    });
  }
  const qmpLines = ['unix:/tmp/npq-diff.sock,server=maybe', 'unix:/tmp/npq-diff.sock,bogus=1', 'foo:bar'];
  for (const text of qmpLines) {
    test(`-qmp ${text}`, { timeout: 20_000 }, () => {
      const ours = ourError(() => parseQmpArg(text));
      assert.equal(ours.message, qemuError('-qmp', text).message);
    });
  }

  // Accepted lines: QEMU takes the first option, then stops at a second, bad one.
  const acceptedNetdev = ['hubport,id=h0,hubid=010', 'hubport,id=h0,hubid= +1', 'hubport,id=h0,hubid=-0'];
  for (const text of acceptedNetdev) {
    test(`both accept -netdev ${text}`, { timeout: 20_000 }, () => {
      parseNetdevArg(text);
      assert.ok(
        qemuAccepts(
          '-netdev',
          text,
          'none',
          ['-netdev', 'npbogus,id=z'],
          "Parameter 'type' does not accept value 'npbogus'",
        ),
      );
    });
  }
  const acceptedDevice = [
    'virtio-net-pci,mac=52:54-00:12:34:56,addr=03.1,speed=010,mq=y,csum=false',
    'virtio-net-pci,mac=zz,mac=52:54:00:12:34:56,rx_queue_size=512,tx_queue_size=1024,duplex=full,host_mtu=0',
  ];
  for (const text of acceptedDevice) {
    test(`both accept -device ${text}`, { timeout: 20_000 }, () => {
      parseDeviceArg(text);
      assert.ok(
        qemuAccepts('-device', text, 'pc', ['-device', 'npbogus'], "'npbogus' is not a valid device model name"),
      );
    });
  }

  // Seeded random spellings of numbers, sizes and booleans: QEMU's verdict and ours agree.
  // Each line ends in bogus=1 (or a bad second option) so QEMU always stops by itself.
  test('seeded random value spellings: QEMU and netplane give the same verdict', { timeout: 120_000 }, () => {
    const chars = [
      '0',
      '1',
      '7',
      '8',
      '9',
      'x',
      'X',
      'a',
      'f',
      'k',
      'K',
      'M',
      'E',
      'b',
      '.',
      '-',
      '+',
      ' ',
      'e',
      'n',
      'o',
      'y',
    ];
    const numberLike = fc
      .tuple(
        fc.constantFrom('', ' ', '+', '-'),
        fc.constantFrom('', '0', '0x', '0X'),
        fc.stringMatching(/^[0-9a-fA-F]{0,4}$/),
        fc.constantFrom('', '.', '.5', '.25'),
        fc.constantFrom('', 'k', 'M', 'b', 'E', 'x', ' '),
      )
      .map((parts) => parts.join(''));
    const words = fc.constantFrom(
      'on',
      'off',
      'yes',
      'no',
      'true',
      'false',
      'y',
      'n',
      'ON',
      'Yes',
      '1',
      '',
      '-1',
      '2147483648',
      '4294967296',
    );
    const randomChars = fc.array(fc.constantFrom(...chars), { maxLength: 6 }).map((a) => a.join(''));
    const spellings = fc.sample(
      fc.oneof(
        { arbitrary: numberLike, weight: 3 },
        { arbitrary: words, weight: 1 },
        { arbitrary: randomChars, weight: 1 },
      ),
      { seed: 7202, numRuns: 72 },
    );
    const shapes: Array<
      (v: string) => {
        option: string;
        arg: string;
        machine: string;
        after: [string, string];
        afterError: string;
        ours: () => unknown;
      }
    > = [
      (v) => ({
        option: '-netdev',
        arg: `tap,id=x,sndbuf=${v},bogus=1`,
        machine: 'none',
        after: ['-netdev', 'npbogus,id=z'],
        afterError: "Parameter 'type' does not accept value 'npbogus'",
        ours: () => parseNetdevArg(`tap,id=x,sndbuf=${v},bogus=1`),
      }),
      (v) => ({
        option: '-netdev',
        arg: `tap,id=x,queues=${v},bogus=1`,
        machine: 'none',
        after: ['-netdev', 'npbogus,id=z'],
        afterError: "Parameter 'type' does not accept value 'npbogus'",
        ours: () => parseNetdevArg(`tap,id=x,queues=${v},bogus=1`),
      }),
      (v) => ({
        option: '-netdev',
        arg: `hubport,id=h,hubid=${v}`,
        machine: 'none',
        after: ['-netdev', 'npbogus,id=z'],
        afterError: "Parameter 'type' does not accept value 'npbogus'",
        ours: () => parseNetdevArg(`hubport,id=h,hubid=${v}`),
      }),
      (v) => ({
        option: '-netdev',
        arg: `tap,id=x,vnet_hdr=${v},bogus=1`,
        machine: 'none',
        after: ['-netdev', 'npbogus,id=z'],
        afterError: "Parameter 'type' does not accept value 'npbogus'",
        ours: () => parseNetdevArg(`tap,id=x,vnet_hdr=${v},bogus=1`),
      }),
      (v) => ({
        option: '-device',
        arg: `virtio-net-pci,speed=${v}`,
        machine: 'pc',
        after: ['-device', 'npbogus'],
        afterError: "'npbogus' is not a valid device model name",
        ours: () => parseDeviceArg(`virtio-net-pci,speed=${v}`),
      }),
      (v) => ({
        option: '-object',
        arg: `iothread,id=io0,poll-grow=${v}`,
        machine: 'none',
        after: ['-netdev', 'npbogus,id=z'],
        afterError: "Parameter 'type' does not accept value 'npbogus'",
        ours: () => parseObjectArg(`iothread,id=io0,poll-grow=${v}`),
      }),
    ];
    const mismatches: string[] = [];
    spellings.forEach((v, i) => {
      const c = shapes[i % shapes.length]!(v);
      const stderr = runQemu(c.machine, [c.option, c.arg, ...c.after]);
      const errors = stderr.split('\n').filter((l) => l.startsWith(`${QEMU}: `) && !l.includes(': warning: '));
      const qemuAccepted = errors[0] === `${QEMU}: ${c.after[0]} ${c.after[1]}: ${c.afterError}`;
      const theirs = qemuAccepted
        ? 'accepted'
        : (errors[0] ?? '').replace(`${QEMU}: ${c.option} ${c.arg}: `, '').replace(`${QEMU}: `, '');
      let ours = 'accepted';
      try {
        c.ours();
      } catch (e) {
        ours = (e as Error).message;
      }
      if (ours !== theirs) mismatches.push(`${c.option} ${c.arg}: QEMU "${theirs}", netplane "${ours}"`);
    });
    assert.deepEqual(mismatches, []);
  });

  // Where we differ on purpose, check QEMU really does what the comment says.
  test('netplane differs: queues=0 aborts QEMU 7.2; we report a range error', { timeout: 20_000 }, () => {
    assert.match(runQemu('none', ['-netdev', 'tap,id=x,queues=0']), /Assertion `nc' failed/);
    expectError(() => parseNetdevArg('tap,id=x,queues=0'), "Parameter 'queues' expects a value between 1 and 1024");
  });
  test('netplane differs: QEMU 7.2 takes a non-identifier JSON -netdev id; we do not', { timeout: 20_000 }, () => {
    const text = '{"type":"hubport","id":"1x","hubid":1}';
    assert.ok(
      qemuAccepts(
        '-netdev',
        text,
        'none',
        ['-netdev', 'npbogus,id=z'],
        "Parameter 'type' does not accept value 'npbogus'",
      ),
    );
    expectError(() => parseNetdevArg(text), "Parameter 'id' expects an identifier");
  });
  test('user: QEMU and netplane check its keys alike', { timeout: 20_000 }, () => {
    assert.equal(qemuError('-netdev', 'user,id=x,bogus=1').message, "Invalid parameter 'bogus'");
    expectError(() => parseNetdevArg('user,id=x,bogus=1'), "Invalid parameter 'bogus'");
    expectError(() => parseNetdevArg('{"type":"user","id":"x","bogus":1}'), "Parameter 'bogus' is unexpected");
  });
});

// netplane's own member (QEMU has no io-uring= on a tap): checked like any bool.
test('tap io-uring= takes on/off only', () => {
  assert.throws(() => parseNetdevArg('tap,id=x,io-uring=maybe'), {
    code: 'NETPLANE_INVALID_OPTION',
    message: "Parameter 'io-uring' expects 'on' or 'off'",
  });
});
