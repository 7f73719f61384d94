// dpdk-testpmd (Debian package dpdk-dev, DPDK 22.11) as a forwarder, a vhost-user back-end
// and a virtio-user "guest", without hugepages: EAL memory comes from a memfd (--no-huge),
// no PCI scan, no shared config, no telemetry socket. Each instance gets its own np-named
// --file-prefix; its runtime directory (/var/run/dpdk/<prefix>) is removed afterwards.
// testpmd runs non-interactively with --stats-period: it prints its port statistics every
// period (flushed) and runs until SIGINT/SIGTERM, so stdin may stay closed.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { npName } from '../../test/helpers/netns';
import { optionalMissing } from './tools';

export const kTestpmd = 'dpdk-testpmd';

/** Why the DPDK variants cannot run here, or undefined. */
export function testpmdUnavailable(): string | undefined {
  const why = optionalMissing(kTestpmd);
  return why && `${why}: the DPDK variants are skipped`;
}

/** Printed once every port is started, the forwarding streams are set up and stats began. */
export const kTestpmdReady = 'Port statistics';

const kRuntimeRoot = process.env.XDG_RUNTIME_DIR && process.getuid?.() !== 0 ? process.env.XDG_RUNTIME_DIR : '/var/run';

// Runtime directories of instances started by this process, removed on exit (also after
// Ctrl-C, when the harness kills every group and exits without the sessions' cleanup).
const prefixes = new Set<string>();
process.on('exit', () => {
  for (const p of prefixes) removeRuntimeDir(p);
});

export interface TestpmdArgs {
  /** testpmd lcores: the main lcore and one forwarding lcore, both on `cpu`. */
  cpu: number;
  vdevs: string[];
  forwardMode: 'io' | 'txonly' | 'rxonly';
  /** Frame length for txonly (without FCS). */
  txLength?: number;
  memMb?: number;
}

export interface TestpmdCommand {
  args: string[];
  prefix: string;
  /** Remove the instance's runtime directory (call once testpmd has exited). */
  cleanup(): void;
}

export function testpmdCommand(a: TestpmdArgs): TestpmdCommand {
  const prefix = npName('dpdk');
  prefixes.add(prefix);
  const args = [
    '--lcores',
    `0@${a.cpu},1@${a.cpu}`,
    '--no-pci',
    '--no-huge',
    '-m',
    String(a.memMb ?? 256),
    '--no-shconf',
    '--no-telemetry',
    '--file-prefix',
    prefix,
    ...a.vdevs.map((v) => `--vdev=${v}`),
    '--',
    `--forward-mode=${a.forwardMode}`,
    '--auto-start',
    '--nb-cores=1',
    // The default pool (~155k mbufs for 2 ports) does not fit in a --no-huge memfd of 256 MB.
    '--total-num-mbufs=32768',
    '--stats-period=1',
    ...(a.txLength ? [`--txpkts=${a.txLength}`] : []),
  ];
  return { args, prefix, cleanup: () => removeRuntimeDir(prefix) };
}

export function removeRuntimeDir(prefix: string): void {
  prefixes.delete(prefix);
  const root = path.join(kRuntimeRoot, 'dpdk');
  fs.rmSync(path.join(root, prefix), { recursive: true, force: true });
  try {
    fs.rmdirSync(root); // only when empty: another DPDK user's runtime files stay
  } catch {
    /* not empty, or not there */
  }
}

export interface PortStats {
  rxPackets: number;
  txPackets: number;
  rxMissed: number;
  txErrors: number;
}

/** How many complete statistics blocks testpmd has printed for `port` so far. */
export function statsBlocks(stdout: string, port: number): number {
  const re = new RegExp(`NIC statistics for port ${port} [\\s\\S]*?Tx-pps:`, 'g');
  return stdout.match(re)?.length ?? 0;
}

/**
 * The last complete statistics block testpmd printed for `port` (cumulative counters), or
 * undefined before the first one.
 */
export function lastPortStats(stdout: string, port: number): PortStats | undefined {
  const marker = `NIC statistics for port ${port} `;
  const at = stdout.lastIndexOf(marker);
  if (at < 0) return undefined;
  const block = stdout.slice(at, at + 1200);
  const num = (re: RegExp) => {
    const m = re.exec(block);
    return m ? Number(m[1]) : undefined;
  };
  if (!/Tx-pps:/.test(block)) return undefined; // the block is still arriving
  const rxPackets = num(/RX-packets:\s+(\d+)/);
  const txPackets = num(/TX-packets:\s+(\d+)/);
  if (rxPackets === undefined || txPackets === undefined) return undefined;
  return {
    rxPackets,
    txPackets,
    rxMissed: num(/RX-missed:\s+(\d+)/) ?? 0,
    txErrors: num(/TX-errors:\s+(\d+)/) ?? 0,
  };
}
