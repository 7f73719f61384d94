// The run as a chart: chart.svg next to summary.md, drawn by Vega-Lite (compiled to a Vega
// spec) and rendered headless to SVG by Vega. Both are devDependencies: the bench is a
// development tool, and an installed netplane does not carry them. Without them the bench
// says so and writes the tables only.
//
// One panel per question: 64-byte frames per second, TCP Gbit/s (1 and 4 streams), UDP round
// trip p50 (with sleeping ends and with busy ends) and p99. Bars are medians with a min–max
// whisker over the repetitions; the dashed red line is QEMU's median, the dotted grey line
// the ceiling: the kernel's own veth path when the run has it, else, for frames, what trafgen
// offered (no forwarder can deliver more).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RunRecord, Summary } from './report';

/** Forwarders that are the kernel's own path, i.e. the ceiling rather than a contender. */
export const kCeilingForwarders = ['veth', 'kernel-veth'];

interface Row {
  forwarder: string;
  value: number;
  min: number;
  max: number;
}

interface Panel {
  title: string;
  unit: string;
  rows: Row[];
  qemu?: number;
  ceiling?: number;
  ceilingLabel?: string;
}

function rows(s: Summary, col: string): Row[] {
  const out: Row[] = [];
  for (const fw of s.forwarders) {
    const st = s.stats[fw]?.[col];
    if (!st) continue;
    out.push({
      forwarder: fw,
      value: st.median,
      min: st.min,
      max: st.max,
    });
  }
  return out;
}

function median(v: number[]): number | undefined {
  if (v.length === 0) return undefined;
  const x = [...v].sort((a, b) => a - b);
  const m = Math.floor(x.length / 2);
  return x.length % 2 ? x[m] : (x[m - 1]! + x[m]!) / 2;
}

export function chartPanels(s: Summary, records: RunRecord[]): Panel[] {
  const ceilingFw = kCeilingForwarders.find((c) => s.forwarders.includes(c));
  // One summary column per panel: its rows, QEMU's median, and the kernel path's as the
  // ceiling (for throughput) or the floor (for latency).
  const panel = (title: string, unit: string, col: string, bound: 'ceiling' | 'floor'): Panel => ({
    title,
    unit,
    rows: rows(s, col),
    qemu: s.stats.qemu?.[col]?.median,
    ceiling: ceilingFw ? s.stats[ceilingFw]?.[col]?.median : undefined,
    ceilingLabel: ceilingFw && `${bound}: ${ceilingFw}`,
  });
  const offered = median(records.flatMap((r) => (r.metrics.frameRate ? [r.metrics.frameRate.offeredMfps] : [])));
  const frames = panel('64-byte frames delivered', 'Mframes/s', '64B Mframes/s', 'ceiling');
  const panels: Panel[] = [
    // Without the kernel's path to bound it, no forwarder can deliver more than trafgen offered.
    {
      ...frames,
      ceiling: frames.ceiling ?? offered,
      ceilingLabel: frames.ceilingLabel ?? 'ceiling: offered by trafgen',
    },
    panel('TCP, 1 stream', 'Gbit/s', 'TCP 1 stream Gbit/s', 'ceiling'),
    panel('TCP, 4 streams', 'Gbit/s', 'TCP 4 streams Gbit/s', 'ceiling'),
    panel('UDP round trip p50, lower is better', 'µs', 'UDP RTT p50 us', 'floor'),
    // The same ping-pong with ends that never sleep: the forwarder's latency without theirs.
    panel('UDP round trip p50 with busy ends, lower is better', 'µs', 'UDP RTT p50 us, busy ends', 'floor'),
    panel('UDP round trip p99, lower is better', 'µs', 'UDP RTT p99 us', 'floor'),
  ];
  return panels.filter((p) => p.rows.length > 0);
}

/** The Vega-Lite spec of the chart (plain data; rendering is svgChart's job). */
export function chartSpec(panels: Panel[], title: string): Record<string, unknown> {
  const order = [...new Set(panels.flatMap((p) => p.rows.map((r) => r.forwarder)))];
  const y = { field: 'forwarder', type: 'nominal', sort: order, title: null };
  const vconcat = panels.map((p) => {
    const x = { field: 'value', type: 'quantitative', title: p.unit };
    const layer: Record<string, unknown>[] = [
      {
        mark: { type: 'bar', color: '#4c78a8' },
        encoding: {
          y,
          x,
          color: {
            condition: { test: "datum.forwarder === 'qemu'", value: '#e45756' },
            value: '#4c78a8',
          },
          tooltip: [{ field: 'forwarder' }, { field: 'value', format: '.3f' }],
        },
      },
      {
        mark: { type: 'rule', color: '#333' },
        encoding: { y, x: { field: 'min', type: 'quantitative' }, x2: { field: 'max' } },
      },
      {
        mark: { type: 'text', align: 'left', dx: 4, fontSize: 10 },
        encoding: { y, x: { field: 'max', type: 'quantitative' }, text: { field: 'value', format: '.3~r' } },
      },
    ];
    const rule = (value: number, color: string, dash: number[], label: string) => ({
      data: { values: [{ v: value, label }] },
      layer: [
        {
          mark: { type: 'rule', color, strokeDash: dash, strokeWidth: 2 },
          encoding: { x: { field: 'v', type: 'quantitative' } },
        },
        {
          // Above the plot, so the label never covers a bar.
          mark: { type: 'text', color, align: 'left', baseline: 'bottom', dx: 3, y: -2, fontSize: 10 },
          encoding: { x: { field: 'v', type: 'quantitative' }, text: { field: 'label' } },
        },
      ],
    });
    if (p.qemu !== undefined) layer.push(rule(p.qemu, '#e45756', [6, 3], 'QEMU'));
    if (p.ceiling !== undefined) layer.push(rule(p.ceiling, '#777', [2, 2], p.ceilingLabel ?? 'ceiling'));
    return {
      title: { text: p.title, anchor: 'start', fontSize: 12, offset: 14 },
      width: 460,
      height: { step: 16 },
      data: { values: p.rows },
      layer,
    };
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, fontSize: 13 },
    background: 'white',
    padding: 8,
    vconcat,
    config: { view: { stroke: null }, axis: { labelFontSize: 10 } },
  };
}

type VegaLite = { compile(spec: unknown): { spec: unknown } };
type Vega = {
  parse(spec: unknown): unknown;
  View: new (runtime: unknown, opts: { renderer: string }) => { toSVG(): Promise<string>; finalize(): void };
};

/** Render the chart to SVG text; undefined (and why) when vega / vega-lite are not installed. */
export async function svgChart(
  s: Summary,
  records: RunRecord[],
  title: string,
): Promise<{ svg?: string; why?: string }> {
  const panels = chartPanels(s, records);
  if (panels.length === 0) return { why: 'no results to chart' };
  let vl: VegaLite;
  let vega: Vega;
  try {
    // Names in variables: the compiler need not resolve these ESM-only packages' types.
    const vegaLiteName = 'vega-lite';
    const vegaName = 'vega';
    vl = (await import(vegaLiteName)) as VegaLite;
    vega = (await import(vegaName)) as Vega;
  } catch (e) {
    return {
      why: `vega / vega-lite not installed (npm install in the repository): ${(e as Error).message.split('\n')[0]}`,
    };
  }
  const compiled = vl.compile(chartSpec(panels, title)).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return { svg: await view.toSVG() };
  } finally {
    view.finalize();
  }
}

// node --import tsx bench/chart.ts bench/results/<run>: draw that run's chart.svg again (from
// its summary.json and per-session JSON files), e.g. after changing the chart.
if (require.main === module) {
  const dir = process.argv[2];
  if (!dir || !fs.existsSync(path.join(dir, 'summary.json'))) {
    console.error('usage: node --import tsx bench/chart.ts bench/results/<run>  (a directory with summary.json)');
    process.exit(2);
  }
  const { summary } = JSON.parse(fs.readFileSync(path.join(dir, 'summary.json'), 'utf8')) as { summary: Summary };
  const records = fs
    .readdirSync(dir)
    .filter((f) => /^\d+-.*\.json$/.test(f))
    .map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as RunRecord);
  const md = fs.readFileSync(path.join(dir, 'summary.md'), 'utf8');
  const when = /benchmark, (\S+)/.exec(md)?.[1]?.slice(0, 16) ?? '';
  void svgChart(summary, records, `netplane bench, ${when}Z`).then((c) => {
    if (!c.svg) {
      console.error(`chart: ${c.why}`);
      process.exit(1);
    }
    fs.writeFileSync(path.join(dir, 'chart.svg'), c.svg);
    console.log(`chart: wrote ${path.join(dir, 'chart.svg')}`);
  });
}
