// Process and thread lifecycle of the native pieces (Tap, IoThread, MainLoopContext): the
// addon in a worker and the main thread at once, process.exit() from inside a loop
// callback, SIGTERM / SIGINT while IOThreads are busy, and objects dropped without close()
// reclaimed by GC. Each scenario runs in its own child process (test/helpers/
// lifecycle-child.ts) so that exits, signals and env teardown are real; the parent checks
// the exit status, that no TAP is left behind and that fd and thread counts come back.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { spawn } from 'node:child_process';

import { npName, sh, deleteLink, openFdCount, openFds, fdsOpenedSince } from './helpers/netns';
import { privileged } from './helpers/privilege';

const repoRoot = path.join(__dirname, '..');
const childScript = path.join(__dirname, 'helpers', 'lifecycle-child.ts');
const TIMEOUT = 60_000;

interface ChildEvent {
  event: string;
  [key: string]: unknown;
}
interface ChildRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  events: ChildEvent[];
  stderr: string;
}

/**
 * Run one scenario of lifecycle-child.ts. With `signal`, send it once the child reports
 * 'ready'. The child is SIGKILLed (and the run fails) if it does not end within `timeoutMs`.
 */
function runScenario(
  scenario: string,
  args: object,
  opts: { exposeGc?: boolean; signal?: NodeJS.Signals; timeoutMs?: number } = {},
): Promise<ChildRun> {
  const nodeArgs = [
    '--import',
    'tsx',
    ...(opts.exposeGc ? ['--expose-gc'] : []),
    childScript,
    scenario,
    JSON.stringify(args),
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, nodeArgs, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    const events: ChildEvent[] = [];
    let pending = '';
    let stderr = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      pending += chunk;
      let nl;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        const ev = JSON.parse(line) as ChildEvent;
        events.push(ev);
        if (ev.event === 'ready' && opts.signal) child.kill(opts.signal);
      }
    });
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${scenario} did not end within ${opts.timeoutMs ?? 30_000} ms; stderr: ${stderr}`));
    }, opts.timeoutMs ?? 30_000);
    // 'close', not 'exit': the stdio pipes are closed too, so the fd count can be compared.
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, events, stderr });
    });
  });
}

function linkExists(ifname: string): boolean {
  return sh('ip', ['link', 'show', 'dev', ifname], { allowFail: true }) !== '';
}

/** No sign of a native crash or an abort in the child's stderr. */
function assertNoCrash(run: ChildRun): void {
  assert.doesNotMatch(run.stderr, /FATAL ERROR|terminate called|Segmentation|Aborted|core dumped|AddressSanitizer/);
  assert.ok(
    run.signal !== 'SIGSEGV' && run.signal !== 'SIGABRT' && run.signal !== 'SIGBUS',
    `child died by ${run.signal}`,
  );
}

function resultOf(run: ChildRun, event = 'result'): ChildEvent {
  const ev = run.events.find((e) => e.event === event);
  assert.ok(ev, `no '${event}' event; code ${run.code} signal ${run.signal}; stderr: ${run.stderr}`);
  return ev;
}

/** This process's fd count once it stopped changing (tsx closes a cache file after start-up). */
async function settledFdCount(): Promise<number> {
  let last = -1;
  for (let i = 0; i < 40 && openFdCount() !== last; i++) {
    last = openFdCount();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return last;
}

/** Run `body` with fresh np-prefixed interface names, asserting none is left behind. */
async function withNames(count: number, tag: string, body: (names: string[]) => Promise<void>): Promise<void> {
  const names = Array.from({ length: count }, () => npName(tag));
  await settledFdCount();
  const fds = openFds();
  try {
    await body(names);
    for (const n of names) assert.equal(linkExists(n), false, `TAP ${n} left behind`);
    assert.deepEqual(await fdsOpenedSince(fds), [], 'the test process itself leaked an fd');
  } finally {
    for (const n of names) deleteLink(n);
  }
}

describe('lifecycle: the addon in a worker and the main thread at once', privileged(), () => {
  test(
    'workers open TAPs and IOThreads and end every way while the main thread works on',
    { timeout: TIMEOUT },
    async () => {
      const rounds = 3;
      await withNames(1 + rounds * 4, 'lw', async ([mainIf, ...workerIfnames]) => {
        const run = await runScenario('workers', { ifnames: [mainIf], workerIfnames, rounds }, { timeoutMs: 50_000 });
        assertNoCrash(run);
        assert.equal(run.code, 0, run.stderr);
        const r = resultOf(run) as ChildEvent & {
          rounds: {
            results: { mode: string; code: number; gone: boolean; ifname: string }[];
            progressed: boolean;
            mainTapUp: boolean;
            mainThreadRunning: boolean;
          }[];
        };
        const expectedCode: Record<string, number> = { 'exit-in-callback': 3, terminate: 1, drop: 0, close: 0 };
        assert.equal(r.rounds.length, rounds);
        for (const round of r.rounds) {
          for (const w of round.results) {
            assert.equal(w.code, expectedCode[w.mode], `worker (${w.mode}) exit code`);
            assert.ok(w.gone, `worker (${w.mode}): its TAP ${w.ifname} and IOThreads are gone after it ended`);
          }
          assert.ok(round.progressed, 'the main thread context kept running while workers came and went');
          assert.ok(round.mainTapUp, "the main thread's TAP is still there and usable");
          assert.ok(round.mainThreadRunning, "the main thread's IOThread is still running");
        }
        assert.ok((r.hops as number) > 0, 'the main IOThread was given work');
        assert.ok(r.mainTapGone, "the main thread's TAP is gone after close()");
        assert.deepEqual(
          { fd: r.fdDelta, task: r.taskDelta },
          { fd: 0, task: 0 },
          'fd and thread counts back to baseline',
        );
      });
    },
  );
});

describe('lifecycle: process.exit() from a loop callback', privileged(), () => {
  for (const via of ['bh', 'timer', 'oneshot', 'bh-with-busy-worker'] as const) {
    test(
      `exit(7) from a ${via} callback with busy IOThreads and open TAPs: exit code 7, no TAP left`,
      { timeout: TIMEOUT },
      async () => {
        // Twice: teardown races show up as an occasional crash, not a steady one.
        for (let i = 0; i < 2; i++) {
          await withNames(3, 'lx', async ([a, b, w]) => {
            const run = await runScenario('exit-from-callback', { via, ifnames: [a, b], workerIfnames: [w] });
            assertNoCrash(run);
            assert.equal(run.code, 7, run.stderr);
            assert.equal(run.stderr, '');
            resultOf(run, 'ready');
          });
        }
      },
    );
  }
});

describe('lifecycle: SIGTERM and SIGINT while IOThreads are busy', privileged(), () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    test(
      `${signal}, default action: the process dies by the signal, no crash, non-persistent TAPs gone, the persistent one kept`,
      { timeout: TIMEOUT },
      async () => {
        await withNames(2, 'ls', async ([a, b]) => {
          const persistent = npName('lp');
          sh('ip', ['tuntap', 'add', 'mode', 'tap', 'name', persistent]);
          try {
            const run = await runScenario(
              'signal-while-busy',
              { handler: 'none', ifnames: [a, b], persistent },
              { signal },
            );
            assertNoCrash(run);
            assert.equal(run.signal, signal);
            assert.ok(linkExists(persistent), 'a persistent TAP outlives the process');
          } finally {
            deleteLink(persistent);
          }
        });
      },
    );

    test(`${signal} handled with process.exit(0): exit code 0, no TAP left`, { timeout: TIMEOUT }, async () => {
      await withNames(2, 'ls', async ([a, b]) => {
        const run = await runScenario('signal-while-busy', { handler: 'exit', ifnames: [a, b] }, { signal });
        assertNoCrash(run);
        assert.equal(run.code, 0, run.stderr);
        assert.equal(run.stderr, '');
      });
    });

    test(
      `${signal} handled by closing everything: the loop drains, exit code 0, fd and thread counts back`,
      { timeout: TIMEOUT },
      async () => {
        await withNames(2, 'ls', async ([a, b]) => {
          const run = await runScenario('signal-while-busy', { handler: 'close', ifnames: [a, b] }, { signal });
          assertNoCrash(run);
          assert.equal(run.code, 0, run.stderr);
          const closed = resultOf(run, 'closed');
          assert.equal(closed.sig, signal);
          assert.deepEqual({ fd: closed.fdDelta, task: closed.taskDelta }, { fd: 0, task: 0 });
        });
      },
    );
  }
});

describe('lifecycle: objects dropped without close() are reclaimed', privileged(), () => {
  test(
    'a dropped Tap, busy IoThreads and a MainLoopContext give back their fds, threads and interface on GC',
    { timeout: TIMEOUT },
    async () => {
      await withNames(2, 'lg', async ([dropName, keepName]) => {
        const run = await runScenario('dropped', { ifnames: [dropName, keepName] }, { exposeGc: true });
        assertNoCrash(run);
        assert.equal(run.code, 0, run.stderr);
        const r = resultOf(run);
        assert.ok(r.tapOpened, 'the TAP was opened with its 4 queue fds');
        assert.ok(r.tapReclaimed, 'the dropped TAP: fds closed and interface gone after GC');
        assert.ok(r.keptSurvives, 'a TAP still referenced is not collected');
        assert.ok(r.threadsStarted, 'three IOThreads were started');
        assert.ok(r.threadsReclaimed, 'the dropped IOThreads were joined and their fds closed after GC');
        assert.ok(r.contextOpened, 'the context was open with its fds');
        assert.ok(r.contextReclaimed, "the dropped context's fds were closed after GC");
        assert.deepEqual({ fd: r.fdDelta, task: r.taskDelta }, { fd: 0, task: 0 });
      });
    },
  );
});
