// examples/port-filter.ts as a user runs it: a child process between two real TAPs, each in
// a namespace this test creates. UDP to an allowed port crosses it (both ways: the echo comes
// back), UDP to a blocked port does not, and its report on SIGTERM counts both.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { NetNs, deleteLink, npName } from './helpers/netns';
import { repoRoot } from './helpers/node-child';
import { needsPrivileged } from './helpers/tools';
import { unconserved } from './helpers/dataplane-env';
import type { NativeClientStats } from '../lib/native';

const kExample = path.join(repoRoot, 'examples', 'port-filter.ts');
const kAddrA = '10.251.0.1';
const kAddrB = '10.251.0.2';
const kMacA = '02:00:00:0e:00:01';
const kMacB = '02:00:00:0e:00:02';
const kBlocked = 4444;
const kAllowed = 5555;
const kCount = 20;

// In namespace B: echo every datagram on both ports; print how many each port got on stdin's end.
const kEchoServer = `
const dgram = require('node:dgram');
const got = {};
let bound = 0;
for (const port of process.argv.slice(1).map(Number)) {
  got[port] = 0;
  const s = dgram.createSocket('udp4');
  s.on('message', (m, r) => { got[port]++; s.send(m, r.port, r.address); });
  s.bind(port, '${kAddrB}', () => { if (++bound === 2) console.log('listening'); });
}
process.stdin.on('end', () => { console.log(JSON.stringify(got)); process.exit(0); }).resume();
`;

// In namespace A: send kCount datagrams to each port, one at a time, and count the echoes.
const kClient = `
const dgram = require('node:dgram');
const [port, count] = process.argv.slice(1).map(Number);
const s = dgram.createSocket('udp4');
let echoes = 0, sent = 0;
s.on('message', () => { echoes++; next(); });
function next() {
  if (sent === count) return finish();
  sent++;
  s.send(Buffer.from('np-filter ' + sent), port, '${kAddrB}');
  clearTimeout(timer); timer = setTimeout(next, 200);
}
let timer;
function finish() { clearTimeout(timer); setTimeout(() => { console.log(echoes); s.close(); }, 100); }
s.bind(0, '${kAddrA}', next);
`;

function collect(p: ReturnType<typeof spawn>): { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return { out: () => out, err: () => err };
}

async function waitFor(what: string, cond: () => boolean, ms: number, said: () => string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what} within ${ms} ms; it said: ${said()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

for (const offloads of [false, true]) {
  test(
    `examples/port-filter.ts${offloads ? ' --offloads' : ''} forwards allowed ports both ways, blocks the others, and counts them`,
    { ...needsPrivileged('ip'), timeout: 60_000 },
    async () => {
      const ifA = npName('fa');
      const ifB = npName('fb');
      const nsA = new NetNs('fa');
      const nsB = new NetNs('fb');
      const filter = spawn(
        process.execPath,
        ['--import', 'tsx', kExample, ...(offloads ? ['--offloads'] : []), '--block-port', String(kBlocked), ifA, ifB],
        {
          cwd: repoRoot,
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      const fout = collect(filter);
      const exited = new Promise<number | null>((r) => filter.on('exit', (code) => r(code)));
      let server: ReturnType<typeof spawn> | undefined;
      try {
        await waitFor('the example printed ready', () => fout.out().includes('ready'), 20_000, fout.err);
        for (const [ns, ifname, cidr, mac, peer, peerMac] of [
          [nsA, ifA, `${kAddrA}/24`, kMacA, kAddrB, kMacB],
          [nsB, ifB, `${kAddrB}/24`, kMacB, kAddrA, kMacA],
        ] as const) {
          ns.disableIpv6();
          ns.adopt(ifname, cidr, mac);
          ns.exec('ip', ['neigh', 'replace', peer, 'lladdr', peerMac, 'dev', ifname, 'nud', 'permanent']);
        }
        server = nsB.spawn(process.execPath, ['-e', kEchoServer, String(kAllowed), String(kBlocked)]);
        const sout = collect(server);
        await waitFor('the echo server listened', () => sout.out().includes('listening'), 10_000, sout.err);

        const echoes = (port: number) =>
          Number(nsA.exec(process.execPath, ['-e', kClient, String(port), String(kCount)]).trim());
        assert.equal(echoes(kAllowed), kCount, 'every datagram to the allowed port came back');
        assert.equal(echoes(kBlocked), 0, 'no datagram to the blocked port came back');

        server.stdin!.end();
        await waitFor('the echo server reported', () => sout.out().includes('{'), 5000, sout.err);
        const got = JSON.parse(sout.out().trim().split('\n').pop()!) as Record<string, number>;
        assert.deepEqual(got, { [kAllowed]: kCount, [kBlocked]: 0 });

        filter.kill('SIGTERM');
        assert.equal(await exited, 0, fout.err());
        const report = JSON.parse(fout.err().trim().split('\n').pop()!) as {
          aToB: { forwarded: number; blocked: number };
          bToA: { forwarded: number; blocked: number };
          stats: NativeClientStats[];
        };
        assert.equal(report.aToB.blocked, kCount);
        assert.ok(report.aToB.forwarded >= kCount, `a->b forwarded ${report.aToB.forwarded}`);
        assert.ok(report.bToA.forwarded >= kCount, `b->a forwarded ${report.bToA.forwarded}`);
        assert.equal(report.bToA.blocked, 0);
        // The engine counts the filter's drops too, on the forwarding port, and every client
        // (both TAPs, both JS ports) stays conserved.
        assert.deepEqual(unconserved(report.stats), [], 'every client: in = out + queued + dropped');
        const dropsOf = (dir: 'a' | 'b') => report.stats.find((c) => c.name === `${dir === 'a' ? ifA : ifB}-js`)!.drops;
        assert.equal(dropsOf('a').filtered + dropsOf('a').purged, report.aToB.blocked, 'a->b drops in dp.stats()');
        assert.equal(dropsOf('b').filtered + dropsOf('b').purged, 0);
      } finally {
        server?.kill('SIGKILL');
        if (filter.exitCode === null && filter.signalCode === null) {
          filter.kill('SIGKILL');
          await exited;
        }
        nsA.dispose();
        nsB.dispose();
        deleteLink(ifA);
        deleteLink(ifB);
      }
    },
  );
}
