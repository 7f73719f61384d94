// Per-client frame accounting. Every frame that enters a net client leaves it exactly one
// way: sent on, still queued, or dropped for a named reason. So for every client, at any
// moment observed from its own context:
//
//     frames_in == frames_out + queued + sum(drops)
//
// Definitions (bytes are ethernet-frame bytes, never counting a vnet header):
//   frames_in  = frames read from the client's own device (TAP read, JS tx ring)
//              + frames offered to it by its peer or hub that it accepted or queued
//              + frames rejected by JavaScript's send() validation (also counted dropped)
//   frames_out = frames written to its device (TAP write, JS rx ring)
//              + frames it handed on to its peer or hub (the peer may then queue or drop
//                them; that is counted at the peer)
//   queued     = frames now waiting in its incoming NetQueue, or accepted into a TAP's batch of
//                io_uring writes that the end of the loop's turn submits
//   drops      = by reason, below
// A segmented GSO frame counts once in and once out; `segments` counts the wire frames.
//
// Threading: one writer (the client's home context); any thread may read. The writer uses
// relaxed load+store (no locked read-modify-write on the hot path). A snapshot taken on
// the home thread (NetGraph does that with a bottom half) is exactly consistent.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace netplane::core {

enum class DropReason : uint8_t {
  kLinkDown = 0,  // this client (or the receiver) has its link down
  kNoPeer,        // sent with no peer attached
  kQueueFull,     // incoming queue full (non-callback sender), or JS ring full with drop policy
  kOversize,      // larger than the largest frame, or than a JS ring can hold
  kBadVnetHdr,    // vnet header that fails validation, or a read shorter than the header
  kWriteError,    // write/writev failed (other than EAGAIN and a dead device)
  kDeadDevice,    // the device disappeared (EBADFD, POLLERR) or is detached
  kPurged,        // still queued when its sender or receiver was removed, or left in a released
                  // JS batch by a forward that had not finished
  kFiltered,      // dropped by JavaScript's verdict (PacketBatch.DROP) in a forwarded batch
  kCount
};

inline const char* DropReasonName(DropReason r) {
  switch (r) {
    case DropReason::kLinkDown:
      return "linkDown";
    case DropReason::kNoPeer:
      return "noPeer";
    case DropReason::kQueueFull:
      return "queueFull";
    case DropReason::kOversize:
      return "oversize";
    case DropReason::kBadVnetHdr:
      return "badVnetHdr";
    case DropReason::kWriteError:
      return "writeError";
    case DropReason::kDeadDevice:
      return "deadDevice";
    case DropReason::kPurged:
      return "purged";
    case DropReason::kFiltered:
      return "filtered";
    default:
      return "unknown";
  }
}
constexpr size_t kDropReasonCount = static_cast<size_t>(DropReason::kCount);

// A single-writer counter.
class Counter {
 public:
  void Add(uint64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  void Sub(uint64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed); }
  uint64_t Get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

struct CounterSnapshot {
  uint64_t frames_in = 0, bytes_in = 0, frames_out = 0, bytes_out = 0;
  uint64_t queued = 0;
  uint64_t drops[kDropReasonCount] = {};
  // Informational (subsets of the above, or per-event):
  uint64_t dev_rx_frames = 0, dev_rx_bytes = 0;  // read from the device (part of in)
  uint64_t dev_tx_frames = 0, dev_tx_bytes = 0;  // written to the device (part of out)
  uint64_t segments = 0;                         // wire frames produced by software segmentation
  uint64_t eagain = 0;                           // writes that hit EAGAIN (frame queued)
  uint64_t wakeups = 0;                          // read handler invocations (frames per wakeup = dev_rx / wakeups)

  uint64_t dropped() const {
    uint64_t s = 0;
    for (uint64_t d : drops) s += d;
    return s;
  }
  bool Conserved() const { return frames_in == frames_out + queued + dropped(); }
};

struct ClientCounters {
  Counter frames_in, bytes_in, frames_out, bytes_out, queued;
  Counter drops[kDropReasonCount];
  Counter dev_rx_frames, dev_rx_bytes, dev_tx_frames, dev_tx_bytes;
  Counter segments, eagain, wakeups;
  // Drops counted on the JavaScript thread (send()'s checks, a forwarded batch's verdicts):
  // frames JavaScript handed to this client that never reached the engine. Folded into
  // in + drops, so the client stays conserved.
  std::atomic<uint64_t> rejected[kDropReasonCount] = {};

  void In(size_t bytes) {
    frames_in.Add();
    bytes_in.Add(bytes);
  }
  void Out(size_t bytes) {
    frames_out.Add();
    bytes_out.Add(bytes);
  }
  void Drop(DropReason r) { drops[static_cast<size_t>(r)].Add(); }
  // Any thread.
  void Reject(DropReason r, uint64_t n = 1) {
    rejected[static_cast<size_t>(r)].fetch_add(n, std::memory_order_relaxed);
  }
  void DevRx(size_t bytes) {
    dev_rx_frames.Add();
    dev_rx_bytes.Add(bytes);
  }
  void DevTx(size_t bytes) {
    dev_tx_frames.Add();
    dev_tx_bytes.Add(bytes);
  }

  CounterSnapshot Snapshot() const {
    CounterSnapshot s;
    s.frames_in = frames_in.Get();
    for (size_t i = 0; i < kDropReasonCount; ++i) {
      const uint64_t rej = rejected[i].load(std::memory_order_relaxed);
      s.frames_in += rej;
      s.drops[i] = drops[i].Get() + rej;
    }
    s.bytes_in = bytes_in.Get();
    s.frames_out = frames_out.Get();
    s.bytes_out = bytes_out.Get();
    s.queued = queued.Get();
    s.dev_rx_frames = dev_rx_frames.Get();
    s.dev_rx_bytes = dev_rx_bytes.Get();
    s.dev_tx_frames = dev_tx_frames.Get();
    s.dev_tx_bytes = dev_tx_bytes.Get();
    s.segments = segments.Get();
    s.eagain = eagain.Get();
    s.wakeups = wakeups.Get();
    return s;
  }
};

}  // namespace netplane::core
