// Virtqueue: the device side of one split virtqueue (virtio 1.x 2.7; libvhost-user's
// vu_queue_pop / push / flush / notify, rust-vmm virtio-queue's Queue).
//
// Contract:
//  - Start() validates the layout against guest memory once: the size is a power of two in
//    1..32768; desc / avail / used are aligned 16 / 2 / 4 and each lies, whole (event words
//    included), inside one region; no two parts overlap in host memory (a used ring over the
//    descriptor table would let our writes rewrite descriptors). Failures are
//    StatusCode::kInvalidInput naming the part.
//  - Pop() hands out the next available chain (descriptor_chain.h checks it). avail.idx is
//    read with acquire; a move of more than `size` since our last index is an error
//    (kAvailIdxJump), as is popping more chains than the ring holds. Any error breaks the
//    queue for good: every later Pop() fails with the same error until Start() again.
//  - Push() writes a used element into the ring slot the driver cannot read yet; Flush()
//    publishes every element pushed since the last flush with ONE release store of
//    used.idx. Mark()/Rewind() undo pops and pushes that were not flushed (an rx packet that
//    does not fit the buffers posted so far).
//  - NeedsNotify() decides the interrupt for what was published since it last ran: a full
//    fence, then EVENT_IDX's used_event rule (the first one after Start() always signals),
//    or the driver's NO_INTERRUPT flag without EVENT_IDX.
//  - EnableNotification() asks the driver to kick on new buffers (avail_event = our index
//    with EVENT_IDX, else clear NO_NOTIFY), fences, and returns true when buffers arrived
//    meanwhile (the caller processes again: no lost kick). DisableNotification() stops
//    asking (NO_NOTIFY; with EVENT_IDX avail_event is simply no longer advanced).
//  - Unpop(n) gives back the last n chains popped and not pushed: the next Pop() returns
//    them again, read and checked again (the driver may have rewritten them meanwhile).
//    PrefetchAvail(n) asks the CPU for the head descriptors of the next n available chains
//    (a hint only: nothing is checked or consumed).
//  - Base(): the next avail index to process (vhost-user GET_VRING_BASE); Start() takes it
//    back (SET_VRING_BASE). The used index continues from what the ring holds.
// One thread (the owning queue's) uses a Virtqueue; the memory it reads is shared with the
// driver, through the atomics of split_ring.h.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <memory>

#include "base/status.h"
#include "virtio/descriptor_chain.h"
#include "virtio/guest_memory.h"
#include "virtio/split_ring.h"

namespace netplane::core {

struct VringAddrs {
  uint32_t size = 0;
  uint64_t desc = 0, avail = 0, used = 0;
  AddrSpace space = AddrSpace::kGuest;  // vhost-user rings come as front-end user addresses
  uint16_t base = 0;                    // next avail index to process
  bool event_idx = false;               // VIRTIO_F_RING_EVENT_IDX negotiated
  bool packed = false;                  // VIRTIO_F_RING_PACKED: a packed ring (packed_virtqueue.h)
};

// The layout checks of Start() (above) on their own: on success *out holds the parts.
Status MapSplitRing(const GuestMemory& mem, const VringAddrs& a, SplitRingView* out);

class Virtqueue {
 public:
  Virtqueue() = default;
  Virtqueue(const Virtqueue&) = delete;
  Virtqueue& operator=(const Virtqueue&) = delete;

  Status Start(std::shared_ptr<const GuestMemory> mem, const VringAddrs& a);
  // Publish what is pushed, forget the memory; returns the next avail index.
  uint16_t Stop();
  bool started() const { return mem_ != nullptr; }

  enum class PopResult { kChain, kEmpty, kError };
  PopResult Pop(iovec* iov, int max_iov, DescChain* chain);
  void Push(uint16_t head, uint32_t len);
  bool Flush();
  bool NeedsNotify();
  bool EnableNotification();
  void DisableNotification();
  // Chains available and not popped yet (0 also when broken or jumped: Pop() reports that).
  uint16_t Available();

  struct Mark {
    uint16_t last_avail, used_idx, in_flight;
  };
  Mark GetMark() const { return {last_avail_, used_idx_, in_flight_}; }
  void Rewind(const Mark& m);
  void Unpop(uint16_t n);
  void PrefetchAvail(uint16_t n);

  uint16_t Base() const { return last_avail_; }
  uint32_t size() const { return size_; }
  uint16_t in_flight() const { return in_flight_; }
  // Pushed, not yet flushed.
  uint16_t unflushed() const { return static_cast<uint16_t>(used_idx_ - published_); }
  const GuestMemory* memory() const { return mem_.get(); }
  bool broken() const { return error_ != VirtqError::kOk; }
  VirtqError error() const { return error_; }
  void SetError(VirtqError e) {
    if (error_ == VirtqError::kOk) error_ = e;
  }

 private:
  std::shared_ptr<const GuestMemory> mem_;
  SplitRingView ring_;
  uint32_t size_ = 0;
  uint16_t mask_ = 0;
  bool event_idx_ = false;
  bool notify_enabled_ = true;
  uint16_t last_avail_ = 0;   // next avail slot we read
  uint16_t avail_cache_ = 0;  // the driver's avail.idx as last read
  uint16_t used_idx_ = 0;     // next used slot we write
  uint16_t published_ = 0;    // used.idx as last stored
  uint16_t in_flight_ = 0;    // popped, not pushed
  uint16_t signalled_used_ = 0;
  bool signalled_valid_ = false;
  VirtqError error_ = VirtqError::kOk;
};

}  // namespace netplane::core
