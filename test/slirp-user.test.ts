// -netdev user (libslirp) end to end: a namespace on a TAP linked to a user netdev
// (`-link t0,u0`) gets a DHCP lease from it (busybox udhcpc), reaches a TCP server on the
// host's loopback through the NAT (slirp's host address 10.0.2.2 is the host's 127.0.0.1),
// and a hostfwd port on the host's loopback reaches a server inside the namespace; the
// forwarding rules change at run time over HMP. The engine runs with no capabilities at
// all (setpriv clears every set): only the TAP's creation, before it starts, is privileged;
// the engine gets the TAP as an inherited fd. No traffic leaves the host's loopback and the
// namespace: nothing asks slirp's DNS (10.0.2.3) anything.
//
// Also, without privileges: libslirp missing (NETPLANE_LIBSLIRP pointing nowhere) makes
// -netdev user say what to install while the addon and the other netdevs still load.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Tap } from '../lib/tap';
import { NetNs, npName, sh } from './helpers/netns';
import { privileged } from './helpers/privilege';
import { tempDir } from './helpers/qemu';
import { QmpTestClient } from './helpers/qmp-client';
import { needs, toolsMissing } from './helpers/tools';

const CLI = path.join(__dirname, '..', 'lib', 'cli', 'main.ts');
const T = { timeout: 120_000 };

/** The host end of the NAT and the first DHCP address of QEMU's default 10.0.2.0/24. */
const SLIRP_HOST = '10.0.2.2';
const GUEST_ADDR = '10.0.2.15';

function libslirpMissing(): string | undefined {
  const found = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib'].some((d) =>
    fs.existsSync(path.join(d, 'libslirp.so.0')),
  );
  return found ? undefined : 'libslirp.so.0 is not installed (Debian package libslirp0)';
}

function suiteOptions(): { skip?: string } {
  const p = privileged();
  if (p.skip) return p;
  const why = toolsMissing('busybox', 'setpriv') ?? libslirpMissing();
  if (why !== undefined && process.env.CI === 'true') throw new Error(`slirp tests cannot run under CI=true: ${why}`);
  return why === undefined ? {} : { skip: why };
}

/** A free TCP port on the host's loopback (bound and released). */
async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

async function waitFor(what: string, ok: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The netplane CLI with no capabilities, the TAP's fd inherited as fd 3. */
class Engine {
  stderr = '';
  readonly exited: Promise<number | null>;
  readonly sock: string;
  readonly pidfile: string;

  constructor(
    readonly child: ChildProcess,
    dir: string,
  ) {
    this.sock = path.join(dir, 'qmp.sock');
    this.pidfile = path.join(dir, 'np.pid');
    child.stderr?.setEncoding('utf8').on('data', (t: string) => (this.stderr += t));
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  static async start(dir: string, tapFd: number, args: string[]): Promise<Engine> {
    const sock = path.join(dir, 'qmp.sock');
    const child = spawn(
      'setpriv',
      [
        '--inh-caps=-all',
        '--bounding-set=-all',
        '--',
        process.execPath,
        '--import',
        'tsx',
        CLI,
        '-netdev',
        'tap,id=t0,fd=3',
        ...args,
        '-link',
        't0,u0',
        '-qmp',
        `unix:${sock},server=on,wait=off`,
        '-pidfile',
        path.join(dir, 'np.pid'),
      ],
      { stdio: ['ignore', 'ignore', 'pipe', tapFd], cwd: path.join(__dirname, '..') },
    );
    const e = new Engine(child, dir);
    let exited = false;
    void e.exited.then(() => (exited = true));
    await waitFor('the engine to start', () => exited || fs.existsSync(e.pidfile), 30_000);
    if (exited) throw new Error(`netplane exited: ${e.stderr}`);
    return e;
  }

  async hmp(line: string): Promise<string> {
    const c = await QmpTestClient.connect(this.sock);
    try {
      await c.next();
      await c.execute('qmp_capabilities');
      const r = await c.execute('human-monitor-command', { 'command-line': line });
      assert.ok('return' in r, JSON.stringify(r));
      return r.return as string;
    } finally {
      c.close();
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null) this.child.kill('SIGTERM');
    const code = await this.exited;
    assert.equal(code, 0, this.stderr); // SIGTERM is an orderly stop
  }
}

/** A Node one-liner run inside the namespace (its stdout); async, so that servers in this
 *  process keep answering meanwhile. */
function inNs(ns: NetNs, script: string, timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = ns.spawn(process.execPath, ['-e', script]);
    let out = '';
    let err = '';
    child.stdout!.setEncoding('utf8').on('data', (t: string) => (out += t));
    child.stderr!.setEncoding('utf8').on('data', (t: string) => (err += t));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`in ${ns.name}: exit ${code}: ${err}`));
    });
  });
}

/** Connect to host:port, send `send` bytes of pattern, print the reply (a TCP client script). */
function clientScript(host: string, port: number, send: number): string {
  return `
    const s = require('net').connect(${port}, ${JSON.stringify(host)});
    let got = '';
    s.setTimeout(15000, () => { console.error('timeout'); process.exit(2); });
    s.on('connect', () => { s.end(Buffer.alloc(${send}, 0x61)); });
    s.on('data', (d) => (got += d));
    s.on('end', () => { console.log(got); });
    s.on('error', (e) => { console.error(e.message); process.exit(1); });`;
}

describe('-netdev user (libslirp) with a namespace on a TAP', { ...suiteOptions(), ...T }, () => {
  let ns: NetNs;
  let tap: Tap;
  let dir: string;
  let server: net.Server;
  let serverPort: number;
  let hostfwdPort: number;
  let engine: Engine | undefined;
  const ifname = npName('us');

  before(async () => {
    dir = tempDir('slirp');
    ns = new NetNs('us');
    ns.disableIpv6();
    tap = Tap.open({ ifname, vnetHdr: 'on' }); // the one privileged step: creating the TAP
    sh('ip', ['link', 'set', ifname, 'netns', ns.name]);
    ns.exec('ip', ['link', 'set', ifname, 'up']);
    // The host's TCP server, on loopback only: it answers with what it received, counted.
    server = net.createServer((s) => {
      let n = 0;
      s.on('data', (d) => (n += d.length));
      s.on('end', () => s.end(`host got ${n} from ${s.remoteAddress}`));
      s.on('error', () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    serverPort = (server.address() as net.AddressInfo).port;
    hostfwdPort = await freePort();
    engine = await Engine.start(dir, tap.fd(0), [
      '-netdev',
      `user,id=u0,restrict=off,hostname=npguest,hostfwd=tcp:127.0.0.1:${hostfwdPort}-:8080`,
    ]);
  });

  after(async () => {
    try {
      if (engine) await engine.stop();
    } finally {
      await tap?.close();
      ns?.dispose();
      server?.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('DHCP: udhcpc gets 10.0.2.15 with router 10.0.2.2 from the user netdev', () => {
    const script = path.join(dir, 'udhcpc.sh');
    fs.writeFileSync(
      script,
      '#!/bin/sh\n' +
        'case "$1" in bound|renew)\n' +
        '  ip addr add "$ip/$mask" dev "$interface"\n' +
        '  ip route add default via "$router" dev "$interface"\n' +
        '  echo "lease $ip/$mask router $router" ;;\n' +
        'esac\n',
      { mode: 0o755 },
    );
    const out = ns.exec('busybox', ['udhcpc', '-i', ifname, '-f', '-q', '-n', '-t', '5', '-T', '1', '-s', script]);
    assert.match(
      out,
      new RegExp(`lease ${GUEST_ADDR.replace(/\./g, '\\.')}/24 router ${SLIRP_HOST.replace(/\./g, '\\.')}`),
    );
    assert.match(ns.exec('ip', ['-4', 'addr', 'show', 'dev', ifname]), /inet 10\.0\.2\.15\/24/);
  });

  test('NAT: a TCP connection from the namespace to 10.0.2.2 reaches the host loopback server', async () => {
    const reply = await inNs(ns, clientScript(SLIRP_HOST, serverPort, 1 << 20));
    // libslirp connects from the host's loopback: the server sees 127.0.0.1.
    assert.match(reply, /^host got 1048576 from 127\.0\.0\.1/);
  });

  test('hostfwd: the host loopback port reaches a server in the namespace; hostfwd_add/remove at run time', async () => {
    const srv = ns.spawn(process.execPath, [
      '-e',
      `require('net').createServer((s) => { let n = 0; s.on('data', (d) => (n += d.length));
         s.on('end', () => s.end('guest got ' + n)); }).listen(8080, '0.0.0.0', () => console.log('ready'));`,
    ]);
    try {
      await new Promise<void>((resolve, reject) => {
        srv.stdout!.once('data', () => resolve());
        srv.once('exit', (c) => reject(new Error(`namespace server exited ${c}`)));
      });
      const talk = (port: number): Promise<string> =>
        new Promise((resolve, reject) => {
          const s = net.connect(port, '127.0.0.1');
          let got = '';
          s.setTimeout(15_000, () => s.destroy(new Error('timeout')));
          s.on('connect', () => s.end(Buffer.alloc(65536, 0x62)));
          s.on('data', (d) => (got += d));
          s.on('end', () => resolve(got));
          s.on('error', reject);
        });
      assert.equal(await talk(hostfwdPort), 'guest got 65536');
      const usernet = await engine!.hmp('info usernet');
      assert.match(usernet, /^Hub -1 \(u0\):\r\n {2}Protocol\[State\]/);
      assert.match(
        usernet,
        new RegExp(`TCP\\[HOST_FORWARD\\] +\\d+ +127\\.0\\.0\\.1 +${hostfwdPort} +10\\.0\\.2\\.15 +8080`),
      );

      const second = await freePort();
      assert.equal(await engine!.hmp(`hostfwd_add u0 tcp:127.0.0.1:${second}-${GUEST_ADDR}:8080`), '');
      assert.equal(await talk(second), 'guest got 65536');
      assert.equal(
        await engine!.hmp(`hostfwd_remove tcp:127.0.0.1:${second}`),
        `host forwarding rule for tcp:127.0.0.1:${second} removed\r\n`,
      );
      await assert.rejects(talk(second), /ECONNREFUSED/);
      assert.equal(
        await engine!.hmp(`hostfwd_remove tcp:127.0.0.1:${second}`),
        `host forwarding rule for tcp:127.0.0.1:${second} not found\r\n`,
      );
    } finally {
      srv.kill('SIGKILL');
    }
  });

  test('counters and info network', async () => {
    assert.match(await engine!.hmp('info network'), /u0: index=0,type=user,net=10\.0\.2\.0,restrict=off\r\n/);
    const table = await engine!.hmp('info netplane');
    assert.match(table, /^u0 +0 +user +np-q0 +up +t0 /m);
    assert.match(table, /conservation: frames-in = frames-out \+ queued \+ dropped holds/);
  });
});

test('without libslirp, -netdev user says what to install; the addon and tap/hubport still work', needs(), () => {
  const run = (args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', CLI, '-M', 'none', ...args], {
      encoding: 'utf8',
      timeout: 30_000,
      env: { ...process.env, NETPLANE_LIBSLIRP: 'libslirp-not-installed.so.0' },
      input: 'quit\n',
    });
  const r = run(['-netdev', 'user,id=u0']);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /^netplane: -netdev user,id=u0: -netdev user needs libslirp, which could not be loaded/m);
  assert.match(r.stderr, /apt-get install libslirp0/);
  const ok = run(['-netdev', 'hubport,id=h0,hubid=0', '-monitor', 'stdio']);
  assert.equal(ok.status, 0, ok.stderr);
});
