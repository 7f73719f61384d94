// The bench's per-frame counts and placement options, without TAPs: parsing perf stat's CSV,
// --unpinned and --workloads on the command line, the placement line and the summary columns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePerfStat, type PerFrame } from '../bench/lib/per-frame';
import { markdown, summarize, type RunRecord } from '../bench/report';
import { parseArgs, placementLine } from '../bench/run';
import { pinned } from '../bench/workloads';
import { benchRecord } from './helpers/bench-record';

test('parsePerfStat: values by event name, unsupported and uncounted events left out', () => {
  const text = [
    '',
    '412345,,raw_syscalls:sys_enter,2000412345,100.00,,',
    '<not supported>,,instructions,0,100.00,,',
    '<not counted>,,syscalls:sys_enter_readv,0,0.00,,',
    '2001.52,msec,task-clock,2001520000,100.00,1.000,CPUs utilized',
    '12,,context-switches,2001520000,100.00,5.995,/sec',
  ].join('\n');
  const c = parsePerfStat(text);
  assert.equal(c.get('raw_syscalls:sys_enter'), 412345);
  assert.equal(c.get('task-clock'), 2001.52);
  assert.equal(c.get('context-switches'), 12);
  assert.equal(c.has('instructions'), false);
  assert.equal(c.has('syscalls:sys_enter_readv'), false);
});

test('--unpinned and --workloads are parsed and checked', () => {
  assert.equal(parseArgs([]).unpinned, undefined);
  assert.equal(parseArgs(['--unpinned']).unpinned, true);
  assert.deepEqual(parseArgs(['--workloads', 'frameRate,idle']).workloads, ['frameRate', 'idle']);
  assert.throws(() => parseArgs(['--workloads', 'frames']), /--workloads takes .*frameRate/);
  assert.throws(() => parseArgs(['--workloads']), /--workloads takes/);
});

test('pinned runs go through taskset, unpinned ones do not, and the summary says which', () => {
  assert.deepEqual(pinned({ unpinned: false }, 0, 'cfwd', ['a', 'b']), ['taskset', '-c', '0', 'cfwd', 'a', 'b']);
  assert.deepEqual(pinned({ unpinned: true }, 0, 'cfwd', ['a', 'b']), ['cfwd', 'a', 'b']);
  assert.match(placementLine({ unpinned: false }), /^pinned: forwarder to CPU 0/);
  assert.match(placementLine({ unpinned: true }), /^unpinned/);
});

// One session of `forwarder` that moved 0.5 Mframes/s at `cpuPct`% of a core, with these per-frame counts.
function frameRecord(forwarder: string, cpuPct: number, perFrame: PerFrame): RunRecord {
  return benchRecord(forwarder, {
    frameRate: { mfps: 0.5, offeredMfps: 1, readMfps: 0.5, forwarderCpuPct: cpuPct, windowSeconds: 4, perFrame },
  });
}

test('the summary shows system calls, wake-ups and CPU per frame', () => {
  const r = frameRecord('cfwd', 100, {
    frames: 1000,
    framesFrom: 'read calls',
    seconds: 2,
    syscalls: 2.02,
    reads: 1,
    writes: 1,
    waits: 0.02,
    contextSwitches: 0.004,
    cpuNs: 4100,
  });
  const md = markdown(summarize([r], ['cfwd']), new Map(), [], []);
  const header = md.split('\n').find((l) => l.startsWith('| forwarder |'))!;
  const row = md.split('\n').find((l) => l.startsWith('| cfwd |'))!;
  const cell = (title: string) => row.split(' | ')[header.split(' | ').indexOf(title)];
  assert.equal(cell('syscalls/frame'), '2.02');
  assert.equal(cell('wake-ups/frame'), '0.004');
  assert.equal(cell('CPU ns/frame'), '4100');
  assert.equal(cell('64B Mframes/CPU-s'), '0.500');
});

test('a per-frame count with no frames to divide by is left out of the summary, not shown as NaN', () => {
  const r = frameRecord('cfwd-uring', 50, {
    frames: 0,
    framesFrom: 'tap counter',
    seconds: 2,
    syscalls: NaN,
    reads: NaN,
    writes: NaN,
    waits: NaN,
    contextSwitches: NaN,
    cpuNs: NaN,
  });
  const md = markdown(summarize([r], ['cfwd-uring']), new Map(), [], []);
  const row = md.split('\n').find((l) => l.startsWith('| cfwd-uring |'))!;
  assert.doesNotMatch(row, /NaN/);
  assert.match(row, /\| 1\.000 \|/); // 0.5 Mframes/s at 50% of a core
});
