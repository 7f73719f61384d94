// summary.md's "Latency and what polling costs" section from made-up sessions: round trips
// with sleeping ends and with busy ends (udprtt pair), each p50 against QEMU's and the goal,
// with the forwarder's CPU during each.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chartPanels } from '../bench/chart';
import { goalsMarkdown } from '../bench/goals';
import { summarize } from '../bench/report';
import type { RttResult } from '../bench/workloads';
import { benchRecord, mdSection } from './helpers/bench-record';

const rtt = (p50Us: number, p99Us: number, fwdCpuPct: number): RttResult => ({
  count: 1000,
  lost: 0,
  p50Us,
  p99Us,
  p999Us: p99Us,
  minUs: p50Us,
  maxUs: p99Us,
  meanUs: p50Us,
  fwdCpuPct,
});

const idle = { cpuPct: 0, tickCpuPct: 0, seconds: 2, machineBusyPct: 0 };

const records = [
  benchRecord('qemu', { rtt: rtt(100, 150, 10), rttBusy: rtt(60, 90, 12), idle }),
  benchRecord('netplane-link', {
    rtt: rtt(80, 120, 50),
    rttBusy: rtt(24, 40, 55),
    idle,
  }),
  benchRecord('netplane-link-nopoll', { rtt: rtt(90, 130, 9), idle }),
];

const section = (): string[] =>
  mdSection(
    goalsMarkdown(
      summarize(
        records,
        records.map((r) => r.forwarder),
        2,
      ),
    ),
    'Latency and what polling costs',
  );

test('each forwarder: sleeping ends and busy ends, p50 × QEMU with the goal, the CPU during each', () => {
  const lines = section();
  const row = (fw: string) => lines.find((l) => l.startsWith(`| ${fw} |`));
  assert.equal(row('qemu'), '| qemu | 100.0 | 150.0 | 1.00x | 10 | 60.0 | 90.0 | 1.00x | 12 | 0.00 |');
  assert.equal(
    row('netplane-link'),
    '| netplane-link | 80.0 | 120.0 | 0.80x (goal ≤ 0.5x: NOT met) | 50 | 24.0 | 40.0 | 0.40x (goal ≤ 0.5x: met) | 55 | 0.00 |',
  );
  // A session without the busy-ends workload shows dashes there, not a verdict.
  assert.equal(
    row('netplane-link-nopoll'),
    '| netplane-link-nopoll | 90.0 | 130.0 | 0.90x (goal ≤ 0.5x: NOT met) | 9 | – | – | – | – | 0.00 |',
  );
});

test('the chart has a panel for the busy ends, QEMU marked, where the run has them', () => {
  const summary = summarize(
    records,
    records.map((r) => r.forwarder),
    2,
  );
  const busy = chartPanels(summary, records).find((p) => p.title.startsWith('UDP round trip p50 with busy ends'));
  assert.ok(busy, 'a busy-ends panel');
  assert.deepEqual(
    busy.rows.map((r) => [r.forwarder, r.value]),
    [
      ['qemu', 60],
      ['netplane-link', 24],
    ],
  );
  assert.equal(busy.qemu, 60);
});
