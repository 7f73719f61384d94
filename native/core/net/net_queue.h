// NetQueue: the incoming queue of one receiving net client (QEMU's NetQueue, semantics
// reference section 4). A sender whose frame cannot be delivered now leaves it here:
//  - callback senders (a TAP read loop, a JS tx ring) always get their frame queued and
//    stop producing until OnQueuedSent() tells them it left the queue;
//  - other senders (hub ports) are bounded: beyond the limits the frame is dropped and
//    counted as queueFull at the receiver.
// Frames are copied into pooled buffers (no allocation once warm). Home thread only.
#pragma once

#include <cstddef>
#include <cstdint>

#include "net/counters.h"
#include "net/packet_pool.h"

namespace netplane::core {

class NetClient;
struct Frame;

class NetQueue {
 public:
  // Smaller than QEMU's 10000 frames: queued frames are copies, and a GSO frame is 64 KiB.
  static constexpr size_t kMaxFrames = 1024;
  static constexpr size_t kMaxBytes = 16u << 20;

  explicit NetQueue(NetClient* owner) : owner_(owner) {}
  ~NetQueue();  // frames left are returned to the pool uncounted (Purge first to count)

  enum class AppendResult { kQueued, kDropped };
  // Copy f into the queue. Counts the frame in at the owner, and queued or dropped.
  AppendResult Append(NetClient* sender, const Frame& f, bool with_callback);
  // Deliver queued frames in order until empty (true) or the owner says "not now" (false).
  bool Flush();
  // Drop every frame sent by `from` (all frames when from is null), counting each as
  // dropped for `reason` at the owner, and invoke callbacks (QEMU purge: sent_cb(0)).
  void Purge(NetClient* from, DropReason reason);
  // Forget `sender` in queued frames without dropping them (the sender is going away but
  // its frames may still be delivered; no callback will reach it).
  void ForgetSender(NetClient* sender);

  bool empty() const { return head_ == nullptr; }
  size_t size() const { return count_; }
  bool delivering() const { return delivering_; }

 private:
  NetClient* owner_;
  PacketBuf* head_ = nullptr;
  PacketBuf* tail_ = nullptr;
  size_t count_ = 0, bytes_ = 0;
  bool delivering_ = false;
};

}  // namespace netplane::core
