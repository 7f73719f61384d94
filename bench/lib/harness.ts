// What the benchmark entry scripts (run.ts, js-port.ts, soak.ts) share: the parsed options,
// the workload settings they imply, the results directory, and the machine checks.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { killAllSync } from './proc';
import { kResultsDir, missingCommands } from './tools';
import type { Settings } from '../workloads';

export interface Options {
  quick: boolean;
  only?: string[];
  reps: number;
  duration: number;
  jsPort: boolean;
  /** The separate vhost-user workload (bench/vhost.ts) instead of the TAP-to-TAP table. */
  vhost: boolean;
  /** With vhost: the front-end workload (a vhost PMD "switch", front-ends holding the TAP). */
  vhostFrontend?: boolean;
  perf: boolean;
  /** The workloads to run (default all): frameRate, tcp1, tcp4, rtt, idle. */
  workloads?: string[];
  /** Run nothing pinned (forwarder and tools placed by the scheduler), for the pinned/unpinned comparison. */
  unpinned?: boolean;
  /** The separate hypervisor-paths workload (bench/hypervisor.ts). */
  hypervisor?: boolean;
  /** The separate stream-link workload (bench/stream.ts): netplane ⇄ netplane against QEMU ⇄ QEMU. */
  stream?: boolean;
}

export function settingsFor(o: Options, workDir: string): Settings {
  return {
    duration: o.duration,
    warmup: o.quick ? 1 : 2,
    rttCount: o.quick ? 2000 : 10000,
    idleSeconds: o.quick ? 2 : 3,
    workDir,
    perf: o.perf,
    unpinned: o.unpinned ?? false,
  };
}

/** Fail early with a clear message when the machine cannot run the benchmark. */
export function preflight(): void {
  if (process.getuid?.() !== 0) throw new Error('the benchmark creates TAPs and namespaces: run it as root');
  const missing = missingCommands();
  if (missing.length > 0) throw new Error(`missing commands: ${missing.join(', ')}`);
}

/** Kill what we started and let the exit hooks remove namespaces and links. */
export function installSignalCleanup(): void {
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      console.error(`\n${sig}: stopping forwarders and traffic, removing namespaces`);
      killAllSync();
      process.exit(130);
    });
  }
}

export function newResultsDir(): string {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const dir = path.join(kResultsDir, stamp);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

export function machineLine(): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  return `${os.cpus().length} x ${cpu}, Linux ${os.release()}, Node ${process.version}`;
}
