// A short Node script in a child process, for behaviour that belongs to a whole process
// (exit with threads running, exceptions thrown from loop callbacks, GC of native objects):
// if it goes wrong, the child dies, not the test runner. Also the netplane command itself,
// started in the background and awaited until it serves (spawnCli).
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const repoRoot = path.join(__dirname, '..', '..');

/** Script prelude: the addon as `b`, found the way lib/native.ts finds it (node-gyp-build). */
export const loadAddon = `const b = require('node-gyp-build')(${JSON.stringify(repoRoot)});`;

export interface NodeRun {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** `node [...args] -e script` in the repo root; rejects (after SIGKILL) if it outlives timeoutMs. */
export function runNode(script: string, args: string[] = [], timeoutMs = 20000): Promise<NodeRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...args, '-e', script], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child did not exit within ${timeoutMs} ms; stdout=${stdout} stderr=${stderr}`));
    }, timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** The netplane command's entry point, run with `node --import tsx`. */
export const cliMain = path.join(repoRoot, 'lib', 'cli', 'main.ts');

export interface CliStartOptions {
  /** Passed as `-pidfile`; ready once it exists (netplane writes it once it serves). */
  pidfile?: string;
  /** Or ready once check() holds (runs without -pidfile); `what` ("the up script to run") names it. */
  ready?: { what: string; check: () => boolean };
  /** How long the start may take before the child is killed and the start fails. */
  timeoutMs?: number;
  /** 'pipe' to drive a `-monitor stdio`; /dev/null otherwise. */
  stdin?: 'pipe' | 'ignore';
  /** fds 3.. of the child (what it inherits besides stdio). */
  extraFds?: Array<number | 'ignore'>;
  env?: NodeJS.ProcessEnv;
}

export interface CliProcess {
  child: ChildProcess;
  /** Everything the child wrote so far. */
  stdout(): string;
  stderr(): string;
}

/**
 * `netplane ...args [-pidfile file]` in the background, resolved once it is ready (its pidfile
 * exists, or opts.ready holds). If it exits first or is not ready within opts.timeoutMs, it is
 * killed (SIGKILL, awaited) and the start rejects naming what it waited for, with its stderr.
 */
export async function spawnCli(args: string[], opts: CliStartOptions): Promise<CliProcess> {
  const { pidfile, ready } = opts;
  if ((pidfile === undefined) === (ready === undefined)) throw new Error('spawnCli: give pidfile or ready');
  const what = pidfile !== undefined ? `its pidfile ${pidfile} to appear` : ready!.what;
  const check = pidfile !== undefined ? () => fs.existsSync(pidfile) : ready!.check;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const argv = pidfile !== undefined ? [...args, '-pidfile', pidfile] : args;
  const child = spawn(process.execPath, ['--import', 'tsx', cliMain, ...argv], {
    cwd: repoRoot,
    stdio: [opts.stdin ?? 'ignore', 'pipe', 'pipe', ...(opts.extraFds ?? [])],
    env: opts.env ?? process.env,
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  // 'close', not 'exit': by then its stderr is read to the end, for the error.
  const closed = new Promise<void>((r) => child.once('close', () => r()));
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  const end = Date.now() + timeoutMs;
  let failure: string | undefined;
  for (;;) {
    if (check()) return { child, stdout: () => stdout, stderr: () => stderr };
    if (gone()) {
      failure = `exited (${child.exitCode ?? child.signalCode}) while waiting for ${what}`;
      break;
    }
    if (Date.now() > end) {
      failure = `timed out after ${timeoutMs} ms waiting for ${what}`;
      break;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  if (!gone()) child.kill('SIGKILL');
  await closed;
  throw new Error(`netplane ${argv.join(' ')} ${failure}; stderr: ${stderr}`);
}
