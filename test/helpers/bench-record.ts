// A made-up bench session record for the tests of the bench's report pieces.
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
