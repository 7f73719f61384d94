// The test guest end to end, without vhost-user: QEMU (TCG) boots the guest from
// scripts/build-guest.sh with a virtio-net-pci NIC on a TAP that QEMU itself creates inside
// an np namespace (so the TAP, its address and the namespace vanish together). The guest
// pings the TAP's host side, streams TCP into a Node sink running in that namespace, sees
// carrier, and sets two combined channels with ethtool (the TAP is multiqueue).
// The vhost-user tests build on the same helper (test/helpers/guest.ts).
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { test } from 'node:test';
import { Guest } from './helpers/guest';
import { NetNs, npName } from './helpers/netns';
import { needs, needsPrivileged } from './helpers/tools';

const HOST_IP = '10.231.7.1';
const GUEST_IP = '10.231.7.2';
const STREAM_BLOCKS = 64; // of 64 KiB: 4 MiB, a few seconds under TCG

// A TCP sink in the namespace: prints its port, then the byte count of each finished connection.
const SINK = `
const net = require('node:net');
const srv = net.createServer((s) => {
  let n = 0;
  s.on('data', (d) => (n += d.length));
  s.on('end', () => console.log(JSON.stringify({ bytes: n })));
  s.on('error', (e) => console.log(JSON.stringify({ error: e.message, bytes: n })));
});
srv.listen(0, process.argv[1], () => console.log(JSON.stringify({ port: srv.address().port })));
`;

/** The next JSON line from the child that has `key`, or a rejection after timeoutMs. */
function jsonLine(child: ChildProcess, key: string, timeoutMs: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(
      () => done(new Error(`no "${key}" line from the sink within ${timeoutMs} ms: ${buf}`)),
      timeoutMs,
    );
    const onData = (d: Buffer) => {
      buf += d.toString();
      for (const line of buf.split('\n')) {
        try {
          const v = JSON.parse(line) as Record<string, unknown>;
          if (key in v) return done(undefined, v);
        } catch {
          /* partial line */
        }
      }
    };
    const onExit = () => done(new Error(`the sink exited: ${buf}`));
    const done = (err?: Error, v?: Record<string, unknown>) => {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve(v!);
    };
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
  });
}

test(
  'guest boots on a TAP NIC: ping, TCP stream, carrier, ethtool',
  needsPrivileged('qemu-system-x86_64', 'ip'),
  async (t) => {
    const t0 = performance.now();
    using ns = new NetNs('gst');
    ns.disableIpv6();
    const tap = npName('gtap');
    let sink: ChildProcess | undefined;
    // Declared after ns: disposed before it, also when an assertion fails.
    using _sink = { [Symbol.dispose]: () => void sink?.kill('SIGKILL') };

    await using guest = await Guest.boot({
      netns: ns.name,
      smp: 2,
      qemuArgs: [
        '-netdev',
        `tap,id=n0,ifname=${tap},script=no,downscript=no,vhost=off,queues=2`,
        // romfile= : no iPXE option ROM, which only slows the boot.
        '-device',
        'virtio-net-pci,netdev=n0,mac=52:54:00:6e:70:02,mq=on,vectors=6,romfile=',
      ],
    });
    const bootMs = guest.bootMs;
    t.diagnostic(`guest ${guest.kernelVersion} booted in ${bootMs} ms`);

    ns.exec('ip', ['addr', 'add', `${HOST_IP}/24`, 'dev', tap]);
    ns.exec('ip', ['link', 'set', tap, 'up']);
    await guest.check(`ip addr add ${GUEST_IP}/24 dev eth0 && ip link set eth0 up`);

    const carrier = await guest.waitFor('cat /sys/class/net/eth0/carrier', (r) => r.output.trim() === '1', 10_000);
    assert.equal(carrier.status, 0);

    const ping = await guest.run(`ping -c 3 -W 1 ${HOST_IP}`, { timeoutMs: 15_000 });
    assert.equal(ping.status, 0, ping.output);
    assert.match(ping.output, /3 packets transmitted, 3 packets received/);

    sink = ns.spawn(process.execPath, ['-e', SINK, HOST_IP]);
    const { port } = await jsonLine(sink, 'port', 10_000);
    const received = jsonLine(sink, 'bytes', 60_000);
    const streamStart = performance.now();
    const stream = await guest.run(
      `dd if=/dev/zero bs=64k count=${STREAM_BLOCKS} 2>/dev/null | nc ${HOST_IP} ${port}`,
      { timeoutMs: 60_000 },
    );
    assert.equal(stream.status, 0, stream.output);
    const got = await received;
    const streamMs = performance.now() - streamStart;
    assert.deepEqual(got, { bytes: STREAM_BLOCKS * 65536 });
    t.diagnostic(`TCP stream: ${STREAM_BLOCKS * 64} KiB in ${Math.round(streamMs)} ms`);

    // The guest counted the stream on eth0 (field 10 of /proc/net/dev is transmitted bytes).
    const dev = await guest.check('cat /proc/net/dev');
    const eth0 = /^\s*eth0:\s*(.*)$/m.exec(dev);
    assert.ok(eth0, dev);
    assert.ok(Number(eth0[1].trim().split(/\s+/)[8]) >= STREAM_BLOCKS * 65536, eth0[0]);

    await guest.check('ethtool -L eth0 combined 2');
    assert.match(await guest.check('ethtool -l eth0'), /Current hardware settings:[\s\S]*Combined:\s+2/);
    assert.match(await guest.check('ethtool -k eth0'), /tx-checksumming: on/);

    // A command's status and output come back exactly.
    assert.deepEqual(await guest.run('printf "a\\nb"; exit 3'), { status: 3, output: 'a\nb' });
    // A hung command is bounded, and all of it is killed, a pipeline too.
    await assert.rejects(guest.run('sleep 37 | sleep 38', { timeoutMs: 1000 }), /timed out after 1000 ms/);
    const left = await guest.run("ps -o args | grep -c '^sleep 3[78]'");
    assert.deepEqual(left, { status: 1, output: '0\n' });

    const totalMs = Math.round(performance.now() - t0);
    t.diagnostic(`boot ${bootMs} ms, whole test ${totalMs} ms`);
    console.log(
      `guest.test: kernel ${guest.kernelVersion}, boot ${bootMs} ms, TCP ${Math.round(streamMs)} ms, whole test ${totalMs} ms`,
    );
  },
);

test(
  'a guest that cannot boot says why, with QEMU stderr and the console tail',
  needs('qemu-system-x86_64'),
  async () => {
    await assert.rejects(Guest.boot({ qemuArgs: ['-device', 'np-no-such-device'] }), (e: Error) => {
      assert.match(e.message, /guest did not boot: QEMU exited \(code 1/);
      assert.match(e.message, /--- QEMU stderr ---\n.*'np-no-such-device' is not a valid device model name/);
      assert.match(e.message, /--- console tail ---/);
      return true;
    });
    // A kernel that finds no init panics, and QEMU (-no-reboot) exits: the console tail shows the panic.
    await assert.rejects(Guest.boot({ append: 'rdinit=/np-no-such-init' }), (e: Error) => {
      assert.match(e.message, /guest did not boot: QEMU exited/);
      assert.match(e.message, /--- console tail ---\n[\s\S]*Kernel panic/);
      return true;
    });
  },
);
