// `netplane [options]`: build the topology from the command line in QEMU's order
// (objects, netdevs, links, devices), print QEMU's startup warnings, serve QMP and HMP, and
// run until SIGINT, SIGTERM or `quit`; then tear everything down: QMP sockets removed, every
// NIC and netdev closed (downscripts run, fds closed).
import * as fs from 'node:fs';
import { Hmp, runStdioMonitor } from '../control/hmp';
import { Monitor, netplaneVersion } from '../control/monitor';
import { closeQuietly, FdSets, resolveMonitorFd, withMonitorFds } from '../control/monitor-fds';
import { qmpCommands } from '../control/qmp-commands';
import { exportCommands } from '../control/qmp-export-commands';
import { QmpServer } from '../control/qmp-server';
import { NativeDataPlane } from '../dataplane/native-dataplane';
import { native } from '../native';
import type { DataPlane } from '../topology/dataplane';
import { VhostUserExports } from '../topology/exports/vhost-user-net';
import { Topology } from '../topology/topology';
import { CliError, HELP_TEXT, parseCliArgs, type CliArgs, type Located } from './args';
import { LegacyNet } from './legacy-net';

export interface RunOptions {
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
  stdin?: NodeJS.ReadableStream;
  /**
   * The data plane that moves frames (default: the native one; if it cannot load, netplane
   * warns and runs the topology as state only).
   */
  createDataPlane?: () => DataPlane | undefined;
  /** Install SIGINT/SIGTERM handlers (default true; tests of the library path say false). */
  handleSignals?: boolean;
}

const SIGNAL_NUMBERS: Record<string, number> = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 };

function defaultDataPlane(say: (line: string) => void): DataPlane | undefined {
  try {
    return new NativeDataPlane();
  } catch (e) {
    say(
      `warning: the native data plane is unavailable (${e instanceof Error ? e.message : String(e)}); no frames will be forwarded`,
    );
    return undefined;
  }
}

/**
 * Create what the command line asks for, in QEMU's order; errors name their option. Returns
 * the -nic/-net state, whose warnings follow QEMU's other startup warnings.
 */
function build(topology: Topology, args: CliArgs): LegacyNet {
  const step = <T>(item: Located<T>, fn: (value: T) => void): void => {
    try {
      fn(item.value);
    } catch (e) {
      if (!(e instanceof Error)) throw e;
      if ((e as { located?: boolean }).located === false) throw new CliError(e.message);
      const hint = (e as { hint?: string }).hint;
      const cause = (e as { cause?: { code?: string } }).cause;
      const rootHint =
        cause?.code === 'EPERM' || cause?.code === 'EACCES'
          ? 'creating TAP devices needs CAP_NET_ADMIN and access to /dev/net/tun (run as root, or pass fd=/fds=)'
          : undefined;
      throw new CliError(`-${item.option} ${item.text}: ${e.message}`, hint ?? rootHint);
    }
  };
  // Chardevs first: a -netdev vhost-user claims its own (QEMU creates them before netdevs).
  for (const c of args.chardevs) step(c, (v) => topology.chardevs.add(v));
  for (const o of args.objects) {
    step(o, (v) => {
      // The topology records it and has the data plane start the thread.
      if (v.qomType === 'iothread') topology.addIothread(v, { via: 'cli' });
    });
  }
  for (const n of args.netdevs) step(n, (v) => void topology.addNetdev(v, { via: 'cli' }));
  const legacy = new LegacyNet(topology);
  for (const n of args.nics) step(n, (v) => legacy.addNic(v));
  for (const n of args.nets) step(n, (v) => legacy.addNet(v));
  // Filters are QEMU's "late" objects: created once the netdevs exist.
  for (const o of args.objects)
    step(o, (v) => void (v.qomType === 'filter-dump' && topology.addFilter(v, { via: 'cli' })));
  for (const l of args.links) step(l, ([a, b]) => topology.link(a, b));
  // The machine's on-board NICs (-nic, -net nic) come before -device.
  try {
    legacy.realizeNics();
  } catch (e) {
    if (e instanceof Error) throw new CliError(e.message);
    throw e;
  }
  for (const d of args.devices) step(d, (v) => void topology.addDevice(v, { via: 'cli' }));
  return legacy;
}

/**
 * Fds inherited from our parent (beyond stdio) must not reach the network scripts we run:
 * QEMU closes them in the script's process; we mark them close-on-exec. (Node opens its own
 * fds close-on-exec, and marks inherited ones only up to the first gap after fd 15.)
 */
function keepInheritedFdsFromScripts(): void {
  let setCloexec: (fd: number) => void;
  try {
    setCloexec = native().fdSetCloexec;
  } catch {
    return; // no addon: no data plane either; scripts still run without a shell
  }
  for (const name of fs.readdirSync('/proc/self/fd')) {
    const fd = Number(name);
    if (fd <= 2) continue;
    try {
      setCloexec(fd);
    } catch {
      /* the directory listing's own fd, closed already */
    }
  }
}

/**
 * The inherited fds that -netdev tap,fd=N / fds=A:B handed over. The TAPs hold their own
 * duplicates, so once startup is done these close: as in QEMU, the netdev owns the fd, and
 * a netdev_del (or exit) really releases the interface.
 */
function inheritedTapFds(args: CliArgs): number[] {
  const fds = new Set<number>();
  for (const n of args.netdevs) {
    if (n.value.type !== 'tap') continue;
    for (const text of n.value.fd !== undefined ? [n.value.fd] : (n.value.fds ?? [])) {
      if (/^[0-9]+$/.test(text)) fds.add(Number(text));
    }
  }
  return [...fds];
}

export async function runCli(argv: readonly string[], opts: RunOptions = {}): Promise<number> {
  const stdout = opts.stdout ?? process.stdout;
  const stderr = opts.stderr ?? process.stderr;
  const say = (line: string): void => void stderr.write(`netplane: ${line}\n`);

  let args: CliArgs;
  try {
    args = parseCliArgs(argv);
  } catch (e) {
    if (e instanceof CliError) {
      stderr.write(e.format());
      return 1;
    }
    throw e;
  }
  if (args.helpText !== undefined) {
    stdout.write(args.helpText);
    return 0;
  }
  if (args.help) {
    stdout.write(HELP_TEXT + '\n');
    return 0;
  }
  if (args.version) {
    const v = netplaneVersion();
    stdout.write(`${v.package} (QEMU ${v.qemu.major}.${v.qemu.minor} network model)\n`);
    return 0;
  }
  for (const w of args.warnings) say(w);
  keepInheritedFdsFromScripts();
  const dataPlane = opts.createDataPlane ? opts.createDataPlane() : defaultDataPlane(say);
  const topology = new Topology({
    ...(dataPlane ? { dataPlane } : {}),
    warn: (m) => say(`warning: ${m}`),
    // fd=NAME / fds=A:B in netdev_add: the fds a QMP client passed with getfd.
    resolveFd: resolveMonitorFd,
  });
  const monitor = new Monitor(topology, { errorReport: (m) => say(m) });
  // A TAP whose interface vanished: the data plane stopped polling it and the topology took
  // the netdev's link (and its NIC's) down; the Monitor sends QMP NETPLANE_TAP_DEAD, and the
  // operator reads it here.
  topology.on('tap-dead', (e) =>
    say(`${e.netdev}: the TAP interface is gone (${e.code} in ${e.syscall}); its link is down`),
  );
  const closeDataPlane = (): void => dataPlane?.close?.();
  // Failures outside any call (a TAP that died, a downscript that failed): report and go on.
  topology.on('error', (e) => say(e.message));

  let legacy: LegacyNet;
  try {
    // The command line has no monitor: there, fd= takes numbers only (as in QEMU).
    legacy = withMonitorFds(null, () => build(topology, args));
    for (const fd of inheritedTapFds(args)) closeQuietly(fd);
  } catch (e) {
    monitor.dispose();
    await topology.close();
    closeDataPlane();
    if (e instanceof CliError) {
      stderr.write(e.format());
      return 1;
    }
    throw e;
  }
  // An exported netdev gets its peer from the export (created below, once QMP listens).
  const exported = new Set(args.exports.map((e) => `netdev ${e.value.netdev} has no peer`));
  for (const w of [...topology.startupWarnings(), ...legacy.warnings]) if (!exported.has(w)) say(`warning: ${w}`);

  const hmp = new Hmp(monitor);
  const exports = new VhostUserExports(topology, say);
  const commands = new Map([...qmpCommands(monitor, hmp), ...exportCommands(exports)]);
  const servers: QmpServer[] = [];
  // add-fd's fd sets belong to the process, shared by every -qmp socket (as in QEMU).
  const fdSets = new FdSets();
  let pidfileWritten = false;
  const teardown = async (): Promise<void> => {
    await Promise.all(servers.map((s) => s.close()));
    // Front-ends first: rings stop and memory is released while the TAPs still exist.
    await exports.closeAll();
    if (pidfileWritten && args.pidfile !== undefined) fs.rmSync(args.pidfile, { force: true });
    fdSets.closeAll();
    monitor.dispose();
    await topology.close();
    closeDataPlane();
  };
  for (const q of args.qmp) {
    try {
      servers.push(await QmpServer.listen({ path: q.value.path, commands, version: monitor.version, fdSets }));
    } catch (e) {
      await teardown();
      say(`-qmp ${q.text}: ${e instanceof Error ? e.message : String(e)}`);
      return 1;
    }
  }
  // Exports after the netdevs (the TAP exists by the time the socket listens).
  for (const e of args.exports) {
    const v = e.value;
    const chardev = v.chardev !== undefined ? args.chardevs.find((c) => c.value.id === v.chardev)!.value : undefined;
    try {
      await exports.add({
        id: v.id,
        netdev: v.netdev,
        ...(v.numQueues !== undefined ? { numQueues: v.numQueues } : {}),
        ...(v.packed !== undefined ? { packed: v.packed } : {}),
        address: chardev
          ? chardev.server
            ? { kind: 'listen', path: chardev.path }
            : { kind: 'connect', path: chardev.path, reconnectSeconds: chardev.reconnect }
          : { kind: 'listen', path: v.addr!.path },
      });
    } catch (err) {
      await teardown();
      say(`-export ${e.text}: ${err instanceof Error ? err.message : String(err)}`);
      return 1;
    }
  }
  // Written last, as qemu-storage-daemon does: its existence means "ready".
  if (args.pidfile !== undefined) {
    try {
      fs.writeFileSync(args.pidfile, `${process.pid}\n`);
      pidfileWritten = true;
    } catch (err) {
      await teardown();
      say(`-pidfile ${args.pidfile}: ${err instanceof Error ? err.message : String(err)}`);
      return 1;
    }
  }
  monitor.on('event', (name, data) => {
    for (const s of servers) s.emitEvent(name, data);
  });

  const stdio = args.monitorStdio ? runStdioMonitor(hmp, opts.stdin ?? process.stdin, stdout) : undefined;

  // Run until asked to stop. A timer keeps the process alive when nothing else would
  // (no QMP socket, no terminal monitor).
  const keepAlive = setInterval(() => {}, 1 << 30);
  const handleSignals = opts.handleSignals ?? true;
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  let onSignal: ((sig: NodeJS.Signals) => void) | undefined;
  await new Promise<void>((resolve) => {
    monitor.once('quit', () => resolve());
    if (handleSignals) {
      onSignal = (sig) => {
        say(`terminating on signal ${SIGNAL_NUMBERS[sig] ?? sig}`);
        monitor.requestQuit('host-signal');
      };
      for (const s of signals) process.on(s, onSignal);
    }
  });
  clearInterval(keepAlive);
  stdio?.close();

  // A second signal while tearing down means "now": leave without cleaning up.
  if (onSignal) {
    for (const s of signals) process.off(s, onSignal);
    const hurry = (sig: NodeJS.Signals): void => {
      say(`second signal ${SIGNAL_NUMBERS[sig] ?? sig}: exiting without cleanup`);
      process.exit(1);
    };
    for (const s of signals) process.once(s, hurry);
    try {
      await teardown();
    } finally {
      for (const s of signals) process.off(s, hurry);
    }
  } else {
    await teardown();
  }
  return 0;
}
