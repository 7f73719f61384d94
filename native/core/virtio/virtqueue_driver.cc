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
  // The free list is private: the device cannot reach it through the shared `next` fields.
  state_.assign(size, DescState{});
  for (uint32_t i = 0; i < size; ++i) state_[i].next = static_cast<uint16_t>((i + 1) % size);
  free_head_ = 0;
  num_free_ = size;
  error_.clear();
  return Status::Ok();
}

int VirtqueueDriver::AddBuffers(const Buffer* bufs, int n, uint64_t indirect_table) {
  if (n <= 0) return -1;
  const uint32_t need = indirect_table ? 1u : static_cast<uint32_t>(n);
  if (need > num_free_) return -1;
  const uint16_t head = free_head_;
  uint64_t bytes = 0;
  for (int i = 0; i < n; ++i) bytes += bufs[i].len;
  if (indirect_table) {
    for (int i = 0; i < n; ++i) {
      VringDesc d{bufs[i].addr, bufs[i].len,
                  static_cast<uint16_t>((bufs[i].writable ? kVringDescFWrite : 0) | (i + 1 < n ? kVringDescFNext : 0)),
                  static_cast<uint16_t>(i + 1 < n ? i + 1 : 0)};
      if (!WriteDescRaw(static_cast<uint16_t>(i), d, indirect_table)) return -1;
    }
    StoreDesc(ring_.desc + 16ull * head,
              VringDesc{indirect_table, static_cast<uint32_t>(16 * n), kVringDescFIndirect, 0});
    free_head_ = state_[head].next;
  } else {
    // Links come from the private list; the shared copy is written, never read back.
    uint16_t idx = head;
    for (int i = 0; i < n; ++i) {
      const uint16_t next = state_[idx].next;
      const bool more = i + 1 < n;
      const uint16_t flags =
          static_cast<uint16_t>((bufs[i].writable ? kVringDescFWrite : 0) | (more ? kVringDescFNext : 0));
      StoreDesc(ring_.desc + 16ull * idx, VringDesc{bufs[i].addr, bufs[i].len, flags, more ? next : uint16_t{0}});
      idx = next;
    }
    free_head_ = idx;
  }
  num_free_ -= need;
  state_[head].chain_descs = static_cast<uint16_t>(need);
  state_[head].chain_bytes = bytes;
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

bool VirtqueueDriver::Refuse(std::string why) {
  if (error_.empty()) error_ = std::move(why);
  return false;
}

bool VirtqueueDriver::GetUsed(uint32_t* head, uint32_t* len) {
  if (!error_.empty()) return false;
  const uint16_t idx = LoadAcquire16(ring_.used + kRingIdxOff);
  if (idx == last_used_) return false;
  // Each published chain is used once: the index cannot run ahead of what is in flight.
  const uint16_t ahead = static_cast<uint16_t>(idx - last_used_);
  const uint16_t in_flight = static_cast<uint16_t>(published_ - last_used_);
  if (ahead > in_flight)
    return Refuse("used idx " + std::to_string(idx) + " is " + std::to_string(ahead) + " entries ahead, only " +
                  std::to_string(in_flight) + " chains are in flight");
  const uint8_t* e = ring_.used + kRingEntriesOff + 8u * (last_used_ & (size_ - 1));
  const uint32_t id = LoadRelaxed32(e);
  const uint32_t n = LoadRelaxed32(e + 4);
  if (id >= size_ || state_[id].chain_descs == 0)
    return Refuse("used id " + std::to_string(id) + " is not a chain in flight");
  DescState& st = state_[id];
  if (n > st.chain_bytes)
    return Refuse("used length " + std::to_string(n) + " is larger than chain " + std::to_string(id) + "'s " +
                  std::to_string(st.chain_bytes) + " bytes");
  ++last_used_;
  // Return the chain's descriptors to the free list, following the private links.
  uint16_t last = static_cast<uint16_t>(id);
  for (uint16_t i = 1; i < st.chain_descs; ++i) last = state_[last].next;
  state_[last].next = free_head_;
  free_head_ = static_cast<uint16_t>(id);
  num_free_ += st.chain_descs;
  st.chain_descs = 0;
  st.chain_bytes = 0;
  *head = id;
  *len = n;
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
    out[i] = idx;
    idx = state_[idx].next;
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
