// netplane's vhost-user front-end against DPDK 22.11's vhost PMD (Debian's dpdk-testpmd,
// --no-huge): namespace A -- TAP -- netplane (-netdev vhost-user, -link) == vhost-user ==
// testpmd (net_vhost0, io forwarding) -- net_tap -- namespace B. Ping and a TCP stream
// cross; testpmd killed: the link goes down, QMP says why, frames for it are counted drops;
// testpmd restarted: reconnect=1 brings the link and the traffic back. Both socket
// directions: testpmd listening (netplane connects), and client=1 (netplane listens).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { kTestpmdReady, testpmdCommand, type TestpmdCommand } from '../bench/lib/dpdk';
import { hasBit, VirtioF, VirtioNetF } from '../lib/devices/virtio-net-features';
import { iperf, ping, type Side } from './helpers/dataplane-env';
import { NetNs, npName, sh } from './helpers/netns';
import { QmpTestClient, type QmpMessage } from './helpers/qmp-client';
import { needsPrivileged } from './helpers/tools';

const CLI = path.join(__dirname, '..', 'lib', 'cli', 'main.ts');
const T = { ...needsPrivileged('dpdk-testpmd', 'ping', 'iperf3'), timeout: 120_000 };

interface Testpmd {
  child: ChildProcess;
  cmd: TestpmdCommand;
  out: () => string;
}

async function waitFor(what: string, cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function startTestpmd(sock: string, tap: string, client: boolean): Promise<Testpmd> {
  const cmd = testpmdCommand({
    cpu: 1,
    vdevs: [`net_vhost0,iface=${sock},queues=1${client ? ',client=1' : ''}`, `net_tap0,iface=${tap}`],
    forwardMode: 'io',
  });
  const child = spawn('dpdk-testpmd', cmd.args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const t: Testpmd = { child, cmd, out: () => out };
  await waitFor('testpmd ready', () => out.includes(kTestpmdReady) || child.exitCode !== null, 30_000);
  if (child.exitCode !== null) throw new Error(`testpmd exited: ${out.slice(-2000)}`);
  return t;
}

async function stopTestpmd(t: Testpmd | undefined, signal: NodeJS.Signals = 'SIGINT'): Promise<void> {
  if (!t) return;
  if (t.child.exitCode === null && t.child.signalCode === null) {
    const exited = new Promise((r) => t.child.once('exit', r));
    t.child.kill(signal);
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (t.child.exitCode === null && t.child.signalCode === null) t.child.kill('SIGKILL');
  }
  t.cmd.cleanup();
}

async function stats(qmp: QmpTestClient, name: string): Promise<QmpMessage> {
  const r = await qmp.execute('query-netplane-stats', { name });
  return r.return[0];
}

for (const mode of ['netplane connects', 'netplane listens'] as const) {
  describe(`vhost-user front-end against DPDK testpmd (${mode})`, T, () => {
    test('ping and TCP across; testpmd killed: link down, event, drops; restarted: reconnect', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'np-vudpdk-'));
      const sock = path.join(dir, 'vu.sock');
      const qmpSock = path.join(dir, 'qmp.sock');
      const tapA = npName('drfa');
      const tapB = npName('drfb');
      const server = mode === 'netplane listens';
      const nsA = new NetNs('drA');
      const nsB = new NetNs('drB');
      const net = 100 + (process.pid % 100);
      const a = { ns: nsA, ip: `10.214.${net}.1` } as Side;
      const b = { ns: nsB, ip: `10.214.${net}.2` } as Side;
      let pmd: Testpmd | undefined;
      let np: ChildProcess | undefined;
      let qmp: QmpTestClient | undefined;
      let stderr = '';
      try {
        nsA.disableIpv6();
        nsB.disableIpv6();
        const bringUpB = (): void => nsB.adopt(tapB, `${b.ip}/24`);
        if (!server) {
          pmd = await startTestpmd(sock, tapB, false);
          bringUpB();
        }
        np = spawn(
          process.execPath,
          [
            '--import',
            'tsx',
            CLI,
            '-chardev',
            server ? `socket,id=c0,path=${sock},server=on,wait=off` : `socket,id=c0,path=${sock},reconnect=1`,
            '-netdev',
            'vhost-user,id=n0,chardev=c0',
            '-netdev',
            `tap,id=t0,ifname=${tapA},vnet_hdr=on`,
            '-link',
            'n0,t0',
            '-qmp',
            `unix:${qmpSock},server=on,wait=off`,
          ],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        );
        np.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
        await waitFor('the QMP socket', () => fs.existsSync(qmpSock) || np!.exitCode !== null, 20_000);
        assert.equal(np.exitCode, null, stderr);
        qmp = await QmpTestClient.connect(qmpSock);
        await qmp.next();
        await qmp.execute('qmp_capabilities');
        nsA.adopt(tapA, `${a.ip}/24`);
        if (server) {
          pmd = await startTestpmd(sock, tapB, true);
          bringUpB();
        }
        const up = await qmp.nextEvent('NETPLANE_VHOST_USER_CONNECTED', 15_000);
        assert.deepEqual(up.data, { 'netdev-id': 'n0', 'chardev-id': 'c0' });
        assert.equal((await stats(qmp, 'n0'))['link-up'], true);
        const info = await qmp.execute('human-monitor-command', { 'command-line': 'info network' });
        assert.match(info.return, /n0: index=0,type=vhost-user,vhost-user0 to c0/);

        // What the driver acked of the vhost PMD's offer: EVENT_IDX and MRG_RXBUF always
        // (DPDK offers both); offloads only as the PMD offers them (tso=1 for TSO).
        const acked = BigInt((await stats(qmp, 'n0')).virtio.features);
        assert.ok(hasBit(acked, VirtioF.RING_EVENT_IDX), `EVENT_IDX acked (0x${acked.toString(16)})`);
        assert.ok(hasBit(acked, VirtioNetF.MRG_RXBUF), `MRG_RXBUF acked (0x${acked.toString(16)})`);
        process.stdout.write(`# ${mode}: features acked 0x${acked.toString(16)}\n`);

        assert.ok(ping(a, b.ip), 'ping A -> B through testpmd');
        const bps = await iperf(a, b, [], 2).catch(async (e: Error) => {
          // A stalled stream: what each side counted says where the frames stopped.
          throw new Error(
            `${e.message}; n0: ${JSON.stringify(await stats(qmp!, 'n0'))}; t0: ${JSON.stringify(await stats(qmp!, 't0'))}`,
          );
        });
        assert.ok(bps > 20e6, `TCP A -> B ${bps} bit/s`);
        process.stdout.write(`# ${mode}: TCP through netplane + testpmd: ${(bps / 1e6).toFixed(0)} Mbit/s\n`);
        const v = (await stats(qmp, 'n0')).virtio;
        if (hasBit(acked, VirtioNetF.HOST_TSO4)) assert.ok(v['tx-gso-frames'] > 0, 'TSO frames went to testpmd whole');
        assert.ok(v['notifies-suppressed'] > 0, 'kicks the vhost PMD waived (EVENT_IDX)');
        process.stdout.write(`# ${mode}: virtio counters ${JSON.stringify(v)}\n`);

        // testpmd dies: the connection closes, the link goes down, frames are counted drops.
        const killedAt = Date.now();
        await stopTestpmd(pmd, 'SIGKILL');
        pmd = undefined;
        const down = await qmp.nextEvent('NETPLANE_VHOST_USER_DISCONNECTED', 10_000);
        assert.equal(down.data['netdev-id'], 'n0');
        let s0 = await stats(qmp, 'n0');
        for (let i = 0; i < 100 && s0['link-up'] !== false; i++) {
          await new Promise((r) => setTimeout(r, 20));
          s0 = await stats(qmp, 'n0');
        }
        assert.equal(s0['link-up'], false);
        const downMs = Date.now() - killedAt;
        assert.equal(ping(a, b.ip, 2), false);
        const s1 = await stats(qmp, 'n0');
        assert.ok(s1.drops['link-down'] > s0.drops['link-down'], 'frames for the dead back-end are counted');
        assert.equal(s1['frames-in'], s1['frames-out'] + s1.queued + s1.dropped);

        // testpmd comes back: reconnect (netplane retries every second, or accepts), traffic resumes.
        // testpmd's stale socket file would stop its bind (netplane's own socket stays).
        if (!server) fs.rmSync(sock, { force: true });
        pmd = await startTestpmd(sock, tapB, server);
        const t0 = Date.now();
        bringUpB();
        await qmp.nextEvent('NETPLANE_VHOST_USER_CONNECTED', 15_000);
        const reconnectMs = Date.now() - t0;
        // The restarted testpmd made a new TAP (a new MAC): forget the old neighbour entry.
        nsA.exec('ip', ['neigh', 'flush', 'dev', tapA], { allowFail: true });
        try {
          await waitFor('ARP settles', () => ping(a, b.ip, 1), 10_000);
        } catch (e) {
          const st = await stats(qmp, 'n0');
          throw new Error(`${(e as Error).message}; n0: ${JSON.stringify(st)}; testpmd: ${pmd.out().slice(-1500)}`);
        }
        assert.ok(ping(a, b.ip), 'ping after the restart');
        process.stdout.write(
          `# ${mode}: link down ${downMs} ms after the kill; link up ${reconnectMs} ms after testpmd was ready again\n`,
        );
      } finally {
        qmp?.close();
        if (np && np.exitCode === null) {
          const exited = new Promise((r) => np!.once('exit', r));
          np.kill('SIGTERM');
          await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
          if (np.exitCode === null) np.kill('SIGKILL');
        }
        await stopTestpmd(pmd);
        nsA.dispose();
        nsB.dispose();
        sh('ip', ['link', 'del', tapA], { allowFail: true });
        sh('ip', ['link', 'del', tapB], { allowFail: true });
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}
