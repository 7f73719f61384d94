// Tests that call a program a fresh machine may lack (ping, iperf3, QEMU, ...): run when it
// is on the PATH; otherwise skip naming the program and its Debian package; under CI=true a
// missing program is a failure, never a skip. The programs and packages are listed once, in
// scripts/test-tools.list, which scripts/install-test-deps.sh installs from.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TestContext } from 'node:test';
import { privilegeMissing } from './privilege';

const LIST = path.join(__dirname, '..', '..', 'scripts', 'test-tools.list');

/** The programs of the groups tests may use: "bench" ones (trafgen, perf) are no test's to need. */
function packages(): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of fs.readFileSync(LIST, 'utf8').split('\n')) {
    const [check, pkg, group] = line.trim().split(/\s+/);
    if (!check || !pkg || check.startsWith('#') || check.startsWith('/')) continue;
    if (group === 'test' || group === 'ci') out.set(check, pkg);
  }
  return out;
}
const PACKAGES = packages();

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => {
    try {
      fs.accessSync(path.join(dir || '.', cmd), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Why these programs cannot be used here ("needs ping (Debian package iputils-ping)"), or undefined. */
export function toolsMissing(...tools: string[]): string | undefined {
  // Checked whether installed or not, so a test cannot come to need a bench-only program
  // (trafgen) unnoticed on a machine that happens to have it.
  for (const t of tools)
    if (!PACKAGES.has(t)) throw new Error(`${t} is not in a test or ci group of scripts/test-tools.list`);
  const missing = tools.filter((t) => !onPath(t));
  if (missing.length === 0) return undefined;
  const names = missing.map((t) => `${t} (Debian package ${PACKAGES.get(t)})`).join(', ');
  return `needs ${names}: bash scripts/install-test-deps.sh`;
}

/**
 * Options for test()/describe(): skip with the reason when a program (or, with
 * `privileged: true`, CAP_NET_ADMIN) is missing. Under CI=true nothing skips: the test
 * runs and fails on what is missing.
 */
export function needs(...tools: string[]): { skip?: string } {
  const why = toolsMissing(...tools);
  if (why === undefined || process.env.CI === 'true') return {};
  return { skip: why };
}

/** needs() for a privileged test: CAP_NET_ADMIN first, then the programs. */
export function needsPrivileged(...tools: string[]): { skip?: string } {
  const why = privilegeMissing() ?? toolsMissing(...tools);
  if (why === undefined || process.env.CI === 'true') return {};
  return { skip: why };
}

/** Inside a test: fail under CI, skip otherwise, when a program is missing. Returns false to stop. */
export function requireTools(t: TestContext, ...tools: string[]): boolean {
  const why = toolsMissing(...tools);
  if (why === undefined) return true;
  if (process.env.CI === 'true') throw new Error(`test cannot run under CI=true: ${why}`);
  t.skip(why);
  return false;
}
