// `netplane demo`, the README's main job, run as a user runs it: a separate process that
// creates two namespaces and a forwarder, sends real traffic, prints live rates and a
// summary, and removes everything, also when interrupted. Each run is its own process
// group leader, so "no child process left" is "the group is empty" after it exits.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { groupProcesses } from '../bench/lib/proc';
import { privileged } from './helpers/privilege';
import { needsPrivileged } from './helpers/tools';

const MAIN = path.join(__dirname, '..', 'lib', 'cli', 'main.ts');
const T = { timeout: 60_000 };

interface DemoRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  pid: number;
}

/** Start the demo; `interrupt` may send a signal once the output matches its pattern. */
function runDemo(
  args: string[],
  interrupt?: { when: RegExp; signal: NodeJS.Signals },
  env?: NodeJS.ProcessEnv,
): Promise<DemoRun> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'demo', ...args], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  let stdout = '';
  let stderr = '';
  let sent = false;
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
    if (interrupt && !sent && interrupt.when.test(stdout)) {
      sent = true;
      child.kill(interrupt.signal); // the demo process only, not its group (its children stay up)
    }
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, pid: child.pid! }));
  });
}

/** What the demo said it created: namespaces and TAP names. */
function createdNames(stdout: string): string[] {
  const ns = /namespaces +(np\S+) \(.*\) and (np\S+) \(/.exec(stdout);
  const taps = /-netdev tap,id=a,ifname=(np\w+).*-netdev tap,id=b,ifname=(np\w+)/.exec(stdout);
  assert.ok(ns && taps, `the demo names its namespaces and TAPs:\n${stdout}`);
  return [ns[1]!, ns[2]!, taps[1]!, taps[2]!];
}

/** Everything the run created is gone: namespaces, TAP interfaces, processes of its group. */
function assertNothingLeft(run: DemoRun): void {
  const [nsA, nsB, tapA, tapB] = createdNames(run.stdout);
  const netns = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  for (const ns of [nsA!, nsB!]) assert.doesNotMatch(netns, new RegExp(`^${ns}\\b`, 'm'), `namespace ${ns} removed`);
  for (const tap of [tapA!, tapB!]) assert.equal(fs.existsSync(`/sys/class/net/${tap}`), false, `TAP ${tap} removed`);
  assert.deepEqual(
    groupProcesses(run.pid).map((p) => p.pid),
    [],
    `no process of the demo's group ${run.pid} is left`,
  );
  assert.match(
    run.stdout,
    /^cleanup: child processes stopped, TAPs \S+ and \S+ closed, namespaces \S+ and \S+ deleted; nothing left$/m,
  );
}

/** The summary: frames forwarded into the namespaces and the conservation check. */
function assertSummary(stdout: string, clients: number): void {
  const fwd = /^ +forwarded +(\d+) frames, .* \(a->b (\d+) frames, b->a (\d+) frames\)/m.exec(stdout);
  assert.ok(fwd, `summary has a forwarded line:\n${stdout}`);
  assert.ok(Number(fwd[2]) > 100, `the TCP stream crossed a->b (${fwd[2]} frames)`);
  assert.ok(Number(fwd[3]) > 10, `its ACKs crossed b->a (${fwd[3]} frames)`);
  assert.match(
    stdout,
    new RegExp(`^ +conservation in = out \\+ queued \\+ dropped holds for all ${clients} clients`, 'm'),
  );
  // Every row of the counters table balances too (checked here, not only by the demo).
  const rows = stdout.split('\n').filter((l) => /^ {2}(a|b|pa|pb) +\d+ +(tap|hubport)/.test(l));
  assert.equal(rows.length, clients, stdout);
  for (const row of rows) {
    const [, , , , , , inF, , outF, , queued, dropped] = row.trim().split(/ +/);
    assert.equal(Number(inF), Number(outF) + Number(queued) + Number(dropped), row);
  }
}

test(
  'netplane demo: ping and a TCP stream across a 2-queue link, live rates, summary, nothing left',
  { ...needsPrivileged('ping'), ...T },
  async () => {
    const run = await runDemo(['--seconds', '2']);
    assert.equal(run.code, 0, `exit 0\n${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /^ +ping +10\.250\.0\.1 -> 10\.250\.0\.2: 3\/3 replies/m);
    assert.match(run.stdout, /-link a,b$/m);
    assert.match(run.stdout, /each queue pair on its own IOThread \(np-q0, np-q1\)/);
    // The live line (one per second without a terminal) carries per-queue rates and drops.
    assert.match(
      run.stdout,
      /^ +live +[\d.]+ s \| q0 \S+ fr\/s [\d.]+ \S+bit\/s \| q1 \S+ fr\/s [\d.]+ \S+bit\/s \| queued \d+ \| drops \d+/m,
    );
    assert.match(run.stdout, /received [\d.]+ [GMk]bit\/s/);
    assertSummary(run.stdout, 4);
    assertNothingLeft(run);
  },
);

test(
  'netplane demo --hub --tcp node: the same through a native hub with the Node TCP stream',
  { ...privileged(), ...T },
  async () => {
    const run = await runDemo(['--seconds', '2', '--hub', '--tcp', 'node']);
    assert.equal(run.code, 0, `exit 0\n${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /-netdev hubport,id=pa,hubid=0,netdev=a -netdev hubport,id=pb,hubid=0,netdev=b$/m);
    assert.match(run.stdout, /a Node TCP sender and sink/);
    assertSummary(run.stdout, 4);
    assertNothingLeft(run);
  },
);

test(
  'netplane demo on a fresh machine (only iproute2 and a shell on the PATH): UDP echo round trip, Node TCP stream',
  { ...privileged(), ...T },
  async () => {
    // A PATH with ip, ss and sh only: no ping, iperf3 or sysctl, as on a fresh Debian machine.
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'np-freshpath-'));
    try {
      for (const cmd of ['ip', 'ss', 'sh']) {
        const where = execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim();
        fs.symlinkSync(where, path.join(bin, cmd));
      }
      const run = await runDemo(['--seconds', '2'], undefined, { ...process.env, PATH: bin });
      assert.equal(run.code, 0, `exit 0\n${run.stdout}\n${run.stderr}`);
      assert.match(
        run.stdout,
        /^ +udp echo +10\.250\.0\.1 -> 10\.250\.0\.2: 3\/3 replies, average round trip [\d.]+ ms$/m,
      );
      assert.match(run.stdout, /a Node TCP sender and sink/);
      assertSummary(run.stdout, 4);
      assertNothingLeft(run);
    } finally {
      fs.rmSync(bin, { recursive: true, force: true });
    }
  },
);

for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
] as const) {
  test(
    `netplane demo interrupted by ${signal} mid-stream cleans up and exits ${code}`,
    { ...privileged(), ...T },
    async () => {
      // Signal once the TCP stream runs (the first live line): iperf3 children are up then.
      const run = await runDemo(['--seconds', '20'], { when: /^ +live /m, signal });
      assert.equal(run.code, code, `exit ${code}\n${run.stdout}\n${run.stderr}`);
      assert.match(run.stdout, new RegExp(`^interrupted by ${signal}: stopping the traffic and cleaning up$`, 'm'));
      assert.match(run.stdout, /^counters so far after [\d.]+ s/m);
      assert.doesNotMatch(run.stdout, /received [\d.]+ [GMk]bit\/s/, 'the stream did not finish');
      assertNothingLeft(run);
    },
  );
}

test('netplane demo without CAP_NET_ADMIN says so and creates nothing', { ...needsPrivileged('setpriv'), ...T }, () => {
  // Root with every capability dropped, as an unprivileged user would run it.
  const r = spawnSync(
    'setpriv',
    ['--inh-caps=-all', '--bounding-set=-all', process.execPath, '--import', 'tsx', MAIN, 'demo'],
    {
      encoding: 'utf8',
      timeout: 30_000,
    },
  );
  assert.equal(r.status, 1, r.stderr);
  assert.match(
    r.stderr,
    /^netplane: netplane demo needs CAP_NET_ADMIN: it creates two network namespaces and two TAP devices\. Run it as root/,
  );
  assert.equal(r.stdout, '');
});

test('netplane demo rejects bad options before creating anything', T, () => {
  const cases: Array<[string[], RegExp]> = [
    [['--seconds', '0'], /--seconds expects an integer between 1 and 60, got '0'/],
    [['--queues', 'x'], /--queues expects an integer between 1 and 8, got 'x'/],
    [['--hub', '--queues', '2'], /--hub uses one queue per TAP/],
    [['--tcp', 'ftp'], /--tcp expects iperf3 or node, got 'ftp'/],
    [['--bogus'], /Unknown option '--bogus'/],
  ];
  for (const [args, message] of cases) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, 'demo', ...args], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.match(r.stderr, /usage: netplane demo/);
  }
});
