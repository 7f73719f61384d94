// Property-based fuzzing of the option parser (fast-check):
// - whatever the input, the parsers return or throw a NetplaneError, nothing else;
// - valid options written as key=value text (in QEMU's many spellings: hex/octal numbers,
//   size suffixes, yes/no booleans, implied keys, overridden duplicates) and as JSON parse
//   back to the same options;
// - ",," escaping round-trips arbitrary strings;
// - the QEMU JSON reader agrees with JSON.parse on standard JSON.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { NetplaneError } from '../lib/errors';
import {
  JsonFloat,
  VIRTIO_NET_FEATURES,
  deviceFromJson,
  formatKeyval,
  netdevFromQmp,
  objectFromJson,
  parseDeviceArg,
  parseKeyval,
  parseLinkArg,
  parseNetdevArg,
  parseObjectArg,
  parseQemuJson,
  parseQmpArg,
  type HubportNetdevOptions,
  type IothreadObjectOptions,
  type TapNetdevOptions,
  type VirtioNetDeviceOptions,
} from '../lib/options';

const RUNS = { numRuns: 500 };

/** Calls `fn`; anything thrown must be a NetplaneError of the option parser. */
function onlyNetplaneErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof NetplaneError) || e.code !== 'NETPLANE_INVALID_OPTION') {
      throw new Error(`unexpected throw: ${e instanceof Error ? e.stack : String(e)}`);
    }
  }
}

const TEXT_PARSERS: Array<(text: string) => unknown> = [
  parseNetdevArg,
  parseDeviceArg,
  parseObjectArg,
  parseQmpArg,
  parseLinkArg,
  parseQemuJson,
  (text) => parseKeyval(text, 'type'),
];

// Characters that matter to the grammar, mixed into otherwise arbitrary text.
const gritty = fc.oneof(
  { arbitrary: fc.constantFrom(',', ',', '=', ' ', ':', '{', "'", '"', '\\'), weight: 1 },
  { arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }), weight: 2 },
);
const grittyText = (maxLength: number): fc.Arbitrary<string> => fc.string({ unit: gritty, maxLength });

// Fragments of the grammar, so random texts reach deep into every parser.
const FRAGMENTS = [
  'tap',
  'hubport',
  'user',
  'virtio-net-pci',
  'iothread',
  'unix:',
  'tcp:',
  'id=',
  'x',
  'np0',
  ',',
  ',,',
  '=',
  'type=',
  'queues=',
  'sndbuf=',
  'vnet_hdr=',
  'fd=',
  'fds=',
  'vhostfds=',
  'vhost=',
  'helper=',
  'br=',
  'hubid=',
  'netdev=',
  'mac=',
  'addr=',
  'speed=',
  'duplex=',
  'rx_queue_size=',
  'mq',
  'no',
  'poll-max-ns=',
  'server',
  'wait=',
  '0',
  '1',
  '-1',
  '256',
  '0x1f',
  '010',
  '1.5k',
  '16E',
  '18446744073709551616',
  'k',
  'M',
  '.',
  ':',
  '-',
  ' ',
  'on',
  'off',
  'yes',
  'maybe',
  '52:54:00:12:34:56',
  '{',
  '}',
  '[',
  ']',
  '"',
  "'",
  '\\',
  '\\u0000',
  'true',
  'null',
  '1e3',
  '\u0000',
  '\u00e9',
  '\ud83d\ude00',
];
const grammarText = fc.array(fc.constantFrom(...FRAGMENTS), { maxLength: 24 }).map((parts) => parts.join(''));

test('text parsers throw nothing but NetplaneError on arbitrary and grammar-shaped input', () => {
  fc.assert(
    fc.property(fc.oneof(grittyText(80), grammarText), (text) => {
      for (const parse of TEXT_PARSERS) onlyNetplaneErrors(() => parse(text));
      onlyNetplaneErrors(() => parseNetdevArg(`{${text}`));
    }),
    { numRuns: 3000 },
  );
});

test('QMP/JSON argument readers throw nothing but NetplaneError on arbitrary JSON values', () => {
  const keys = fc.constantFrom(
    'type',
    'id',
    'driver',
    'qom-type',
    'queues',
    'sndbuf',
    'fds',
    'vhostfds',
    'fd',
    'vhost',
    'hubid',
    'mac',
    'addr',
    'speed',
    'poll-max-ns',
    'vnet_hdr',
    'ifname',
    'script',
    'bogus',
    '__proto__',
    'constructor',
  );
  const value = fc.oneof(
    fc.constantFrom('tap', 'hubport', 'user', 'virtio-net-pci', 'iothread', 'x', '1x', '3:4', '52:54:00:00:00:01'),
    fc.anything(),
    fc.bigInt(),
    fc.double(),
    fc.integer(),
    fc.constant(new JsonFloat(1)),
  );
  fc.assert(
    fc.property(fc.dictionary(keys, value, { maxKeys: 8 }), (args) => {
      onlyNetplaneErrors(() => netdevFromQmp(args));
      onlyNetplaneErrors(() => deviceFromJson(args));
      onlyNetplaneErrors(() => objectFromJson(args));
    }),
    RUNS,
  );
  // An untyped caller (a QMP layer) may hand over anything at all.
  fc.assert(
    fc.property(fc.anything(), (value) => {
      onlyNetplaneErrors(() => netdevFromQmp(value as Record<string, unknown>));
      onlyNetplaneErrors(() => deviceFromJson(value as Record<string, unknown>));
    }),
    RUNS,
  );
});

// ---- generators of valid options and of their many spellings

const identifier = fc.stringMatching(/^[A-Za-z][A-Za-z0-9._-]{0,11}$/);
const ifname = fc.stringMatching(/^[A-Za-z0-9_.,=%-]{1,15}$/).filter((n) => n !== '.' && n !== '..');
const anyText = grittyText(24).filter((s) => !s.includes('\0'));
const u32 = fc.integer({ min: 0, max: 0xffffffff });

/** A QEMU spelling of an unsigned integer (strtoull base 0): decimal, hex, octal, '+'/blanks. */
function spellUint(n: number): fc.Arbitrary<string> {
  return fc.constantFrom(
    String(n),
    `0x${n.toString(16)}`,
    `0X${n.toString(16).toUpperCase()}`,
    n === 0 ? '0' : `0${n.toString(8)}`,
    `+${n}`,
    ` ${n}`,
  );
}

function spellInt(n: number): fc.Arbitrary<string> {
  const sign = n < 0 ? '-' : '';
  const m = Math.abs(n);
  return fc.constantFrom(
    String(n),
    `${sign}0x${m.toString(16)}`,
    `${sign}${m === 0 ? '0' : '0' + m.toString(8)}`,
    ` ${n}`,
  );
}

function spellBool(b: boolean): fc.Arbitrary<string> {
  return b ? fc.constantFrom('on', 'yes', 'true', 'y') : fc.constantFrom('off', 'no', 'false', 'n');
}

function spellSize(n: number): fc.Arbitrary<string> {
  const spellings = [String(n), `0x${n.toString(16)}`, `${n}b`, `${n}B`];
  const units: Array<[string, number]> = [
    ['k', 2 ** 10],
    ['M', 2 ** 20],
    ['G', 2 ** 30],
    ['T', 2 ** 40],
  ];
  for (const [suffix, mul] of units)
    if (n !== 0 && n % mul === 0) spellings.push(`${n / mul}${suffix}`, `${n / mul}${suffix.toLowerCase()}`);
  if (n % 512 === 0 && n % 1024 !== 0) spellings.push(`${(n - 512) / 1024}.5k`);
  return fc.constantFrom(...spellings);
}

type Pair = [string, fc.Arbitrary<string>];

/** key=value text for `pairs` (random order), each value in one of its spellings; some keys
 *  first get a junk value that the later, real one overrides (QemuOpts: the last one wins). */
function keyvalText(implied: [string, string], id: string | undefined, pairs: Pair[]): fc.Arbitrary<string> {
  const groups = fc.tuple(
    ...pairs.map(([key, value]) =>
      fc.tuple(value, fc.boolean()).map(([spelled, junkFirst]) => {
        const group: Array<[string, string]> = junkFirst ? [[key, 'junk,,=']] : [];
        group.push([key, spelled]);
        return group;
      }),
    ),
  );
  const order = fc.shuffledSubarray([...pairs.keys()], { minLength: pairs.length, maxLength: pairs.length });
  return fc.tuple(groups, order, fc.boolean()).map(([spelledGroups, permutation, impliedBare]) => {
    const list = permutation.flatMap((i) => spelledGroups[i]!);
    const withId: Array<[string, string]> = id === undefined ? list : [['id', id], ...list];
    return impliedBare
      ? formatKeyval(withId, { key: implied[0], value: implied[1] })
      : formatKeyval([[implied[0], implied[1]], ...withId]);
  });
}

const tapModel: fc.Arbitrary<TapNetdevOptions> = fc
  .tuple(
    identifier,
    fc.oneof(
      fc.record(
        {
          ifname,
          script: anyText,
          downscript: anyText,
          vnet_hdr: fc.boolean(),
          queues: fc.integer({ min: 1, max: 1024 }),
        },
        { requiredKeys: [] },
      ),
      fc.record({ fd: fc.oneof(fc.nat().map(String), identifier) }),
      fc.record({ fds: fc.array(fc.nat({ max: 99999 }).map(String), { minLength: 1, maxLength: 8 }) }),
    ),
    fc.record(
      { sndbuf: fc.nat({ max: 2 ** 45 }), vhost: fc.constant(false), 'poll-us': u32, iothread: identifier },
      { requiredKeys: [] },
    ),
  )
  .map(([id, mode, common]) => ({ type: 'tap' as const, id, ...mode, ...common }));

function tapPairs(o: TapNetdevOptions): Pair[] {
  const pairs: Pair[] = [];
  for (const key of ['ifname', 'script', 'downscript', 'fd', 'iothread'] as const)
    if (o[key] !== undefined) pairs.push([key, fc.constant(o[key]!)]);
  if (o.fds !== undefined) pairs.push(['fds', fc.constant(o.fds.join(':'))]);
  if (o.vnet_hdr !== undefined) pairs.push(['vnet_hdr', spellBool(o.vnet_hdr)]);
  if (o.vhost !== undefined) pairs.push(['vhost', spellBool(o.vhost)]);
  if (o.queues !== undefined) pairs.push(['queues', spellUint(o.queues)]);
  if (o['poll-us'] !== undefined) pairs.push(['poll-us', spellUint(o['poll-us'])]);
  if (o.sndbuf !== undefined) pairs.push(['sndbuf', spellSize(o.sndbuf)]);
  return pairs;
}

function tapJson(o: TapNetdevOptions): Record<string, unknown> {
  const { fds, vhostfds, ...rest } = o;
  return { ...rest, ...(fds ? { fds: fds.join(':') } : {}), ...(vhostfds ? { vhostfds: vhostfds.join(':') } : {}) };
}

test('tap netdevs round-trip through key=value text and JSON', () => {
  fc.assert(
    fc.property(
      tapModel.chain((o) => fc.tuple(fc.constant(o), keyvalText(['type', 'tap'], o.id, tapPairs(o)))),
      ([model, text]) => {
        assert.deepEqual(parseNetdevArg(text), model, text);
        assert.deepEqual(parseNetdevArg(JSON.stringify(tapJson(model))), model);
        assert.deepEqual(netdevFromQmp(JSON.parse(JSON.stringify(tapJson(model)))), model);
      },
    ),
    RUNS,
  );
});

const hubportModel: fc.Arbitrary<HubportNetdevOptions> = fc
  .record(
    { id: identifier, hubid: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), netdev: identifier },
    { requiredKeys: ['id', 'hubid'] },
  )
  .map((r) => ({ type: 'hubport' as const, ...r }));

test('hubport netdevs round-trip through key=value text and JSON', () => {
  fc.assert(
    fc.property(
      hubportModel.chain((o) => {
        const pairs: Pair[] = [['hubid', spellInt(o.hubid)]];
        if (o.netdev !== undefined) pairs.push(['netdev', fc.constant(o.netdev)]);
        return fc.tuple(fc.constant(o), keyvalText(['type', 'hubport'], o.id, pairs));
      }),
      ([model, text]) => {
        assert.deepEqual(parseNetdevArg(text), model, text);
        assert.deepEqual(parseNetdevArg(JSON.stringify(model)), model);
      },
    ),
    RUNS,
  );
});

const macBytes = fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 6, maxLength: 6 });
const queueSize = fc.constantFrom(256, 512, 1024);

const deviceModel = fc
  .tuple(
    fc.record(
      {
        id: identifier,
        netdev: identifier,
        vectors: u32,
        host_mtu: fc.integer({ min: 0, max: 0xffff }),
        speed: fc.integer({ min: -1, max: 2 ** 31 - 1 }),
        duplex: fc.constantFrom('half' as const, 'full' as const),
        rx_queue_size: queueSize,
        tx_queue_size: queueSize,
        bus: anyText,
        addr: fc
          .tuple(fc.integer({ min: 0, max: 31 }), fc.integer({ min: 0, max: 7 }))
          .map(([s, f]) => `${s.toString(16).padStart(2, '0')}.${f}`),
      },
      { requiredKeys: [] },
    ),
    fc.option(macBytes, { nil: undefined }),
    fc.dictionary(fc.constantFrom(...VIRTIO_NET_FEATURES), fc.boolean()),
  )
  .map(([props, mac, features]): [VirtioNetDeviceOptions, number[] | undefined] => {
    const model: VirtioNetDeviceOptions = { driver: 'virtio-net-pci', ...props, features: { ...features } };
    if (mac) model.mac = mac.map((b) => b.toString(16).padStart(2, '0')).join(':');
    return [model, mac];
  });

test('virtio-net-pci devices round-trip through key=value text and JSON', () => {
  fc.assert(
    fc.property(
      deviceModel.chain(([model, mac]) => {
        const pairs: Pair[] = [];
        for (const key of ['netdev', 'duplex', 'bus', 'addr'] as const)
          if (model[key] !== undefined) pairs.push([key, fc.constant(model[key]!)]);
        for (const key of ['vectors', 'host_mtu', 'rx_queue_size', 'tx_queue_size'] as const)
          if (model[key] !== undefined) pairs.push([key, spellUint(model[key]!)]);
        if (model.speed !== undefined) pairs.push(['speed', spellInt(model.speed)]);
        for (const [name, on] of Object.entries(model.features)) pairs.push([name, spellBool(on)]);
        if (mac) {
          // Any mix of ':' and '-' separators and of letter case (QEMU's set_mac).
          pairs.push([
            'mac',
            fc
              .tuple(fc.array(fc.constantFrom(':', '-'), { minLength: 5, maxLength: 5 }), fc.boolean())
              .map(([seps, upper]) => {
                const text = mac.map((b, i) => b.toString(16).padStart(2, '0') + (seps[i] ?? '')).join('');
                return upper ? text.toUpperCase() : text;
              }),
          ]);
        }
        return fc.tuple(fc.constant(model), keyvalText(['driver', 'virtio-net-pci'], model.id, pairs));
      }),
      ([model, text]) => {
        assert.deepEqual(parseDeviceArg(text), model, text);
        const { features, ...rest } = model;
        assert.deepEqual(parseDeviceArg(JSON.stringify({ ...rest, ...features })), model);
      },
    ),
    RUNS,
  );
});

const iothreadModel: fc.Arbitrary<IothreadObjectOptions> = fc
  .record(
    {
      id: identifier,
      'poll-max-ns': fc.nat({ max: 2 ** 40 }),
      'poll-grow': fc.nat({ max: 1000 }),
      'poll-shrink': fc.nat({ max: 1000 }),
    },
    { requiredKeys: ['id'] },
  )
  .map((r) => ({ qomType: 'iothread' as const, ...r }));

test('iothread objects round-trip through key=value text and JSON', () => {
  fc.assert(
    fc.property(
      iothreadModel.chain((o) => {
        const pairs: Pair[] = [];
        for (const key of ['poll-max-ns', 'poll-grow', 'poll-shrink'] as const)
          if (o[key] !== undefined) pairs.push([key, spellInt(o[key]!)]);
        return fc.tuple(fc.constant(o), keyvalText(['qom-type', 'iothread'], o.id, pairs));
      }),
      ([model, text]) => {
        assert.deepEqual(parseObjectArg(text), model, text);
        const { qomType, ...rest } = model;
        assert.deepEqual(parseObjectArg(JSON.stringify({ 'qom-type': qomType, ...rest })), model);
      },
    ),
    RUNS,
  );
});

test('",," escaping round-trips arbitrary strings, as a value and as the implied first value', () => {
  fc.assert(
    fc.property(grittyText(60), grittyText(20), (value, other) => {
      const escaped = value.replaceAll(',', ',,');
      const otherEscaped = other.replaceAll(',', ',,');
      assert.deepEqual(parseKeyval(`k=${escaped},j=${otherEscaped}`).entries, [
        { key: 'k', value },
        { key: 'j', value: other },
      ]);
      // As an implied first value it must not look like "key=..." before its first comma.
      if (!/^[^,]*=/.test(value)) {
        assert.deepEqual(parseKeyval(`${escaped},j=${otherEscaped}`, 'type').entries, [
          { key: 'type', value },
          { key: 'j', value: other },
        ]);
      }
      if (value !== '' && !value.includes('\0') && !/^[^,]*=/.test(value)) {
        assert.equal(parseQmpArg(`unix:${escaped},server=on`).path, value);
      }
    }),
    { numRuns: 2000 },
  );
});

/** Our JSON reader's value as JSON.parse would give it. */
function asPlain(v: unknown): unknown {
  if (v instanceof JsonFloat) return v.value;
  if (typeof v === 'bigint') return Number(v);
  if (Array.isArray(v)) return v.map(asPlain);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(v))
      Object.defineProperty(out, key, { value: asPlain((v as Record<string, unknown>)[key]), enumerable: true });
    return out;
  }
  return v;
}

test('the QEMU JSON reader agrees with JSON.parse on standard JSON', () => {
  fc.assert(
    fc.property(fc.jsonValue(), fc.constantFrom(0, 2), (value, indent) => {
      const text = JSON.stringify(value, null, indent);
      assert.deepEqual(asPlain(parseQemuJson(text)), JSON.parse(text));
    }),
    { numRuns: 1000 },
  );
});
