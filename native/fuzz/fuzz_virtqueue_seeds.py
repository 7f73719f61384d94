#!/usr/bin/env python3
# Seed inputs for fuzz_virtqueue (scripts/fuzz.sh runs this when the corpus is empty): a
# guest memory image with rx buffers posted and one tx packet, as a direct chain, an
# indirect table, and a header split over two descriptors, with different feature bytes.
# Layout (offsets into the image; guest-physical = 0x10000 + offset), as in the harness:
#   rx ring desc 0x000 avail 0x100 used 0x200, tx ring desc 0x400 avail 0x500 used 0x600,
#   rx buffers 0x800.., tx packet 0x1800, indirect table 0x1c00.
import os
import struct
import sys

BASE = 0x10000


def image(ctl, indirect=False, split_hdr=False):
    m = bytearray(0x1D00)

    def desc(table, i, addr, ln, flags, nxt):
        struct.pack_into('<QIHH', m, table + 16 * i, addr, ln, flags, nxt)

    for i in range(8):
        desc(0x000, i, BASE + 0x800 + i * 0x200, 0x200, 2, 0)
    struct.pack_into('<HH', m, 0x100, 0, 8)
    for i in range(8):
        struct.pack_into('<H', m, 0x104 + 2 * i, i)
    eth = bytes([0x52, 0x54, 0, 0, 0, 2, 0x52, 0x54, 0, 0, 0, 1, 0x88, 0xB5]) + bytes(range(46))
    pkt = bytes(12) + eth
    m[0x1800:0x1800 + len(pkt)] = pkt
    if indirect:
        struct.pack_into('<QIHH', m, 0x1C00, BASE + 0x1800, 12, 1, 1)
        struct.pack_into('<QIHH', m, 0x1C10, BASE + 0x180C, len(eth), 0, 0)
        desc(0x400, 0, BASE + 0x1C00, 32, 4, 0)
    elif split_hdr:
        desc(0x400, 0, BASE + 0x1800, 5, 1, 1)
        desc(0x400, 1, BASE + 0x1805, len(pkt) - 5, 0, 0)
    else:
        desc(0x400, 0, BASE + 0x1800, len(pkt), 0, 0)
    struct.pack_into('<HHH', m, 0x500, 0, 1, 0)
    return bytes([ctl]) + bytes(m)


def packed_image(ctl, indirect=False, chain=False):
    # Packed rings (ctl bit 0x80): descriptors {addr, len, id, flags} made available in lap 1
    # (AVAIL 0x80 set, USED clear); both event areas zero (notifications enabled).
    m = bytearray(0x1D00)

    def desc(ring, i, addr, ln, ident, flags):
        struct.pack_into('<QIHH', m, ring + 16 * i, addr, ln, ident, flags)

    for i in range(8):
        desc(0x000, i, BASE + 0x800 + i * 0x200, 0x200, i, 0x80 | 2)
    eth = bytes([0x52, 0x54, 0, 0, 0, 2, 0x52, 0x54, 0, 0, 0, 1, 0x88, 0xB5]) + bytes(range(46))
    pkt = bytes(12) + eth
    m[0x1800:0x1800 + len(pkt)] = pkt
    if indirect:
        struct.pack_into('<QIHH', m, 0x1C00, BASE + 0x1800, 12, 0, 0)
        struct.pack_into('<QIHH', m, 0x1C10, BASE + 0x180C, len(eth), 0, 0)
        desc(0x400, 0, BASE + 0x1C00, 32, 0, 0x80 | 4)
    elif chain:
        desc(0x400, 0, BASE + 0x1800, 5, 0, 0x80 | 1)
        desc(0x400, 1, BASE + 0x1805, len(pkt) - 5, 0, 0x80)
    else:
        desc(0x400, 0, BASE + 0x1800, len(pkt), 0, 0x80)
    return bytes([ctl | 0x80]) + bytes(m)


def main(out):
    os.makedirs(out, exist_ok=True)
    seeds = {
        'seed-direct': image(0x03),
        'seed-indirect': image(0x07, indirect=True),
        'seed-split-header': image(0x1B, split_hdr=True),
        'seed-legacy-refusing-peer': image(0x20),
        'seed-packed-direct': packed_image(0x03),
        'seed-packed-indirect': packed_image(0x07, indirect=True),
        'seed-packed-chain': packed_image(0x1B, chain=True),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), 'wb') as f:
            f.write(data)


if __name__ == '__main__':
    main(sys.argv[1])
