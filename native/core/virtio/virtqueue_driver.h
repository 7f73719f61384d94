// VirtqueueDriver: the driver side of one split virtqueue, in memory this process maps
// (a GuestMemory): what a guest's virtio driver does, for the front-end role (netplane
// driving a back-end such as DPDK's vhost) and for tests that drive the device side.
//
// Contract: Init() lays the ring out and zeroes it. AddBuffers() writes one chain (direct
// descriptors, or one indirect table at a given guest address) and its avail slot; nothing
// is visible to the device until Publish(), which stores avail.idx once (release) and says
// whether the device wants a kick (EVENT_IDX avail_event rule, or NO_NOTIFY). GetUsed()
// takes completed chains (acquire on used.idx) and frees their descriptors. With EVENT_IDX,
// SetUsedEvent() chooses when the device interrupts; SuppressInterrupts() sets NO_INTERRUPT.
// EnableInterrupts() is what a driver uses: whichever of the two the ring was set up with.
// One thread uses a driver; the device may run on another.
//
// Trust: the device can write every byte of the ring. The free list and each chain's state
// (its descriptors, bytes, whether it is in flight) live in private memory, as Linux's
// virtio_ring keeps desc_extra/desc_state: descriptors are written to the shared table and
// never read back. The only shared inputs are used.idx (may advance by at most the chains
// published and not yet used), each used entry (id: the head of a chain in flight; len: at
// most that chain's bytes) and the event/flags words (any value is harmless). A violation
// latches error(): GetUsed() returns false from then on until Init().
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "virtio/guest_memory.h"
#include "virtio/split_ring.h"
#include "virtio/virtqueue.h"

namespace netplane::core {

class VirtqueueDriver {
 public:
  struct Buffer {
    uint64_t addr;  // guest-physical
    uint32_t len;
    bool writable;  // device-writable (rx)
  };

  // The ring at guest-physical desc/avail/used (the device's layout rules, MapSplitRing).
  Status Init(std::shared_ptr<const GuestMemory> mem, uint32_t size, uint64_t desc, uint64_t avail, uint64_t used,
              bool event_idx);

  // A chain of n buffers; with indirect_table != 0 the buffers go into an indirect table at
  // that guest address (16 * n bytes) and the chain takes one ring descriptor. Returns the
  // head, or -1 when free descriptors run out.
  int AddBuffers(const Buffer* bufs, int n, uint64_t indirect_table = 0);
  // Make added chains visible; true when the device wants a kick for them.
  bool Publish();
  // One completed chain: its head and the bytes the device wrote. False when none, or when
  // the device broke the ring (error() says how).
  bool GetUsed(uint32_t* head, uint32_t* len);
  // Why the device's used ring was refused; empty while it behaves.
  const std::string& error() const { return error_; }
  bool broken() const { return !error_.empty(); }
  void SetUsedEvent(uint16_t idx);
  void SuppressInterrupts(bool on);
  // On: the next used entry interrupts. Off: none does. With EVENT_IDX, used_event is set to
  // the next entry, or to one the device has already passed (no interrupt until the index
  // wraps, and a late one is harmless); without it, the NO_INTERRUPT flag.
  void EnableInterrupts(bool on);
  // Chains added and not yet published.
  uint16_t unpublished() const { return static_cast<uint16_t>(avail_idx_ - published_); }
  // The n descriptors the next AddBuffers(n direct buffers) takes, in chain order; false
  // when fewer are free.
  bool PeekFree(uint32_t n, uint16_t* out) const;

  // Raw access for tests that play a hostile guest.
  uint8_t* desc_table() const { return ring_.desc; }
  uint8_t* avail_ring() const { return ring_.avail; }
  uint8_t* used_ring() const { return ring_.used; }
  uint16_t avail_idx() const { return avail_idx_; }
  uint16_t used_seen() const { return last_used_; }
  uint32_t size() const { return size_; }
  uint32_t free_descriptors() const { return num_free_; }
  // The head the next AddBuffers() takes (valid while free_descriptors() > 0).
  uint16_t next_head() const { return free_head_; }
  // Put `head` in the next avail slot without touching descriptors (not published).
  void PushAvailRaw(uint16_t head);
  // Store avail.idx as is (release).
  void SetAvailIdxRaw(uint16_t idx);
  // Write descriptor i of the ring table, or (table != 0) entry i of a table at that address.
  bool WriteDescRaw(uint16_t i, const VringDesc& d, uint64_t table = 0);

  // Copy to / from guest-physical memory (tests and the front-end's frame copies).
  bool Write(uint64_t gpa, const void* data, size_t len) const;
  bool Read(uint64_t gpa, void* out, size_t len) const;

 private:
  std::shared_ptr<const GuestMemory> mem_;
  SplitRingView ring_;
  uint32_t size_ = 0;
  bool event_idx_ = false;
  uint16_t avail_idx_ = 0;  // next avail slot (published or not)
  uint16_t published_ = 0;  // avail.idx as last stored
  uint16_t last_used_ = 0;  // next used slot to read
  uint16_t free_head_ = 0;
  uint32_t num_free_ = 0;
  // Per descriptor, private (never read from the shared table): the free list / chain link,
  // and for a chain's head its descriptor count (0: not in flight) and bytes.
  struct DescState {
    uint16_t next = 0;
    uint16_t chain_descs = 0;
    uint64_t chain_bytes = 0;
  };
  std::vector<DescState> state_;
  std::string error_;

  bool Refuse(std::string why);
};

}  // namespace netplane::core
