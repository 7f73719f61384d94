// Differential tests: the same command lines and QMP/HMP conversations run against QEMU 7.2
// (qemu-system-x86_64 -M pc -S -nodefaults -display none -accel tcg ... -qmp unix:...) and
// against netplane's CLI, and their answers compared. Where netplane differs on purpose
// (a crash path, a truthful broadcast-allowed, our version, no "oob"), the case says so and
// checks both sides separately.
//
// QEMU creates TAPs only with np-prefixed names; each case kills it and checks its TAPs are
// gone. Every run is bounded in time. Under CI=true the suite must run.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { npName } from './helpers/netns';
import { privileged } from './helpers/privilege';
import { QEMU, QEMU_BASE_ARGS, qemuMissing, QmpProcess, runToCompletion, tempDir } from './helpers/qemu';
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

/** query-rx-filter: QEMU reports its internal "no broadcast" flag as broadcast-allowed (so
 *  false for a NIC that takes broadcasts); netplane reports the truth. The rest is the same. */
const rxFilterTruthful = {
  differs: (q: QmpMessage, o: QmpMessage) => {
    for (const r of q.return as QmpMessage[]) assert.equal(r['broadcast-allowed'], false);
    for (const r of o.return as QmpMessage[]) assert.equal(r['broadcast-allowed'], true);
    const strip = (m: QmpMessage) => m.return.map((r: QmpMessage) => ({ ...r, 'broadcast-allowed': undefined }));
    assert.deepEqual(strip(o), strip(q));
  },
  why: 'broadcast-allowed is reported truthfully',
};

/** A TCP port on 127.0.0.1 that nothing holds right now. */
async function freeLoopbackPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

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
      // stream and dgram: members first, then the id, then the backend's own checks.
      { qmp: exec('netdev_add', { type: 'stream', id: '1x', addr: { type: 'unix', path: '/tmp/npcl-s' } }) },
      { qmp: exec('netdev_add', { type: 'stream', id: '1x' }) },
      { qmp: exec('netdev_add', { type: 'dgram', id: '1x' }) },
      { qmp: exec('netdev_add', { type: 'dgram', id: 'd' }) },
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
      { qmp: exec('query-rx-filter', { name: 'nic0' }), ...rxFilterTruthful },
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

  test('-netdev user option errors: same message, same exit code', { timeout: 300_000 }, () => {
    const A256 = 'a'.repeat(256);
    const cases: string[] = [
      'user,id=u0,net=x',
      'user,id=u0,net=10.0.2.0/3',
      'user,id=u0,net=10.0.2.0/',
      'user,id=u0,net=10.0.2.0/255.255.x',
      'user,id=u0,host=10.0.3.2',
      'user,id=u0,net=10.0.2.0/24,host=10.0.2.3',
      'user,id=u0,dns=10.0.2.2',
      'user,id=u0,restrict=on,dns=10.0.3.3',
      'user,id=u0,dhcpstart=10.0.3.9',
      'user,id=u0,dhcpstart=10.0.2.3',
      'user,id=u0,net=10.0.2.0,dhcpstart=10.0.2.2',
      'user,id=u0,ip=10.0.5.0,dhcpstart=10.0.2.20',
      'user,id=u0,ipv6-prefix=x',
      'user,id=u0,ipv6-prefixlen=127',
      'user,id=u0,ipv6-prefixlen=x',
      'user,id=u0,ipv6-host=fec1::2',
      'user,id=u0,restrict=on,ipv6-dns=fec1::3',
      'user,id=u0,ipv6-net=fec0::/x',
      'user,id=u0,ipv6-net=x/64',
      'user,id=u0,ipv4=off,ipv6=off',
      'user,id=u0,ipv4=off,net=10.0.0.0/8',
      'user,id=u0,ipv6=on,net=10.0.0.0/8',
      'user,id=u0,ipv4=on,ipv6-host=fec0::9',
      'user,id=u0,domainname=',
      `user,id=u0,domainname=${A256}`,
      `user,id=u0,hostname=${A256}`,
      'user,id=u0,restrict=x',
      'user,id=u0,bogus=1',
      'user,id=u0,hostfwd=x',
      'user,id=u0,hostfwd=icmp::1-:2',
      'user,id=u0,hostfwd=tcp',
      'user,id=u0,hostfwd=tcp:x:1-:2',
      'user,id=u0,hostfwd=tcp::-1-:1',
      'user,id=u0,hostfwd=tcp::1',
      'user,id=u0,hostfwd=tcp::1-x:2',
      'user,id=u0,hostfwd=tcp::1-10.0.2.15',
      'user,id=u0,hostfwd=tcp::1-:0',
      'user,id=u0,hostfwd=udp:1.2.3.4:1-:2',
      'user,id=u0,hostfwd=tcp:127.0.0.1:0-:22,hostfwd=bad',
      'user,id=u0,guestfwd=x',
      'user,id=u0,guestfwd=udp:10.0.2.100:1-cmd:x',
      'user,id=u0,guestfwd=tcp:10.0.2.100-cmd:x',
    ];
    for (const opt of cases) {
      const args = ['-netdev', opt];
      const q = runToCompletion(QEMU, [...QEMU_BASE_ARGS, ...args]);
      const o = runToCompletion(NETPLANE[0], [...NETPLANE.slice(1), ...QEMU_BASE_ARGS, ...args]);
      const norm = (s: string) => s.replace(/^(qemu-system-x86_64|netplane): /gm, 'PROG: ');
      assert.equal(q.status, 1, `qemu ${opt}: ${q.stderr}`);
      assert.equal(o.status, 1, `netplane ${opt}: ${o.stderr}`);
      assert.equal(norm(o.stderr), norm(q.stderr), opt);
    }
  });

  test('user netdevs: info network, info usernet, hostfwd_add/hostfwd_remove over HMP', T, async () => {
    // Two loopback ports nobody holds; each side binds them in turn (QEMU stops first).
    const ports = [await freeLoopbackPort(), await freeLoopbackPort()];
    // libslirp's table shows the socket's fd number, which is the process's own business.
    const sameTable = (q: string, o: string) => {
      const norm = (t: string) => t.replace(/(\]) +\d+ /g, '$1 FD ');
      assert.equal(norm(o), norm(q));
    };
    const fdDiffers = "the FD column is each process's own socket number";
    await differential(
      [
        '-netdev',
        `user,id=u0,hostfwd=tcp:127.0.0.1:${ports[0]}-:22`,
        '-netdev',
        'user,id=u1,net=10.9.0.0/16,restrict=on,ipv6=off',
        '-netdev',
        'hubport,id=hp,hubid=3,netdev=u1',
        '-netdev',
        'hubport,id=hq,hubid=3',
      ],
      [
        negotiate,
        { hmp: 'info network' },
        { hmp: 'info usernet', differs: sameTable, why: fdDiffers },
        { hmp: `hostfwd_add tcp:127.0.0.1:${ports[1]}-:23` },
        { hmp: `hostfwd_add u1 udp:127.0.0.1:${ports[1]}-10.9.2.15:24` },
        { hmp: `hostfwd_add tcp:127.0.0.1:${ports[0]}-:22` },
        { hmp: 'hostfwd_add bogus' },
        { hmp: 'hostfwd_add nosuch tcp::1-:2' },
        { hmp: 'hostfwd_add hp tcp::1-:2' },
        { hmp: 'hostfwd_add' },
        { hmp: 'info usernet', differs: sameTable, why: fdDiffers },
        { hmp: `hostfwd_remove tcp:127.0.0.1:${ports[1]}` },
        { hmp: `hostfwd_remove tcp:127.0.0.1:${ports[1]}` },
        { hmp: `hostfwd_remove u1 udp:127.0.0.1:${ports[1]}` },
        { hmp: 'hostfwd_remove x' },
        { hmp: 'hostfwd_remove nosuch tcp::1' },
        { hmp: 'help hostfwd_add' },
        { hmp: 'help hostfwd_remove' },
        { hmp: 'info usernet', differs: sameTable, why: fdDiffers },
        { hmp: 'netdev_del u0' },
        { hmp: 'hostfwd_add tcp::1-:2' },
        { hmp: 'info network' },
      ],
    );
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
        { qmp: exec('chardev-add', { id: 'c1', backend: backend(sock('c.sock'), { server: false, reconnect: 1 }) }) },
        {
          qmp: exec('query-chardev'),
          why: 'QEMU also lists its own monitor chardevs, and in its hash table order',
          differs: (q: QmpMessage, o: QmpMessage) => {
            const ours = (x: QmpMessage) =>
              ((x.return ?? []) as Array<{ label: string }>)
                .filter((c) => /^c\d$/.test(c.label))
                .sort((a, b) => a.label.localeCompare(b.label));
            assert.equal(ours(o).length, 2);
            assert.deepEqual(ours(o), ours(q));
          },
        },
        {
          hmp: 'info chardev',
          why: 'QEMU also lists its own monitor chardevs, and in its hash table order',
          differs: (q: string, o: string) => {
            const ours = (x: string) =>
              x
                .split('\n')
                .filter((l) => /^c\d: /.test(l))
                .sort();
            assert.deepEqual(ours(o), ours(q));
            assert.match(o, /^c0: filename=disconnected:unix:.*a\.sock,server=on\r?\n/);
          },
        },
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

describe('differential against QEMU 7.2: stream, dgram and socket netdevs', suiteSkip(), () => {
  test('option errors: same message, same exit code', T, () => {
    const u = 'addr.type=unix,addr.path=/tmp/np-diff-none.sock';
    const ok = 'local.type=inet,local.host=127.0.0.1,local.port=47001';
    const cases: string[] = [
      'stream,id=s0',
      'stream,id=s0,server=on',
      'stream,id=s0,addr.type=inet',
      'stream,id=s0,addr.type=inet,addr.host=127.0.0.1',
      'stream,id=s0,addr.type=inet,addr.host=127.0.0.1,addr.port=1,reconnect=1',
      'stream,id=s0,addr.type=bogus',
      'stream,id=s0,addr.type=unix',
      'stream,id=s0,addr.host=x',
      `stream,id=s0,${u},addr.bogus=1`,
      `stream,id=s0,${u},bogus=1`,
      'stream,id=s0,addr.type=inet,addr.host=127.0.0.1,addr.port=1,addr.ipv4=maybe',
      'stream,id=s0,addr.type=inet,addr.host=127.0.0.1,addr.port=1,addr.to=x',
      'stream,id=s0,addr.type=inet,addr.host=127.0.0.1,addr.port=1,addr.to=70000',
      'stream,id=s0,addr.type=fd',
      'stream,id=s0,addr.type=vsock,addr.cid=1',
      'stream,id=s0,addr=foo',
      `stream,id=s0,server=maybe,${u}`,
      `stream,${u}`,
      'stream,id=s0,bogus=1',
      '{"type":"stream","id":"s0","addr":{"type":"unix","path":"/tmp/x"},"server":"on"}',
      '{"type":"stream","id":"s0","addr":{"type":"unix"}}',
      'dgram,id=d0',
      `dgram,id=d0,${ok}`,
      'dgram,id=d0,remote.type=inet,remote.host=127.0.0.1,remote.port=5000',
      'dgram,id=d0,remote.type=inet,remote.host=230.0.0.1,remote.port=5000,local.type=unix,local.path=/tmp/x',
      'dgram,id=d0,remote.type=unix,remote.path=/tmp/y',
      'dgram,id=d0,local.type=unix,local.path=/tmp/x',
      'dgram,id=d0,local.type=fd,local.str=77',
      'dgram,id=d0,local.type=fd,local.str=x',
      'dgram,id=d0,remote.type=fd,remote.str=77',
      'dgram,id=d0,remote.type=fd,remote.str=3,local.type=fd,local.str=4',
      'dgram,id=d0,local.type=vsock,local.cid=1,local.port=2,remote.type=vsock,remote.cid=1,remote.port=3',
      `dgram,id=d0,${ok},remote.type=unix,remote.path=/x`,
      'dgram,id=d0,local.type=inet,local.host=127.0.0.1,local.port=x,remote.type=inet,remote.host=127.0.0.1,remote.port=1',
      `dgram,id=d0,${ok},remote.type=inet,remote.host=127.0.0.1,remote.port=x`,
      'dgram,id=d0,remote.type=inet,remote.host=230.0.0.1,remote.port=x',
      'dgram,id=d0,remote.type=inet,remote.host=230.0.0.1,remote.port=47100,local.type=inet,local.host=no.such,local.port=1',
      'dgram,id=d0,bogus=1',
      'socket,id=k0',
      'socket,id=k0,listen=:1,connect=:2',
      'socket,id=k0,listen=nohost',
      'socket,id=k0,listen=127.0.0.1:x',
      'socket,id=k0,udp=127.0.0.1:1',
      'socket,id=k0,udp=127.0.0.1:1,localaddr=127.0.0.1:2,connect=:3',
      'socket,id=k0,udp=127.0.0.1:1,localaddr=x',
      'socket,id=k0,udp=127.0.0.1:1,localaddr=127.0.0.1:y',
      'socket,id=k0,mcast=127.0.0.1:5000',
      'socket,id=k0,mcast=230.0.0.1',
      'socket,id=k0,mcast=230.0.0.1:x',
      'socket,id=k0,mcast=230.0.0.1:47104,localaddr=no.such',
      'socket,id=k0,localaddr=127.0.0.1:2',
      'socket,id=k0,listen=127.0.0.1:1,localaddr=127.0.0.1:2',
      'socket,id=k0,fd=99',
      'socket,id=k0,fd=0',
      'socket,id=k0,fd=x',
      'socket,id=k0,fd=3,listen=:1',
      'socket,id=k0,fd=3,localaddr=1.2.3.4:5',
      'socket,id=k0,bogus=1',
      'socket,id=0k,listen=:47556',
    ];
    const norm = (s: string) => s.replace(/^(qemu-system-x86_64|netplane): /gm, 'PROG: ');
    for (const netdev of cases) {
      const args = ['-netdev', netdev];
      const q = runToCompletion(QEMU, [...QEMU_BASE_ARGS, ...args]);
      const o = runToCompletion(NETPLANE[0], [...NETPLANE.slice(1), ...QEMU_BASE_ARGS, ...args]);
      assert.equal(q.status, 1, `qemu ${netdev}: ${q.stderr}`);
      assert.equal(o.status, 1, `netplane ${netdev}: ${o.stderr}`);
      assert.equal(norm(o.stderr), norm(q.stderr), netdev);
    }
  });

  test('info network lines of unconnected stream, dgram and socket netdevs', T, async () => {
    const base = 47600 + (process.pid % 200) * 10;
    const sock = `/tmp/np-diff-${process.pid}.sock`;
    const dsock = [`/tmp/np-diff-${process.pid}-1.dsock`, `/tmp/np-diff-${process.pid}-2.dsock`];
    const args = [
      '-netdev',
      `stream,id=s0,server=on,addr.type=inet,addr.host=127.0.0.1,addr.port=${base}`,
      '-netdev',
      `stream,id=s1,server=on,addr.type=unix,addr.path=${sock}`,
      '-netdev',
      `dgram,id=d0,local.type=inet,local.host=127.0.0.1,local.port=${base + 1},remote.type=inet,remote.host=127.0.0.1,remote.port=${base + 2}`,
      '-netdev',
      `dgram,id=d1,local.type=unix,local.path=${dsock[0]},remote.type=unix,remote.path=${dsock[1]}`,
      '-netdev',
      `socket,id=k0,listen=127.0.0.1:${base + 3}`,
      '-netdev',
      `socket,id=k1,udp=127.0.0.1:${base + 4},localaddr=127.0.0.1:${base + 5}`,
      '-netdev',
      'hubport,id=h0,hubid=0,netdev=s0',
      '-netdev',
      'hubport,id=h1,hubid=0,netdev=d0',
    ];
    const { qemu, ours } = await differential(args, [negotiate, { hmp: 'info network' }]);
    assert.match(String(qemu.replies[1]), /s0: index=0,type=stream,\r\n/);
    assert.deepEqual(warnings(ours.stderr), warnings(qemu.stderr));
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
      { qmp: exec('query-rx-filter'), ...rxFilterTruthful },
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

// ---- -nic / -net, filter-dump, the help forms (issue 13) ------------------------------------

/** QEMU's generated ids end in two random digits: compare them as `#net<k>`. */
const normIds = (v: unknown): unknown => JSON.parse(JSON.stringify(v).replace(/#net([0-9]+)[0-9]{2}/g, '#net$1'));
const sameIds = {
  differs: (q: unknown, o: unknown) => assert.deepEqual(normIds(o), normIds(q)),
  why: "the generated #net ids end in two random digits (QEMU's id_generate)",
};

function cliRun(args: string[]): {
  qemu: ReturnType<typeof runToCompletion>;
  ours: ReturnType<typeof runToCompletion>;
} {
  return {
    qemu: runToCompletion(QEMU, [...QEMU_BASE_ARGS, ...args]),
    ours: runToCompletion(NETPLANE[0], [...NETPLANE.slice(1), ...QEMU_BASE_ARGS, ...args]),
  };
}

const progNorm = (s: string) => s.replace(/^(qemu-system-x86_64|netplane): /gm, 'PROG: ');

describe('differential against QEMU 7.2: -nic, -net, filter-dump, help', suiteSkip(), () => {
  test('-net nic on hub 0, -nic hubport, -net nic,netdev=, -device after them: info network, warnings', T, async () => {
    const args = [
      '-netdev',
      'hubport,id=h2,hubid=2',
      '-nic',
      'hubport,hubid=3,model=virtio-net-pci',
      '-nic',
      'hubport,hubid=3,id=hx,model=virtio-net-pci,mac=52:54:00:aa:00:01',
      '-net',
      'nic,model=virtio-net-pci',
      '-net',
      'nic,model=virtio-net-pci,macaddr=52:54:00:00:00:07,id=second',
      '-net',
      'nic,model=virtio-net-pci,netdev=h2',
      '-net',
      'none',
      '-nic',
      'none',
      '-device',
      'virtio-net-pci,id=d0',
    ];
    const steps: Step[] = [
      negotiate,
      { hmp: 'info network', ...sameIds },
      { qmp: exec('netdev_del', { id: 'hub0port0' }) },
      { qmp: exec('set_link', { name: 'hub0port1', up: false }) },
      { qmp: exec('query-rx-filter', { name: 'virtio-net-pci.3' }), ...rxFilterTruthful },
      { qmp: exec('netdev_del', { id: 'hx' }) },
      { hmp: 'info network', ...sameIds },
    ];
    const { qemu, ours } = await differential(args, steps);
    assert.deepEqual(normIds(warnings(ours.stderr)), normIds(warnings(qemu.stderr)));
  });

  test('-nic and -net option errors: same message, same exit code', { timeout: 300_000 }, () => {
    const cases: string[][] = [
      ['-net', 'nic,model=virtio-net-pci,vlan=1'],
      ['-net', 'nic,model=virtio-net-pci,name=x'],
      ['-net', 'nic,model=virtio-net-pci,netdev=x'],
      ['-net', 'nic,model=virtio-net-pci,macaddr=01:00:00:00:00:01'],
      ['-net', 'nic,macaddr=zz'],
      ['-net', 'nic,model=virtio-net-pci,vectors=x'],
      ['-net', 'nic,model=bogus'],
      ['-net', 'nic,help'],
      ['-net', 'help'],
      ['-net', 'hubport,hubid=1'],
      ['-net', 'bogus'],
      ['-nic', 'hubport,hubid=1,model=virtio-net-pci,mac=01:00:00:00:00:01'],
      ['-nic', 'hubport,hubid=1,mac=zz'],
      ['-nic', 'hubport,model=virtio-net-pci'],
      ['-nic', 'help'],
      ['-nic', 'hubport,hubid=1,id=1x'],
      ['-nic', 'hubport,hubid=1,id=a', '-nic', 'hubport,hubid=2,id=a'],
      ['-net', 'nic,id=a', '-net', 'nic,id=a'],
    ];
    for (const args of cases) {
      const { qemu: q, ours: o } = cliRun(args);
      assert.equal(q.status, 1, `qemu ${args.join(' ')}: ${q.stderr}`);
      assert.equal(o.status, 1, `netplane ${args.join(' ')}: ${o.stderr}`);
      assert.equal(progNorm(o.stderr), progNorm(q.stderr), args.join(' '));
    }
  });

  test('a NIC model netplane does not build: QEMU -M none warnings', T, async () => {
    // QEMU's -M none builds no on-board NIC and says so; netplane's "machine" builds
    // virtio-net-pci only, so an e1000 slot ends the same way.
    const args = ['-net', 'nic,model=e1000,id=foo', '-nic', 'hubport,hubid=4,id=n4,model=e1000'];
    const qemu = await converse(
      'qemu',
      ['-M', 'none', ...QEMU_BASE_ARGS.slice(2), ...args],
      [negotiate, { hmp: 'info network' }],
      [],
    );
    const ours = await converse('netplane', args, [negotiate, { hmp: 'info network' }], []);
    assert.deepEqual(ours.replies, qemu.replies);
    assert.deepEqual(warnings(ours.stderr), warnings(qemu.stderr));
    assert.ok(
      warnings(ours.stderr).includes(
        'warning: requested NIC (foo, model e1000) was not created (not supported by this machine?)',
      ),
    );
  });

  test(
    'filter-dump: object-add/object-del, info network filters lines, option errors',
    { timeout: 300_000 },
    async () => {
      const dir = tempDir('fd');
      try {
        const f0 = path.join(dir, 'f0.pcap');
        const f1 = path.join(dir, 'f1.pcap');
        const args = [
          '-netdev',
          'hubport,id=n0,hubid=0',
          '-object',
          `filter-dump,id=f0,netdev=n0,file=${f0},maxlen=100`,
        ];
        const steps: Step[] = [
          negotiate,
          { qmp: exec('object-add', { 'qom-type': 'filter-dump', id: 'f5', netdev: 'n0' }) },
          { qmp: exec('object-add', { 'qom-type': 'filter-dump', id: 'f6', file: f1 }) },
          { qmp: exec('object-add', { 'qom-type': 'filter-dump', id: 'f7', netdev: 'n0', file: f1, queue: 'bogus' }) },
          { qmp: exec('object-add', { 'qom-type': 'filter-dump', id: 'f8', netdev: 'n0', file: f1, bogus: 1 }) },
          { qmp: exec('object-add', { 'qom-type': 'filter-dump', id: 'f9', netdev: 'n0', file: f1, maxlen: 'x' }) },
          { qmp: exec('object-add', { 'qom-type': 'filter-dump', id: 'fa', netdev: 'n0', file: f1, maxlen: 0 }) },
          { qmp: exec('object-del', { id: 'f0' }) },
          { qmp: exec('object-del', { id: 'f0' }) },
          { qmp: exec('object-del', {}) },
          { hmp: `object_add filter-dump,id=f2,netdev=n0,file=${f1}` },
          { hmp: 'object_del f2' },
          { hmp: 'object_del f2' },
          { qmp: exec('object-add', { 'qom-type': 'filter-dump', id: 'f1', netdev: 'n0', file: f1, queue: 'rx' }) },
          { qmp: exec('netdev_del', { id: 'n0' }) },
          { qmp: exec('object-del', { id: 'f1' }) },
        ];
        await differential(args, steps);
        // Both wrote a pcap header with snaplen 100 into f0 (the last writer was netplane).
        const head = fs.readFileSync(f0);
        assert.equal(head.readUInt32LE(0), 0xa1b2c3d4);
        assert.equal(head.readUInt32LE(16), 100);
        const cases: string[][] = [
          ['-netdev', 'hubport,id=n0,hubid=0', '-object', `filter-dump,id=f0,netdev=n0,file=${f0},maxlen=0`],
          ['-netdev', 'hubport,id=n0,hubid=0', '-object', `filter-dump,id=f0,netdev=n0,file=${f0},maxlen=4294967296`],
          ['-netdev', 'hubport,id=n0,hubid=0', '-object', `filter-dump,id=f0,netdev=nosuch,file=${f0}`],
          ['-netdev', 'hubport,id=n0,hubid=0', '-object', 'filter-dump,id=f0,netdev=n0,file=/nonexistent/x.pcap'],
          ['-netdev', 'hubport,id=n0,hubid=0', '-object', `filter-dump,id=f0,netdev=n0,file=${f0},status=x`],
          ['-netdev', 'hubport,id=n0,hubid=0', '-object', `filter-dump,id=f0,netdev=n0,file=${f0},position=x`],
          ['-netdev', 'hubport,id=n0,hubid=0', '-object', `filter-dump,id=f0,netdev=n0,file=${f0},insert=x`],
          ['-netdev', 'hubport,id=n0,hubid=0', '-object', `filter-dump,id=f0,netdev=n0,file=${f0},position=id=zz`],
          ['-netdev', 'hubport,id=n0,hubid=0', '-object', `filter-dump,id=f0,netdev=n0,file=${f0},bogus=1`],
          ['-netdev', 'hubport,id=n0,hubid=0', '-object', 'filter-dump,id=f0,netdev=n0'],
        ];
        for (const a of cases) {
          const { qemu: q, ours: o } = cliRun(a);
          assert.equal(q.status, 1, `qemu ${a.join(' ')}: ${q.stderr}`);
          assert.equal(o.status, 1, `netplane ${a.join(' ')}: ${o.stderr}`);
          const strip = (s: string) =>
            progNorm(s)
              .split('\n')
              .filter((l) => !l.includes('warning:'))
              .join('\n');
          assert.equal(strip(o.stderr), strip(q.stderr), a.join(' '));
        }
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  test("help forms: QEMU 7.2's layout, netplane's list", T, () => {
    // netplane's lines must be lines QEMU prints (its models, types and properties are a
    // subset), under the same heading; the exceptions are netplane's own additions.
    const own = /^ {2}(buffer-size|guest_uso4|guest_uso6|host_uso)=/;
    const cases: Array<{ args: string[]; first: string }> = [
      { args: ['-netdev', 'help'], first: 'Available netdev backend types:' },
      { args: ['-device', 'help'], first: 'Network devices:' },
      { args: ['-device', 'virtio-net-pci,help'], first: 'virtio-net-pci options:' },
      { args: ['-object', 'help'], first: 'List of user creatable objects:' },
      { args: ['-object', 'iothread,help'], first: 'iothread options:' },
      { args: ['-object', 'filter-dump,help'], first: 'filter-dump options:' },
      { args: ['-chardev', 'help'], first: 'Available chardev backend types: ' },
      { args: ['-nic', 'user,model=help'], first: 'Supported NIC models:' },
      { args: ['-net', 'nic,model=help'], first: 'Supported NIC models:' },
    ];
    for (const { args, first } of cases) {
      const { qemu: q, ours: o } = cliRun(args);
      assert.equal(q.status, 0, `qemu ${args.join(' ')}`);
      assert.equal(o.status, 0, `netplane ${args.join(' ')}: ${o.stderr}`);
      const qLines = new Set(q.stdout.split('\n'));
      const oLines = o.stdout.split('\n').filter((l) => l !== '');
      assert.ok(qLines.has(first), `QEMU's heading ${first}`);
      assert.equal(oLines[0], first, args.join(' '));
      assert.ok(oLines.length > 1, args.join(' '));
      // (-device help: QEMU adds `, alias "virtio-net"`, a name netplane does not take.)
      const known = (l: string) =>
        qLines.has(l) || (args[1] === 'help' && [...qLines].some((q) => q.startsWith(l + ',')));
      for (const l of oLines.slice(1)) if (!own.test(l)) assert.ok(known(l), `${args.join(' ')}: ${JSON.stringify(l)}`);
    }
    for (const args of [
      ['-device', 'bogus,help'],
      ['-object', 'bogus,help'],
      ['-netdev', 'tap,help'],
    ]) {
      const { qemu: q, ours: o } = cliRun(args);
      // Deliberate: QEMU 7.2 exits 0 after "Device 'bogus' not found"; a failed request fails here.
      assert.equal(q.status, args[1] === 'bogus,help' && args[0] === '-device' ? 0 : 1, args.join(' '));
      assert.equal(o.status, 1, args.join(' '));
      assert.equal(progNorm(o.stderr), progNorm(q.stderr), args.join(' '));
    }
  });
});

describe('differential against QEMU 7.2 with TAPs: -nic tap, -net tap', { ...suiteSkip(), ...privileged() }, () => {
  test('-net nic + -net tap on hub 0, -nic tap with 2 queues: info network, netdev_del, set_link', T, async () => {
    const a = npName('dn');
    const b = npName('dm');
    const args = [
      '-nic',
      `tap,id=nt,ifname=${b},script=no,downscript=no,model=virtio-net-pci,queues=2,mac=52:54:00:00:00:42`,
      '-net',
      'nic,model=virtio-net-pci',
      '-net',
      `tap,id=lt,ifname=${a},script=no,downscript=no`,
    ];
    const steps: Step[] = [
      negotiate,
      { hmp: 'info network' },
      { qmp: exec('netdev_del', { id: 'lt' }) },
      { qmp: exec('set_link', { name: 'nt', up: false }) },
      { qmp: exec('netdev_del', { id: 'nt' }) },
      { hmp: 'info network' },
    ];
    const { qemu, ours } = await differential(args, steps, [a, b]);
    assert.deepEqual(warnings(ours.stderr), warnings(qemu.stderr));
    const { qemu: q, ours: o } = cliRun(['-net', `tap,ifname=${a},script=no,downscript=no,queues=2`]);
    assert.equal(o.status, 1);
    assert.equal(progNorm(o.stderr), progNorm(q.stderr));
  });

  test('filter-dump on a tap netdev: info network shows the filter as QEMU does', T, async () => {
    const a = npName('df');
    const dir = tempDir('fdt');
    try {
      const file = path.join(dir, 'c.pcap');
      const args = [
        '-netdev',
        `tap,id=n0,ifname=${a},script=no,downscript=no`,
        '-device',
        'virtio-net-pci,netdev=n0,id=nic0',
        '-object',
        `filter-dump,id=f0,netdev=n0,file=${file},maxlen=100`,
      ];
      const steps: Step[] = [
        negotiate,
        { hmp: 'info network' },
        { qmp: exec('object-add', { 'qom-type': 'filter-dump', id: 'f8', netdev: 'n0', file, status: 'off' }) },
        { hmp: 'info network' },
        { qmp: exec('object-del', { id: 'f0' }) },
        { qmp: exec('object-del', { id: 'f8' }) },
        { hmp: 'info network' },
      ];
      await differential(args, steps, [a]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
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
