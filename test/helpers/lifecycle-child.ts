// The child process (and worker) side of test/lifecycle.test.ts. Each scenario runs in a
// fresh `node --import tsx` process so that exits, signals, GC and worker teardown are real;
// it reports on stdout as JSON lines ({"event": ...}) that the parent test reads.
//
//   node --import tsx [--expose-gc] test/helpers/lifecycle-child.ts <scenario> '<json args>'
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

import { Tap } from '../../lib/tap';
import { IoThread, MainLoopContext, pipe } from '../../lib/event-loop';

// ---------------------------------------------------------------------------- helpers

function emit(event: string, data: Record<string, unknown> = {}): void {
  // stdout is a pipe: writes are synchronous on Linux, so nothing is lost to process.exit().
  process.stdout.write(JSON.stringify({ event, ...data }) + '\n');
}

const fdCount = (): number => fs.readdirSync('/proc/self/fd').length;
const taskCount = (): number => fs.readdirSync('/proc/self/task').length;
const linkExists = (ifname: string): boolean => {
  try {
    execFileSync('ip', ['link', 'show', 'dev', ifname], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Poll `cond` (after a GC when available) until it holds or `ms` pass. */
async function eventually(cond: () => boolean, ms = 10_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    globalThis.gc?.();
    if (cond()) return true;
    if (Date.now() > deadline) return false;
    await sleep(20);
  }
}

export interface ChurnStats {
  bh: number;
  timer: number;
  hops: number;
}

/**
 * Keep a context and IOThreads busy: a bottom half that re-schedules itself and every 8th
 * run makes a synchronous cross-thread hop into an IOThread (setPollParams runs on the
 * thread, and a non-zero poll window makes it busy-poll), plus a timer re-armed at 0 ms.
 * `onTick` runs in the BH / timer callback; it may call process.exit().
 */
function startChurn(
  ctx: MainLoopContext,
  threads: IoThread[],
  onTick: (kind: 'bh' | 'timer', stats: ChurnStats) => void = () => {},
) {
  const stats: ChurnStats = { bh: 0, timer: 0, hops: 0 };
  let stopped = false;
  const bh = ctx.bh(() => {
    stats.bh++;
    if (threads.length > 0 && stats.bh % 8 === 0) {
      const t = threads[(stats.bh / 8) % threads.length];
      if (t.running) {
        t.setPollParams({ pollMaxNs: 1000 + (stats.bh % 32768) });
        stats.hops++;
      }
    }
    onTick('bh', stats);
    if (!stopped) bh.schedule();
  });
  const timer = ctx.timer(() => {
    stats.timer++;
    onTick('timer', stats);
    if (!stopped) timer.mod(0);
  });
  bh.schedule();
  timer.mod(0);
  return {
    stats,
    stop(): void {
      stopped = true;
      bh.delete();
      timer.free();
    },
  };
}

/** Resolve once `ctx` has run a one-shot (the resolver is released once it ran). */
function ranOnce(ctx: MainLoopContext): Promise<void> {
  return new Promise<void>((resolve) => ctx.oneshot(resolve));
}

/** Resolve once the churn made `n` more BH runs (bounded). */
async function churnProgress(stats: ChurnStats, n: number, ms = 10_000): Promise<boolean> {
  const target = stats.bh + n;
  return eventually(() => stats.bh >= target, ms);
}

/**
 * Open, use and close each object once, so that lazily created process state (libuv, V8,
 * the addon itself, a first worker) is in the baseline and not counted as a leak.
 */
async function warmUp(withWorker: boolean): Promise<void> {
  const tap = Tap.open({ queues: 2 });
  await tap.close();
  const t = IoThread.start('np-warm');
  t.setPollParams({ pollMaxNs: 1000 });
  t.stop();
  const ctx = new MainLoopContext('warm');
  await ranOnce(ctx);
  ctx.close();
  if (withWorker) {
    const w = startWorker({ mode: 'close', ifname: '', ticks: 10 });
    await once(w, 'exit');
  }
  // tsx closes a cache file some time after start-up: wait for the fd count to settle.
  let last = -1;
  for (let i = 0; i < 40 && fdCount() !== last; i++) {
    last = fdCount();
    await sleep(50);
  }
}

function once(w: Worker, what: 'exit' | 'message'): Promise<unknown> {
  return new Promise((resolve) => w.once(what, resolve));
}

// ---------------------------------------------------------------------------- worker side

/** What a worker does before it ends (see workerMain). */
export type WorkerMode = 'exit-in-callback' | 'terminate' | 'drop' | 'close';
interface WorkerArgs {
  mode: WorkerMode;
  ifname: string; // '' = kernel-named
  ticks: number;
}

function startWorker(args: WorkerArgs): Worker {
  // Workers do not inherit tsx's hooks: register the CommonJS one, then load this file.
  const tsxCjs = require.resolve('tsx/cjs');
  const code = `require(${JSON.stringify(tsxCjs)}); require(${JSON.stringify(__filename)}).workerMain();`;
  return new Worker(code, { eval: true, workerData: args });
}

/**
 * A worker opens a TAP, two IOThreads and a busy context, then ends by `mode`:
 * exit-in-callback: process.exit(3) from a BH callback, with everything still open;
 * terminate: stays busy until the parent calls worker.terminate();
 * drop: stops the churn and drops every object without close(), then ends naturally;
 * close: closes everything, then ends naturally.
 */
export function workerMain(): void {
  const args = workerData as WorkerArgs;
  const tap = Tap.open({ ifname: args.ifname || undefined, queues: 2 });
  const threads = [IoThread.start('np-wk-a', { pollMaxNs: 20000 }), IoThread.start('np-wk-b')];
  const ctx = new MainLoopContext('worker');
  let reported = false;
  const churn = startChurn(ctx, threads, (kind, stats) => {
    if (kind !== 'bh' || stats.bh < args.ticks) return;
    if (!reported) {
      reported = true;
      parentPort!.postMessage({ ready: true, ifname: tap.ifname, tids: threads.map((t) => t.tid) });
    }
    if (args.mode === 'exit-in-callback') {
      process.exit(3);
    } else if (args.mode === 'drop') {
      churn.stop(); // the context stays open, nothing keeps the loop alive: the worker ends
    } else if (args.mode === 'close') {
      churn.stop();
      void tap.close();
      for (const t of threads) t.stop();
      ctx.close();
    }
  });
}

// ---------------------------------------------------------------------------- scenarios

interface ScenarioArgs {
  ifnames?: string[];
  persistent?: string;
  via?: 'bh' | 'timer' | 'oneshot' | 'bh-with-busy-worker';
  handler?: 'none' | 'exit' | 'close';
  workerIfnames?: string[];
  rounds?: number;
}

/**
 * The addon in a worker and in the main thread at once: the main thread keeps a TAP, an
 * IOThread and a busy context while workers open their own and end in each possible way.
 */
async function workers(args: ScenarioArgs): Promise<void> {
  await warmUp(true);
  const fd0 = fdCount();
  const task0 = taskCount();
  const mainTap = Tap.open({ ifname: args.ifnames![0], queues: 2 });
  const mainThread = IoThread.start('np-main-io', { pollMaxNs: 20000 });
  const ctx = new MainLoopContext('main');
  const churn = startChurn(ctx, [mainThread]);
  const modes: WorkerMode[] = ['exit-in-callback', 'terminate', 'drop', 'close'];
  const names = args.workerIfnames!;
  const rounds = [];
  for (let round = 0; round < (args.rounds ?? 1); round++) {
    const ws = modes.map((mode, i) => {
      const w = startWorker({ mode, ifname: names[round * modes.length + i], ticks: 200 });
      const exited = once(w, 'exit');
      const ready = once(w, 'message');
      w.on('error', (e) => emit('worker-error', { mode, message: String(e) }));
      return { mode, w, exited, ready };
    });
    const results = await Promise.all(
      ws.map(async ({ mode, w, exited, ready }) => {
        const info = (await ready) as { ifname: string; tids: number[] };
        if (mode === 'terminate') {
          await sleep(10); // let it churn a little longer, then stop it mid-work
          await w.terminate();
        }
        const code = await exited;
        // The worker's env cleanup closed its TAP and joined its IOThreads, or GC will.
        const gone = await eventually(
          () => !linkExists(info.ifname) && info.tids.every((tid) => !fs.existsSync(`/proc/self/task/${tid}`)),
        );
        return { mode, code, ifname: info.ifname, gone };
      }),
    );
    // The main thread went on working through all of it.
    const progressed = await churnProgress(churn.stats, 50);
    mainTap.setOffloads({ csum: true, tso4: true });
    rounds.push({
      results,
      progressed,
      mainTapUp: linkExists(mainTap.ifname) && mainTap.queueEnabled(1),
      mainThreadRunning: mainThread.running,
    });
  }
  churn.stop();
  ctx.close();
  mainThread.stop();
  await mainTap.close();
  const back = await eventually(() => fdCount() === fd0 && taskCount() === task0);
  emit('result', {
    rounds,
    hops: churn.stats.hops,
    mainTapGone: !linkExists(args.ifnames![0]),
    back,
    fdDelta: fdCount() - fd0,
    taskDelta: taskCount() - task0,
  });
}

/** Open TAPs (and a persistent one when given), three IOThreads and a busy context. */
function openBusy(args: ScenarioArgs, onTick?: Parameters<typeof startChurn>[2]) {
  const taps = args.ifnames!.map((ifname) => Tap.open({ ifname, queues: 2 }));
  if (args.persistent) taps.push(Tap.open({ ifname: args.persistent }));
  const threads = ['np-busy-0', 'np-busy-1', 'np-busy-2'].map((n) => IoThread.start(n, { pollMaxNs: 50000 }));
  const ctx = new MainLoopContext('busy');
  const churn = startChurn(ctx, threads, onTick);
  return { taps, threads, ctx, churn };
}

/** process.exit(7) from inside a callback while IOThreads run and TAPs are open. */
async function exitFromCallback(args: ScenarioArgs): Promise<void> {
  const via = args.via!;
  if (via === 'bh-with-busy-worker') {
    const w = startWorker({ mode: 'terminate', ifname: args.workerIfnames![0], ticks: 50 });
    await once(w, 'message'); // the worker is busy with its own TAP and IOThreads
  }
  const busy = openBusy(args, (kind, stats) => {
    if (via === 'timer' && kind === 'timer' && stats.timer >= 300) process.exit(7);
    if (via !== 'timer' && via !== 'oneshot' && kind === 'bh' && stats.bh >= 300) process.exit(7);
    if (via === 'oneshot' && kind === 'bh' && stats.bh === 300) busy.ctx.oneshot(() => process.exit(7));
  });
  emit('ready', { tids: busy.threads.map((t) => t.tid) });
}

/** Wait for a signal while everything is busy; `handler` says what the process does. */
async function signalWhileBusy(args: ScenarioArgs): Promise<void> {
  let busy: ReturnType<typeof openBusy> | undefined;
  let fd0 = 0;
  let task0 = 0;
  const onSignal = async (sig: string) => {
    if (args.handler === 'exit') process.exit(0);
    // 'close': an orderly shutdown; then the loop must drain by itself (nothing left
    // keeping it alive) and the process ends with 0.
    busy!.churn.stop();
    busy!.ctx.close();
    for (const t of busy!.threads) t.stop();
    for (const tap of busy!.taps) await tap.close();
    const back = await eventually(() => fdCount() === fd0 && taskCount() === task0, 2000);
    emit('closed', { sig, back, fdDelta: fdCount() - fd0, taskDelta: taskCount() - task0 });
  };
  if (args.handler !== 'none') {
    // Installed before the baseline: libuv opens its signal pipe with the first handler.
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  }
  await warmUp(false);
  fd0 = fdCount();
  task0 = taskCount();
  busy = openBusy(args);
  await churnProgress(busy.churn.stats, 200);
  emit('ready', { hops: busy.churn.stats.hops });
}

/** Objects dropped without close() are reclaimed by GC (needs --expose-gc). */
async function dropped(args: ScenarioArgs): Promise<void> {
  if (typeof globalThis.gc !== 'function') throw new Error('run with --expose-gc');
  await warmUp(false);
  const fd0 = fdCount();
  const task0 = taskCount();
  const [dropName, keepName] = args.ifnames!;
  const report: Record<string, unknown> = {};

  // A TAP opened and dropped: its queue fds close, the interface disappears.
  (() => {
    Tap.open({ ifname: dropName, queues: 4 });
  })();
  report.tapOpened = linkExists(dropName) && fdCount() === fd0 + 4;
  report.tapReclaimed = await eventually(() => !linkExists(dropName) && fdCount() === fd0);

  // A kept TAP survives the same collections.
  const kept = Tap.open({ ifname: keepName });
  for (let i = 0; i < 5; i++) {
    globalThis.gc!();
    await sleep(10);
  }
  report.keptSurvives = linkExists(keepName) && !kept.closed;
  await kept.close();

  // IOThreads made busy, then dropped: threads joined, epoll and event fds closed.
  await (async () => {
    const threads = [0, 1, 2].map((i) => IoThread.start(`np-drop-${i}`, { pollMaxNs: 50000 }));
    for (let i = 0; i < 200; i++) threads[i % 3].setPollParams({ pollMaxNs: 1000 + i });
    report.threadsStarted = taskCount() === task0 + 3;
  })();
  report.threadsReclaimed = await eventually(() => taskCount() === task0 && fdCount() === fd0);

  // A context with a BH, timers and an fd handler (nothing pending), then dropped: its
  // epoll fd and event notifier close. The callbacks must not capture the context: the
  // context holds them strongly, so a callback that refers to it makes a cycle through a
  // native root that GC cannot break (close() does).
  const pipeFds = pipe();
  const quiet = (): void => {};
  await (async () => {
    const ctx = new MainLoopContext('dropped');
    ctx.setFdHandler(pipeFds[0], { read: quiet });
    ctx.bh(quiet);
    ctx.timer(quiet);
    await ranOnce(ctx);
  })();
  report.contextOpened = fdCount() === fd0 + 4; // its 2 + the pipe
  report.contextReclaimed = await eventually(() => fdCount() === fd0 + 2);
  for (const fd of pipeFds) fs.closeSync(fd);

  report.fdDelta = fdCount() - fd0;
  report.taskDelta = taskCount() - task0;
  emit('result', report);
}

const scenarios: Record<string, (args: ScenarioArgs) => Promise<void>> = {
  workers,
  'exit-from-callback': exitFromCallback,
  'signal-while-busy': signalWhileBusy,
  dropped,
};

if (isMainThread && require.main === module) {
  const [name, json] = process.argv.slice(2);
  const run = scenarios[name];
  if (!run) {
    process.stderr.write(`unknown scenario ${name}; one of ${Object.keys(scenarios).join(', ')}\n`);
    process.exit(2);
  }
  run(JSON.parse(json ?? '{}') as ScenarioArgs).catch((e: unknown) => {
    process.stderr.write(`${path.basename(__filename)} ${name}: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  });
}
