// VirtioDriverQueue: one virtio-net queue pair where netplane is the driver (the front-end
// role with no guest, as DPDK's virtio-user): the rings and their buffers live in shared
// memory netplane allocated (a memfd the back-end maps through SET_MEM_TABLE), the back-end
// (DPDK's vhost PMD, OVS-DPDK, VPP, netplane's own export) is the device. Queue pair i is rx
// virtqueue 2i and tx virtqueue 2i+1, as on the device side. A NetClient like a TAP queue:
// peered with one client (a TAP queue, a hub port), counted, on np-q<i> by default.
//
// Layout (chosen by the caller, checked here): each ring has its descriptor table, avail
// and used rings at guest-physical addresses of the memory, and a buffer area of
// size x buffer_size bytes; buffer k belongs to descriptor k (every chain is one
// descriptor), so no lookup is needed on the data path.
//
// Control (home thread; NetGraph runs these through RunSync):
//  - SetFeatures(): the negotiated virtio features, only while both rings are stopped. They
//    fix the header (12 bytes with VERSION_1, else 10). MRG_RXBUF, PACKED and offloads are
//    not negotiated by this driver: every rx buffer holds a whole frame.
//  - StartRing(): with `reset`, lay the ring out anew (zeroed) and, for rx, post every
//    buffer; without it, resume the ring as it was (a reconnect: the back-end is told the
//    saved base). Takes the kick fd (we write it when the device wants a kick) and the call
//    fd (polled on this context). StopRing(): stop at once (unpoll, drop the fds), keep the
//    ring's contents, return the used index, which is the base a new back-end resumes from
//    (what QEMU restores after a lost back-end: last_avail = used_idx).
//
// rx (back-end -> peer): the call fd (or a bottom half) drains used chains, up to
// kRxBurst per wakeup, with interrupts suppressed (NO_INTERRUPT) while it runs and re-armed
// race-free when the ring is empty. Each frame is copied once out of shared memory (the
// back-end could rewrite it while a peer parses it), checked (length, header) and sent with
// our header; its buffer is posted again at once, all posted buffers published and kicked
// once per burst. When the peer queues a frame we stop until OnQueuedSent.
//
// Link: while the rings are stopped but the link is still up (a close whose deferred
// link-down has not run yet) frames wait in our NetQueue; link-down drops them and every
// later one as linkDown, so a back-end that is gone costs counted drops, not memory.
//
// tx (peer -> back-end): Receive() reclaims completed tx chains, copies [header | frame]
// into a free buffer and adds it; one bottom half per burst publishes avail.idx and kicks
// when the device asks. No free descriptor: tx interrupts are enabled and the frame waits
// in our NetQueue (kNotNow); the back-end's next tx completion flushes it. A frame larger
// than a buffer is dropped as oversize; an offloaded frame is segmented in software first.
//
// A back-end that breaks the ring (a used id out of range or not in flight, a length past
// the buffer) puts the pair in the error state: unpolled, `broken` with a reason, a
// kVringError event, frames for it dropped as deadDevice. Stopping both rings with a reset
// restart clears it. Counters follow counters.h: frames from the back-end count in (devRx),
// frames given to the back-end count out (devTx).
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "net/net_client.h"
#include "virtio/virtqueue_driver.h"
#include "virtio_net/virtio_device_queue.h"

namespace netplane::core {

struct DriverRingStart {
  std::shared_ptr<const GuestMemory> memory;
  uint32_t size = 0;
  uint64_t desc = 0, avail = 0, used = 0;  // guest-physical
  uint64_t buffers = 0;                    // guest-physical, size * buffer_size bytes
  uint32_t buffer_size = 0;
  UniqueFd kick;  // written when the device wants a kick (required)
  UniqueFd call;  // polled for the device's interrupts (required)
  bool reset = true;
};

class VirtioDriverQueue : public NetClient {
 public:
  static constexpr int kRxBurst = 256;
  static constexpr uint32_t kMinBufferSize = 64;

  VirtioDriverQueue(uint32_t handle, std::string name, NetContext* ctx);
  ~VirtioDriverQueue() override;

  Status SetFeatures(uint64_t features);
  Status StartRing(VirtioRing r, DriverRingStart start);
  // The used index (the base to resume from); 0 for a ring never started.
  uint16_t StopRing(VirtioRing r);

  bool broken() const { return broken_; }

  // NetClient
  Status Start() override;
  void Stop() override;
  Status SetVnetHdrLen(int len) override;
  void Describe(ClientInfo& info) const override;
  int vnet_hdr_len() const override { return hdr_len_; }
  bool AcceptsOffloads() const override { return false; }
  bool CanReceive() const override;
  void SetLinkDown(bool down) override;
  RecvResult Receive(NetClient* sender, const Frame& f) override;
  void OnQueuedSent() override;

 private:
  struct Ring {
    VirtqueueDriver vq;
    std::shared_ptr<const GuestMemory> mem;
    UniqueFd kick, call;
    uint8_t* buffers = nullptr;  // host address of buffer 0
    uint64_t buffers_gpa = 0;
    uint32_t buffer_size = 0;
    std::vector<uint8_t> in_flight;  // per descriptor: owned by the device
    bool laid_out = false;
    bool started = false;
    bool polled = false;
  };

  Ring& ring(VirtioRing r) { return rings_[static_cast<size_t>(r)]; }
  static void OnRxCall(void* opaque);
  static void OnTxCall(void* opaque);
  static void RxBh(void* opaque);
  static void TxPublishBh(void* opaque);
  bool DrainCall(VirtioRing r);
  Status Poll(VirtioRing r);
  void Unpoll(VirtioRing r);
  void DrainRx();
  // Post buffer `head` of the rx ring again (the slot the driver's free list hands out next).
  bool PostRx();
  void PublishAndKick(VirtioRing r);
  // Take back completed tx chains; false when the back-end broke the ring.
  bool ReclaimTx();
  // Copy one finished frame into a free tx buffer; false when none is free.
  bool AddTx(const VnetHdr& h, const uint8_t* frame, size_t len);
  void Fail(VirtioRing r, const std::string& reason);

  mutable std::array<Ring, 2> rings_;
  uint64_t features_ = 0;
  int hdr_len_ = kVnetHdrLenMrg;
  bool started_ = false;
  bool rx_blocked_ = false;  // our last rx frame waits in the peer's queue
  bool tx_publish_scheduled_ = false;
  bool broken_ = false;
  uint64_t errors_ = 0;
  uint64_t kicks_ = 0;
  std::string error_;
  BottomHalf* rx_bh_ = nullptr;
  BottomHalf* tx_publish_bh_ = nullptr;
  BottomHalf* tx_flush_bh_ = nullptr;
  std::vector<uint8_t> frame_;  // a frame copied out of an rx buffer
};

}  // namespace netplane::core
