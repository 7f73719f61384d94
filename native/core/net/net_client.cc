#include "net/net_client.h"

#include <cstring>

#include "base/debug_check.h"
#include "net/filter_dump.h"

namespace netplane::core {

const char* ClientKindName(ClientKind k) {
  switch (k) {
    case ClientKind::kTap:
      return "tap";
    case ClientKind::kHubPort:
      return "hubport";
    // The stats' spelling ('jsport'), which query-netplane-stats shows for ports made by
    // createPort: kept so that output does not change.
    case ClientKind::kPort:
      return "jsport";
    case ClientKind::kVirtioDevice:
      return "virtio-device";
    case ClientKind::kSlirp:
      return "user";
    case ClientKind::kStream:
      return "stream";
    case ClientKind::kDgram:
      return "dgram";
    case ClientKind::kVirtioDriver:
      return "virtio-driver";
  }
  return "unknown";
}

NetClient::NetClient(ClientKind kind, uint32_t handle, std::string name, NetContext* ctx)
    : kind_(kind), handle_(handle), name_(std::move(name)), ctx_(ctx), incoming_(this) {}

NetClient::~NetClient() = default;

Status NetClient::Link(NetClient* a, NetClient* b) {
  NP_DCHECK_HOME(a->ctx_->aio);
  if (a == b) return Status::Invalid("cannot peer net client '" + a->name_ + "' with itself");
  if (a->peer_) return Status::InUse("net client '" + a->name_ + "' already has a peer ('" + a->peer_->name_ + "')");
  if (b->peer_) return Status::InUse("net client '" + b->name_ + "' already has a peer ('" + b->peer_->name_ + "')");
  if (a->ctx_ != b->ctx_)
    return Status::Invalid("net clients '" + a->name_ + "' and '" + b->name_ + "' run on different iothreads ('" +
                           a->ctx_->name + "', '" + b->ctx_->name + "')");
  a->peer_ = b;
  b->peer_ = a;
  return Status::Ok();
}

void NetClient::Unlink() {
  NP_DCHECK_HOME(ctx_->aio);
  NetClient* p = peer_;
  if (!p) return;
  p->incoming_.Purge(this, DropReason::kPurged);
  incoming_.Purge(p, DropReason::kPurged);
  p->peer_ = nullptr;
  peer_ = nullptr;
}

NetClient::SendResult NetClient::Send(const Frame& f, bool with_callback) {
  NP_DCHECK_HOME(ctx_->aio);
  if (link_down_) {
    counters_.Drop(dead_ ? DropReason::kDeadDevice : DropReason::kLinkDown);
    return SendResult::kDone;
  }
  NetClient* r = peer_;
  if (!r) {
    counters_.Drop(DropReason::kNoPeer);
    return SendResult::kDone;
  }
  counters_.Out(f.eth_len());
  // Captures see a frame where QEMU's filters do: after the sender's link and peer checks,
  // before the receiver's queue (tx at the sender, rx at the receiver).
  if (capture_ && capture_->wants(kCaptureTx)) capture_->Push(f.eth(), f.eth_len());
  if (r->capture_ && r->capture_->wants(kCaptureRx)) r->capture_->Push(f.eth(), f.eth_len());
  NetQueue& q = r->incoming_;
  // Frames already waiting go first, so a direct delivery never overtakes them.
  if (!q.empty() && !q.delivering() && !r->receive_disabled_ && r->CanReceive()) q.Flush();
  if (q.delivering() || !q.empty() || r->receive_disabled_ || !r->CanReceive()) {
    return q.Append(this, f, with_callback) == NetQueue::AppendResult::kQueued ? SendResult::kQueued
                                                                               : SendResult::kDone;
  }
  if (r->Deliver(this, f, /*from_queue=*/false) != RecvResult::kNotNow) return SendResult::kDone;
  return q.Append(this, f, with_callback) == NetQueue::AppendResult::kQueued ? SendResult::kQueued : SendResult::kDone;
}

RecvResult NetClient::Deliver(NetClient* sender, const Frame& f, bool from_queue) {
  NP_DCHECK_HOME(ctx_->aio);
  if (link_down_) {
    if (!from_queue) counters_.In(f.eth_len());
    counters_.Drop(dead_ ? DropReason::kDeadDevice : DropReason::kLinkDown);
    return RecvResult::kConsumed;
  }
  if (receive_disabled_) return RecvResult::kNotNow;
  RecvResult r = Receive(sender, f);
  if (r == RecvResult::kNotNow) {
    receive_disabled_ = true;
    return r;
  }
  if (!from_queue) counters_.In(f.eth_len());
  return r;
}

Status NetClient::SetVnetHdrLen(int) {
  return Status::Invalid("net client '" + name_ + "' has no vnet header of its own");
}

bool NetClient::ShapeOrDrop(const Frame& f, size_t max_eth_len, uint8_t* hdr_scratch, DeviceFrame* d) {
  if (f.eth_len() > max_eth_len) {
    counters_.Drop(DropReason::kOversize);
    return false;
  }
  *d = ShapeForDevice(f, vnet_hdr_len(), hdr_scratch);
  if (d->kind == DeviceFrame::Kind::kBad) {
    counters_.Drop(DropReason::kBadVnetHdr);
    return false;
  }
  return true;
}

bool NetClient::SenderHeaderOrDrop(const Frame& f, VnetHdr* h) {
  if (f.eth_len() > kMaxFrameLen) {
    counters_.Drop(DropReason::kOversize);
    return false;
  }
  *h = f.hdr_len ? ParseVnetHdr(f.data, f.hdr_len) : VnetHdr{};
  return true;
}

bool NetClient::FlushQueuedPackets() {
  NP_DCHECK_HOME(ctx_->aio);
  receive_disabled_ = false;
  bool emptied = incoming_.Flush();
  if (emptied && peer_) peer_->FlushHubSiblings();
  return emptied;
}

DeviceFrame ShapeForDevice(const Frame& f, int to_hdr_len, uint8_t* hdr_scratch) {
  static const uint8_t kZeroHdr[kMaxVnetHdrLen] = {};
  DeviceFrame d;
  const size_t from = f.hdr_len;
  const size_t to = static_cast<size_t>(to_hdr_len);
  uint8_t* eth = const_cast<uint8_t*>(f.eth());
  d.eth_len = f.eth_len();
  if (from == to) {
    d.iov[0] = {const_cast<uint8_t*>(f.data), f.len};
    d.iovcnt = 1;
  } else if (from == 0) {
    // The sender has no header: a zero one (no flags, GSO_NONE), QEMU's prepend rule.
    d.iov[0] = {const_cast<uint8_t*>(kZeroHdr), to};
    d.iov[1] = {eth, d.eth_len};
    d.iovcnt = 2;
  } else if (to > 0) {
    // Both have headers of different lengths: the common fields carry over.
    VnetHdr h = ParseVnetHdr(f.data, from);
    h.num_buffers = 0;
    h.hash_value = 0;
    h.hash_report = 0;
    WriteVnetHdr(h, hdr_scratch, to);
    d.iov[0] = {hdr_scratch, to};
    d.iov[1] = {eth, d.eth_len};
    d.iovcnt = 2;
  } else {
    // The receiver takes plain frames: strip, after software offload if needed.
    d.hdr = ParseVnetHdr(f.data, from);
    if (NeedsSoftwareOffload(d.hdr)) {
      d.error = ValidateVnetHdr(d.hdr, eth, d.eth_len);
      d.kind = d.error == VnetError::kOk ? DeviceFrame::Kind::kSoftware : DeviceFrame::Kind::kBad;
      return d;
    }
    d.iov[0] = {eth, d.eth_len};
    d.iovcnt = 1;
  }
  return d;
}

}  // namespace netplane::core
