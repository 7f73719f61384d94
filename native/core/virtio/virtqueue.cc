#include "virtio/virtqueue.h"

#include <atomic>

#include "virtio/split_ring.h"

namespace netplane::core {

namespace {
bool HostOverlap(const uint8_t* a, uint64_t alen, const uint8_t* b, uint64_t blen) {
  return a < b + blen && b < a + alen;
}
}  // namespace

Status MapSplitRing(const GuestMemory& mem, const VringAddrs& a, SplitRingView* out) {
  if (!IsValidQueueSize(a.size))
    return Status::InvalidInput("vring size " + std::to_string(a.size) + " is not a power of two in 1..32768");
  SplitRingView v;
  v.size = a.size;
  struct Part {
    const char* name;
    uint64_t addr, len, align;
    uint8_t** host;
  } parts[] = {{"descriptor table", a.desc, VringDescBytes(a.size), 16, &v.desc},
               {"avail ring", a.avail, VringAvailBytes(a.size), 2, &v.avail},
               {"used ring", a.used, VringUsedBytes(a.size), 4, &v.used}};
  const char* space = a.space == AddrSpace::kGuest ? "guest address" : "user address";
  for (Part& p : parts) {
    if (p.addr % p.align != 0)
      return Status::InvalidInput(std::string("vring ") + p.name + " at " + space + " " + HexU64(p.addr) +
                                  " is not aligned to " + std::to_string(p.align));
    uint8_t* h = mem.TranslateContiguous(a.space, p.addr, p.len);
    if (!h)
      return Status::InvalidInput(std::string("vring ") + p.name + " at " + space + " " + HexU64(p.addr) + " (" +
                                  std::to_string(p.len) + " bytes) is not inside one guest memory region");
    if (reinterpret_cast<uintptr_t>(h) % p.align != 0)
      return Status::InvalidInput(std::string("vring ") + p.name + " maps to a misaligned host address");
    *p.host = h;
  }
  for (int i = 0; i < 3; ++i)
    for (int j = i + 1; j < 3; ++j)
      if (HostOverlap(*parts[i].host, parts[i].len, *parts[j].host, parts[j].len))
        return Status::InvalidInput(std::string("vring ") + parts[j].name + " overlaps the " + parts[i].name);
  *out = v;
  return Status::Ok();
}

Status Virtqueue::Start(std::shared_ptr<const GuestMemory> mem, const VringAddrs& a) {
  if (!mem) return Status::InvalidInput("vring has no guest memory");
  Status s = MapSplitRing(*mem, a, &ring_);
  if (!s.ok()) return s;
  mem_ = std::move(mem);
  size_ = a.size;
  mask_ = static_cast<uint16_t>(a.size - 1);
  event_idx_ = a.event_idx;
  notify_enabled_ = true;
  last_avail_ = avail_cache_ = a.base;
  used_idx_ = published_ = LoadRelaxed16(ring_.used + kRingIdxOff);
  in_flight_ = 0;
  signalled_valid_ = false;
  error_ = VirtqError::kOk;
  // Start with kicks wanted: the owner disables them while it drains.
  if (event_idx_)
    StoreRelaxed16(ring_.used + UsedEventWordOff(size_), last_avail_);
  else
    StoreRelaxed16(ring_.used + kRingFlagsOff, 0);
  return Status::Ok();
}

uint16_t Virtqueue::Stop() {
  if (!mem_) return last_avail_;
  Flush();
  mem_.reset();
  ring_ = SplitRingView{};
  return last_avail_;
}

uint16_t Virtqueue::Available() {
  if (!mem_ || broken()) return 0;
  uint16_t n = static_cast<uint16_t>(avail_cache_ - last_avail_);
  if (n != 0) return n;
  avail_cache_ = LoadAcquire16(ring_.avail + kRingIdxOff);
  n = static_cast<uint16_t>(avail_cache_ - last_avail_);
  if (n > size_) {
    SetError(VirtqError::kAvailIdxJump);
    return 0;
  }
  return n;
}

Virtqueue::PopResult Virtqueue::Pop(iovec* iov, int max_iov, DescChain* chain) {
  if (!mem_ || broken()) return PopResult::kError;
  if (avail_cache_ == last_avail_) {
    // acquire: the ring entries and descriptors the driver wrote before this index.
    avail_cache_ = LoadAcquire16(ring_.avail + kRingIdxOff);
    if (avail_cache_ == last_avail_) return PopResult::kEmpty;
  }
  if (static_cast<uint16_t>(avail_cache_ - last_avail_) > size_) {
    SetError(VirtqError::kAvailIdxJump);
    return PopResult::kError;
  }
  if (in_flight_ >= size_) {
    SetError(VirtqError::kTooManyInFlight);
    return PopResult::kError;
  }
  uint16_t head = LoadRelaxed16(ring_.avail + kRingEntriesOff + 2u * (last_avail_ & mask_));
  VirtqError e = WalkChain(*mem_, ring_.desc, size_, head, iov, max_iov, chain);
  if (e != VirtqError::kOk) {
    SetError(e);
    return PopResult::kError;
  }
  ++last_avail_;
  ++in_flight_;
  if (event_idx_ && notify_enabled_) StoreRelaxed16(ring_.used + UsedEventWordOff(size_), last_avail_);
  return PopResult::kChain;
}

void Virtqueue::Push(uint16_t head, uint32_t len) {
  uint8_t* e = ring_.used + kRingEntriesOff + 8u * (used_idx_ & mask_);
  StoreRelaxed32(e, head);
  StoreRelaxed32(e + 4, len);
  ++used_idx_;
  if (in_flight_) --in_flight_;
}

void Virtqueue::Rewind(const Mark& m) {
  last_avail_ = m.last_avail;
  used_idx_ = m.used_idx;
  in_flight_ = m.in_flight;
}

void Virtqueue::Unpop(uint16_t n) {
  if (n > in_flight_) n = in_flight_;
  last_avail_ = static_cast<uint16_t>(last_avail_ - n);
  in_flight_ = static_cast<uint16_t>(in_flight_ - n);
  if (event_idx_ && notify_enabled_) StoreRelaxed16(ring_.used + UsedEventWordOff(size_), last_avail_);
}

void Virtqueue::PrefetchAvail(uint16_t n) {
  if (!mem_ || broken()) return;
  uint16_t av = static_cast<uint16_t>(avail_cache_ - last_avail_);
  if (av == 0) {
    avail_cache_ = LoadAcquire16(ring_.avail + kRingIdxOff);
    av = static_cast<uint16_t>(avail_cache_ - last_avail_);
  }
  if (av > size_) return;  // Pop() reports the jump
  if (n > av) n = av;
  for (uint16_t i = 0; i < n; ++i) {
    uint16_t head = LoadRelaxed16(ring_.avail + kRingEntriesOff + 2u * ((last_avail_ + i) & mask_));
    if (head < size_) __builtin_prefetch(ring_.desc + 16u * head);
  }
}

bool Virtqueue::Flush() {
  if (!mem_ || used_idx_ == published_) return false;
  // release: the elements (and the bytes written into the buffers) before the index.
  StoreRelease16(ring_.used + kRingIdxOff, used_idx_);
  published_ = used_idx_;
  return true;
}

bool Virtqueue::NeedsNotify() {
  if (!mem_) return false;
  if (signalled_valid_ && published_ == signalled_used_) return false;
  // store (used.idx) -> load (used_event / flags): a full fence, or the driver may miss it.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const uint16_t old = signalled_used_;
  const bool valid = signalled_valid_;
  signalled_used_ = published_;
  signalled_valid_ = true;
  if (!event_idx_) return !(LoadRelaxed16(ring_.avail + kRingFlagsOff) & kVringAvailFNoInterrupt);
  if (!valid) return true;
  return VringNeedEvent(LoadRelaxed16(ring_.avail + AvailEventWordOff(size_)), published_, old);
}

bool Virtqueue::EnableNotification() {
  if (!mem_) return false;
  notify_enabled_ = true;
  if (event_idx_)
    StoreRelaxed16(ring_.used + UsedEventWordOff(size_), last_avail_);
  else
    StoreRelaxed16(ring_.used + kRingFlagsOff, 0);
  // store (avail_event / flags) -> load (avail.idx): else a kick can fall in between.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  avail_cache_ = LoadAcquire16(ring_.avail + kRingIdxOff);
  return avail_cache_ != last_avail_;
}

void Virtqueue::DisableNotification() {
  if (!mem_ || !notify_enabled_) return;
  notify_enabled_ = false;
  if (!event_idx_) StoreRelaxed16(ring_.used + kRingFlagsOff, kVringUsedFNoNotify);
}

}  // namespace netplane::core
