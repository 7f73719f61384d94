// The QMP commands netplane implements, each a thin call into the Topology (or HMP).
// Argument schemas list members in QEMU's QAPI order, so the first error QEMU reports for a
// request is the first one we report.
import { NetplaneError } from '../errors';
import { netdevFromQmp, objectFromJson } from '../options';
import { chardevFromQmp } from '../options/export';
import type { Hmp } from './hmp';
import type { Monitor } from './monitor';
import type { QmpCommand, QmpCommandTable } from './qmp-types';
import { netplaneStats } from './stats';

export function qmpCommands(monitor: Monitor, hmp: Hmp): QmpCommandTable {
  const topo = monitor.topology;
  const table = new Map<string, QmpCommand>([
    [
      'set_link',
      {
        args: { name: { type: 'string' }, up: { type: 'boolean' } },
        run: (a) => topo.setLink(a['name'] as string, a['up'] as boolean),
      },
    ],
    [
      // The Netdev union is "boxed": every member arrives at the top level of "arguments",
      // and the option parser checks them with QEMU's texts.
      'netdev_add',
      { args: 'boxed', run: (a) => void topo.addNetdev(netdevFromQmp(a), { via: 'qmp' }) },
    ],
    ['netdev_del', { args: { id: { type: 'string' } }, run: (a) => topo.delNetdev(a['id'] as string) }],
    [
      // Socket chardevs for -netdev vhost-user (QEMU's ChardevBackend, unix sockets only).
      'chardev-add',
      {
        args: { id: { type: 'string' }, backend: { type: 'object' } },
        run: (a) => {
          topo.chardevs.add(chardevFromQmp(a['id'] as string, a['backend']));
          return {};
        },
      },
    ],
    ['chardev-remove', { args: { id: { type: 'string' } }, run: (a) => topo.chardevs.remove(a['id'] as string) }],
    ['query-chardev', { args: {}, run: () => topo.chardevs.query() }],
    [
      'query-rx-filter',
      {
        args: { name: { type: 'string', optional: true } },
        run: (a) => topo.queryRxFilter(a['name'] as string | undefined),
      },
    ],
    [
      'announce-self',
      {
        args: {
          initial: { type: 'integer' },
          max: { type: 'integer' },
          rounds: { type: 'integer' },
          step: { type: 'integer' },
          interfaces: { type: { list: 'string' }, optional: true },
          id: { type: 'string', optional: true },
        },
        run: (a) =>
          topo.announceSelf({
            initial: a['initial'] as number,
            max: a['max'] as number,
            rounds: a['rounds'] as number,
            step: a['step'] as number,
            ...(a['interfaces'] !== undefined ? { interfaces: a['interfaces'] as string[] } : {}),
            ...(a['id'] !== undefined ? { id: a['id'] as string } : {}),
          }),
      },
    ],
    [
      // netplane extension: the data plane's per-client counters (one consistent snapshot).
      'query-netplane-stats',
      {
        args: { name: { type: 'string', optional: true } },
        run: (a) => netplaneStats(topo, a['name'] as string | undefined),
      },
    ],
    [
      'human-monitor-command',
      {
        args: { 'command-line': { type: 'string' }, 'cpu-index': { type: 'integer', optional: true } },
        run: (a) => hmp.executeCrLf(a['command-line'] as string),
      },
    ],
    [
      // -object at run time: an iothread, or a filter-dump capture that starts now.
      'object-add',
      {
        args: 'boxed',
        run: (a) => {
          const o = objectFromJson(a);
          if (o.qomType === 'filter-dump') topo.addFilter(o, { via: 'qmp' });
          else topo.addIothread(o, { via: 'qmp' });
        },
      },
    ],
    [
      // object-del of a filter ends its capture (the file is complete when this returns).
      'object-del',
      {
        args: { id: { type: 'string' } },
        run: (a) => {
          const id = a['id'] as string;
          if (topo.iothreads.includes(id)) {
            throw new NetplaneError('NETPLANE_IN_USE', `netplane cannot delete iothread '${id}' at run time`);
          }
          void topo.delFilter(id);
        },
      },
    ],
    ['quit', { run: () => monitor.requestQuit('host-qmp-quit') }],
  ]);
  return table;
}
