// QMP fd passing (SCM_RIGHTS on the QMP socket), as QEMU 7.2 does it: getfd / closefd,
// add-fd / remove-fd / query-fdsets, fds named by getfd used by netdev_add tap,fd=NAME, and
// no fd left behind: unclaimed fds close on disconnect, named fds with the server, fd sets
// when the last client leaves. The texts are compared with QEMU 7.2 itself where it is
// installed. Fds are tracked by identity: each test passes fds of its own marker files and
// counts this process's fds that point at them.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { resolveMonitorFd, serveQmp, type QmpService } from '../lib/control';
import { native } from '../lib/native';
import { Tap } from '../lib/tap';
import { Topology } from '../lib/topology/topology';
import { npName } from './helpers/netns';
import { privileged } from './helpers/privilege';
import { QEMU, qemuMissing, QmpProcess, tempDir } from './helpers/qemu';
import { QmpTestClient, type QmpMessage } from './helpers/qmp-client';

const T = { timeout: 30_000 };
const CLI = path.join(__dirname, '..', 'lib', 'cli', 'main.ts');

/** Send one QMP command with `fds` attached (SCM_RIGHTS) and return the reply. */
async function executeWithFds(
  c: QmpTestClient,
  command: string,
  args: Record<string, unknown> | undefined,
  fds: number[],
): Promise<QmpMessage> {
  const fd = (c.socket as unknown as { _handle: { fd: number } })._handle.fd;
  const req = args === undefined ? { execute: command } : { execute: command, arguments: args };
  const data = Buffer.from(JSON.stringify(req) + '\n');
  assert.equal(native().fdSend(fd, data, fds), data.length);
  return c.next();
}

/** Marker files: fds we pass are opened on them, so their copies can be counted anywhere. */
class Markers implements Disposable {
  readonly dir = tempDir('fdpass');
  #n = 0;

  /** A new marker file and an fd open on it (the caller closes it). */
  open(): { path: string; fd: number } {
    const p = path.join(this.dir, `m${this.#n++}`);
    fs.writeFileSync(p, '');
    return { path: p, fd: fs.openSync(p, 'r') };
  }

  /** How many of this process's fds point at `p`. */
  static held(p: string): number {
    let n = 0;
    for (const name of fs.readdirSync('/proc/self/fd')) {
      try {
        if (fs.readlinkSync(`/proc/self/fd/${name}`) === p) n++;
      } catch {
        /* closed meanwhile */
      }
    }
    return n;
  }

  [Symbol.dispose](): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Pass a fresh marker's fd with a command; our own copy closes right after. */
async function passMarker(
  m: Markers,
  c: QmpTestClient,
  command: string,
  args?: Record<string, unknown>,
): Promise<{ reply: QmpMessage; path: string }> {
  const { path: p, fd } = m.open();
  try {
    return { reply: await executeWithFds(c, command, args, [fd]), path: p };
  } finally {
    fs.closeSync(fd);
  }
}

async function settle(cond: () => boolean): Promise<boolean> {
  for (let i = 0; i < 100 && !cond(); i++) await new Promise((r) => setTimeout(r, 20));
  return cond();
}

async function withService(fn: (s: QmpService, sock: string) => Promise<void>): Promise<void> {
  const dir = tempDir('fdqmp');
  const sock = path.join(dir, 'qmp.sock');
  const topology = new Topology({ resolveFd: resolveMonitorFd });
  const service = await serveQmp(topology, { path: sock, errorReport: () => {} });
  try {
    await fn(service, sock);
  } finally {
    await service.close();
    await topology.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const err = (desc: string) => ({ error: { class: 'GenericError', desc } });

describe('FdReader (the native recvmsg reader under the QMP server)', () => {
  const turns = async (n: number) => {
    for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
  };

  test('chunks with their fds, pause/resume, end of stream once, close from the callback', T, async () => {
    using m = new Markers();
    const n = native();
    const [a, b] = n.aioSocketPair();
    const got: Array<{ data: string | null; fds: string[]; error: string | null }> = [];
    const reader = new n.FdReader(b, (data, fds, error) => {
      got.push({
        data: data && data.toString(),
        fds: fds.map((fd) => fs.readlinkSync(`/proc/self/fd/${fd}`)),
        error: error && error.message,
      });
      for (const fd of fds) fs.closeSync(fd);
    });
    try {
      assert.notEqual(reader.fd, b, 'reads its own duplicate');
      const x = m.open();
      n.fdSend(a, Buffer.from('one'), [x.fd]);
      fs.closeSync(x.fd);
      for (let i = 0; i < 100 && got.length === 0; i++) await turns(1);
      assert.deepEqual(got, [{ data: 'one', fds: [x.path], error: null }]);
      reader.pause();
      n.fdSend(a, Buffer.from('two'), []);
      await turns(20);
      assert.equal(got.length, 1, 'nothing while paused');
      reader.resume();
      for (let i = 0; i < 100 && got.length < 2; i++) await turns(1);
      assert.deepEqual(got[1], { data: 'two', fds: [], error: null });
      fs.closeSync(a);
      for (let i = 0; i < 100 && got.length < 3; i++) await turns(1);
      assert.deepEqual(got[2], { data: null, fds: [], error: null });
      await turns(10);
      assert.equal(got.length, 3, 'nothing after the end');
    } finally {
      reader.close();
      fs.closeSync(b);
    }
    assert.equal(reader.closed, true);
    assert.equal(reader.fd, -1);
  });

  test(
    'closed from its own callback: nothing more arrives, and fds left in the socket are freed with it',
    T,
    async () => {
      using m = new Markers();
      const n = native();
      const [a, b] = n.aioSocketPair();
      let calls = 0;
      const reader = new n.FdReader(b, (_data, fds) => {
        calls++;
        for (const fd of fds) fs.closeSync(fd);
        reader.close();
      });
      const first = m.open();
      const second = m.open();
      n.fdSend(a, Buffer.from('1'), [first.fd]);
      n.fdSend(a, Buffer.from('2'), [second.fd]);
      fs.closeSync(first.fd);
      fs.closeSync(second.fd);
      for (let i = 0; i < 100 && calls === 0; i++) await turns(1);
      await turns(10);
      assert.equal(calls, 1);
      fs.closeSync(a);
      fs.closeSync(b);
      assert.ok(await settle(() => Markers.held(second.path) === 0), 'the unread fd went with the socket');
    },
  );

  test('bad arguments throw clear errors', () => {
    const n = native();
    assert.throws(() => new n.FdReader(-1, () => {}), /fd must be a file descriptor/);
    assert.throws(() => new n.FdReader(0, 'x' as never), /onData must be a function/);
    assert.throws(() => new n.FdReader(1 << 20, () => {}), { code: 'EBADF' });
    assert.throws(() => n.fdSend(1 << 20, Buffer.from('x'), []), { code: 'EBADF', syscall: 'sendmsg' });
    assert.throws(() => n.fdSend(0, Buffer.alloc(0), []), /at least one byte/);
    assert.throws(() => n.fdSend(0, Buffer.from('x'), new Array(254).fill(0)), /at most 253 fds/);
    assert.throws(() => n.fdSetCloexec(1 << 20), { code: 'EBADF' });
  });

  test('a worker that exits with a reader open ends cleanly', T, async () => {
    const { Worker } = await import('node:worker_threads');
    const code = `
      require('tsx/cjs');
      const { native } = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'native.ts'))});
      const n = native();
      const [a, b] = n.aioSocketPair();
      new n.FdReader(b, () => {});
      n.fdSend(a, Buffer.from('x'), [a]);
      setTimeout(() => process.exit(0), 20);
    `;
    const w = new Worker(code, { eval: true });
    const exitCode = await new Promise<number>((resolve) => w.once('exit', resolve));
    assert.equal(exitCode, 0);
  });
});

describe('QMP getfd / closefd', () => {
  test('errors and texts; a rejected fd is closed at once', T, async () => {
    using m = new Markers();
    await withService(async (_s, sock) => {
      const { client: c } = await QmpTestClient.open(sock);
      assert.deepEqual(await c.execute('getfd', { fdname: 'a' }), err('No file descriptor supplied via SCM_RIGHTS'));
      const digit = await passMarker(m, c, 'getfd', { fdname: '1a' });
      assert.deepEqual(digit.reply, err("Parameter 'fdname' expects a name not starting with a digit"));
      assert.equal(Markers.held(digit.path), 0, 'the rejected fd is closed');
      assert.deepEqual(await c.execute('getfd', {}), err("Parameter 'fdname' is missing"));
      assert.deepEqual(await c.execute('closefd', { fdname: 'zz' }), err("File descriptor named 'zz' not found"));
      c.close();
    });
  });

  test('a name holds one fd: getfd again replaces (and closes) it, closefd closes it', T, async () => {
    using m = new Markers();
    await withService(async (_s, sock) => {
      const { client: c } = await QmpTestClient.open(sock);
      const first = await passMarker(m, c, 'getfd', { fdname: 'a' });
      assert.deepEqual(first.reply, { return: {} });
      assert.equal(Markers.held(first.path), 1, 'the monitor holds the fd');
      const second = await passMarker(m, c, 'getfd', { fdname: 'a' });
      assert.deepEqual(second.reply, { return: {} });
      assert.equal(Markers.held(first.path), 0, 'the replaced fd is closed');
      assert.equal(Markers.held(second.path), 1);
      assert.deepEqual(await c.execute('closefd', { fdname: 'a' }), { return: {} });
      assert.equal(Markers.held(second.path), 0);
      assert.deepEqual(await c.execute('closefd', { fdname: 'a' }), err("File descriptor named 'a' not found"));
      c.close();
    });
  });

  test('fds wait for the next getfd; a newer message replaces them; the first of several is used', T, async () => {
    using m = new Markers();
    await withService(async (_s, sock) => {
      const { client: c } = await QmpTestClient.open(sock);
      // An fd that came with another command waits, as in QEMU, for a getfd or add-fd.
      const early = await passMarker(m, c, 'query-version');
      assert.ok('return' in early.reply);
      assert.equal(Markers.held(early.path), 1);
      const later = await passMarker(m, c, 'query-version');
      assert.equal(Markers.held(early.path), 0, 'replaced by the fds of a newer message');
      assert.deepEqual(await c.execute('getfd', { fdname: 'w' }), { return: {} });
      assert.equal(Markers.held(later.path), 1, 'now held under its name');
      // Several fds in one message: the first is taken, the others close.
      const a = m.open();
      const b = m.open();
      assert.deepEqual(await executeWithFds(c, 'getfd', { fdname: 'two' }, [a.fd, b.fd]), { return: {} });
      fs.closeSync(a.fd);
      fs.closeSync(b.fd);
      assert.equal(Markers.held(a.path), 1);
      assert.equal(Markers.held(b.path), 0);
      c.close();
    });
  });

  test('unclaimed fds close on disconnect; named fds outlive a reconnect and close with the server', T, async () => {
    using m = new Markers();
    let named = '';
    await withService(async (_s, sock) => {
      const { client: c } = await QmpTestClient.open(sock);
      named = (await passMarker(m, c, 'getfd', { fdname: 'keep' })).path;
      const unclaimed = await passMarker(m, c, 'query-version');
      // Many fds in one message, nobody takes them.
      const many = Array.from({ length: 20 }, () => m.open());
      await executeWithFds(
        c,
        'query-version',
        undefined,
        many.map((x) => x.fd),
      );
      for (const x of many) fs.closeSync(x.fd);
      assert.equal(Markers.held(many[0]!.path), 1);
      c.close();
      assert.ok(
        await settle(() => Markers.held(unclaimed.path) === 0 && many.every((x) => Markers.held(x.path) === 0)),
        'closed on disconnect',
      );
      assert.equal(Markers.held(named), 1, 'a named fd belongs to the monitor, not the connection');
      const { client: again } = await QmpTestClient.open(sock);
      assert.deepEqual(await again.execute('closefd', { fdname: 'keep' }), { return: {} });
      assert.equal(Markers.held(named), 0);
      named = (await passMarker(m, again, 'getfd', { fdname: 'left' })).path;
      again.close();
    });
    assert.equal(Markers.held(named), 0, 'named fds close with the server');
  });
});

describe('QMP add-fd / remove-fd / query-fdsets', () => {
  test('ids, opaque, order, removal texts', T, async () => {
    using m = new Markers();
    await withService(async (s, sock) => {
      const { client: c } = await QmpTestClient.open(sock);
      assert.deepEqual(await c.execute('add-fd'), err('No file descriptor supplied via SCM_RIGHTS'));
      const r0 = await passMarker(m, c, 'add-fd');
      const r1 = await passMarker(m, c, 'add-fd');
      const r5 = await passMarker(m, c, 'add-fd', { 'fdset-id': 5, opaque: 'hello' });
      const neg = await passMarker(m, c, 'add-fd', { 'fdset-id': -1 });
      assert.deepEqual(neg.reply, err("Parameter 'fdset-id' expects a non-negative value"));
      assert.equal(Markers.held(neg.path), 0, 'a refused fd is closed');
      const r0b = await passMarker(m, c, 'add-fd', { 'fdset-id': 0 });
      const r2 = await passMarker(m, c, 'add-fd');
      const fdOf = (r: { reply: QmpMessage }) => r.reply.return.fd as number;
      assert.deepEqual(Object.keys(r0.reply.return), ['fd', 'fdset-id']);
      assert.deepEqual(
        [r0, r1, r5, r0b, r2].map((r) => r.reply.return['fdset-id']),
        [0, 1, 5, 0, 2],
      );
      for (const r of [r0, r1, r5, r0b, r2])
        assert.equal(fs.readlinkSync(`/proc/self/fd/${fdOf(r)}`), r.path, 'the fd number is ours');
      assert.deepEqual(await c.execute('query-fdsets'), {
        return: [
          { fds: [{ fd: fdOf(r5), opaque: 'hello' }], 'fdset-id': 5 },
          { fds: [{ fd: fdOf(r2) }], 'fdset-id': 2 },
          { fds: [{ fd: fdOf(r1) }], 'fdset-id': 1 },
          { fds: [{ fd: fdOf(r0) }, { fd: fdOf(r0b) }], 'fdset-id': 0 },
        ],
      });
      assert.deepEqual(
        await c.execute('remove-fd', { 'fdset-id': 9 }),
        err("File descriptor named 'fdset-id:9' not found"),
      );
      assert.deepEqual(
        await c.execute('remove-fd', { 'fdset-id': 0, fd: 99999 }),
        err("File descriptor named 'fdset-id:0, fd:99999' not found"),
      );
      assert.deepEqual(await c.execute('remove-fd', { 'fdset-id': 0, fd: fdOf(r0) }), { return: {} });
      assert.equal(Markers.held(r0.path), 0);
      assert.deepEqual(await c.execute('remove-fd', { 'fdset-id': 1 }), { return: {} });
      assert.equal(Markers.held(r1.path), 0);
      assert.deepEqual(
        await c.execute('remove-fd', { 'fdset-id': 1 }),
        err("File descriptor named 'fdset-id:1' not found"),
      );
      // The lowest free id is reused.
      const again = await passMarker(m, c, 'add-fd');
      assert.equal(again.reply.return['fdset-id'], 1);
      assert.equal(s.server.fdSets.fdCount, 4);
      // The last client leaving closes every fd still in a set.
      c.close();
      assert.ok(await settle(() => s.server.fdSets.fdCount === 0));
      for (const r of [r5, r0b, r2, again]) assert.equal(Markers.held(r.path), 0, `${r.path} closed`);
      const { client: d } = await QmpTestClient.open(sock);
      assert.deepEqual(await d.execute('query-fdsets'), { return: [] });
      d.close();
    });
  });
});

describe('netdev_add tap with passed fds', { ...privileged() }, () => {
  test(
    'fd=NAME takes the named fd; fds=A:B; an add-fd number; names do not reach HMP',
    { timeout: 60_000 },
    async () => {
      const single = npName('fps');
      const multi = npName('fpm');
      const byNumber = npName('fpn');
      await withService(async (s, sock) => {
        const { client: c } = await QmpTestClient.open(sock);
        // The test opens the TAPs (as a privileged parent would) and hands them over.
        const t1 = Tap.open({ ifname: single });
        const t2 = Tap.open({ ifname: multi, queues: 2 });
        const t3 = Tap.open({ ifname: byNumber });
        try {
          assert.deepEqual(await executeWithFds(c, 'getfd', { fdname: 'tap1' }, [t1.fd(0)]), { return: {} });
          assert.deepEqual(await executeWithFds(c, 'getfd', { fdname: 'q0' }, [t2.fd(0)]), { return: {} });
          assert.deepEqual(await executeWithFds(c, 'getfd', { fdname: 'q1' }, [t2.fd(1)]), { return: {} });
          const added = await executeWithFds(c, 'add-fd', undefined, [t3.fd(0)]);
          const setFd = added.return.fd as number;
          assert.deepEqual(
            await c.execute('netdev_add', { type: 'tap', id: 'n1', fd: 'nosuch' }),
            err("File descriptor named 'nosuch' has not been found"),
          );
          assert.deepEqual(
            await c.execute('netdev_add', { type: 'tap', id: 'n1', fd: '3x' }),
            err("Invalid file descriptor number '3x'"),
          );
          // HMP through QMP is a fresh monitor without fds (QEMU's human-monitor-command).
          assert.equal(
            await c.hmp('netdev_add tap,id=n1,fd=tap1'),
            "Error: File descriptor named 'tap1' has not been found\r\n",
          );
          assert.deepEqual(await c.execute('netdev_add', { type: 'tap', id: 'n1', fd: 'tap1' }), { return: {} });
          assert.deepEqual(
            await c.execute('closefd', { fdname: 'tap1' }),
            err("File descriptor named 'tap1' not found"),
            'netdev_add took it',
          );
          assert.deepEqual(await c.execute('netdev_add', { type: 'tap', id: 'n2', fds: 'q0:q1' }), { return: {} });
          assert.deepEqual(await c.execute('netdev_add', { type: 'tap', id: 'n3', fd: String(setFd) }), { return: {} });
          const info = await c.hmp('info network');
          assert.match(info, /^n1: index=0,type=tap,fd=\d+\r\n/m);
          // Both queues of a multiqueue tap print index=0 (QEMU 7.2).
          assert.match(info, /^n2: index=0,type=tap,fd=\d+\r\nn2: index=0,type=tap,fd=\d+\r\n/m);
          assert.match(info, new RegExp(`^n3: index=0,type=tap,fd=${setFd}\\r\\n`, 'm'));
          // The TAPs live on in netplane alone once the test's own fds close...
          await t1.close();
          await t2.close();
          await t3.close();
          assert.ok(fs.existsSync(`/sys/class/net/${single}`));
          assert.ok(fs.existsSync(`/sys/class/net/${multi}`));
          // ...and netdev_del really releases them: nobody else holds the named fds.
          assert.deepEqual(await c.execute('netdev_del', { id: 'n1' }), { return: {} });
          assert.deepEqual(await c.execute('netdev_del', { id: 'n2' }), { return: {} });
          assert.ok(
            await settle(() => !fs.existsSync(`/sys/class/net/${single}`) && !fs.existsSync(`/sys/class/net/${multi}`)),
          );
          // The add-fd copy stays in its set (netdev_add duplicated it) until remove-fd.
          assert.deepEqual(await c.execute('netdev_del', { id: 'n3' }), { return: {} });
          assert.ok(fs.existsSync(`/sys/class/net/${byNumber}`));
          assert.deepEqual(await c.execute('remove-fd', { 'fdset-id': added.return['fdset-id'] }), { return: {} });
          assert.ok(await settle(() => !fs.existsSync(`/sys/class/net/${byNumber}`)));
          assert.equal(s.server.namedFds.size, 0);
        } finally {
          c.close();
          await Promise.all([t1.close(), t2.close(), t3.close()]);
        }
      });
    },
  );
});

// ---- the same conversation with QEMU 7.2 and with netplane ------------------------------

/** A step: a QMP command, sent with `fds` fresh /dev/null fds. */
interface FdStep {
  execute: string;
  arguments?: Record<string, unknown>;
  fds?: number;
}

const CONVERSATION: FdStep[] = [
  { execute: 'getfd', arguments: { fdname: 'a' } },
  { execute: 'getfd', arguments: { fdname: '1a' }, fds: 1 },
  { execute: 'getfd', arguments: { fdname: 'a' }, fds: 1 },
  { execute: 'getfd', arguments: { fdname: 'a' }, fds: 1 },
  { execute: 'getfd', arguments: { fdname: 'b' }, fds: 2 },
  { execute: 'getfd', arguments: { fdname: '' }, fds: 1 },
  { execute: 'getfd', fds: 1 },
  { execute: 'getfd', arguments: { fdname: 'late' } }, // takes the fd the failed getfd brought
  { execute: 'closefd', arguments: { fdname: 'zz' } },
  { execute: 'closefd', arguments: { fdname: 'a' } },
  { execute: 'closefd', arguments: { fdname: 'a' } },
  { execute: 'add-fd' },
  { execute: 'add-fd', fds: 1 },
  { execute: 'add-fd', fds: 1 },
  { execute: 'add-fd', arguments: { 'fdset-id': 5, opaque: 'hello' }, fds: 1 },
  { execute: 'add-fd', arguments: { 'fdset-id': -1 }, fds: 1 },
  { execute: 'add-fd', arguments: { 'fdset-id': 0 }, fds: 3 },
  { execute: 'add-fd', fds: 1 },
  { execute: 'query-fdsets' },
  { execute: 'remove-fd', arguments: { 'fdset-id': 9 } },
  { execute: 'remove-fd', arguments: { 'fdset-id': 0, fd: 99999 } },
  { execute: 'remove-fd', arguments: { 'fdset-id': 1 } },
  { execute: 'remove-fd', arguments: { 'fdset-id': 1 } },
  { execute: 'query-fdsets' },
  { execute: 'add-fd', arguments: { opaque: 'x' }, fds: 1 },
  { execute: 'query-fdsets' },
  { execute: 'add-fd', arguments: { 'fdset-id': 'x' }, fds: 1 },
  { execute: 'remove-fd' },
  { execute: 'netdev_add', arguments: { type: 'tap', id: 't1', fd: 'zz' } },
  { execute: 'netdev_add', arguments: { type: 'tap', id: 't1', fd: '3x' } },
  { execute: 'netdev_add', arguments: { type: 'tap', id: 't1', fd: 'b' } }, // /dev/null: not a TAP, and taken
  { execute: 'closefd', arguments: { fdname: 'b' } },
  // (With a good name first and a bad one after, QEMU checks the first fd before looking up
  // the second; netplane looks up all names first. Only the error order differs.)
  { execute: 'netdev_add', arguments: { type: 'tap', id: 't1', fds: 'zz:late' } },
  { execute: 'closefd', arguments: { fdname: 'late' } },
  { execute: 'human-monitor-command', arguments: { 'command-line': 'netdev_add tap,id=t4,fd=x' } },
  { execute: 'human-monitor-command', arguments: { 'command-line': 'netdev_add tap,id=t4,fd=999' } },
];

/** Replace fd numbers (they differ between processes) by their order of appearance. */
function normalizeFds(replies: unknown[]): unknown[] {
  const seen = new Map<number, string>();
  const name = (n: string): string => {
    const fd = Number(n);
    if (!seen.has(fd)) seen.set(fd, `#${seen.size}`);
    return seen.get(fd)!;
  };
  const text = JSON.stringify(replies)
    .replace(/"fd":(\d+)/g, (_all, n: string) => `"fd":"${name(n)}"`)
    .replace(/(FD |fd=|file descriptor )(\d+)/g, (all, pre: string, n: string) =>
      n === '99999' || n === '999' ? all : `${pre}${name(n)}`,
    );
  return JSON.parse(text) as unknown[];
}

async function fdConversation(program: string, args: string[]): Promise<unknown[]> {
  const proc = await QmpProcess.start(program, args, { timeoutMs: 20_000 });
  try {
    const { client: c } = await QmpTestClient.open(proc.socketPath);
    const replies: unknown[] = [];
    for (const step of CONVERSATION) {
      const fds = Array.from({ length: step.fds ?? 0 }, () => fs.openSync('/dev/null', 'r'));
      try {
        replies.push(await executeWithFds(c, step.execute, step.arguments, fds));
      } finally {
        for (const fd of fds) fs.closeSync(fd);
      }
    }
    c.close();
    return replies;
  } finally {
    await proc.stop();
  }
}

describe('fd passing compared with QEMU 7.2', { skip: process.env.CI === 'true' ? undefined : qemuMissing() }, () => {
  test('the same replies, fd numbers aside', { timeout: 90_000 }, async () => {
    // A running machine (no -S): QEMU frees removed fds only while it runs; netplane always runs.
    const qemu = await fdConversation(QEMU, ['-M', 'none', '-nodefaults', '-display', 'none', '-accel', 'tcg']);
    const ours = await fdConversation(process.execPath, ['--import', 'tsx', CLI]);
    assert.equal(ours.length, qemu.length);
    const q = normalizeFds(qemu);
    const o = normalizeFds(ours);
    for (let i = 0; i < q.length; i++) {
      assert.deepEqual(o[i], q[i], `step ${i}: ${JSON.stringify(CONVERSATION[i])}`);
    }
  });
});
