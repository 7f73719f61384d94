// The forwarders the benchmark compares. Each one is started pinned to the forwarder CPU and
// creates (or opens) the two TAPs by name in the root namespace; the test bed does the rest.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { kTestpmdReady, kTestpmd, testpmdCommand, testpmdUnavailable } from './lib/dpdk';
import type { LinkKind } from './lib/testbed';
import { hasCommand, kBenchDir, kRepoDir, type Tools } from './lib/tools';
import { kForwarderCpu } from './workloads';

export interface Command {
  cmd: string;
  args: string[];
  /** How the forwarder holds the TAPs, for the run record. */
  note?: string;
  /** Wait for this on the forwarder's stdout before the TAPs are moved into the namespaces. */
  readyOutput?: string;
  /** Remove what the forwarder leaves behind (runtime files), once it has exited. */
  cleanup?: () => void;
}

export interface Forwarder {
  name: string;
  description: string;
  /** netplane variants: one failed start or ping skips the variant for the whole run. */
  skipWholeRunOnFailure?: boolean;
  /** Part of the default set (otherwise only with --only). */
  byDefault: boolean;
  /** What the test bed joins the namespaces with; 'veth' has no forwarder (default 'tap'). */
  link?: LinkKind;
  /** Why it cannot run at all on this machine right now, or undefined. */
  unavailable(): string | undefined;
  command(ifA: string, ifB: string, tools: Tools): Command;
}

const tsxNode = (script: string, args: string[]): string[] => ['--import', 'tsx', script, ...args];

const kNaiveNode = path.join(kBenchDir, 'forwarders', 'naive-node.ts');
const kPortFilter = path.join(kRepoDir, 'examples', 'port-filter.ts');

// The newest modification time of any TypeScript source under lib/.
function newestSource(dir: string): number {
  let newest = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, fs.statSync(p).mtimeMs);
  }
  return newest;
}

/** The netplane CLI: dist/ when it is at least as new as lib/, else the sources through tsx. */
export function netplaneCli(): { cmd: string; pre: string[]; note: string } | undefined {
  const dist = path.join(kRepoDir, 'dist', 'cli', 'main.js');
  const src = path.join(kRepoDir, 'lib', 'cli', 'main.ts');
  const distFresh = fs.existsSync(dist) && fs.statSync(dist).mtimeMs >= newestSource(path.join(kRepoDir, 'lib'));
  if (distFresh || (fs.existsSync(dist) && !fs.existsSync(src)))
    return { cmd: process.execPath, pre: [dist], note: 'dist/cli/main.js' };
  if (fs.existsSync(src))
    return {
      cmd: process.execPath,
      pre: ['--import', 'tsx', src],
      note: 'lib/cli/main.ts via tsx (dist/ older than lib/)',
    };
  return undefined;
}

export function addonBuilt(): boolean {
  return (
    fs.existsSync(path.join(kRepoDir, 'build', 'Release', 'netplane.node')) ||
    fs.existsSync(path.join(kRepoDir, 'prebuilds'))
  );
}

/** A variant of a netplane forwarder: a name suffix, what it changes, extra CLI arguments. */
interface NetplaneVariant {
  suffix: string;
  description: string;
  args: string[];
  /** Appended to each -netdev tap. */
  tapOpts?: string;
  /** Why this variant cannot run here, beyond the forwarder's own checks. */
  unavailable?: () => string | undefined;
}

function netplane(kind: 'hub' | 'link', vnetHdr: boolean, queues: number, variant?: NetplaneVariant): Forwarder {
  const name = `netplane-${kind}${vnetHdr ? '' : '-novnet'}${queues > 1 ? `-${queues}q` : ''}${variant?.suffix ?? ''}`;
  return {
    name,
    description:
      `netplane ${kind === 'hub' ? 'native hub' : 'direct link (-link a,b)'}, ${queues} queue${queues > 1 ? 's' : ''}, ` +
      `vnet_hdr=${vnetHdr ? 'on' : 'off'}${variant ? `, ${variant.description}` : ''}`,
    skipWholeRunOnFailure: true,
    // QEMU's grammar peers a hubport with queue 0 of a multiqueue netdev only (the other
    // queues have no peer and drop), so a 2-queue hub is not a real setup: --only runs it.
    byDefault: !(kind === 'hub' && queues > 1),
    unavailable: () => {
      if (!netplaneCli())
        return 'not available yet: neither dist/cli/main.js (npm run build) nor lib/cli/main.ts exists';
      if (!addonBuilt()) return 'the native addon is not built (npm run build)';
      return variant?.unavailable?.();
    },
    command(ifA, ifB) {
      const cli = netplaneCli()!;
      const tap = (id: string, ifname: string) =>
        `tap,id=${id},ifname=${ifname},script=no,downscript=no,vnet_hdr=${vnetHdr ? 'on' : 'off'}` +
        (queues > 1 ? `,queues=${queues}` : '') +
        (variant?.tapOpts ?? '');
      const wiring =
        kind === 'hub'
          ? ['-netdev', 'hubport,id=pa,hubid=0,netdev=a', '-netdev', 'hubport,id=pb,hubid=0,netdev=b']
          : ['-link', 'a,b'];
      return {
        cmd: cli.cmd,
        args: [...cli.pre, ...(variant?.args ?? []), '-netdev', tap('a', ifA), '-netdev', tap('b', ifB), ...wiring],
        note: cli.note,
      };
    },
  };
}

function tapModuleUsable(): string | undefined {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require(path.join(kRepoDir, 'lib', 'tap')) as { Tap?: { open?: unknown } };
    if (typeof mod.Tap?.open !== 'function') return 'lib/tap.ts has no Tap.open';
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require(path.join(kRepoDir, 'lib', 'native')).native(); // the addon must be built
    return undefined;
  } catch (e) {
    return `lib/tap.ts not usable yet: ${(e as Error).message.split('\n')[0]}`;
  }
}

function ioUringUnavailable(): string | undefined {
  try {
    const v = fs.readFileSync('/proc/sys/kernel/io_uring_disabled', 'utf8').trim();
    return v === '0' ? undefined : `io_uring is disabled here (kernel.io_uring_disabled = ${v})`;
  } catch {
    return undefined; // kernels before 6.6 have no switch: io_uring_setup itself says
  }
}

export const forwarders: Forwarder[] = [
  {
    name: 'qemu',
    description: 'QEMU 7.2, two tap netdevs on hub 0 (-M none)',
    byDefault: true,
    unavailable: () => (hasCommand('qemu-system-x86_64') ? undefined : 'qemu-system-x86_64 not installed'),
    command: (ifA, ifB) => ({
      cmd: 'qemu-system-x86_64',
      args: [
        '-M',
        'none',
        '-nodefaults',
        '-display',
        'none',
        '-netdev',
        `tap,id=a,ifname=${ifA},script=no,downscript=no`,
        '-netdev',
        `tap,id=b,ifname=${ifB},script=no,downscript=no`,
        '-netdev',
        'hubport,id=pa,hubid=0,netdev=a',
        '-netdev',
        'hubport,id=pb,hubid=0,netdev=b',
      ],
    }),
  },
  netplane('hub', true, 1),
  netplane('hub', false, 1),
  netplane('hub', true, 2),
  netplane('link', true, 1),
  netplane('link', false, 1),
  netplane('link', true, 2),
  {
    name: 'cfwd',
    description: 'plain C: poll, read one frame, write it to the other TAP (bench/cfwd/cfwd.c)',
    byDefault: true,
    unavailable: () => undefined,
    command: (ifA, ifB, tools) => ({ cmd: tools.cfwd, args: [ifA, ifB] }),
  },
  {
    name: 'cfwd-vnet',
    description: 'plain C with IFF_VNET_HDR passed through and TUNSETOFFLOAD (GSO frames cross)',
    byDefault: true,
    unavailable: () => undefined,
    command: (ifA, ifB, tools) => ({ cmd: tools.cfwd, args: ['--vnet-hdr', ifA, ifB] }),
  },
  {
    name: 'cfwd-uring',
    description:
      'plain C through one io_uring: a batch of reads in one io_uring_enter, then their writes in another (cfwd --uring)',
    byDefault: true,
    unavailable: ioUringUnavailable,
    command: (ifA, ifB, tools) => ({ cmd: tools.cfwd, args: ['--uring', ifA, ifB] }),
  },
  {
    name: 'dpdk-tap',
    description: 'DPDK 22.11 testpmd, io forwarding between two net_tap ports (--no-huge, 1 forwarding lcore)',
    byDefault: true,
    unavailable: testpmdUnavailable,
    // net_tap creates the TAPs by name in the root namespace and brings them up when its ports
    // start; the test bed moves them into the namespaces only after that (readyOutput), as
    // it does with every forwarder's TAPs, and testpmd keeps the fds.
    command: (ifA, ifB) => {
      const t = testpmdCommand({
        cpu: kForwarderCpu,
        vdevs: [`net_tap0,iface=${ifA}`, `net_tap1,iface=${ifB}`],
        forwardMode: 'io',
      });
      return {
        cmd: kTestpmd,
        args: t.args,
        note: `main and forwarding lcore on CPU ${kForwarderCpu}; runtime files under --file-prefix ${t.prefix}`,
        readyOutput: kTestpmdReady,
        cleanup: t.cleanup,
      };
    },
  },
  {
    name: 'naive-node',
    description: 'Node: fs.read/fs.write on blocking TAP fds (libuv thread pool), one frame per call',
    byDefault: true,
    unavailable: () => undefined,
    // Tap.open gives nonblocking fds, on which fs.read can only fail with EAGAIN; the natural
    // naive forwarder blocks in the thread pool, so cfwd opens the TAPs blocking as fds 3 and
    // 4 and execs Node with them.
    command: (ifA, ifB, tools) => ({
      cmd: tools.cfwd,
      args: ['--exec', ifA, ifB, '--', process.execPath, ...tsxNode(kNaiveNode, ['--fds', '3,4'])],
      note: 'blocking fds opened by cfwd --exec',
    }),
  },
  {
    name: 'naive-node-tap',
    description: 'Node: Tap.open (nonblocking fds), fs.read/fs.write, EAGAIN retried on setImmediate (busy)',
    byDefault: false,
    unavailable: tapModuleUsable,
    command: (ifA, ifB) => ({
      cmd: process.execPath,
      args: tsxNode(kNaiveNode, ['--open', ifA, ifB]),
      note: 'nonblocking fds from lib/tap.ts Tap.open',
    }),
  },
  netplane('link', true, 4),
  netplane('link', true, 1, {
    suffix: '-nopoll',
    description: 'adaptive polling off (-object iothread,poll-max-ns=0)',
    args: ['-object', 'iothread,id=io0,poll-max-ns=0'],
    tapOpts: ',iothread=io0',
  }),
  ...(['link', 'hub'] as const).map((kind) =>
    netplane(kind, true, 1, {
      suffix: '-rw',
      description: 'io-uring=off: a read(2) and a write(2) per frame, no io_uring batches',
      args: [],
      tapOpts: ',io-uring=off',
    }),
  ),
  {
    name: 'js-filter',
    description:
      'TypeScript between two packet ports: every frame parsed and filtered in JavaScript (examples/port-filter.ts)',
    byDefault: true,
    unavailable: () => (addonBuilt() ? undefined : 'the native addon is not built (npm run build)'),
    command: (ifA, ifB) => ({
      cmd: process.execPath,
      // Port 7 (echo) carries none of the bench's traffic: every frame is inspected, none dropped.
      args: tsxNode(kPortFilter, ['--offloads', '--block-port', '7', ifA, ifB]),
      note: 'examples/port-filter.ts --offloads via tsx (vnet headers and TSO, as netplane-link)',
      readyOutput: 'ready',
    }),
  },
  {
    name: 'veth',
    description:
      "the kernel's own path: a veth pair between the namespaces, no forwarder (the ceiling, not a contender). " +
      "The kernel's work runs in the senders' context, so frames/s is bounded by the generator's core, " +
      'and the forwarder CPU columns are a placeholder sleep (~0)',
    byDefault: true,
    link: 'veth',
    unavailable: () => undefined,
    // The session needs a process to start, wait on and stop; this one does nothing.
    command: () => ({ cmd: 'sleep', args: ['86400'], note: 'no forwarder: the test bed made a veth pair' }),
  },
];

export function forwarderNames(): string[] {
  return forwarders.map((f) => f.name);
}

/** Select forwarders by --only (names, or "netplane" for every netplane variant). */
export function selectForwarders(only: string[] | undefined): Forwarder[] {
  if (!only) return forwarders.filter((f) => f.byDefault);
  const chosen = new Set<string>();
  for (const want of only) {
    const matches = forwarders.filter(
      (f) => f.name === want || (want === 'netplane' && f.name.startsWith('netplane-')),
    );
    if (matches.length === 0) {
      throw new Error(`--only: unknown forwarder '${want}' (known: netplane, ${forwarderNames().join(', ')})`);
    }
    for (const m of matches) chosen.add(m.name);
  }
  return forwarders.filter((f) => chosen.has(f.name));
}
