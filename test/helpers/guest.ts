// A real Linux guest for the integration tests: the kernel and initramfs that
// scripts/build-guest.sh builds (cached), booted in QEMU under TCG, its serial console
// (ttyS0) logged to a file, and a command shell (scripts/guest-init.sh speaks the protocol)
// on a virtio-serial port wired to QEMU's stdio pipes: unlike the emulated UART, it never
// loses or repeats a byte when both sides talk at once. The caller adds the NICs as QEMU
// arguments. Every wait is bounded; a failed boot or command says why and shows the tail
// of the console.
//
//   await using guest = await Guest.boot({ qemuArgs: ['-netdev', ..., '-device', 'virtio-net-pci,...'] });
//   const { status, output } = await guest.run('ip addr add 10.2.0.2/24 dev eth0');
// In the guest: busybox (ip, ping, nc, dd, ...), ethtool; eth0 (and eth1) are up at boot,
// without addresses; carrier may follow a moment later (waitFor it). For `ethtool -L eth0
// combined N` the NIC needs mq=on,vectors=2N+2 and N queues on its netdev. Add romfile= to a
// virtio-net-pci device: the iPXE ROM only slows the boot.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { settlesWithin } from './qemu';

const BUILD_SCRIPT = path.join(__dirname, '..', '..', 'scripts', 'build-guest.sh');
const QEMU = 'qemu-system-x86_64';
const CONSOLE_TAIL = 3000;
// eslint-disable-next-line no-control-regex -- ESC is exactly what this strips
const TERMINAL_ESCAPE = /\x1b(\[[0-9;?]*[A-Za-z]|c)/g;
// NETPLANE_GUEST_TRACE=1: each command with its time and status on stderr.
const TRACE = process.env.NETPLANE_GUEST_TRACE === '1';

export interface GuestImage {
  kernel: string;
  initrd: string;
}

let image: Promise<GuestImage> | undefined;

/**
 * The guest's kernel and initramfs, built by scripts/build-guest.sh if the cache lacks them
 * (the first build downloads about 28 MB of .debs; later calls return at once). Once per process.
 */
export function ensureGuestImage(timeoutMs = 600_000): Promise<GuestImage> {
  image ??= new Promise<GuestImage>((resolve, reject) => {
    execFile(
      'bash',
      [BUILD_SCRIPT],
      { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        const kernel = /^KERNEL=(.+)$/m.exec(stdout)?.[1];
        const initrd = /^INITRD=(.+)$/m.exec(stdout)?.[1];
        if (err || !kernel || !initrd) {
          reject(
            new Error(
              `scripts/build-guest.sh failed (${err?.message ?? 'no KERNEL=/INITRD= lines'}):\n${stderr.slice(-CONSOLE_TAIL)}`,
            ),
          );
        } else {
          resolve({ kernel, initrd });
        }
      },
    );
  });
  // A failed build is not cached: the next test tries again and reports its own error.
  image.catch(() => (image = undefined));
  return image;
}

export interface GuestOptions {
  /** QEMU arguments for the NIC(s), e.g. ['-netdev', 'tap,id=n0,...', '-device', 'virtio-net-pci,netdev=n0']. */
  qemuArgs?: string[];
  /** Guest RAM in MiB (default 256). */
  memoryMb?: number;
  /** RAM from a shared memfd (-object memory-backend-memfd,share=on -numa node,memdev=mem): vhost-user needs it. */
  sharedMemory?: boolean;
  /** vCPUs (default 1: TCG boots fastest with one). */
  smp?: number;
  /** Start QEMU inside this network namespace (ip netns exec): the TAPs it creates are born there. */
  netns?: string;
  /** Also open a QMP socket (its path is guest.qmpPath), e.g. for set_link. */
  qmp?: boolean;
  /** Appended to the kernel command line. */
  append?: string;
  /** Bound on the boot, from spawning QEMU to the shell's ready marker (default 90 s). */
  bootTimeoutMs?: number;
}

export interface RunResult {
  status: number;
  output: string;
}

export interface RunOptions {
  /** Bound on the command (default 30 s). The guest kills it then; the host gives up 5 s later. */
  timeoutMs?: number;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  // A test that crashed before stop(): no QEMU may outlive the runner.
  for (const child of live) child.kill('SIGKILL');
});

interface Pending {
  id: number;
  cmd: string;
  timeoutMs: number;
  start: number;
  resolve: (r: RunResult) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class Guest implements AsyncDisposable {
  /** What the guest's shell printed (the protocol's markers included): the unanswered part and a tail before it. */
  shell = '';
  /** QEMU's own stderr. */
  stderr = '';
  /** Milliseconds from spawning QEMU to the shell's ready marker. */
  bootMs = 0;
  /** uname -r of the guest. */
  kernelVersion = '';
  readonly qmpPath: string | undefined;
  /** The serial console's log file (kernel messages, /init's own errors). */
  readonly consolePath: string;

  private exitCode: number | null = null;
  private exitSignal: NodeJS.Signals | null = null;
  private readonly exited: Promise<void>;
  private nextId = 1;
  private queue: Promise<unknown> = Promise.resolve();
  private pending: Pending | undefined;
  private broken: string | undefined;
  private onShell: (() => void) | undefined;

  private constructor(
    private readonly child: ChildProcess,
    private readonly dir: string,
    qmp: boolean,
  ) {
    this.qmpPath = qmp ? path.join(dir, 'qmp.sock') : undefined;
    this.consolePath = path.join(dir, 'console.log');
    child.stdout!.setEncoding('utf8').on('data', (t: string) => {
      this.shell += t;
      this.onShell?.();
      this.checkPending();
    });
    child.stderr!.setEncoding('utf8').on('data', (t: string) => (this.stderr += t));
    // A write after QEMU died must surface as the command's error, not as an uncaught EPIPE.
    child.stdin!.on('error', () => {});
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        live.delete(child);
        this.exitCode = code;
        this.exitSignal = signal;
        this.onShell?.();
        this.failPending(`QEMU exited (code ${code}, signal ${signal})`);
        resolve();
      }),
    );
  }

  /** Build (cached) and boot the guest; resolves when its shell is ready. */
  static async boot(opts: GuestOptions = {}): Promise<Guest> {
    const img = await ensureGuestImage();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'np-guest-'));
    const mem = opts.memoryMb ?? 256;
    const append = ['console=ttyS0', 'quiet', 'panic=-1', opts.append ?? ''].join(' ').trim();
    const args = [
      '-accel',
      'tcg',
      '-M',
      'pc',
      '-m',
      String(mem),
      '-smp',
      String(opts.smp ?? 1),
      '-nographic',
      '-no-reboot',
      '-nodefaults',
      '-no-user-config',
      '-monitor',
      'none',
      '-chardev',
      `file,id=npconsole,path=${path.join(dir, 'console.log')}`,
      '-serial',
      'chardev:npconsole',
      // The shell's port on stdio, in a slot of its own at the end, so that the caller's NICs
      // get the slots (and eth names) they would get without it.
      '-device',
      'virtio-serial-pci,id=npvs,addr=0x1f',
      '-chardev',
      'stdio,id=npshell,signal=off',
      '-device',
      'virtserialport,bus=npvs.0,chardev=npshell,name=np.shell',
      '-kernel',
      img.kernel,
      '-initrd',
      img.initrd,
      '-append',
      append,
    ];
    if (opts.sharedMemory) {
      args.push('-object', `memory-backend-memfd,id=mem,size=${mem}M,share=on`, '-numa', 'node,memdev=mem');
    }
    if (opts.qmp) args.push('-qmp', `unix:${path.join(dir, 'qmp.sock')},server=on,wait=off`);
    args.push(...(opts.qemuArgs ?? []));

    const [cmd, argv] = opts.netns ? ['ip', ['netns', 'exec', opts.netns, QEMU, ...args]] : [QEMU, args];
    const start = performance.now();
    const child = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    live.add(child);
    const guest = new Guest(child, dir, opts.qmp ?? false);
    try {
      const m = await guest.waitShell(/@@np-ready (\S+)@@\n/, opts.bootTimeoutMs ?? 90_000);
      guest.kernelVersion = m[1];
      guest.bootMs = Math.round(performance.now() - start);
      return guest;
    } catch (e) {
      // Describe after QEMU is gone (its last words are in) and before its files are.
      await guest.terminate().catch(() => {});
      const why = `guest did not boot: ${(e as Error).message}\n${guest.describe()}`;
      await guest.stop();
      throw new Error(why);
    }
  }

  /** Wait until the shell's output matches `re` (bounded); rejects if QEMU exits first. */
  private waitShell(re: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error(`no ${re} from the shell within ${timeoutMs} ms`)), timeoutMs);
      const finish = (err?: Error, m?: RegExpExecArray) => {
        clearTimeout(timer);
        this.onShell = undefined;
        if (err) reject(err);
        else resolve(m!);
      };
      this.onShell = () => {
        const m = re.exec(this.shell);
        if (m) finish(undefined, m);
        else if (this.exitCode !== null || this.exitSignal !== null) {
          finish(new Error(`QEMU exited (code ${this.exitCode}, signal ${this.exitSignal})`));
        }
      };
      this.onShell();
    });
  }

  /** The serial console so far: firmware, kernel messages, /init's own errors. */
  console(): string {
    try {
      return fs.readFileSync(this.consolePath, 'utf8');
    } catch {
      return '';
    }
  }

  /** QEMU's stderr, the console tail and the shell's tail, for error messages. */
  describe(): string {
    const stderr = this.stderr.trim() ? `--- QEMU stderr ---\n${this.stderr.slice(-CONSOLE_TAIL)}\n` : '';
    // Without the firmware's terminal escapes, which only garble a test log.
    const tail = this.console().slice(-CONSOLE_TAIL).replace(TERMINAL_ESCAPE, '');
    const shell = this.shell ? `\n--- shell tail ---\n${this.shell.slice(-CONSOLE_TAIL)}` : '';
    return `${stderr}--- console tail ---\n${tail}${shell}`;
  }

  /**
   * Run a shell command line in the guest (busybox sh, stdin /dev/null, stderr into the
   * output). Commands run one at a time, in call order. Rejects if it outlives timeoutMs.
   */
  run(cmd: string, opts: RunOptions = {}): Promise<RunResult> {
    const result = this.queue.then(() => this.runNow(cmd, opts.timeoutMs ?? 30_000));
    this.queue = result.catch(() => {});
    return result;
  }

  /** run(), rejecting unless the status is 0; resolves with the output. */
  async check(cmd: string, opts: RunOptions = {}): Promise<string> {
    const r = await this.run(cmd, opts);
    if (r.status !== 0) throw new Error(`guest command failed with status ${r.status}: ${cmd}\n${r.output}`);
    return r.output;
  }

  /** Run `cmd` every intervalMs until predicate(result) holds; rejects with the last result after timeoutMs. */
  async waitFor(
    cmd: string,
    predicate: (r: RunResult) => boolean,
    timeoutMs: number,
    intervalMs = 200,
  ): Promise<RunResult> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      const r = await this.run(cmd, { timeoutMs: Math.max(1000, left) });
      if (predicate(r)) return r;
      if (Date.now() + intervalMs > deadline) {
        throw new Error(
          `guest: "${cmd}" did not reach the expected result within ${timeoutMs} ms; last status ${r.status}:\n${r.output}`,
        );
      }
      await new Promise((res) => setTimeout(res, intervalMs));
    }
  }

  private runNow(cmd: string, timeoutMs: number): Promise<RunResult> {
    if (this.broken) return Promise.reject(new Error(`guest unusable (${this.broken}); not running: ${cmd}`));
    const id = this.nextId++;
    const secs = Math.max(1, Math.ceil(timeoutMs / 1000));
    return new Promise<RunResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        // The guest did not even answer after killing the command: its shell is gone.
        this.broken = `no answer to command ${id} within ${timeoutMs + 5000} ms`;
        this.pending = undefined;
        reject(
          new Error(
            `guest command timed out after ${timeoutMs} ms and the shell did not answer: ${cmd}\n${this.describe()}`,
          ),
        );
      }, timeoutMs + 5000);
      this.pending = { id, cmd, timeoutMs, start: performance.now(), resolve, reject, timer };
      this.child.stdin!.write(`${id} ${secs} ${Buffer.from(cmd).toString('base64')}\n`);
      if (this.exitCode !== null || this.exitSignal !== null) this.failPending('QEMU is not running');
    });
  }

  private checkPending(): void {
    const p = this.pending;
    if (!p) return;
    const begin = `@@np-begin ${p.id}@@\n`;
    const b = this.shell.lastIndexOf(begin);
    if (b < 0) return;
    const endRe = new RegExp(`\\n@@np-end ${p.id} (\\d+)@@\\n`, 'g');
    endRe.lastIndex = b + begin.length - 1;
    const m = endRe.exec(this.shell);
    if (!m) return;
    clearTimeout(p.timer);
    this.pending = undefined;
    const output = this.shell.slice(b + begin.length, m.index);
    // What is answered is not searched again; a tail stays for error messages.
    const rest = this.shell.slice(m.index + m[0].length);
    this.shell = this.shell.slice(Math.max(0, m.index + m[0].length - CONSOLE_TAIL), m.index + m[0].length) + rest;
    const status = Number(m[1]);
    const elapsed = performance.now() - p.start;
    if (TRACE) process.stderr.write(`guest: ${Math.round(elapsed)} ms, status ${status}: ${p.cmd}\n`);
    // The guest kills a command that ran out of time, and its process group, with SIGKILL: 128 + 9.
    if (status === 137 && elapsed >= Math.ceil(p.timeoutMs / 1000) * 1000 - 100) {
      p.reject(new Error(`guest command timed out after ${p.timeoutMs} ms: ${p.cmd}\n${output}`));
    } else {
      p.resolve({ status, output });
    }
  }

  private failPending(why: string): void {
    const p = this.pending;
    if (!p) return;
    clearTimeout(p.timer);
    this.pending = undefined;
    this.broken = why;
    p.reject(new Error(`${why} while running: ${p.cmd}\n${this.describe()}`));
  }

  /** Kill QEMU (TERM, then KILL; bounded) and remove the temp dir. Idempotent. */
  async stop(): Promise<void> {
    try {
      await this.terminate();
    } finally {
      fs.rmSync(this.dir, { recursive: true, force: true });
    }
  }

  private async terminate(): Promise<void> {
    if (this.exitCode !== null || this.exitSignal !== null) return;
    this.child.kill('SIGTERM');
    if (await this.waitExit(5000)) return;
    this.child.kill('SIGKILL');
    if (!(await this.waitExit(5000))) throw new Error(`QEMU (pid ${this.child.pid}) survived SIGKILL for 5 s`);
  }

  private async waitExit(timeoutMs: number): Promise<boolean> {
    return this.exitCode !== null || this.exitSignal !== null || settlesWithin(this.exited, timeoutMs);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
