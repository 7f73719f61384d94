// -netdev user: a libslirp user-mode network stack (QEMU's net/slirp.c). The options are
// checked and defaulted by lib/options/user.ts; here the stack is created in the data plane
// (native/core/slirp/, on the netdev's IOThread), its hostfwd=/guestfwd= rules are set up in
// QEMU's order, and UserStack carries what HMP asks of it later (hostfwd_add,
// hostfwd_remove, info usernet).
import { NetplaneError } from '../../errors';
import type { UserNetdevOptions } from '../../options/types';
import {
  parseGuestFwd,
  parseHostFwd,
  parseHostFwdRemove,
  resolveSlirpConfig,
  type SlirpConfig,
} from '../../options/user';
import type { DataPlane } from '../dataplane';
import { invalid } from '../internal';
import { Client } from '../net-client';
import type { NetdevType } from './types';

/** One user netdev's stack as the monitor sees it. */
export class UserStack {
  /** @internal */
  constructor(
    readonly id: string,
    /** @internal */ readonly client: Client,
    readonly config: Readonly<SlirpConfig>,
    readonly dataPlane: DataPlane | undefined,
  ) {}

  /** True when a data plane runs the stack (otherwise rules are only checked). */
  get running(): boolean {
    return this.dataPlane?.slirpControl !== undefined && !this.client.removed;
  }

  /** hostfwd= / hostfwd_add: QEMU's syntax errors, then "Could not set up ..." when libslirp refuses. */
  addHostFwd(rule: string): void {
    const r = parseHostFwd(rule);
    if (!this.running) return;
    try {
      this.dataPlane!.slirpControl!(this.client.handle, { op: 'hostfwd-add', ...r });
    } catch (err) {
      throw new NetplaneError('NETPLANE_INVALID_OPTION', `Could not set up host forwarding rule '${rule}'`, {
        cause: err,
      });
    }
  }

  /** hostfwd_remove's monitor line: `host forwarding rule for X removed|not found`, or `invalid format`. */
  removeHostFwd(text: string): string {
    const r = parseHostFwdRemove(text);
    if (r === undefined) return 'invalid format\n';
    let found = false;
    if (this.running && r.hostPort >= 0 && r.hostPort <= 65535) {
      found = this.dataPlane!.slirpControl!(this.client.handle, { op: 'hostfwd-remove', ...r }) === true;
    }
    return `host forwarding rule for ${text} ${found ? 'removed' : 'not found'}\n`;
  }

  /** guestfwd=: tcp:[addr]:port-cmd:COMMAND (a chardev target is refused). */
  addGuestFwd(rule: string): void {
    const g = parseGuestFwd(rule);
    if (g.command === undefined) {
      throw invalid(
        `guestfwd= to a character device ('${g.chardev}') is not supported by netplane; ` +
          `use guestfwd=tcp:ADDR:PORT-cmd:COMMAND`,
      );
    }
    if (!this.running) return;
    try {
      this.dataPlane!.slirpControl!(this.client.handle, {
        op: 'guestfwd-exec',
        guestAddr: g.guestAddr,
        guestPort: g.guestPort,
        command: g.command,
      });
    } catch (err) {
      throw new NetplaneError(
        'NETPLANE_INVALID_OPTION',
        `Conflicting/invalid host:port in guest forwarding rule '${rule}'`,
        { cause: err },
      );
    }
  }

  /** libslirp's connection table (`info usernet` after the "Hub" line); '' without a data plane. */
  connectionInfo(): string {
    if (!this.running) return '';
    const r = this.dataPlane!.slirpControl!(this.client.handle, { op: 'info' });
    return typeof r === 'string' ? r : '';
  }
}

/** The libslirp error of this data plane, if user netdevs cannot run on it. */
function libslirpMissing(dp: DataPlane | undefined): string | undefined {
  const info = dp?.libslirp?.();
  return info !== undefined && 'error' in info ? info.error : undefined;
}

export const userNetdev: NetdevType<UserNetdevOptions> = {
  create(o, ctx, viaCli) {
    const config = resolveSlirpConfig(o);
    ctx.checkIothread(o.iothread);
    const missing = libslirpMissing(ctx.dataPlane);
    if (missing !== undefined) throw new NetplaneError('NETPLANE_LIBSLIRP_MISSING', missing);
    const client = new Client(ctx.reg.nextHandle(), o.id, 'user', 'user', true, o.iothread);
    client.infoStr = `net=${config.net},restrict=${config.restricted ? 'on' : 'off'}`;
    ctx.dataPlane?.addClient({
      kind: 'user',
      handle: client.handle,
      name: client.name,
      queueIndex: 0,
      config,
      ...(o.iothread !== undefined ? { iothread: o.iothread } : {}),
    });
    const user = new UserStack(o.id, client, config, ctx.dataPlane);
    try {
      for (const rule of o.hostfwd ?? []) user.addHostFwd(rule);
      for (const rule of o.guestfwd ?? []) user.addGuestFwd(rule);
    } catch (err) {
      ctx.dataPlane?.removeClient(client.handle);
      throw err;
    }
    ctx.reg.add(client);
    return ctx.newNetdev({ options: o, clients: [client], viaCli, user });
  },
};
