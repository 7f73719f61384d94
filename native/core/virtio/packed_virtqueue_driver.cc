#include "virtio/packed_virtqueue_driver.h"

#include <atomic>
#include <cstring>

#include "virtio/packed_virtqueue.h"

namespace netplane::core {

Status PackedVirtqueueDriver::Init(std::shared_ptr<const GuestMemory> mem, uint32_t size, uint64_t desc,
                                   uint64_t driver_event, uint64_t device_event, bool event_idx) {
  if (!mem) return Status::Invalid("packed driver ring: no guest memory");
  VringAddrs a;
  a.size = size;
  a.desc = desc;
  a.avail = driver_event;
  a.used = device_event;
  Status s = MapPackedRing(*mem, a, &ring_);
  if (!s.ok()) return s;
  std::memset(ring_.desc, 0, PackedDescBytes(size));
  std::memset(ring_.driver_event, 0, kPackedEventBytes);
  std::memset(ring_.device_event, 0, kPackedEventBytes);
  mem_ = std::move(mem);
  size_ = size;
  event_idx_ = event_idx;
  avail_pos_ = used_pos_ = 0;
  avail_wrap_ = used_wrap_ = true;
  avail_count_ = published_count_ = 0;
  num_free_ = size;
  free_ids_.clear();
  for (uint32_t i = size; i > 0; --i) free_ids_.push_back(static_cast<uint16_t>(i - 1));
  id_descs_.assign(size, 0);
  unpublished_.clear();
  return Status::Ok();
}

void PackedVirtqueueDriver::Advance(uint16_t* pos, bool* wrap, uint32_t by) const {
  uint32_t p = *pos + by;
  if (p >= size_) {
    p -= size_;
    *wrap = !*wrap;
  }
  *pos = static_cast<uint16_t>(p);
}

bool PackedVirtqueueDriver::CopyIn(uint64_t gpa, const void* data, size_t len) const {
  // A test driver: its indirect tables lie inside one region.
  uint8_t* host = mem_->TranslateContiguous(AddrSpace::kGuest, gpa, len);
  if (host) std::memcpy(host, data, len);
  return host != nullptr;
}

int PackedVirtqueueDriver::AddBuffers(const Buffer* bufs, int n, uint64_t indirect_table) {
  if (n <= 0 || free_ids_.empty()) return -1;
  const uint32_t need = indirect_table ? 1u : static_cast<uint32_t>(n);
  if (need > num_free_) return -1;
  const uint16_t id = free_ids_.back();
  if (indirect_table) {
    for (int i = 0; i < n; ++i) {
      uint8_t raw[16];
      EncodePackedDesc(
          PackedDesc{bufs[i].addr, bufs[i].len, 0, static_cast<uint16_t>(bufs[i].writable ? kVringDescFWrite : 0)},
          raw);
      if (!CopyIn(indirect_table + 16ull * i, raw, 16)) return -1;
    }
  }
  free_ids_.pop_back();
  for (uint32_t i = 0; i < need; ++i) {
    PackedDesc d;
    if (indirect_table) {
      d = PackedDesc{indirect_table, static_cast<uint32_t>(16 * n), id, kVringDescFIndirect};
    } else {
      d = PackedDesc{
          bufs[i].addr, bufs[i].len, id,
          static_cast<uint16_t>((bufs[i].writable ? kVringDescFWrite : 0) | (i + 1 < need ? kVringDescFNext : 0))};
    }
    const uint16_t flags = static_cast<uint16_t>(d.flags | AvailFlags());
    if (i == 0) {
      // The first descriptor keeps its old flags (not available) until Publish.
      d.flags = LoadPackedDesc(ring_.desc + 16ull * avail_pos_).flags;
      unpublished_.push_back({avail_pos_, flags});
    } else {
      d.flags = flags;
    }
    PublishPackedDesc(ring_.desc + 16ull * avail_pos_, d);
    Advance(&avail_pos_, &avail_wrap_, 1);
  }
  num_free_ -= need;
  id_descs_[id] = static_cast<uint16_t>(need);
  avail_count_ = static_cast<uint16_t>(avail_count_ + need);
  return id;
}

bool PackedVirtqueueDriver::Publish() {
  // The latest first, the earliest last: the device reads in order.
  for (size_t i = unpublished_.size(); i > 0; --i) {
    const Held& h = unpublished_[i - 1];
    StoreRelease16(ring_.desc + 16ull * h.pos + kPackedDescFlagsOff, h.flags);
  }
  unpublished_.clear();
  const uint16_t old = published_count_;
  published_count_ = avail_count_;
  std::atomic_thread_fence(std::memory_order_seq_cst);  // flags store -> event load
  if (old == published_count_) return false;
  const uint16_t flags = LoadRelaxed16(ring_.device_event + kPackedEventFlagsOff);
  if (flags == kPackedEventDisable) return false;
  if (flags != kPackedEventDesc || !event_idx_) return true;
  return PackedNeedEvent(LoadRelaxed16(ring_.device_event + kPackedEventOffWrapOff), size_, avail_pos_, avail_wrap_,
                         published_count_, old);
}

bool PackedVirtqueueDriver::GetUsed(uint32_t* id, uint32_t* len) {
  const uint8_t* p = ring_.desc + 16ull * used_pos_;
  if (!PackedDescUsed(LoadAcquire16(p + kPackedDescFlagsOff), used_wrap_)) return false;
  const PackedDesc d = LoadPackedDesc(p);
  *id = d.id;
  *len = d.len;
  uint32_t descs = 1;
  if (d.id < size_ && id_descs_[d.id] > 0) {
    descs = id_descs_[d.id];
    num_free_ += descs;
    id_descs_[d.id] = 0;
    free_ids_.push_back(d.id);
  }
  Advance(&used_pos_, &used_wrap_, descs);
  return true;
}

void PackedVirtqueueDriver::SetUsedEvent(uint16_t off_wrap) {
  StoreRelaxed16(ring_.driver_event + kPackedEventOffWrapOff, off_wrap);
  StoreRelease16(ring_.driver_event + kPackedEventFlagsOff, kPackedEventDesc);
}

void PackedVirtqueueDriver::SuppressInterrupts(bool on) {
  StoreRelease16(ring_.driver_event + kPackedEventFlagsOff, on ? kPackedEventDisable : kPackedEventEnable);
}

void PackedVirtqueueDriver::WriteDescRaw(uint16_t pos, const PackedDesc& d) {
  if (pos < size_) PublishPackedDesc(ring_.desc + 16ull * pos, d);
}

}  // namespace netplane::core
