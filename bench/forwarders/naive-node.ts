// The naive Node forwarder: what a JavaScript program gets by reading and writing TAP fds
// with fs.read/fs.write, one frame per call, in both directions at once.
//
//   naive-node.ts --fds 3,4        use inherited blocking fds (cfwd --exec opens them);
//                                  each fs.read waits in the libuv thread pool
//   naive-node.ts --open IFA IFB   open the TAPs with lib/tap.ts (nonblocking fds); a read
//                                  that finds no frame (EAGAIN) is retried on setImmediate,
//                                  so this mode busy-polls
//
// On SIGTERM/SIGINT it prints its counters as JSON on stderr and exits.
import * as fs from 'node:fs';
import * as path from 'node:path';

interface Direction {
  name: string;
  from: number;
  to: number;
  frames: number;
  bytes: number;
  writeErrors: number;
}

const kBufSize = 65536;

function pump(d: Direction, busyPoll: boolean): void {
  const buf = Buffer.allocUnsafe(kBufSize);
  const readNext = (): void => {
    fs.read(d.from, buf, 0, kBufSize, null, (err, n) => {
      if (err) {
        if (err.code === 'EAGAIN' && busyPoll) return void setImmediate(readNext);
        console.error(`naive-node: read ${d.name}: ${err.message}`);
        return void process.exit(1);
      }
      fs.write(d.to, buf, 0, n, null, (werr) => {
        if (werr) d.writeErrors++;
        else {
          d.frames++;
          d.bytes += n;
        }
        readNext();
      });
    });
  };
  readNext();
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let fdA: number;
  let fdB: number;
  let busyPoll = false;
  const keep: unknown[] = [];
  if (argv[0] === '--fds' && argv.length === 2) {
    [fdA, fdB] = argv[1]!.split(',').map(Number) as [number, number];
    if (!Number.isInteger(fdA) || !Number.isInteger(fdB))
      throw new Error(`--fds: expected two fd numbers, got ${argv[1]}`);
  } else if (argv[0] === '--open' && argv.length === 3) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { Tap } = require(path.join(__dirname, '..', '..', 'lib', 'tap')) as typeof import('../../lib/tap');
    const a = Tap.open({ ifname: argv[1]!, vnetHdr: 'off' });
    const b = Tap.open({ ifname: argv[2]!, vnetHdr: 'off' });
    keep.push(a, b);
    fdA = a.fd(0);
    fdB = b.fd(0);
    busyPoll = true;
  } else {
    throw new Error('usage: naive-node.ts --fds A,B | --open IFA IFB');
  }
  const ab: Direction = { name: 'a->b', from: fdA, to: fdB, frames: 0, bytes: 0, writeErrors: 0 };
  const ba: Direction = { name: 'b->a', from: fdB, to: fdA, frames: 0, bytes: 0, writeErrors: 0 };
  const finish = (): void => {
    console.error(JSON.stringify({ ab, ba, tapsHeld: keep.length }));
    process.exit(0);
  };
  process.on('SIGTERM', finish);
  process.on('SIGINT', finish);
  pump(ab, busyPoll);
  pump(ba, busyPoll);
}

main().catch((e: Error) => {
  console.error(`naive-node: ${e.message}`);
  process.exit(2);
});
