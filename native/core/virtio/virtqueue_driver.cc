#include "virtio/virtqueue_driver.h"

#include <atomic>
#include <cstring>

namespace netplane::core {

Status VirtqueueDriver::Init(std::shared_ptr<const GuestMemory> mem, uint32_t size, uint64_t desc, uint64_t avail,
                             uint64_t used, bool event_idx) {
  if (!mem) return Status::Invalid("driver ring: no guest memory");
  VringAddrs a;
  a.size = size;
  a.desc = desc;
  a.avail = avail;
  a.used = used;
  Status s = MapSplitRing(*mem, a, &ring_);
  if (!s.ok()) return s;
  std::memset(ring_.desc, 0, VringDescBytes(size));
  std::memset(ring_.avail, 0, VringAvailBytes(size));
  std::memset(ring_.used, 0, VringUsedBytes(size));
  mem_ = std::move(mem);
  size_ = size;
  event_idx_ = event_idx;
  avail_idx_ = published_ = last_used_ = 0;
  // The free list runs through `next`, as Linux's virtio_ring does.
  for (uint32_t i = 0; i < size; ++i) {
    VringDesc d{0, 0, 0, static_cast<uint16_t>((i + 1) % size)};
    StoreDesc(ring_.desc + 16ull * i, d);
  }
  free_head_ = 0;
  num_free_ = size;
  chain_len_.assign(size, 0);
  return Status::Ok();
}

int VirtqueueDriver::AddBuffers(const Buffer* bufs, int n, uint64_t indirect_table) {
  if (n <= 0) return -1;
  const uint32_t need = indirect_table ? 1u : static_cast<uint32_t>(n);
  if (need > num_free_) return -1;
  const uint16_t head = free_head_;
  if (indirect_table) {
    for (int i = 0; i < n; ++i) {
      VringDesc d{bufs[i].addr, bufs[i].len,
                  static_cast<uint16_t>((bufs[i].writable ? kVringDescFWrite : 0) | (i + 1 < n ? kVringDescFNext : 0)),
                  static_cast<uint16_t>(i + 1 < n ? i + 1 : 0)};
      if (!WriteDescRaw(static_cast<uint16_t>(i), d, indirect_table)) return -1;
    }
    uint8_t* p = ring_.desc + 16ull * head;
    uint16_t next_free = LoadDesc(p).next;
    StoreDesc(p, VringDesc{indirect_table, static_cast<uint32_t>(16 * n), kVringDescFIndirect, next_free});
    free_head_ = next_free;
  } else {
    uint16_t idx = head;
    for (int i = 0; i < n; ++i) {
      uint8_t* p = ring_.desc + 16ull * idx;
      uint16_t next_free = LoadDesc(p).next;
      uint16_t flags =
          static_cast<uint16_t>((bufs[i].writable ? kVringDescFWrite : 0) | (i + 1 < n ? kVringDescFNext : 0));
      // A chain links through the same `next` the free list used.
      StoreDesc(p, VringDesc{bufs[i].addr, bufs[i].len, flags, next_free});
      idx = next_free;
    }
    free_head_ = idx;
  }
  num_free_ -= need;
  chain_len_[head] = static_cast<uint16_t>(need);
  PushAvailRaw(head);
  return head;
}

void VirtqueueDriver::PushAvailRaw(uint16_t head) {
  StoreRelaxed16(ring_.avail + kRingEntriesOff + 2u * (avail_idx_ & (size_ - 1)), head);
  ++avail_idx_;
}

void VirtqueueDriver::SetAvailIdxRaw(uint16_t idx) {
  avail_idx_ = idx;
  published_ = idx;
  StoreRelease16(ring_.avail + kRingIdxOff, idx);
}

bool VirtqueueDriver::WriteDescRaw(uint16_t i, const VringDesc& d, uint64_t table) {
  if (!table) {
    if (i >= size_) return false;
    StoreDesc(ring_.desc + 16ull * i, d);
    return true;
  }
  uint8_t raw[16];
  EncodeDesc(d, raw);
  return Write(table + 16ull * i, raw, 16);
}

bool VirtqueueDriver::Publish() {
  const uint16_t old = published_;
  const uint16_t now = avail_idx_;
  StoreRelease16(ring_.avail + kRingIdxOff, now);
  published_ = now;
  std::atomic_thread_fence(std::memory_order_seq_cst);  // idx store -> event / flags load
  if (old == now) return false;
  if (event_idx_) return VringNeedEvent(LoadRelaxed16(ring_.used + UsedEventWordOff(size_)), now, old);
  return !(LoadRelaxed16(ring_.used + kRingFlagsOff) & kVringUsedFNoNotify);
}

bool VirtqueueDriver::GetUsed(uint32_t* head, uint32_t* len) {
  uint16_t idx = LoadAcquire16(ring_.used + kRingIdxOff);
  if (idx == last_used_) return false;
  const uint8_t* e = ring_.used + kRingEntriesOff + 8u * (last_used_ & (size_ - 1));
  *head = LoadRelaxed32(e);
  *len = LoadRelaxed32(e + 4);
  ++last_used_;
  if (*head < size_ && chain_len_[*head] > 0) {
    // Return the chain's descriptors to the free list (walk `next` for direct chains).
    uint16_t n = chain_len_[*head];
    uint16_t last = static_cast<uint16_t>(*head);
    for (uint16_t i = 1; i < n; ++i) last = LoadDesc(ring_.desc + 16ull * last).next;
    VringDesc d = LoadDesc(ring_.desc + 16ull * last);
    d.next = free_head_;
    StoreDesc(ring_.desc + 16ull * last, d);
    free_head_ = static_cast<uint16_t>(*head);
    num_free_ += n;
    chain_len_[*head] = 0;
  }
  return true;
}

void VirtqueueDriver::SetUsedEvent(uint16_t idx) { StoreRelaxed16(ring_.avail + AvailEventWordOff(size_), idx); }

void VirtqueueDriver::SuppressInterrupts(bool on) {
  StoreRelaxed16(ring_.avail + kRingFlagsOff, on ? kVringAvailFNoInterrupt : 0);
}

void VirtqueueDriver::EnableInterrupts(bool on) {
  if (event_idx_) {
    SetUsedEvent(on ? last_used_ : static_cast<uint16_t>(last_used_ - 1));
    return;
  }
  SuppressInterrupts(!on);
}

bool VirtqueueDriver::PeekFree(uint32_t n, uint16_t* out) const {
  if (n > num_free_) return false;
  uint16_t idx = free_head_;
  for (uint32_t i = 0; i < n; ++i) {
    if (idx >= size_) return false;  // the free list runs through shared memory
    out[i] = idx;
    idx = LoadDesc(ring_.desc + 16ull * idx).next;
  }
  return true;
}

bool VirtqueueDriver::Write(uint64_t gpa, const void* data, size_t len) const {
  iovec v[8];
  int n = mem_->Translate(AddrSpace::kGuest, gpa, len, v, 8);
  if (n < 0) return false;
  const uint8_t* p = static_cast<const uint8_t*>(data);
  for (int i = 0; i < n; ++i) {
    std::memcpy(v[i].iov_base, p, v[i].iov_len);
    p += v[i].iov_len;
  }
  return true;
}

bool VirtqueueDriver::Read(uint64_t gpa, void* out, size_t len) const {
  iovec v[8];
  int n = mem_->Translate(AddrSpace::kGuest, gpa, len, v, 8);
  if (n < 0) return false;
  uint8_t* p = static_cast<uint8_t*>(out);
  for (int i = 0; i < n; ++i) {
    std::memcpy(p, v[i].iov_base, v[i].iov_len);
    p += v[i].iov_len;
  }
  return true;
}

}  // namespace netplane::core
