// VirtioDeviceQueue: one virtio-net queue pair of a guest, served from its rings on the
// queue's IoThread (QEMU's VirtIONetQueue with vhost-net's data path; cloud-hypervisor's
// queue_pair.rs). Queue pair i is rx virtqueue 2i and tx virtqueue 2i+1; this client is a
// NetClient like a TAP queue: peered with one client (a TAP queue, a hub port), counted,
// placed on np-q<i> by default.
//
// Control (home thread; NetGraph runs these through RunSync):
//  - SetFeatures(): the negotiated virtio features, only while both rings are stopped.
//    They fix the guest's header (12 bytes with MRG_RXBUF or VERSION_1, else 10),
//    mergeable rx buffers, EVENT_IDX, and which offloads the guest takes (GUEST_CSUM,
//    GUEST_TSO4/6, GUEST_ECN, GUEST_UFO, GUEST_USO4/6 -> AcceptedOffloads(), which a TAP
//    peer applies with TUNSETOFFLOAD), and with RING_PACKED packed rings (device_ring.h).
//    HASH_REPORT is refused.
//  - StartRing(): validate the layout (virtqueue.h), take ownership of the kick / call /
//    err fds, poll the kick fd on this context, and scan the ring once (a kick may have
//    come before we listened). A layout that fails validation is refused (kInvalidInput)
//    and, being hostile input, also puts the pair in the error state below. StopRing(): stop at once, publish what was
//    completed, close the fds, drop the memory reference, return the next avail index (GET_VRING_BASE).
//
// tx (guest -> peer): a kick (or the scan, or the peer's OnQueuedSent) drains the ring with
// kicks disabled, up to kTxBurstPackets chains or kTxBurstBytes bytes per wakeup (vhost-net's
// weights since CVE-2019-3900); the rest continues from a bottom half, so other clients on
// the thread run in between. Chains are popped in batches of up to kTxBatch, the head
// descriptors and then every buffer prefetched as they are popped, so that the cache misses
// on what the guest just wrote (another CPU) overlap instead of stalling each frame; then
// each is sent in turn. Each chain is copied once into a local buffer (the guest
// cannot change what we validated), its header checked (ValidateVnetHdr) and the frame
// sent with the guest's header: the peer reshapes it (a peer without vnet header gets
// software-segmented frames, one with a header the GSO frame whole). A chain that is only
// a header, too big or with a bad header is completed and counted as dropped. When the
// peer queues our frame we stop popping until OnQueuedSent.
//
// rx (peer -> guest): Receive() writes [header | frame] into the next chain, or with
// MRG_RXBUF across as many chains as it needs (num_buffers); a frame whose offloads the
// guest did not negotiate is checksummed / segmented in software first. No buffers: the
// frame waits in our NetQueue (CanReceive() false / kNotNow), the sender stops, rx kicks
// are enabled race-free, and the guest's next rx kick flushes the queue: no frame is lost.
// A frame that cannot fit even a full ring of buffers (or, without MRG_RXBUF, one chain)
// is dropped as oversize.
//
// Interrupts: at most one call-fd write per burst and ring: completions are published (one
// used.idx store) from a bottom half after the burst, then EVENT_IDX / NO_INTERRUPT decide.
//
// Errors: any hostile ring content (descriptor_chain.h, virtqueue.h) or a failing kick fd
// puts the whole queue pair into the error state: both kick fds unpolled, `broken` with a
// reason and an error count, one write to that ring's err fd, a kVringError event; frames
// for it are then dropped as deadDevice. Other queues go on. Stopping both rings and
// starting again (a device reset) clears the state.
//
// Counters follow counters.h: tx chains with a frame count in (and devRx), rx frames
// written to the guest count out (and devTx).
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "net/net_client.h"
#include "virtio/device_ring.h"
#include "virtio/split_ring.h"
#include "virtio/virtqueue.h"
#include "virtio_net/offload_features.h"
#include "virtio_net/ring_fds.h"
#include "virtio_net/virtio_counters.h"

namespace netplane::core {

enum class VirtioRing : uint8_t { kRx = 0, kTx = 1 };
const char* VirtioRingName(VirtioRing r);

struct VirtioRingStart {
  std::shared_ptr<const GuestMemory> memory;
  VringAddrs addrs;  // event_idx is taken from the features
  UniqueFd kick;     // required: polled for kicks
  UniqueFd call;     // optional: written for interrupts
  UniqueFd err;      // optional: written once when the queue pair breaks
};

class VirtioDeviceQueue : public NetClient {
 public:
  static constexpr int kTxBurstPackets = 256;       // VHOST_NET_PKT_WEIGHT
  static constexpr size_t kTxBurstBytes = 0x80000;  // VHOST_NET_WEIGHT
  static constexpr int kMaxChainIov = 1024;         // host pieces per chain (QEMU's VIRTQUEUE_MAX_SIZE)
  static constexpr int kTxBatch = 32;               // chains popped before sending (DPDK's MAX_PKT_BURST)

  VirtioDeviceQueue(uint32_t handle, std::string name, NetContext* ctx);
  ~VirtioDeviceQueue() override;

  Status SetFeatures(uint64_t features);
  Status StartRing(VirtioRing r, VirtioRingStart start);
  // The next avail index (0 for a ring never started).
  // (Packed rings: the GET_VRING_BASE value of DeviceRing::Stop.)
  uint32_t StopRing(VirtioRing r);

  bool broken() const { return broken_; }
  const std::string& error() const { return error_; }
  uint64_t features() const { return features_; }

  // NetClient
  Status Start() override;
  void Stop() override;
  Status SetVnetHdrLen(int len) override;
  void Describe(ClientInfo& info) const override;
  int vnet_hdr_len() const override { return hdr_len_; }
  bool DoNotPad() const override { return true; }
  bool AcceptsOffloads() const override { return guest_offloads_ != 0; }
  unsigned AcceptedOffloads() const override { return guest_offloads_; }
  bool CanReceive() const override;
  RecvResult Receive(NetClient* sender, const Frame& f) override;
  void OnQueuedSent() override;

 private:
  struct Ring {
    DeviceRing vq;
    PolledNotifier kick;
    UniqueFd call, err;
    uint64_t kicks = 0;
  };
  enum class RxResult { kOk, kNoBuffers, kTooBig, kBroken };

  Ring& ring(VirtioRing r) { return rings_[static_cast<size_t>(r)]; }
  static void OnTxKick(void* opaque);
  static void OnRxKick(void* opaque);
  static void TxBh(void* opaque);
  static void RxFlushBh(void* opaque);
  static void RxDoneBh(void* opaque);
  bool DrainKick(VirtioRing r);
  Status Poll(VirtioRing r);
  void DrainTx();
  // Copy one tx chain (its pieces in iov) out, check it, send it; true when the peer queued it.
  bool SendChain(const DescChain& c, const iovec* iov);
  RxResult WriteRx(const VnetHdr& h, const uint8_t* frame, size_t len);
  RecvResult NoRoom();
  void RequestRxDone();
  // Publish completions; interrupt when the driver wants one (else count it waived).
  void PublishAndSignal(VirtioRing r);
  void Signal(VirtioRing r);
  void Fail(VirtioRing r, const std::string& reason);

  // mutable: CanReceive() arms rx kicks when it finds no buffers.
  mutable std::array<Ring, 2> rings_;
  uint64_t features_ = 0;
  VirtioCounters vc_;
  int hdr_len_ = kVnetHdrLenLegacy;
  bool mrg_rxbuf_ = false;
  bool event_idx_ = false;
  bool packed_ = false;
  unsigned guest_offloads_ = 0;  // kOffload* the guest takes on rx
  bool started_ = false;         // NetClient Start()ed (handlers may be installed)
  bool tx_blocked_ = false;      // our last tx frame waits in the peer's queue
  bool broken_ = false;
  uint64_t errors_ = 0;
  std::string error_;
  BottomHalf* tx_bh_ = nullptr;
  BottomHalf* rx_flush_bh_ = nullptr;
  BottomHalf* rx_done_bh_ = nullptr;
  bool rx_done_scheduled_ = false;
  iovec iov_[kMaxChainIov];
  struct TxSlot {
    DescChain chain;
    int iov_at;  // its pieces start at tx_iov_[iov_at]
  };
  TxSlot tx_batch_[kTxBatch];
  iovec tx_iov_[2 * kMaxChainIov];      // a batch: popping goes on while a whole chain's worth is left
  std::vector<uint8_t> txbuf_;          // [header | frame] of the tx chain being sent
  std::vector<VringUsedElem> rx_used_;  // the chains of the rx packet being written
  uint32_t last_rx_chains_ = 0;         // chains a WriteRx that ran out of buffers had taken
};

}  // namespace netplane::core
