// Building and parsing the few frames the TAP tests exchange with a namespace: Ethernet +
// IPv4 + UDP/TCP, with an optional virtio-net header in front. Just enough to speak UDP and
// a minimal TCP from user space through a TAP fd.
//
// The vnet header comes from lib/vnet-hdr: the kernel, not our code, reads what these tests
// write, so using the library's codec tests nothing with itself. The Ethernet/IP/TCP/UDP
// builders and their checksum (sum16) stay written here on purpose: they do not share code
// with the native checksum and segmentation the data plane uses, and they keep this helper
// free of the addon.
import * as fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

import { encodeVnetHdr, type VnetHdr, type VnetHdrLen } from '../../lib/vnet-hdr';

/** The vnet header to write before a frame on a TAP whose header length is `len` (0: none). */
export function vnetHeader(len: number, h: Partial<VnetHdr> = {}): Buffer {
  return len === 0 ? Buffer.alloc(0) : encodeVnetHdr(h, len as VnetHdrLen);
}

function macBytes(mac: string): Buffer {
  return Buffer.from(mac.split(':').map((x) => parseInt(x, 16)));
}
function ipBytes(ip: string): Buffer {
  return Buffer.from(ip.split('.').map(Number));
}
function ipString(b: Buffer, off: number): string {
  return [...b.subarray(off, off + 4)].join('.');
}

/** 16-bit one's complement sum of `b` (not complemented), folded, starting from `start`. */
function sum16(b: Buffer, start = 0): number {
  let s = start;
  for (let i = 0; i + 1 < b.length; i += 2) s += b.readUInt16BE(i);
  if (b.length % 2) s += b[b.length - 1] << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}
const fold = (s: number) => ~s & 0xffff;

export interface Endpoints {
  srcMac: string;
  dstMac: string;
  srcIp: string;
  dstIp: string;
}

function ethIpv4(e: Endpoints, proto: number, l4: Buffer, id: number): Buffer {
  const ip = Buffer.alloc(20);
  ip.writeUInt8(0x45, 0);
  ip.writeUInt16BE(20 + l4.length, 2);
  ip.writeUInt16BE(id & 0xffff, 4);
  ip.writeUInt16BE(0x4000, 6); // DF
  ip.writeUInt8(64, 8);
  ip.writeUInt8(proto, 9);
  ipBytes(e.srcIp).copy(ip, 12);
  ipBytes(e.dstIp).copy(ip, 16);
  ip.writeUInt16BE(fold(sum16(ip)), 10);
  const eth = Buffer.concat([macBytes(e.dstMac), macBytes(e.srcMac), Buffer.from([0x08, 0x00])]);
  return Buffer.concat([eth, ip, l4]);
}

function pseudoSum(e: Endpoints, proto: number, l4Len: number): number {
  const p = Buffer.alloc(12);
  ipBytes(e.srcIp).copy(p, 0);
  ipBytes(e.dstIp).copy(p, 4);
  p.writeUInt8(proto, 9);
  p.writeUInt16BE(l4Len, 10);
  return sum16(p);
}

export function udpFrame(e: Endpoints, sport: number, dport: number, payload: Buffer): Buffer {
  const udp = Buffer.alloc(8 + payload.length);
  udp.writeUInt16BE(sport, 0);
  udp.writeUInt16BE(dport, 2);
  udp.writeUInt16BE(udp.length, 4);
  payload.copy(udp, 8);
  const c = fold(sum16(udp, pseudoSum(e, 17, udp.length)));
  udp.writeUInt16BE(c === 0 ? 0xffff : c, 6);
  return ethIpv4(e, 17, udp, 1);
}

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;

export interface TcpSegment {
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  options?: Buffer;
  payload?: Buffer;
  /** 'partial': only the pseudo-header sum, for a NEEDS_CSUM frame the kernel completes. */
  csum?: 'full' | 'partial';
}

export function tcpFrame(e: Endpoints, s: TcpSegment): Buffer {
  const opts = s.options ?? Buffer.alloc(0);
  const payload = s.payload ?? Buffer.alloc(0);
  const hlen = 20 + opts.length;
  const tcp = Buffer.alloc(hlen + payload.length);
  tcp.writeUInt16BE(s.sport, 0);
  tcp.writeUInt16BE(s.dport, 2);
  tcp.writeUInt32BE(s.seq >>> 0, 4);
  tcp.writeUInt32BE(s.ack >>> 0, 8);
  tcp.writeUInt8((hlen / 4) << 4, 12);
  tcp.writeUInt8(s.flags, 13);
  tcp.writeUInt16BE(s.window, 14);
  opts.copy(tcp, 20);
  payload.copy(tcp, hlen);
  const pseudo = pseudoSum(e, 6, tcp.length);
  tcp.writeUInt16BE(s.csum === 'partial' ? pseudo : fold(sum16(tcp, pseudo)), 16);
  return ethIpv4(e, 6, tcp, 2);
}

export interface ParsedIpv4 {
  srcIp: string;
  dstIp: string;
  proto: number;
  /** L4 header + payload (up to the IPv4 total length). */
  l4: Buffer;
}

/** IPv4 inside an Ethernet frame, or undefined for anything else (ARP, IPv6, ...). */
export function parseIpv4(frame: Buffer): ParsedIpv4 | undefined {
  if (frame.length < 34 || frame.readUInt16BE(12) !== 0x0800) return undefined;
  const ihl = (frame[14] & 0x0f) * 4;
  const total = frame.readUInt16BE(16);
  return {
    srcIp: ipString(frame, 26),
    dstIp: ipString(frame, 30),
    proto: frame[23],
    l4: frame.subarray(14 + ihl, 14 + total),
  };
}

export function parseUdp(l4: Buffer) {
  return { sport: l4.readUInt16BE(0), dport: l4.readUInt16BE(2), payload: l4.subarray(8) };
}

export function parseTcp(l4: Buffer) {
  const hlen = (l4[12] >> 4) * 4;
  const options = l4.subarray(20, hlen);
  let wscale: number | undefined;
  for (let i = 0; i < options.length;) {
    const kind = options[i];
    if (kind === 0) break;
    if (kind === 1) {
      i++;
      continue;
    }
    if (kind === 3) wscale = options[i + 2];
    i += options[i + 1] || 1;
  }
  return {
    sport: l4.readUInt16BE(0),
    dport: l4.readUInt16BE(2),
    seq: l4.readUInt32BE(4),
    ack: l4.readUInt32BE(8),
    flags: l4[13],
    window: l4.readUInt16BE(14),
    wscale,
    payload: l4.subarray(hlen),
  };
}

/**
 * Read frames from a non-blocking TAP fd until `pick` returns something (frames it rejects,
 * e.g. IPv6 router solicitations, are skipped). Throws after `timeoutMs`.
 */
export async function readFrameUntil<T>(
  fd: number,
  pick: (frame: Buffer) => T | undefined,
  timeoutMs = 5000,
): Promise<T> {
  const buf = Buffer.alloc(70000);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let n = -1;
    try {
      n = fs.readSync(fd, buf, 0, buf.length, null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
    }
    if (n > 0) {
      const got = pick(Buffer.from(buf.subarray(0, n)));
      if (got !== undefined) return got;
      continue;
    }
    if (Date.now() > deadline) throw new Error(`no matching frame on fd ${fd} within ${timeoutMs} ms`);
    await sleep(2);
  }
}
