// Privileged tests: run when the process has CAP_NET_ADMIN and /dev/net/tun; otherwise
// skip with the reason. Under CI=true a missing privilege is a failure, never a skip.
import * as fs from 'node:fs';
import type { TestContext } from 'node:test';

function capNetAdmin(): boolean {
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  return m !== null && (BigInt('0x' + m[1]) & (1n << 12n)) !== 0n;
}

/** Why privileged tests cannot run here, or undefined when they can. */
export function privilegeMissing(): string | undefined {
  if (!capNetAdmin()) return 'needs CAP_NET_ADMIN (run as root)';
  try {
    fs.accessSync('/dev/net/tun', fs.constants.R_OK | fs.constants.W_OK);
  } catch {
    return 'needs /dev/net/tun';
  }
  return undefined;
}

/** Options for test()/describe(): skip with a reason when unprivileged (never under CI). */
export function privileged(): { skip?: string } {
  const why = privilegeMissing();
  if (why === undefined || process.env.CI === 'true') return {};
  return { skip: why };
}

/** Inside a test: fail under CI, skip otherwise, when privileges are missing. Returns false to stop. */
export function requirePrivilege(t: TestContext): boolean {
  const why = privilegeMissing();
  if (why === undefined) return true;
  if (process.env.CI === 'true') throw new Error(`privileged test cannot run under CI=true: ${why}`);
  t.skip(why);
  return false;
}
