// SpscRing: one single-producer single-consumer ring of frames in memory shared with
// JavaScript (a SharedArrayBuffer), the format JsPort and lib/dataplane/packet-port.ts share.
//
// Ring memory layout (all little-endian u32, positions are free-running byte counters):
//   [0]   magic 'NPR1'          [4]  capacity (data bytes, a power of two)
//   [64]  head  (producer)      [128] tail (consumer)
//   [192] wake  (consumer must be woken / was kicked; the side that wakes sets it to 1,
//                the woken side clears it before reading, so wake-ups coalesce per batch)
//   [196] blocked (the producer found the ring full; the consumer kicks it after freeing room)
//   [256] data: records { u32 len, u32 flags, len bytes, padding to 8 }; len 0xFFFFFFFF
//         marks the unused end of the data area (the next record starts at offset 0).
// A record's bytes are the vnet header (vnet_hdr_len bytes, possibly 0) then the frame.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "base/status.h"

namespace netplane::core {

constexpr uint32_t kRingMagic = 0x3152504e;  // "NPR1"
constexpr size_t kRingHeaderBytes = 256;
constexpr size_t kRingOffHead = 64, kRingOffTail = 128, kRingOffWake = 192, kRingOffBlocked = 196;
constexpr uint32_t kRingWrapMark = 0xFFFFFFFFu;
constexpr size_t kRingMinCapacity = 256 * 1024;  // two largest records always fit
constexpr size_t kRingMaxCapacity = 1u << 30;

// A view of one ring over shared memory (not owning it).
class SpscRing {
 public:
  // Checks the size (header + power-of-two data area within limits) and initialises the
  // header when init is true.
  static Status Attach(uint8_t* mem, size_t len, bool init, SpscRing* out);
  static size_t RecordSize(size_t len) { return 8 + ((len + 7) & ~size_t{7}); }
  // Both positions live in memory JavaScript can write. Records start 8-aligned and the
  // producer is at most one ring ahead; positions that break this (a JS bug writing the ring
  // words directly) make the ring look full rather than let a record land outside it.
  static bool PositionsSane(uint32_t h, uint32_t t, uint32_t cap) { return ((h | t) & 7) == 0 && h - t <= cap; }

  uint32_t capacity() const { return capacity_; }
  std::atomic<uint32_t>& head() const { return *At(kRingOffHead); }
  std::atomic<uint32_t>& tail() const { return *At(kRingOffTail); }
  std::atomic<uint32_t>& wake() const { return *At(kRingOffWake); }
  std::atomic<uint32_t>& blocked() const { return *At(kRingOffBlocked); }
  uint8_t* data() const { return mem_ + kRingHeaderBytes; }

  // Producer: bytes free for a record of len bytes, counting a wrap if needed.
  bool HasRoom(size_t len) const;
  // Producer: append one record gathered from iov (publishes head). False when full.
  bool Push(const iovec* iov, int iovcnt, size_t len, uint32_t flags);

 private:
  // Producer: whether a record of len bytes fits now; *h is the head, *off where the record
  // goes in the data area, *waste the bytes skipped first to wrap (0 when it fits before
  // the end).
  bool Reserve(size_t len, uint32_t* h, size_t* off, size_t* waste) const;
  std::atomic<uint32_t>* At(size_t off) const { return reinterpret_cast<std::atomic<uint32_t>*>(mem_ + off); }
  uint8_t* mem_ = nullptr;
  uint32_t capacity_ = 0;
};

}  // namespace netplane::core
