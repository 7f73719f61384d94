// JsPort: the NIC side of the data plane for JavaScript. Frames cross in batches through
// two single-producer single-consumer rings in memory shared with JavaScript (a
// SharedArrayBuffer allocated in JS):
//   rx ring: engine -> JS (this client's Receive writes frames; JS reads them)
//   tx ring: JS -> engine (JS writes frames; a bottom half here sends them to the peer)
//
// The ring format is in spsc_ring.h.
//
// Back-pressure: with kBackpressure a full rx ring answers "not now" (the sender, e.g. a
// TAP, stops reading until JS frees room); with kDrop the frame is dropped as queueFull.
#pragma once

#include <cstdint>

#include "net/net_client.h"
#include "port/spsc_ring.h"

namespace netplane::core {

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
  static Result<JsPort*> Create(uint32_t handle, std::string name, NetContext* ctx, const JsPortConfig& cfg);
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
  // JS thread, after publishing tx frames: kick the engine unless a kick is already pending
  // (the same wake flag PacketPort.send() uses, so wake-ups coalesce per batch).
  void NotifyTxPublished() {
    if (tx_.wake().exchange(1, std::memory_order_seq_cst) == 0) KickTx();
  }
  // JS thread: the rings, for a batch forwarded natively (port/batch_forward.h).
  const SpscRing& rx_ring() const { return rx_; }
  SpscRing& tx_ring() { return tx_; }

  // JS thread: check the vnet headers of `count` records written at tx-ring position `pos`
  // but not yet published. Returns the index of the first bad one (and its reason) or -1;
  // a bad frame is counted as dropped (badVnetHdr) in this port's counters.
  int ValidateUnpublishedTx(uint32_t pos, uint32_t count, int hdr_len, VnetError* why);
  // JS thread: count frames JS handed to this port that never reached the engine (send()'s
  // length checks, a forwarded batch's verdicts and refusals, frames a released batch left).
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
