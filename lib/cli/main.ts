#!/usr/bin/env node
// The `netplane` command: `demo`, or a QEMU-style command line (-netdev, -device, -qmp,
// -monitor) run by run.ts.
import { runDemo } from './demo';
import { HELP_TEXT } from './args';
import { runCli } from './run';

async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  switch (command) {
    case 'demo':
      return runDemo(args);
    case 'help':
      console.log(HELP_TEXT);
      return 0;
    case undefined:
      console.error(HELP_TEXT);
      return 2;
    default:
      // Everything else is a QEMU-style command line: -netdev, -device, -qmp, ...
      return runCli(argv);
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
