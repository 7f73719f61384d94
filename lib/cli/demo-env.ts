// What `netplane demo` needs around the forwarder: a privilege check, throwaway network
// namespaces, child processes inside them, and an interruption that every wait honours.
// Everything created here is recorded so that cleanup() can remove it, also after SIGINT.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Why the demo cannot create namespaces and TAPs here, or undefined when it can. */
export function demoPrivilegeProblem(): string | undefined {
  let capEff = 0n;
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) capEff = BigInt('0x' + m[1]);
  } catch {
    /* no /proc: treat as unprivileged */
  }
  const CAP_NET_ADMIN = 12n;
  if ((capEff & (1n << CAP_NET_ADMIN)) === 0n) {
    return 'netplane demo needs CAP_NET_ADMIN: it creates two network namespaces and two TAP devices. Run it as root (sudo npm run demo).';
  }
  try {
    fs.accessSync('/dev/net/tun', fs.constants.R_OK | fs.constants.W_OK);
  } catch {
    return 'netplane demo needs read/write access to /dev/net/tun (load the tun module: modprobe tun).';
  }
  if (!onPath('ip')) return "netplane demo needs the 'ip' command (iproute2).";
  return undefined;
}

export function onPath(cmd: string): boolean {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    try {
      fs.accessSync(path.join(dir || '.', cmd), fs.constants.X_OK);
      return true;
    } catch {
      /* next */
    }
  }
  return false;
}

/** The demo was interrupted by a signal; carries the signal name. */
export class Interrupted extends Error {
  constructor(readonly signal: NodeJS.Signals) {
    super(`interrupted by ${signal}`);
  }
}

/** Run a short command; throws with its stderr on failure. */
export function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(err.stderr || err.message).trim()}`);
  }
}

/**
 * The demo's resources and its interruption. A signal aborts every wait (sleep, child exit)
 * with Interrupted; cleanup() kills the children and deletes the namespaces, whatever state
 * the demo reached.
 */
export class DemoEnv {
  readonly #abort = new AbortController();
  readonly #children = new Set<ChildProcess>();
  readonly #namespaces: string[] = [];
  #signal: NodeJS.Signals | undefined;

  /** The first signal interrupts; later ones only say that cleanup is under way. */
  installSignalHandlers(say: (line: string) => void): () => void {
    const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
    const onSignal = (sig: NodeJS.Signals): void => {
      if (this.#signal === undefined) {
        this.#signal = sig;
        this.#abort.abort(new Interrupted(sig));
      } else {
        say(`${sig} again: still cleaning up (namespaces, TAPs, child processes), a moment please`);
      }
    };
    for (const s of signals) process.on(s, onSignal);
    return () => {
      for (const s of signals) process.off(s, onSignal);
    };
  }

  get interruptedBy(): NodeJS.Signals | undefined {
    return this.#signal;
  }

  /** Throw Interrupted if a signal came. */
  check(): void {
    if (this.#signal !== undefined) throw new Interrupted(this.#signal);
  }

  sleep(ms: number): Promise<void> {
    this.check();
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(this.#abort.signal.reason);
      };
      const timer = setTimeout(() => {
        this.#abort.signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      this.#abort.signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  // ---- namespaces ----------------------------------------------------------------------

  /** Create a namespace (recorded for cleanup), loopback up, IPv6 off (no RS/MLD noise). */
  addNamespace(name: string): void {
    sh('ip', ['netns', 'add', name]);
    this.#namespaces.push(name);
    this.nsExec(name, 'ip', ['link', 'set', 'lo', 'up']);
    // Written through /proc: sysctl is procps, which a fresh machine may lack.
    this.nsExec(name, 'sh', ['-c', 'for c in all default; do echo 1 > /proc/sys/net/ipv6/conf/$c/disable_ipv6; done']);
  }

  nsExec(ns: string, cmd: string, args: string[]): string {
    return sh('ip', ['netns', 'exec', ns, cmd, ...args]);
  }

  /** Move a root-namespace interface into `ns`, address it and bring it up. */
  adopt(ns: string, ifname: string, cidr: string): void {
    sh('ip', ['link', 'set', ifname, 'netns', ns]);
    this.nsExec(ns, 'ip', ['addr', 'add', cidr, 'dev', ifname]);
    this.nsExec(ns, 'ip', ['link', 'set', ifname, 'up']);
  }

  // ---- child processes -----------------------------------------------------------------

  /** Start `cmd` inside `ns` (`ip netns exec` becomes the command: the pid is the command's). */
  spawnIn(ns: string, cmd: string, args: string[]): ChildProcess {
    this.check();
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#children.add(child);
    child.once('exit', () => this.#children.delete(child));
    child.on('error', () => this.#children.delete(child));
    return child;
  }

  /** Run a child to its end and return its stdout; Interrupted on a signal. */
  async run(
    ns: string,
    cmd: string,
    args: string[],
    limitMs: number,
  ): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const child = this.spawnIn(ns, cmd, args);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const code = await this.waitExit(child, limitMs);
    return { code, stdout, stderr };
  }

  /** Wait for a child to exit (killed after limitMs); Interrupted on a signal. */
  waitExit(child: ChildProcess, limitMs: number): Promise<number | null> {
    this.check();
    return new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#abort.signal.removeEventListener('abort', onAbort);
      };
      const onAbort = (): void => {
        done();
        reject(this.#abort.signal.reason);
      };
      const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
      this.#abort.signal.addEventListener('abort', onAbort, { once: true });
      if (child.exitCode !== null || child.signalCode !== null) {
        done();
        resolve(child.exitCode);
        return;
      }
      child.once('exit', (code) => {
        done();
        resolve(code);
      });
      child.once('error', (e) => {
        done();
        reject(e);
      });
    });
  }

  // ---- cleanup -------------------------------------------------------------------------

  /** Stop every child still running: SIGTERM, then SIGKILL after a second. */
  async stopChildren(): Promise<void> {
    await Promise.all([...this.#children].map((c) => stopChild(c)));
  }

  /** Delete the namespaces this demo created; returns what could not be deleted. */
  deleteNamespaces(): string[] {
    const problems: string[] = [];
    for (const ns of this.#namespaces.splice(0).reverse()) {
      try {
        sh('ip', ['netns', 'del', ns]);
      } catch (e) {
        problems.push((e as Error).message);
      }
    }
    return problems;
  }

  get namespaces(): readonly string[] {
    return this.#namespaces;
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 1000);
  await exited;
  clearTimeout(timer);
}

/** Namespaces (of `names`) that still exist. */
export function liveNamespaces(names: readonly string[]): string[] {
  let list = '';
  try {
    list = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return [];
  }
  const live = new Set(list.split('\n').map((l) => l.split(' ')[0]));
  return names.filter((n) => live.has(n));
}
