// The bench's split of a forwarder's perf profile into the stages of a frame's way, and the
// summary table it feeds, from a made-up `perf report` text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { breakdown, stageOf } from '../bench/lib/perf-breakdown';
import { markdown, summarize } from '../bench/report';
import type { FrameRate } from '../bench/workloads';
import { benchRecord } from './helpers/bench-record';

const kProfile = [
  '# Overhead  Command  Shared Object',
  '    97.49%  np-q0    [kernel.kallsyms]',
  '     2.01%  np-q0    netplane.node',
  '# Overhead  Command  Shared Object      Symbol',
  '    20.00%  np-q0    [kernel.kallsyms]  [k] tun_get_user                 -      -',
  '    10.00%  np-q0    [kernel.kallsyms]  [k] tun_do_read',
  '    15.00%  np-q0    [kernel.kallsyms]  [k] ip_route_input_slow',
  '     5.00%  np-q0    [kernel.kallsyms]  [k] io_submit_sqes',
  '     4.00%  np-q0    [kernel.kallsyms]  [k] entry_SYSCALL_64',
  '     3.00%  np-q0    [kernel.kallsyms]  [k] kmem_cache_free',
  '     2.00%  np-q0    netplane.node      [.] netplane::core::TapClient::ReadUring',
  '     1.00%  np-q0    [kernel.kallsyms]  [k] some_unknown_symbol',
].join('\n');

test('breakdown: symbol lines summed by stage, the thread/object lines above them ignored', () => {
  const b = breakdown(kProfile)!;
  assert.equal(b['TAP write (tun_get_user, skb build)'], 20);
  assert.equal(b['TAP read (tun_do_read, copy out)'], 10);
  assert.equal(b["receiving namespace's stack (ip, udp, route)"], 15);
  assert.equal(b.io_uring, 5);
  assert.equal(b['system call entry/exit'], 4);
  assert.equal(b['skb and memory alloc/free'], 3);
  assert.equal(b['user space'], 2);
  assert.equal(b['other kernel'], 1);
  assert.equal(breakdown('no profile here\n'), undefined);
});

test('stageOf: epoll before the system call rule, user space by object', () => {
  assert.equal(stageOf('[kernel.kallsyms]', true, '__x64_sys_epoll_wait'), 'epoll / poll');
  assert.equal(stageOf('[kernel.kallsyms]', true, '__x64_sys_write'), 'system call entry/exit');
  assert.equal(stageOf('qemu-system-x86_64', false, 'net_hub_receive'), 'user space');
});

test('summary: a stage table with ns per frame when the runs were profiled, none otherwise', () => {
  const frameRate = (cpuStages?: FrameRate['cpuStages']): FrameRate => ({
    mfps: 0.3,
    offeredMfps: 0.7,
    readMfps: 0.3,
    forwarderCpuPct: 100,
    windowSeconds: 3,
    perFrame: {
      frames: 600000,
      framesFrom: 'tap counter',
      seconds: 2,
      syscalls: 0.05,
      reads: 0,
      writes: 0,
      waits: 0.05,
      contextSwitches: 0,
      cpuNs: 3000,
    },
    ...(cpuStages ? { cpuStages } : {}),
  });
  const profiled = summarize(
    [benchRecord('netplane-link', { frameRate: frameRate(breakdown(kProfile)) })],
    ['netplane-link'],
  );
  const md = markdown(profiled, new Map(), [], []);
  assert.match(md, /### Where the forwarder's CPU goes/);
  assert.match(md, /\| TAP write \(tun_get_user, skb build\) \| 20\.0% \(600 ns\) \|/);
  const plain = summarize([benchRecord('netplane-link', { frameRate: frameRate() })], ['netplane-link']);
  assert.doesNotMatch(markdown(plain, new Map(), [], []), /Where the forwarder's CPU goes/);
});
