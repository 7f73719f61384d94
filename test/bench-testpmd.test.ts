// The benchmark's reading of dpdk-testpmd's periodic statistics (bench/lib/dpdk.ts) and its
// command line for the DPDK variants; no DPDK needed: the input is testpmd's text as printed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lastPortStats, statsBlocks, testpmdCommand, removeRuntimeDir } from '../bench/lib/dpdk';
import { parseArgs } from '../bench/run';

const block = (port: number, rx: number, tx: number) =>
  [
    `  ######################## NIC statistics for port ${port}  ########################`,
    `  RX-packets: ${rx}          RX-missed: 0          RX-bytes:  ${rx * 60}`,
    '  RX-errors: 0',
    '  RX-nombuf:  0         ',
    `  TX-packets: ${tx}          TX-errors: 0          TX-bytes:  ${tx * 60}`,
    '',
    '  Throughput (since last show)',
    '  Rx-pps:            0          Rx-bps:            0',
    '  Tx-pps:            0          Tx-bps:            0',
    '  ############################################################################',
    '',
  ].join('\n');

test('testpmd stats: the last complete block of a port, a block still arriving is not counted', () => {
  assert.equal(lastPortStats('Port 0: 5E:89:A2:F5:02:3E\n', 0), undefined);
  const two = '\x1b[2J\x1b[1;1H\nPort statistics ====\n' + block(0, 5, 7) + block(1, 7, 5) + block(0, 1005, 2007);
  assert.equal(statsBlocks(two, 0), 2);
  assert.equal(statsBlocks(two, 1), 1);
  assert.deepEqual(lastPortStats(two, 0), { rxPackets: 1005, txPackets: 2007, rxMissed: 0, txErrors: 0 });
  assert.deepEqual(lastPortStats(two, 1), { rxPackets: 7, txPackets: 5, rxMissed: 0, txErrors: 0 });
  const partial = two + block(0, 9999, 9999).slice(0, 200); // cut before Tx-pps
  assert.equal(statsBlocks(partial, 0), 2);
  assert.equal(lastPortStats(partial, 0), undefined);
});

test('testpmd command: no hugepages, no PCI, an np-named file prefix, pinned lcores', () => {
  const t = testpmdCommand({ cpu: 1, vdevs: ['net_tap0,iface=npx'], forwardMode: 'txonly', txLength: 60 });
  try {
    assert.match(t.prefix, /^np/);
    for (const a of [
      '--no-huge',
      '--no-pci',
      '--no-shconf',
      '--auto-start',
      '--txpkts=60',
      '--vdev=net_tap0,iface=npx',
    ])
      assert.ok(t.args.includes(a), a);
    assert.equal(t.args[t.args.indexOf('--lcores') + 1], '0@1,1@1');
    assert.equal(t.args[t.args.indexOf('--file-prefix') + 1], t.prefix);
  } finally {
    removeRuntimeDir(t.prefix);
  }
});

test('bench arguments: vhost selects the vhost-user workload', () => {
  assert.equal(parseArgs(['vhost', '--quick']).vhost, true);
  assert.equal(parseArgs(['--quick']).vhost, false);
});
