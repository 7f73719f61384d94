// Child processes for the benchmark: each runs in its own process group (so a forwarder's or
// trafgen's helpers die with it), is tracked until it exits, and is killed by group on
// cleanup. CPU time of a whole group is read from /proc.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';

export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Everything written to stdout and stderr so far (stderr capped at 64 KiB). */
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or 128 + signal number) once the process has exited. */
  readonly exited: Promise<number>;
  hasExited(): boolean;
}

const live = new Set<Proc>();

/** Start `cmd` in a new process group. */
export function start(name: string, cmd: string, args: string[], opts: { cwd?: string } = {}): Proc {
  const child = spawn(cmd, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'], cwd: opts.cwd });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err = (err + d).slice(-65536);
  });
  let done = false;
  const exited = new Promise<number>((resolve) => {
    child.on('error', (e) => {
      err += `\n${name}: ${e.message}`;
      done = true;
      resolve(127);
    });
    child.on('close', (code, signal) => {
      done = true;
      resolve(code ?? 128 + (signal ? os.constants.signals[signal] : 0));
    });
  });
  const p: Proc = {
    name,
    child,
    pid: child.pid ?? -1,
    stdout: () => out,
    stderr: () => err,
    exited,
    hasExited: () => done,
  };
  live.add(p);
  void exited.then(() => live.delete(p));
  return p;
}

function signalGroup(p: Proc, sig: NodeJS.Signals): void {
  if (p.pid <= 0) return;
  try {
    process.kill(-p.pid, sig);
  } catch {
    /* group already gone */
  }
}

/** Ask the group to stop (SIGINT/SIGTERM), then SIGKILL after `graceMs`. */
export async function stop(p: Proc, sig: NodeJS.Signals = 'SIGTERM', graceMs = 3000): Promise<number> {
  if (!p.hasExited()) signalGroup(p, sig);
  const timer = setTimeout(() => signalGroup(p, 'SIGKILL'), graceMs);
  const code = await p.exited;
  clearTimeout(timer);
  signalGroup(p, 'SIGKILL'); // helpers left in the group
  return code;
}

/** Run to completion with a time limit; the group is killed when the limit passes. */
export async function run(
  name: string,
  cmd: string,
  args: string[],
  limitMs: number,
): Promise<{ code: number; stdout: string; stderr: string; timedOut: boolean }> {
  const p = start(name, cmd, args);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void stop(p, 'SIGTERM', 1000);
  }, limitMs);
  const code = await p.exited;
  clearTimeout(timer);
  signalGroup(p, 'SIGKILL');
  return { code, stdout: p.stdout(), stderr: p.stderr(), timedOut };
}

/** Wait until `text` appears on the process's stdout, or fail after `limitMs`. */
export async function waitForOutput(p: Proc, text: string, limitMs: number): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!p.stdout().includes(text)) {
    if (p.hasExited()) throw new Error(`${p.name} exited before printing "${text}": ${tail(p.stderr())}`);
    if (Date.now() > deadline) throw new Error(`${p.name} did not print "${text}" within ${limitMs} ms`);
    await sleep(20);
  }
}

/** Kill every group still running, synchronously (for signal handlers and exit). */
export function killAllSync(): void {
  for (const p of live) signalGroup(p, 'SIGTERM');
  if (live.size > 0) sleepSync(300);
  for (const p of live) signalGroup(p, 'SIGKILL');
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** The first lines of a program's output, joined on one line (where errors usually are). */
export function head(text: string, lines = 2): string {
  return text.trim().split('\n').slice(0, lines).join(' | ') || '(no output)';
}

export function tail(text: string, lines = 5): string {
  return text.trim().split('\n').slice(-lines).join(' | ') || '(no output)';
}

export interface GroupCpu {
  /** utime + stime of every process in the group, in seconds (clock-tick resolution). */
  tickSeconds: number;
  /** Run time of every thread in the group from schedstat, in seconds (ns resolution). */
  schedSeconds: number;
}

const kClockTicks = 100; // USER_HZ on Linux (sysconf(_SC_CLK_TCK))

/**
 * The live processes of process group `pgid`: pid and the fields of /proc/PID/stat after
 * the ")" that closes comm (state is [0], pgrp [2], utime [11], stime [12]).
 */
export function groupProcesses(pgid: number): Array<{ pid: number; stat: string[] }> {
  const out: Array<{ pid: number; stat: string[] }> = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(f[2]) === pgid) out.push({ pid: Number(entry), stat: f });
  }
  return out;
}

/** CPU time used so far by every live process in the process group `pgid`. */
export function groupCpu(pgid: number): GroupCpu {
  let ticks = 0;
  let schedNs = 0;
  for (const { pid, stat } of groupProcesses(pgid)) {
    ticks += Number(stat[11]) + Number(stat[12]);
    try {
      for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
        schedNs += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      }
    } catch {
      /* exited meanwhile */
    }
  }
  return { tickSeconds: ticks / kClockTicks, schedSeconds: schedNs / 1e9 };
}

/** All CPUs' time so far from /proc/stat: [total, idle + iowait], in ticks. */
export function machineTimes(): [number, number] {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return [f.reduce((a, b) => a + b, 0), f[3]! + f[4]!];
}

/** Percent of all CPUs busy between two machineTimes() samples. */
export function busyBetween(a: [number, number], b: [number, number]): number {
  return b[0] === a[0] ? 0 : (1 - (b[1] - a[1]) / (b[0] - a[0])) * 100;
}

/** Percent of all CPUs busy (not idle or iowait) over `ms`. */
export async function machineBusyPct(ms: number): Promise<number> {
  const a = machineTimes();
  await sleep(ms);
  return busyBetween(a, machineTimes());
}
