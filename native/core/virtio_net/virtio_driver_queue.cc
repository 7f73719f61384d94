#include "virtio_net/virtio_driver_queue.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/debug_check.h"
#include "virtio_net/ring_fds.h"
#include "vnet/segment.h"

namespace netplane::core {

namespace {

bool Has(uint64_t features, int bit) { return (features >> bit) & 1; }

}  // namespace

VirtioDriverQueue::VirtioDriverQueue(uint32_t handle, std::string name, NetContext* ctx)
    : NetClient(ClientKind::kVirtioDriver, handle, std::move(name), ctx), frame_(kMaxVnetHdrLen + kMaxFrameLen) {}

VirtioDriverQueue::~VirtioDriverQueue() { Stop(); }

Status VirtioDriverQueue::SetFeatures(uint64_t f) {
  NP_DCHECK_HOME(ctx_->aio);
  if (rings_[0].started || rings_[1].started)
    return Status::Invalid("virtio driver '" + name_ + "': features can change only while both rings are stopped");
  if (Has(f, kVirtioFRingPacked) || Has(f, kVirtioNetFMrgRxbuf) || Has(f, kVirtioFRingEventIdx))
    return Status::Invalid("virtio driver '" + name_ + "': PACKED, MRG_RXBUF and EVENT_IDX are not driven");
  features_ = f;
  hdr_len_ = Has(f, kVirtioFVersion1) ? kVnetHdrLenMrg : kVnetHdrLenLegacy;
  return Status::Ok();
}

Status VirtioDriverQueue::SetVnetHdrLen(int) {
  return Status::Invalid("virtio driver '" + name_ + "': its header length follows the negotiated features");
}

Status VirtioDriverQueue::StartRing(VirtioRing r, DriverRingStart st) {
  NP_DCHECK_HOME(ctx_->aio);
  Ring& g = ring(r);
  const std::string what = "virtio driver '" + name_ + "' " + VirtioRingName(r) + " ring";
  if (g.started) return Status::InUse(what + " is already started");
  if (!st.kick.valid() || !st.call.valid()) return Status::Invalid(what + ": kick and call fds are required");
  if (!st.memory) return Status::Invalid(what + ": no memory");
  if (!IsValidQueueSize(st.size) || st.size > 1024)
    return Status::Invalid(what + ": size " + std::to_string(st.size) + " is not a power of 2 up to 1024");
  if (st.buffer_size < kMinBufferSize || st.buffer_size > kMaxVnetHdrLen + kMaxFrameLen)
    return Status::Invalid(what + ": buffer size " + std::to_string(st.buffer_size) + " out of range");
  if (!st.reset && (!g.laid_out || g.vq.size() != st.size || g.buffers_gpa != st.buffers ||
                    g.buffer_size != st.buffer_size || g.mem != st.memory))
    return Status::Invalid(what + ": cannot resume a ring with another layout; start it with a reset");
  Status s = SetNonBlocking(st.kick.get(), "kick");
  if (s.ok()) s = SetNonBlocking(st.call.get(), "call");
  if (!s.ok()) return s;
  const uint64_t area = uint64_t{st.size} * st.buffer_size;
  uint8_t* host = st.memory->TranslateContiguous(AddrSpace::kGuest, st.buffers, area);
  if (!host) return Status::Invalid(what + ": its buffer area is not one contiguous range of the memory");
  if (st.reset) {
    s = g.vq.Init(st.memory, st.size, st.desc, st.avail, st.used, /*event_idx=*/false);
    if (!s.ok()) {
      s.message = what + ": " + s.message;
      return s;
    }
    g.in_flight.assign(st.size, 0);
    g.mem = st.memory;
    g.buffers = host;
    g.buffers_gpa = st.buffers;
    g.buffer_size = st.buffer_size;
    g.laid_out = true;
    if (r == VirtioRing::kRx) {
      for (uint32_t i = 0; i < st.size; ++i)
        if (!PostRx()) return Status::Invalid(what + ": cannot post rx buffers");
      g.vq.Publish();
    } else {
      g.vq.SuppressInterrupts(true);  // tx completions are reclaimed lazily
    }
    if (broken_ && !rings_[r == VirtioRing::kRx ? 1 : 0].started) {
      broken_ = false;
      error_.clear();
    }
  }
  if (broken_) return Status::Invalid(what + ": the queue pair is broken (" + error_ + "); restart it with a reset");
  g.kick = std::move(st.kick);
  g.call = std::move(st.call);
  g.started = true;
  if (started_) {
    s = Poll(r);
    if (!s.ok()) {
      g.started = false;
      g.kick.Reset();
      g.call.Reset();
      return s;
    }
    if (r == VirtioRing::kRx) {
      AioContext::ScheduleBh(rx_bh_);
      WriteEvent(g.kick.get());  // the back-end learns of the posted buffers
    } else {
      AioContext::ScheduleBh(tx_flush_bh_);
    }
  }
  return Status::Ok();
}

uint16_t VirtioDriverQueue::StopRing(VirtioRing r) {
  NP_DCHECK_HOME(ctx_->aio);
  Ring& g = ring(r);
  Unpoll(r);
  g.started = false;
  g.kick.Reset();
  g.call.Reset();
  if (!g.laid_out) return 0;
  return LoadAcquire16(g.vq.used_ring() + kRingIdxOff);
}

Status VirtioDriverQueue::Start() {
  rx_bh_ = ctx_->aio->NewBh(RxBh, this, "virtio-drv-rx");
  tx_publish_bh_ = ctx_->aio->NewBh(TxPublishBh, this, "virtio-drv-tx");
  tx_flush_bh_ = ctx_->aio->NewBh(
      [](void* o) {
        auto* q = static_cast<VirtioDriverQueue*>(o);
        q->FlushQueuedPackets();
      },
      this, "virtio-drv-tx-flush");
  started_ = true;
  for (VirtioRing r : {VirtioRing::kRx, VirtioRing::kTx}) {
    if (!ring(r).started || broken_) continue;
    Status s = Poll(r);
    if (!s.ok()) return s;
  }
  AioContext::ScheduleBh(rx_bh_);
  return Status::Ok();
}

void VirtioDriverQueue::Stop() {
  Unpoll(VirtioRing::kRx);
  Unpoll(VirtioRing::kTx);
  tx_publish_scheduled_ = false;
  ReleaseBhs({&rx_bh_, &tx_publish_bh_, &tx_flush_bh_});
  started_ = false;
}

Status VirtioDriverQueue::Poll(VirtioRing r) {
  Ring& g = ring(r);
  if (g.polled || !g.call.valid()) return Status::Ok();
  Status s = PollNotifier(ctx_->aio, g.call.get(), r == VirtioRing::kRx ? OnRxCall : OnTxCall, this,
                          "virtio driver '" + name_ + "' " + VirtioRingName(r) + " ring: cannot poll the call fd");
  if (!s.ok()) return s;
  g.polled = true;
  return Status::Ok();
}

void VirtioDriverQueue::Unpoll(VirtioRing r) {
  Ring& g = ring(r);
  if (g.polled) ctx_->aio->RemoveFdHandler(g.call.get());
  g.polled = false;
}

bool VirtioDriverQueue::DrainCall(VirtioRing r) {
  counters_.wakeups.Add();
  const int e = DrainNotifier(ring(r).call.get());
  if (e == 0) return true;
  Fail(r, e < 0 ? "call fd: end of file" : "call fd: " + std::string(std::strerror(e)));
  return false;
}

void VirtioDriverQueue::OnRxCall(void* opaque) {
  auto* self = static_cast<VirtioDriverQueue*>(opaque);
  if (self->DrainCall(VirtioRing::kRx)) self->DrainRx();
}

void VirtioDriverQueue::OnTxCall(void* opaque) {
  auto* self = static_cast<VirtioDriverQueue*>(opaque);
  if (!self->DrainCall(VirtioRing::kTx)) return;
  if (!self->ReclaimTx()) return;
  self->ring(VirtioRing::kTx).vq.SuppressInterrupts(true);
  self->FlushQueuedPackets();
}

void VirtioDriverQueue::RxBh(void* opaque) { static_cast<VirtioDriverQueue*>(opaque)->DrainRx(); }

void VirtioDriverQueue::TxPublishBh(void* opaque) {
  auto* self = static_cast<VirtioDriverQueue*>(opaque);
  self->tx_publish_scheduled_ = false;
  self->PublishAndKick(VirtioRing::kTx);
}

void VirtioDriverQueue::PublishAndKick(VirtioRing r) {
  Ring& g = ring(r);
  if (!g.started || broken_) return;
  if (g.vq.Publish()) {
    ++kicks_;
    WriteEvent(g.kick.get());
  }
}

void VirtioDriverQueue::Fail(VirtioRing r, const std::string& reason) {
  if (broken_) return;
  broken_ = true;
  ++errors_;
  error_ = std::string(VirtioRingName(r)) + " ring: " + reason;
  Unpoll(VirtioRing::kRx);
  Unpoll(VirtioRing::kTx);
  GraphEvent ev{GraphEvent::Kind::kVringError, handle_, 0, {}, static_cast<int>(r), error_};
  ctx_->Emit(ev);
  // Frames waiting for us are dropped from now on; not inline: we may be inside a flush.
  if (tx_flush_bh_) AioContext::ScheduleBh(tx_flush_bh_);
}

bool VirtioDriverQueue::PostRx() {
  Ring& g = ring(VirtioRing::kRx);
  if (g.vq.free_descriptors() == 0) return false;
  const uint16_t head = g.vq.next_head();
  VirtqueueDriver::Buffer b{g.buffers_gpa + uint64_t{head} * g.buffer_size, g.buffer_size, true};
  if (g.vq.AddBuffers(&b, 1) != head) return false;
  g.in_flight[head] = 1;
  return true;
}

void VirtioDriverQueue::OnQueuedSent() {
  rx_blocked_ = false;
  if (rx_bh_) AioContext::ScheduleBh(rx_bh_);
}

void VirtioDriverQueue::DrainRx() {
  Ring& g = ring(VirtioRing::kRx);
  if (!started_ || broken_ || rx_blocked_ || !g.started) return;
  g.vq.SuppressInterrupts(true);
  const size_t hdr = static_cast<size_t>(hdr_len_);
  int n = 0;
  bool posted = false;
  for (;;) {
    if (n >= kRxBurst) {
      AioContext::ScheduleBh(rx_bh_);  // budget spent: let the thread's other clients run
      break;
    }
    uint32_t head, len;
    if (!g.vq.GetUsed(&head, &len)) {
      // Empty: ask for an interrupt, then look once more (the device may have just pushed).
      g.vq.SuppressInterrupts(false);
      std::atomic_thread_fence(std::memory_order_seq_cst);
      if (!g.vq.GetUsed(&head, &len)) break;
      g.vq.SuppressInterrupts(true);
    }
    if (head >= g.in_flight.size() || !g.in_flight[head]) {
      Fail(VirtioRing::kRx, "used id " + std::to_string(head) + " is not a buffer in flight");
      break;
    }
    g.in_flight[head] = 0;
    ++n;
    const bool ok_len = len <= g.buffer_size;
    if (ok_len) std::memcpy(frame_.data(), g.buffers + uint64_t{head} * g.buffer_size, len);
    PostRx();
    posted = true;
    if (!ok_len) {
      counters_.In(0);
      counters_.Drop(DropReason::kDeadDevice);
      Fail(VirtioRing::kRx, "used length " + std::to_string(len) + " is larger than its buffer");
      break;
    }
    counters_.In(len > hdr ? len - hdr : 0);
    if (len < hdr + kMinEthFrame) {
      counters_.Drop(DropReason::kBadVnetHdr);
      continue;
    }
    const size_t eth_len = len - hdr;
    VnetHdr h = ParseVnetHdr(frame_.data(), hdr);
    if (ValidateVnetHdr(h, frame_.data() + hdr, eth_len) != VnetError::kOk) {
      counters_.Drop(DropReason::kBadVnetHdr);
      continue;
    }
    if (hdr >= kVnetHdrLenMrg) frame_[10] = frame_[11] = 0;  // num_buffers means nothing to the peer
    counters_.DevRx(eth_len);
    Frame f{frame_.data(), static_cast<uint32_t>(len), static_cast<uint16_t>(hdr)};
    if (Send(f, /*with_callback=*/true) == SendResult::kQueued) {
      rx_blocked_ = true;  // OnQueuedSent resumes us
      break;
    }
  }
  if (posted) PublishAndKick(VirtioRing::kRx);
}

bool VirtioDriverQueue::ReclaimTx() {
  Ring& g = ring(VirtioRing::kTx);
  uint32_t head, len;
  while (g.vq.GetUsed(&head, &len)) {
    if (head >= g.in_flight.size() || !g.in_flight[head]) {
      Fail(VirtioRing::kTx, "used id " + std::to_string(head) + " is not a buffer in flight");
      return false;
    }
    g.in_flight[head] = 0;
  }
  return true;
}

bool VirtioDriverQueue::AddTx(const VnetHdr& h, const uint8_t* frame, size_t len) {
  Ring& g = ring(VirtioRing::kTx);
  if (g.vq.free_descriptors() == 0) return false;
  const uint16_t head = g.vq.next_head();
  uint8_t* dst = g.buffers + uint64_t{head} * g.buffer_size;
  WriteVnetHdr(h, dst, static_cast<size_t>(hdr_len_));
  std::memcpy(dst + hdr_len_, frame, len);
  VirtqueueDriver::Buffer b{g.buffers_gpa + uint64_t{head} * g.buffer_size, static_cast<uint32_t>(hdr_len_ + len),
                            false};
  if (g.vq.AddBuffers(&b, 1) != head) return false;
  g.in_flight[head] = 1;
  if (!tx_publish_scheduled_) {
    tx_publish_scheduled_ = true;
    AioContext::ScheduleBh(tx_publish_bh_);
  }
  return true;
}

void VirtioDriverQueue::SetLinkDown(bool down) {
  NetClient::SetLinkDown(down);
  // The back-end is gone: what waited for it is dropped (counted), and so is what comes next.
  if (!down) return;
  incoming_.Purge(nullptr, DropReason::kLinkDown);
  FlushQueuedPackets();  // receive_disabled_ off: later frames reach Deliver, which drops them
}

bool VirtioDriverQueue::CanReceive() const {
  if (broken_ || link_down_) return true;  // Deliver / Receive drop and count
  const Ring& g = rings_[1];
  if (!g.started) return false;
  if (g.vq.free_descriptors() > 0) return true;
  auto* self = const_cast<VirtioDriverQueue*>(this);
  if (!self->ReclaimTx()) return true;
  if (g.vq.free_descriptors() > 0) return true;
  // Full: ask for a completion interrupt, then look once more.
  self->ring(VirtioRing::kTx).vq.SuppressInterrupts(false);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  self->ReclaimTx();
  return g.vq.free_descriptors() > 0;
}

RecvResult VirtioDriverQueue::Receive(NetClient*, const Frame& f) {
  if (broken_) {
    counters_.Drop(DropReason::kDeadDevice);
    return RecvResult::kConsumed;
  }
  Ring& g = ring(VirtioRing::kTx);
  if (!g.started) return RecvResult::kNotNow;
  if (!ReclaimTx()) {
    counters_.Drop(DropReason::kDeadDevice);
    return RecvResult::kConsumed;
  }
  const size_t max_eth = g.buffer_size - static_cast<size_t>(hdr_len_);
  uint8_t hs[kMaxVnetHdrLen];
  DeviceFrame d;
  if (!ShapeOrDrop(f, kMaxFrameLen, hs, &d)) return RecvResult::kError;
  if (d.kind == DeviceFrame::Kind::kSoftware) {
    // The back-end takes no offloads: finish them here, each segment its own buffer, all
    // or none (a frame that needs more buffers than the ring has is oversize).
    const size_t need = CountSegments(d.hdr, f.eth(), f.eth_len());
    if (need > g.vq.size()) {
      counters_.Drop(DropReason::kOversize);
      return RecvResult::kError;
    }
    if (g.vq.free_descriptors() < need && (!CanReceive() || g.vq.free_descriptors() < need)) {
      if (broken_) {
        counters_.Drop(DropReason::kDeadDevice);
        return RecvResult::kConsumed;
      }
      return RecvResult::kNotNow;
    }
    struct Sink {
      VirtioDriverQueue* q;
      size_t max;
      int written, too_big;
    } sink{this, max_eth, 0, 0};
    VnetError e = SegmentFrame(
        d.hdr, f.eth(), f.eth_len(), ctx_->scratch.data(),
        [](void* o, const uint8_t* seg, size_t n) {
          auto* s = static_cast<Sink*>(o);
          if (n > s->max) {
            ++s->too_big;
            return;
          }
          if (s->q->AddTx(VnetHdr{}, seg, n)) ++s->written;
        },
        &sink);
    if (e != VnetError::kOk || sink.written == 0) {
      counters_.Drop(e != VnetError::kOk ? DropReason::kBadVnetHdr : DropReason::kOversize);
      return RecvResult::kError;
    }
    counters_.Out(d.eth_len);
    counters_.DevTx(d.eth_len);
    counters_.segments.Add(sink.written);
    return RecvResult::kConsumed;
  }
  if (d.eth_len > max_eth) {
    counters_.Drop(DropReason::kOversize);
    return RecvResult::kError;
  }
  if (g.vq.free_descriptors() == 0 && !CanReceive()) return RecvResult::kNotNow;
  if (broken_) {
    counters_.Drop(DropReason::kDeadDevice);
    return RecvResult::kConsumed;
  }
  // [header | frame] as ShapeForDevice gave it: our header, then the ethernet frame.
  Ring& t = g;
  const uint16_t head = t.vq.next_head();
  uint8_t* dst = t.buffers + uint64_t{head} * t.buffer_size;
  size_t off = 0;
  for (int i = 0; i < d.iovcnt; ++i) {
    std::memcpy(dst + off, d.iov[i].iov_base, d.iov[i].iov_len);
    off += d.iov[i].iov_len;
  }
  VirtqueueDriver::Buffer b{t.buffers_gpa + uint64_t{head} * t.buffer_size, static_cast<uint32_t>(off), false};
  if (t.vq.AddBuffers(&b, 1) != head) return RecvResult::kNotNow;
  t.in_flight[head] = 1;
  if (!tx_publish_scheduled_) {
    tx_publish_scheduled_ = true;
    AioContext::ScheduleBh(tx_publish_bh_);
  }
  counters_.Out(d.eth_len);
  counters_.DevTx(d.eth_len);
  return RecvResult::kConsumed;
}

void VirtioDriverQueue::Describe(ClientInfo& info) const {
  info.broken = broken_;
  info.errors = errors_;
  info.error = error_;
  info.features = features_;
  info.notifies = kicks_;
  info.rx_started = rings_[0].started;
  info.tx_started = rings_[1].started;
}

}  // namespace netplane::core
