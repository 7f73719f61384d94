// A short Node script in a child process, for behaviour that belongs to a whole process
// (exit with threads running, exceptions thrown from loop callbacks, GC of native objects):
// if it goes wrong, the child dies, not the test runner.
import { spawn } from 'node:child_process';
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
