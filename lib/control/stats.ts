// Data plane counters for the monitors: QMP `query-netplane-stats` (a netplane extension)
// and HMP `info netplane`. A thin layer over the data plane's one-snapshot stats(): the
// topology says which clients are NIC queues; nothing here counts anything itself.
import { NetplaneError } from '../errors';
import { DROP_REASONS, type NativeDropReason } from '../native';
import type { DataPlaneClientStats } from '../topology/dataplane';
import type { Topology } from '../topology/topology';

/** QAPI spelling of a camelCase name: badVnetHdr -> bad-vnet-hdr. */
type Kebab<S extends string> = S extends `${infer H}${infer T}`
  ? `${H extends Lowercase<H> ? H : `-${Lowercase<H>}`}${Kebab<T>}`
  : S;

export type NetplaneDropReason = Kebab<NativeDropReason>;

/** The drop reasons with their QAPI names, in the native core's order. */
const QAPI_DROP_REASONS = DROP_REASONS.map(
  (r) => [r, r.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`) as NetplaneDropReason] as const,
);

/** One net client's counters as query-netplane-stats returns them (QAPI spelling). */
export interface NetplaneClientStats {
  name: string;
  'queue-index': number;
  /**
   * 'tap', 'hubport', 'nic' (a NIC queue's packet port), 'jsport' (a port made by createPort)
   * or 'virtio-device' (a guest queue pair served from its rings, e.g. over vhost-user).
   */
  kind: string;
  iothread: string;
  'link-up': boolean;
  /** A TAP whose interface disappeared. */
  dead: boolean;
  /** false: a detached queue (the guest did not enable that queue pair). */
  enabled: boolean;
  /** Present (true) while the client is in its error state (hostile ring content), with why. */
  broken?: boolean;
  error?: string;
  /** "name" or "name.queue" of the other end, when peered. */
  peer?: string;
  'hub-id'?: number;
  /** Present (true) on a TAP queue whose reads and writes go through io_uring (io-uring=on). */
  'io-uring'?: boolean;
  'frames-in': number;
  'bytes-in': number;
  'frames-out': number;
  'bytes-out': number;
  queued: number;
  dropped: number;
  drops: Record<NetplaneDropReason, number>;
  /**
   * On a netdev's first queue while a filter-dump captures it (all its queues): frames
   * captured, frames not captured because the buffer was full, records written to the file.
   */
  capture?: NetplaneCaptureStats;
  /** virtio-device clients: interrupts, and how GSO frames and mergeable rx buffers were used. */
  virtio?: NetplaneVirtioStats;
}

/** A filter-dump's counters (QAPI spelling). */
export interface NetplaneCaptureStats {
  id: string;
  file: string;
  frames: number;
  bytes: number;
  dropped: number;
  'dropped-bytes': number;
  written: number;
  'write-errors': number;
}

/** What a virtio-device or virtio-driver row adds (query-netplane-stats). */
export interface NetplaneVirtioStats {
  /** The virtio features in force (negotiated), hex. */
  features: string;
  /** Interrupts (device) or kicks (driver) written. */
  notifies: number;
  /** Notifications the other side waived (EVENT_IDX, or the ring's flags). */
  'notifies-suppressed': number;
  /** tx frames the guest sent with a GSO type, handed on whole to the netdev. */
  'tx-gso-frames': number;
  /** rx frames written to the guest whole with a GSO type. */
  'rx-gso-frames': number;
  /** rx frames that took more than one buffer (num_buffers > 1). */
  'rx-merged-frames': number;
  /** rx buffers taken by all rx frames. */
  'rx-buffers': number;
  /** The largest frame (ethernet bytes; a GSO frame whole) from the guest, and to it. */
  'tx-max-frame': number;
  'rx-max-frame': number;
}

/**
 * The counters of every client (or of the clients named `name`), in creation order.
 * Throws when the topology has no data plane that counts, or when no client has that name.
 */
export function netplaneStats(topology: Topology, name?: string): NetplaneClientStats[] {
  const dp = topology.dataPlane;
  if (!dp?.stats) {
    throw new NetplaneError(
      'NETPLANE_INVALID_STATE',
      'no data plane is running (the topology is state only), so there are no counters',
    );
  }
  const raw = dp.stats();
  const types = new Map(topology.clients.map((c) => [c.handle, c.type]));
  const byHandle = new Map(raw.map((s) => [s.handle, s]));
  const captures = new Map(
    topology.filterStats().map((f): [string, NetplaneCaptureStats] => [
      f.netdev,
      {
        id: f.id,
        file: f.file,
        frames: f.frames,
        bytes: f.bytes,
        dropped: f.dropped,
        'dropped-bytes': f.droppedBytes,
        written: f.written,
        'write-errors': f.writeErrors,
      },
    ]),
  );
  const rows = raw
    .filter((s) => name === undefined || s.name === name)
    .map((s) => {
      const row = toQmp(s, types, byHandle);
      const cap = s.queueIndex === 0 && types.get(s.handle) !== 'nic' ? captures.get(s.name) : undefined;
      return cap ? { ...row, capture: cap } : row;
    });
  if (name !== undefined && rows.length === 0) {
    throw new NetplaneError('NETPLANE_NOT_FOUND', `Device '${name}' not found`, { qmpClass: 'DeviceNotFound' });
  }
  return rows;
}

function toQmp(
  s: DataPlaneClientStats,
  types: ReadonlyMap<number, string>,
  byHandle: ReadonlyMap<number, DataPlaneClientStats>,
): NetplaneClientStats {
  const drops = {} as Record<NetplaneDropReason, number>;
  for (const [key, qapi] of QAPI_DROP_REASONS) drops[qapi] = s.drops[key] ?? 0;
  const peer = s.peer !== null ? byHandle.get(s.peer) : undefined;
  return {
    name: s.name,
    'queue-index': s.queueIndex,
    kind: s.kind === 'jsport' && types.get(s.handle) === 'nic' ? 'nic' : s.kind,
    iothread: s.iothread,
    'link-up': !s.linkDown,
    dead: s.dead,
    enabled: s.enabled,
    ...(s.broken ? { broken: true, error: s.error ?? '' } : {}),
    ...(peer ? { peer: clientLabel(peer.name, peer.queueIndex) } : {}),
    ...(s.hubId !== null ? { 'hub-id': s.hubId } : {}),
    ...(s.ioUring === true ? { 'io-uring': true } : {}),
    'frames-in': s.framesIn,
    'bytes-in': s.bytesIn,
    'frames-out': s.framesOut,
    'bytes-out': s.bytesOut,
    queued: s.queued,
    dropped: s.dropped,
    drops,
    ...(s.virtio
      ? {
          virtio: {
            features: `0x${s.virtio.features.toString(16)}`,
            notifies: s.virtio.notifies,
            'notifies-suppressed': s.virtio.notifiesSuppressed,
            'tx-gso-frames': s.virtio.txGsoFrames,
            'rx-gso-frames': s.virtio.rxGsoFrames,
            'rx-merged-frames': s.virtio.rxMergedFrames,
            'rx-buffers': s.virtio.rxBuffers,
            'tx-max-frame': s.virtio.txMaxFrame,
            'rx-max-frame': s.virtio.rxMaxFrame,
          },
        }
      : {}),
  };
}

function clientLabel(name: string, queue: number): string {
  return queue === 0 ? name : `${name}.${queue}`;
}

/** Clients whose counters do not balance: frames-in = frames-out + queued + dropped. */
export function conservationViolations(rows: readonly NetplaneClientStats[]): string[] {
  return rows
    .filter((r) => r['frames-in'] !== r['frames-out'] + r.queued + r.dropped)
    .map(
      (r) =>
        `${clientLabel(r.name, r['queue-index'])}: frames-in ${r['frames-in']} != frames-out ${r['frames-out']} + queued ${r.queued} + dropped ${r.dropped}`,
    );
}

/** "queue-full=3 link-down=1", or "-" when nothing was dropped. */
export function formatDrops(drops: Readonly<Record<NetplaneDropReason, number>>): string {
  const parts = QAPI_DROP_REASONS.filter(([, q]) => drops[q] > 0).map(([, q]) => `${q}=${drops[q]}`);
  return parts.length > 0 ? parts.join(' ') : '-';
}

/**
 * HMP `info netplane`: one row per client, then the conservation check (unless
 * `conservation: false`). Lines end in '\n'.
 */
export function formatStatsTable(rows: readonly NetplaneClientStats[], opts: { conservation?: boolean } = {}): string {
  const head = [
    'name',
    'queue',
    'kind',
    'iothread',
    'link',
    'peer',
    'frames-in',
    'bytes-in',
    'frames-out',
    'bytes-out',
    'queued',
    'dropped',
    'drops',
  ];
  const numeric = new Set(['queue', 'frames-in', 'bytes-in', 'frames-out', 'bytes-out', 'queued', 'dropped']);
  const body = rows.map((r) => [
    r.name,
    String(r['queue-index']),
    r['hub-id'] !== undefined ? `${r.kind}/${r['hub-id']}` : r.kind,
    r.iothread,
    (r.dead ? 'dead' : r.broken ? 'broken' : r['link-up'] ? 'up' : 'down') + (r.enabled ? '' : ',detached'),
    r.peer ?? '-',
    String(r['frames-in']),
    String(r['bytes-in']),
    String(r['frames-out']),
    String(r['bytes-out']),
    String(r.queued),
    String(r.dropped),
    formatDrops(r.drops),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) =>
        i === cells.length - 1 ? c : numeric.has(head[i]!) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!),
      )
      .join('  ');
  const bad = conservationViolations(rows);
  const footer =
    bad.length === 0
      ? `conservation: frames-in = frames-out + queued + dropped holds for all ${rows.length} clients`
      : `conservation VIOLATED:\n${bad.map((b) => `  ${b}`).join('\n')}`;
  // Captures: what was taken, and what the buffer could not keep (never silently lost).
  const captures = rows.flatMap((r) =>
    r.capture
      ? [
          `capture ${r.capture.id} on ${r.name} (${r.capture.file}): ${r.capture.frames} frames captured, ` +
            `${r.capture.written} written, ${r.capture.dropped} not captured (buffer full), ` +
            `${r.capture['write-errors']} lost to write errors`,
        ]
      : [],
  );
  return [line(head), ...body.map(line), ...(opts.conservation === false ? [] : [footer]), ...captures]
    .map((l) => l + '\n')
    .join('');
}
