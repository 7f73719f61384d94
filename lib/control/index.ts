// The control plane: QMP and HMP over a Topology.
import type { Topology } from '../topology/topology';
import { Hmp } from './hmp';
import { Monitor, type MonitorOptions } from './monitor';
import { qmpCommands } from './qmp-commands';
import { QmpServer, type QmpServerOptions } from './qmp-server';

export { Hmp, runStdioMonitor } from './hmp';
export { Monitor, netplaneVersion, QEMU_COMPAT_VERSION, type MonitorEvents, type MonitorOptions } from './monitor';
export { qmpCommands } from './qmp-commands';
export { QmpServer, type QmpServerOptions, type QmpVersion } from './qmp-server';
export type { QmpCommand, QmpCommandTable } from './qmp-types';
export { QmpError } from './qmp-args';
export { FdSets, NamedFds, resolveMonitorFd, withMonitorFds } from './monitor-fds';

export interface QmpService {
  server: QmpServer;
  monitor: Monitor;
  hmp: Hmp;
  /** Close the server (socket removed) and stop following the topology; the topology stays. */
  close(): Promise<void>;
}

/**
 * Serve QMP for `topology` on a unix socket (mode 0600): the library's way to get what
 * `netplane -qmp unix:PATH,server=on,wait=off` gives. `quit` emits 'quit' on the monitor.
 * For netdev_add fd=NAME (fds passed with getfd), create the Topology with
 * `resolveFd: resolveMonitorFd`.
 */
export async function serveQmp(
  topology: Topology,
  opts: Pick<QmpServerOptions, 'path' | 'limits' | 'maxClients' | 'fdSets'> & MonitorOptions,
): Promise<QmpService> {
  const monitor = new Monitor(topology, opts);
  const hmp = new Hmp(monitor);
  const server = await QmpServer.listen({ ...opts, commands: qmpCommands(monitor, hmp), version: monitor.version });
  const forward = (name: string, data: Record<string, unknown> | undefined): void => server.emitEvent(name, data);
  monitor.on('event', forward);
  return {
    server,
    monitor,
    hmp,
    close: async () => {
      monitor.off('event', forward);
      await server.close();
      monitor.dispose();
    },
  };
}
