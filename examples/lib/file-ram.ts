// Guest RAM in a file (a memfd, or a /dev/shm file as here) that the guest's side reads and
// writes through its fd, as a hypervisor whose RAM a vhost-user back-end maps: the same
// pages, shared with the other process. Each pread / pwrite is a system call, so stores
// reach the other side in program order (publishU16 needs nothing more).
import * as fs from 'node:fs';
import type { GuestRam } from './split-ring-driver';

export function fileRam(
  fd: number,
  base: number,
): GuestRam & {
  write(gpa: number, bytes: Uint8Array): void;
  read(gpa: number, len: number): Uint8Array;
} {
  const read = (gpa: number, len: number): Uint8Array => {
    const b = new Uint8Array(len);
    fs.readSync(fd, b, 0, len, gpa - base);
    return b;
  };
  const write = (gpa: number, bytes: Uint8Array): void => void fs.writeSync(fd, bytes, 0, bytes.length, gpa - base);
  const le = (len: number, put: (v: DataView) => void): Uint8Array => {
    const b = new Uint8Array(len);
    put(new DataView(b.buffer));
    return b;
  };
  return {
    read,
    write,
    u16: (gpa) => new DataView(read(gpa, 2).buffer).getUint16(0, true),
    u32: (gpa) => new DataView(read(gpa, 4).buffer).getUint32(0, true),
    setU16: (gpa, v) =>
      write(
        gpa,
        le(2, (d) => d.setUint16(0, v, true)),
      ),
    setU32: (gpa, v) =>
      write(
        gpa,
        le(4, (d) => d.setUint32(0, v, true)),
      ),
    setU64: (gpa, v) =>
      write(
        gpa,
        le(8, (d) => d.setBigUint64(0, v, true)),
      ),
    publishU16: (gpa, v) =>
      write(
        gpa,
        le(2, (d) => d.setUint16(0, v, true)),
      ),
    zero: (gpa, len) => write(gpa, new Uint8Array(len)),
  };
}
