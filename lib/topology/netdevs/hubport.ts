// -netdev hubport,id=..,hubid=N[,netdev=..]: one port of hub N, optionally peered with the
// first queue of another netdev (QEMU's net/hub.c).
import type { HubportNetdevOptions } from '../../options/types';
import { checkHubId } from '../hub-graph';
import { Client } from '../net-client';
import type { NetdevType } from './types';

export const hubportNetdev: NetdevType<HubportNetdevOptions> = {
  create(o, ctx, viaCli) {
    checkHubId(o.hubid);
    const target = o.netdev !== undefined ? ctx.hubs.peerFor(o.netdev) : undefined;
    if (target) ctx.hubs.checkLoop(o.id, o.hubid, target);
    const hub = ctx.hubs.obtain(o.hubid);
    hub.takePortNumber();
    const port = new Client(ctx.reg.nextHandle(), o.id, 'hub', 'hubport', true, undefined);
    ctx.hubs.attachPort(hub, port, target);
    return ctx.newNetdev({ options: o, clients: [port], hub, viaCli });
  },
};
