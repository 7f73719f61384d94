// HMP: the command grammar and QEMU 7.2's texts, the QemuOpts path of netdev_add, and the
// `-monitor stdio` loop (prompt, commands, quit).
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import { Hmp, runStdioMonitor } from '../lib/control/hmp';
import { Monitor } from '../lib/control/monitor';
import { Topology } from '../lib/topology/topology';

function setup(): { topology: Topology; monitor: Monitor; hmp: Hmp; reported: string[] } {
  const topology = new Topology();
  const reported: string[] = [];
  const monitor = new Monitor(topology, { errorReport: (m) => reported.push(m) });
  return { topology, monitor, hmp: new Hmp(monitor), reported };
}

describe('HMP commands', () => {
  test('info network follows the topology', async () => {
    const { topology, hmp } = setup();
    assert.equal(hmp.execute('info network'), '');
    topology.addNetdev({ type: 'hubport', id: 'hp0', hubid: 0 });
    topology.addDevice({ driver: 'virtio-net-pci', id: 'nic0', netdev: 'hp0', mac: '52:54:00:12:34:56', features: {} });
    assert.equal(hmp.execute('info network'), topology.infoNetwork());
    assert.equal(hmp.execute('  info   network  '), topology.infoNetwork());
    assert.match(
      hmp.execute('info network'),
      /^hub 0\n \\ hp0: nic0: index=0,type=nic,model=virtio-net-pci,macaddr=52:54:00:12:34:56\n$/,
    );
    assert.equal(hmp.executeCrLf('info network'), topology.infoNetwork().replaceAll('\n', '\r\n'));
    await topology.close();
  });

  test('set_link: on/off only, QEMU syntax errors, library errors as "Error: "', async () => {
    const { topology, hmp } = setup();
    topology.addNetdev({ type: 'hubport', id: 'h1', hubid: 1 });
    assert.equal(hmp.execute('set_link h1 off'), '');
    assert.equal(topology.netdevs.get('h1')!.linkUp, false);
    assert.equal(hmp.execute('set_link "h1" on'), '');
    assert.equal(topology.netdevs.get('h1')!.linkUp, true);
    const tryHelp = 'Try "help set_link" for more information\n';
    assert.equal(hmp.execute('set_link'), `set_link: string expected\n${tryHelp}`);
    assert.equal(hmp.execute('set_link h1'), `Expected 'on' or 'off'\n${tryHelp}`);
    assert.equal(hmp.execute('set_link h1 OFF'), `Expected 'on' or 'off'\n${tryHelp}`);
    assert.equal(hmp.execute('set_link h1 false'), `Expected 'on' or 'off'\n${tryHelp}`);
    assert.equal(hmp.execute('set_link h1 on extra'), `set_link: extraneous characters at the end of line\n${tryHelp}`);
    assert.equal(hmp.execute('set_link x on'), "Error: Device 'x' not found\n");
    await topology.close();
  });

  test('netdev_add: QemuOpts duplicate goes to stderr, a QMP-made duplicate prints Error:', async () => {
    const { topology, hmp, reported } = setup();
    const tryHelp = 'Try "help netdev_add" for more information\n';
    assert.equal(hmp.execute('netdev_add hubport,id=h1,hubid=1'), '');
    assert.ok(topology.netdevs.has('h1'));
    // Second time: QemuOpts already has h1 -> QEMU reports on stderr, the monitor says "Try".
    assert.equal(hmp.execute('netdev_add hubport,id=h1,hubid=1'), tryHelp);
    assert.deepEqual(reported, ["Duplicate ID 'h1' for netdev"]);
    // A netdev added through QMP has no QemuOpts: the net core's error.
    topology.addNetdev({ type: 'hubport', id: 'q1', hubid: 1 }, { via: 'qmp' });
    assert.equal(hmp.execute('netdev_add hubport,id=q1,hubid=1'), "Error: Duplicate ID 'q1'\n");
    // A malformed id fails in QemuOpts too, with QEMU's hint line.
    reported.length = 0;
    assert.equal(hmp.execute('netdev_add hubport,id=1x,hubid=1'), tryHelp);
    assert.deepEqual(reported, [
      "Parameter 'id' expects an identifier\nIdentifiers consist of letters, digits, '-', '.', '_', starting with a letter.",
    ]);
    // Errors after QemuOpts: "Error: ".
    assert.equal(hmp.execute('netdev_add'), "Error: Parameter 'id' is missing\n");
    assert.equal(hmp.execute('netdev_add tap'), "Error: Parameter 'id' is missing\n");
    assert.equal(hmp.execute('netdev_add bogus,id=x'), "Error: Parameter 'type' does not accept value 'bogus'\n");
    assert.equal(hmp.execute('netdev_add hubport,id=f'), "Error: Parameter 'hubid' is missing\n");
    assert.equal(hmp.execute('netdev_add hubport,id=e,hubid=1,netdev=nosuch'), "Error: netdev 'nosuch' not found\n");
    assert.equal(
      hmp.execute('netdev_add help'),
      'Available netdev backend types:\nsocket\nstream\ndgram\nhubport\ntap\nuser\nvhost-user\n',
    );
    // After netdev_del the id (and its QemuOpts) is free again.
    assert.equal(hmp.execute('netdev_del h1'), '');
    assert.equal(hmp.execute('netdev_add hubport,id=h1,hubid=1'), '');
    await topology.close();
  });

  test('netdev_del, unknown commands, help, quit', async () => {
    const { topology, monitor, hmp } = setup();
    topology.addNetdev({ type: 'hubport', id: 'h1', hubid: 1 });
    assert.equal(
      hmp.execute('netdev_del'),
      'netdev_del: string expected\nTry "help netdev_del" for more information\n',
    );
    assert.equal(hmp.execute('netdev_del h1'), '');
    assert.equal(hmp.execute('netdev_del h1'), "Error: Device 'h1' not found\n");
    assert.equal(hmp.execute('bogus'), "unknown command: 'bogus'\n");
    assert.equal(hmp.execute('info bogus'), "unknown command: 'info bogus'\n");
    assert.equal(hmp.execute('help bogus'), "unknown command: 'bogus'\n");
    assert.equal(hmp.execute(''), '');
    assert.match(hmp.execute('help set_link'), /^set_link name on\|off -- /);
    assert.match(hmp.execute('help'), /netdev_add .* -- /);
    assert.match(hmp.execute('info'), /^info network  -- /);
    assert.match(hmp.execute('info version'), /^7\.2\.0 \(netplane /);
    const events: string[] = [];
    monitor.on('event', (name) => events.push(name));
    let quit = false;
    monitor.on('quit', () => (quit = true));
    assert.equal(hmp.execute('q'), '');
    assert.deepEqual(events, ['SHUTDOWN']);
    await new Promise((r) => setImmediate(r));
    assert.equal(quit, true);
    await topology.close();
  });

  test('announce_self sends one RARP per NIC in the first round', async () => {
    const { topology, hmp } = setup();
    topology.addNetdev({ type: 'hubport', id: 'hp0', hubid: 0 });
    const nic = topology.addDevice({
      driver: 'virtio-net-pci',
      id: 'nic0',
      netdev: 'hp0',
      mac: '52:54:00:12:34:56',
      features: {},
    });
    const frames: Buffer[] = [];
    nic.on('announce', (f) => frames.push(f));
    assert.equal(hmp.execute('announce_self'), '');
    assert.equal(frames.length, 1);
    assert.equal(frames[0]!.readUInt16BE(12), 0x8035);
    assert.equal(hmp.execute('announce_self nosuch'), '');
    assert.equal(frames.length, 1);
    await topology.close();
  });
});

describe('-monitor stdio', () => {
  test('banner, (qemu) prompt per command, output, quit ends the loop', { timeout: 10_000 }, async () => {
    const { topology, hmp } = setup();
    const input = new PassThrough();
    const output = new PassThrough();
    let text = '';
    output.setEncoding('utf8').on('data', (t: string) => (text += t));
    const loop = runStdioMonitor(hmp, input, output);
    input.write('netdev_add hubport,id=h1,hubid=1\n');
    input.write('info network\n');
    input.write('set_link h1\n');
    input.write('quit\n');
    await loop.done;
    assert.match(text, /^netplane .* monitor .* - type 'help' for more information\n\(qemu\) /);
    assert.ok(text.includes('(qemu) hub 1\n \\ h1\n(qemu) '), text);
    assert.ok(text.includes(`Expected 'on' or 'off'\nTry "help set_link" for more information\n(qemu) `), text);
    assert.ok(text.endsWith('(qemu) '), JSON.stringify(text.slice(-40)));
    await topology.close();
  });

  test('end of input ends the loop without quitting', { timeout: 10_000 }, async () => {
    const { topology, monitor, hmp } = setup();
    const input = new PassThrough();
    const output = new PassThrough();
    output.resume();
    const loop = runStdioMonitor(hmp, input, output);
    input.end('info network\n');
    await loop.done;
    assert.equal(monitor.quitRequested, false);
    await topology.close();
  });
});
