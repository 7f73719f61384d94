// QMP conversations over a real unix socket: greeting, negotiation, every command's success
// and error replies (QEMU 7.2's classes and texts), events, malformed and hostile input, and
// clients that vanish or flood while others keep being served.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { serveQmp, type Monitor } from '../lib/control';
import { JsonFloat, parseQmpJson, QmpJsonReader, toQmpJson } from '../lib/control/qmp-json';
import { QmpServer } from '../lib/control/qmp-server';
import { Topology } from '../lib/topology/topology';
import { tempDir } from './helpers/qemu';
import { QmpTestClient } from './helpers/qmp-client';

interface Fixture {
  topology: Topology;
  monitor: Monitor;
  server: QmpServer;
  sock: string;
  quits: number;
}

/** A hubport-only topology (no TAP, no privilege) behind a QMP server in a temp dir. */
async function withServer(fn: (f: Fixture) => Promise<void>, opts: { maxClients?: number } = {}): Promise<void> {
  const dir = tempDir('qmp-test');
  const sock = path.join(dir, 'qmp.sock');
  const topology = new Topology();
  // The library's entry point, as an application embedding netplane would use it.
  const service = await serveQmp(topology, { path: sock, errorReport: () => {}, ...opts });
  const { monitor, server } = service;
  const f: Fixture = { topology, monitor, server, sock, quits: 0 };
  monitor.on('quit', () => f.quits++);
  try {
    await fn(f);
  } finally {
    await service.close();
    await topology.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a reply as the client parsed it
function errorOf(reply: Record<string, any>): { class: string; desc: string } {
  assert.ok('error' in reply, `expected an error reply, got ${JSON.stringify(reply)}`);
  return reply.error;
}

const T = { timeout: 20_000 };

describe('QMP socket and greeting', () => {
  test('socket is created mode 0600, greeting has QEMU shape, socket removed on close', T, async () => {
    const dir = tempDir('qmp-mode');
    const sock = path.join(dir, 'q.sock');
    const oldMask = process.umask(0); // a permissive umask must not widen the socket
    let server: QmpServer;
    try {
      server = await QmpServer.listen({
        path: sock,
        commands: new Map(),
        version: { qemu: { major: 7, minor: 2, micro: 0 }, package: 'netplane test' },
      });
    } finally {
      process.umask(oldMask);
    }
    try {
      const st = fs.statSync(sock);
      assert.ok(st.isSocket());
      assert.equal(st.mode & 0o777, 0o600);
      // no leftovers of the private bind directory
      assert.deepEqual(fs.readdirSync(dir), ['q.sock']);
      const c = await QmpTestClient.connect(sock);
      const greeting = await c.next();
      assert.deepEqual(greeting, {
        QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 }, package: 'netplane test' }, capabilities: [] },
      });
      c.close();
      await server.close();
      assert.equal(fs.existsSync(sock), false);
    } finally {
      await server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('greeting reports QEMU 7.2 in "qemu" and netplane in "package"', T, async () => {
    await withServer(async (f) => {
      const { client, greeting } = await QmpTestClient.open(f.sock);
      assert.deepEqual(greeting.QMP.version.qemu, { major: 7, minor: 2, micro: 0 });
      assert.match(greeting.QMP.version.package, /^netplane \d+\.\d+\.\d+/);
      assert.deepEqual(await client.execute('query-version'), { return: greeting.QMP.version });
      client.close();
    });
  });

  test('stale socket is replaced; live socket and non-socket files are refused', T, async () => {
    const dir = tempDir('qmp-stale');
    try {
      const sock = path.join(dir, 'q.sock');
      const version = { qemu: { major: 7, minor: 2, micro: 0 }, package: 'x' };
      // A stale socket file: its server is gone (libuv unlinks on close, so hide it meanwhile).
      const dead = net.createServer();
      await new Promise<void>((r) => dead.listen(sock, r));
      fs.renameSync(sock, sock + '.keep');
      await new Promise<void>((r) => dead.close(() => r()));
      fs.renameSync(sock + '.keep', sock);
      const s1 = await QmpServer.listen({ path: sock, commands: new Map(), version });
      try {
        await assert.rejects(QmpServer.listen({ path: sock, commands: new Map(), version }), /Address already in use/);
      } finally {
        await s1.close();
      }
      fs.writeFileSync(sock, 'not a socket');
      await assert.rejects(QmpServer.listen({ path: sock, commands: new Map(), version }), /not a socket/);
      assert.equal(fs.readFileSync(sock, 'utf8'), 'not a socket');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('QMP capabilities negotiation', () => {
  test('commands before qmp_capabilities fail with CommandNotFound; id echoed', T, async () => {
    await withServer(async (f) => {
      const c = await QmpTestClient.connect(f.sock);
      await c.next();
      const expect = { class: 'CommandNotFound', desc: "Expecting capabilities negotiation with 'qmp_capabilities'" };
      assert.deepEqual(await c.execute('query-version'), { error: expect });
      assert.deepEqual(await c.execute('set_link', { name: 'x', up: true }, 5), { id: 5, error: expect });
      assert.deepEqual(await c.execute('no-such-command'), { error: expect });
      assert.deepEqual(errorOf(await c.execute('qmp_capabilities', { enable: ['oob'] })), {
        class: 'GenericError',
        desc: "Capability 'oob' not available",
      });
      assert.deepEqual(errorOf(await c.execute('qmp_capabilities', { enable: ['bogus'] })), {
        class: 'GenericError',
        desc: "Parameter 'null' does not accept value 'bogus'",
      });
      assert.deepEqual(errorOf(await c.execute('qmp_capabilities', { enable: 'oob' })), {
        class: 'GenericError',
        desc: "Invalid parameter type for 'enable', expected: array",
      });
      assert.deepEqual(await c.execute('qmp_capabilities', undefined, 'a'), { return: {}, id: 'a' });
      assert.deepEqual(await c.execute('qmp_capabilities', undefined, 'b'), {
        id: 'b',
        error: { class: 'CommandNotFound', desc: 'Capabilities negotiation is already complete, command ignored' },
      });
      c.close();
    });
  });

  test('events go only to clients that negotiated; they carry a timestamp', T, async () => {
    await withServer(async (f) => {
      const { client: ready } = await QmpTestClient.open(f.sock);
      const waiting = await QmpTestClient.connect(f.sock);
      await waiting.next();
      const before = Date.now() / 1000;
      f.server.emitEvent('TEST_EVENT', { x: 1 });
      f.server.emitEvent('BARE_EVENT');
      const ev = await ready.nextEvent('TEST_EVENT');
      assert.deepEqual(Object.keys(ev), ['timestamp', 'event', 'data']);
      assert.deepEqual(ev.data, { x: 1 });
      assert.ok(Number.isInteger(ev.timestamp.seconds) && Number.isInteger(ev.timestamp.microseconds));
      assert.ok(ev.timestamp.microseconds >= 0 && ev.timestamp.microseconds < 1e6);
      assert.ok(Math.abs(ev.timestamp.seconds - before) < 60);
      const bare = await ready.nextEvent('BARE_EVENT');
      assert.equal('data' in bare, false);
      // The unnegotiated client got nothing; a command shows it is still in negotiation mode.
      assert.equal(errorOf(await waiting.execute('query-version')).class, 'CommandNotFound');
      assert.equal(waiting.events.length, 0);
      ready.close();
      waiting.close();
    });
  });
});

describe('QMP events from the topology', () => {
  test("NIC_RX_FILTER_CHANGED and netplane's link event for connection-driven links", T, async () => {
    await withServer(async (f) => {
      const netdev = f.topology.addNetdev({ type: 'hubport', id: 'hp0', hubid: 0 });
      const nic = f.topology.addDevice({ driver: 'virtio-net-pci', id: 'nic0', netdev: 'hp0', features: {} });
      const { client: c } = await QmpTestClient.open(f.sock);
      // What the device model emits when the guest changes its receive filter.
      nic.emit('rx-filter-changed', { name: 'nic0', path: '/machine/peripheral/nic0/virtio-backend' });
      assert.deepEqual((await c.nextEvent('NIC_RX_FILTER_CHANGED')).data, {
        name: 'nic0',
        path: '/machine/peripheral/nic0/virtio-backend',
      });
      // A backend whose connection drops (not set_link): netplane tells the clients.
      netdev.setLink(false);
      assert.deepEqual((await c.nextEvent('NETPLANE_LINK_CHANGE')).data, {
        name: 'hp0',
        up: false,
        cause: 'connection',
      });
      // set_link itself stays silent, as in QEMU.
      assert.deepEqual(await c.execute('set_link', { name: 'hp0', up: true }), { return: {} });
      assert.deepEqual(await c.execute('query-version', undefined, 'sync'), { return: f.monitor.version, id: 'sync' });
      assert.equal(c.events.length, 0, JSON.stringify(c.events));
      c.close();
    });
  });
});

describe('QMP commands', () => {
  test('set_link: success, DeviceNotFound, missing, wrongly typed and unexpected arguments', T, async () => {
    await withServer(async (f) => {
      f.topology.addNetdev({ type: 'hubport', id: 'hp0', hubid: 0 });
      const { client: c } = await QmpTestClient.open(f.sock);
      assert.deepEqual(await c.execute('set_link', { name: 'hp0', up: false }, 1), { return: {}, id: 1 });
      assert.equal(f.topology.netdevs.get('hp0')!.linkUp, false);
      assert.deepEqual(await c.execute('set_link', { name: 'hp0', up: true }), { return: {} });
      assert.equal(f.topology.netdevs.get('hp0')!.linkUp, true);
      assert.deepEqual(errorOf(await c.execute('set_link', { name: 'nope', up: true })), {
        class: 'DeviceNotFound',
        desc: "Device 'nope' not found",
      });
      assert.deepEqual(errorOf(await c.execute('set_link', { name: 'hp0' })), {
        class: 'GenericError',
        desc: "Parameter 'up' is missing",
      });
      assert.deepEqual(errorOf(await c.execute('set_link')), {
        class: 'GenericError',
        desc: "Parameter 'name' is missing",
      });
      assert.deepEqual(errorOf(await c.execute('set_link', { name: 'hp0', up: 'yes' })), {
        class: 'GenericError',
        desc: "Invalid parameter type for 'up', expected: boolean",
      });
      assert.deepEqual(errorOf(await c.execute('set_link', { name: 1, up: true })), {
        class: 'GenericError',
        desc: "Invalid parameter type for 'name', expected: string",
      });
      assert.deepEqual(errorOf(await c.execute('set_link', { name: 'hp0', up: null })), {
        class: 'GenericError',
        desc: "Invalid parameter type for 'up', expected: boolean",
      });
      assert.deepEqual(errorOf(await c.execute('set_link', { name: 'hp0', up: true, bogus: 1 })), {
        class: 'GenericError',
        desc: "Parameter 'bogus' is unexpected",
      });
      // Type errors come before unknown members, as QEMU's visitor checks them.
      assert.deepEqual(errorOf(await c.execute('set_link', { up: 1, bogus: 1, name: 'x' })), {
        class: 'GenericError',
        desc: "Invalid parameter type for 'up', expected: boolean",
      });
      c.close();
    });
  });

  test('netdev_add and netdev_del: success, duplicate, bad arguments, second delete', T, async () => {
    await withServer(async (f) => {
      const { client: c } = await QmpTestClient.open(f.sock);
      assert.deepEqual(await c.execute('netdev_add', { type: 'hubport', id: 'h1', hubid: 1 }), { return: {} });
      assert.ok(f.topology.netdevs.has('h1'));
      assert.deepEqual(errorOf(await c.execute('netdev_add', { type: 'hubport', id: 'h1', hubid: 1 })), {
        class: 'GenericError',
        desc: "Duplicate ID 'h1'",
      });
      assert.deepEqual(errorOf(await c.execute('netdev_add', { type: 'hubport', id: 'h3', hubid: '1' })), {
        class: 'GenericError',
        desc: "Invalid parameter type for 'hubid', expected: integer",
      });
      assert.deepEqual(errorOf(await c.execute('netdev_add', { type: 'hubport', id: 'h3' })), {
        class: 'GenericError',
        desc: "Parameter 'hubid' is missing",
      });
      assert.deepEqual(errorOf(await c.execute('netdev_add', { id: 'h3' })), {
        class: 'GenericError',
        desc: "Parameter 'type' is missing",
      });
      assert.deepEqual(errorOf(await c.execute('netdev_add')), {
        class: 'GenericError',
        desc: "Parameter 'id' is missing",
      });
      assert.deepEqual(errorOf(await c.execute('netdev_add', { type: 'bogus', id: 'h3' })), {
        class: 'GenericError',
        desc: "Parameter 'type' does not accept value 'bogus'",
      });
      assert.deepEqual(errorOf(await c.execute('netdev_add', { type: 'hubport', id: 'h3', hubid: 1, zz: 1 })), {
        class: 'GenericError',
        desc: "Parameter 'zz' is unexpected",
      });
      assert.equal(
        errorOf(await c.execute('netdev_add', { type: 'hubport', id: '1x', hubid: 1 })).desc,
        "Parameter 'id' expects an identifier",
      );
      assert.equal(f.topology.netdevs.has('h3'), false);

      assert.deepEqual(await c.execute('netdev_del', { id: 'h1' }), { return: {} });
      assert.equal(f.topology.netdevs.has('h1'), false);
      assert.deepEqual(errorOf(await c.execute('netdev_del', { id: 'h1' })), {
        class: 'DeviceNotFound',
        desc: "Device 'h1' not found",
      });
      assert.deepEqual(errorOf(await c.execute('netdev_del', { id: 5 })), {
        class: 'GenericError',
        desc: "Invalid parameter type for 'id', expected: string",
      });
      assert.deepEqual(errorOf(await c.execute('netdev_del')), {
        class: 'GenericError',
        desc: "Parameter 'id' is missing",
      });
      // The id is free again.
      assert.deepEqual(await c.execute('netdev_add', { type: 'hubport', id: 'h1', hubid: 2 }), { return: {} });
      c.close();
    });
  });

  test('query-rx-filter: all NICs, by name, errors; broadcast-allowed is truthful', T, async () => {
    await withServer(async (f) => {
      f.topology.addNetdev({ type: 'hubport', id: 'hp0', hubid: 0 });
      f.topology.addDevice({
        driver: 'virtio-net-pci',
        id: 'nic0',
        netdev: 'hp0',
        mac: '52:54:00:12:34:56',
        features: {},
      });
      const { client: c } = await QmpTestClient.open(f.sock);
      const all = await c.execute('query-rx-filter');
      assert.equal(all.return.length, 1);
      const info = all.return[0];
      assert.equal(info.name, 'nic0');
      assert.equal(info['main-mac'], '52:54:00:12:34:56');
      assert.equal(info.promiscuous, true);
      // QEMU 7.2 says false here although broadcasts are accepted; we say what is true.
      assert.equal(info['broadcast-allowed'], true);
      assert.deepEqual(await c.execute('query-rx-filter', { name: 'nic0' }), all);
      assert.deepEqual(errorOf(await c.execute('query-rx-filter', { name: 'hp0' })), {
        class: 'GenericError',
        desc: "net client(hp0) isn't a NIC",
      });
      assert.deepEqual(errorOf(await c.execute('query-rx-filter', { name: 'x' })), {
        class: 'GenericError',
        desc: 'invalid net client name: x',
      });
      assert.deepEqual(errorOf(await c.execute('query-rx-filter', { name: null })), {
        class: 'GenericError',
        desc: "Invalid parameter type for 'name', expected: string",
      });
      c.close();
    });
  });

  test('human-monitor-command returns HMP text with \\r\\n line ends', T, async () => {
    await withServer(async (f) => {
      const { client: c } = await QmpTestClient.open(f.sock);
      assert.equal(await c.hmp('netdev_add hubport,id=h1,hubid=1'), '');
      assert.equal(await c.hmp('info network'), 'hub 1\r\n \\ h1\r\n');
      assert.equal(await c.hmp('set_link nope off'), "Error: Device 'nope' not found\r\n");
      assert.equal(await c.hmp('bogus'), "unknown command: 'bogus'\r\n");
      assert.equal(await c.hmp(''), '');
      assert.deepEqual(errorOf(await c.execute('human-monitor-command', {})), {
        class: 'GenericError',
        desc: "Parameter 'command-line' is missing",
      });
      assert.deepEqual(
        errorOf(await c.execute('human-monitor-command', { 'command-line': 'info network', 'cpu-index': '0' })),
        {
          class: 'GenericError',
          desc: "Invalid parameter type for 'cpu-index', expected: integer",
        },
      );
      assert.deepEqual(await c.execute('human-monitor-command', { 'command-line': 'info network', 'cpu-index': 0 }), {
        return: 'hub 1\r\n \\ h1\r\n',
      });
      c.close();
    });
  });

  test('query-commands lists every command; announce-self checks its arguments', T, async () => {
    await withServer(async (f) => {
      const { client: c } = await QmpTestClient.open(f.sock);
      const names = (await c.execute('query-commands')).return.map((x: { name: string }) => x.name).sort();
      assert.deepEqual(names, [
        'add-fd',
        'announce-self',
        'chardev-add',
        'chardev-remove',
        'closefd',
        'getfd',
        'human-monitor-command',
        'netdev_add',
        'netdev_del',
        'object-add',
        'object-del',
        'qmp_capabilities',
        'query-chardev',
        'query-commands',
        'query-fdsets',
        'query-netplane-stats',
        'query-rx-filter',
        'query-version',
        'quit',
        'remove-fd',
        'set_link',
      ]);
      assert.deepEqual(errorOf(await c.execute('announce-self', {})), {
        class: 'GenericError',
        desc: "Parameter 'initial' is missing",
      });
      assert.deepEqual(
        errorOf(await c.execute('announce-self', { initial: 1, max: 2, rounds: 1, step: 1, interfaces: [1] })),
        {
          class: 'GenericError',
          desc: "Invalid parameter type for 'interfaces[0]', expected: string",
        },
      );
      assert.deepEqual(await c.execute('announce-self', { initial: 1, max: 2, rounds: 1, step: 1 }), { return: {} });
      assert.deepEqual(errorOf(await c.execute('query-version', { a: 1 })), {
        class: 'GenericError',
        desc: "Parameter 'a' is unexpected",
      });
      assert.deepEqual(errorOf(await c.execute('quit', { x: 1 })), {
        class: 'GenericError',
        desc: "Parameter 'x' is unexpected",
      });
      c.close();
    });
  });

  test('quit: SHUTDOWN event with timestamp, then the reply, then the host is asked to quit', T, async () => {
    await withServer(async (f) => {
      const { client: c } = await QmpTestClient.open(f.sock);
      const { client: other } = await QmpTestClient.open(f.sock);
      assert.deepEqual(await c.execute('quit', undefined, 7), { return: {}, id: 7 });
      const ev = await c.nextEvent('SHUTDOWN');
      assert.deepEqual(ev.data, { guest: false, reason: 'host-qmp-quit' });
      assert.deepEqual((await other.nextEvent('SHUTDOWN')).data, { guest: false, reason: 'host-qmp-quit' });
      await new Promise((r) => setImmediate(r));
      assert.equal(f.quits, 1);
      c.close();
      other.close();
    });
  });
});

describe('QMP request checks', () => {
  test('unknown commands, member checks, non-object input; ids of any JSON type echoed', T, async () => {
    await withServer(async (f) => {
      const { client: c } = await QmpTestClient.open(f.sock);
      assert.deepEqual(await c.execute('foo', undefined, [1, 2]), {
        id: [1, 2],
        error: { class: 'CommandNotFound', desc: 'The command foo has not been found' },
      });
      const raw = async (text: string) => {
        c.sendRaw(text + '\n');
        return c.next();
      };
      const generic = (desc: string) => ({ error: { class: 'GenericError', desc } });
      assert.deepEqual(await raw('{}'), generic("QMP input lacks member 'execute'"));
      assert.deepEqual(await raw('{"id":1}'), {
        id: 1,
        error: { class: 'GenericError', desc: "QMP input lacks member 'execute'" },
      });
      assert.deepEqual(await raw('{"execute":1}'), generic("QMP input member 'execute' must be a string"));
      assert.deepEqual(
        await raw('{"execute":"query-version","arguments":[1]}'),
        generic("QMP input member 'arguments' must be an object"),
      );
      assert.deepEqual(
        await raw('{"execute":"query-version","arguments":null}'),
        generic("QMP input member 'arguments' must be an object"),
      );
      assert.deepEqual(await raw('{"exec-oob":"query-version"}'), generic("QMP input member 'exec-oob' is unexpected"));
      assert.deepEqual(
        await raw('{"execute":"query-version","extra":1}'),
        generic("QMP input member 'extra' is unexpected"),
      );
      assert.deepEqual(await raw('[1,2]'), generic('QMP input must be a JSON object'));
      assert.deepEqual(await raw('"str"'), generic('QMP input must be a JSON object'));
      assert.deepEqual(await raw('{"execute":"query-version","id":{"x":[true,false,null]}}'), {
        return: f.monitor.version,
        id: { x: [true, false, null] },
      });
      assert.deepEqual(await raw('{"execute":"query-version","id":"\\ud83d\\ude00\\u0000"}'), {
        return: f.monitor.version,
        id: '\u{1F600}\u0000',
      });
      // Integers are echoed exactly, even beyond 2^53.
      await raw('{"execute":"query-version","id":18446744073709551615}');
      assert.match(c.rawLines.at(-1)!, /, "id": 18446744073709551615\}$/);
      await raw('{"execute":"query-version","id":-9223372036854775808}');
      assert.match(c.rawLines.at(-1)!, /, "id": -9223372036854775808\}$/);
      assert.deepEqual(
        await raw('{"execute":"netdev_add","arguments":{"type":"hubport","id":"h9","hubid":1.0}}'),
        generic("Invalid parameter type for 'hubid', expected: integer"),
      );
      // QEMU's dialect: single-quoted strings
      assert.deepEqual(await raw("{'execute':'query-version','id':'it''s'}".replace("''", "\\'")), {
        return: f.monitor.version,
        id: "it's",
      });
      c.close();
    });
  });

  test("malformed JSON gets QEMU's parse error and the connection survives", T, async () => {
    await withServer(async (f) => {
      const { client: c } = await QmpTestClient.open(f.sock);
      const cases: Array<[string, string]> = [
        ['{bad json}', "JSON parse error, invalid keyword 'bad'"],
        ['}', 'JSON parse error, expecting value'],
        ['{"execute":"query-version" "id":1}', 'JSON parse error, expected separator in dict'],
        ['{"a" 1}', 'JSON parse error, missing : in object pair'],
        ['{1:2}', 'JSON parse error, key is not a string in object'],
        ['[1 2]', 'JSON parse error, expected separator in list'],
        ['{"a":1,}', 'JSON parse error, expecting value'],
        ['{"a":"\\q"}', 'JSON parse error, invalid escape sequence in string'],
        ['@', "JSON parse error, stray '@'"],
        ['{"execute":"query-version","execute":"quit"}', 'JSON parse error, duplicate key'],
      ];
      for (const [text, desc] of cases) {
        c.sendRaw(text + '\n');
        assert.deepEqual(await c.next(), { error: { class: 'GenericError', desc } }, text);
        assert.deepEqual(
          await c.execute('query-version', undefined, 1),
          { return: f.monitor.version, id: 1 },
          `after ${text}`,
        );
      }
      // Invalid UTF-8 inside a string
      c.sendRaw(
        Buffer.concat([Buffer.from('{"execute":"query-version","id":"'), Buffer.from([0xc3]), Buffer.from('"}\n')]),
      );
      assert.deepEqual(await c.next(), {
        error: { class: 'GenericError', desc: 'JSON parse error, invalid UTF-8 sequence in string' },
      });
      // Messages are delimited by balance, not by lines: two on one line, one over two writes.
      c.sendRaw('{"execute":"query-version","id":2}{"execute":"query-version","id":3}');
      assert.equal((await c.next()).id, 2);
      assert.equal((await c.next()).id, 3);
      c.sendRaw('{"execute":"query-version",');
      await new Promise((r) => setTimeout(r, 20));
      c.sendRaw('"id":4}');
      assert.equal((await c.next()).id, 4);
      c.close();
    });
  });

  test('oversized and deeply nested messages are refused; the connection goes on', T, async () => {
    await withServer(async (f) => {
      const { client: c } = await QmpTestClient.open(f.sock);
      c.sendRaw('{"execute":"query-version","id":"' + 'a'.repeat(2 << 20) + '"}');
      assert.deepEqual(await c.next(), { error: { class: 'GenericError', desc: 'JSON token size limit exceeded' } });
      assert.deepEqual(await c.execute('query-version', undefined, 'after-big'), {
        return: f.monitor.version,
        id: 'after-big',
      });
      c.sendRaw('['.repeat(5000) + ']'.repeat(5000));
      assert.deepEqual(await c.next(), { error: { class: 'GenericError', desc: 'JSON nesting depth limit exceeded' } });
      assert.deepEqual(await c.execute('query-version', undefined, 'after-deep'), {
        return: f.monitor.version,
        id: 'after-deep',
      });
      // Many tokens in little space
      c.sendRaw('[' + '1,'.repeat(100_000) + '1]');
      assert.deepEqual(await c.next(), { error: { class: 'GenericError', desc: 'JSON token count limit exceeded' } });
      assert.deepEqual(await c.execute('query-version', undefined, 'after-many'), {
        return: f.monitor.version,
        id: 'after-many',
      });
      // 1024 levels are still accepted (QEMU's limit)
      c.sendRaw(`{"execute":"query-version","id":${'['.repeat(1023)}${']'.repeat(1023)}}`);
      const deep = await c.next();
      assert.ok('return' in deep);
      c.close();
    });
  });
});

describe('QMP clients that misbehave', () => {
  test('a client that vanishes mid-message or right after a command disturbs nobody', T, async () => {
    await withServer(async (f) => {
      const { client: good } = await QmpTestClient.open(f.sock);
      for (let i = 0; i < 20; i++) {
        const bad = await QmpTestClient.connect(f.sock);
        bad.sendRaw(
          i % 2 === 0
            ? '{"execute":"qmp_capabilities"}{"execute":"netdev_add","arguments":{"type":"hubport",'
            : '{"execute":"qmp_capabilities"}{"execute":"query-commands"}',
        );
        // Gone at once, half-closed (the server answers into a closing socket), or gone later.
        if (i % 3 === 0) bad.close();
        else if (i % 3 === 1) bad.socket.end();
        else setTimeout(() => bad.close(), 5);
      }
      assert.deepEqual(await good.execute('query-version', undefined, 'still'), {
        return: f.monitor.version,
        id: 'still',
      });
      // All the vanished clients are forgotten.
      for (let i = 0; i < 100 && f.server.clientCount !== 1; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(f.server.clientCount, 1);
      good.close();
    });
  });

  test('a client that floods and never reads is throttled; another client is still answered', T, async () => {
    await withServer(async (f) => {
      const flood = net.connect(f.sock);
      flood.on('error', () => {});
      await new Promise<void>((r) => flood.once('connect', () => r()));
      flood.pause(); // never read: replies pile up on the server side
      const cmd = Buffer.from('{"execute":"qmp_capabilities"}' + '{"execute":"query-commands"}'.repeat(2000));
      let written = 0;
      // Write until the kernel and Node buffers on our side are full (the server stopped reading).
      for (let i = 0; i < 400 && flood.writableLength < 8 << 20; i++) {
        flood.write(cmd);
        written += cmd.length;
        if (i % 20 === 0) await new Promise((r) => setImmediate(r));
      }
      const { client: good } = await QmpTestClient.open(f.sock);
      assert.deepEqual(await good.execute('query-version', undefined, 'ok'), { return: f.monitor.version, id: 'ok' });
      assert.ok(written > 1 << 20);
      // The server stopped reading the flooder: our side holds unsent bytes that do not move.
      const pending = flood.writableLength;
      await new Promise((r) => setTimeout(r, 300));
      assert.ok(pending > 0, 'the flooding client was never throttled');
      assert.equal(flood.writableLength, pending);
      flood.destroy();
      good.close();
    });
  });

  test('closing the server does not wait forever for a client that stopped reading', T, async () => {
    const dir = tempDir('qmp-close');
    const sock = path.join(dir, 'q.sock');
    const server = await QmpServer.listen({
      path: sock,
      commands: new Map(),
      version: { qemu: { micro: 0, minor: 2, major: 7 }, package: 'x' },
    });
    const stuck = net.connect(sock);
    try {
      stuck.on('error', () => {});
      await new Promise<void>((r) => stuck.once('connect', () => r()));
      stuck.pause();
      stuck.write('{"execute":"qmp_capabilities"}' + '{"execute":"query-commands"}'.repeat(50_000));
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(server.clientCount, 1);
      await server.close(); // resolves: the stuck socket is destroyed after the grace period
      assert.equal(server.clientCount, 0);
      assert.equal(fs.existsSync(sock), false);
    } finally {
      stuck.destroy();
      await server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('clients beyond the limit are refused with an error and closed', T, async () => {
    await withServer(
      async (f) => {
        const a = await QmpTestClient.open(f.sock);
        const b = await QmpTestClient.open(f.sock);
        const c = await QmpTestClient.connect(f.sock);
        assert.deepEqual(await c.next(), { error: { class: 'GenericError', desc: 'Too many QMP clients' } });
        await c.waitClosed();
        a.client.close();
        for (let i = 0; i < 100 && f.server.clientCount !== 1; i++) await new Promise((r) => setTimeout(r, 20));
        const d = await QmpTestClient.open(f.sock);
        assert.ok('QMP' in d.greeting);
        b.client.close();
        d.client.close();
      },
      { maxClients: 2 },
    );
  });
});

describe('QMP JSON reader', () => {
  test('values and errors from a byte stream split anywhere', () => {
    const text = '{"a":[1,-2.5,1e3,true,false,null,"x\\ny"]} \'q\' {"b":{}}[]';
    const whole: unknown[] = [];
    new QmpJsonReader(
      (v) => whole.push(v),
      (e) => whole.push(new Error(e)),
    ).feed(Buffer.from(text + ' '));
    for (let split = 1; split < text.length; split++) {
      const got: unknown[] = [];
      const r = new QmpJsonReader(
        (v) => got.push(v),
        (e) => got.push(new Error(e)),
      );
      r.feed(Buffer.from(text.slice(0, split)));
      r.feed(Buffer.from(text.slice(split) + ' '));
      assert.deepEqual(got, whole, `split at ${split}`);
    }
    // Integers stay exact, literals with a fraction or exponent are doubles (as in QEMU).
    assert.deepEqual(whole, [
      { a: [1, new JsonFloat(-2.5), new JsonFloat(1000), true, false, null, 'x\ny'] },
      'q',
      { b: {} },
      [],
    ]);
  });

  test('a __proto__ key is data, never a prototype', () => {
    const v = parseQmpJson('{"__proto__": {"polluted": true}}') as Record<string, unknown>;
    assert.deepEqual(Object.keys(v), ['__proto__']);
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
    assert.equal((v as { polluted?: unknown }).polluted, undefined);
  });

  test("serializer writes QEMU's spacing and escapes", () => {
    assert.equal(toQmpJson({ return: {}, id: [1, 'a'] }), '{"return": {}, "id": [1, "a"]}');
    assert.equal(toQmpJson('\u00ff\u007f"\\\n\t\u0001/'), '"\\u00FF\\u007F\\"\\\\\\n\\t\\u0001/"');
    assert.equal(toQmpJson('\u{1F600}'), '"\\uD83D\\uDE00"');
    assert.equal(toQmpJson(Infinity), 'null');
    assert.equal(
      toQmpJson({ big: 18446744073709551615n, f: new JsonFloat(0.5) }),
      '{"big": 18446744073709551615, "f": 0.5}',
    );
  });
});
