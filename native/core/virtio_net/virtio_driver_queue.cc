#include "virtio_net/virtio_driver_queue.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/debug_check.h"
#include "virtio_net/ring_fds.h"
#include "vnet/segment.h"

namespace netplane::core {

VirtioDriverQueue::VirtioDriverQueue(uint32_t handle, std::string name, NetContext* ctx)
    : NetClient(ClientKind::kVirtioDriver, handle, std::move(name), ctx), frame_(kMaxVnetHdrLen + kMaxFrameLen) {}

VirtioDriverQueue::~VirtioDriverQueue() { Stop(); }

Status VirtioDriverQueue::SetFeatures(uint64_t f) {
  NP_DCHECK_HOME(ctx_->aio);
  if (rings_[0].started || rings_[1].started)
    return Status::Invalid("virtio driver '" + name_ + "': features can change only while both rings are stopped");
  if (HasFeature(f, kVirtioFRingPacked) || HasFeature(f, kVirtioNetFHashReport))
    return Status::Invalid("virtio driver '" + name_ + "': PACKED and HASH_REPORT are not driven");
  features_ = f;
  mrg_rxbuf_ = HasFeature(f, kVirtioNetFMrgRxbuf);
  event_idx_ = HasFeature(f, kVirtioFRingEventIdx);
  hdr_len_ = mrg_rxbuf_ || HasFeature(f, kVirtioFVersion1) ? kVnetHdrLenMrg : kVnetHdrLenLegacy;
  host_offloads_ = HostOffloads(f);
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
    s = g.vq.Init(st.memory, st.size, st.desc, st.avail, st.used, event_idx_);
    if (!s.ok()) {
      s.message = what + ": " + s.message;
      return s;
    }
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
      g.vq.EnableInterrupts(false);  // tx completions are reclaimed lazily
      tx_descs_.resize(st.size);
      tx_bufs_.resize(st.size);
    }
    if (broken_ && !rings_[r == VirtioRing::kRx ? 1 : 0].started) {
      broken_ = false;
      error_.clear();
    }
  }
  if (broken_) return Status::Invalid(what + ": the queue pair is broken (" + error_ + "); restart it with a reset");
  g.kick = std::move(st.kick);
  g.call.Reset(std::move(st.call));
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
  g.started = false;
  g.kick.Reset();
  g.call.Reset();
  if (r == VirtioRing::kRx && rx_.expected) {
    // A frame whose other buffers the back-end never published: counted, not delivered.
    counters_.In(0);
    counters_.Drop(DropReason::kDeadDevice);
    rx_ = RxFrame{};
  }
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
  Unpoll();
  tx_publish_scheduled_ = false;
  ReleaseBhs({&rx_bh_, &tx_publish_bh_, &tx_flush_bh_});
  started_ = false;
}

Status VirtioDriverQueue::Poll(VirtioRing r) {
  return ring(r).call.Poll(ctx_->aio, r == VirtioRing::kRx ? OnRxCall : OnTxCall, this,
                           "virtio driver '" + name_ + "' " + VirtioRingName(r) + " ring: cannot poll the call fd");
}

void VirtioDriverQueue::Unpoll() {
  for (Ring& g : rings_) g.call.Unpoll();
}

bool VirtioDriverQueue::DrainCall(VirtioRing r) {
  counters_.wakeups.Add();
  const int e = ring(r).call.Drain();
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
  self->ring(VirtioRing::kTx).vq.EnableInterrupts(false);
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
  const bool news = g.vq.unpublished() > 0;
  if (g.vq.Publish()) {
    ++vc_.notifies;
    WriteEvent(g.kick.get());
  } else if (news) {
    ++vc_.notifies_suppressed;  // the back-end's avail_event (or NO_NOTIFY) waived it
  }
}

void VirtioDriverQueue::Fail(VirtioRing r, const std::string& reason) {
  if (broken_) return;
  broken_ = true;
  ++errors_;
  error_ = std::string(VirtioRingName(r)) + " ring: " + reason;
  Unpoll();
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
  return g.vq.AddBuffers(&b, 1) == head;
}

void VirtioDriverQueue::OnQueuedSent() {
  rx_blocked_ = false;
  if (rx_bh_) AioContext::ScheduleBh(rx_bh_);
}

void VirtioDriverQueue::DrainRx() {
  Ring& g = ring(VirtioRing::kRx);
  if (!started_ || broken_ || rx_blocked_ || !g.started) return;
  g.vq.EnableInterrupts(false);
  int n = 0;
  bool posted = false;
  for (;;) {
    if (n >= kRxBurst) {
      AioContext::ScheduleBh(rx_bh_);  // budget spent: let the thread's other clients run
      break;
    }
    // The driver checked the entry: head is a buffer in flight, len fits it.
    uint32_t head, len;
    bool got = g.vq.GetUsed(&head, &len);
    if (!got && !g.vq.broken()) {
      // Empty: ask for an interrupt, then look once more (the device may have just pushed).
      g.vq.EnableInterrupts(true);
      std::atomic_thread_fence(std::memory_order_seq_cst);
      got = g.vq.GetUsed(&head, &len);
      if (got) g.vq.EnableInterrupts(false);
    }
    if (!got) {
      if (g.vq.broken()) Fail(VirtioRing::kRx, g.vq.error());
      break;
    }
    const bool done = TakeRxBuffer(head, len);
    PostRx();
    posted = true;
    if (!done) continue;
    ++n;
    DeliverRx();
    if (rx_blocked_) break;
  }
  if (posted) PublishAndKick(VirtioRing::kRx);
}

bool VirtioDriverQueue::TakeRxBuffer(uint32_t head, uint32_t len) {
  Ring& g = ring(VirtioRing::kRx);
  const uint8_t* src = g.buffers + uint64_t{head} * g.buffer_size;
  const size_t hdr = static_cast<size_t>(hdr_len_);
  if (rx_.expected == 0) {
    // The first buffer: its header says how many buffers the frame spans.
    rx_.expected = 1;
    if (mrg_rxbuf_ && len >= hdr) {
      const uint16_t num = static_cast<uint16_t>(src[10] | (src[11] << 8));
      if (num >= 1 && num <= g.vq.size()) {
        rx_.expected = num;
      } else {
        rx_.dropping = true;
        rx_.why = DropReason::kBadVnetHdr;
      }
    }
  }
  if (!rx_.dropping && rx_.len + len > frame_.size()) {
    rx_.dropping = true;
    rx_.why = DropReason::kOversize;
  }
  if (!rx_.dropping) std::memcpy(frame_.data() + rx_.len, src, len);
  rx_.len += len;
  ++rx_.buffers;
  return rx_.buffers >= rx_.expected;
}

void VirtioDriverQueue::DeliverRx() {
  const RxFrame fr = rx_;
  rx_ = RxFrame{};
  const size_t hdr = static_cast<size_t>(hdr_len_);
  counters_.In(fr.len > hdr ? fr.len - hdr : 0);
  if (fr.dropping) {
    counters_.Drop(fr.why);
    return;
  }
  if (fr.len < hdr + kMinEthFrame) {
    counters_.Drop(DropReason::kBadVnetHdr);
    return;
  }
  const size_t eth_len = fr.len - hdr;
  VnetHdr h = ParseVnetHdr(frame_.data(), hdr);
  if (ValidateVnetHdr(h, frame_.data() + hdr, eth_len) != VnetError::kOk) {
    counters_.Drop(DropReason::kBadVnetHdr);
    return;
  }
  if (hdr >= kVnetHdrLenMrg) frame_[10] = frame_[11] = 0;  // num_buffers means nothing to the peer
  vc_.rx_buffers += fr.buffers;
  if (fr.buffers > 1) ++vc_.rx_merged;
  if (h.gso_type != kGsoNone) ++vc_.rx_gso;
  vc_.rx_max_frame = std::max<uint64_t>(vc_.rx_max_frame, eth_len);
  counters_.DevRx(eth_len);
  // A GSO frame goes whole: a peer that cannot take it segments it (ShapeForDevice).
  Frame f{frame_.data(), static_cast<uint32_t>(fr.len), static_cast<uint16_t>(hdr)};
  if (Send(f, /*with_callback=*/true) == SendResult::kQueued) rx_blocked_ = true;  // OnQueuedSent resumes us
}

bool VirtioDriverQueue::ReclaimTx() {
  Ring& g = ring(VirtioRing::kTx);
  uint32_t head, len;
  while (g.vq.GetUsed(&head, &len)) {
  }
  if (!g.vq.broken()) return true;
  Fail(VirtioRing::kTx, g.vq.error());
  return false;
}

uint32_t VirtioDriverQueue::TxDescs(size_t bytes) const {
  const uint32_t b = rings_[1].buffer_size;
  return static_cast<uint32_t>((bytes + b - 1) / b);
}

bool VirtioDriverQueue::TxRoom(uint32_t need) {
  Ring& g = ring(VirtioRing::kTx);
  if (g.vq.free_descriptors() >= need) return true;
  if (!ReclaimTx()) return false;
  if (g.vq.free_descriptors() >= need) return true;
  // Full: ask for a completion interrupt, then look once more.
  g.vq.EnableInterrupts(true);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return ReclaimTx() && g.vq.free_descriptors() >= need;
}

bool VirtioDriverQueue::AddTx(const iovec* iov, int iovcnt, size_t bytes) {
  Ring& g = ring(VirtioRing::kTx);
  const uint32_t n = TxDescs(bytes);
  if (n == 0 || !g.vq.PeekFree(n, tx_descs_.data())) return false;
  // Gather the pieces into the chain's buffers, one buffer_size at a time.
  uint32_t k = 0;
  size_t room = 0;
  uint8_t* dst = nullptr;
  for (int i = 0; i < iovcnt; ++i) {
    const uint8_t* p = static_cast<const uint8_t*>(iov[i].iov_base);
    size_t left = iov[i].iov_len;
    while (left > 0) {
      if (room == 0) {
        const uint16_t d = tx_descs_[k];
        dst = g.buffers + uint64_t{d} * g.buffer_size;
        room = g.buffer_size;
        tx_bufs_[k] = {g.buffers_gpa + uint64_t{d} * g.buffer_size, 0, false};
        ++k;
      }
      const size_t c = std::min(left, room);
      std::memcpy(dst, p, c);
      dst += c;
      p += c;
      left -= c;
      room -= c;
      tx_bufs_[k - 1].len += static_cast<uint32_t>(c);
    }
  }
  if (g.vq.AddBuffers(tx_bufs_.data(), static_cast<int>(k)) != tx_descs_[0]) return false;
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
  if (!rings_[1].started) return false;
  return const_cast<VirtioDriverQueue*>(this)->TxRoom(1) || broken_;
}

RecvResult VirtioDriverQueue::SendSoftware(const VnetHdr& h, const Frame& f) {
  // The back-end does not take these offloads: finish them here, each segment its own
  // chain, all or none (a frame that needs more buffers than the ring has is oversize).
  if (ValidateVnetHdr(h, f.eth(), f.eth_len()) != VnetError::kOk) {
    counters_.Drop(DropReason::kBadVnetHdr);
    return RecvResult::kError;
  }
  const size_t hdr = static_cast<size_t>(hdr_len_);
  struct Count {
    const VirtioDriverQueue* q;
    size_t hdr;
    uint32_t descs;
  } count{this, hdr, 0};
  auto count_seg = [](void* o, const uint8_t*, size_t n) {
    auto* c = static_cast<Count*>(o);
    c->descs += c->q->TxDescs(c->hdr + n);
  };
  if (SegmentFrame(h, f.eth(), f.eth_len(), ctx_->scratch.data(), count_seg, &count) != VnetError::kOk) {
    counters_.Drop(DropReason::kBadVnetHdr);
    return RecvResult::kError;
  }
  if (count.descs > ring(VirtioRing::kTx).vq.size()) {
    counters_.Drop(DropReason::kOversize);
    return RecvResult::kError;
  }
  if (!TxRoom(count.descs)) {
    if (!broken_) return RecvResult::kNotNow;
    counters_.Drop(DropReason::kDeadDevice);
    return RecvResult::kConsumed;
  }
  struct Sink {
    VirtioDriverQueue* q;
    size_t hdr;
    int written;
  } sink{this, hdr, 0};
  SegmentFrame(
      h, f.eth(), f.eth_len(), ctx_->scratch.data(),
      [](void* o, const uint8_t* seg, size_t n) {
        auto* s = static_cast<Sink*>(o);
        static const uint8_t kZeroHdr[kMaxVnetHdrLen] = {};
        const iovec iov[2] = {{const_cast<uint8_t*>(kZeroHdr), s->hdr}, {const_cast<uint8_t*>(seg), n}};
        if (s->q->AddTx(iov, 2, s->hdr + n)) ++s->written;
      },
      &sink);
  counters_.Out(f.eth_len());
  counters_.DevTx(f.eth_len());
  counters_.segments.Add(sink.written);
  return RecvResult::kConsumed;
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
  const size_t eth_len = f.eth_len();
  VnetHdr h;
  if (!SenderHeaderOrDrop(f, &h)) return RecvResult::kError;
  if (NeedsSoftwareOffload(h)) {
    if (!OffloadsTake(host_offloads_, h, f.eth(), eth_len)) return SendSoftware(h, f);
    if (ValidateVnetHdr(h, f.eth(), eth_len) != VnetError::kOk) {
      counters_.Drop(DropReason::kBadVnetHdr);
      return RecvResult::kError;
    }
  }
  // Whole: our header (the sender's offload fields; rx-only flags and num_buffers mean
  // nothing on tx), then the frame.
  const size_t hdr = static_cast<size_t>(hdr_len_);
  const size_t bytes = hdr + eth_len;
  const uint32_t need = TxDescs(bytes);
  if (need > g.vq.size()) {
    counters_.Drop(DropReason::kOversize);
    return RecvResult::kError;
  }
  if (!TxRoom(need)) {
    if (!broken_) return RecvResult::kNotNow;
    counters_.Drop(DropReason::kDeadDevice);
    return RecvResult::kConsumed;
  }
  VnetHdr o = h;
  o.flags &= static_cast<uint8_t>(~(kVnetFlagDataValid | kVnetFlagRscInfo));
  o.num_buffers = 0;
  o.hash_value = 0;
  o.hash_report = 0;
  uint8_t hs[kMaxVnetHdrLen];
  WriteVnetHdr(o, hs, hdr);
  const iovec v[2] = {{hs, hdr}, {const_cast<uint8_t*>(f.eth()), eth_len}};
  if (!AddTx(v, 2, bytes)) return RecvResult::kNotNow;
  if (h.gso_type != kGsoNone) ++vc_.tx_gso;
  vc_.tx_max_frame = std::max<uint64_t>(vc_.tx_max_frame, eth_len);
  counters_.Out(eth_len);
  counters_.DevTx(eth_len);
  return RecvResult::kConsumed;
}

void VirtioDriverQueue::Describe(ClientInfo& info) const {
  info.broken = broken_;
  info.errors = errors_;
  info.error = error_;
  info.features = features_;
  vc_.Describe(info);
  info.rx_started = rings_[0].started;
  info.tx_started = rings_[1].started;
}

}  // namespace netplane::core
