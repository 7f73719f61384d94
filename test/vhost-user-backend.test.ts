// The data-path calls VhostUserBackend makes, in order, driven through a real connection by
// the fake front-end: features before rings, a ring started only when complete + enabled +
// DRIVER_OK, GET_VRING_BASE answered from stopVring, a new memory table mapped only after
// the rings stopped and the old one released only after the new one is mapped, and a
// disconnect that stops every ring and releases the memory. The data path here records the
// calls (the engine's NativeDataPlane has the same methods; vhost-user-dataplane tests use it).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { bit, VirtioF, VirtioNetF } from '../lib/devices/virtio-net-features';
import { native } from '../lib/native';
import {
  VhostUserBackend,
  type GuestMemoryHandle,
  type VhostUserDataPath,
  type VringStartSpec,
} from '../lib/vhost-user/backend';
import { VhostUserEndpoint } from '../lib/vhost-user/endpoint';
import {
  FakeFrontend,
  memoryFile,
  memTable,
  NEED_REPLY,
  state,
  u64,
  vringAddr,
  VU,
} from './helpers/vhost-user-frontend';

const FEATURES = bit(VirtioF.VERSION_1) | bit(VirtioNetF.MRG_RXBUF) | bit(VirtioF.RING_EVENT_IDX);
const UA = 0x7f0000000000n;
const MEM = 1 << 20;

class RecordingDataPath implements VhostUserDataPath {
  readonly calls: string[] = [];
  #n = 0;
  #next = new Map<string, number>();
  mapGuestMemory(
    regions: Array<{ guestAddr: bigint; size: bigint; userAddr: bigint; fd: number; fdOffset: bigint }>,
  ): GuestMemoryHandle {
    const id = ++this.#n;
    // The fds must be open during the call.
    for (const r of regions) fs.fstatSync(r.fd);
    this.calls.push(`map m${id} ${regions.length}`);
    return { close: () => this.calls.push(`unmap m${id}`) };
  }
  setVirtioFeatures(handle: number, features: bigint): void {
    this.calls.push(`features h${handle} 0x${features.toString(16)}`);
  }
  startVring(handle: number, spec: VringStartSpec): void {
    fs.fstatSync(spec.kickFd);
    this.calls.push(`start h${handle} ${spec.ring} size${spec.size} base${spec.base} ${spec.addrSpace}`);
  }
  stopVring(handle: number, ring: 'rx' | 'tx'): number {
    const key = `${handle}${ring}`;
    const base = (this.#next.get(key) ?? 0) + 7; // the engine moved on
    this.#next.set(key, base);
    this.calls.push(`stop h${handle} ${ring}`);
    return base;
  }
  take(): string[] {
    return this.calls.splice(0);
  }
}

describe('vhost-user back-end: data-path calls', () => {
  let dir: string;
  let sock: string;
  let ep: VhostUserEndpoint;
  const dp = new RecordingDataPath();
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'np-vu-dp-'));
    sock = path.join(dir, 's');
    ep = await VhostUserEndpoint.open(
      { kind: 'listen', path: sock },
      () => new VhostUserBackend({ queuePairs: 1, features: FEATURES, dataPath: { path: dp, handles: [41] } }),
    );
  });
  after(async () => {
    await ep.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('start, stop, remap, disconnect', { timeout: 20_000 }, async () => {
    const mem = memoryFile('dp', MEM);
    const pipes = [native().aioPipe(), native().aioPipe()];
    const fe = await FakeFrontend.connect(sock);
    const sync = async (): Promise<void> => void (await fe.call(VU.GET_FEATURES));
    fe.send(VU.SET_PROTOCOL_FEATURES, u64(0x10009n));
    fe.send(VU.SET_FEATURES, u64(FEATURES | bit(30)));
    await fe.call(VU.SET_MEM_TABLE, memTable([{ gpa: 0n, size: BigInt(MEM), ua: UA, offset: 0n }]), {
      flags: 0x1 | NEED_REPLY,
      fds: [mem.fd],
    });
    const ring = (i: number, base: number): void => {
      fe.send(VU.SET_VRING_NUM, state(i, 256));
      fe.send(VU.SET_VRING_BASE, state(i, base));
      fe.send(
        VU.SET_VRING_ADDR,
        vringAddr(
          i,
          UA + BigInt(i) * 0x10000n,
          UA + BigInt(i) * 0x10000n + 0x2000n,
          UA + BigInt(i) * 0x10000n + 0x1000n,
        ),
      );
      fe.send(VU.SET_VRING_KICK, u64(i), { fds: [pipes[i]![0]] });
      fe.send(VU.SET_VRING_CALL, u64(i), { fds: [pipes[i]![1]] });
      fe.send(VU.SET_VRING_ENABLE, state(i, 1));
    };
    ring(0, 0);
    ring(1, 3);
    await sync();
    assert.deepEqual(dp.take(), ['features h41 0x120008000', 'map m1 1'], 'nothing starts before DRIVER_OK');
    fe.send(VU.SET_STATUS, u64(0xf));
    await sync();
    assert.deepEqual(dp.take(), ['start h41 rx size256 base0 user', 'start h41 tx size256 base3 user']);

    // A changed memory table: rings stop, the new table is mapped, the old one released, rings restart.
    await fe.call(VU.SET_MEM_TABLE, memTable([{ gpa: 0x100000n, size: BigInt(MEM), ua: UA, offset: 0n }]), {
      flags: 0x1 | NEED_REPLY,
      fds: [mem.fd],
    });
    assert.deepEqual(dp.take(), [
      'stop h41 rx',
      'stop h41 tx',
      'map m2 1',
      'unmap m1',
      'start h41 rx size256 base7 user',
      'start h41 tx size256 base7 user',
    ]);
    // The same table again (QEMU resends it at every start): nothing happens.
    await fe.call(VU.SET_MEM_TABLE, memTable([{ gpa: 0x100000n, size: BigInt(MEM), ua: UA, offset: 0n }]), {
      flags: 0x1 | NEED_REPLY,
      fds: [mem.fd],
    });
    assert.deepEqual(dp.take(), []);

    // set_link off: SET_STATUS(0) stops the rings; GET_VRING_BASE answers what stopVring said.
    fe.send(VU.SET_STATUS, u64(0));
    const b0 = await fe.call(VU.GET_VRING_BASE, state(0, 0));
    const b1 = await fe.call(VU.GET_VRING_BASE, state(1, 0));
    assert.deepEqual(dp.take(), ['stop h41 rx', 'stop h41 tx']);
    assert.equal(b0.payload.readUInt32LE(4), 14);
    assert.equal(b1.payload.readUInt32LE(4), 14);

    // Running again, then the front-end vanishes: every ring stops, the memory goes.
    ring(0, 14);
    ring(1, 14);
    fe.send(VU.SET_STATUS, u64(0xf));
    await sync();
    assert.deepEqual(dp.take(), ['start h41 rx size256 base14 user', 'start h41 tx size256 base14 user']);
    fe.close();
    await new Promise<void>((r) => ep.once('disconnected', () => r()));
    assert.deepEqual(dp.take(), ['stop h41 rx', 'stop h41 tx', 'unmap m2']);
    for (const p of pipes) for (const f of p) fs.closeSync(f);
    fs.closeSync(mem.fd);
  });
});
