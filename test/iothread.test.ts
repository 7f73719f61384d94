// IOThreads from JavaScript: named native threads that start, stop and join, use no CPU
// when idle, and never keep or crash the process on exit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { IoThread } from '../lib/event-loop';
import { native } from '../lib/native';
import { loadAddon, runNode } from './helpers/node-child';

function comm(tid: number): string {
  return fs.readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim();
}

/** utime + stime of one thread, in clock ticks (fields 14 and 15 of /proc/.../stat). */
function cpuTicks(tid: number): number {
  const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from #3 on
  return Number(fields[14 - 3]) + Number(fields[15 - 3]);
}

test('IOThreads start with their name visible in /proc/self/task/*/comm', () => {
  const threads = ['np-io0', 'np-io1', 'np-io2'].map((n) => IoThread.start(n));
  try {
    for (const [i, t] of threads.entries()) {
      assert.equal(t.name, `np-io${i}`);
      assert.equal(t.running, true);
      assert.ok(t.tid > 0 && t.tid !== process.pid);
      assert.equal(comm(t.tid), `np-io${i}`);
    }
  } finally {
    threads.forEach((t) => t.stop());
  }
  // The kernel keeps 15 characters of a longer name; the object keeps all of it.
  const long = IoThread.start('np-iothread-with-a-long-name');
  try {
    assert.equal(comm(long.tid), 'np-iothread-wit');
    assert.equal(long.name, 'np-iothread-with-a-long-name');
  } finally {
    long.stop();
  }
});

test('stop() ends and joins the thread; stopping twice is fine', () => {
  const t = IoThread.start('np-stop');
  const tid = t.tid;
  assert.ok(fs.existsSync(`/proc/self/task/${tid}`));
  t.stop();
  assert.equal(t.running, false);
  assert.equal(fs.existsSync(`/proc/self/task/${tid}`), false); // joined: the task is gone
  t.stop();
  assert.equal(t.running, false);
});

test('an idle IOThread uses (almost) no CPU: it sleeps, it does not spin', { timeout: 10000 }, async () => {
  const idle = IoThread.start('np-idle');
  // Adaptive polling switched on but nothing to poll for: still asleep.
  const polling = IoThread.start('np-idle-poll', { pollMaxNs: 32768 });
  try {
    const before = [cpuTicks(idle.tid), cpuTicks(polling.tid)];
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const used = [cpuTicks(idle.tid) - before[0], cpuTicks(polling.tid) - before[1]];
    // A spinning thread would show ~100 ticks (1 s); allow a couple for scheduling noise.
    assert.ok(used[0] <= 2, `idle iothread used ${used[0]} ticks in 1 s`);
    assert.ok(used[1] <= 2, `idle polling iothread used ${used[1]} ticks in 1 s`);
  } finally {
    idle.stop();
    polling.stop();
  }
});

test('poll parameters: defaults off, round trip, QEMU wording for negative values', () => {
  const t = IoThread.start('np-params', { pollMaxNs: 1000, pollGrow: 4, pollShrink: 2 });
  try {
    assert.deepEqual(t.pollParams, { pollMaxNs: 1000, pollGrow: 4, pollShrink: 2 });
    t.setPollParams({ pollMaxNs: 0 });
    assert.deepEqual(t.pollParams, { pollMaxNs: 0, pollGrow: 4, pollShrink: 2 });
    assert.equal(t.currentPollNs, 0);
    assert.throws(() => t.setPollParams({ pollGrow: -1 }), {
      name: 'RangeError',
      message: 'poll-grow value must be in range [0, 9223372036854775807]',
    });
  } finally {
    t.stop();
  }
  const plain = IoThread.start('np-defaults');
  assert.deepEqual(plain.pollParams, { pollMaxNs: 0, pollGrow: 0, pollShrink: 0 });
  plain.stop();
  assert.throws(
    () => plain.setPollParams({ pollMaxNs: 1 }),
    (e: NodeJS.ErrnoException) => e.code === 'NETPLANE_CLOSED',
  );
  assert.throws(() => IoThread.start('np-neg', { pollMaxNs: -1 }), {
    name: 'RangeError',
    message: 'poll-max-ns value must be in range [0, 9223372036854775807]',
  });
});

test('bad arguments are TypeErrors / RangeErrors, never crashes', () => {
  const Ctor = native().IoThread as unknown as new (...args: unknown[]) => unknown;
  assert.throws(() => new Ctor(), TypeError);
  assert.throws(() => new Ctor(42), TypeError);
  assert.throws(() => new Ctor(''), RangeError);
  assert.throws(() => new Ctor('np-bad', 'fast'), TypeError);
  assert.throws(() => new Ctor('np-bad', { pollMaxNs: 'a lot' }), TypeError);
  assert.throws(() => new Ctor('np-bad', { pollMaxNs: 1.5 }), RangeError);
  assert.throws(() => new Ctor('np-bad', { pollGrow: Infinity }), RangeError);
});

test('the process exits cleanly with IOThreads still running', { timeout: 30000 }, async () => {
  // Natural end of the event loop: the env cleanup stops and joins them.
  const natural = await runNode(
    `${loadAddon}
    for (let i = 0; i < 4; i++) new b.IoThread('np-exit' + i, { pollMaxNs: i * 1000 });
    console.log('started');`,
    [],
    15000,
  );
  assert.equal(natural.code, 0, natural.stderr);
  assert.equal(natural.signal, null);
  assert.equal(natural.stdout.trim(), 'started');
  assert.equal(natural.stderr, '');
  // process.exit() while they sleep.
  const exited = await runNode(
    `${loadAddon}
    const keep = [new b.IoThread('np-exit-a'), new b.IoThread('np-exit-b')];
    setTimeout(() => process.exit(3), 50);`,
    [],
    15000,
  );
  assert.equal(exited.code, 3, exited.stderr);
  assert.equal(exited.stderr, '');
  // Collected by GC: the finalizer stops and joins the thread.
  const collected = await runNode(
    `${loadAddon}
    const fs = require('fs');
    const count = () => fs.readdirSync('/proc/self/task')
      .filter((t) => { try { return fs.readFileSync('/proc/self/task/' + t + '/comm', 'utf8').startsWith('np-gc'); } catch { return false; } }).length;
    (function () { for (let i = 0; i < 3; i++) new b.IoThread('np-gc' + i); })();
    console.log(count());
    (async () => {
      for (let i = 0; i < 50 && count() > 0; i++) { global.gc(); await new Promise((r) => setTimeout(r, 20)); }
      console.log(count());
    })();`,
    ['--expose-gc'],
    15000,
  );
  assert.equal(collected.code, 0, collected.stderr);
  assert.deepEqual(collected.stdout.trim().split('\n'), ['3', '0']);
});
