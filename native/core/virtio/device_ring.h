// DeviceRing: the device side of one virtqueue of either kind, split (virtqueue.h) or packed
// (packed_virtqueue.h), chosen at Start() by VringAddrs::packed. The same calls as
// Virtqueue; where the kinds differ:
//  - Stop() returns the vhost-user GET_VRING_BASE value: the next avail index (split), or
//    avail position|wrap<<15 with the used position|wrap<<15 in the upper 16 bits (packed);
//  - Mark holds either kind's mark, and ChainsSince() counts the chains popped after one;
//  - Available() of a packed ring is 0 or 1.
// A bool test per call picks the ring; both objects exist (the unused one stays stopped).
#pragma once

#include "virtio/packed_virtqueue.h"
#include "virtio/virtqueue.h"

namespace netplane::core {

class DeviceRing {
 public:
  using PopResult = Virtqueue::PopResult;
  struct Mark {
    Virtqueue::Mark split;
    PackedVirtqueue::Mark packed;
  };

  Status Start(std::shared_ptr<const GuestMemory> mem, const VringAddrs& a) {
    packed_ = a.packed;
    return packed_ ? p_.Start(std::move(mem), a) : s_.Start(std::move(mem), a);
  }
  uint32_t Stop() { return packed_ ? p_.Stop() : s_.Stop(); }
  bool started() const { return packed_ ? p_.started() : s_.started(); }
  bool packed() const { return packed_; }

  PopResult Pop(iovec* iov, int max_iov, DescChain* chain) {
    return packed_ ? p_.Pop(iov, max_iov, chain) : s_.Pop(iov, max_iov, chain);
  }
  void Push(uint16_t head, uint32_t len) { packed_ ? p_.Push(head, len) : s_.Push(head, len); }
  bool Flush() { return packed_ ? p_.Flush() : s_.Flush(); }
  bool NeedsNotify() { return packed_ ? p_.NeedsNotify() : s_.NeedsNotify(); }
  bool EnableNotification() { return packed_ ? p_.EnableNotification() : s_.EnableNotification(); }
  void DisableNotification() { packed_ ? p_.DisableNotification() : s_.DisableNotification(); }
  uint16_t Available() { return packed_ ? p_.Available() : s_.Available(); }

  Mark GetMark() const {
    Mark m{};
    if (packed_)
      m.packed = p_.GetMark();
    else
      m.split = s_.GetMark();
    return m;
  }
  void Rewind(const Mark& m) { packed_ ? p_.Rewind(m.packed) : s_.Rewind(m.split); }
  void Unpop(uint16_t n) { packed_ ? p_.Unpop(n) : s_.Unpop(n); }
  // Split rings only: the next heads come from the avail ring (a packed ring's next
  // descriptor is simply the following one, which the CPU's prefetcher finds itself).
  void PrefetchAvail(uint16_t n) {
    if (!packed_) s_.PrefetchAvail(n);
  }
  uint32_t ChainsSince(const Mark& m) const {
    return packed_ ? p_.ChainsSince(m.packed) : static_cast<uint16_t>(s_.Base() - m.split.last_avail);
  }

  uint32_t size() const { return packed_ ? p_.size() : s_.size(); }
  uint16_t in_flight() const { return packed_ ? p_.in_flight() : s_.in_flight(); }
  uint16_t unflushed() const { return packed_ ? p_.unflushed() : s_.unflushed(); }
  const GuestMemory* memory() const { return packed_ ? p_.memory() : s_.memory(); }
  bool broken() const { return packed_ ? p_.broken() : s_.broken(); }
  VirtqError error() const { return packed_ ? p_.error() : s_.error(); }
  void SetError(VirtqError e) { packed_ ? p_.SetError(e) : s_.SetError(e); }

  Virtqueue& split() { return s_; }
  PackedVirtqueue& packed_ring() { return p_; }

 private:
  bool packed_ = false;
  Virtqueue s_;
  PackedVirtqueue p_;
};

}  // namespace netplane::core
