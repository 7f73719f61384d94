// The `netplane` command line, QEMU style: `-netdev`, `-device`, `-object iothread`,
// `-qmp`, `-monitor stdio`, netplane's `-link a,b`, and a few machine options accepted and
// ignored so that a QEMU command line's network part can be reused as it is.
//
// Every option value is parsed here, before anything is created, as QEMU parses its
// QemuOpts up front: a bad option or a duplicate id stops the program before any TAP exists.
// Errors read like QEMU's: `netplane: -netdev tap,...: <message>`.
import {
  OptionError,
  parseChardevArg,
  parseDeviceArg,
  parseExportArg,
  parseKeyval,
  parseLinkArg,
  parseNetdevArg,
  parseObjectArg,
  parseQmpArg,
  type ChardevArg,
  type DeviceOptions,
  type ExportArg,
  type ObjectOptions,
  type NetdevOptions,
  type QmpArg,
} from '../options';
import { parseNetArg, parseNicArg, type NetArg, type NicArg } from '../options/legacy-net';
import { chardevHelp, deviceHelp, netdevHelp, nicModelHelp, objectHelp } from './help';

export interface Located<T> {
  /** The option as written, e.g. "-netdev" (for messages). */
  option: string;
  /** Its value as written. */
  text: string;
  value: T;
}

export interface CliArgs {
  objects: Array<Located<ObjectOptions>>;
  netdevs: Array<Located<NetdevOptions>>;
  /** -nic and -net, in command-line order each (built -nic first, as QEMU). */
  nics: Array<Located<NicArg>>;
  nets: Array<Located<NetArg>>;
  devices: Array<Located<DeviceOptions>>;
  links: Array<Located<[string, string]>>;
  qmp: Array<Located<QmpArg>>;
  chardevs: Array<Located<ChardevArg>>;
  exports: Array<Located<ExportArg>>;
  /** -pidfile PATH: written once everything is set up, removed at a clean exit. */
  pidfile?: string;
  monitorStdio: boolean;
  help: boolean;
  /** An option asked for its help form (-netdev help, -device virtio-net-pci,help, ...): print it, exit 0. */
  helpText?: string;
  version: boolean;
  /** Warnings from parsing, already located ("-netdev ...: warning: ..."). */
  warnings: string[];
}

/** A command-line error; `text` is the full message without the "netplane: " prefix. */
export class CliError extends Error {
  constructor(
    readonly text: string,
    readonly hint?: string,
  ) {
    super(text);
  }

  /** What to print on stderr, QEMU style. */
  format(program = 'netplane'): string {
    return `${program}: ${this.text}\n${this.hint !== undefined ? this.hint + '\n' : ''}`;
  }
}

/** Options that take a value and that we act on. */
const VALUE_OPTIONS = new Set([
  'netdev',
  'device',
  'object',
  'link',
  'qmp',
  'monitor',
  'chardev',
  'export',
  'pidfile',
  'nic',
  'net',
]);
/** QEMU options accepted and ignored (with value): machine and display choices. */
const IGNORED_WITH_VALUE = new Set(['M', 'machine', 'display', 'accel', 'name']);
/** QEMU options accepted and ignored (no value). */
const IGNORED_FLAGS = new Set(['nodefaults', 'S', 'nographic', 'no-user-config', 'no-reboot', 'no-shutdown']);

export const HELP_TEXT = `usage: netplane [options]
       netplane demo [--seconds N] [--queues N] [--hub] [--tcp iperf3|node]

A QEMU-compatible network back end: the netdevs, NICs, hubs and monitor of QEMU 7.2,
without a guest. The network options of a QEMU command line work as they are.

Network:
  -netdev tap,id=ID[,ifname=NAME][,queues=N][,vnet_hdr=on|off][,fd=FD|fds=A:B]
          [,script=PATH|no][,downscript=PATH|no][,sndbuf=BYTES][,iothread=ID]
  -netdev hubport,id=ID,hubid=N[,netdev=ID]
  -device virtio-net-pci,netdev=ID[,id=ID][,mac=52:54:00:xx:xx:xx][,mq=on][,...]
  -object iothread,id=ID[,poll-max-ns=NS]   adaptive polling, default 32768 (0 = off)
  -link A,B            connect two netdevs directly, queue by queue (netplane)
  -nic TYPE[,id=ID][,model=virtio-net-pci][,mac=MAC][,<netdev options>]
  -net nic[,netdev=ID][,macaddr=MAC][,model=M] / -net TYPE,...   (hub 0, as QEMU)
  -object filter-dump,id=ID,netdev=ID,file=PATH[,maxlen=N][,buffer-size=BYTES]
                       pcap capture of a netdev (also QMP object-add / object-del)
  -netdev help, -device help, -device virtio-net-pci,help, -object help, -chardev help

vhost-user back-end (serve a TAP's queues to QEMU -netdev vhost-user or DPDK virtio-user):
  -export type=vhost-user-net,id=ID,netdev=TAPID,addr.type=unix,addr.path=PATH[,num-queues=N]
                       listen on PATH (created mode 0600)
  -chardev socket,id=ID,path=PATH[,server=on|off][,reconnect=SECONDS]
  -export type=vhost-user-net,id=ID,netdev=TAPID,chardev=ID[,num-queues=N]
                       connect to a front-end that listens (server=off), retrying
  -pidfile PATH        written once everything is set up

vhost-user front-end (netplane drives a vhost-user back-end: DPDK, OVS-DPDK, VPP):
  -chardev socket,id=CHR,path=PATH[,server=on][,reconnect=SECONDS]
  -netdev vhost-user,id=ID,chardev=CHR[,queues=N]
                       link up while the back-end is connected; peer it with -link or a hubport

Control:
  -qmp unix:PATH,server=on,wait=off
                       QMP on a unix socket (created mode 0600; no TCP listener)
  -monitor stdio       the human monitor (HMP) on the terminal

Accepted and ignored (for QEMU command lines):
  -M/-machine X, -display X, -accel X, -name X, -nodefaults, -S, -nographic

  -h, --help           this text
  --version            the version

Commands:
  demo                 two namespaces, a netplane forwarder between them, ping and a TCP
                       stream with live per-queue rates, a counters summary (needs root;
                       netplane demo --help)

netplane runs until SIGINT, SIGTERM or the monitor's quit, then closes every netdev
(downscripts run) and removes the QMP socket.`;

function located<T>(option: string, text: string, parse: () => T): Located<T> {
  try {
    return { option, text, value: parse() };
  } catch (e) {
    // QEMU reports a property setter's error without the option (filter-dump maxlen=0).
    if (e instanceof OptionError && (e as { located?: boolean }).located === false) throw new CliError(e.message);
    if (e instanceof OptionError) throw new CliError(`-${option} ${text}: ${e.message}`, e.hint);
    throw e;
  }
}

/** The QemuOpts id of a key=value option (JSON forms carry no QemuOpts, as in QEMU). */
function optsId(text: string): string | undefined {
  if (text.startsWith('{')) return undefined;
  try {
    return parseKeyval(text).id;
  } catch {
    return undefined;
  }
}

const HELP_FORMS: Readonly<Record<string, (text: string) => string | undefined>> = {
  netdev: netdevHelp,
  nic: nicModelHelp,
  net: nicModelHelp,
  device: deviceHelp,
  object: objectHelp,
  chardev: chardevHelp,
};

/** The help text an option's value asks for, or undefined. */
function optionHelp(name: string, text: string): string | undefined {
  const form = HELP_FORMS[name];
  if (!form) return undefined;
  try {
    return form(text);
  } catch (e) {
    if (e instanceof OptionError) throw new CliError(`-${name} ${text}: ${e.message}`);
    throw e;
  }
}

export function parseCliArgs(argv: readonly string[]): CliArgs {
  const out: CliArgs = {
    objects: [],
    netdevs: [],
    nics: [],
    nets: [],
    devices: [],
    links: [],
    qmp: [],
    chardevs: [],
    exports: [],
    monitorStdio: false,
    help: false,
    version: false,
    warnings: [],
  };
  const seen = {
    netdev: new Set<string>(),
    device: new Set<string>(),
    object: new Set<string>(),
    chardev: new Set<string>(),
    export: new Set<string>(),
    nic: new Set<string>(),
    net: new Set<string>(),
  };

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('-') || arg === '-' || arg === '--') {
      throw new CliError(`${arg}: unexpected argument (netplane runs no guest and takes no disk image)`);
    }
    // QEMU accepts -opt and --opt alike and names the option with one dash in messages.
    const name = arg.replace(/^--?/, '');
    if (name === 'h' || name === 'help') {
      out.help = true;
      continue;
    }
    if (name === 'version') {
      out.version = true;
      continue;
    }
    if (IGNORED_FLAGS.has(name)) continue;
    if (!VALUE_OPTIONS.has(name) && !IGNORED_WITH_VALUE.has(name)) throw new CliError(`-${name}: invalid option`);
    const text = argv[++i];
    if (text === undefined) throw new CliError(`-${name}: requires an argument`);
    if (IGNORED_WITH_VALUE.has(name)) continue;

    const helpText = optionHelp(name, text);
    if (helpText !== undefined) {
      out.helpText = helpText;
      return out; // QEMU prints it and exits at once
    }
    const ctx = { warn: (m: string) => out.warnings.push(`-${name} ${text}: warning: ${m}`) };
    // QemuOpts duplicate check, before the option itself is validated (QEMU's order).
    if (name in seen) {
      const id = optsId(text);
      if (id !== undefined) {
        const ids = seen[name as keyof typeof seen];
        if (ids.has(id)) throw new CliError(`-${name} ${text}: Duplicate ID '${id}' for ${name}`);
        ids.add(id);
      }
    }
    switch (name) {
      case 'netdev':
        out.netdevs.push(located(name, text, () => parseNetdevArg(text, ctx)));
        break;
      case 'device':
        out.devices.push(located(name, text, () => parseDeviceArg(text, ctx)));
        break;
      case 'nic':
        out.nics.push(located(name, text, () => parseNicArg(text, ctx)));
        break;
      case 'net':
        out.nets.push(located(name, text, () => parseNetArg(text, ctx)));
        break;
      case 'object':
        out.objects.push(located(name, text, () => parseObjectArg(text, ctx)));
        break;
      case 'link':
        out.links.push(located(name, text, () => parseLinkArg(text)));
        break;
      case 'qmp': {
        const q = located(name, text, () => parseQmpArg(text, ctx));
        if (!q.value.server) {
          throw new CliError(`-qmp ${text}: netplane only listens for QMP clients; add server=on`);
        }
        if (q.value.wait) {
          throw new CliError(`-qmp ${text}: waiting for a client before starting is not supported; add wait=off`);
        }
        out.qmp.push(q);
        break;
      }
      case 'chardev':
        out.chardevs.push(located(name, text, () => parseChardevArg(text, ctx)));
        break;
      case 'export':
        out.exports.push(located(name, text, () => parseExportArg(text, ctx)));
        break;
      case 'pidfile':
        if (text === '') throw new CliError('-pidfile: needs a path');
        out.pidfile = text;
        break;
      case 'monitor':
        if (text === 'none') break;
        if (text !== 'stdio')
          throw new CliError(`-monitor ${text}: netplane supports only -monitor stdio (use -qmp for sockets)`);
        if (out.monitorStdio) throw new CliError(`-monitor ${text}: cannot use stdio by multiple character devices`);
        out.monitorStdio = true;
        break;
    }
  }
  // An export's chardev= must name a -chardev (QEMU: "chardev "x" not found").
  for (const e of out.exports) {
    const c = e.value.chardev;
    if (c !== undefined && !out.chardevs.some((d) => d.value.id === c))
      throw new CliError(`-export ${e.text}: chardev "${c}" not found`);
  }
  return out;
}
