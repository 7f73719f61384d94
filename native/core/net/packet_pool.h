// PacketPool: per-context recycled frame buffers, so queuing a frame allocates nothing once
// the pool has warmed up. Two size classes: small (ordinary frames up to ~2 KiB) and large
// (a whole GSO frame plus vnet header). Used only from its context's home thread.
#pragma once

#include <cstddef>
#include <cstdint>

namespace netplane::core {

class NetClient;

// Header of a pooled buffer; the frame bytes follow it in the same allocation.
struct PacketBuf {
  PacketBuf* next = nullptr;    // intrusive link (free list or NetQueue FIFO)
  NetClient* sender = nullptr;  // who sent it (for purge and the sent callback)
  uint32_t len = 0;             // bytes used, vnet header included
  uint32_t capacity = 0;        // bytes available after the header
  uint16_t hdr_len = 0;         // vnet header bytes at the front of data()
  bool has_callback = false;    // sender wants OnQueuedSent() when it leaves the queue
  bool large = false;           // size class

  uint8_t* data() { return reinterpret_cast<uint8_t*>(this + 1); }
  const uint8_t* data() const { return reinterpret_cast<const uint8_t*>(this + 1); }
};

class PacketPool {
 public:
  static constexpr size_t kSmallCapacity = 2048 - sizeof(PacketBuf);
  static constexpr size_t kLargeCapacity = 4096 + 65536 + 64;  // kNetBufSize + largest header
  // Free buffers kept for reuse per class; beyond this, returned buffers are freed.
  static constexpr size_t kMaxFreeSmall = 4096;
  static constexpr size_t kMaxFreeLarge = 64;

  PacketPool() = default;
  ~PacketPool();
  PacketPool(const PacketPool&) = delete;
  PacketPool& operator=(const PacketPool&) = delete;

  // A buffer of at least len bytes, or nullptr when len exceeds kLargeCapacity.
  PacketBuf* Get(size_t len);
  void Put(PacketBuf* buf);

  size_t outstanding() const { return outstanding_; }  // handed out, not yet returned
  size_t allocations() const { return allocations_; }  // malloc calls so far (tests)

 private:
  PacketBuf* free_small_ = nullptr;
  PacketBuf* free_large_ = nullptr;
  size_t n_free_small_ = 0, n_free_large_ = 0;
  size_t outstanding_ = 0, allocations_ = 0;
};

}  // namespace netplane::core
