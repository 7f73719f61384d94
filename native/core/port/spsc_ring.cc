#include "port/spsc_ring.h"

#include <cstring>
#include <new>
#include <string>

namespace netplane::core {

Status SpscRing::Attach(uint8_t* mem, size_t len, bool init, SpscRing* out) {
  if (!mem || len < kRingHeaderBytes + kRingMinCapacity)
    return Status::Invalid("ring buffer too small: need at least " +
                           std::to_string(kRingHeaderBytes + kRingMinCapacity) + " bytes");
  size_t cap = len - kRingHeaderBytes;
  if (cap > kRingMaxCapacity || (cap & (cap - 1)) != 0)
    return Status::Invalid("ring data area must be a power of two between 256 KiB and 1 GiB, got " +
                           std::to_string(cap) + " bytes");
  if (reinterpret_cast<uintptr_t>(mem) % 8 != 0) return Status::Invalid("ring buffer not 8-byte aligned");
  out->mem_ = mem;
  out->capacity_ = static_cast<uint32_t>(cap);
  if (init) {
    std::memset(mem, 0, kRingHeaderBytes);
    new (mem + kRingOffHead) std::atomic<uint32_t>(0);
    new (mem + kRingOffTail) std::atomic<uint32_t>(0);
    new (mem + kRingOffWake) std::atomic<uint32_t>(0);
    new (mem + kRingOffBlocked) std::atomic<uint32_t>(0);
    std::memcpy(mem + 4, &out->capacity_, 4);
    uint32_t magic = kRingMagic;
    std::memcpy(mem, &magic, 4);
  } else {
    uint32_t magic;
    std::memcpy(&magic, mem, 4);
    if (magic != kRingMagic) return Status::Invalid("ring buffer has no ring header");
  }
  return Status::Ok();
}

bool SpscRing::Reserve(size_t len, uint32_t* h, size_t* off, size_t* waste) const {
  *h = head().load(std::memory_order_relaxed);
  uint32_t t = tail().load(std::memory_order_acquire);
  if (!PositionsSane(*h, t, capacity_)) return false;
  size_t rec = RecordSize(len);
  *off = *h & (capacity_ - 1);
  size_t contig = capacity_ - *off;
  *waste = contig < rec ? contig : 0;
  return capacity_ - static_cast<uint32_t>(*h - t) >= rec + *waste;
}

bool SpscRing::HasRoom(size_t len) const {
  uint32_t h;
  size_t off, waste;
  return Reserve(len, &h, &off, &waste);
}

bool SpscRing::Push(const iovec* iov, int iovcnt, size_t len, uint32_t flags) {
  uint32_t h;
  size_t off, waste;
  if (!Reserve(len, &h, &off, &waste)) return false;
  size_t rec = RecordSize(len);
  if (waste) {
    std::memcpy(data() + off, &kRingWrapMark, 4);
    h += static_cast<uint32_t>(waste);
    off = 0;
  }
  uint8_t* p = data() + off;
  uint32_t len32 = static_cast<uint32_t>(len);
  std::memcpy(p, &len32, 4);
  std::memcpy(p + 4, &flags, 4);
  p += 8;
  for (int i = 0; i < iovcnt; ++i) {
    std::memcpy(p, iov[i].iov_base, iov[i].iov_len);
    p += iov[i].iov_len;
  }
  head().store(h + static_cast<uint32_t>(rec), std::memory_order_release);
  return true;
}

}  // namespace netplane::core
