// VirtioDriverQueue: one virtio-net queue pair where netplane is the driver (the front-end
// role with no guest, as DPDK's virtio-user): the rings and their buffers live in shared
// memory netplane allocated (a memfd the back-end maps through SET_MEM_TABLE), the back-end
// (DPDK's vhost PMD, OVS-DPDK, VPP, netplane's own export) is the device. Queue pair i is rx
// virtqueue 2i and tx virtqueue 2i+1, as on the device side. A NetClient like a TAP queue:
// peered with one client (a TAP queue, a hub port), counted, on np-q<i> by default.
//
// Layout (chosen by the caller, checked here): each ring has its descriptor table, avail
// and used rings at guest-physical addresses of the memory, and a buffer area of
// size x buffer_size bytes; buffer k belongs to descriptor k (a chain's buffers are its
// descriptors' buffers), so no lookup is needed on the data path.
//
// Control (home thread; NetGraph runs these through RunSync):
//  - SetFeatures(): the negotiated virtio features, only while both rings are stopped. They
//    fix the header (12 bytes with VERSION_1 or MRG_RXBUF, else 10), EVENT_IDX (both
//    notification directions), MRG_RXBUF and the offloads the back-end takes on tx (CSUM,
//    HOST_TSO4/6, HOST_ECN, HOST_UFO, HOST_USO -> AcceptedOffloads(), which a TAP peer turns
//    on with TUNSETOFFLOAD). The GUEST_* offloads need nothing here: frames the back-end
//    sends with a GSO type go to the peer whole and the peer reshapes them if it must.
//    PACKED and HASH_REPORT are refused.
//  - StartRing(): with `reset`, lay the ring out anew (zeroed) and, for rx, post every
//    buffer; without it, resume the ring as it was (a reconnect: the back-end is told the
//    saved base). Takes the kick fd (we write it when the device wants a kick) and the call
//    fd (polled on this context). StopRing(): stop at once (unpoll, drop the fds), keep the
//    ring's contents, return the used index, which is the base a new back-end resumes from
//    (what QEMU restores after a lost back-end: last_avail = used_idx).
//
// rx (back-end -> peer): the call fd (or a bottom half) drains used chains, up to
// kRxBurst frames per wakeup, with interrupts off (NO_INTERRUPT, or with EVENT_IDX a
// used_event already passed) while it runs and re-armed race-free when the ring is empty.
// Every posted buffer is one descriptor; with MRG_RXBUF a frame spans the num_buffers used
// entries its header names (Linux's receive_mergeable): they are gathered into one copy,
// across wakeups if the back-end has not published them all yet. Each frame is copied once
// out of shared memory (the back-end could rewrite it while a peer parses it), checked
// (length, header) and sent with our header (num_buffers cleared); each buffer is posted
// again at once, all posted buffers published once per burst and kicked when the back-end
// asks (avail_event, or NO_NOTIFY); a kick it waived counts in notifies_suppressed. When
// the peer queues a frame we stop until OnQueuedSent.
//
// Link: while the rings are stopped but the link is still up (a close whose deferred
// link-down has not run yet) frames wait in our NetQueue; link-down drops them and every
// later one as linkDown, so a back-end that is gone costs counted drops, not memory.
//
// tx (peer -> back-end): Receive() reclaims completed tx chains, copies [header | frame]
// into a chain of as many free buffers as it needs (a 64 KiB GSO frame takes 33 of 2 KiB,
// as Linux's virtio-net chains a big skb's pieces when it has no indirect descriptors) and
// adds it; one bottom half per burst publishes avail.idx and kicks when the device asks. A
// frame whose offloads the back-end did not negotiate is finished in software first (each
// segment its own chain, all or none). Not enough free descriptors: tx interrupts are
// enabled and the frame waits in our NetQueue (kNotNow); the back-end's next tx completion
// flushes it. A frame that needs more buffers than the ring has is dropped as oversize.
//
// A back-end that breaks the ring (VirtqueueDriver refuses a used idx running ahead of the
// chains in flight, a used id out of range or not in flight, a length past the chain's
// buffers; nothing the driver wrote is read back from shared memory) puts the pair in the error state: unpolled,
// `broken` with a reason, a kVringError event, frames for it dropped as deadDevice. Stopping both rings with a reset
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
#include "virtio_net/ring_fds.h"
#include "virtio_net/virtio_counters.h"
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
  bool AcceptsOffloads() const override { return host_offloads_ != 0; }
  unsigned AcceptedOffloads() const override { return host_offloads_; }
  bool CanReceive() const override;
  void SetLinkDown(bool down) override;
  RecvResult Receive(NetClient* sender, const Frame& f) override;
  void OnQueuedSent() override;

 private:
  struct Ring {
    VirtqueueDriver vq;
    std::shared_ptr<const GuestMemory> mem;
    UniqueFd kick;
    PolledNotifier call;
    uint8_t* buffers = nullptr;  // host address of buffer 0
    uint64_t buffers_gpa = 0;
    uint32_t buffer_size = 0;
    bool laid_out = false;
    bool started = false;
  };
  // An rx frame being gathered from its buffers (MRG_RXBUF: num_buffers used entries).
  struct RxFrame {
    size_t len = 0;         // bytes copied (or, when dropping, seen)
    uint32_t buffers = 0;   // used entries taken
    uint32_t expected = 0;  // entries the frame spans (0: no frame started)
    bool dropping = false;  // taken and counted, not delivered
    DropReason why = DropReason::kBadVnetHdr;
  };

  Ring& ring(VirtioRing r) { return rings_[static_cast<size_t>(r)]; }
  static void OnRxCall(void* opaque);
  static void OnTxCall(void* opaque);
  static void RxBh(void* opaque);
  static void TxPublishBh(void* opaque);
  bool DrainCall(VirtioRing r);
  Status Poll(VirtioRing r);
  void Unpoll();
  void DrainRx();
  // Take one used rx buffer into rx_; true when it completed a frame.
  bool TakeRxBuffer(uint32_t head, uint32_t len);
  void DeliverRx();
  // Post buffer `head` of the rx ring again (the slot the driver's free list hands out next).
  bool PostRx();
  void PublishAndKick(VirtioRing r);
  // Take back completed tx chains; false when the back-end broke the ring.
  bool ReclaimTx();
  // Descriptors (buffers) a chain of `bytes` takes.
  uint32_t TxDescs(size_t bytes) const;
  // Free tx descriptors >= need, reclaiming and then arming the tx interrupt if not.
  bool TxRoom(uint32_t need);
  // Copy [iov...] into a chain of free tx buffers and add it; false when too few are free.
  bool AddTx(const iovec* iov, int iovcnt, size_t bytes);
  RecvResult SendSoftware(const VnetHdr& h, const Frame& f);
  void Fail(VirtioRing r, const std::string& reason);

  mutable std::array<Ring, 2> rings_;
  uint64_t features_ = 0;
  VirtioCounters vc_;
  int hdr_len_ = kVnetHdrLenMrg;
  bool mrg_rxbuf_ = false;
  bool event_idx_ = false;
  unsigned host_offloads_ = 0;  // kOffload* the back-end takes on tx
  RxFrame rx_;
  std::vector<uint16_t> tx_descs_;                // scratch: one chain's descriptors
  std::vector<VirtqueueDriver::Buffer> tx_bufs_;  // scratch: one chain's buffers
  bool started_ = false;
  bool rx_blocked_ = false;  // our last rx frame waits in the peer's queue
  bool tx_publish_scheduled_ = false;
  bool broken_ = false;
  uint64_t errors_ = 0;
  std::string error_;
  BottomHalf* rx_bh_ = nullptr;
  BottomHalf* tx_publish_bh_ = nullptr;
  BottomHalf* tx_flush_bh_ = nullptr;
  std::vector<uint8_t> frame_;  // a frame copied out of an rx buffer
};

}  // namespace netplane::core
