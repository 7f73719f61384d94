// QMP commands for vhost-user exports (netplane extensions, in block-export-add's shape:
// type, id, addr as a SocketAddress, num-queues). Named netplane-export-* rather than
// block-export-*: those are QEMU's for block nodes (node-name is mandatory there), and a
// client that probes query-commands must not mistake netplane for a block daemon.
import { NetplaneError } from '../errors';
import type { VhostUserExportInfo, VhostUserExports } from '../topology/exports/vhost-user-net';
import type { QmpCommand } from './qmp-types';

function jsonInfo(i: VhostUserExportInfo): unknown {
  // u64 feature words as JSON numbers (below 2^53 for every bit netplane offers).
  return JSON.parse(JSON.stringify(i, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v)));
}

export function exportCommands(exports: VhostUserExports): Array<[string, QmpCommand]> {
  return [
    [
      'netplane-export-add',
      {
        args: {
          type: { type: 'string' },
          id: { type: 'string' },
          netdev: { type: 'string' },
          addr: { type: 'object' },
          'num-queues': { type: 'integer', optional: true },
        },
        run: async (a) => {
          if (a['type'] !== 'vhost-user-net')
            throw new NetplaneError(
              'NETPLANE_INVALID_OPTION',
              `Parameter 'type' does not accept value '${String(a['type'])}'`,
            );
          const addr = a['addr'] as Record<string, unknown>;
          if (addr['type'] !== 'unix' || typeof addr['path'] !== 'string') {
            throw new NetplaneError('NETPLANE_INVALID_OPTION', "addr must be {'type': 'unix', 'path': PATH}");
          }
          const nq = a['num-queues'];
          await exports.add({
            id: a['id'] as string,
            netdev: a['netdev'] as string,
            address: { kind: 'listen', path: addr['path'] },
            ...(nq !== undefined ? { numQueues: Number(nq) } : {}),
          });
        },
      },
    ],
    ['netplane-export-del', { args: { id: { type: 'string' } }, run: (a) => exports.del(a['id'] as string) }],
    ['query-netplane-exports', { run: () => exports.list().map(jsonInfo) }],
  ];
}
