// The AioContext conformance cases again, on a MainLoopContext embedded in Node's libuv loop
// with JS callbacks: first driven by hand (poll / prepare+check+dispatch), then driven by
// libuv itself, then process-level behaviour (keep-alive, exceptions, workers).
// The native suite (native/test/aio_test.cc) runs the same cases on an IoThread.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { MainLoopContext, pipe, socketPair, timeoutNsToMs } from '../lib/event-loop';
import { loadAddon, runNode } from './helpers/node-child';

/** A context only this test drives; closed afterwards whatever happens. */
function withManual(fn: (ctx: MainLoopContext) => void): void {
  const ctx = new MainLoopContext('np-test', { driven: false });
  try {
    fn(ctx);
  } finally {
    ctx.close();
  }
}

/** QEMU's EventNotifier on a pipe: set writes a byte, testAndClear drains it. */
class PipeNotifier {
  readonly r: number;
  readonly w: number;
  constructor() {
    [this.r, this.w] = pipe();
  }
  set(): void {
    fs.writeSync(this.w, 'x');
  }
  testAndClear(): boolean {
    const buf = Buffer.alloc(64);
    let any = false;
    for (;;) {
      try {
        if (fs.readSync(this.r, buf) <= 0) return any;
        any = true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EAGAIN') return any;
        throw e;
      }
    }
  }
  close(): void {
    fs.closeSync(this.r);
    fs.closeSync(this.w);
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

// ====================================================================== driven by hand

describe('main-loop context, bottom halves (manual poll)', () => {
  test('a scheduled BH does not run until polled; one blocking poll runs it once', () => {
    withManual((ctx) => {
      let runs = 0;
      const bh = ctx.bh(() => runs++);
      bh.schedule();
      assert.equal(runs, 0);
      assert.equal(ctx.poll(true), true);
      assert.equal(runs, 1);
      assert.equal(ctx.poll(false), false);
      assert.equal(runs, 1);
      bh.delete();
    });
  });

  test('a self-rescheduling BH runs once per iteration (schedule10)', () => {
    withManual((ctx) => {
      let runs = 0;
      const bh = ctx.bh(() => {
        if (++runs < 10) bh.schedule();
      });
      bh.schedule();
      for (let i = 1; i <= 10; i++) {
        assert.equal(ctx.poll(false), true);
        assert.equal(runs, i);
      }
      assert.equal(ctx.poll(false), false);
      assert.equal(runs, 10);
      bh.delete();
    });
  });

  test('cancel prevents the run, does not unlink, and the BH can be scheduled again', () => {
    withManual((ctx) => {
      let runs = 0;
      const bh = ctx.bh(() => runs++);
      bh.schedule();
      bh.cancel();
      assert.equal(ctx.nextTimeoutNs(), -1);
      assert.equal(ctx.poll(false), false);
      assert.equal(runs, 0);
      bh.schedule();
      bh.cancel();
      bh.schedule();
      assert.equal(ctx.poll(false), true);
      assert.equal(runs, 1);
      assert.equal(ctx.poll(false), false);
      bh.delete();
    });
  });

  test('deleting a scheduled BH prevents the run; a deleted BH cannot be used', () => {
    withManual((ctx) => {
      let runs = 0;
      const bh = ctx.bh(() => runs++);
      bh.schedule();
      bh.delete();
      bh.delete(); // idempotent
      assert.equal(ctx.poll(false), false);
      assert.equal(runs, 0);
      assert.throws(() => bh.schedule(), RangeError);
    });
  });

  test('a BH may delete itself from its callback (callback-delete/one)', () => {
    withManual((ctx) => {
      let runs = 0;
      const bh = ctx.bh(() => {
        runs++;
        bh.delete();
      });
      bh.schedule();
      assert.equal(ctx.poll(true), true);
      assert.equal(runs, 1);
      assert.equal(ctx.poll(false), false);
    });
  });

  test('four self-deleting BHs with 1..4 runs (callback-delete/many)', () => {
    withManual((ctx) => {
      const runs = [0, 0, 0, 0];
      const bhs = [1, 2, 3, 4].map((max, i) => {
        const bh = ctx.bh(() => {
          if (++runs[i] < max) bh.schedule();
          else bh.delete();
        });
        return bh;
      });
      bhs.forEach((bh) => bh.schedule());
      assert.equal(ctx.poll(false), true);
      assert.deepEqual(runs, [1, 1, 1, 1]);
      for (let i = 0; i < 10 && ctx.poll(false); i++);
      assert.deepEqual(runs, [1, 2, 3, 4]);
      assert.ok(bhs.every((bh) => bh.deleted));
      assert.equal(ctx.poll(false), false);
    });
  });

  test('one blocking poll drains a single BH (flush); scheduling is idempotent', () => {
    withManual((ctx) => {
      let runs = 0;
      const bh = ctx.bh(() => runs++);
      bh.schedule();
      bh.schedule();
      bh.schedule();
      assert.equal(ctx.poll(true), true);
      assert.equal(runs, 1);
      assert.equal(ctx.poll(false), false);
      bh.delete();
    });
  });

  test('idle BHs cap the sleep at 10 ms and are not progress', () => {
    withManual((ctx) => {
      let idleRuns = 0;
      const idle = ctx.bh(() => idleRuns++);
      idle.scheduleIdle();
      assert.equal(ctx.nextTimeoutNs(), 10_000_000);
      assert.equal(ctx.poll(false), false);
      assert.equal(idleRuns, 1);
      idle.scheduleIdle();
      // Blocking with only an idle BH pending returns by itself (else this test hangs).
      assert.equal(ctx.poll(true), false);
      assert.equal(idleRuns, 2);
      idle.delete();
    });
  });

  test('one-shot BHs run once; one scheduled from a BH waits for the next pass', () => {
    withManual((ctx) => {
      const order: string[] = [];
      ctx.oneshot(() => {
        order.push('outer');
        ctx.oneshot(() => order.push('inner'));
      });
      assert.equal(ctx.poll(true), true);
      assert.deepEqual(order, ['outer']);
      assert.equal(ctx.poll(false), true);
      assert.deepEqual(order, ['outer', 'inner']);
      assert.equal(ctx.poll(false), false);
    });
  });
});

describe('main-loop context, event notifiers and fd handlers (manual poll)', () => {
  test('an unsignalled notifier: no callback, no progress (event/add-remove)', () => {
    withManual((ctx) => {
      const n = new PipeNotifier();
      let calls = 0;
      ctx.setFdHandler(n.r, { read: () => calls++ });
      assert.equal(ctx.poll(false), false);
      ctx.removeFdHandler(n.r);
      assert.equal(ctx.poll(false), false);
      assert.equal(calls, 0);
      n.close();
    });
  });

  test('set -> one callback, no repeat; removed -> no callbacks (event/wait)', () => {
    withManual((ctx) => {
      const n = new PipeNotifier();
      let calls = 0;
      ctx.setFdHandler(n.r, {
        read: () => {
          calls++;
          n.testAndClear();
        },
      });
      n.set();
      assert.equal(ctx.poll(false), true);
      assert.equal(calls, 1);
      assert.equal(ctx.poll(false), false);
      ctx.removeFdHandler(n.r);
      n.set();
      assert.equal(ctx.poll(false), false);
      assert.equal(calls, 1);
      n.close();
    });
  });

  test('a signalled notifier never blocks; each set gives one callback per poll (no-flush-cb)', () => {
    withManual((ctx) => {
      const data = new PipeNotifier();
      const dummy = new PipeNotifier();
      let dataCalls = 0;
      let dummyActive = 1;
      ctx.setFdHandler(data.r, {
        read: () => {
          dataCalls++;
          data.testAndClear();
        },
      });
      assert.equal(ctx.poll(false), false);
      data.set();
      assert.equal(ctx.poll(true), true); // ready fd: returns at once
      dataCalls = 0;
      ctx.setFdHandler(dummy.r, {
        read: () => {
          dummy.testAndClear();
          if (dummyActive > 0) dummyActive--;
        },
      });
      for (let round = 1; round <= 2; round++) {
        data.set();
        assert.equal(ctx.poll(false), true);
        assert.equal(dataCalls, round);
        assert.equal(ctx.poll(false), false);
        assert.equal(dataCalls, round);
      }
      dummy.set();
      for (let i = 0; i < 10 && dummyActive > 0; i++) ctx.poll(false);
      assert.equal(dummyActive, 0);
      assert.equal(dataCalls, 2);
      ctx.removeFdHandler(data.r);
      ctx.removeFdHandler(dummy.r);
      data.close();
      dummy.close();
    });
  });

  test('a handler that re-signals itself runs once per poll until done (event/flush)', () => {
    withManual((ctx) => {
      const n = new PipeNotifier();
      let active = 10;
      let calls = 0;
      ctx.setFdHandler(n.r, {
        read: () => {
          calls++;
          n.testAndClear();
          if (--active > 0) n.set();
        },
      });
      n.set();
      for (let i = 1; i <= 10; i++) {
        assert.equal(ctx.poll(false), true);
        assert.equal(calls, i);
      }
      assert.equal(ctx.poll(false), false);
      assert.equal(calls, 10);
      ctx.removeFdHandler(n.r);
      n.close();
    });
  });

  test('a handler that removes another (ready in the same batch) prevents its callback', () => {
    withManual((ctx) => {
      const a = new PipeNotifier();
      const b = new PipeNotifier();
      const calls: string[] = [];
      ctx.setFdHandler(a.r, {
        read: () => {
          calls.push('a');
          ctx.removeFdHandler(b.r);
        },
      });
      ctx.setFdHandler(b.r, {
        read: () => {
          calls.push('b');
          ctx.removeFdHandler(a.r);
        },
      });
      a.set();
      b.set();
      assert.equal(ctx.poll(false), true);
      assert.equal(calls.length, 1);
      ctx.removeFdHandler(a.r);
      ctx.removeFdHandler(b.r);
      assert.equal(ctx.poll(false), false);
      a.close();
      b.close();
    });
  });

  test('a handler removing itself skips its pending write callback', () => {
    withManual((ctx) => {
      const [x, y] = socketPair();
      let reads = 0;
      let writes = 0;
      ctx.setFdHandler(x, {
        read: () => {
          reads++;
          ctx.removeFdHandler(x);
        },
        write: () => writes++,
      });
      fs.writeSync(y, 'x'); // x: readable and writable
      assert.equal(ctx.poll(false), true);
      assert.equal(reads, 1);
      assert.equal(writes, 0);
      assert.equal(ctx.poll(false), false);
      fs.closeSync(x);
      fs.closeSync(y);
    });
  });

  test('read handlers run on HUP: pipe whose writer closed, socket whose peer closed', () => {
    withManual((ctx) => {
      for (const [r, w] of [pipe(), socketPair()]) {
        let calls = 0;
        let got = -1;
        ctx.setFdHandler(r, {
          read: () => {
            calls++;
            got = fs.readSync(r, Buffer.alloc(8));
          },
        });
        assert.equal(ctx.poll(false), false);
        fs.closeSync(w);
        assert.equal(ctx.poll(false), true);
        assert.equal(calls, 1);
        assert.equal(got, 0); // EOF
        ctx.removeFdHandler(r);
        fs.closeSync(r);
      }
    });
  });

  test('setFdPolling turns directions on and off; both off does not spin on HUP', () => {
    withManual((ctx) => {
      const [x, y] = socketPair();
      let reads = 0;
      let writes = 0;
      ctx.setFdHandler(x, { read: () => reads++, write: () => writes++ });
      fs.writeSync(y, 'x');
      assert.equal(ctx.poll(false), true);
      assert.deepEqual([reads, writes], [1, 1]);
      ctx.setFdPolling(x, false, true);
      assert.equal(ctx.poll(false), true);
      assert.deepEqual([reads, writes], [1, 2]);
      ctx.setFdPolling(x, false, false);
      fs.closeSync(y);
      assert.equal(ctx.poll(false), false);
      ctx.setFdPolling(x, true, false);
      assert.equal(ctx.poll(false), true);
      assert.deepEqual([reads, writes], [2, 2]);
      ctx.removeFdHandler(x);
      fs.closeSync(x);
    });
  });
});

describe('main-loop context, timers and notification (manual poll)', () => {
  test('a timer is not early, fires after expiry, re-arms from its callback', () => {
    withManual((ctx) => {
      let fires = 0;
      const t = ctx.timer(() => {
        if (++fires === 1) t.mod(100);
      });
      const start = Date.now();
      t.mod(100);
      assert.equal(t.pending, true);
      assert.equal(ctx.poll(false), false);
      assert.equal(fires, 0);
      sleepSync(Math.max(0, 110 - (Date.now() - start)));
      assert.equal(ctx.poll(false), true);
      assert.equal(fires, 1);
      assert.equal(t.pending, true);
      assert.equal(ctx.poll(false), false);
      assert.equal(ctx.poll(true), true); // sleeps until the re-armed deadline
      assert.equal(fires, 2);
      assert.equal(t.pending, false);
      assert.equal(ctx.poll(false), false);
      t.free();
    });
  });

  test('timers armed in order fire in order; del disarms', () => {
    withManual((ctx) => {
      const order: number[] = [];
      const timers = [1, 2, 3].map((id) => ctx.timer(() => order.push(id)));
      const off = ctx.timer(() => order.push(99));
      timers.forEach((t) => t.mod(0));
      off.mod(0);
      off.del();
      assert.equal(off.pending, false);
      sleepSync(2);
      assert.equal(ctx.poll(false), true);
      assert.deepEqual(order, [1, 2, 3]);
      [...timers, off].forEach((t) => t.free());
    });
  });

  test('timeouts round up to whole ms', () => {
    assert.equal(timeoutNsToMs(-1), -1);
    assert.equal(timeoutNsToMs(0), 0);
    assert.equal(timeoutNsToMs(1), 1);
    assert.equal(timeoutNsToMs(1_000_000), 1);
    assert.equal(timeoutNsToMs(1_000_001), 2);
    withManual((ctx) => {
      const t = ctx.timer(() => {});
      t.mod(500);
      const ns = ctx.prepare();
      assert.ok(ns > 0);
      assert.ok(timeoutNsToMs(ns) * 1e6 >= ns);
      ctx.check();
      t.free();
    });
  });

  test('the eventfd is written only when a waiter advertised itself', () => {
    withManual((ctx) => {
      const w0 = ctx.notifierWrites;
      ctx.notify();
      assert.equal(ctx.notifierWrites, w0);
      ctx.prepare();
      ctx.notify();
      assert.equal(ctx.notifierWrites, w0 + 1);
      assert.equal(ctx.check(), true);
      assert.equal(ctx.dispatch(), false); // draining the notifier is not progress
      ctx.notify();
      assert.equal(ctx.notifierWrites, w0 + 1);
      // aio-gsource/flush: after draining, nothing is pending.
      assert.equal(ctx.prepare(), -1);
      assert.equal(ctx.check(), false);
    });
  });

  test('a new earliest timer notifies a waiter; a later one does not', () => {
    withManual((ctx) => {
      const [t1, t2, t3] = [0, 1, 2].map(() => ctx.timer(() => {}));
      ctx.prepare();
      const w0 = ctx.notifierWrites;
      t1.mod(2000);
      assert.equal(ctx.notifierWrites, w0 + 1);
      t2.mod(3000);
      assert.equal(ctx.notifierWrites, w0 + 1);
      t3.mod(1000);
      assert.equal(ctx.notifierWrites, w0 + 2);
      ctx.check();
      ctx.dispatch();
      [t1, t2, t3].forEach((t) => t.free());
    });
  });
});

describe('main-loop context, errors and lifetime', () => {
  test('a callback exception comes out of poll(); the loop stays usable', () => {
    withManual((ctx) => {
      let after = 0;
      const bad = ctx.bh(() => {
        throw new Error('boom from bh');
      });
      const good = ctx.bh(() => after++);
      bad.schedule();
      good.schedule();
      assert.throws(() => ctx.poll(false), /boom from bh/);
      assert.equal(after, 1); // the rest of the pass still ran
      good.schedule();
      assert.equal(ctx.poll(false), true);
      assert.equal(after, 2);
      bad.delete();
      good.delete();
    });
  });

  test('close() from inside a callback is safe; using a closed context throws NETPLANE_CLOSED', () => {
    const ctx = new MainLoopContext('np-close', { driven: false });
    let second = 0;
    const a = ctx.bh(() => ctx.close());
    const b = ctx.bh(() => second++);
    const n = new PipeNotifier();
    ctx.setFdHandler(n.r, { read: () => second++ });
    n.set();
    a.schedule();
    b.schedule();
    ctx.poll(false);
    assert.equal(ctx.closed, true);
    assert.ok(second <= 1); // b may have run before a, nothing after the close
    assert.throws(
      () => ctx.poll(false),
      (e: NodeJS.ErrnoException) => e.code === 'NETPLANE_CLOSED',
    );
    assert.throws(
      () => ctx.bh(() => {}),
      (e: NodeJS.ErrnoException) => e.code === 'NETPLANE_CLOSED',
    );
    ctx.close(); // idempotent
    n.close();
  });

  test('bad arguments are TypeErrors / RangeErrors, never crashes', () => {
    withManual((ctx) => {
      const raw = ctx.handle as unknown as Record<string, (...a: unknown[]) => unknown>;
      assert.throws(() => raw.bhNew.call(ctx.handle, 42), TypeError);
      assert.throws(() => raw.timerNew.call(ctx.handle), TypeError);
      assert.throws(() => raw.bhSchedule.call(ctx.handle, 'x'), TypeError);
      assert.throws(() => raw.bhSchedule.call(ctx.handle, 123456), RangeError);
      assert.throws(() => raw.poll.call(ctx.handle, 'yes'), TypeError);
      assert.throws(() => raw.setFdHandler.call(ctx.handle, '3', () => {}), TypeError);
      assert.throws(() => raw.setFdHandler.call(ctx.handle, -1, () => {}), RangeError);
      assert.throws(() => raw.setFdHandler.call(ctx.handle, 0, 'notfn'), TypeError);
      assert.throws(() => raw.setFdPolling.call(ctx.handle, 0, 1, true), TypeError);
      assert.throws(() => raw.setFdPolling.call(ctx.handle, 999, true, true), RangeError);
      const t = ctx.timer(() => {});
      assert.throws(() => t.mod(-1), RangeError);
      assert.throws(() => t.mod(NaN), RangeError);
      assert.throws(() => t.mod('5' as unknown as number), TypeError);
      t.free();
      // An fd epoll cannot watch: a regular file -> EPERM system error, nothing registered.
      const file = path.join(os.tmpdir(), `np-aio-${process.pid}`);
      const fd = fs.openSync(file, 'w');
      try {
        assert.throws(
          () => ctx.setFdHandler(fd, { read: () => {} }),
          (e: NodeJS.ErrnoException) => e.code === 'EPERM' && e.syscall === 'epoll_ctl(EPOLL_CTL_ADD)',
        );
      } finally {
        fs.closeSync(fd);
        fs.unlinkSync(file);
      }
      // A closed fd -> EBADF.
      const [r, w] = pipe();
      fs.closeSync(r);
      fs.closeSync(w);
      assert.throws(
        () => ctx.setFdHandler(r, { read: () => {} }),
        (e: NodeJS.ErrnoException) => e.code === 'EBADF',
      );
    });
    assert.throws(() => new MainLoopContext(5 as unknown as string), TypeError);
    assert.throws(() => new MainLoopContext('x', { driven: 'yes' as unknown as boolean }), TypeError);
  });
});

// ====================================================================== driven by libuv

describe('main-loop context driven by libuv', () => {
  test('a scheduled BH runs on its own, microtasks after it too', async () => {
    const ctx = new MainLoopContext('np-driven');
    try {
      const order: string[] = [];
      await new Promise<void>((resolve) => {
        const bh = ctx.bh(() => {
          order.push('bh');
          void Promise.resolve().then(() => {
            order.push('microtask');
            bh.delete();
            resolve();
          });
        });
        bh.schedule();
      });
      assert.deepEqual(order, ['bh', 'microtask']);
    } finally {
      ctx.close();
    }
  });

  test('a timer fires on its own, and re-arms from its callback', async () => {
    const ctx = new MainLoopContext('np-driven-timer');
    try {
      let fires = 0;
      await new Promise<void>((resolve) => {
        const t = ctx.timer(() => {
          if (++fires < 3) t.mod(5);
          else resolve();
        });
        t.mod(20);
      });
      assert.equal(fires, 3);
    } finally {
      ctx.close();
    }
  });

  test('an fd handler fires when a pipe is written by another process', { timeout: 20000 }, async () => {
    const ctx = new MainLoopContext('np-driven-fd').ref(); // only the fd handler is waiting
    const [r, w] = pipe();
    try {
      const got = new Promise<string>((resolve) => {
        ctx.setFdHandler(r, {
          read: () => {
            const buf = Buffer.alloc(64);
            const n = fs.readSync(r, buf);
            ctx.removeFdHandler(r);
            resolve(buf.subarray(0, n).toString());
          },
        });
      });
      const child = spawn(process.execPath, ['-e', "require('fs').writeSync(3, 'from-child')"], {
        stdio: ['ignore', 'ignore', 'inherit', w],
      });
      assert.equal(await got, 'from-child');
      await new Promise((resolve) => child.on('exit', resolve));
    } finally {
      ctx.close();
      fs.closeSync(r);
      fs.closeSync(w);
    }
  });

  test('an fd handler fires when a pipe is written by another thread', { timeout: 20000 }, async () => {
    const ctx = new MainLoopContext('np-driven-thread').ref();
    const [r, w] = pipe();
    try {
      const got = new Promise<number>((resolve) => {
        ctx.setFdHandler(r, {
          read: () => {
            const n = fs.readSync(r, Buffer.alloc(64));
            ctx.removeFdHandler(r);
            resolve(n);
          },
        });
      });
      const worker = new Worker(`require('fs').writeSync(${w}, 'abc')`, { eval: true });
      assert.equal(await got, 3);
      await new Promise((resolve) => worker.on('exit', resolve));
    } finally {
      ctx.close();
      fs.closeSync(r);
      fs.closeSync(w);
    }
  });

  test('manual driving still works next to libuv driving, and setDriven switches', async () => {
    const ctx = new MainLoopContext('np-switch');
    try {
      assert.equal(ctx.driven, true);
      ctx.setDriven(false);
      let runs = 0;
      const bh = ctx.bh(() => runs++);
      bh.schedule();
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(runs, 0); // nobody drives it
      ctx.setDriven(true);
      await new Promise<void>((resolve) => {
        const check = () => (runs === 1 ? resolve() : setImmediate(check));
        check();
      });
      bh.schedule();
      assert.equal(ctx.poll(false), true); // by hand, before libuv gets to it
      assert.equal(runs, 2);
      bh.delete();
    } finally {
      ctx.close();
    }
  });
});

describe('main-loop context and the process', () => {
  test('an idle context does not keep the process alive', { timeout: 20000 }, async () => {
    const r = await runNode(`${loadAddon}
      const ctx = new b.MainLoopContext('idle');
      const [rd, wr] = b.aioPipe();
      ctx.setFdHandler(rd, () => {});
      ctx.bhNew(() => {}); // created, never scheduled
      console.log('started');`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'started');
  });

  test(
    'pending BHs and timers keep it alive until they ran; ref() keeps an idle one alive',
    { timeout: 20000 },
    async () => {
      const r = await runNode(`${loadAddon}
      const ctx = new b.MainLoopContext('pending');
      const bh = ctx.bhNew(() => console.log('bh ran'));
      ctx.bhSchedule(bh);
      const t = ctx.timerNew(() => {
        console.log('timer fired');
        const idle = new b.MainLoopContext('reffed');
        idle.ref();
        setTimeout(() => { console.log('still alive'); idle.unref(); }, 200).unref();
      });
      ctx.timerMod(t, 50);`);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.stdout.trim().split('\n'), ['bh ran', 'timer fired', 'still alive']);
    },
  );

  test('an exception in a libuv-driven callback is an uncaught exception', { timeout: 20000 }, async () => {
    const r = await runNode(`${loadAddon}
      process.on('uncaughtException', (e) => { console.log('caught: ' + e.message); process.exitCode = 0; });
      const ctx = new b.MainLoopContext('throws');
      const bh = ctx.bhNew(() => { throw new Error('bh exploded'); });
      ctx.bhSchedule(bh);
      const t = ctx.timerNew(() => { console.log('loop goes on'); ctx.close(); });
      ctx.timerMod(t, 30);`);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['caught: bh exploded', 'loop goes on']);
  });

  test(
    'contexts and IOThreads left open in a worker are cleaned up when it exits or is terminated',
    { timeout: 20000 },
    async () => {
      const body = `${loadAddon}
      const { parentPort } = require('worker_threads');
      const ctx = new b.MainLoopContext('in-worker');
      ctx.ref();
      const fds = b.aioSocketPair();
      ctx.setFdHandler(fds[0], () => {});
      const bh = ctx.bhNew(() => {});
      ctx.bhSchedule(bh);
      const th = new b.IoThread('np-wk');
      parentPort.postMessage({ tid: th.tid, fds });`;
      for (const how of ['exit', 'terminate']) {
        const worker = new Worker(body + (how === 'exit' ? 'ctx.unref();' : ''), { eval: true });
        const { tid, fds } = await new Promise<{ tid: number; fds: number[] }>((resolve) =>
          worker.once('message', resolve),
        );
        assert.ok(fs.existsSync(`/proc/self/task/${tid}`));
        const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
        if (how === 'terminate') await worker.terminate();
        const code = await exited;
        if (how === 'exit') assert.equal(code, 0);
        fds.forEach((fd) => fs.closeSync(fd));
        assert.equal(fs.existsSync(`/proc/self/task/${tid}`), false, `iothread of the ${how} worker joined`);
      }
    },
  );
});
