// HMP, QEMU's human monitor, for the network commands: `info network`, `set_link`,
// `netdev_add`, `netdev_del`, `announce_self`, `help`, `quit`. Reached through QMP's
// human-monitor-command and through `-monitor stdio`. A thin layer over the Topology: it
// parses a line, calls the library, and prints what QEMU 7.2 prints.
import * as readline from 'node:readline';
import { NetplaneError } from '../errors';
import {
  IDENTIFIER_HINT,
  isIdentifier,
  NETDEV_TYPES,
  OptionError,
  parseKeyval,
  parseNetdevArg,
  parseObjectArg,
} from '../options';
import { HmpLine, HmpSyntaxError, parseHmpArgs, type HmpArgKind } from './hmp-parse';
import { hmpHostfwdAdd, hmpHostfwdRemove, infoUsernet } from './hmp-usernet';
import type { Monitor } from './monitor';
import { formatStatsTable, netplaneStats } from './stats';

interface HmpCommand {
  names: readonly string[];
  /** `help` text: usage, then a short description. */
  usage: string;
  help: string;
  args: readonly HmpArgKind[];
  run(values: Array<string | boolean | undefined>): string;
}

/** `netdev_add help` lists backends in QEMU's order; we list the ones we have. */
const QEMU_BACKEND_ORDER = [
  'socket',
  'stream',
  'dgram',
  'hubport',
  'tap',
  'user',
  'l2tpv3',
  'vde',
  'bridge',
  'vhost-user',
  'vhost-vdpa',
];
const BACKENDS_LISTED = [...NETDEV_TYPES].sort((a, b) => QEMU_BACKEND_ORDER.indexOf(a) - QEMU_BACKEND_ORDER.indexOf(b));

/** announce_self uses the migration parameters; these are QEMU's defaults (ms). */
const ANNOUNCE_DEFAULTS = { initial: 50, max: 550, rounds: 5, step: 100 };

function errorText(e: unknown): string {
  if (e instanceof OptionError) return `Error: ${e.fullText}\n`;
  if (e instanceof Error) return `Error: ${e.message}\n`;
  return `Error: ${String(e)}\n`;
}

export class Hmp {
  readonly #commands: HmpCommand[];
  readonly #info: Array<{ name: string; help: string; run(): string }>;

  constructor(readonly monitor: Monitor) {
    const topo = monitor.topology;
    this.#info = [
      { name: 'network', help: 'show the network state', run: () => topo.infoNetwork() },
      {
        name: 'chardev',
        help: 'show the character devices',
        run: () =>
          topo.chardevs
            .query()
            .map((c) => `${c.label}: filename=${c.filename}\n`)
            .join(''),
      },
      {
        name: 'netplane',
        help: 'show the data plane counters of every net client (netplane)',
        run: () => {
          try {
            return formatStatsTable(netplaneStats(topo));
          } catch (e) {
            return errorText(e); // no data plane: say so in the monitor
          }
        },
      },
      { name: 'usernet', help: 'show user network stack connection states', run: () => infoUsernet(topo) },
      {
        name: 'version',
        help: 'show the version of QEMU this monitor follows, and of netplane',
        run: () => {
          const q = monitor.version.qemu;
          return `${q.major}.${q.minor}.${q.micro} (${monitor.version.package})\n`;
        },
      },
    ];
    this.#commands = [
      {
        names: ['info'],
        usage: 'info [subcommand]',
        help: 'show various information about the system state',
        args: [],
        run: () => this.#infoList(),
      },
      {
        names: ['set_link'],
        usage: 'set_link name on|off',
        help: 'set the link of a NIC or netdev up or down',
        args: ['s', 'b'],
        run: ([name, up]) => {
          topo.setLink(name as string, up as boolean);
          return '';
        },
      },
      {
        names: ['netdev_add'],
        usage: `netdev_add [${NETDEV_TYPES.join('|')}],id=str[,prop=value][,...]`,
        help: 'add a host network device',
        args: ['O'],
        run: ([text]) => this.#netdevAdd(text as string),
      },
      {
        names: ['netdev_del'],
        usage: 'netdev_del id',
        help: 'remove a host network device',
        args: ['s'],
        run: ([id]) => {
          topo.delNetdev(id as string);
          return '';
        },
      },
      {
        names: ['object_add'],
        usage: 'object_add [filter-dump|iothread],id=str[,prop=value][,...]',
        help: 'create QOM object (an iothread, or a filter-dump capture that starts now)',
        args: ['O'],
        run: ([text]) => {
          const o = parseObjectArg(text as string);
          if (o.qomType === 'filter-dump') topo.addFilter(o, { via: 'cli' });
          else topo.addIothread(o, { via: 'cli' });
          return '';
        },
      },
      {
        names: ['object_del'],
        usage: 'object_del id',
        help: 'destroy QOM object (a filter-dump: its capture ends, the file complete)',
        args: ['s'],
        run: ([id]) => {
          void topo.delFilter(id as string);
          return '';
        },
      },
      {
        names: ['announce_self'],
        usage: 'announce_self [interfaces] [id]',
        help: 'send gratuitous RARP frames from the NICs (all, or a comma-separated list)',
        args: ['s?', 's?'],
        run: ([interfaces, id]) => {
          topo.announceSelf({
            ...ANNOUNCE_DEFAULTS,
            ...(interfaces !== undefined ? { interfaces: (interfaces as string).split(',') } : {}),
            ...(id !== undefined ? { id: id as string } : {}),
          });
          return '';
        },
      },
      {
        names: ['hostfwd_add'],
        usage: 'hostfwd_add [netdev_id] [tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport',
        help: 'redirect TCP or UDP connections from host to guest (requires -net user)',
        args: ['s', 's?'],
        run: ([a, b]) => hmpHostfwdAdd(topo, a as string, b as string | undefined),
      },
      {
        names: ['hostfwd_remove'],
        usage: 'hostfwd_remove [netdev_id] [tcp|udp]:[hostaddr]:hostport',
        help: 'remove host-to-guest TCP or UDP redirection',
        args: ['s', 's?'],
        run: ([a, b]) => hmpHostfwdRemove(topo, a as string, b as string | undefined),
      },
      {
        names: ['help', '?'],
        usage: 'help|? [cmd]',
        help: 'show the help',
        args: ['s?'],
        run: ([name]) => this.#help(name as string | undefined),
      },
      {
        names: ['quit', 'q'],
        usage: 'quit|q',
        help: 'quit netplane (closes every netdev and NIC)',
        args: [],
        run: () => {
          monitor.requestQuit('host-qmp-quit');
          return '';
        },
      },
    ];
  }

  /** Run one command line; returns the monitor output with '\n' line ends. */
  execute(commandLine: string): string {
    const line = new HmpLine(commandLine);
    const name = line.word();
    if (name === undefined) return '';
    if (name === 'info') return this.#runInfo(line);
    const cmd = this.#commands.find((c) => c.names.includes(name));
    if (cmd === undefined) return `unknown command: '${name}'\n`;
    let values: Array<string | boolean | undefined>;
    try {
      values = parseHmpArgs(cmd.names[0]!, cmd.args, line);
    } catch (e) {
      if (e instanceof HmpSyntaxError) return e.text;
      throw e;
    }
    try {
      return cmd.run(values);
    } catch (e) {
      if (!(e instanceof NetplaneError) && !(e instanceof Error)) throw e;
      return errorText(e);
    }
  }

  /** Same, with QEMU's "\r\n" line ends (what human-monitor-command returns). */
  executeCrLf(commandLine: string): string {
    return this.execute(commandLine).replace(/\r?\n/g, '\r\n');
  }

  #runInfo(line: HmpLine): string {
    const sub = line.word();
    if (sub === undefined) return this.#infoList();
    const info = this.#info.find((i) => i.name === sub);
    if (info === undefined) return `unknown command: 'info ${sub}'\n`;
    if (!line.atEnd()) return `info: extraneous characters at the end of line\nTry "help info" for more information\n`;
    return info.run();
  }

  #infoList(): string {
    return this.#info.map((i) => `info ${i.name}  -- ${i.help}\n`).join('');
  }

  #help(name: string | undefined): string {
    if (name === 'info') return this.#infoList();
    const cmds = name === undefined ? this.#commands : this.#commands.filter((c) => c.names.includes(name));
    if (cmds.length === 0) return `unknown command: '${name}'\n`;
    return cmds.map((c) => `${c.usage} -- ${c.help}\n`).join('');
  }

  /**
   * netdev_add goes through QemuOpts first, as in QEMU: a syntax error, a malformed id or an
   * id that already has QemuOpts (-netdev or an earlier HMP netdev_add) fails there; QEMU
   * reports those on stderr and the monitor shows only the "Try help" line.
   */
  #netdevAdd(text: string): string {
    if (text === 'help') return `Available netdev backend types:\n${BACKENDS_LISTED.join('\n')}\n`;
    const tryHelp = 'Try "help netdev_add" for more information\n';
    try {
      const kv = parseKeyval(text, 'type');
      if (kv.id !== undefined) {
        if (!isIdentifier(kv.id)) throw new OptionError("Parameter 'id' expects an identifier", IDENTIFIER_HINT);
        if (this.monitor.topology.netdevs.get(kv.id)?.viaCli) {
          throw new OptionError(`Duplicate ID '${kv.id}' for netdev`);
        }
      }
    } catch (e) {
      if (!(e instanceof OptionError)) throw e;
      this.monitor.errorReport(e.fullText);
      return tryHelp;
    }
    const opts = parseNetdevArg(text);
    this.monitor.topology.addNetdev(opts, { via: 'cli' });
    return '';
  }
}

/**
 * `-monitor stdio`: QEMU's banner, then a `(qemu) ` prompt per command. Resolves when the
 * input ends or `quit` was given.
 */
export function runStdioMonitor(
  hmp: Hmp,
  input: NodeJS.ReadableStream = process.stdin,
  output: NodeJS.WritableStream = process.stdout,
): { done: Promise<void>; close(): void } {
  const terminal = (output as { isTTY?: boolean }).isTTY === true && (input as { isTTY?: boolean }).isTTY === true;
  const rl = readline.createInterface({ input, output, prompt: '(qemu) ', terminal, historySize: 100 });
  const q = hmp.monitor.version.qemu;
  output.write(
    `netplane ${hmp.monitor.version.package.replace(/^netplane /, '')} monitor (QEMU ${q.major}.${q.minor} HMP) - type 'help' for more information\n`,
  );
  rl.prompt();
  rl.on('line', (line) => {
    let out: string;
    try {
      out = hmp.execute(line);
    } catch (e) {
      out = errorText(e);
    }
    output.write(out);
    if (hmp.monitor.quitRequested) {
      close();
      return;
    }
    rl.prompt();
  });
  const done = new Promise<void>((resolve) => rl.once('close', () => resolve()));
  const close = (): void => {
    rl.close();
    // A pipe or terminal on stdin would keep the process alive after we stopped reading it.
    (input as { unref?: () => void }).unref?.();
  };
  return { done, close };
}
