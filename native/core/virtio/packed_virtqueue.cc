#include "virtio/packed_virtqueue.h"

#include <algorithm>

#include <atomic>
#include <cstring>

namespace netplane::core {

Status MapPackedRing(const GuestMemory& mem, const VringAddrs& a, PackedRingView* out) {
  if (!IsValidPackedQueueSize(a.size))
    return Status::InvalidInput("packed vring size " + std::to_string(a.size) + " is not in 1..32768");
  PackedRingView v;
  v.size = a.size;
  struct Part {
    const char* name;
    uint64_t addr, len, align;
    uint8_t** host;
  } parts[] = {{"descriptor ring", a.desc, PackedDescBytes(a.size), 16, &v.desc},
               {"driver event area", a.avail, kPackedEventBytes, 4, &v.driver_event},
               {"device event area", a.used, kPackedEventBytes, 4, &v.device_event}};
  const char* space = a.space == AddrSpace::kGuest ? "guest address" : "user address";
  for (Part& p : parts) {
    if (p.addr % p.align != 0)
      return Status::InvalidInput(std::string("packed vring ") + p.name + " at " + space + " " + HexU64(p.addr) +
                                  " is not aligned to " + std::to_string(p.align));
    uint8_t* h = mem.TranslateContiguous(a.space, p.addr, p.len);
    if (!h)
      return Status::InvalidInput(std::string("packed vring ") + p.name + " at " + space + " " + HexU64(p.addr) + " (" +
                                  std::to_string(p.len) + " bytes) is not inside one guest memory region");
    if (reinterpret_cast<uintptr_t>(h) % p.align != 0)
      return Status::InvalidInput(std::string("packed vring ") + p.name + " maps to a misaligned host address");
    *p.host = h;
  }
  // Our used descriptors and event words must not land on another part.
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < i; ++j) {
      const uintptr_t ai = reinterpret_cast<uintptr_t>(*parts[i].host),
                      aj = reinterpret_cast<uintptr_t>(*parts[j].host);
      if (ai < aj + parts[j].len && aj < ai + parts[i].len)
        return Status::InvalidInput(std::string("packed vring ") + parts[i].name + " overlaps the " + parts[j].name);
    }
  *out = v;
  return Status::Ok();
}

Status PackedVirtqueue::Start(std::shared_ptr<const GuestMemory> mem, const VringAddrs& a) {
  if (!mem) return Status::InvalidInput("packed vring has no guest memory");
  PackedRingView v;
  Status s = MapPackedRing(*mem, a, &v);
  if (!s.ok()) return s;
  const uint16_t pos = a.base & 0x7fff;
  if (pos >= a.size)
    return Status::InvalidInput("packed vring base position " + std::to_string(pos) + " is not below the size " +
                                std::to_string(a.size));
  ring_ = v;
  mem_ = std::move(mem);
  size_ = a.size;
  event_idx_ = a.event_idx;
  avail_pos_ = used_pos_ = pos;
  avail_wrap_ = used_wrap_ = (a.base & 0x8000) != 0;
  used_count_ = 0;
  entries_.assign(size_, Entry{0, 0, 0});
  popped_ = pushed_ = flushed_ = held_ = 0;
  signalled_valid_ = false;
  error_ = VirtqError::kOk;
  notify_enabled_ = true;
  WriteDeviceEvent();
  return Status::Ok();
}

uint32_t PackedVirtqueue::Stop() {
  if (mem_) {
    Flush();
    mem_.reset();
    ring_ = PackedRingView{};
  }
  return Base() | static_cast<uint32_t>(PackedPosWrap(used_pos_, used_wrap_)) << 16;
}

void PackedVirtqueue::WriteDeviceEvent() {
  if (event_idx_) {
    StoreRelaxed16(ring_.device_event + kPackedEventOffWrapOff, Base());
    StoreRelaxed16(ring_.device_event + kPackedEventFlagsOff, kPackedEventDesc);
  } else {
    StoreRelaxed16(ring_.device_event + kPackedEventFlagsOff, kPackedEventEnable);
  }
}

uint16_t PackedVirtqueue::Available() {
  if (!mem_ || broken()) return 0;
  return PackedDescAvail(LoadAcquire16(ring_.desc + 16ull * avail_pos_ + kPackedDescFlagsOff), avail_wrap_) ? 1 : 0;
}

namespace {

// One buffer of a chain into iov (the rules of descriptor_chain.h).
VirtqError AddBuffer(const GuestMemory& mem, uint64_t addr, uint32_t len, bool writable, iovec* iov, int max_iov,
                     int* n, DescChain* out) {
  if (len == 0) return VirtqError::kZeroLength;
  if (!writable && out->n_writable > 0) return VirtqError::kReadableAfterWritable;
  (writable ? out->writable_bytes : out->readable_bytes) += len;
  if (out->readable_bytes + out->writable_bytes >= (1ull << 32)) return VirtqError::kChainTooBig;
  int k = mem.Translate(AddrSpace::kGuest, addr, len, iov + *n, max_iov - *n);
  if (k == GuestMemory::kNoRoom) return VirtqError::kTooManyPieces;
  if (k < 0) return VirtqError::kBadAddress;
  *n += k;
  (writable ? out->n_writable : out->n_readable) += k;
  return VirtqError::kOk;
}

// Entry i of an indirect table at guest address `table`, gathered byte-wise (the table need
// not be aligned and may straddle regions).
bool ReadIndirectEntry(const GuestMemory& mem, uint64_t table, uint32_t i, PackedDesc* d) {
  iovec v[2];
  int k = mem.Translate(AddrSpace::kGuest, table + 16ull * i, 16, v, 2);
  if (k <= 0) return false;
  uint8_t raw[16];
  size_t at = 0;
  for (int j = 0; j < k; ++j) {
    std::memcpy(raw + at, v[j].iov_base, v[j].iov_len);
    at += v[j].iov_len;
  }
  *d = DecodePackedDesc(raw);
  return true;
}

}  // namespace

VirtqError PackedVirtqueue::Walk(uint16_t head_flags, iovec* iov, int max_iov, DescChain* out,
                                 uint32_t* ring_descs) const {
  *out = DescChain{};
  uint32_t pos = avail_pos_;
  uint32_t count = 0;
  int n = 0;
  for (;;) {
    if (++count > size_) return VirtqError::kChainTooLong;
    ++out->descriptors;
    PackedDesc d = LoadPackedDesc(ring_.desc + 16ull * pos);
    if (count == 1) d.flags = head_flags;  // act on the flags we checked (acquire), not a re-read
    if (d.flags & kVringDescFIndirect) {
      if (d.flags & kVringDescFNext) return VirtqError::kIndirectWithNext;
      if (d.len == 0 || d.len % 16 != 0 || d.len / 16 > kMaxQueueSize) return VirtqError::kIndirectBadLen;
      const uint32_t entries = d.len / 16;
      for (uint32_t i = 0; i < entries; ++i) {
        PackedDesc e;
        if (!ReadIndirectEntry(*mem_, d.addr, i, &e)) return VirtqError::kIndirectBadAddress;
        ++out->descriptors;
        if (e.flags & kVringDescFIndirect) return VirtqError::kNestedIndirect;
        VirtqError r = AddBuffer(*mem_, e.addr, e.len, e.flags & kVringDescFWrite, iov, max_iov, &n, out);
        if (r != VirtqError::kOk) return r;
      }
      out->head = d.id;
      break;
    }
    VirtqError r = AddBuffer(*mem_, d.addr, d.len, d.flags & kVringDescFWrite, iov, max_iov, &n, out);
    if (r != VirtqError::kOk) return r;
    if (!(d.flags & kVringDescFNext)) {
      out->head = d.id;  // the buffer id is the last descriptor's
      break;
    }
    if (++pos == size_) pos = 0;
  }
  *ring_descs = count;
  return VirtqError::kOk;
}

PackedVirtqueue::PopResult PackedVirtqueue::Pop(iovec* iov, int max_iov, DescChain* chain) {
  if (!mem_ || broken()) return PopResult::kError;
  // acquire: the descriptors the driver wrote before it flipped these flags.
  const uint16_t flags = LoadAcquire16(ring_.desc + 16ull * avail_pos_ + kPackedDescFlagsOff);
  if (!PackedDescAvail(flags, avail_wrap_)) return PopResult::kEmpty;
  uint32_t descs = 0;
  VirtqError e = Walk(flags, iov, max_iov, chain, &descs);
  if (e == VirtqError::kOk && held_ + descs > size_) e = VirtqError::kTooManyInFlight;
  if (e != VirtqError::kOk) {
    SetError(e);
    return PopResult::kError;
  }
  entries_[popped_ % size_] = Entry{chain->head, static_cast<uint16_t>(descs), 0};
  ++popped_;
  held_ += descs;
  uint32_t pos = avail_pos_ + descs;
  if (pos >= size_) {
    pos -= size_;
    avail_wrap_ = !avail_wrap_;
  }
  avail_pos_ = static_cast<uint16_t>(pos);
  if (event_idx_ && notify_enabled_) StoreRelaxed16(ring_.device_event + kPackedEventOffWrapOff, Base());
  return PopResult::kChain;
}

void PackedVirtqueue::Push(uint16_t id, uint32_t len) {
  if (pushed_ == popped_) return;  // nothing in flight: a caller bug, never a guest's doing
  Entry& en = entries_[pushed_ % size_];
  en.id = id;
  en.len = len;
  ++pushed_;
}

void PackedVirtqueue::Rewind(const Mark& m) {
  avail_pos_ = m.avail_pos;
  avail_wrap_ = m.avail_wrap;
  popped_ = m.popped;
  pushed_ = m.pushed;
  held_ = m.held;
}

void PackedVirtqueue::Unpop(uint16_t n) {
  for (uint32_t left = std::min<uint32_t>(n, popped_ - pushed_); left > 0; --left) {
    --popped_;
    const uint16_t descs = entries_[popped_ % size_].descs;
    held_ -= descs;
    if (avail_pos_ < descs) {
      avail_pos_ = static_cast<uint16_t>(avail_pos_ + size_ - descs);
      avail_wrap_ = !avail_wrap_;
    } else {
      avail_pos_ = static_cast<uint16_t>(avail_pos_ - descs);
    }
  }
  if (event_idx_ && notify_enabled_) StoreRelaxed16(ring_.device_event + kPackedEventOffWrapOff, Base());
}

bool PackedVirtqueue::Flush() {
  if (!mem_ || pushed_ == flushed_) return false;
  uint8_t* first = nullptr;
  PackedDesc first_desc{};
  for (uint32_t k = flushed_; k != pushed_; ++k) {
    const Entry& en = entries_[k % size_];
    const uint16_t bits = used_wrap_ ? (kPackedDescFAvail | kPackedDescFUsed) : 0;
    PackedDesc d{0, en.len, en.id, bits};
    uint8_t* p = ring_.desc + 16ull * used_pos_;
    if (k == flushed_) {
      first = p;
      first_desc = d;
    } else {
      PublishPackedDesc(p, d);
    }
    uint32_t pos = used_pos_ + en.descs;
    if (pos >= size_) {
      pos -= size_;
      used_wrap_ = !used_wrap_;
    }
    used_pos_ = static_cast<uint16_t>(pos);
    used_count_ = static_cast<uint16_t>(used_count_ + en.descs);
    held_ -= en.descs;
  }
  // The first one last: the driver reads in order, so it sees the whole batch at once.
  PublishPackedDesc(first, first_desc);
  flushed_ = pushed_;
  return true;
}

bool PackedVirtqueue::NeedsNotify() {
  if (!mem_) return false;
  if (signalled_valid_ && used_count_ == signalled_count_) return false;
  // store (used flags) -> load (driver event): a full fence, or the driver may miss it.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const uint16_t old = signalled_count_;
  const bool valid = signalled_valid_;
  signalled_count_ = used_count_;
  signalled_valid_ = true;
  const uint16_t flags = LoadRelaxed16(ring_.driver_event + kPackedEventFlagsOff);
  if (flags == kPackedEventDisable) return false;
  if (flags != kPackedEventDesc || !event_idx_ || !valid) return true;
  const uint16_t off_wrap = LoadRelaxed16(ring_.driver_event + kPackedEventOffWrapOff);
  return PackedNeedEvent(off_wrap, size_, used_pos_, used_wrap_, used_count_, old);
}

bool PackedVirtqueue::EnableNotification() {
  if (!mem_) return false;
  notify_enabled_ = true;
  WriteDeviceEvent();
  // store (event area) -> load (descriptor flags): else a kick can fall in between.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return PackedDescAvail(LoadAcquire16(ring_.desc + 16ull * avail_pos_ + kPackedDescFlagsOff), avail_wrap_);
}

void PackedVirtqueue::DisableNotification() {
  if (!mem_ || !notify_enabled_) return;
  notify_enabled_ = false;
  StoreRelaxed16(ring_.device_event + kPackedEventFlagsOff, kPackedEventDisable);
}

}  // namespace netplane::core
