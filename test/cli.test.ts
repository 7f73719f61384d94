// The `netplane` command: argument parsing with QEMU's messages, and the program run as a
// child process with a real TAP: QMP on its socket, HMP on stdio, SIGTERM / quit ending in
// a clean exit (downscript run, interface gone, socket removed).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { CliError, parseCliArgs } from '../lib/cli/args';
import { NetNs, npName } from './helpers/netns';
import { privileged } from './helpers/privilege';
import { needs } from './helpers/tools';
import { QmpProcess, runToCompletion, tempDir } from './helpers/qemu';

const CLI = path.join(__dirname, '..', 'lib', 'cli', 'main.ts');
const NODE_ARGS = ['--import', 'tsx', CLI];

function cliError(argv: string[]): string {
  try {
    parseCliArgs(argv);
  } catch (e) {
    if (e instanceof CliError) return e.format();
    throw e;
  }
  assert.fail(`no error for ${argv.join(' ')}`);
}

function linkExists(ifname: string): boolean {
  return fs.existsSync(`/sys/class/net/${ifname}`);
}

describe('netplane command line parsing', () => {
  test('options are collected in order; machine options are accepted and ignored', () => {
    const a = parseCliArgs([
      '-M',
      'pc',
      '-nodefaults',
      '-display',
      'none',
      '-S',
      '--accel',
      'tcg',
      '-object',
      'iothread,id=io0',
      '-netdev',
      'tap,id=hostnet0,ifname=vnet2,downscript=no,queues=4',
      '--netdev',
      'hubport,id=hp0,hubid=0',
      '-device',
      'virtio-net-pci,netdev=hostnet0,id=net0,mac=52:54:00:6b:0d:a1,bus=pci.0,addr=0x3',
      '-link',
      'hp0,hp1',
      '-qmp',
      'unix:/run/np.sock,server=on,wait=off',
      '-monitor',
      'stdio',
    ]);
    assert.deepEqual(
      a.netdevs.map((n) => n.value.id),
      ['hostnet0', 'hp0'],
    );
    assert.equal(a.netdevs[0]!.value.type, 'tap');
    assert.equal(a.devices[0]!.value.netdev, 'hostnet0');
    assert.equal(a.devices[0]!.value.mac, '52:54:00:6b:0d:a1');
    assert.deepEqual(
      a.objects.map((o) => o.value.id),
      ['io0'],
    );
    assert.deepEqual(a.links[0]!.value, ['hp0', 'hp1']);
    assert.deepEqual(a.qmp[0]!.value, { path: '/run/np.sock', server: true, wait: false });
    assert.equal(a.monitorStdio, true);
    assert.equal(parseCliArgs(['--help']).help, true);
    assert.equal(parseCliArgs(['-h']).help, true);
    assert.equal(parseCliArgs(['--version']).version, true);
  });

  test("errors read like QEMU's, naming the option", () => {
    const cases: Array<[string[], string]> = [
      [['-bogus'], 'netplane: -bogus: invalid option\n'],
      [['-netdev'], 'netplane: -netdev: requires an argument\n'],
      [['-netdev', 'hubport,id=h1'], "netplane: -netdev hubport,id=h1: Parameter 'hubid' is missing\n"],
      [
        ['-netdev', 'hubport,id=h1,hubid=1', '--netdev', 'hubport,id=h1,hubid=2'],
        "netplane: -netdev hubport,id=h1,hubid=2: Duplicate ID 'h1' for netdev\n",
      ],
      [
        ['-netdev', 'hubport,id=1x,hubid=1'],
        "netplane: -netdev hubport,id=1x,hubid=1: Parameter 'id' expects an identifier\nIdentifiers consist of letters, digits, '-', '.', '_', starting with a letter.\n",
      ],
      [['-netdev', 'bogus,id=x'], "netplane: -netdev bogus,id=x: Parameter 'type' does not accept value 'bogus'\n"],
      [
        ['-object', 'iothread,id=i1', '-object', 'iothread,id=i1'],
        "netplane: -object iothread,id=i1: Duplicate ID 'i1' for object\n",
      ],
      [['-object', 'iothread'], "netplane: -object iothread: Parameter 'id' is missing\n"],
      [
        ['-device', 'virtio-net-pci,id=a', '-device', 'virtio-net-pci,id=a'],
        "netplane: -device virtio-net-pci,id=a: Duplicate ID 'a' for device\n",
      ],
      [['-qmp', 'bogus:x'], "netplane: -qmp bogus:x: 'bogus:x' is not a valid char driver\n"],
      [
        ['-qmp', 'unix:/tmp/x.sock'],
        'netplane: -qmp unix:/tmp/x.sock: netplane only listens for QMP clients; add server=on\n',
      ],
      [
        ['-qmp', 'unix:/tmp/x.sock,server=on'],
        'netplane: -qmp unix:/tmp/x.sock,server=on: waiting for a client before starting is not supported; add wait=off\n',
      ],
      [
        ['-monitor', 'stdio', '-monitor', 'stdio'],
        'netplane: -monitor stdio: cannot use stdio by multiple character devices\n',
      ],
      [
        ['-monitor', 'tcp:1.2.3.4:5'],
        'netplane: -monitor tcp:1.2.3.4:5: netplane supports only -monitor stdio (use -qmp for sockets)\n',
      ],
      [['-net', 'nic,vlan=1'], "netplane: -net nic,vlan=1: Invalid parameter 'vlan'\n"],
      [['disk.img'], 'netplane: disk.img: unexpected argument (netplane runs no guest and takes no disk image)\n'],
    ];
    for (const [argv, text] of cases) assert.equal(cliError(argv), text, argv.join(' '));
  });

  test("deprecated short-form booleans warn with the option's location", () => {
    const a = parseCliArgs(['-netdev', 'tap,id=t0,ifname=npx,vnet_hdr']);
    assert.deepEqual(a.warnings, [
      "-netdev tap,id=t0,ifname=npx,vnet_hdr: warning: short-form boolean option 'vnet_hdr' deprecated\nPlease use vnet_hdr=on instead",
    ]);
  });

  test('the program exits 1 with the message on stderr, 0 for --help/--version', { timeout: 60_000 }, () => {
    const bad = runToCompletion(process.execPath, [...NODE_ARGS, '-netdev', 'hubport,id=h1']);
    assert.equal(bad.status, 1);
    assert.equal(bad.stderr, "netplane: -netdev hubport,id=h1: Parameter 'hubid' is missing\n");
    const help = runToCompletion(process.execPath, [...NODE_ARGS, '--help']);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /^usage: netplane/);
    const version = runToCompletion(process.execPath, [...NODE_ARGS, '--version']);
    assert.equal(version.status, 0);
    assert.match(version.stdout, /^netplane \d+\.\d+\.\d+ \(QEMU 7\.2 network model\)\n$/);
    // Startup failure after a netdev exists: everything created is closed again.
    const after = runToCompletion(process.execPath, [
      ...NODE_ARGS,
      '-netdev',
      'hubport,id=h1,hubid=1',
      '-device',
      'virtio-net-pci,netdev=nosuch',
    ]);
    assert.equal(after.status, 1);
    assert.equal(
      after.stderr,
      "netplane: -device virtio-net-pci,netdev=nosuch: Property 'virtio-net-device.netdev' can't find value 'nosuch'\n",
    );
  });
});

test('an iothread takes the int64 poll parameters QEMU takes (poll-max-ns above 2^31)', { timeout: 60_000 }, () => {
  const argv = [
    ...NODE_ARGS,
    '-object',
    'iothread,id=io0,poll-max-ns=3000000000,poll-grow=4294967296',
    '-monitor',
    'stdio',
  ];
  const r = spawnSync(process.execPath, argv, {
    encoding: 'utf8',
    input: 'quit\n',
    timeout: 30_000,
    killSignal: 'SIGKILL',
  });
  assert.equal(r.stderr, '');
  assert.equal(r.status, 0);
});

describe('netplane running with a real TAP', privileged(), () => {
  test(
    'QMP drives it; SIGTERM ends it cleanly: downscript run, TAP gone, socket removed',
    { timeout: 60_000 },
    async () => {
      const ifname = npName('cli');
      const dir = tempDir('cli');
      const marker = path.join(dir, 'down.log');
      const down = path.join(dir, 'down.sh');
      fs.writeFileSync(down, `#!/bin/sh\necho "down $1" >> ${marker}\n`, { mode: 0o755 });
      let proc: QmpProcess | undefined;
      try {
        proc = await QmpProcess.start(
          process.execPath,
          [
            ...NODE_ARGS,
            '-M',
            'pc',
            '-nodefaults',
            '-display',
            'none',
            '-netdev',
            `tap,id=hostnet0,ifname=${ifname},script=no,downscript=${down},queues=2`,
            '-device',
            'virtio-net-pci,netdev=hostnet0,id=net0,mac=52:54:00:6b:0d:a1,mq=on,bus=pci.0,addr=0x3',
          ],
          { ifnames: [ifname] },
        );
        assert.equal(linkExists(ifname), true);
        assert.equal(fs.statSync(proc.socketPath).mode & 0o777, 0o600);
        const c = await proc.connect();
        assert.equal(
          await c.hmp('info network'),
          `net0: index=0,type=nic,model=virtio-net-pci,macaddr=52:54:00:6b:0d:a1\r\n \\ hostnet0: index=0,type=tap,ifname=${ifname},script=no,downscript=${down}\r\n` +
            // QEMU gives the scripts to queue 0 only; the other queues say "no".
            `net0: index=1,type=nic,\r\n \\ hostnet0: index=1,type=tap,ifname=${ifname},script=no,downscript=no\r\n`,
        );
        assert.deepEqual(await c.execute('set_link', { name: 'net0', up: false }), { return: {} });
        assert.equal((await c.execute('query-rx-filter', { name: 'net0' })).return[0]['main-mac'], '52:54:00:6b:0d:a1');
        assert.deepEqual(await c.execute('netdev_add', { type: 'hubport', id: 'hp9', hubid: 9 }), { return: {} });
        assert.deepEqual(await c.execute('netdev_del', { id: 'hp9' }), { return: {} });
        proc.child.kill('SIGTERM');
        const ev = await c.nextEvent('SHUTDOWN');
        assert.deepEqual(ev.data, { guest: false, reason: 'host-signal' });
        assert.equal(await proc.waitExit(20_000), true);
        assert.equal(proc.exitCode, 0, proc.stderr);
        assert.match(proc.stderr, /netplane: terminating on signal 15\n/);
        assert.equal(linkExists(ifname), false);
        assert.equal(fs.existsSync(proc.socketPath), false);
        assert.equal(fs.readFileSync(marker, 'utf8'), `down ${ifname}\n`);
      } finally {
        await proc?.stop();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  test('QMP quit ends it cleanly; a netdev added over QMP is closed too', { timeout: 60_000 }, async () => {
    const ifname = npName('clq');
    const added = npName('cla');
    const proc = await QmpProcess.start(process.execPath, [...NODE_ARGS, '-netdev', `tap,id=t0,ifname=${ifname}`], {
      ifnames: [ifname, added],
    });
    try {
      const c = await proc.connect();
      assert.deepEqual(await c.execute('netdev_add', { type: 'tap', id: 't1', ifname: added }), { return: {} });
      assert.equal(linkExists(added), true);
      assert.deepEqual(await c.execute('quit', undefined, 'bye'), { return: {}, id: 'bye' });
      assert.deepEqual((await c.nextEvent('SHUTDOWN')).data, { guest: false, reason: 'host-qmp-quit' });
      assert.equal(await proc.waitExit(20_000), true);
      assert.equal(proc.exitCode, 0, proc.stderr);
      assert.equal(linkExists(ifname), false);
      assert.equal(linkExists(added), false);
      assert.equal(fs.existsSync(proc.socketPath), false);
    } finally {
      await proc.stop();
    }
  });

  test('-monitor stdio: commands on stdin, quit ends the program', { timeout: 60_000 }, async () => {
    const ifname = npName('clm');
    const child = spawn(
      process.execPath,
      [...NODE_ARGS, '-netdev', `tap,id=t0,ifname=${ifname}`, '-monitor', 'stdio'],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (t: string) => (out += t));
    child.stderr.setEncoding('utf8').on('data', (t: string) => (err += t));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    try {
      child.stdin.write('info network\nset_link t0 off\nset_link t0 maybe\nquit\n');
      const code = await exited;
      assert.equal(code, 0, err);
      assert.ok(out.includes(`(qemu) t0: index=0,type=tap,ifname=${ifname},script=no,downscript=no\n(qemu) `), out);
      assert.ok(out.includes(`Expected 'on' or 'off'\nTry "help set_link" for more information\n`), out);
      assert.equal(err, 'netplane: warning: netdev t0 has no peer\n');
      assert.equal(linkExists(ifname), false);
    } finally {
      clearTimeout(timer);
      child.kill('SIGKILL');
    }
  });

  test(
    'frames flow between two linked TAPs; set_link off stops them',
    { ...needs('ping'), timeout: 90_000 },
    async () => {
      const ifA = npName('clx');
      const ifB = npName('cly');
      using nsA = new NetNs('cxa');
      using nsB = new NetNs('cxb');
      let proc: QmpProcess | undefined;
      try {
        proc = await QmpProcess.start(process.execPath, [
          ...NODE_ARGS,
          '-netdev',
          `tap,id=a,ifname=${ifA}`,
          '-netdev',
          `tap,id=b,ifname=${ifB}`,
          '-link',
          'a,b',
        ]);
        // The TAPs stay open in netplane while their interfaces move into the namespaces.
        nsA.adopt(ifA, '10.199.0.1/24');
        nsB.adopt(ifB, '10.199.0.2/24');
        // ping's summary, whether or not it succeeded (bounded: 3 probes, 1 s wait each).
        const ping = () =>
          spawnSync('ip', ['netns', 'exec', nsA.name, 'ping', '-c', '3', '-i', '0.2', '-W', '1', '10.199.0.2'], {
            encoding: 'utf8',
            timeout: 20_000,
          }).stdout;
        assert.match(ping(), / 0% packet loss/);
        const c = await proc.connect();
        assert.equal(
          await c.hmp('info network'),
          `a: index=0,type=tap,ifname=${ifA},script=no,downscript=no\r\n \\ b: index=0,type=tap,ifname=${ifB},script=no,downscript=no\r\n`,
        );
        assert.deepEqual(await c.execute('set_link', { name: 'a', up: false }), { return: {} });
        assert.match(ping(), / 100% packet loss/);
        assert.deepEqual(await c.execute('set_link', { name: 'a', up: true }), { return: {} });
        assert.match(ping(), / 0% packet loss/);
        proc.child.kill('SIGTERM');
        assert.equal(await proc.waitExit(20_000), true);
        assert.equal(proc.exitCode, 0, proc.stderr);
        // Non-persistent TAPs vanish with their last fd, wherever they were moved.
        assert.equal(nsA.exec('ip', ['link', 'show', ifA], { allowFail: true }), '');
        assert.equal(nsB.exec('ip', ['link', 'show', ifB], { allowFail: true }), '');
      } finally {
        await proc?.stop();
      }
    },
  );

  test('a startup failure after a TAP was created removes it again', { timeout: 60_000 }, () => {
    const ifname = npName('clf');
    const r = runToCompletion(process.execPath, [
      ...NODE_ARGS,
      '-netdev',
      `tap,id=t0,ifname=${ifname}`,
      '-device',
      'virtio-net-pci,netdev=nosuch',
    ]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /can't find value 'nosuch'/);
    assert.equal(linkExists(ifname), false);
  });
});
