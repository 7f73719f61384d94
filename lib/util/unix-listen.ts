// Listening unix sockets that only their owner can reach at first: bound inside a fresh
// private directory next to the target, made 0600, then renamed into place, so no moment
// exists where the socket is reachable with a wider mode, and the process umask is never
// touched. A stale socket (nobody listening: a killed instance) is replaced; a live one or a
// file that is not a socket is refused. Used by the QMP server and the vhost-user exports.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

/**
 * Before binding: a live server at the path is an error (QEMU would silently steal it); a
 * stale socket left by a crash may be replaced; anything else is not ours to replace.
 */
export async function refuseLiveOrForeign(target: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(target);
  } catch {
    return; // nothing there
  }
  if (!st.isSocket()) throw new Error(`Failed to bind socket to ${target}: file exists and is not a socket`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect(target);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) throw new Error(`Failed to bind socket to ${target}: Address already in use`);
}

/** Bind `server` at `target` (0600, private directory, rename); returns the socket's inode. */
export async function listenPrivate(server: net.Server, target: string, prefix: string): Promise<bigint> {
  const abs = path.resolve(target);
  await refuseLiveOrForeign(abs);
  const dir = fs.mkdtempSync(path.join(path.dirname(abs), prefix));
  const tmp = path.join(dir, 'sock');
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(tmp, () => {
        server.off('error', reject);
        resolve();
      });
    });
    fs.chmodSync(tmp, 0o600);
    fs.renameSync(tmp, abs);
  } catch (e) {
    server.close();
    throw e;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return fs.statSync(abs, { bigint: true }).ino;
}

/** Remove the socket file only if it is still ours (someone may have replaced it). */
export function removeSocketIfOurs(target: string, ino: bigint | undefined): void {
  try {
    if (ino !== undefined && fs.lstatSync(target, { bigint: true }).ino === ino) fs.unlinkSync(target);
  } catch {
    /* already gone */
  }
}
