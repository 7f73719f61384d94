#!/usr/bin/env node
// The `netplane` command. For now one subcommand, `demo`; the QEMU-style network options
// and the monitor arrive with the topology.
import { runDemo } from './demo';

const usage = `usage: netplane <command>

commands:
  demo [--queues N] [--ifname NAME]
        open a multiqueue TAP with vnet headers, show its queues, features and
        offloads as the kernel reports them, then close it (needs root)
  help  show this text`;

async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  switch (command) {
    case 'demo':
      return runDemo(args);
    case 'help':
    case '--help':
    case '-h':
      console.log(usage);
      return 0;
    case undefined:
      console.error(usage);
      return 2;
    default:
      console.error(`netplane: unknown command '${command}'\n\n${usage}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const e = err as { message?: string; code?: string; syscall?: string };
    const where = [e.code, e.syscall].filter(Boolean).join(' in ');
    console.error(`netplane: ${e.message ?? String(err)}${where ? ` (${where})` : ''}`);
    if (e.code === 'EPERM' || e.code === 'EACCES') {
      console.error('netplane: creating TAP devices needs CAP_NET_ADMIN and access to /dev/net/tun (run as root)');
    }
    process.exitCode = 1;
  },
);
