// summary.md's "Scaling with queues=N" section from made-up sessions of the 1-, 2- and 4-queue
// links: each number per queue count with its ratio to one queue, and the machine's cores as
// the bound of the trend.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as os from 'node:os';
import { goalsMarkdown } from '../bench/goals';
import { markdown, summarize, type RunRecord } from '../bench/report';
import { benchRecord, mdSection } from './helpers/bench-record';

function record(forwarder: string, mfps: number, cpu: number, tcp4: number, pinned = true): RunRecord {
  return {
    ...benchRecord(forwarder, {
      frameRate: { mfps, offeredMfps: 2, readMfps: mfps, forwarderCpuPct: cpu, windowSeconds: 5 },
      tcp4: { streams: 4, gbps: tcp4, retransmits: 0, seconds: 5 },
    }),
    pinned,
  };
}

// The link at 1, 2 and 4 queues: 2q does more per CPU-second than 1q (0.7/70 % = 1.0 against
// 0.4/50 % = 0.8), 4q less (0.9/150 % = 0.6).
const series = [
  record('netplane-link', 0.4, 50, 10),
  record('netplane-link-2q', 0.7, 70, 15),
  record('netplane-link-4q', 0.9, 150, 12),
];
const order = series.map((r) => r.forwarder);

const section = (md: string): string[] => mdSection(md.split('\n'), 'Scaling with queues=N');

const row = (lines: string[], n: number) => lines.find((l) => l.startsWith(`| ${n} |`));

test('per queue count: frames/s, CPU, frames per CPU-second and TCP 4 streams, each × 1 queue', () => {
  const lines = section(markdown(summarize(series, order, 2), new Map(), [], []));
  assert.equal(
    lines.find((l) => l.startsWith('| queue pairs |')),
    '| queue pairs | forwarder | 64B Mframes/s | × 1 queue | fwd CPU % | × 1 queue | Mframes/CPU-s | × 1 queue | TCP 4 streams Gbit/s | × 1 queue |',
  );
  assert.equal(row(lines, 1), '| 1 | netplane-link | 0.400 | 1.00x | 50 | 1.00x | 0.800 | 1.00x | 10.00 | 1.00x |');
  assert.equal(row(lines, 2), '| 2 | netplane-link-2q | 0.700 | 1.75x | 70 | 1.40x | 1.000 | 1.25x | 15.00 | 1.50x |');
  assert.equal(row(lines, 4), '| 4 | netplane-link-4q | 0.900 | 2.25x | 150 | 3.00x | 0.600 | 0.75x | 12.00 | 1.20x |');
});

test('the machine’s cores bound the trend, and a pinned run says its queues share one CPU', () => {
  const text = section(goalsMarkdown(summarize(series, order, 2)).join('\n')).join('\n');
  assert.match(text, /This machine has 2 CPU cores \(os\.cpus\(\)\.length\), and they bound the trend/);
  assert.match(text, /one per direction or flow, a core each\) work at once, and more queues than cores cannot scale/);
  assert.match(text, /pinned the forwarder to one CPU/);
  const unpinned = series.map((r) => ({ ...r, pinned: false }));
  const u = section(goalsMarkdown(summarize(unpinned, order, 8)).join('\n')).join('\n');
  assert.match(u, /This machine has 8 CPU cores/);
  assert.match(u, /This run was unpinned/);
  assert.doesNotMatch(u, /pinned the forwarder/);
  // Without a count given, the summary has this machine's.
  assert.equal(summarize(series, order).cores, os.cpus().length);
});

test('shown from two of the variants on, against the fewest queues in the run', () => {
  assert.ok(!goalsMarkdown(summarize(series.slice(0, 1), order)).includes('### Scaling with queues=N'));
  const lines = section(goalsMarkdown(summarize(series.slice(1), order, 2)).join('\n'));
  assert.match(
    lines.find((l) => l.startsWith('| queue pairs |'))!,
    /\| 64B Mframes\/s \| × 2 queues \|/,
  );
  assert.equal(row(lines, 1), undefined);
  assert.match(
    row(lines, 4)!,
    /^\| 4 \| netplane-link-4q \| 0\.900 \| 1\.29x \| 150 \| 2\.14x \| 0\.600 \| 0\.60x \| 12\.00 \| 0\.80x \|$/,
  );
});
