// QMP's fd commands, as QEMU 7.2 answers them: getfd / closefd (named fds of this monitor)
// and add-fd / remove-fd / query-fdsets (the process's fd sets). The fd a getfd or add-fd
// uses is the first one that came with the client's latest message carrying fds
// (SCM_RIGHTS on the unix socket); see monitor-fds.ts for who owns what and when it closes.
import { NetplaneError } from '../errors';
import { closeQuietly, type FdSets, type NamedFds } from './monitor-fds';
import type { QmpCommand } from './qmp-types';

/** What the fd commands need from the connection and monitor running them. */
export interface QmpFdContext {
  /** The first fd of the latest message that carried any (the rest are closed), or undefined. */
  takeReceivedFd(): number | undefined;
  namedFds: NamedFds;
  fdSets: FdSets;
}

const NO_FD = 'No file descriptor supplied via SCM_RIGHTS';

function fail(message: string): NetplaneError {
  return new NetplaneError('NETPLANE_INVALID_OPTION', message);
}

function receivedFd(ctx: QmpFdContext): number {
  const fd = ctx.takeReceivedFd();
  if (fd === undefined) throw fail(NO_FD);
  return fd;
}

export function qmpFdCommands(ctx: QmpFdContext): ReadonlyMap<string, QmpCommand> {
  return new Map<string, QmpCommand>([
    [
      'getfd',
      {
        args: { fdname: { type: 'string' } },
        run: (a) => {
          const name = a['fdname'] as string;
          const fd = receivedFd(ctx);
          // A leading digit would read as an fd number in fd=/fds= (QEMU's monitor_fd_param).
          if (/^[0-9]/.test(name)) {
            closeQuietly(fd);
            throw fail("Parameter 'fdname' expects a name not starting with a digit");
          }
          ctx.namedFds.set(name, fd);
        },
      },
    ],
    [
      'closefd',
      {
        args: { fdname: { type: 'string' } },
        run: (a) => {
          const name = a['fdname'] as string;
          if (!ctx.namedFds.close(name)) throw fail(`File descriptor named '${name}' not found`);
        },
      },
    ],
    [
      'add-fd',
      {
        args: { 'fdset-id': { type: 'integer', optional: true }, opaque: { type: 'string', optional: true } },
        run: (a) => {
          const fd = receivedFd(ctx);
          try {
            const info = ctx.fdSets.add(
              fd,
              a['fdset-id'] as number | bigint | undefined,
              a['opaque'] as string | undefined,
            );
            return { fd: info.fd, 'fdset-id': info['fdset-id'] }; // QEMU prints "fd" first
          } catch (e) {
            closeQuietly(fd);
            throw e;
          }
        },
      },
    ],
    [
      'remove-fd',
      {
        args: { 'fdset-id': { type: 'integer' }, fd: { type: 'integer', optional: true } },
        run: (a) => ctx.fdSets.remove(a['fdset-id'] as number | bigint, a['fd'] as number | bigint | undefined),
      },
    ],
    [
      'query-fdsets',
      {
        // QEMU prints each set's "fds" before its "fdset-id".
        run: () => ctx.fdSets.query().map((s) => ({ fds: s.fds, 'fdset-id': s['fdset-id'] })),
      },
    ],
  ]);
}
