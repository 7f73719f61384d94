// scripts/test-tools.list is shared by the tests and `install-test-deps.sh --bench`: the
// bench's programs are listed for the installer only, a test naming one fails at once
// (installed here or not) instead of coming to need trafgen or perf unnoticed.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { toolsMissing } from './helpers/tools';

const LIST = path.join(__dirname, '..', 'scripts', 'test-tools.list');

function group(check: string): string | undefined {
  for (const line of fs.readFileSync(LIST, 'utf8').split('\n')) {
    const [c, , g] = line.trim().split(/\s+/);
    if (c === check) return g;
  }
  return undefined;
}

test('the bench programs are in the list for the installer, in group "bench"', () => {
  for (const t of ['trafgen', 'perf']) assert.equal(group(t), 'bench', t);
});

test('a test cannot need a bench program, whether it is installed or not', () => {
  for (const t of ['trafgen', 'perf']) assert.throws(() => toolsMissing(t), /not in a test or ci group/, t);
});

test('test and ci programs are still accepted', () => {
  assert.doesNotThrow(() => toolsMissing('ip', 'iperf3', 'valgrind'));
});
