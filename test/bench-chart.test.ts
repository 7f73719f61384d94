// The bench's report pieces that need no TAPs: the goals sections of summary.md and the SVG
// chart (Vega-Lite compiled, rendered headless by Vega), from a made-up run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chartPanels, svgChart } from '../bench/chart';
import { goalsMarkdown } from '../bench/goals';
import { contenders, markdown, summarize, type RunRecord } from '../bench/report';
import { benchRecord } from './helpers/bench-record';

function record(forwarder: string, mfps: number, cpu: number, p50: number, gbps: number): RunRecord {
  return benchRecord(forwarder, {
    frameRate: { mfps, offeredMfps: 1, readMfps: mfps, forwarderCpuPct: cpu, windowSeconds: 5 },
    tcp1: { streams: 1, gbps, retransmits: 0, seconds: 5 },
    tcp4: { streams: 4, gbps, retransmits: 0, seconds: 5 },
    rtt: {
      count: 100,
      lost: 0,
      p50Us: p50,
      p99Us: p50 * 2,
      p999Us: p50 * 3,
      minUs: 1,
      maxUs: 9,
      meanUs: p50,
      fwdCpuPct: 10,
    },
    idle: { cpuPct: 0, tickCpuPct: 0, seconds: 3, machineBusyPct: 0 },
  });
}

const records = [
  record('qemu', 0.6, 100, 80, 1),
  record('netplane-link', 0.8, 100, 40, 10),
  record('netplane-link-2q', 0.7, 100, 40, 9),
  record('netplane-link-4q', 0.6, 100, 40, 8),
  record('netplane-link-nopoll', 0.8, 100, 60, 10),
  record('js-filter', 0.68, 100, 90, 7),
];
const order = records.map((r) => r.forwarder);

test('summary.md answers the JS, polling and queue-scaling questions with ratios', () => {
  const md = goalsMarkdown(summarize(records, order)).join('\n');
  assert.match(md, /\| js-filter \| 0\.680 \| 100 \| 0\.85x \| 0\.680 \| 0\.85x \| ≥ 0\.8x met \|/);
  assert.match(md, /\| netplane-link \| 40\.0 \| 80\.0 \| 0\.50x \(goal ≤ 0\.5x: met\) \|/);
  assert.match(md, /\| netplane-link-nopoll \| 60\.0 \| 120\.0 \| 0\.75x \(goal ≤ 0\.5x: NOT met\) \|/);
  assert.match(md, /\| 4 \| netplane-link-4q \| 0\.600 \| 0\.75x \|/);
  // Without the forwarders they compare, the sections are left out.
  assert.deepEqual(goalsMarkdown(summarize(records.slice(0, 1), ['qemu'])), []);
});

test('the chart marks QEMU and the ceiling, and renders to SVG', { timeout: 30_000 }, async () => {
  const panels = chartPanels(summarize(records, order), records);
  assert.deepEqual(
    panels.map((p) => p.title),
    [
      '64-byte frames delivered',
      'TCP, 1 stream',
      'TCP, 4 streams',
      'UDP round trip p50, lower is better',
      'UDP round trip p99, lower is better',
    ],
  );
  assert.equal(panels[0]!.qemu, 0.6);
  assert.equal(panels[0]!.ceiling, 1); // what trafgen offered
  const { svg, why } = await svgChart(summarize(records, order), records, 'np test chart');
  assert.equal(why, undefined);
  assert.match(svg!, /^<svg[^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  for (const text of ['np test chart', 'QEMU', 'ceiling: offered by trafgen', 'js-filter', 'Mframes/s'])
    assert.ok(svg!.includes(text), `the SVG shows "${text}"`);
});

test('veth is the ceiling: in the main table and the chart, not in the targets', () => {
  // Generator-bound (delivered what trafgen offered), no forwarder CPU.
  const withVeth = [...records, record('veth', 1, 0, 20, 30)];
  const s = summarize(withVeth, [...order, 'veth']);
  assert.deepEqual(contenders(s), order);
  const md = markdown(s, new Map(), ['# np test'], []);
  const [main, rest] = md.split('### Targets');
  assert.match(main!, /^\| veth \| 1\.000 \| 1\.67x \|/m);
  assert.doesNotMatch(rest!, /^\| veth \|/m);
  assert.match(rest!, /veth: the kernel's own path with no forwarder, shown as the ceiling/);
  assert.doesNotMatch(rest!, /limited by the generator[^\n]*veth/);
  const panels = chartPanels(s, withVeth);
  assert.equal(panels[0]!.ceiling, 1);
  assert.equal(panels[0]!.ceilingLabel, 'ceiling: veth');
  assert.equal(panels[1]!.ceiling, 30);
  assert.ok(panels[0]!.rows.some((r) => r.forwarder === 'veth'));
});
