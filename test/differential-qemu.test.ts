// Differential tests: the same command lines and QMP/HMP conversations run against QEMU 7.2
// (qemu-system-x86_64 -M pc -S -nodefaults -display none -accel tcg ... -qmp unix:...) and
// against netplane's CLI, and their answers compared. Where netplane differs on purpose
// (a crash path, a truthful broadcast-allowed, our version, no "oob"), the case says so and
// checks both sides separately.
//
// QEMU creates TAPs only with np-prefixed names; each case kills it and checks its TAPs are
// gone. Every run is bounded in time. Under CI=true the suite must run.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { npName } from './helpers/netns';
import { privileged } from './helpers/privilege';
import { QEMU, QEMU_BASE_ARGS, qemuMissing, QmpProcess, runToCompletion } from './helpers/qemu';
import { QmpTestClient, type QmpMessage } from './helpers/qmp-client';

const CLI = path.join(__dirname, '..', 'lib', 'cli', 'main.ts');
const NETPLANE = [process.execPath, '--import', 'tsx', CLI] as const;

function suiteSkip(): { skip?: string } {
  const why = qemuMissing();
  if (why === undefined) return {};
  if (process.env.CI === 'true') throw new Error(`differential tests cannot run under CI=true: ${why}`);
  return { skip: why };
}

type Side = 'qemu' | 'netplane';

/** One step of a conversation: a raw QMP line, or an HMP command through QMP. */
type Step =
  | { qmp: string; differs?: (qemu: QmpMessage, ours: QmpMessage) => void; why?: string }
  | { hmp: string; differs?: (qemu: string, ours: string) => void; why?: string };

interface Conversation {
  greeting: QmpMessage;
  replies: unknown[];
  stderr: string;
}

async function converse(side: Side, args: string[], steps: readonly Step[], ifnames: string[]): Promise<Conversation> {
  const [program, ...pre] = side === 'qemu' ? [QEMU] : NETPLANE;
  const proc = await QmpProcess.start(program!, [...pre, ...QEMU_BASE_ARGS, ...args], { ifnames, timeoutMs: 20_000 });
  try {
    const c = await QmpTestClient.connect(proc.socketPath);
    const greeting = await c.next();
    const replies: unknown[] = [];
    for (const step of steps) {
      if ('qmp' in step) {
        c.sendRaw(step.qmp + '\n');
        replies.push(await c.next(10_000));
      } else {
        const r = await c.execute('human-monitor-command', { 'command-line': step.hmp });
        assert.ok('return' in r, `${side}: human-monitor-command ${step.hmp} failed: ${JSON.stringify(r)}`);
        replies.push(r.return);
      }
    }
    c.close();
    return { greeting, replies, stderr: proc.stderr };
  } finally {
    await proc.stop(); // also checks that its TAPs are gone
  }
}

/** Run the conversation on both and compare step by step. */
async function differential(
  args: string[],
  steps: readonly Step[],
  ifnames: string[] = [],
): Promise<{ qemu: Conversation; ours: Conversation }> {
  const qemu = await converse('qemu', args, steps, ifnames);
  const ours = await converse('netplane', args, steps, ifnames);
  if (process.env.NP_DIFF_VERBOSE) {
    steps.forEach((step, i) =>
      console.log(
        JSON.stringify(step),
        '\n  qemu:',
        JSON.stringify(qemu.replies[i]),
        '\n  ours:',
        JSON.stringify(ours.replies[i]),
      ),
    );
  }
  steps.forEach((step, i) => {
    const label = 'qmp' in step ? step.qmp : `HMP ${step.hmp}`;
    const q = qemu.replies[i];
    const o = ours.replies[i];
    if (step.differs) {
      assert.ok(step.why, `a deliberate difference needs a reason (${label})`);
      (step.differs as (a: unknown, b: unknown) => void)(q, o);
    } else {
      assert.deepEqual(o, q, `step ${i}: ${label}`);
    }
  });
  return { qemu, ours };
}

const negotiate: Step = { qmp: '{"execute":"qmp_capabilities"}' };
const exec = (command: string, args?: Record<string, unknown>, id?: unknown): string =>
  JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), ...(id !== undefined ? { id } : {}) });

/** Warning lines on stderr, with the program name taken off. */
function warnings(stderr: string): string[] {
  return stderr
    .split('\n')
    .map((l) => l.replace(/^(qemu-system-x86_64|netplane): /, ''))
    .filter((l) => l.startsWith('warning: '));
}

const T = { timeout: 120_000 };

describe('differential against QEMU 7.2', suiteSkip(), () => {
  test('greeting, negotiation and protocol errors', T, async () => {
    const steps: Step[] = [
      { qmp: exec('query-version') },
      { qmp: exec('set_link', { name: 'x', up: true }, 5) },
      { qmp: exec('qmp_capabilities', undefined, 'a') },
      { qmp: exec('qmp_capabilities', undefined, 'b') },
      { qmp: exec('foo', undefined, [1, 2]) },
      { qmp: '{}' },
      { qmp: '{"id":1}' },
      { qmp: '{"execute":1}' },
      { qmp: '{"exec":"query-version"}' },
      { qmp: '{"execute":"query-version","extra":1}' },
      { qmp: '{"execute":"set_link","arguments":[1]}' },
      { qmp: '{"execute":"query-version","arguments":null}' },
      { qmp: '[1,2]' },
      { qmp: '"str"' },
      { qmp: '{bad json}' },
      { qmp: '}' },
      { qmp: '{"execute":"query-version" "id":1}' },
      { qmp: '{"a" 1}' },
      { qmp: '{1:2}' },
      { qmp: '[1 2]' },
      { qmp: '{"a":}' },
      { qmp: '{"a":"\\q"}' },
      { qmp: '{"a":1,}' },
      { qmp: '@' },
      { qmp: '{"execute":"query-version","execute":"quit"}' },
      {
        qmp: '[' + '['.repeat(1100) + ']'.repeat(1100) + ']',
        differs: (q: QmpMessage, o: QmpMessage) => {
          assert.deepEqual(q, { error: { class: 'GenericError', desc: 'JSON nesting depth limit exceeded' } });
          assert.deepEqual(o, q);
        },
        why: 'same first reply; QEMU 7.2 then parses the rest of the message as garbage and sends more errors, we discard it',
      },
      {
        qmp: exec('query-version', undefined, 'after-deep'),
        differs: (_q: QmpMessage, o: QmpMessage) => {
          // QEMU is still answering the garbage; netplane answers the command.
          assert.equal(o.id, 'after-deep');
        },
        why: 'QEMU 7.2 replies to the leftovers of the too-deep message first',
      },
    ];
    const { qemu, ours } = await differential([], steps);
    // Deliberate: our own version in "package", no "oob" capability.
    assert.deepEqual(Object.keys(ours.greeting.QMP), Object.keys(qemu.greeting.QMP));
    assert.deepEqual(Object.keys(ours.greeting.QMP.version.qemu), Object.keys(qemu.greeting.QMP.version.qemu));
    assert.deepEqual(qemu.greeting.QMP.capabilities, ['oob']);
    assert.deepEqual(ours.greeting.QMP.capabilities, []);
    assert.match(ours.greeting.QMP.version.package, /^netplane /);
  });

  test('argument checks of set_link, netdev_add, netdev_del, query-rx-filter, human-monitor-command', T, async () => {
    const steps: Step[] = [
      negotiate,
      { qmp: exec('set_link', { name: 'x' }) },
      { qmp: exec('set_link', { name: 'x', up: 'yes' }) },
      { qmp: exec('set_link', { name: 'x', up: true, bogus: 1 }) },
      { qmp: exec('set_link', { name: 1, up: true }) },
      { qmp: exec('set_link', { up: 1, bogus: 1, name: 'x' }) },
      { qmp: exec('set_link', { name: 'x', up: null }) },
      { qmp: exec('set_link') },
      { qmp: exec('set_link', { name: 'x', up: true }) },
      { qmp: exec('netdev_add') },
      { qmp: exec('netdev_add', { id: 'h3' }) },
      { qmp: exec('netdev_add', { type: 'hubport', id: 'h3' }) },
      { qmp: exec('netdev_add', { type: 'hubport', id: 'h3', hubid: '1' }) },
      { qmp: exec('netdev_add', { type: 'hubport', id: 'h3', hubid: 1, zz: 1 }) },
      { qmp: '{"execute":"netdev_add","arguments":{"type":"hubport","id":"h3","hubid":1.0}}' },
      { qmp: '{"execute":"netdev_add","arguments":{"type":"hubport","id":"h3","hubid":99999999999}}' },
      {
        qmp: '{"execute":"query-version","id":18446744073709551615}',
        differs: (q: QmpMessage, o: QmpMessage) => assert.equal(o.id, q.id),
        why: 'only the id is compared: the version differs',
      },
      { qmp: exec('netdev_add', { type: 'bogus', id: 'h3' }) },
      { qmp: exec('netdev_add', { type: 'hubport', id: '1x', hubid: 1 }) },
      { qmp: exec('netdev_add', { type: 'hubport', id: 'h1', hubid: 1 }) },
      { qmp: exec('netdev_add', { type: 'hubport', id: 'h1', hubid: 1 }) },
      { qmp: exec('netdev_del') },
      { qmp: exec('netdev_del', { id: 5 }) },
      { qmp: exec('netdev_del', { id: 'h1' }) },
      { qmp: exec('netdev_del', { id: 'h1' }) },
      { qmp: exec('query-rx-filter') },
      { qmp: exec('query-rx-filter', { name: 'x' }) },
      { qmp: exec('query-rx-filter', { name: null }) },
      { qmp: exec('human-monitor-command', {}) },
      { qmp: exec('human-monitor-command', { 'command-line': 'info network', 'cpu-index': '0' }) },
      { qmp: exec('announce-self', {}) },
      { qmp: exec('quit', { x: 1 }) },
      { qmp: exec('query-version', { a: 1 }) },
    ];
    await differential([], steps);
  });

  test('hub ports and a virtio-net NIC: info network, set_link, netdev_add/del over QMP and HMP', T, async () => {
    const args = [
      '-netdev',
      'hubport,id=hp0,hubid=0',
      '-netdev',
      'hubport,id=hp1,hubid=0',
      '-device',
      'virtio-net-pci,netdev=hp0,id=nic0,mac=52:54:00:12:34:56',
    ];
    const steps: Step[] = [
      negotiate,
      { hmp: 'info network' },
      { qmp: exec('set_link', { name: 'nic0', up: false }) },
      { qmp: exec('set_link', { name: 'hp1', up: false }) },
      { hmp: 'set_link hp0 off' },
      { hmp: 'set_link hp0 maybe' },
      { hmp: 'set_link' },
      { hmp: 'set_link hp0 on extra' },
      { hmp: 'set_link nosuch on' },
      {
        qmp: exec('query-rx-filter', { name: 'nic0' }),
        differs: (q: QmpMessage, o: QmpMessage) => {
          // QEMU reports its internal "no broadcast" flag as broadcast-allowed.
          assert.equal(q.return[0]['broadcast-allowed'], false);
          assert.equal(o.return[0]['broadcast-allowed'], true);
          const strip = (m: QmpMessage) => m.return.map((r: QmpMessage) => ({ ...r, 'broadcast-allowed': undefined }));
          assert.deepEqual(strip(o), strip(q));
        },
        why: 'broadcast-allowed is reported truthfully',
      },
      { qmp: exec('query-rx-filter', { name: 'hp0' }) },
      { qmp: exec('netdev_add', { type: 'hubport', id: 'q1', hubid: 1 }) },
      { hmp: 'netdev_add hubport,id=h2,hubid=1' },
      { hmp: 'netdev_add hubport,id=h2,hubid=1' },
      { hmp: 'netdev_add hubport,id=q1,hubid=1' },
      { hmp: 'netdev_add hubport,id=hp0,hubid=3' },
      { hmp: 'netdev_add hubport,id=1x,hubid=1' },
      { hmp: 'netdev_add' },
      { hmp: 'netdev_add tap' },
      { hmp: 'netdev_add bogus,id=x' },
      { hmp: 'netdev_add hubport,id=f' },
      { hmp: 'netdev_add hubport,id=c,hubid=x' },
      { hmp: 'netdev_add hubport,id=d,hubid=1,bogus=2' },
      { hmp: 'netdev_add hubport,id=e,hubid=1,netdev=nosuch' },
      { hmp: 'info network' },
      { hmp: 'netdev_del h2' },
      { hmp: 'netdev_del h2' },
      { hmp: 'netdev_del' },
      { hmp: 'netdev_add hubport,id=h2,hubid=1' },
      { qmp: exec('netdev_del', { id: 'nic0' }) },
      { qmp: exec('netdev_del', { id: 'hp1' }) },
      { hmp: 'info network' },
      { hmp: 'bogus' },
      { hmp: 'info bogus' },
      { hmp: '' },
    ];
    const { qemu, ours } = await differential(args, steps);
    // HMP netdev_add errors in QemuOpts go to stderr on both.
    const report = (s: string) =>
      s
        .split('\n')
        .filter((l) => /Duplicate ID|expects an identifier/.test(l))
        .map((l) => l.replace(/^(qemu-system-x86_64|netplane): /, ''));
    assert.deepEqual(report(ours.stderr), report(qemu.stderr));
    assert.deepEqual(warnings(ours.stderr), warnings(qemu.stderr));
  });

  test('startup warnings of section 1.9', T, async () => {
    const { qemu, ours } = await differential(
      [
        '-netdev',
        'hubport,id=h1,hubid=1',
        '-netdev',
        'hubport,id=h2,hubid=2',
        '-device',
        'virtio-net-pci,netdev=h2,id=n2',
      ],
      [negotiate, { hmp: 'info network' }],
    );
    assert.ok(warnings(qemu.stderr).length >= 2, qemu.stderr);
    assert.deepEqual(warnings(ours.stderr), warnings(qemu.stderr));
  });

  test('command-line errors: same message, same exit code', T, () => {
    const cases: string[][] = [
      ['-netdev', 'hubport,id=h1'],
      ['-netdev', 'hubport,id=h1,hubid=1', '-netdev', 'hubport,id=h1,hubid=2'],
      ['-netdev', 'hubport,id=1x,hubid=1'],
      ['-netdev', 'bogus,id=x'],
      ['-netdev', 'hubport,hubid=1'],
      ['-netdev', 'hubport,id=h1,hubid=x'],
      ['-netdev', 'hubport,id=h1,hubid=1,bogus=1'],
      ['-device', 'virtio-net-pci,netdev=nosuch'],
      [
        '-netdev',
        'hubport,id=h1,hubid=1',
        '-device',
        'virtio-net-pci,netdev=h1',
        '-device',
        'virtio-net-pci,netdev=h1',
      ],
      ['-device', 'virtio-net-pci,id=a', '-device', 'virtio-net-pci,id=a'],
      ['-device', 'virtio-net-pci,mac=zz:00:00:00:00:00'],
      ['-object', 'iothread'],
      ['-object', 'iothread,id=i1', '-object', 'iothread,id=i1'],
      ['-bogus'],
      ['-netdev'],
      ['-netdev', 'vhost-user,id=n0'],
      ['-netdev', 'vhost-user,id=n0,chardev=c0'],
      ['-netdev', 'vhost-user,id=n0,chardev=c0,queues=0'],
      ['-netdev', 'vhost-user,id=n0,chardev=c0,queues=1025'],
      ['-netdev', 'vhost-user,id=n0,chardev=c0,queues=x'],
      ['-netdev', 'vhost-user,id=n0,chardev=c0,bogus=1'],
    ];
    for (const args of cases) {
      const q = runToCompletion(QEMU, [...QEMU_BASE_ARGS, ...args]);
      const o = runToCompletion(NETPLANE[0], [...NETPLANE.slice(1), ...QEMU_BASE_ARGS, ...args]);
      const norm = (s: string) => s.replace(/^(qemu-system-x86_64|netplane): /gm, 'PROG: ');
      assert.equal(o.status, 1, `netplane ${args.join(' ')}: ${o.stderr}`);
      assert.equal(q.status, 1, `qemu ${args.join(' ')}: ${q.stderr}`);
      assert.equal(norm(o.stderr), norm(q.stderr), args.join(' '));
    }
  });

  test('QMP chardev-add and chardev-remove of unix socket chardevs', T, async () => {
    const os = await import('node:os');
    const fs = await import('node:fs');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'np-dchr-'));
    try {
      const sock = (n: string) => path.join(dir, n);
      const backend = (p: string, extra: Record<string, unknown> = {}) => ({
        type: 'socket',
        data: { addr: { type: 'unix', data: { path: p } }, ...extra },
      });
      // Each side gets its own socket paths (they run one after the other).
      const steps: Step[] = [
        negotiate,
        { qmp: exec('chardev-add', { id: 'c0', backend: backend(sock('a.sock'), { server: true, wait: false }) }) },
        { qmp: exec('chardev-add', { id: 'c0', backend: backend(sock('b.sock'), { server: true, wait: false }) }) },
        { qmp: exec('chardev-remove', { id: 'nope' }) },
        { qmp: exec('netdev_add', { type: 'vhost-user', id: 'n0', chardev: 'nope' }) },
        { qmp: exec('chardev-remove', { id: 'c0' }) },
        { qmp: exec('chardev-remove', { id: 'c0' }) },
      ];
      await differential([], steps);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a vhost-user chardev that is not a unix socket: refused, at -chardev in netplane', T, () => {
    // QEMU takes the chardev and refuses it at -netdev; netplane has unix socket chardevs only
    // and refuses the -chardev itself, naming what it takes.
    for (const [chardev, qemuSays] of [
      ['null,id=c0', 'chardev "c0" is not reconnectable'],
      ['socket,id=c0,host=127.0.0.1,port=5999,server=on,wait=off', 'chardev "c0" does not support FD passing'],
    ] as const) {
      const args = ['-chardev', chardev, '-netdev', 'vhost-user,id=n0,chardev=c0'];
      const q = runToCompletion(QEMU, [...QEMU_BASE_ARGS, ...args]);
      assert.equal(q.status, 1);
      assert.equal(q.stderr.trim(), `qemu-system-x86_64: -netdev vhost-user,id=n0,chardev=c0: ${qemuSays}`);
      const o = runToCompletion(NETPLANE[0], [...NETPLANE.slice(1), ...QEMU_BASE_ARGS, ...args]);
      assert.equal(o.status, 1);
      assert.match(o.stderr, new RegExp(`^netplane: -chardev ${chardev}: .*not supported by netplane`));
    }
  });

  test('netplane reports an error where QEMU 7.2 crashes', T, () => {
    // A second hub port on an already-peered netdev: QEMU 7.2 fails an assertion and aborts
    // (section 9, item 14); netplane refuses the option with a message.
    const args = [
      '-netdev',
      'hubport,id=a,hubid=1',
      '-netdev',
      'hubport,id=b,hubid=2,netdev=a',
      '-netdev',
      'hubport,id=c,hubid=3,netdev=a',
    ];
    const q = runToCompletion(QEMU, [...QEMU_BASE_ARGS, ...args]);
    assert.equal(q.status, null, 'QEMU 7.2 is expected to die from a signal here');
    assert.match(q.stderr, /Assertion .* failed/);
    const o = runToCompletion(NETPLANE[0], [...NETPLANE.slice(1), ...QEMU_BASE_ARGS, ...args]);
    assert.equal(o.status, 1);
    assert.match(o.stderr, /^netplane: -netdev hubport,id=c,hubid=3,netdev=a: netdev 'a' already has a peer/);
  });
});

describe('differential against QEMU 7.2 with TAPs', { ...suiteSkip(), ...privileged() }, () => {
  test('multiqueue tap + virtio-net: info network, set_link, netdev_del of the attached backend', T, async () => {
    const ifname = npName('dq');
    const args = [
      '-netdev',
      `tap,id=hn0,ifname=${ifname},script=no,downscript=no,queues=2`,
      '-device',
      'virtio-net-pci,netdev=hn0,id=nic0,mq=on,mac=52:54:00:aa:bb:01',
    ];
    const steps: Step[] = [
      negotiate,
      { hmp: 'info network' },
      { qmp: exec('set_link', { name: 'nic0', up: false }) },
      { qmp: exec('set_link', { name: 'hn0', up: true }) },
      { hmp: 'set_link hn0 off' },
      { qmp: exec('netdev_del', { id: 'hn0' }) },
      // The NIC still lists the deleted backend (QEMU 7.2).
      { hmp: 'info network' },
      { qmp: exec('netdev_del', { id: 'hn0' }) },
      { qmp: exec('set_link', { name: 'nic0', up: true }) },
      { qmp: exec('netdev_add', { type: 'hubport', id: 'hn0', hubid: 3 }) },
      { hmp: 'info network' },
      {
        qmp: exec('query-rx-filter'),
        differs: (q: QmpMessage, o: QmpMessage) => {
          assert.equal(q.return[0]['broadcast-allowed'], false);
          assert.equal(o.return[0]['broadcast-allowed'], true);
          const strip = (m: QmpMessage) => m.return.map((r: QmpMessage) => ({ ...r, 'broadcast-allowed': undefined }));
          assert.deepEqual(strip(o), strip(q));
        },
        why: 'broadcast-allowed is reported truthfully',
      },
    ];
    await differential(args, steps, [ifname]);
  });

  test(
    'the seeds example: 4-queue tap with PCI placement, no device yet, then QMP netdev_add of a tap',
    T,
    async () => {
      const ifname = npName('ds');
      const added = npName('da');
      const args = [
        '-netdev',
        `tap,id=hostnet0,ifname=${ifname},script=no,downscript=no,queues=4`,
        '-device',
        'virtio-net-pci,netdev=hostnet0,id=net0,mac=52:54:00:6b:0d:a1,bus=pci.0,addr=0x3',
      ];
      const steps: Step[] = [
        negotiate,
        { hmp: 'info network' },
        {
          qmp: exec('netdev_add', {
            type: 'tap',
            id: 'extra',
            ifname: added,
            script: 'no',
            downscript: 'no',
            queues: 2,
          }),
        },
        // A netdev without a NIC: both queues still index 0.
        { hmp: 'info network' },
        { qmp: exec('netdev_add', { type: 'tap', id: 'extra', ifname: added }) },
        { qmp: exec('netdev_add', { type: 'tap', id: 'bad', ifname: added, queues: 'x' }) },
        { qmp: exec('netdev_del', { id: 'extra' }) },
        { hmp: 'info network' },
      ];
      await differential(args, steps, [ifname, added]);
    },
  );
});

describe('differential against QEMU 7.2: -netdev vhost-user', { ...suiteSkip(), ...privileged() }, () => {
  test('info network, a chardev in use, netdev_add/netdev_del over QMP, against netplane export', T, async () => {
    // The back-end both front-ends connect to, one after the other: netplane's own export
    // (QEMU 7.2 waits for the vhost-user handshake before it goes on).
    const fs = await import('node:fs');
    const os = await import('node:os');
    const { spawn } = await import('node:child_process');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'np-dvu-'));
    const sock = path.join(dir, 'ex.sock');
    const pidfile = path.join(dir, 'ex.pid');
    const ifname = npName('dvu');
    const exporter = spawn(
      NETPLANE[0],
      [
        ...NETPLANE.slice(1),
        '-netdev',
        `tap,id=hn0,ifname=${ifname},vnet_hdr=on,queues=2`,
        '-export',
        `type=vhost-user-net,id=vu0,netdev=hn0,addr.type=unix,addr.path=${sock},num-queues=2`,
        '-pidfile',
        pidfile,
      ],
      { stdio: 'ignore' },
    );
    try {
      for (let i = 0; i < 400 && !fs.existsSync(pidfile); i++) await new Promise((r) => setTimeout(r, 25));
      assert.ok(fs.existsSync(pidfile), 'the export is ready');
      const args = ['-chardev', `socket,id=c0,path=${sock}`, '-netdev', 'vhost-user,id=n0,chardev=c0,queues=2'];
      const steps: Step[] = [
        negotiate,
        { hmp: 'info network' },
        { qmp: exec('netdev_add', { type: 'vhost-user', id: 'n1', chardev: 'c0' }) },
        { qmp: exec('netdev_add', { type: 'vhost-user', id: 'n1', chardev: 'nope' }) },
        { qmp: exec('netdev_add', { type: 'vhost-user', id: 'n1', chardev: 'c0', queues: 0 }) },
        { qmp: exec('netdev_add', { type: 'vhost-user', id: 'n1' }) },
        { qmp: exec('netdev_del', { id: 'n0' }) },
        { hmp: 'info network' },
        // netdev_del took the chardev with it (QEMU 7.2 deletes a vhost-user netdev's chardev).
        { qmp: exec('netdev_add', { type: 'vhost-user', id: 'n2', chardev: 'c0' }) },
      ];
      const { qemu, ours } = await differential(args, steps);
      assert.deepEqual(warnings(ours.stderr), warnings(qemu.stderr));
      // A second -netdev on the same chardev: the same first line (QEMU adds a second one).
      const inUse = [...args, '-netdev', 'vhost-user,id=n1,chardev=c0'];
      const q = runToCompletion(QEMU, [...QEMU_BASE_ARGS, ...inUse]);
      const o = runToCompletion(NETPLANE[0], [...NETPLANE.slice(1), ...QEMU_BASE_ARGS, ...inUse]);
      const first = (s: string) => s.split('\n')[0]!.replace(/^(qemu-system-x86_64|netplane): /, '');
      assert.equal(q.status, 1);
      assert.equal(o.status, 1);
      assert.equal(first(o.stderr), first(q.stderr));
      assert.equal(first(q.stderr), "-netdev vhost-user,id=n1,chardev=c0: Device 'c0' is in use");
    } finally {
      exporter.kill('SIGTERM');
      await new Promise((r) => exporter.once('exit', r));
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
