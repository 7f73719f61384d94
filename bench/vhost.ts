// npm run bench -- vhost: a vhost-user back-end between a "guest" and a TAP, with no VM. The
// guest is DPDK's virtio-user PMD (dpdk-testpmd, the virtio driver on a unix socket); the
// back-end listens on the socket and holds TAP A (moved into namespace A like every bench
// TAP). Back-ends, interleaved over repetitions:
//
//   dpdk-vhost      testpmd: net_vhost0 (the socket) + net_tap0 (the TAP), io forwarding
//   netplane-vhost  node dist/cli/main.js -netdev tap,... -export type=vhost-user-net,...
//
// Per session: guest->TAP (virtio-user txonly, frames counted at TAP A's rx_packets in the
// namespace), then TAP->guest (trafgen out of TAP A, virtio-user rxonly, frames counted by
// testpmd's RX stats on the virtio port), then the back-end's idle CPU with the guest still
// attached. The back-end runs on the forwarder CPU; the guest and trafgen on the generator CPU.
//
// `npm run bench -- vhost-frontend` is the mirror (front-ends, frontendBackends() below): the
// "guest" is a DPDK vhost PMD switch (net_vhost0,client=1: it connects), the variant under
// test listens on the socket and holds TAP A, and each direction is its own session (fresh
// front-end, fresh switch):
//
//   dpdk-virtio-user   testpmd: net_tap0 (the TAP) + net_virtio_user0,server=1, io forwarding
//   netplane-frontend  node dist/cli/main.js -chardev socket,server=on,... -netdev vhost-user
//                      -netdev tap,... -link
import * as fs from 'node:fs';
import * as path from 'node:path';
import { addonBuilt, netplaneCli } from './forwarders';
import { kTestpmd, kTestpmdReady, lastPortStats, statsBlocks, testpmdCommand, testpmdUnavailable } from './lib/dpdk';
import { machineLine, newResultsDir, settingsFor, type Options } from './lib/harness';
import {
  groupCpu,
  machineBusyPct,
  machineTimes,
  busyBetween,
  run,
  sleep,
  start,
  stop,
  tail,
  head,
  type Proc,
} from './lib/proc';
import { formatStat, stat } from './lib/samples';
import { leftovers, TestBed } from './lib/testbed';
import { buildTools } from './lib/tools';
import { npName } from '../test/helpers/netns';
import { kForwarderCpu, kGeneratorCpu, startTrafgen, type Settings } from './workloads';

/** Frames without FCS, as in the TAP-to-TAP table (64 bytes on a wire). */
const kFrameLen = 60;

interface BackendCommand {
  cmd: string;
  args: string[];
  readyOutput?: string;
  /**
   * Its ports start only once the guest connected (DPDK virtio-user server=1 blocks in
   * accept): wait for this output after the guest started, then move the TAP.
   */
  readyAfterGuest?: string;
  cleanup?: () => void;
}

interface Backend {
  name: string;
  description: string;
  unavailable(): string | undefined;
  command(tap: string, sock: string): BackendCommand;
}

export interface Direction {
  /** Frames per second arriving where they are counted, millions. */
  mfps: number;
  /** Frames per second the source put in (guest TX, or trafgen into TAP A), millions. */
  offeredMfps: number;
  /** CPU of the back-end's process group over the window, percent of one core. */
  backendCpuPct: number;
  /** Back-end CPU per delivered frame, nanoseconds. */
  nsPerFrame: number;
  windowSeconds: number;
}

export interface VhostRecord {
  backend: string;
  rep: number;
  startedAt: string;
  command: string[];
  guestToTap?: Direction;
  tapToGuest?: Direction;
  idle?: { cpuPct: number; seconds: number; machineBusyPct: number };
  errors: { step: string; message: string }[];
  failed?: string;
  backendStderr?: string;
}

/** The sockets this run created (to report any left behind). */
const kSockets = new Set<string>();
process.on('exit', () => {
  for (const f of kSockets) fs.rmSync(f, { force: true });
});

const kNoNetplaneVhost = 'netplane has no vhost-user back-end in this build';

/**
 * Whether this build's CLI knows -export: run it with an export whose netdev does not exist.
 * A build without the option rejects the option itself; one with it rejects the netdev (or
 * anything else), which is then tried for real.
 */
async function netplaneVhostUnavailable(): Promise<string | undefined> {
  const cli = netplaneCli();
  if (!cli) return 'not available yet: neither dist/cli/main.js (npm run build) nor lib/cli/main.ts exists';
  if (!addonBuilt()) return 'the native addon is not built (npm run build)';
  const sock = `/tmp/${npName('probe')}.sock`;
  try {
    const r = await run(
      'netplane -export probe',
      cli.cmd,
      [...cli.pre, '-export', `type=vhost-user-net,id=vu0,netdev=npnosuch,addr.type=unix,addr.path=${sock}`],
      10_000,
    );
    const said = `${r.stderr}\n${r.stdout}`;
    if (/-export\b[^\n]*(invalid|unknown|unrecognized|unsupported|not supported)/i.test(said))
      return `${kNoNetplaneVhost} (the CLI said: ${head(said.trim(), 1)})`;
    return undefined;
  } finally {
    fs.rmSync(sock, { force: true });
  }
}

function backends(netplaneWhy: string | undefined): Backend[] {
  return [
    {
      name: 'dpdk-vhost',
      description: 'DPDK 22.11 testpmd: net_vhost0 (server socket) + net_tap0, io forwarding, 1 forwarding lcore',
      unavailable: testpmdUnavailable,
      command: (tap, sock) => {
        const t = testpmdCommand({
          cpu: kForwarderCpu,
          vdevs: [`net_vhost0,iface=${sock},queues=1`, `net_tap0,iface=${tap}`],
          forwardMode: 'io',
        });
        return { cmd: kTestpmd, args: t.args, readyOutput: kTestpmdReady, cleanup: t.cleanup };
      },
    },
    {
      name: 'netplane-vhost',
      description: 'netplane: -netdev tap (vnet_hdr=on) exported as a vhost-user-net back-end (server socket)',
      unavailable: () => netplaneWhy,
      command: (tap, sock) => {
        const cli = netplaneCli()!;
        return {
          cmd: cli.cmd,
          args: [
            ...cli.pre,
            '-netdev',
            `tap,id=hn0,ifname=${tap},script=no,downscript=no,vnet_hdr=on`,
            '-export',
            `type=vhost-user-net,id=vu0,netdev=hn0,addr.type=unix,addr.path=${sock}`,
          ],
        };
      },
    },
  ];
}

/** The front-end variants (vhost-frontend): each listens on the socket and holds the TAP. */
function frontendBackends(): Backend[] {
  return [
    {
      name: 'dpdk-virtio-user',
      description: 'DPDK 22.11 testpmd: net_tap0 + net_virtio_user0 (server=1), io forwarding, 1 forwarding lcore',
      unavailable: testpmdUnavailable,
      command: (tap, sock) => {
        const t = testpmdCommand({
          cpu: kForwarderCpu,
          vdevs: [`net_tap0,iface=${tap}`, `net_virtio_user0,path=${sock},server=1,queues=1,queue_size=1024`],
          forwardMode: 'io',
        });
        return { cmd: kTestpmd, args: t.args, readyAfterGuest: kTestpmdReady, cleanup: t.cleanup };
      },
    },
    ...([true, false] as const).map((uring) => ({
      name: uring ? 'netplane-frontend' : 'netplane-frontend-rw',
      description:
        'netplane: -netdev vhost-user (chardev server=on) linked to -netdev tap (vnet_hdr=on' +
        (uring ? ', its writes batched through io_uring by default)' : ', io-uring=off: a write(2) per frame)'),
      unavailable: () => (netplaneCli() ? undefined : 'not built (npm run build)'),
      command: (tap: string, sock: string) => {
        const cli = netplaneCli()!;
        return {
          cmd: cli.cmd,
          args: [
            ...cli.pre,
            '-chardev',
            `socket,id=c0,path=${sock},server=on,wait=off`,
            '-netdev',
            'vhost-user,id=n0,chardev=c0',
            '-netdev',
            `tap,id=t0,ifname=${tap},script=no,downscript=no,vnet_hdr=on${uring ? '' : ',io-uring=off'}`,
            '-link',
            'n0,t0',
          ],
        };
      },
    })),
  ];
}

let frontendMode = false;

/**
 * The guest: testpmd's virtio-user PMD on the socket, on the generator CPU; in the front-end
 * workload, testpmd's vhost PMD connecting to the socket (the switch).
 */
function startGuest(sock: string, mode: 'txonly' | 'rxonly'): { proc: Proc; cleanup: () => void } {
  const t = testpmdCommand({
    cpu: kGeneratorCpu,
    vdevs: [
      frontendMode
        ? `net_vhost0,iface=${sock},client=1,queues=1`
        : `net_virtio_user0,path=${sock},queues=1,queue_size=1024`,
    ],
    forwardMode: mode,
    txLength: mode === 'txonly' ? kFrameLen : undefined,
  });
  const proc = start(`guest ${mode}`, 'taskset', ['-c', String(kGeneratorCpu), kTestpmd, ...t.args]);
  return { proc, cleanup: t.cleanup };
}

interface Sample {
  ns: bigint;
  rx: number;
  tx: number;
}

/** Wait for testpmd's next statistics block on port 0 and take the time it arrived. */
async function nextStats(p: Proc, limitMs = 5000): Promise<Sample> {
  const seen = statsBlocks(p.stdout(), 0);
  const deadline = Date.now() + limitMs;
  for (;;) {
    const out = p.stdout();
    if (statsBlocks(out, 0) > seen) {
      const ns = process.hrtime.bigint();
      const st = lastPortStats(out, 0)!;
      return { ns, rx: st.rxPackets, tx: st.txPackets };
    }
    if (p.hasExited()) throw new Error(`${p.name} exited: ${tail(p.stderr() || p.stdout())}`);
    if (Date.now() > deadline) throw new Error(`${p.name} printed no statistics within ${limitMs} ms`);
    await sleep(5);
  }
}

async function waitReady(p: Proc, limitMs: number): Promise<void> {
  await nextStats(p, limitMs);
}

async function waitForFile(file: string, p: Proc, limitMs: number): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!fs.existsSync(file)) {
    if (p.hasExited()) throw new Error(`exited before creating ${file}: ${head(p.stderr() || p.stdout())}`);
    if (Date.now() > deadline) throw new Error(`did not create ${file} within ${limitMs} ms`);
    await sleep(20);
  }
}

async function guestToTap(
  bed: TestBed,
  sock: string,
  pgid: number,
  s: Settings,
  afterGuest: () => Promise<void>,
): Promise<Direction> {
  const guest = startGuest(sock, 'txonly');
  try {
    await waitReady(guest.proc, 15_000);
    await afterGuest();
    await sleep(s.warmup * 1000);
    const g0 = await nextStats(guest.proc);
    const a0 = bed.countersA();
    const c0 = groupCpu(pgid);
    await sleep(Math.max(0, s.duration * 1000 - 500));
    const g1 = await nextStats(guest.proc);
    const a1 = bed.countersA();
    const c1 = groupCpu(pgid);
    const dt = Number(g1.ns - g0.ns) / 1e9;
    const frames = a1.rxPackets - a0.rxPackets;
    const cpu = c1.schedSeconds - c0.schedSeconds;
    return {
      mfps: frames / dt / 1e6,
      offeredMfps: (g1.tx - g0.tx) / dt / 1e6,
      backendCpuPct: (cpu / dt) * 100,
      nsPerFrame: frames > 0 ? (cpu * 1e9) / frames : NaN,
      windowSeconds: dt,
    };
  } finally {
    await stop(guest.proc, 'SIGINT', 3000);
    guest.cleanup();
  }
}

async function tapToGuest(
  bed: TestBed,
  sock: string,
  pgid: number,
  s: Settings,
  rec: VhostRecord,
  afterGuest: () => Promise<void>,
): Promise<Direction> {
  const guest = startGuest(sock, 'rxonly');
  let gen: Proc | undefined;
  try {
    await waitReady(guest.proc, 15_000);
    await afterGuest();
    gen = startTrafgen(bed, s);
    await sleep(s.warmup * 1000);
    if (gen.hasExited()) throw new Error(`trafgen exited: ${tail(gen.stderr() || gen.stdout())}`);
    const g0 = await nextStats(guest.proc);
    const a0 = bed.countersA();
    const c0 = groupCpu(pgid);
    await sleep(Math.max(0, s.duration * 1000 - 500));
    const g1 = await nextStats(guest.proc);
    const a1 = bed.countersA();
    const c1 = groupCpu(pgid);
    const dt = Number(g1.ns - g0.ns) / 1e9;
    const frames = g1.rx - g0.rx;
    const cpu = c1.schedSeconds - c0.schedSeconds;
    const result: Direction = {
      mfps: frames / dt / 1e6,
      offeredMfps: (a1.txPackets + a1.txDropped - (a0.txPackets + a0.txDropped)) / dt / 1e6,
      backendCpuPct: (cpu / dt) * 100,
      nsPerFrame: frames > 0 ? (cpu * 1e9) / frames : NaN,
      windowSeconds: dt,
    };
    await stop(gen, 'SIGINT', 2000);
    gen = undefined;
    // The back-end with a guest attached and no traffic in either direction.
    try {
      await sleep(1000);
      const i0 = groupCpu(pgid);
      const m0 = machineTimes();
      const t0 = process.hrtime.bigint();
      await sleep(s.idleSeconds * 1000);
      const i1 = groupCpu(pgid);
      const m1 = machineTimes();
      const idt = Number(process.hrtime.bigint() - t0) / 1e9;
      rec.idle = {
        cpuPct: ((i1.schedSeconds - i0.schedSeconds) / idt) * 100,
        seconds: idt,
        machineBusyPct: busyBetween(m0, m1),
      };
    } catch (e) {
      rec.errors.push({ step: 'idle', message: (e as Error).message });
    }
    return result;
  } finally {
    if (gen) await stop(gen, 'SIGINT', 2000);
    await stop(guest.proc, 'SIGINT', 3000);
    guest.cleanup();
  }
}

async function vhostSession(
  b: Backend,
  s: Settings,
  rep: number,
  only?: 'guest->TAP' | 'TAP->guest',
): Promise<VhostRecord> {
  const bed = await TestBed.create();
  const sock = `/tmp/${npName('vu')}.sock`;
  kSockets.add(sock);
  const c = b.command(bed.ifA, sock);
  const rec: VhostRecord = {
    backend: b.name,
    rep,
    startedAt: new Date().toISOString(),
    command: ['taskset', '-c', String(kForwarderCpu), c.cmd, ...c.args],
    errors: [],
  };
  const proc = start(b.name, 'taskset', ['-c', String(kForwarderCpu), c.cmd, ...c.args]);
  try {
    try {
      await bed.waitForTaps(proc, 10_000, true);
      if (c.readyOutput) await waitReady(proc, 10_000);
      await waitForFile(sock, proc, 10_000);
      if (!c.readyAfterGuest) bed.wire(true);
    } catch (e) {
      rec.failed = `${(e as Error).message}; it said: ${head(proc.stderr() || proc.stdout())}`;
      return rec;
    }
    const pgid = proc.pid;
    const afterGuest = async (): Promise<void> => {
      if (!c.readyAfterGuest) return;
      const deadline = Date.now() + 10_000;
      while (!proc.stdout().includes(c.readyAfterGuest)) {
        if (proc.hasExited() || Date.now() > deadline)
          throw new Error(`${b.name} did not start its ports: ${tail(proc.stderr() || proc.stdout())}`);
        await sleep(20);
      }
      bed.wire(true);
    };
    const steps: [string, () => Promise<void>][] = [
      ['guest->TAP', async () => void (rec.guestToTap = await guestToTap(bed, sock, pgid, s, afterGuest))],
      ['TAP->guest', async () => void (rec.tapToGuest = await tapToGuest(bed, sock, pgid, s, rec, afterGuest))],
    ];
    for (const [step, fn] of steps) {
      if (only !== undefined && step !== only) continue;
      if (proc.hasExited()) {
        rec.errors.push({ step, message: `back-end exited: ${tail(proc.stderr())}` });
        continue;
      }
      try {
        await fn();
      } catch (e) {
        rec.errors.push({ step, message: (e as Error).message });
      }
    }
    return rec;
  } finally {
    await stop(proc, 'SIGTERM', 3000);
    rec.backendStderr = tail(proc.stderr(), 10);
    c.cleanup?.();
    fs.rmSync(sock, { force: true });
    await bed.dispose();
  }
}

const kColumns: {
  title: string;
  get: (r: VhostRecord) => number | undefined;
  digits: number;
  better?: 'higher' | 'lower';
}[] = [
  { title: 'guest->TAP Mframes/s', get: (r) => r.guestToTap?.mfps, digits: 3, better: 'higher' },
  { title: 'guest offered Mframes/s', get: (r) => r.guestToTap?.offeredMfps, digits: 3 },
  { title: 'back-end CPU % (guest->TAP)', get: (r) => r.guestToTap?.backendCpuPct, digits: 0 },
  { title: 'back-end ns/frame (guest->TAP)', get: (r) => r.guestToTap?.nsPerFrame, digits: 0, better: 'lower' },
  { title: 'TAP->guest Mframes/s', get: (r) => r.tapToGuest?.mfps, digits: 3, better: 'higher' },
  { title: 'trafgen offered Mframes/s', get: (r) => r.tapToGuest?.offeredMfps, digits: 3 },
  { title: 'back-end CPU % (TAP->guest)', get: (r) => r.tapToGuest?.backendCpuPct, digits: 0 },
  { title: 'back-end ns/frame (TAP->guest)', get: (r) => r.tapToGuest?.nsPerFrame, digits: 0, better: 'lower' },
  { title: 'back-end idle CPU %', get: (r) => r.idle?.cpuPct, digits: 2, better: 'lower' },
  { title: 'machine busy % (noise)', get: (r) => r.idle?.machineBusyPct, digits: 0 },
];

export function vhostMarkdown(
  records: VhostRecord[],
  names: string[],
  skipped: Map<string, string>,
  header: string[],
): string {
  const byName = new Map(names.map((n) => [n, records.filter((r) => r.backend === n)]));
  const stats = new Map(
    names.map((n) => [
      n,
      kColumns.map((c) =>
        stat(
          byName
            .get(n)!
            .map(c.get)
            .filter((x): x is number => x !== undefined),
        ),
      ),
    ]),
  );
  const lines = [
    ...header,
    '',
    'Medians over repetitions, (min–max) when there was more than one.',
    '',
    `| back-end | ${kColumns.map((c) => c.title).join(' | ')} |`,
    `|---|${kColumns.map(() => '---').join('|')}|`,
  ];
  for (const n of names) {
    if (skipped.has(n)) continue;
    lines.push(
      `| ${n} | ${stats
        .get(n)!
        .map((st, i) => formatStat(st, kColumns[i]!.digits))
        .join(' | ')} |`,
    );
  }
  const dName = frontendMode ? 'dpdk-virtio-user' : 'dpdk-vhost';
  const npNames = frontendMode ? ['netplane-frontend', 'netplane-frontend-rw'] : ['netplane-vhost'];
  const d = stats.get(dName);
  for (const npName of npNames) {
    const np = stats.get(npName);
    lines.push('', `### ${npName} / DPDK (ratio of medians)`, '');
    if (d && np && !skipped.has(npName) && !skipped.has(dName)) {
      const rows = kColumns
        .map((c, i) => ({ c, a: np[i], b: d[i] }))
        .filter(({ c }) => c.better)
        .map(({ c, a, b }) => {
          const r = a && b && b.median !== 0 ? a.median / b.median : undefined;
          const good = r === undefined ? '' : c.better === 'higher' ? '(higher is better)' : '(lower is better)';
          return `| ${c.title} | ${r === undefined ? '–' : `${r.toFixed(2)}x`} ${good} |`;
        });
      lines.push('| metric | netplane / DPDK |', '|---|---|', ...rows);
    } else {
      lines.push('No ratio: both back-ends are needed (see Skipped).');
    }
  }
  if (skipped.size > 0) {
    lines.push('', '### Skipped', '');
    for (const [n, why] of skipped) lines.push(`- ${n}: ${why}`);
  }
  const problems = records.filter((r) => r.failed || r.errors.length > 0);
  if (problems.length > 0) {
    lines.push('', '### Errors', '');
    for (const r of problems) {
      if (r.failed) lines.push(`- ${r.backend} rep ${r.rep}: did not start: ${r.failed}`);
      for (const e of r.errors) lines.push(`- ${r.backend} rep ${r.rep}, ${e.step}: ${e.message}`);
    }
  }
  return lines.join('\n') + '\n';
}

function oneLine(r: VhostRecord): string {
  if (r.failed) return `FAILED: ${r.failed}`;
  const d = (x: Direction | undefined, label: string) =>
    x &&
    `${label} ${x.mfps.toFixed(3)} Mfps of ${x.offeredMfps.toFixed(3)} offered (cpu ${x.backendCpuPct.toFixed(0)}%, ${x.nsPerFrame.toFixed(0)} ns/frame)`;
  return [
    d(r.guestToTap, 'guest->TAP'),
    d(r.tapToGuest, 'TAP->guest'),
    r.idle && `idle ${r.idle.cpuPct.toFixed(2)}%`,
    ...r.errors.map((e) => `ERROR ${e.step}: ${e.message}`),
  ]
    .filter(Boolean)
    .join(', ');
}

export async function runVhost(o: Options): Promise<void> {
  buildTools(); // nothing of it is needed here, but the same compile errors should show early
  const dir = newResultsDir();
  const s = settingsFor(o, dir);
  frontendMode = o.vhostFrontend === true;
  const all = frontendMode ? frontendBackends() : backends(await netplaneVhostUnavailable());
  const chosen = o.only ? all.filter((b) => o.only!.includes(b.name)) : all;
  if (chosen.length === 0) throw new Error(`--only: vhost back-ends are ${all.map((b) => b.name).join(', ')}`);
  const skipped = new Map<string, string>();
  for (const b of chosen) {
    const why = b.unavailable();
    if (why) skipped.set(b.name, why);
  }
  const busyBefore = await machineBusyPct(1000);
  console.log(`vhost: ${machineLine()}; ${busyBefore.toFixed(0)}% of all CPUs busy`);
  console.log(
    `vhost: ${o.reps} repetition(s), ${o.duration} s windows, results in ${path.relative(process.cwd(), dir)}`,
  );
  for (const [n, why] of skipped) console.log(`vhost: skipping ${n}: ${why}`);
  const records: VhostRecord[] = [];
  for (let rep = 1; rep <= o.reps; rep++) {
    for (const b of chosen) {
      if (skipped.has(b.name)) continue;
      process.stdout.write(`vhost: rep ${rep}/${o.reps} ${b.name} ... `);
      let r: VhostRecord;
      try {
        if (frontendMode) {
          // One session per direction: a fresh front-end and switch each time.
          r = await vhostSession(b, s, rep, 'guest->TAP');
          const r2 = await vhostSession(b, s, rep, 'TAP->guest');
          r.tapToGuest = r2.tapToGuest;
          if (r2.idle) r.idle = r2.idle;
          r.errors.push(...r2.errors);
          r.failed ??= r2.failed;
        } else {
          r = await vhostSession(b, s, rep);
        }
      } catch (e) {
        r = {
          backend: b.name,
          rep,
          startedAt: new Date().toISOString(),
          command: [],
          errors: [],
          failed: `test bed: ${(e as Error).message}`,
        };
      }
      records.push(r);
      fs.writeFileSync(
        path.join(dir, `vhost-${String(rep).padStart(2, '0')}-${b.name}.json`),
        JSON.stringify(r, null, 2) + '\n',
      );
      console.log(oneLine(r));
    }
  }
  const busyAfter = await machineBusyPct(1000);
  const header = [
    `## netplane vhost-user benchmark, ${new Date().toISOString()}`,
    '',
    `- machine: ${machineLine()}`,
    `- command: npm run bench -- ${process.argv.slice(2).join(' ')}`,
    `- ${o.reps} repetition(s) interleaved; ${o.duration} s windows after ${s.warmup} s warm-up; ${s.idleSeconds} s idle`,
    `- guest: ${kTestpmd} virtio-user (queues=1, queue_size=1024, --no-huge) on CPU ${kGeneratorCpu}; back-end on CPU ${kForwarderCpu}; ${kFrameLen}-byte frames (64 with FCS)`,
    "- guest->TAP: virtio-user txonly, counted at the TAP (rx_packets in its namespace); TAP->guest: trafgen out of the TAP (on the guest's CPU, so it shares that CPU with the polling guest), counted by the guest's RX stats",
    "- back-end CPU: the back-end's process group (schedstat), over the window; idle: guest attached, no traffic",
    `- other load: ${busyBefore.toFixed(0)}% of all CPUs busy before the run, ${busyAfter.toFixed(0)}% after`,
    ...(frontendMode
      ? [
          '- front-end workload: the "guest" columns are the switch (testpmd net_vhost0,client=1: txonly for guest->TAP, rxonly for TAP->guest); the "back-end" columns are the front-end under test (it listens on the socket and holds the TAP); one session per direction',
        ]
      : []),
  ];
  const md = vhostMarkdown(
    records,
    chosen.map((b) => b.name),
    skipped,
    header,
  );
  fs.writeFileSync(path.join(dir, 'summary.md'), md);
  fs.writeFileSync(
    path.join(dir, 'summary.json'),
    JSON.stringify({ options: o, records, skipped: Object.fromEntries(skipped) }, null, 2) + '\n',
  );
  console.log('\n' + md);
  console.log(`vhost: wrote ${path.relative(process.cwd(), path.join(dir, 'summary.md'))}`);
  const left = [...leftovers(), ...[...kSockets].filter((f) => fs.existsSync(f))];
  if (left.length > 0) {
    console.error(`vhost: LEFT BEHIND: ${left.join(', ')}`);
    process.exitCode = 1;
  }
}
