// What QMP and HMP share: the topology they drive, the version they report, the events
// they forward and the way to ask the process to quit. No topology logic lives here.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { TypedEmitter } from '../util/typed-emitter';
import type { Nic } from '../topology/nic';
import type { NetdevTapDeadEvent, Topology } from '../topology/topology';
import type { QmpVersion } from './qmp-server';

/** The QEMU release whose QMP/HMP behaviour we reproduce; reported in "qemu". */
export const QEMU_COMPAT_VERSION = { micro: 0, minor: 2, major: 7 } as const; // QEMU's key order

function ownVersion(): string {
  // lib/control/ (sources) and dist/control/ (build) both sit two levels below package.json.
  try {
    const pkg = JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as {
      version?: string;
    };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** query-version as netplane answers it: QEMU's shape, our name and version in "package". */
export function netplaneVersion(): QmpVersion {
  return { qemu: { ...QEMU_COMPAT_VERSION }, package: `netplane ${ownVersion()}` };
}

export type MonitorEvents = {
  /** A QMP event to send to every negotiated client. */
  event: [name: string, data: Record<string, unknown> | undefined];
  /** `quit` (QMP or HMP): the host should shut down. */
  quit: [];
};

export interface MonitorOptions {
  version?: QmpVersion;
  /**
   * Where messages go that QEMU reports on stderr instead of in the monitor (for example the
   * QemuOpts errors of HMP netdev_add). Default: process.stderr with a "netplane: " prefix.
   */
  errorReport?: (message: string) => void;
}

export class Monitor extends TypedEmitter<MonitorEvents> {
  readonly version: QmpVersion;
  readonly errorReport: (message: string) => void;
  #quitRequested = false;
  readonly #unsubscribe: Array<() => void> = [];

  constructor(
    readonly topology: Topology,
    opts: MonitorOptions = {},
  ) {
    super();
    this.version = opts.version ?? netplaneVersion();
    this.errorReport = opts.errorReport ?? ((m) => process.stderr.write(`netplane: ${m}\n`));
    for (const nic of topology.nics) this.#watchNic(nic);
    const onDevice = (nic: Nic): void => this.#watchNic(nic);
    topology.on('device-added', onDevice);
    this.#unsubscribe.push(() => topology.off('device-added', onDevice));
    // netplane's own event: a link that moved without anyone asking (a connection-driven
    // backend). set_link and netdev_del stay silent, as in QEMU; a TAP that died has its own
    // event below, which says the link went down.
    const onLink = (e: { name: string; up: boolean; cause: string }): void => {
      if (e.cause === 'connection')
        this.emit('event', 'NETPLANE_LINK_CHANGE', { name: e.name, up: e.up, cause: e.cause });
    };
    topology.on('link-change', onLink);
    this.#unsubscribe.push(() => topology.off('link-change', onLink));
    // netplane's own event: a TAP netdev's interface vanished (QEMU would spin on the dead
    // fd); its link and its NIC's are down. Once per netdev.
    const onTapDead = (e: NetdevTapDeadEvent): void => {
      this.emit('event', 'NETPLANE_TAP_DEAD', { 'netdev-id': e.netdev, errno: e.code, syscall: e.syscall });
    };
    topology.on('tap-dead', onTapDead);
    this.#unsubscribe.push(() => topology.off('tap-dead', onTapDead));
    // Events a netdev raises itself (NETDEV_STREAM_CONNECTED, a vhost-user back-end going away).
    const onNetdevEvent = (name: string, data: Record<string, unknown>): void => {
      this.emit('event', name, data);
    };
    topology.on('qmp-event', onNetdevEvent);
    this.#unsubscribe.push(() => topology.off('qmp-event', onNetdevEvent));
  }

  /** NIC_RX_FILTER_CHANGED, as QEMU sends it when the guest changes its receive filter. */
  #watchNic(nic: Nic): void {
    const onFilter = (info: { name?: string; path: string }): void => {
      this.emit(
        'event',
        'NIC_RX_FILTER_CHANGED',
        info.name === undefined ? { path: info.path } : { name: info.name, path: info.path },
      );
    };
    nic.on('rx-filter-changed', onFilter);
    this.#unsubscribe.push(() => nic.off('rx-filter-changed', onFilter));
  }

  get quitRequested(): boolean {
    return this.#quitRequested;
  }

  /** Ask the host to shut down (once); QMP clients see SHUTDOWN first, as with QEMU. */
  requestQuit(reason: 'host-qmp-quit' | 'host-signal' = 'host-qmp-quit'): void {
    if (this.#quitRequested) return;
    this.#quitRequested = true;
    this.emit('event', 'SHUTDOWN', { guest: false, reason });
    // Later, so that the reply to `quit` is written before the host starts tearing down.
    setImmediate(() => this.emit('quit'));
  }

  /** Stop listening to the topology. */
  dispose(): void {
    for (const f of this.#unsubscribe.splice(0)) f();
  }
}
