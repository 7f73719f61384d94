// Walking one descriptor chain of a split virtqueue (virtio 1.x 2.7.5 / 2.7.5.3) into host
// iovecs, with every guest-controlled value bounded (reference note 2.2 and 2.7):
//  - each descriptor is read exactly once into a local copy (no double fetch);
//  - `next` must be < the table size; a chain visits at most `size` descriptors of the ring
//    and at most the table's length inside an indirect table (this also ends loops);
//  - INDIRECT: len non-zero, a multiple of 16, at most kMaxQueueSize entries, not combined
//    with NEXT, never inside an indirect table; the table is read through guest memory in
//    pieces (it may straddle regions), never as one host range;
//  - a zero-length descriptor is an error (QEMU: "zero sized buffers are not allowed");
//  - device-readable descriptors all come before device-writable ones;
//  - the chain's total length stays below 2^32 bytes; every buffer translates in full
//    (split at region ends), else the chain is an error;
//  - at most `max_iov` host pieces (the caller's fixed array: no allocation).
// A chain that breaks any rule is a VirtqError: the queue that holds it is broken.
#pragma once

#include <sys/uio.h>

#include <cstdint>

#include "virtio/guest_memory.h"

namespace netplane::core {

enum class VirtqError : uint8_t {
  kOk = 0,
  kAvailIdxJump,        // avail.idx moved by more than the ring size
  kHeadOutOfRange,      // a head index >= the ring size
  kNextOutOfRange,      // next >= the table size
  kChainTooLong,        // more descriptors than the table holds (a loop)
  kNestedIndirect,      // INDIRECT inside an indirect table
  kIndirectWithNext,    // INDIRECT and NEXT on one descriptor
  kIndirectBadLen,      // indirect table length 0, not a multiple of 16, or too long
  kIndirectBadAddress,  // indirect table outside guest memory
  kZeroLength,          // a zero-length buffer
  kBadAddress,          // a buffer outside guest memory, or addr + len wrapping
  kTooManyPieces,       // more host pieces than the iovec array holds
  kChainTooBig,         // total length >= 4 GiB
  kReadableAfterWritable,
  kWritableInTx,      // a device-writable buffer where only readable ones belong
  kReadableInRx,      // a device-readable buffer where only writable ones belong
  kTooManyInFlight,   // more chains popped than the ring holds
  kRxBufferTooSmall,  // the first rx buffer cannot hold the virtio-net header
  kKickFd,            // the kick fd hit EOF or an error (not an eventfd)
};
const char* VirtqErrorName(VirtqError e);

// Where a chain's descriptors are read from: the ring's table (host pointer, contiguous).
struct DescChain {
  uint16_t head = 0;
  int n_readable = 0;  // iov[0 .. n_readable) are device-readable
  int n_writable = 0;  // iov[n_readable .. n_readable + n_writable) are device-writable
  uint64_t readable_bytes = 0;
  uint64_t writable_bytes = 0;
  uint32_t descriptors = 0;  // visited, indirect tables included
};

// Walk the chain at `head` of the ring table `table` (size entries, 16-byte aligned) and
// translate its buffers into iov[0 .. max_iov). Descriptor addresses are guest-physical.
VirtqError WalkChain(const GuestMemory& mem, const uint8_t* table, uint32_t size, uint16_t head, iovec* iov,
                     int max_iov, DescChain* out);

}  // namespace netplane::core
