// netplane as an unprivileged user (uid 65534, no capabilities) on TAPs it did not create,
// forwarding real traffic between two namespaces:
//  1. persistent TAPs owned by that user (`ip tuntap add ... user 65534 multi_queue
//     vnet_hdr`), opened by name;
//  2. TAP fds opened by a privileged parent and inherited: -netdev tap,fds=3:4;
//  3. TAP fds passed over QMP with SCM_RIGHTS: getfd + netdev_add fds=NAME:NAME, and add-fd.
// The privileged setup (creating TAPs, moving them into namespaces, addresses) is done by
// this test, as root, around the unprivileged engine. Creating a TAP as that user fails
// with EPERM and a hint.
//
// This machine's /dev/net/tun may be root-only (most distributions make it 0666): for the
// by-name case the engine then runs in a private mount namespace where a 0666 node of the
// same device is bound over /dev/net/tun. Fd passing needs no /dev/net/tun at all.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { native } from '../lib/native';
import { Tap } from '../lib/tap';
import { NetNs, npName, sh } from './helpers/netns';
import { privileged } from './helpers/privilege';
import { toolsMissing } from './helpers/tools';
import { tempDir } from './helpers/qemu';
import { QmpTestClient, type QmpMessage } from './helpers/qmp-client';

const UID = 65534;
const ROOT = path.join(__dirname, '..');

/**
 * The engine as an unprivileged user sees it: the checkout may sit under a directory
 * only root can enter (a mktemp clone is 0700), so the compiled CLI, the addon and the
 * one runtime dependency are copied to a world-readable directory, removed at exit.
 */
function stageRuntime(): string | undefined {
  const need = [path.join(ROOT, 'dist', 'cli', 'main.js'), path.join(ROOT, 'build', 'Release', 'netplane.node')];
  if (!need.every((p) => fs.existsSync(p))) return undefined;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'np-unpriv-'));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  fs.chmodSync(dir, 0o755);
  for (const part of [
    'dist',
    'package.json',
    path.join('build', 'Release', 'netplane.node'),
    path.join('node_modules', 'node-gyp-build'),
  ]) {
    fs.cpSync(path.join(ROOT, part), path.join(dir, part), { recursive: true });
  }
  for (const sub of ['build', path.join('build', 'Release'), 'node_modules']) fs.chmodSync(path.join(dir, sub), 0o755);
  return dir;
}
const RUNTIME = stageRuntime();
const CLI = RUNTIME === undefined ? '' : path.join(RUNTIME, 'dist', 'cli', 'main.js');
const T = { timeout: 120_000 };

/** Whether `p` and the directories above it are readable (and searchable) by others. */
function othersCanRead(p: string): boolean {
  for (let dir = p; ; dir = path.dirname(dir)) {
    const mode = fs.statSync(dir).mode;
    const need = fs.statSync(dir).isDirectory() ? 0o005 : 0o004;
    if ((mode & need) !== need) return false;
    if (dir === '/') return true;
  }
}

/** Why the unprivileged engine cannot run from this checkout, or undefined. */
function setupMissing(): string | undefined {
  const tools = toolsMissing('setpriv', 'ping');
  if (tools !== undefined) return tools;
  if (RUNTIME === undefined) return 'dist/ or build/Release/netplane.node is missing (npm run build)';
  if (!othersCanRead(CLI)) return `${CLI} is not readable by uid ${UID}`;
  return undefined;
}

function suiteOptions(): { skip?: string } {
  const p = privileged();
  if (p.skip) return p;
  const why = setupMissing();
  if (why !== undefined && process.env.CI === 'true')
    throw new Error(`unprivileged tests cannot run under CI=true: ${why}`);
  return why === undefined ? {} : { skip: why };
}

/** A 0666 node of /dev/net/tun in `dir`, or undefined when the real one is open to all. */
function worldTun(dir: string): string | undefined {
  if ((fs.statSync('/dev/net/tun').mode & 0o006) === 0o006) return undefined;
  const node = path.join(dir, 'tun');
  sh('mknod', ['-m', '0666', node, 'c', '10', '200']);
  return node;
}

/**
 * The command that runs `argv` as uid/gid 65534 with no capabilities at all (inheritable,
 * ambient and bounding sets cleared), optionally with `tun` bound over /dev/net/tun.
 */
function asNobody(argv: string[], tun?: string): string[] {
  const drop = [
    'setpriv',
    `--reuid=${UID}`,
    `--regid=${UID}`,
    '--clear-groups',
    '--inh-caps=-all',
    '--bounding-set=-all',
    '--',
  ];
  if (tun === undefined) return [...drop, ...argv];
  // "$0" is the node, "$@" the rest: no quoting of our own arguments anywhere.
  return [
    'unshare',
    '--mount',
    '--propagation',
    'private',
    '--',
    'sh',
    '-c',
    'mount --bind "$0" /dev/net/tun && exec "$@"',
    tun,
    ...drop,
    ...argv,
  ];
}

/** The unprivileged engine with a QMP socket in a directory that user owns. */
class Engine {
  stderr = '';
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  readonly exited: Promise<void>;

  private constructor(
    readonly child: ChildProcess,
    readonly sock: string,
  ) {
    child.stderr?.setEncoding('utf8').on('data', (t: string) => (this.stderr += t));
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve();
      }),
    );
  }

  static async start(dir: string, args: string[], opts: { tun?: string; fds?: number[] } = {}): Promise<Engine> {
    const sock = path.join(dir, 'qmp.sock');
    const argv = asNobody([process.execPath, CLI, ...args, '-qmp', `unix:${sock},server=on,wait=off`], opts.tun);
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: RUNTIME,
      // The engine needs nothing from our environment.
      env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: dir },
      stdio: ['ignore', 'ignore', 'pipe', ...(opts.fds ?? [])],
    });
    const e = new Engine(child, sock);
    for (let i = 0; i < 400 && !fs.existsSync(sock) && e.exit === undefined; i++)
      await new Promise((r) => setTimeout(r, 50));
    if (!fs.existsSync(sock)) {
      await e.stop();
      throw new Error(
        `the unprivileged engine did not open its QMP socket (exit ${JSON.stringify(e.exit)}): ${e.stderr}`,
      );
    }
    return e;
  }

  /** Who the engine runs as: uid and effective capabilities from /proc. */
  identity(): { uid: number; capEff: bigint } {
    const status = fs.readFileSync(`/proc/${this.child.pid}/status`, 'utf8');
    const uid = Number(/^Uid:\s+(\d+)/m.exec(status)![1]);
    const capEff = BigInt('0x' + /^CapEff:\s+([0-9a-f]+)/m.exec(status)![1]);
    return { uid, capEff };
  }

  /** The engine's IP sockets (TCP or UDP, v4 or v6): there must be none. */
  inetSockets(): string[] {
    const inodes = new Set<string>();
    for (const name of fs.readdirSync(`/proc/${this.child.pid}/fd`)) {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${this.child.pid}/fd/${name}`));
      if (m) inodes.add(m[1]!);
    }
    const found: string[] = [];
    for (const table of ['tcp', 'tcp6', 'udp', 'udp6']) {
      const lines = fs.readFileSync(`/proc/${this.child.pid}/net/${table}`, 'utf8').trim().split('\n').slice(1);
      for (const line of lines) {
        const inode = line.trim().split(/\s+/)[9];
        if (inode !== undefined && inodes.has(inode)) found.push(`${table}: ${line.trim()}`);
      }
    }
    return found;
  }

  async waitExit(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const ok = await Promise.race([
      this.exited.then(() => true),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms))),
    ]);
    clearTimeout(timer);
    return ok;
  }

  async stop(): Promise<void> {
    if (this.exit !== undefined) return;
    this.child.kill('SIGTERM');
    if (!(await this.waitExit(10_000))) {
      this.child.kill('SIGKILL');
      await this.waitExit(5_000);
    }
  }
}

/** A directory the unprivileged user may write (for its QMP socket), removed afterwards. */
function userDir(tag: string): string {
  const dir = tempDir(tag);
  fs.chownSync(dir, UID, UID);
  return dir;
}

function ping(ns: NetNs, addr: string): string {
  return spawnSync('ip', ['netns', 'exec', ns.name, 'ping', '-c', '3', '-i', '0.2', '-W', '1', addr], {
    encoding: 'utf8',
    timeout: 20_000,
  }).stdout;
}

function linkIn(ns: NetNs | undefined, ifname: string): boolean {
  const args = ns ? ['-n', ns.name, 'link', 'show', ifname] : ['link', 'show', ifname];
  return spawnSync('ip', args, { stdio: 'ignore' }).status === 0;
}

async function settle(cond: () => boolean, ms = 5_000): Promise<boolean> {
  for (let waited = 0; waited < ms && !cond(); waited += 50) await new Promise((r) => setTimeout(r, 50));
  return cond();
}

/** QMP command with fds attached (SCM_RIGHTS). */
async function executeWithFds(
  c: QmpTestClient,
  command: string,
  args: Record<string, unknown>,
  fds: number[],
): Promise<QmpMessage> {
  const fd = (c.socket as unknown as { _handle: { fd: number } })._handle.fd;
  const data = Buffer.from(JSON.stringify({ execute: command, arguments: args }) + '\n');
  assert.equal(native().fdSend(fd, data, fds), data.length);
  return c.next();
}

/** Persistent TAPs live until deleted: in whichever namespace they ended up. */
function deletePersistentTap(ifname: string, where: Array<NetNs | undefined>): void {
  for (const ns of where) {
    const pre = ns ? ['-n', ns.name] : [];
    if (linkIn(ns, ifname))
      sh('ip', [...pre, 'tuntap', 'del', 'dev', ifname, 'mode', 'tap', 'multi_queue'], { allowFail: true });
  }
}

describe('netplane without privileges', suiteOptions(), () => {
  test('opens user-owned persistent multiqueue TAPs by name and forwards between namespaces', T, async () => {
    const ifA = npName('upa');
    const ifB = npName('upb');
    const dir = userDir('unpriv-name');
    let nsA: NetNs | undefined;
    let nsB: NetNs | undefined;
    let engine: Engine | undefined;
    try {
      for (const ifname of [ifA, ifB]) {
        sh('ip', ['tuntap', 'add', 'dev', ifname, 'mode', 'tap', 'user', String(UID), 'multi_queue', 'vnet_hdr']);
      }
      const tun = worldTun(dir);
      engine = await Engine.start(
        dir,
        ['-netdev', `tap,id=a,ifname=${ifA},queues=2`, '-netdev', `tap,id=b,ifname=${ifB},queues=2`, '-link', 'a,b'],
        { tun },
      );
      assert.deepEqual(engine.identity(), { uid: UID, capEff: 0n });
      const st = fs.statSync(engine.sock);
      assert.equal(st.mode & 0o777, 0o600, 'QMP socket mode');
      assert.equal(st.uid, UID);
      assert.deepEqual(engine.inetSockets(), [], 'no TCP or UDP socket: QMP listens on its unix socket only');
      // Root moves the interfaces (that needs CAP_NET_ADMIN); the engine keeps its fds.
      nsA = new NetNs('upx');
      nsB = new NetNs('upy');
      nsA.adopt(ifA, '10.196.1.1/24');
      nsB.adopt(ifB, '10.196.1.2/24');
      assert.match(ping(nsA, '10.196.1.2'), / 0% packet loss/);
      const { client: c } = await QmpTestClient.open(engine.sock);
      const info = await c.hmp('info network');
      assert.ok(
        info.startsWith(
          `a: index=0,type=tap,ifname=${ifA},script=no,downscript=no\r\n \\ b: index=0,type=tap,ifname=${ifB}`,
        ),
        info,
      );
      assert.deepEqual(await c.execute('quit'), { return: {} });
      c.close();
      assert.ok(await engine.waitExit(20_000), 'engine exits on quit');
      assert.equal(engine.exit?.code, 0, engine.stderr);
      // Persistent: the interfaces outlive the engine until deleted.
      assert.ok(linkIn(nsA, ifA) && linkIn(nsB, ifB));
    } finally {
      await engine?.stop();
      deletePersistentTap(ifA, [undefined, nsA]);
      deletePersistentTap(ifB, [undefined, nsB]);
      nsA?.dispose();
      nsB?.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    }
    assert.ok(!linkIn(undefined, ifA) && !linkIn(undefined, ifB));
  });

  test('creating a TAP, or opening one owned by someone else, fails with EPERM and a hint', T, async () => {
    const foreign = npName('upf');
    const dir = userDir('unpriv-eperm');
    try {
      // Owned by root. (Without `user`/`group`, a persistent TAP is open to everyone who can
      // open /dev/net/tun.)
      sh('ip', ['tuntap', 'add', 'dev', foreign, 'mode', 'tap', 'user', '0']);
      const tun = worldTun(dir);
      for (const ifname of [npName('upn'), foreign]) {
        const argv = asNobody([process.execPath, CLI, '-netdev', `tap,id=t,ifname=${ifname}`], tun);
        const r = spawnSync(argv[0]!, argv.slice(1), {
          cwd: RUNTIME,
          encoding: 'utf8',
          timeout: 30_000,
          env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir },
        });
        assert.equal(r.status, 1, r.stderr);
        assert.ok(
          r.stderr.includes(
            `netplane: -netdev tap,id=t,ifname=${ifname}: could not configure /dev/net/tun (${ifname}): Operation not permitted\n`,
          ) && r.stderr.includes('needs CAP_NET_ADMIN'),
          r.stderr,
        );
      }
    } finally {
      sh('ip', ['link', 'del', foreign], { allowFail: true });
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('adopts TAP fds inherited from a privileged parent (fds=3:4, fds=5:6)', T, async () => {
    const ifA = npName('ufa');
    const ifB = npName('ufb');
    const dir = userDir('unpriv-fd');
    let nsA: NetNs | undefined;
    let nsB: NetNs | undefined;
    let engine: Engine | undefined;
    // The privileged parent: opens (creates) the TAPs and hands the queue fds down.
    const tapA = Tap.open({ ifname: ifA, queues: 2 });
    const tapB = Tap.open({ ifname: ifB, queues: 2 });
    try {
      engine = await Engine.start(dir, ['-netdev', 'tap,id=a,fds=3:4', '-netdev', 'tap,id=b,fds=5:6', '-link', 'a,b'], {
        fds: [tapA.fd(0), tapA.fd(1), tapB.fd(0), tapB.fd(1)],
      });
      assert.deepEqual(engine.identity(), { uid: UID, capEff: 0n });
      // From now on only the engine holds the TAPs.
      await tapA.close();
      await tapB.close();
      nsA = new NetNs('ufx');
      nsB = new NetNs('ufy');
      nsA.adopt(ifA, '10.196.2.1/24');
      nsB.adopt(ifB, '10.196.2.2/24');
      assert.match(ping(nsA, '10.196.2.2'), / 0% packet loss/);
      const { client: c } = await QmpTestClient.open(engine.sock);
      assert.equal(
        await c.hmp('info network'),
        'a: index=0,type=tap,fd=3\r\n \\ b: index=0,type=tap,fd=5\r\na: index=1,type=tap,fd=4\r\n \\ b: index=1,type=tap,fd=6\r\n',
      );
      // The engine owns the fds now (it closed the inherited ones once adopted, as QEMU owns
      // them): deleting the netdev really removes the interface.
      assert.deepEqual(await c.execute('netdev_del', { id: 'a' }), { return: {} });
      assert.ok(await settle(() => !linkIn(nsA, ifA)), `${ifA} is gone after netdev_del`);
      c.close();
      engine.child.kill('SIGTERM');
      assert.ok(await engine.waitExit(20_000));
      assert.equal(engine.exit?.code, 0, engine.stderr);
      assert.ok(await settle(() => !linkIn(nsB, ifB)), `${ifB} is gone with the engine`);
    } finally {
      await engine?.stop();
      await tapA.close();
      await tapB.close();
      nsA?.dispose();
      nsB?.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('takes TAP fds over QMP: getfd + netdev_add fds=NAME:NAME, add-fd + fd=NUMBER, hubports', T, async () => {
    const ifA = npName('uqa');
    const ifB = npName('uqb');
    const dir = userDir('unpriv-qmp');
    let nsA: NetNs | undefined;
    let nsB: NetNs | undefined;
    let engine: Engine | undefined;
    const tapA = Tap.open({ ifname: ifA, queues: 2 });
    const tapB = Tap.open({ ifname: ifB });
    try {
      engine = await Engine.start(dir, []);
      assert.deepEqual(engine.identity(), { uid: UID, capEff: 0n });
      const { client: c } = await QmpTestClient.open(engine.sock);
      assert.deepEqual(await executeWithFds(c, 'getfd', { fdname: 'a0' }, [tapA.fd(0)]), { return: {} });
      assert.deepEqual(await executeWithFds(c, 'getfd', { fdname: 'a1' }, [tapA.fd(1)]), { return: {} });
      const added = await executeWithFds(c, 'add-fd', { opaque: 'tap b' }, [tapB.fd(0)]);
      const fdB = added.return.fd as number;
      assert.deepEqual(await c.execute('netdev_add', { type: 'tap', id: 'a', fds: 'a0:a1' }), { return: {} });
      assert.deepEqual(await c.execute('netdev_add', { type: 'tap', id: 'b', fd: String(fdB) }), { return: {} });
      assert.deepEqual(await c.execute('netdev_add', { type: 'hubport', id: 'pa', hubid: 0, netdev: 'a' }), {
        return: {},
      });
      assert.deepEqual(await c.execute('netdev_add', { type: 'hubport', id: 'pb', hubid: 0, netdev: 'b' }), {
        return: {},
      });
      await tapA.close();
      await tapB.close();
      nsA = new NetNs('uqx');
      nsB = new NetNs('uqy');
      nsA.adopt(ifA, '10.196.3.1/24');
      nsB.adopt(ifB, '10.196.3.2/24');
      assert.match(ping(nsA, '10.196.3.2'), / 0% packet loss/);
      assert.deepEqual(await c.execute('query-fdsets'), {
        return: [{ fds: [{ fd: fdB, opaque: 'tap b' }], 'fdset-id': 0 }],
      });
      assert.deepEqual(await c.execute('quit'), { return: {} });
      c.close();
      assert.ok(await engine.waitExit(20_000));
      assert.equal(engine.exit?.code, 0, engine.stderr);
      assert.ok(await settle(() => !linkIn(nsA, ifA) && !linkIn(nsB, ifB)), 'both TAPs are gone with the engine');
    } finally {
      await engine?.stop();
      await tapA.close();
      await tapB.close();
      nsA?.dispose();
      nsB?.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
