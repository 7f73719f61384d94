// NetClient: one end of a point-to-point link in the data plane (QEMU's NetClientState,
// semantics reference sections 1.1, 4 and 5.2). A client has at most one peer (linked
// once, symmetrically), a link_down flag, an incoming NetQueue, and counters. It lives in
// exactly one NetContext (one AioContext thread) together with its peer; every method is
// for that home thread.
//
// Delivery: Send() hands a frame to the peer. The peer's Receive() returns
//   kConsumed - taken (written, passed on, or dropped and counted by the receiver),
//   kNotNow   - cannot take it now: the frame is queued and the receiver is marked
//               receive_disabled until it calls FlushQueuedPackets(),
//   kError    - failed (the receiver counted the drop).
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "aio/aio_context.h"
#include "base/status.h"
#include "net/counters.h"
#include "net/net_queue.h"
#include "net/packet_pool.h"
#include "vnet/vnet_hdr.h"

namespace netplane::core {

class CaptureRing;  // net/filter_dump.h

// A frame on its way between clients. data points at the vnet header when hdr_len > 0
// (the sender's header format), then the ethernet frame. len includes the header.
struct Frame {
  const uint8_t* data = nullptr;
  uint32_t len = 0;
  uint16_t hdr_len = 0;

  const uint8_t* eth() const { return data + hdr_len; }
  uint32_t eth_len() const { return len - hdr_len; }
};

constexpr size_t kMinEthFrame = 14;
constexpr size_t kPadFrameLen = 60;  // short frames from a TAP are padded to this
constexpr size_t kMaxVnetHdrLen = 20;

// Offloaded frames a receiver takes, by kind (the values of Linux's TUN_F_*, so a TAP passes
// the mask to TUNSETOFFLOAD as it is).
enum OffloadBits : unsigned {
  kOffloadCsum = 0x01,
  kOffloadTso4 = 0x02,
  kOffloadTso6 = 0x04,
  kOffloadTsoEcn = 0x08,
  kOffloadUfo = 0x10,
  kOffloadUso4 = 0x20,
  kOffloadUso6 = 0x40,
  kOffloadAll = 0x7f,
};

// Things the data plane tells JavaScript. Raised on IOThreads; the sink must be thread-safe.
struct GraphEvent {
  // kVringError: a virtio queue pair met hostile input and stopped (ring, reason set).
  // kSocketClosed: a stream/dgram socket's connection went away (err, syscall set; 0 = EOF).
  enum class Kind { kTapDead, kPortRx, kPortTxRoom, kVringError, kSocketClosed };
  Kind kind;
  uint32_t handle = 0;
  int err = 0;
  std::string syscall;
  int ring = -1;       // kVringError: 0 rx, 1 tx
  std::string reason;  // kVringError: what was wrong
};
using EventSink = std::function<void(const GraphEvent&)>;

// Per-AioContext state shared by the clients living there.
struct NetContext {
  AioContext* aio = nullptr;
  std::string name;
  PacketPool pool;
  std::vector<uint8_t> scratch = std::vector<uint8_t>(kMaxFrameLen + 64);  // segmentation
  const EventSink* events = nullptr;

  void Emit(const GraphEvent& ev) const {
    if (events && *events) (*events)(ev);
  }
};

// How a frame must be shaped for a device that expects `to_hdr_len` header bytes.
struct DeviceFrame {
  enum class Kind {
    kIov,       // write iov[0..iovcnt) as is
    kSoftware,  // needs checksum completion / segmentation (hdr, eth, eth_len set)
    kBad,       // the sender's vnet header is invalid (error set)
  } kind = Kind::kIov;
  iovec iov[2];
  int iovcnt = 0;
  size_t eth_len = 0;
  VnetHdr hdr;
  VnetError error = VnetError::kOk;
};
// hdr_scratch must hold kMaxVnetHdrLen bytes and stay alive while iov is used.
DeviceFrame ShapeForDevice(const Frame& f, int to_hdr_len, uint8_t* hdr_scratch);

enum class RecvResult { kConsumed, kNotNow, kError };
// kPort: a JS ring port (JsPort); kVirtioDevice: a guest's virtio-net queue pair served
// from its rings (VirtioDeviceQueue); kSlirp: a libslirp user-mode stack (SlirpClient);
// kStream/kDgram: socket clients; kVirtioDriver: a queue pair netplane drives as the virtio
// driver (VirtioDriverQueue).
enum class ClientKind { kTap, kHubPort, kPort, kVirtioDevice, kSlirp, kStream, kDgram, kVirtioDriver };
const char* ClientKindName(ClientKind k);

// What a snapshot reports about one client. The graph fills in placement; the client's
// Describe() adds what only its kind knows.
struct ClientInfo {
  uint32_t handle = 0;
  std::string name;
  ClientKind kind = ClientKind::kTap;
  uint32_t queue_index = 0;
  std::string iothread;
  int thread_id = 0;  // kernel tid of the iothread
  int64_t peer = -1;  // handle of the peer, -1 = none
  int hub_id = -1;
  bool link_down = false;
  bool dead = false;
  bool enabled = true;
  int vnet_hdr_len = 0;
  unsigned offloads = 0;  // TUN_F_* applied (taps)
  bool io_uring = false;  // taps: reads and writes batched through io_uring
  // A client that met hostile input (a virtio queue pair) and stopped: how often, the last
  // reason, and whether it is still in that state.
  bool broken = false;
  uint64_t errors = 0;
  std::string error;
  uint64_t features = 0;                        // virtio features in force (virtio clients)
  uint64_t notifies = 0;                        // interrupts written to the driver (virtio clients)
  uint64_t notifies_suppressed = 0;             // notifications the other side waived (EVENT_IDX, flags)
  bool rx_started = false, tx_started = false;  // virtio rings running

  // virtio clients: how offloads crossed. tx_gso: frames the guest sent with a GSO type,
  // handed on whole; rx_gso: frames written to the guest with one; rx_merged: frames that took
  // more than one rx buffer (num_buffers > 1); rx_buffers: buffers all rx frames took; the
  // largest frame (ethernet bytes) each way.
  uint64_t tx_gso = 0, rx_gso = 0, rx_merged = 0, rx_buffers = 0;
  uint64_t tx_max_frame = 0, rx_max_frame = 0;
  CounterSnapshot counters;
};

class NetClient {
 public:
  NetClient(ClientKind kind, uint32_t handle, std::string name, NetContext* ctx);
  virtual ~NetClient();
  NetClient(const NetClient&) = delete;
  NetClient& operator=(const NetClient&) = delete;

  ClientKind kind() const { return kind_; }
  uint32_t handle() const { return handle_; }
  const std::string& name() const { return name_; }
  NetContext* context() const { return ctx_; }
  // Move to another context. Only while stopped, unpeered and with an empty queue.
  void Relocate(NetContext* ctx) { ctx_ = ctx; }
  NetClient* peer() const { return peer_; }

  // Per-kind behaviour the graph drives without knowing the kind. Home thread.
  // Start begins polling / producing; Stop ends it (the client stays usable for a restart).
  virtual Status Start() { return Status::Ok(); }
  virtual void Stop() {}
  // The device's header length changed (0, 10, 12 or 20, already checked).
  virtual Status SetVnetHdrLen(int len);
  // A queue was attached (true) or detached (false); only TAP queues have that state.
  virtual void SetQueueEnabled(bool) {}
  // The graph's offload choice for the device behind this client (auto_on: the graph
  // manages offloads at all); only a TAP acts on it.
  virtual void RecomputeOffloads(bool) {}
  // True when this client's owner sets the offloads of the device it is peered with (a NIC
  // queue: the virtio-net model writes what the guest negotiated), so the graph does not.
  virtual bool OwnsPeerOffloads() const { return false; }
  // The hub this client is a port of, -1 for none.
  virtual int hub_id() const { return -1; }
  // Just peered (Link succeeded).
  virtual void OnLinked() {}
  // Fill in what only this kind knows (enabled, offloads, hub).
  virtual void Describe(ClientInfo&) const {}

  // Peer a and b (symmetric). Fails when either already has a peer, a == b, or they live in
  // different contexts.
  static Status Link(NetClient* a, NetClient* b);
  // Break the link from this side and the peer's: frames this client sent that wait in the
  // peer's queue, and the peer's frames waiting here, are purged (counted, callbacks run).
  void Unlink();

  bool link_down() const { return link_down_; }
  // The device is gone for good (dead TAP): link down, drops counted as deadDevice.
  bool dead() const { return dead_; }
  virtual void SetLinkDown(bool down) { link_down_ = down; }
  bool receive_disabled() const { return receive_disabled_; }

  // Frames sent towards this client: may it take one now? (QEMU can_receive)
  virtual bool CanReceive() const { return true; }
  // True for NIC-like receivers that want short frames unpadded (QEMU do_not_pad).
  virtual bool DoNotPad() const { return false; }
  // Bytes of vnet header this client's device expects and produces (0 = none).
  virtual int vnet_hdr_len() const { return 0; }
  // Whether this client can take GSO / checksum-offloaded frames (with a vnet header).
  virtual bool AcceptsOffloads() const { return vnet_hdr_len() > 0; }
  // Which offloaded frames (kOffload* bits): a TAP peer turns on exactly these. A client
  // that takes some kinds only (a guest that negotiated a subset) says so here.
  virtual unsigned AcceptedOffloads() const { return AcceptsOffloads() ? unsigned{kOffloadAll} : 0u; }

  // Deliver one frame to this client's device or onward. See the file comment.
  virtual RecvResult Receive(NetClient* sender, const Frame& f) = 0;
  // A frame this client sent with a callback has left the peer's queue (delivered or
  // purged): resume producing.
  virtual void OnQueuedSent() {}

  enum class SendResult { kDone, kQueued };
  // Send f to the peer (QEMU qemu_send_packet_async). Counts out at this client, or a drop
  // (link down, no peer). kQueued: the frame waits in the peer's queue; a callback sender
  // must stop producing until OnQueuedSent().
  SendResult Send(const Frame& f, bool with_callback);

  // The receiver can take frames again (QEMU qemu_flush_queued_packets): clear
  // receive_disabled, flush this client's incoming queue, and when it empties and the peer
  // is a hub port, flush the queues of the hub's other ports.
  bool FlushQueuedPackets();

  // One delivery attempt from a sender, with the link and receive_disabled checks; counts in
  // at this client unless the frame is being re-delivered from its own queue.
  RecvResult Deliver(NetClient* sender, const Frame& f, bool from_queue);

  NetQueue& incoming() { return incoming_; }
  ClientCounters& counters() { return counters_; }
  // filter-dump (net/filter_dump.h): the ring this client's frames are copied into, in
  // both directions, or null. Home thread only.
  void set_capture(CaptureRing* ring) { capture_ = ring; }
  CaptureRing* capture() const { return capture_; }
  const ClientCounters& counters() const { return counters_; }

 protected:
  // Shape f for this client's device (ShapeForDevice to vnet_hdr_len()); false when it
  // cannot be: the drop is counted (oversize beyond max_eth_len, or a bad vnet header) and
  // Receive returns kError.
  bool ShapeOrDrop(const Frame& f, size_t max_eth_len, uint8_t* hdr_scratch, DeviceFrame* d);
  // For a virtio ring client: the sender's header (zero when it has none) of a frame up to
  // kMaxFrameLen; false (an oversize drop counted, Receive returns kError) for a larger one.
  bool SenderHeaderOrDrop(const Frame& f, VnetHdr* h);

  // Hub ports override: their "peer side" fan-out for FlushQueuedPackets.
  virtual void FlushHubSiblings() {}

  ClientKind kind_;
  uint32_t handle_;
  std::string name_;
  NetContext* ctx_;
  NetClient* peer_ = nullptr;
  bool link_down_ = false;
  bool dead_ = false;
  bool receive_disabled_ = false;
  NetQueue incoming_;
  ClientCounters counters_;
  CaptureRing* capture_ = nullptr;

  friend class NetQueue;
  friend class HubPort;
};

}  // namespace netplane::core
