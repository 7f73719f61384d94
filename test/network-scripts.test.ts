// script= / downscript=: run only when given, never through a shell, with a minimal
// environment (PATH only) and no fd of ours but stdio. The scripts here write down what they
// received: argv, their environment at exec (/proc/$$/environ) and their open fds.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { runNetworkScript } from '../lib/topology/netdevs/tap';
import { npName } from './helpers/netns';
import { cliMain, spawnCli } from './helpers/node-child';
import { privileged } from './helpers/privilege';
import { QmpProcess, tempDir } from './helpers/qemu';

const MINIMAL_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

interface ScriptReport {
  args: string[];
  env: string[];
  /** "fd -> target" of the script's shell. */
  fds: string[];
}

/** An executable /bin/sh script at `file` that reports to `file + '.out'` (appending). */
function reportingScript(file: string, exitCode = 0): string {
  const out = file + '.out';
  fs.writeFileSync(
    file,
    [
      '#!/bin/sh',
      `out='${out.replace(/'/g, `'\\''`)}'`,
      '{',
      '  echo "begin"',
      '  for a in "$@"; do echo "arg=$a"; done',
      `  tr '\\0' '\\n' < /proc/$$/environ | sed 's/^/env=/'`,
      '  for f in /proc/$$/fd/*; do echo "fd=${f##*/} -> $(readlink "$f")"; done',
      '} >> "$out"',
      `exit ${exitCode}`,
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  return out;
}

/** Every run the script reported, oldest first. */
function reports(out: string): ScriptReport[] {
  if (!fs.existsSync(out)) return [];
  return fs
    .readFileSync(out, 'utf8')
    .split('begin\n')
    .filter((chunk) => chunk !== '')
    .map((chunk) => {
      const lines = chunk.split('\n').filter((l) => l !== '');
      const pick = (prefix: string) => lines.filter((l) => l.startsWith(prefix)).map((l) => l.slice(prefix.length));
      return { args: pick('arg='), env: pick('env='), fds: pick('fd=') };
    });
}

describe('runNetworkScript', () => {
  test('runs the file itself (no shell) with the ifname as its only argument and PATH as its only variable', () => {
    const dir = tempDir('scripts');
    try {
      // Characters a shell would act on, in the path and in the argument.
      const file = path.join(dir, "up $(touch pwned); 'x' &");
      const out = reportingScript(file);
      process.env.NP_CANARY = 'must-not-leak';
      try {
        runNetworkScript(file, 'np$(id)|;x');
      } finally {
        delete process.env.NP_CANARY;
      }
      const [r, ...more] = reports(out);
      assert.equal(more.length, 0);
      assert.deepEqual(r!.args, ['np$(id)|;x']);
      // /bin/sh adds PWD of its own; everything else came from us.
      assert.deepEqual(
        r!.env.filter((e) => !e.startsWith('PWD=')),
        [MINIMAL_PATH],
      );
      assert.ok(
        !fs.existsSync(path.join(dir, 'pwned')) && !fs.existsSync('pwned'),
        'nothing was interpreted by a shell',
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("failures read like QEMU's (the raw wait status)", () => {
    const dir = tempDir('scripts');
    try {
      const failing = path.join(dir, 'fails');
      reportingScript(failing, 3);
      assert.throws(() => runNetworkScript(failing, 'np0'), {
        code: 'NETPLANE_SCRIPT_FAILED',
        message: `network script ${failing} failed with status 768`,
      });
      const missing = path.join(dir, 'missing');
      assert.throws(() => runNetworkScript(missing, 'np0'), {
        message: `network script ${missing} failed with status 256`,
      });
      const notExecutable = path.join(dir, 'plain');
      fs.writeFileSync(notExecutable, '#!/bin/sh\n', { mode: 0o644 });
      assert.throws(() => runNetworkScript(notExecutable, 'np0'), {
        message: `network script ${notExecutable} failed with status 256`,
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('network scripts of the netplane command', { ...privileged() }, () => {
  test(
    'script=/downscript= get the ifname, PATH only, and none of our fds (TAPs, sockets, inherited ones)',
    { timeout: 60_000 },
    async () => {
      const dir = tempDir('scripts-cli');
      const ifname = npName('scr');
      const up = path.join(dir, 'up');
      const down = path.join(dir, 'down');
      const upOut = reportingScript(up);
      const downOut = reportingScript(down);
      // Fds the engine inherits: a marker file at fd 3 and at fd 40 must not reach the scripts.
      // (Node marks inherited fds close-on-exec only up to the first gap after fd 15.)
      const marker = path.join(dir, 'inherited-marker');
      fs.writeFileSync(marker, '');
      const markerFd = fs.openSync(marker, 'r');
      try {
        const np = await spawnCli(
          ['-netdev', `tap,id=t0,ifname=${ifname},queues=2,script=${up},downscript=${down}`, '-monitor', 'stdio'],
          {
            ready: { what: 'the up script to report', check: () => reports(upOut).length > 0 },
            timeoutMs: 15_000,
            stdin: 'pipe',
            extraFds: [markerFd, ...Array<'ignore'>(36).fill('ignore'), markerFd],
            env: { ...process.env, NP_CANARY: 'must-not-leak' },
          },
        );
        const child = np.child;
        const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
        // The engine's own stdio (sockets to us) is what a script may share with it.
        const stdio = [0, 1, 2].map((fd) => fs.readlinkSync(`/proc/${child.pid}/fd/${fd}`));
        child.stdin!.write('quit\n');
        assert.equal(await exited, 0, np.stdout() + np.stderr());
        for (const [which, out] of [
          ['script', upOut],
          ['downscript', downOut],
        ] as const) {
          const runs = reports(out);
          assert.equal(runs.length, 1, `${which} ran once (queue 0 only)`);
          const r = runs[0]!;
          assert.deepEqual(r.args, [ifname], which);
          assert.deepEqual(
            r.env.filter((e) => !e.startsWith('PWD=')),
            [MINIMAL_PATH],
            which,
          );
          const leaked = r.fds.filter((f) => {
            const target = f.slice(f.indexOf(' -> ') + 4);
            if (stdio.includes(target)) return false;
            return (
              target === marker ||
              target === '/dev/net/tun' ||
              target.startsWith('socket:') ||
              target.startsWith('anon_inode:')
            );
          });
          assert.deepEqual(leaked, [], `${which} got fds it must not have: ${r.fds.join(', ')}`);
        }
      } finally {
        fs.closeSync(markerFd);
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  test("without script= nothing runs, not even /etc/qemu-ifup (QEMU's default)", { timeout: 60_000 }, async () => {
    const ifname = npName('scn');
    const proc = await QmpProcess.start(
      process.execPath,
      ['--import', 'tsx', cliMain, '-netdev', `tap,id=t0,ifname=${ifname}`],
      { ifnames: [ifname] },
    );
    try {
      const c = await proc.connect();
      assert.equal(await c.hmp('info network'), `t0: index=0,type=tap,ifname=${ifname},script=no,downscript=no\r\n`);
      // /etc/qemu-ifup (where installed) starts with `ip link set "$1" up`: the TAP stays down.
      const flags = Number(fs.readFileSync(`/sys/class/net/${ifname}/flags`, 'utf8'));
      assert.equal(flags & 1, 0, 'IFF_UP is not set: no script touched the interface');
      c.close();
    } finally {
      await proc.stop();
    }
  });
});
