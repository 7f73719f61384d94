// JsPort: the NIC side of the data plane for JavaScript. Frames cross in batches through
// two single-producer single-consumer rings in memory shared with JavaScript (a
// SharedArrayBuffer allocated in JS):
//   rx ring: engine -> JS (this client's Receive writes frames; JS reads them)
//   tx ring: JS -> engine (JS writes frames; a bottom half here sends them to the peer)
//
// Ring memory layout (all little-endian u32, positions are free-running byte counters):
//   [0]   magic 'NPR1'          [4]  capacity (data bytes, a power of two)
//   [64]  head  (producer)      [128] tail (consumer)
//   [192] wake  (consumer must be woken / was kicked; the side that wakes sets it to 1,
//                the woken side clears it before reading, so wake-ups coalesce per batch)
//   [196] blocked (the producer found the ring full; the consumer kicks it after freeing room)
//   [256] data: records { u32 len, u32 flags, len bytes, padding to 8 }; len 0xFFFFFFFF
//         marks the unused end of the data area (the next record starts at offset 0).
// A record's bytes are the vnet header (vnet_hdr_len bytes, possibly 0) then the frame.
//
// Back-pressure: with kBackpressure a full rx ring answers "not now" (the sender, e.g. a
// TAP, stops reading until JS frees room); with kDrop the frame is dropped as queueFull.
#pragma once

#include <atomic>
#include <cstdint>

#include "net/net_client.h"

namespace netplane::core {

constexpr uint32_t kRingMagic = 0x3152504e;  // "NPR1"
constexpr size_t kRingHeaderBytes = 256;
constexpr size_t kRingOffHead = 64, kRingOffTail = 128, kRingOffWake = 192, kRingOffBlocked = 196;
constexpr uint32_t kRingWrapMark = 0xFFFFFFFFu;
constexpr size_t kRingMinCapacity = 256 * 1024;  // two largest records always fit
constexpr size_t kRingMaxCapacity = 1u << 30;

// A view of one ring over shared memory (not owning it).
class SpscRing {
 public:
  // Checks the size (header + power-of-two data area within limits) and initialises the
  // header when init is true.
  static Status Attach(uint8_t* mem, size_t len, bool init, SpscRing* out);
  static size_t RecordSize(size_t len) { return 8 + ((len + 7) & ~size_t{7}); }

  uint32_t capacity() const { return capacity_; }
  std::atomic<uint32_t>& head() const { return *At(kRingOffHead); }
  std::atomic<uint32_t>& tail() const { return *At(kRingOffTail); }
  std::atomic<uint32_t>& wake() const { return *At(kRingOffWake); }
  std::atomic<uint32_t>& blocked() const { return *At(kRingOffBlocked); }
  uint8_t* data() const { return mem_ + kRingHeaderBytes; }

  // Producer: bytes free for a record of len bytes, counting a wrap if needed.
  bool HasRoom(size_t len) const;
  // Producer: append one record gathered from iov (publishes head). False when full.
  bool Push(const iovec* iov, int iovcnt, size_t len, uint32_t flags);

 private:
  std::atomic<uint32_t>* At(size_t off) const {
    return reinterpret_cast<std::atomic<uint32_t>*>(mem_ + off);
  }
  uint8_t* mem_ = nullptr;
  uint32_t capacity_ = 0;
};

struct JsPortConfig {
  uint8_t* rx_mem = nullptr;
  size_t rx_len = 0;
  uint8_t* tx_mem = nullptr;
  size_t tx_len = 0;
  bool drop_when_full = false;  // false: back-pressure (default)
  int vnet_hdr_len = 0;
};

class JsPort : public NetClient {
 public:
  static constexpr int kTxBudget = 256;

  // The memory must outlive the port (the binding pins the SharedArrayBuffer).
  static Result<JsPort*> Create(uint32_t handle, std::string name, NetContext* ctx,
                                const JsPortConfig& cfg);
  ~JsPort() override;

  // Home thread.
  Status Start() override;
  void Stop() override;
  Status SetVnetHdrLen(int len) override {
    hdr_len_ = len;
    return Status::Ok();
  }
  // The port's owner (the virtio-net model) sets its TAP peer's offloads.
  bool OwnsPeerOffloads() const override { return true; }

  // Any thread: JS published frames in the tx ring / freed room in the rx ring.
  void KickTx();
  void KickRxRoom();

  // JS thread: check the vnet headers of `count` records written at tx-ring position `pos`
  // but not yet published. Returns the index of the first bad one (and its reason) or -1;
  // a bad frame is counted as dropped (badVnetHdr) in this port's counters.
  int ValidateUnpublishedTx(uint32_t pos, uint32_t count, int hdr_len, VnetError* why);
  // JS thread: count frames rejected before they were written (length checks).
  void CountRejected(DropReason reason, uint32_t n);

  int vnet_hdr_len() const override { return hdr_len_; }
  bool DoNotPad() const override { return true; }
  RecvResult Receive(NetClient* sender, const Frame& f) override;
  void OnQueuedSent() override;

 private:
  JsPort(uint32_t handle, std::string name, NetContext* ctx, const JsPortConfig& cfg);
  static void TxBh(void* opaque);
  static void RxRoomBh(void* opaque);
  static void WakeBh(void* opaque);
  // Wake JavaScript once per burst: the wake-up runs as a bottom half after the handler that
  // delivered the frames (a TAP read batch) returns, not on the first frame of the burst.
  void RequestWake();
  void DrainTx();
  bool RoomOrBlock(size_t need);
  void WakeConsumer();
  RecvResult Full();

  SpscRing rx_, tx_;
  bool drop_when_full_;
  int hdr_len_;
  bool tx_blocked_ = false;  // our last tx frame waits in the peer's queue
  BottomHalf* tx_bh_ = nullptr;
  BottomHalf* rx_room_bh_ = nullptr;
  BottomHalf* wake_bh_ = nullptr;
  bool wake_scheduled_ = false;
};

}  // namespace netplane::core
