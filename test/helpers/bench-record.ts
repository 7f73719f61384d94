// A made-up bench session record for the tests of the bench's report pieces, and the one
// summary.md section they look into.
import assert from 'node:assert/strict';
import type { Metrics, RunRecord } from '../../bench/report';

export function benchRecord(forwarder: string, metrics: Metrics): RunRecord {
  return {
    forwarder,
    description: forwarder,
    rep: 1,
    startedAt: '2026-01-01T00:00:00Z',
    status: 'ok',
    errors: [],
    metrics,
  };
}

/** The lines of markdown from the "### heading" line up to the next section. */
export function mdSection(lines: string[], heading: string): string[] {
  const at = lines.indexOf(`### ${heading}`);
  assert.ok(at >= 0, `no "${heading}" section in:\n${lines.join('\n')}`);
  const end = lines.findIndex((l, i) => i > at && l.startsWith('### '));
  return lines.slice(at, end < 0 ? undefined : end);
}
