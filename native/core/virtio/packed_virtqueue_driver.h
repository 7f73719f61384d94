// PackedVirtqueueDriver: the driver side of one packed virtqueue in memory this process
// maps (a GuestMemory), as a guest's virtio driver runs it (Linux's virtqueue_add_packed /
// detach_buf_packed): for tests that drive the device side (packed_virtqueue.h) and the
// fuzzer's well-behaved guest.
//
// Contract: Init() lays the ring out (MapPackedRing's rules), zeroes it and starts both wrap
// counters at 1. AddBuffers() writes one buffer (a chain at consecutive positions, or one
// indirect descriptor whose table it writes at a given guest address, inside one region)
// with a free buffer id;
// its first descriptor's flags are held back until Publish(), which writes them (the
// earliest last, so the device sees the batch at once) and says whether the device wants a
// kick (its event area: DISABLE, ENABLE, or DESC with EVENT_IDX). GetUsed() takes one
// completed buffer at the used position (acquire on its flags), skips the positions it took
// and frees its id. SetUsedEvent() / SuppressInterrupts() write the driver event area.
// One thread uses a driver; the device may run on another.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "base/status.h"
#include "virtio/guest_memory.h"
#include "virtio/packed_ring.h"

namespace netplane::core {

class PackedVirtqueueDriver {
 public:
  struct Buffer {
    uint64_t addr;  // guest-physical
    uint32_t len;
    bool writable;
  };

  Status Init(std::shared_ptr<const GuestMemory> mem, uint32_t size, uint64_t desc, uint64_t driver_event,
              uint64_t device_event, bool event_idx);

  // Returns the buffer id, or -1 when ids or ring positions run out (or the indirect table
  // is outside memory).
  int AddBuffers(const Buffer* bufs, int n, uint64_t indirect_table = 0);
  bool Publish();
  bool GetUsed(uint32_t* id, uint32_t* len);
  // Interrupt when the device has used the descriptor at position|wrap<<15 (EVENT_IDX).
  void SetUsedEvent(uint16_t off_wrap);
  void SuppressInterrupts(bool on);

  // Raw access for tests that play a hostile guest.
  uint8_t* desc_ring() const { return ring_.desc; }
  uint8_t* driver_event() const { return ring_.driver_event; }
  uint8_t* device_event() const { return ring_.device_event; }
  uint16_t avail_pos() const { return avail_pos_; }
  bool avail_wrap() const { return avail_wrap_; }
  uint16_t used_pos() const { return used_pos_; }
  bool used_wrap() const { return used_wrap_; }
  uint32_t size() const { return size_; }
  uint32_t free_descriptors() const { return num_free_; }
  // Write descriptor `pos` of the ring as is (flags included, release).
  void WriteDescRaw(uint16_t pos, const PackedDesc& d);
  // The flags that make a descriptor at the next avail position available (this lap).
  uint16_t AvailFlags() const { return avail_wrap_ ? kPackedDescFAvail : kPackedDescFUsed; }

 private:
  void Advance(uint16_t* pos, bool* wrap, uint32_t by) const;
  bool CopyIn(uint64_t gpa, const void* data, size_t len) const;

  std::shared_ptr<const GuestMemory> mem_;
  PackedRingView ring_;
  uint32_t size_ = 0;
  bool event_idx_ = false;
  uint16_t avail_pos_ = 0;
  bool avail_wrap_ = true;
  uint16_t avail_count_ = 0;      // free-running: positions made available (published or not)
  uint16_t published_count_ = 0;  // as of the last Publish
  uint16_t used_pos_ = 0;
  bool used_wrap_ = true;
  uint32_t num_free_ = 0;
  std::vector<uint16_t> free_ids_;
  std::vector<uint16_t> id_descs_;  // positions each id's buffer took (0: free)
  struct Held {
    uint16_t pos;
    uint16_t flags;
  };
  std::vector<Held> unpublished_;  // first descriptors whose flags wait for Publish()
};

}  // namespace netplane::core
