// The data plane's IOThreads poll adaptively by default (QEMU's iothread default, 32 µs):
// while frames keep coming they spin briefly before sleeping, and once traffic stops they
// sleep in epoll_wait again. These tests check that behaviour, not timing: after a burst of
// traffic, an idle IOThread's CPU time over a one-second window is (almost) zero. A thread
// that kept polling would use the whole second.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { NativeDataPlane } from '../lib/dataplane/native-dataplane';
import { Tap } from '../lib/tap';
import { deleteLink, npName, sh } from './helpers/netns';
import { needsPrivileged } from './helpers/tools';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** utime + stime of a thread of this process, in clock ticks (fields 14 and 15 of stat). */
function cpuTicks(tid: string): number {
  const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[14 - 3]) + Number(fields[15 - 3]);
}

function threadsNamed(name: string): string[] {
  return fs.readdirSync('/proc/self/task').filter((t) => {
    try {
      return fs.readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim() === name;
    } catch {
      return false;
    }
  });
}

// Ticks are 10 ms: a sleeping thread shows 0, at most 1 or 2 from the wake-ups at the
// window's edges on a loaded machine; a spinning one about 100 (fewer if it shares its CPU).
const kIdleTicksMax = 3;

async function idleTicks(thread: string): Promise<number> {
  await sleep(200); // the last window closes, the loop goes to sleep
  const t0 = cpuTicks(thread);
  await sleep(1000);
  return cpuTicks(thread) - t0;
}

function frame(i: number): Uint8Array {
  const f = new Uint8Array(60);
  f.set([0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
  f[59] = i & 0xff;
  return f;
}

test('an IOThread that carried frames between two ports sleeps once they stop', { timeout: 20_000 }, async () => {
  const dp = new NativeDataPlane();
  try {
    const a = dp.createPort('np-poll-a');
    const b = dp.createPort('np-poll-b');
    dp.connect(a.handle, b.handle);
    const [thread] = threadsNamed('np-q0');
    assert.ok(thread, 'the data plane started its IOThread np-q0');
    // Bursts a few hundred microseconds apart: the poll window grows and catches them.
    let received = 0;
    for (let burst = 0; burst < 200; burst++) {
      await a.sendAsync(Array.from({ length: 16 }, (_, i) => frame(burst * 16 + i)));
      for (let spins = 0; spins < 1000 && received < (burst + 1) * 16; spins++) {
        received += b.read().length;
        if (received < (burst + 1) * 16) await new Promise((r) => setImmediate(r));
      }
    }
    assert.equal(received, 200 * 16, 'every frame crossed the IOThread');
    const ticks = await idleTicks(thread!);
    assert.ok(ticks <= kIdleTicksMax, `idle IOThread used ${ticks} ticks (10 ms each) in 1 s: it keeps polling`);
  } finally {
    dp.close();
  }
});

test(
  'an IOThread that read a TAP (polled through epoll) sleeps once the frames stop',
  { ...needsPrivileged('ip'), timeout: 20_000 },
  async () => {
    const ifname = npName('poll');
    const tap = Tap.open({ ifname, vnetHdr: 'off' });
    const dp = new NativeDataPlane();
    try {
      dp.addClient({ handle: 1, kind: 'tap', name: ifname, queueIndex: 0, fd: tap.fd(0), vnetHdrLen: 0 });
      const port = dp.createPort('np-poll-port', { whenFull: 'drop' });
      dp.connect(1, port.handle);
      let frames = 0;
      port.onFrames((batch) => (frames += batch.length));
      sh('ip', ['addr', 'add', '10.252.0.1/24', 'dev', ifname]);
      sh('ip', ['link', 'set', ifname, 'up']);
      sh('ip', ['neigh', 'replace', '10.252.0.2', 'lladdr', '02:00:00:00:00:02', 'dev', ifname, 'nud', 'permanent']);
      const [thread] = threadsNamed('np-q0');
      assert.ok(thread, 'the data plane started its IOThread np-q0');
      // UDP from the host through the TAP into the engine, in short bursts.
      const dgram = await import('node:dgram');
      const sock = dgram.createSocket('udp4');
      await new Promise<void>((r) => sock.bind(0, '10.252.0.1', () => r()));
      for (let i = 0; i < 100; i++) {
        await new Promise<void>((r) => sock.send(Buffer.alloc(32), 9, '10.252.0.2', () => r()));
        if (i % 10 === 9) await sleep(5);
      }
      sock.close();
      for (let i = 0; i < 100 && frames < 100; i++) await sleep(10);
      assert.ok(frames >= 100, `the engine read ${frames} of 100 frames from the TAP`);
      const ticks = await idleTicks(thread!);
      assert.ok(ticks <= kIdleTicksMax, `idle IOThread used ${ticks} ticks (10 ms each) in 1 s: it keeps polling`);
    } finally {
      dp.close();
      await tap.close();
      deleteLink(ifname);
    }
  },
);
