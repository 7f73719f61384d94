// What a QMP command is, apart from the server that dispatches it (qmp-server.ts) and the
// tables that define them (qmp-commands.ts, qmp-fd-commands.ts).
import type { QmpArgSchema } from './qmp-args';

export interface QmpCommand {
  /**
   * Arguments in QAPI order; absent means the command takes none. 'boxed': the members are
   * handed over unchecked (a union whose own parser checks them, like netdev_add's Netdev).
   */
  args?: QmpArgSchema | 'boxed';
  /** Returns the value of "return" (undefined means `{}`); may be async. */
  run(args: Record<string, unknown>): unknown;
}

export type QmpCommandTable = ReadonlyMap<string, QmpCommand>;
