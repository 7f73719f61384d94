// Throwaway network namespaces and interfaces for tests and benchmarks. Every name starts
// with "np"; everything created is removed by dispose(), also on failure, and a process
// exit hook removes what a crashed test left.
import { execFileSync, spawn, type SpawnOptions } from 'node:child_process';
import * as fs from 'node:fs';

let counter = 0;
const live = new Set<string>();

process.on('exit', () => {
  for (const ns of live) {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
  }
});

// NETPLANE_NAME_TAG (letters and digits) goes right after "np": people sharing a machine
// tell their interfaces, namespaces and sockets apart by it.
const kNameTag = (process.env.NETPLANE_NAME_TAG ?? '').replace(/[^A-Za-z0-9]/g, '').slice(0, 4);

/** A unique name with the np prefix, at most 15 characters (IFNAMSIZ - 1). */
export function npName(tag: string): string {
  const id = `${process.pid.toString(36)}${(counter++).toString(36)}`;
  return `np${kNameTag}${tag}${id}`.slice(0, 15);
}

export function sh(cmd: string, args: string[], opts: { input?: string; allowFail?: boolean } = {}): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', input: opts.input, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (e) {
    if (opts.allowFail) return '';
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${err.stderr ?? err.message}`);
  }
}

export class NetNs implements Disposable {
  readonly name: string;

  constructor(tag = 'ns') {
    this.name = npName(tag);
    sh('ip', ['netns', 'add', this.name]);
    live.add(this.name);
    this.exec('ip', ['link', 'set', 'lo', 'up']);
  }

  /** Run a command inside the namespace and return its stdout. */
  exec(cmd: string, args: string[], opts: { allowFail?: boolean; input?: string } = {}): string {
    return sh('ip', ['netns', 'exec', this.name, cmd, ...args], opts);
  }

  /** Start a long-running command inside the namespace. */
  spawn(cmd: string, args: string[], opts: SpawnOptions = {}) {
    return spawn('ip', ['netns', 'exec', this.name, cmd, ...args], { stdio: 'pipe', ...opts });
  }

  /**
   * No IPv6 in this namespace (router solicitations and MLD reports would be frames nobody
   * sent on purpose). Written through /proc: sysctl is procps, which a fresh machine may lack.
   */
  disableIpv6(): void {
    this.exec('sh', ['-c', 'for c in all default; do echo 1 > /proc/sys/net/ipv6/conf/$c/disable_ipv6; done']);
  }

  /** Move a root-namespace interface into this namespace, address it and bring it up. */
  adopt(ifname: string, cidr?: string, mac?: string): void {
    sh('ip', ['link', 'set', ifname, 'netns', this.name]);
    if (mac) this.exec('ip', ['link', 'set', ifname, 'address', mac]);
    if (cidr) this.exec('ip', ['addr', 'add', cidr, 'dev', ifname]);
    this.exec('ip', ['link', 'set', ifname, 'up']);
  }

  dispose(): void {
    if (!live.delete(this.name)) return;
    sh('ip', ['netns', 'del', this.name], { allowFail: true });
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Whether a root-namespace interface exists. */
export function linkExists(ifname: string): boolean {
  return sh('ip', ['link', 'show', 'dev', ifname], { allowFail: true }) !== '';
}

/** ethtool -k feature state, e.g. 'tx-tcp-segmentation' -> 'on'. */
export function ethtoolFeature(ifname: string, name: string): string {
  const out = sh('ethtool', ['-k', ifname]);
  const m = new RegExp(`^\\s*${name}: (\\w+)`, 'm').exec(out);
  if (!m) throw new Error(`${name} not in ethtool -k output for ${ifname}`);
  return m[1]!;
}

/** Delete a root-namespace interface if it still exists. */
export function deleteLink(ifname: string): void {
  sh('ip', ['link', 'del', ifname], { allowFail: true });
}

/** Count of open fds of this process (for leak checks). */
export function openFdCount(): number {
  return fs.readdirSync('/proc/self/fd').length - 1;
}

/** This process's open fds, fd number -> what it points at. */
export function openFds(): Map<number, string> {
  const out = new Map<number, string>();
  for (const name of fs.readdirSync('/proc/self/fd')) {
    try {
      out.set(Number(name), fs.readlinkSync(`/proc/self/fd/${name}`));
    } catch {
      /* the directory listing's own fd, gone already */
    }
  }
  return out;
}

/**
 * The fds open now that were not open in `before` ("fd -> target", compared by identity)
 * and that the code under test could have leaked: a TAP, socket, pipe, eventfd or device,
 * or a dup of a file that was already open. A regular file opened meanwhile by libuv's
 * thread pool (tsx's cache, module loading) is neither, so it never fakes a leak; an fd
 * closed meanwhile never hides one. Synchronous: for checks around synchronous calls.
 */
export function leakedFdsSince(before: Map<number, string>): string[] {
  const known = new Set(before.values());
  const isNewRegularFile = (t: string) => t.startsWith('/') && !t.startsWith('/dev/') && !known.has(t);
  return [...openFds()]
    .filter(([fd, target]) => before.get(fd) !== target && !isNewRegularFile(target))
    .map(([fd, t]) => `${fd} -> ${t}`);
}

/**
 * The fds open now that were not open in `before` ("fd -> target"), after letting the
 * count settle. A leak check by identity: an unrelated fd closed meanwhile (tsx's cache
 * file, a finished child's pipe) does not hide a leak or fake one.
 */
export async function fdsOpenedSince(before: Map<number, string>): Promise<string[]> {
  let last = -1;
  for (let i = 0; i < 40 && openFdCount() !== last; i++) {
    last = openFdCount();
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return [...openFds()].filter(([fd, target]) => before.get(fd) !== target).map(([fd, t]) => `${fd} -> ${t}`);
}
