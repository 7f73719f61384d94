// The forwarding load that scripts/sanitize-load.sh runs under ASan + UBSan and under
// valgrind memcheck: a Topology over the native data plane in this process, two TAPs in
// two namespaces on hub 0, plus a JavaScript packet port on the same hub (it gets the TCP
// stream's GSO frames segmented in software). Traffic: iperf3 TCP (64 KiB GSO frames),
// a UDP flood and a ping flood. Faults while it runs: set_link flapping, netdev_del +
// netdev_add of one side, a JS consumer that stalls and resumes. At the end every client's
// counters must add up and everything must close; exit status 0 means the load ran clean.
//
//   node --import tsx scripts/sanitize-load.ts [--seconds N]
import type { ChildProcess } from 'node:child_process';
import { NativeDataPlane } from '../lib/dataplane/native-dataplane';
import { Topology } from '../lib/topology/topology';
import { NetNs, npName } from '../test/helpers/netns';

// The sanitizer runtime is preloaded into this process only: the tools we start
// (ip, iperf3, socat, ping) are not instrumented and must not get it.
delete process.env.LD_PRELOAD;

const argv = process.argv.slice(2);
let seconds = 120;
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--seconds') seconds = Number(argv[++i]);
  else throw new Error(`unknown argument ${argv[i]}`);
}
if (!Number.isFinite(seconds) || seconds < 1) throw new Error('--seconds needs a number >= 1');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const say = (m: string) => console.log(`sanitize-load: ${m}`);

const IP = { a: '10.215.0.1', b: '10.215.0.2' };
const MAC = { a: '02:5b:00:00:00:01', b: '02:5b:00:00:00:02' };
type Side = 'a' | 'b';

async function main(): Promise<void> {
  const ns = { a: new NetNs('sa'), b: new NetNs('sb') };
  // Offloads by hand (not by the engine's rule, which would turn them off because the JS
  // port takes no offloaded frames): the TAPs hand over 64 KiB GSO frames, the other TAP
  // gets them whole and the JS port gets them segmented in software.
  const dp = new NativeDataPlane({ autoOffloads: false });
  const topo = new Topology({ dataPlane: dp, warn: (m) => say(`warning: ${m}`) });
  const children = new Set<ChildProcess>();
  const start = (s: Side, cmd: string, args: string[]) => {
    const c = ns[s].spawn(cmd, args, { stdio: 'ignore' });
    children.add(c);
    c.once('close', () => children.delete(c));
    return c;
  };
  const addTap = (s: Side) => {
    const ifname = npName(`s${s}`);
    topo.addNetdev({ type: 'tap', id: s, ifname, vnet_hdr: true });
    topo.netdevs.get(s)!.tap!.setOffloads({ csum: true, tso4: true, tso6: true, ecn: true });
    topo.addNetdev({ type: 'hubport', id: `p${s}`, hubid: 0, netdev: s });
    ns[s].adopt(ifname, `${IP[s]}/24`, MAC[s]);
    const o: Side = s === 'a' ? 'b' : 'a';
    ns[s].exec('ip', ['neigh', 'replace', IP[o], 'lladdr', MAC[o], 'dev', ifname, 'nud', 'permanent']);
  };
  let ok = false;
  try {
    for (const n of [ns.a, ns.b]) n.disableIpv6();
    addTap('a');
    addTap('b');
    // A JavaScript port on the hub: takes plain frames (no vnet header), so GSO frames from
    // the TAPs are segmented into its ring.
    const hubPort = topo.addHubPort(0);
    const port = dp.createPort('js', { whenFull: 'drop', ringBytes: 256 * 1024 });
    dp.connect(hubPort.handle, port.handle);
    let jsFrames = 0;
    let stop = port.onFrames((b) => (jsFrames += b.length));

    const end = Date.now() + seconds * 1000;
    const server = start('b', 'iperf3', ['-s', '-B', IP.b]);
    await sleep(500);
    start('a', 'timeout', [String(seconds + 5), 'socat', '-u', '-b', '700', '/dev/zero', `UDP-SENDTO:${IP.b}:9`]);
    start('b', 'ping', ['-f', '-w', String(seconds + 5), IP.a]);
    let iperf: ChildProcess | undefined;
    let round = 0;
    let flaps = 0;
    let reopens = 0;
    while (Date.now() < end) {
      if (!iperf || iperf.exitCode !== null || iperf.signalCode !== null) {
        iperf = start('a', 'iperf3', ['-c', IP.b, '-t', '4', '--connect-timeout', '2000']);
      }
      await sleep(250);
      round++;
      topo.setLink(round % 2 === 0 ? 'pa' : 'b', false);
      await sleep(20);
      topo.setLink(round % 2 === 0 ? 'pa' : 'b', true);
      flaps++;
      if (round % 12 === 0) {
        // netdev_del + netdev_add of side b (the TAP closes, a new one is placed).
        await topo.netdevs.get('pb')!.close();
        await topo.netdevs.get('b')!.close();
        addTap('b');
        reopens++;
      }
      if (round % 20 === 5) {
        stop(); // the consumer stalls: the ring fills, drops are counted
      } else if (round % 20 === 10) {
        stop = port.onFrames((b) => (jsFrames += b.length));
      }
      const bad = dp.stats().filter((s) => s.framesIn !== s.framesOut + s.queued + s.dropped);
      if (bad.length > 0) throw new Error(`not conserved: ${bad.map((s) => s.name).join(', ')}`);
    }
    stop();
    server.kill('SIGKILL');
    const stats = dp.stats();
    const moved = stats.reduce((n, s) => n + s.framesIn, 0);
    const segments = stats.reduce((n, s) => n + s.segments, 0);
    say(
      `${seconds} s: ${flaps} link flaps, ${reopens} netdev reopens, ${moved} frames in, ${segments} software segments, ${jsFrames} frames read by JavaScript`,
    );
    if (moved < 1000) throw new Error(`too little traffic moved (${moved} frames): the load did not run`);
    ok = true;
  } finally {
    for (const c of children) c.kill('SIGKILL');
    await topo.close();
    dp.close();
    ns.a.dispose();
    ns.b.dispose();
  }
  say(ok ? 'done, every client conserved' : 'FAILED');
}

main().then(
  () => process.exit(0),
  (e: Error) => {
    console.error(`sanitize-load: ${e.stack ?? e.message}`);
    process.exit(1);
  },
);
