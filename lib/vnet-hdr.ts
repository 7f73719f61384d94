// The virtio-net header (virtio_net_hdr, _mrg_rxbuf, _v1_hash: 10, 12 and 20 bytes,
// little-endian as between a Linux TAP and its user). Encoding and decoding are pure
// TypeScript (usable without the addon, e.g. by a JS port); validation against the frame,
// checksum completion and software segmentation call the native core, which the data plane
// uses too, so both agree by construction.
import { NetplaneError } from './errors';
import { native, type NativeVnetError, type VnetHdr } from './native';

export type { VnetHdr } from './native';

export type VnetHdrLen = 10 | 12 | 20;
export const VnetHdrLen = { LEGACY: 10, MRG_RXBUF: 12, HASH: 20 } as const;

export const VnetFlag = { NEEDS_CSUM: 1, DATA_VALID: 2, RSC_INFO: 4 } as const;

export const GsoType = { NONE: 0, TCPV4: 1, UDP: 3, TCPV6: 4, UDP_L4: 5, ECN: 0x80 } as const;

/** Why a header does not describe its frame (null/undefined means it does). */
export type VnetHdrError = NativeVnetError;

export function isVnetHdrLen(len: number): len is VnetHdrLen {
  return len === 10 || len === 12 || len === 20;
}

function checkLen(len: number, what: string): asserts len is VnetHdrLen {
  if (typeof len !== 'number') throw new TypeError(`${what} must be a number`);
  if (!isVnetHdrLen(len)) throw new RangeError(`${what} must be 10, 12 or 20, got ${len}`);
}

function checkBytes(buf: unknown, what: string): asserts buf is Uint8Array {
  if (!(buf instanceof Uint8Array)) throw new TypeError(`${what} must be a Buffer or Uint8Array`);
}

const FIELD_MAX: Record<keyof VnetHdr, number> = {
  flags: 0xff,
  gsoType: 0xff,
  hdrLen: 0xffff,
  gsoSize: 0xffff,
  csumStart: 0xffff,
  csumOffset: 0xffff,
  numBuffers: 0xffff,
  hashValue: 0xffffffff,
  hashReport: 0xffff,
};

/** A header with every field zero (flags 0, GSO_NONE): what a peer without headers gets. */
export function zeroVnetHdr(): VnetHdr {
  return {
    flags: 0,
    gsoType: 0,
    hdrLen: 0,
    gsoSize: 0,
    csumStart: 0,
    csumOffset: 0,
    numBuffers: 0,
    hashValue: 0,
    hashReport: 0,
  };
}

/** Fill absent fields with 0 and check every present one is an integer in its range. */
export function normalizeVnetHdr(hdr: Partial<VnetHdr>): VnetHdr {
  if (typeof hdr !== 'object' || hdr === null) throw new TypeError('hdr must be an object');
  const out = zeroVnetHdr();
  for (const key of Object.keys(FIELD_MAX) as (keyof VnetHdr)[]) {
    const v = hdr[key];
    if (v === undefined) continue;
    if (typeof v !== 'number') throw new TypeError(`hdr.${key} must be a number`);
    if (!Number.isInteger(v) || v < 0 || v > FIELD_MAX[key]) {
      throw new RangeError(`hdr.${key} must be an integer in 0..${FIELD_MAX[key]}, got ${v}`);
    }
    out[key] = v;
  }
  return out;
}

/** Decode the first len bytes of buf. */
export function decodeVnetHdr(buf: Uint8Array, len: VnetHdrLen = 10): VnetHdr {
  checkBytes(buf, 'buf');
  checkLen(len, 'len');
  if (buf.length < len) throw new RangeError(`buf holds ${buf.length} bytes, fewer than len ${len}`);
  const dv = new DataView(buf.buffer, buf.byteOffset, len);
  const h = zeroVnetHdr();
  h.flags = dv.getUint8(0);
  h.gsoType = dv.getUint8(1);
  h.hdrLen = dv.getUint16(2, true);
  h.gsoSize = dv.getUint16(4, true);
  h.csumStart = dv.getUint16(6, true);
  h.csumOffset = dv.getUint16(8, true);
  if (len >= 12) h.numBuffers = dv.getUint16(10, true);
  if (len >= 20) {
    h.hashValue = dv.getUint32(12, true);
    h.hashReport = dv.getUint16(16, true);
  }
  return h;
}

/** Encode hdr into a new len-byte Buffer (fields the layout lacks are dropped). */
export function encodeVnetHdr(hdr: Partial<VnetHdr>, len: VnetHdrLen = 10): Buffer {
  checkLen(len, 'len');
  const h = normalizeVnetHdr(hdr);
  const out = Buffer.alloc(len);
  out.writeUInt8(h.flags, 0);
  out.writeUInt8(h.gsoType, 1);
  out.writeUInt16LE(h.hdrLen, 2);
  out.writeUInt16LE(h.gsoSize, 4);
  out.writeUInt16LE(h.csumStart, 6);
  out.writeUInt16LE(h.csumOffset, 8);
  if (len >= 12) out.writeUInt16LE(h.numBuffers, 10);
  if (len >= 20) {
    out.writeUInt32LE(h.hashValue, 12);
    out.writeUInt16LE(h.hashReport, 16);
  }
  return out;
}

/** Re-layout a header to toLen bytes: the common prefix is kept, the rest is zero. */
export function convertVnetHdr(buf: Uint8Array, toLen: VnetHdrLen): Buffer {
  checkBytes(buf, 'buf');
  checkLen(toLen, 'toLen');
  if (!isVnetHdrLen(buf.length))
    throw new RangeError(`buf must be a 10, 12 or 20-byte header, got ${buf.length} bytes`);
  const out = Buffer.alloc(toLen);
  out.set(buf.subarray(0, Math.min(buf.length, toLen)));
  return out;
}

/** True if a peer without offloads needs the frame fixed up (checksum or segmentation). */
export function needsSoftwareOffload(hdr: Pick<VnetHdr, 'flags' | 'gsoType'>): boolean {
  return (hdr.flags & VnetFlag.NEEDS_CSUM) !== 0 || hdr.gsoType !== GsoType.NONE;
}

function toNativeHdr(hdr: Partial<VnetHdr> | Uint8Array): Partial<VnetHdr> | Uint8Array {
  return hdr instanceof Uint8Array ? hdr : normalizeVnetHdr(hdr);
}

/** null when hdr correctly describes frame (the ethernet frame after the header), else why not. */
export function validateVnetHdr(hdr: Partial<VnetHdr> | Uint8Array, frame: Uint8Array): VnetHdrError | null {
  checkBytes(frame, 'frame');
  return native().validateVnetHdr(toNativeHdr(hdr), frame);
}

/** Complete a NEEDS_CSUM checksum of frame in place; null or why it could not. */
export function completeChecksum(hdr: Partial<VnetHdr> | Uint8Array, frame: Uint8Array): VnetHdrError | null {
  checkBytes(frame, 'frame');
  return native().completeChecksum(toNativeHdr(hdr), frame);
}

/** RFC 1071 internet checksum of buf. */
export function internetChecksum(buf: Uint8Array): number {
  checkBytes(buf, 'buf');
  return native().internetChecksum(buf);
}

/**
 * Turn a frame with offloads (GSO and/or NEEDS_CSUM) into the wire frames Linux's software
 * GSO would emit for it. Throws NetplaneError NETPLANE_INVALID_FRAME (with `reason`) when
 * the header does not describe the frame.
 */
export function segmentFrame(hdr: Partial<VnetHdr>, frame: Uint8Array): Buffer[] {
  checkBytes(frame, 'frame');
  const buf = Buffer.concat([encodeVnetHdr(hdr, 10), frame]);
  try {
    return native().segmentFrame(10, buf);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('ERR_VNET_')) {
      const reason = code.slice('ERR_VNET_'.length) as VnetHdrError;
      throw Object.assign(
        new NetplaneError('NETPLANE_INVALID_FRAME', `vnet header does not describe the frame: ${reason}`, {
          cause: err,
        }),
        { reason },
      );
    }
    throw err;
  }
}
