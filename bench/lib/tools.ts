// The C helpers kept as source in bench/ (the cfwd forwarder, the udprtt ping-pong) are
// compiled here with cc -O2 into bench/results/.bin (git-ignored), again whenever the
// source is newer than the binary. Binaries are never committed.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const kBenchDir = path.resolve(__dirname, '..');
export const kRepoDir = path.resolve(kBenchDir, '..');
export const kResultsDir = path.join(kBenchDir, 'results');
const kBinDir = path.join(kResultsDir, '.bin');

function compile(source: string, name: string): string {
  const src = path.join(kBenchDir, source);
  const bin = path.join(kBinDir, name);
  fs.mkdirSync(kBinDir, { recursive: true });
  // The source and the headers next to it.
  const dir = path.dirname(src);
  const newest = Math.max(...fs.readdirSync(dir).map((f) => fs.statSync(path.join(dir, f)).mtimeMs));
  const fresh = fs.existsSync(bin) && fs.statSync(bin).mtimeMs >= newest;
  if (!fresh) {
    try {
      execFileSync('cc', ['-O2', '-Wall', '-Wextra', '-o', bin, src], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      const err = e as { stderr?: Buffer; message: string };
      throw new Error(`compiling ${source} failed: ${err.stderr?.toString() ?? err.message}`);
    }
  }
  return bin;
}

export interface Tools {
  cfwd: string;
  udprtt: string;
}

export function buildTools(): Tools {
  return { cfwd: compile('cfwd/cfwd.c', 'cfwd'), udprtt: compile('udprtt/udprtt.c', 'udprtt') };
}

/** The commands the benchmark needs, with the Debian package that provides each. */
export function missingCommands(): string[] {
  const needed: Record<string, string> = {
    trafgen: 'netsniff-ng',
    iperf3: 'iperf3',
    taskset: 'util-linux',
    ip: 'iproute2',
    ping: 'iputils-ping',
    cc: 'gcc',
  };
  return Object.entries(needed)
    .filter(([cmd]) => !hasCommand(cmd))
    .map(([cmd, pkg]) => `${cmd} (Debian package ${pkg})`);
}

/**
 * Commands only some forwarders and workloads need, with their Debian package: a variant
 * whose command is missing is skipped with this note instead of failing the run.
 */
export const kOptionalCommands: Record<string, string> = {
  'dpdk-testpmd': 'dpdk-dev', // the DPDK variants (dpdk-tap, the vhost workload)
};

/** Why an optional command cannot be used here, or undefined when it is on the PATH. */
export function optionalMissing(cmd: string): string | undefined {
  return hasCommand(cmd) ? undefined : `${cmd} not installed (Debian package ${kOptionalCommands[cmd] ?? '?'})`;
}

export function hasCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
