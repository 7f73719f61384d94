// announce-self through the native data plane: the Topology builds QEMU's 60-byte RARP for a
// NIC and hands it to DataPlane.sendRaw; NativeDataPlane sends it from the NIC's packet port
// (with a zeroed vnet header when the port negotiated one), so it leaves on the TAP. A
// capture in the TAP's namespace must see the RARP frames with the NIC's MAC.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NativeDataPlane } from '../lib/dataplane/native-dataplane';
import { bit, VirtioF, VirtioStatus } from '../lib/devices/virtio-net-features';
import { Topology } from '../lib/topology';
import { deleteLink, NetNs, npName } from './helpers/netns';
import { privileged } from './helpers/privilege';
import { needsPrivileged } from './helpers/tools';

const MAC = '52:54:00:7a:3c:01';
const ROUNDS = 3;

/** tcpdump in `ns` on `ifname` for RARP frames; resolves with its -e lines once it has `count`. */
function captureRarp(ns: NetNs, ifname: string, count: number) {
  const child = ns.spawn('tcpdump', ['-i', ifname, '-nn', '-e', '-l', '-c', String(count), 'ether proto 0x8035']);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (t: string) => (out += t));
  child.stderr!.setEncoding('utf8').on('data', (t: string) => (err += t));
  const listening = new Promise<void>((resolve, reject) => {
    const check = () => (/listening on/.test(err) ? resolve() : undefined);
    child.stderr!.on('data', check);
    child.once('exit', () => reject(new Error(`tcpdump exited early: ${err}`)));
  });
  const done = new Promise<string[]>((resolve) =>
    child.once('exit', () => resolve(out.split('\n').filter((l) => l.trim() !== ''))),
  );
  return { listening, done, stop: () => child.kill('SIGTERM') };
}

for (const variant of [
  { title: 'TAP without a vnet header', vnetHdr: false, features: 0n, portHdr: 0 },
  {
    title: 'TAP with a vnet header, VERSION_1 driver (12-byte header on the port)',
    vnetHdr: true,
    features: bit(VirtioF.VERSION_1),
    portHdr: 12,
  },
]) {
  test(
    `announce-self sends RARPs out of the TAP: ${variant.title}`,
    { ...needsPrivileged('tcpdump'), timeout: 30_000 },
    async () => {
      const ifname = npName('ann');
      const dp = new NativeDataPlane();
      const topo = new Topology({ dataPlane: dp });
      let ns: NetNs | undefined;
      let cap: ReturnType<typeof captureRarp> | undefined;
      const timer = setTimeout(() => cap?.stop(), 15_000);
      try {
        topo.addNetdev({ type: 'tap', id: 'hn0', ifname, vnet_hdr: variant.vnetHdr });
        const nic = topo.addDevice({ driver: 'virtio-net-pci', id: 'nic0', netdev: 'hn0', mac: MAC, features: {} });
        const d = nic.device;
        d.setStatus(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER);
        d.setDriverFeatures(variant.features);
        d.setStatus(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER | VirtioStatus.FEATURES_OK | VirtioStatus.DRIVER_OK);
        assert.equal(dp.port(nic.queues[0].handle)?.vnetHdrLen, variant.portHdr);

        ns = new NetNs('ann');
        ns.adopt(ifname);
        cap = captureRarp(ns, ifname, ROUNDS);
        await cap.listening;

        topo.announceSelf({ initial: 20, max: 100, rounds: ROUNDS, step: 20 });
        const lines = await cap.done;
        assert.equal(lines.length, ROUNDS, lines.join('\n'));
        for (const l of lines) {
          // "<src> > ff:ff:ff:ff:ff:ff, ethertype Reverse ARP (0x8035), length 60: Reverse Request who-is <mac> tell <mac>"
          assert.match(
            l,
            new RegExp(`${MAC} > ff:ff:ff:ff:ff:ff, ethertype Reverse ARP \\(0x8035\\), length 60: .*${MAC}`),
          );
        }
        const port = dp.stats().find((s) => s.handle === nic.queues[0].handle)!;
        // (framesOut would also count what the namespace sends the NIC: IPv6 solicitations.)
        assert.equal(port.deviceRxFrames, ROUNDS, 'the NIC port took every RARP from JavaScript');
        assert.equal(port.drops.linkDown + port.drops.noPeer + port.drops.badVnetHdr, 0);
      } finally {
        clearTimeout(timer);
        cap?.stop();
        await topo.close();
        dp.close();
        ns?.dispose();
        deleteLink(ifname);
      }
    },
  );
}

test(
  'announce-self from a link-down NIC: the RARP is dropped and counted, nothing leaves',
  { ...privileged(), timeout: 30_000 },
  async () => {
    const ifname = npName('annd');
    const dp = new NativeDataPlane();
    const topo = new Topology({ dataPlane: dp });
    try {
      topo.addNetdev({ type: 'tap', id: 'hn0', ifname });
      const nic = topo.addDevice({ driver: 'virtio-net-pci', id: 'nic0', netdev: 'hn0', mac: MAC, features: {} });
      topo.setLink('nic0', false);
      topo.announceSelf({ initial: 20, max: 100, rounds: 1, step: 20 });
      const handle = nic.queues[0].handle;
      const end = Date.now() + 5_000;
      let port = dp.stats().find((s) => s.handle === handle)!;
      while (port.framesIn < 1 && Date.now() < end) {
        await new Promise((r) => setTimeout(r, 20));
        port = dp.stats().find((s) => s.handle === handle)!;
      }
      assert.equal(port.framesIn, 1);
      assert.equal(port.drops.linkDown, 1);
      assert.equal(port.framesOut, 0);
    } finally {
      await topo.close();
      dp.close();
      deleteLink(ifname);
    }
  },
);
