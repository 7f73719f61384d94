// PackedVirtqueue: the device side of one packed virtqueue (virtio 1.1 section 2.8), with
// the interface of Virtqueue (virtqueue.h) so the virtio-net queue runs over either kind
// (DeviceRing, device_ring.h, picks one).
//
// Contract (where it differs from Virtqueue):
//  - Start() validates the layout once: size 1..32768 (any value), the descriptor ring
//    aligned 16 and the two event areas aligned 4, each whole inside one region, no two
//    overlapping in host memory; a base whose position (bits 0-14) is not below the size is
//    refused. kInvalidInput naming the part. The used position starts at the avail position
//    (nothing is in flight across a stop: see Stop()).
//  - Pop() takes the buffer at the avail position when its flags (acquire) say available:
//    a chain follows NEXT through consecutive positions (wrapping at the ring end); an
//    INDIRECT descriptor ends it with the table's len / 16 entries in order (their NEXT is
//    meaningless, INDIRECT among them is kNestedIndirect). Buffers obey the split rules
//    (descriptor_chain.h: zero length, readable after writable, 4 GiB, translation, pieces);
//    a chain of more than `size` ring descriptors is kChainTooLong; popping a chain whose
//    descriptors, with those popped and not yet given back, would exceed the ring is
//    kTooManyInFlight. DescChain::head is the buffer id (the last descriptor's, or the
//    indirect descriptor's). Any error breaks the queue until Start() again.
//  - Completions must come in pop order (netplane's tx and rx both complete in order): Push()
//    records the length for the oldest chain popped and not pushed; nothing is written to the
//    ring until Flush(), which writes one used descriptor per buffer at consecutive used
//    positions (skipping each buffer's descriptor count) and the flags of the first of them
//    last, so the driver sees the batch at once. So Rewind() only forgets (an rx packet that
//    does not fit): the driver's descriptors are untouched until Flush().
//  - Notifications: the driver event area decides interrupts (DISABLE, ENABLE, or with
//    EVENT_IDX the DESC position, compared over a free-running count of used descriptors so a
//    whole ring's worth between two checks still signals); EnableNotification() writes the
//    device event area (DESC at our avail position with EVENT_IDX, else ENABLE), fences and
//    says whether a buffer came meanwhile; DisableNotification() writes DISABLE.
//  - Available() is 1 when the next buffer is available, else 0 (counting would mean walking
//    chains). Stop() flushes and returns avail position|wrap<<15 | (used position|wrap<<15)<<16.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "base/status.h"
#include "virtio/descriptor_chain.h"
#include "virtio/guest_memory.h"
#include "virtio/packed_ring.h"
#include "virtio/virtqueue.h"

namespace netplane::core {

// The layout checks of Start() on their own (desc = ring, avail = driver event area, used =
// device event area).
Status MapPackedRing(const GuestMemory& mem, const VringAddrs& a, PackedRingView* out);

class PackedVirtqueue {
 public:
  using PopResult = Virtqueue::PopResult;

  PackedVirtqueue() = default;
  PackedVirtqueue(const PackedVirtqueue&) = delete;
  PackedVirtqueue& operator=(const PackedVirtqueue&) = delete;

  Status Start(std::shared_ptr<const GuestMemory> mem, const VringAddrs& a);
  uint32_t Stop();
  bool started() const { return mem_ != nullptr; }

  PopResult Pop(iovec* iov, int max_iov, DescChain* chain);
  void Push(uint16_t id, uint32_t len);
  bool Flush();
  bool NeedsNotify();
  bool EnableNotification();
  void DisableNotification();
  uint16_t Available();

  struct Mark {
    uint16_t avail_pos;
    bool avail_wrap;
    uint32_t popped, pushed, held;
  };
  Mark GetMark() const { return {avail_pos_, avail_wrap_, popped_, pushed_, held_}; }
  void Rewind(const Mark& m);
  // Give back the last n chains popped and not pushed (a tx batch the peer refused part of).
  void Unpop(uint16_t n);
  // Chains popped since the mark.
  uint32_t ChainsSince(const Mark& m) const { return popped_ - m.popped; }

  // avail position | wrap << 15 (the low half of Stop()'s value).
  uint16_t Base() const { return PackedPosWrap(avail_pos_, avail_wrap_); }
  uint32_t size() const { return size_; }
  uint16_t in_flight() const { return static_cast<uint16_t>(popped_ - pushed_); }
  uint16_t unflushed() const { return static_cast<uint16_t>(pushed_ - flushed_); }
  const GuestMemory* memory() const { return mem_.get(); }
  bool broken() const { return error_ != VirtqError::kOk; }
  VirtqError error() const { return error_; }
  void SetError(VirtqError e) {
    if (error_ == VirtqError::kOk) error_ = e;
  }

 private:
  struct Entry {
    uint16_t id;
    uint16_t descs;  // ring positions the buffer took
    uint32_t len;    // bytes written (set by Push)
  };
  VirtqError Walk(uint16_t head_flags, iovec* iov, int max_iov, DescChain* out, uint32_t* ring_descs) const;
  void WriteDeviceEvent();

  std::shared_ptr<const GuestMemory> mem_;
  PackedRingView ring_;
  uint32_t size_ = 0;
  bool event_idx_ = false;
  bool notify_enabled_ = true;
  uint16_t avail_pos_ = 0;
  bool avail_wrap_ = true;
  uint16_t used_pos_ = 0;
  bool used_wrap_ = true;
  uint16_t used_count_ = 0;  // free-running: used descriptors written (positions passed)
  // Chains in pop order, slot = counter % size: [flushed_, pushed_) completed and waiting
  // for Flush(), [pushed_, popped_) in flight.
  std::vector<Entry> entries_;
  uint32_t popped_ = 0, pushed_ = 0, flushed_ = 0;
  uint32_t held_ = 0;  // ring positions of every chain popped and not flushed
  uint16_t signalled_count_ = 0;
  bool signalled_valid_ = false;
  VirtqError error_ = VirtqError::kOk;
};

}  // namespace netplane::core
