// QEMU 7.2 as a reference implementation for differential tests: start it without a guest
// (-S, TCG, no display, no default devices), talk QMP, and make sure it is gone afterwards
// together with any TAP it created. Every wait is bounded.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { QmpTestClient } from './qmp-client';

export const QEMU = 'qemu-system-x86_64';

/** Why QEMU cannot be used here, or undefined when it can. */
export function qemuMissing(): string | undefined {
  const r = spawnSync(QEMU, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  if (r.error || r.status !== 0)
    return `needs ${QEMU} (Debian package qemu-system-x86): bash scripts/install-test-deps.sh`;
  if (!/version 7\.2\./.test(r.stdout)) return `${QEMU} is not QEMU 7.2 (${r.stdout.split('\n')[0]})`;
  return undefined;
}

/** Base arguments: a PC machine (so PCI NICs exist), stopped, no guest, no defaults. */
export const QEMU_BASE_ARGS = ['-M', 'pc', '-S', '-nodefaults', '-display', 'none', '-accel', 'tcg'];

function linkExists(ifname: string): boolean {
  return fs.existsSync(`/sys/class/net/${ifname}`);
}

async function waitUntil(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return cond();
}

export function tempDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `np-${tag}-`));
}

/**
 * A process that speaks QMP on a unix socket (QEMU or netplane's CLI). The caller gives the
 * program and its arguments without -qmp; we add it and wait for the socket.
 */
export class QmpProcess implements AsyncDisposable {
  stderr = '';
  stdout = '';
  exitCode: number | null = null;
  exitSignal: NodeJS.Signals | null = null;
  private readonly exited: Promise<void>;

  private constructor(
    readonly child: ChildProcess,
    readonly socketPath: string,
    readonly dir: string,
    readonly ifnames: readonly string[],
  ) {
    child.stdout?.setEncoding('utf8').on('data', (t: string) => (this.stdout += t));
    child.stderr?.setEncoding('utf8').on('data', (t: string) => (this.stderr += t));
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.exitCode = code;
        this.exitSignal = signal;
        resolve();
      }),
    );
  }

  /**
   * Start `program args... -qmp unix:SOCK,server=on,wait=off` and wait until the socket
   * accepts connections. `ifnames` are TAPs the process will create: checked gone on stop().
   */
  static async start(
    program: string,
    args: string[],
    opts: { ifnames?: string[]; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
  ): Promise<QmpProcess> {
    const dir = tempDir('qmp');
    const sock = path.join(dir, 'qmp.sock');
    const child = spawn(program, [...args, '-qmp', `unix:${sock},server=on,wait=off`], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
    });
    const p = new QmpProcess(child, sock, dir, opts.ifnames ?? []);
    const ok = await waitUntil(
      () => fs.existsSync(sock) || p.exitCode !== null || p.exitSignal !== null,
      opts.timeoutMs ?? 15_000,
    );
    if (!ok || !fs.existsSync(sock)) {
      await p.stop();
      throw new Error(
        `${program} did not open its QMP socket (exit ${p.exitCode}, signal ${p.exitSignal}): ${p.stderr}`,
      );
    }
    return p;
  }

  /** A negotiated QMP connection. */
  async connect(): Promise<QmpTestClient> {
    const { client } = await QmpTestClient.open(this.socketPath);
    return client;
  }

  /** Wait for exit (bounded); true if it exited. */
  async waitExit(timeoutMs: number): Promise<boolean> {
    return this.exitCode !== null || this.exitSignal !== null || settlesWithin(this.exited, timeoutMs);
  }

  /** Kill it (TERM, then KILL), wait for the TAPs it made to vanish, remove the temp dir. */
  async stop(): Promise<void> {
    if (this.exitCode === null && this.exitSignal === null) {
      this.child.kill('SIGTERM');
      if (!(await this.waitExit(5_000))) {
        this.child.kill('SIGKILL');
        await this.waitExit(5_000);
      }
    }
    const gone = await waitUntil(() => this.ifnames.every((n) => !linkExists(n)), 5_000);
    fs.rmSync(this.dir, { recursive: true, force: true });
    if (!gone) {
      const left = this.ifnames.filter(linkExists);
      for (const n of left) spawnSync('ip', ['link', 'del', n], { timeout: 5_000 });
      throw new Error(`interfaces left behind after exit: ${left.join(', ')}`);
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/** Whether `p` settles within `timeoutMs` (the timer is cleared either way). */
export async function settlesWithin(p: Promise<unknown>, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((r) => (timer = setTimeout(() => r(false), timeoutMs)));
  const done = await Promise.race([p.then(() => true as const), timedOut]);
  clearTimeout(timer);
  return done;
}

/** Run a command line that should fail at startup; returns its exit code and stderr. */
export function runToCompletion(
  program: string,
  args: string[],
  timeoutMs = 15_000,
): { status: number | null; stderr: string; stdout: string } {
  const r = spawnSync(program, args, {
    encoding: 'utf8',
    timeout: timeoutMs,
    killSignal: 'SIGKILL',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return { status: r.status, stderr: r.stderr ?? '', stdout: r.stdout ?? '' };
}
