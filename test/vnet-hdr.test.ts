// The vnet header from JavaScript: the pure-TS codec agrees with the native one, argument
// checking, validation, checksum completion and segmentation through the binding.
// (Byte-for-byte comparison with the kernel's own segmentation: native/test/segment_kernel_test.cc.)
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';

import { NetplaneError } from '../lib/errors';
import { native } from '../lib/native';
import {
  GsoType,
  VnetFlag,
  VnetHdrLen,
  completeChecksum,
  convertVnetHdr,
  decodeVnetHdr,
  encodeVnetHdr,
  internetChecksum,
  needsSoftwareOffload,
  segmentFrame,
  validateVnetHdr,
  zeroVnetHdr,
  type VnetHdr,
} from '../lib/vnet-hdr';

// An IPv4 TCP (or UDP) frame as Linux hands it to a TAP with offloads: checksum field seeded
// with the pseudo-header sum.
function ipv4Frame(opts: { payload: number; udp?: boolean; flags?: number; id?: number }): {
  frame: Buffer;
  l4: number;
} {
  const udp = opts.udp ?? false;
  const l4hdr = udp ? 8 : 20;
  const frame = Buffer.alloc(14 + 20 + l4hdr + opts.payload);
  frame.set([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]);
  const ip = 14;
  frame[ip] = 0x45;
  frame.writeUInt16BE(20 + l4hdr + opts.payload, ip + 2);
  frame.writeUInt16BE(opts.id ?? 0x100, ip + 4);
  frame.writeUInt16BE(0x4000, ip + 6);
  frame[ip + 8] = 64;
  frame[ip + 9] = udp ? 17 : 6;
  frame.set([10, 99, 0, 1, 10, 99, 0, 2], ip + 12);
  frame.writeUInt16BE(internetChecksum(frame.subarray(ip, ip + 20)), ip + 10);
  const l4 = 34;
  frame.writeUInt16BE(40000, l4);
  frame.writeUInt16BE(5201, l4 + 2);
  if (udp) {
    frame.writeUInt16BE(8 + opts.payload, l4 + 4);
  } else {
    frame.writeUInt32BE(1000, l4 + 4);
    frame[l4 + 12] = 0x50;
    frame[l4 + 13] = opts.flags ?? 0x18;
    frame.writeUInt16BE(512, l4 + 14);
  }
  for (let i = 0; i < opts.payload; i++) frame[l4 + l4hdr + i] = (i * 7 + (i >> 8)) & 0xff;
  // Pseudo-header sum (uncomplemented): ~checksum of the pseudo header bytes.
  const pseudo = Buffer.alloc(12);
  frame.copy(pseudo, 0, ip + 12, ip + 20);
  pseudo[9] = udp ? 17 : 6;
  pseudo.writeUInt16BE(l4hdr + opts.payload, 10);
  frame.writeUInt16BE(~internetChecksum(pseudo) & 0xffff, l4 + (udp ? 6 : 16));
  return { frame, l4 };
}

function l4ChecksumOk(frame: Uint8Array, l4: number): boolean {
  const f = Buffer.from(frame);
  const pseudo = Buffer.alloc(12);
  f.copy(pseudo, 0, 26, 34);
  pseudo[9] = f[23];
  pseudo.writeUInt16BE(f.length - l4, 10);
  return internetChecksum(Buffer.concat([pseudo, f.subarray(l4)])) === 0;
}

const tsoHdr = (l4: number, gsoSize: number, gsoType: number = GsoType.TCPV4): Partial<VnetHdr> => ({
  flags: VnetFlag.NEEDS_CSUM,
  gsoType,
  gsoSize,
  hdrLen: l4 + 20,
  csumStart: l4,
  csumOffset: gsoType === GsoType.UDP_L4 || gsoType === GsoType.UDP ? 6 : 16,
});

describe('vnet header codec', () => {
  const hdrArb = fc.record({
    flags: fc.integer({ min: 0, max: 0xff }),
    gsoType: fc.integer({ min: 0, max: 0xff }),
    hdrLen: fc.integer({ min: 0, max: 0xffff }),
    gsoSize: fc.integer({ min: 0, max: 0xffff }),
    csumStart: fc.integer({ min: 0, max: 0xffff }),
    csumOffset: fc.integer({ min: 0, max: 0xffff }),
    numBuffers: fc.integer({ min: 0, max: 0xffff }),
    hashValue: fc.integer({ min: 0, max: 0xffffffff }),
    hashReport: fc.integer({ min: 0, max: 0xffff }),
  });
  const lenArb = fc.constantFrom<VnetHdrLen>(10, 12, 20);

  test('TS encode equals native write, and decode inverts it for the fields of the layout', () => {
    fc.assert(
      fc.property(hdrArb, lenArb, (h, len) => {
        const ts = encodeVnetHdr(h, len);
        assert.deepEqual(ts, native().writeVnetHdr(h, len));
        const back = decodeVnetHdr(ts, len);
        assert.deepEqual(back, native().parseVnetHdr(ts, len));
        assert.equal(back.gsoSize, h.gsoSize);
        assert.equal(back.numBuffers, len >= 12 ? h.numBuffers : 0);
        assert.equal(back.hashValue, len === 20 ? h.hashValue : 0);
      }),
      { numRuns: 300 },
    );
  });

  // The TS constants are written out so the codec works without the addon; this keeps them
  // equal to the native core's (vnet_hdr.h), the one other place they exist.
  test("the TS constants are the native core's", () => {
    const c = native().vnetConstants;
    assert.deepEqual(VnetHdrLen, { LEGACY: c.HDR_LEN_LEGACY, MRG_RXBUF: c.HDR_LEN_MRG, HASH: c.HDR_LEN_HASH });
    assert.deepEqual(VnetFlag, {
      NEEDS_CSUM: c.FLAG_NEEDS_CSUM,
      DATA_VALID: c.FLAG_DATA_VALID,
      RSC_INFO: c.FLAG_RSC_INFO,
    });
    assert.deepEqual(GsoType, {
      NONE: c.GSO_NONE,
      TCPV4: c.GSO_TCPV4,
      UDP: c.GSO_UDP,
      TCPV6: c.GSO_TCPV6,
      UDP_L4: c.GSO_UDP_L4,
      ECN: c.GSO_ECN,
    });
  });

  test('the wire layout is little-endian', () => {
    const b = encodeVnetHdr(
      { flags: 1, gsoType: GsoType.TCPV4, hdrLen: 0x36, gsoSize: 1448, csumStart: 34, csumOffset: 16, numBuffers: 1 },
      12,
    );
    assert.equal(b.toString('hex'), '01013600a8052200100001' + '00');
  });

  test('conversion between lengths keeps the prefix and zero-fills; the zero header needs nothing', () => {
    const h20 = encodeVnetHdr({ flags: 1, gsoType: 4, gsoSize: 9, numBuffers: 3, hashValue: 7 }, 20);
    const h10 = convertVnetHdr(h20, 10);
    assert.deepEqual(h10, h20.subarray(0, 10));
    const h12 = convertVnetHdr(h10, 12);
    assert.deepEqual(h12, Buffer.concat([h10, Buffer.alloc(2)]));
    assert.deepEqual(native().convertVnetHdr(h20, 12), convertVnetHdr(h20, 12));
    assert.equal(needsSoftwareOffload(zeroVnetHdr()), false);
    assert.equal(needsSoftwareOffload({ flags: 0, gsoType: GsoType.TCPV6 }), true);
    assert.deepEqual(encodeVnetHdr({}, 20), Buffer.alloc(20));
  });

  test('bad arguments throw TypeError / RangeError naming the argument', () => {
    assert.throws(() => encodeVnetHdr({ gsoSize: 70000 }), { name: 'RangeError', message: /hdr\.gsoSize/ });
    assert.throws(() => encodeVnetHdr({ flags: 1.5 }), { name: 'RangeError', message: /hdr\.flags/ });
    assert.throws(() => encodeVnetHdr({ flags: '1' as unknown as number }), {
      name: 'TypeError',
      message: /hdr\.flags/,
    });
    assert.throws(() => encodeVnetHdr({}, 11 as VnetHdrLen), {
      name: 'RangeError',
      message: /len must be 10, 12 or 20/,
    });
    assert.throws(() => decodeVnetHdr(Buffer.alloc(5), 10), { name: 'RangeError', message: /fewer than len/ });
    assert.throws(() => convertVnetHdr(Buffer.alloc(11), 10), { name: 'RangeError' });
    const n = native();
    assert.throws(() => n.parseVnetHdr('x' as unknown as Uint8Array, 10), {
      name: 'TypeError',
      message: /buf must be/,
    });
    assert.throws(() => n.parseVnetHdr(Buffer.alloc(10), 24), {
      name: 'RangeError',
      message: /len must be 10, 12 or 20/,
    });
    assert.throws(() => n.parseVnetHdr(Buffer.alloc(10), 12), { name: 'RangeError', message: /fewer than len/ });
    assert.throws(() => n.validateVnetHdr({ gsoSize: -1 }, Buffer.alloc(60)), {
      name: 'RangeError',
      message: /hdr\.gsoSize/,
    });
    assert.throws(() => n.validateVnetHdr(Buffer.alloc(11), Buffer.alloc(60)), {
      name: 'RangeError',
      message: /10, 12 or 20 bytes/,
    });
    assert.throws(() => n.validateVnetHdr(null as unknown as VnetHdr, Buffer.alloc(60)), {
      name: 'TypeError',
      message: /hdr must be/,
    });
    assert.throws(() => n.validateVnetHdr({}, [1, 2] as unknown as Uint8Array), {
      name: 'TypeError',
      message: /frame must be/,
    });
    assert.throws(() => n.segmentFrame(10, Buffer.alloc(5)), { name: 'RangeError', message: /fewer than hdrLen/ });
    assert.throws(() => n.segmentFrame(NaN, Buffer.alloc(50)), { name: 'RangeError', message: /hdrLen/ });
    assert.throws(() => (n.segmentFrame as unknown as (a: number) => unknown)(10), {
      name: 'TypeError',
      message: /needs 2 argument/,
    });
    assert.throws(() => n.internetChecksum(new Uint16Array(4) as unknown as Uint8Array), { name: 'TypeError' });
  });
});

describe('vnet header against its frame', () => {
  test('validation accepts what Linux sends and names what is wrong', () => {
    const { frame, l4 } = ipv4Frame({ payload: 3000 });
    assert.equal(validateVnetHdr(tsoHdr(l4, 1448), frame), null);
    assert.equal(validateVnetHdr(encodeVnetHdr(tsoHdr(l4, 1448), 12), frame), null);
    assert.equal(validateVnetHdr({ ...tsoHdr(l4, 1448), gsoSize: 0 }, frame), 'BAD_GSO_SIZE');
    assert.equal(validateVnetHdr({ ...tsoHdr(l4, 1448), gsoType: GsoType.TCPV6 }, frame), 'BAD_PACKET');
    assert.equal(validateVnetHdr({ ...tsoHdr(l4, 1448), gsoType: 2 }, frame), 'BAD_GSO_TYPE');
    assert.equal(validateVnetHdr({ ...tsoHdr(l4, 1448), flags: 0x10 }, frame), 'BAD_FLAGS');
    assert.equal(validateVnetHdr({ ...tsoHdr(l4, 1448), csumStart: l4 - 2 }, frame), 'BAD_CSUM');
    assert.equal(validateVnetHdr({ ...tsoHdr(l4, 1448), hdrLen: frame.length + 1 }, frame), 'BAD_HDR_LEN');
    assert.equal(validateVnetHdr({}, frame.subarray(0, 10)), 'SHORT_FRAME');
  });

  test('checksum completion fills in a valid checksum in place', () => {
    const { frame, l4 } = ipv4Frame({ payload: 501, udp: true });
    assert.equal(l4ChecksumOk(frame, l4), false);
    assert.equal(completeChecksum({ flags: VnetFlag.NEEDS_CSUM, csumStart: l4, csumOffset: 6 }, frame), null);
    assert.equal(l4ChecksumOk(frame, l4), true);
    assert.equal(
      completeChecksum({ flags: VnetFlag.NEEDS_CSUM, csumStart: frame.length, csumOffset: 0 }, frame),
      'BAD_CSUM',
    );
  });

  test('segmentFrame: TSO4 into MSS-sized segments with lengths, IDs, seq, flags and checksums fixed', () => {
    const { frame, l4 } = ipv4Frame({ payload: 2500, flags: 0x19, id: 0xffff }); // FIN|PSH|ACK
    const segs = segmentFrame(tsoHdr(l4, 1000), frame);
    assert.deepEqual(
      segs.map((s) => s.length - 54),
      [1000, 1000, 500],
    );
    segs.forEach((s, i) => {
      assert.equal(s.readUInt16BE(16), s.length - 14, 'IPv4 total length');
      assert.equal(s.readUInt16BE(18), (0xffff + i) & 0xffff, 'IPv4 ID increments');
      assert.equal(internetChecksum(s.subarray(14, 34)), 0, 'IPv4 header checksum');
      assert.equal(s.readUInt32BE(l4 + 4), 1000 + 1000 * i, 'sequence number');
      assert.equal(s[l4 + 13], i === 2 ? 0x19 : 0x10, 'FIN/PSH only on the last');
      assert.ok(l4ChecksumOk(s, l4), 'TCP checksum');
    });
    assert.deepEqual(Buffer.concat(segs.map((s) => s.subarray(54))), frame.subarray(54));
  });

  test('segmentFrame: USO gives each segment its own UDP header', () => {
    const { frame, l4 } = ipv4Frame({ payload: 3000, udp: true });
    const segs = native().segmentFrame(12, Buffer.concat([encodeVnetHdr(tsoHdr(l4, 1200, GsoType.UDP_L4), 12), frame]));
    assert.equal(segs.length, 3);
    for (const s of segs) {
      assert.equal(s.readUInt16BE(l4 + 4), s.length - l4);
      assert.ok(l4ChecksumOk(s, l4));
    }
  });

  test('segmentFrame rejects a header that does not describe the frame', () => {
    const { frame, l4 } = ipv4Frame({ payload: 3000 });
    assert.throws(
      () => segmentFrame({ ...tsoHdr(l4, 1448), gsoType: GsoType.UDP_L4 }, frame),
      (err: unknown) => {
        assert.ok(err instanceof NetplaneError);
        assert.equal(err.code, 'NETPLANE_INVALID_FRAME');
        assert.equal((err as NetplaneError & { reason: string }).reason, 'BAD_PACKET');
        assert.equal((err.cause as { code: string }).code, 'ERR_VNET_BAD_PACKET');
        return true;
      },
    );
  });
});
