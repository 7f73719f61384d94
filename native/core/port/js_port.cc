#include "port/js_port.h"

#include <algorithm>
#include <cstring>

#include "vnet/segment.h"

namespace netplane::core {

Result<JsPort*> JsPort::Create(uint32_t handle, std::string name, NetContext* ctx, const JsPortConfig& cfg) {
  if (cfg.vnet_hdr_len != 0 && !IsVnetHdrLen(static_cast<size_t>(cfg.vnet_hdr_len)))
    return Result<JsPort*>::Fail(
        Status::Invalid("vnet header length must be 0, 10, 12 or 20, got " + std::to_string(cfg.vnet_hdr_len)));
  SpscRing rx, tx;
  Status s = SpscRing::Attach(cfg.rx_mem, cfg.rx_len, true, &rx);
  if (!s.ok()) return Result<JsPort*>::Fail(Status::Invalid("rx " + s.message));
  s = SpscRing::Attach(cfg.tx_mem, cfg.tx_len, true, &tx);
  if (!s.ok()) return Result<JsPort*>::Fail(Status::Invalid("tx " + s.message));
  auto* port = new JsPort(handle, std::move(name), ctx, cfg);
  port->rx_ = rx;
  port->tx_ = tx;
  return Result<JsPort*>::Of(port);
}

JsPort::JsPort(uint32_t handle, std::string name, NetContext* ctx, const JsPortConfig& cfg)
    : NetClient(ClientKind::kPort, handle, std::move(name), ctx),
      drop_when_full_(cfg.drop_when_full),
      hdr_len_(cfg.vnet_hdr_len) {}

JsPort::~JsPort() = default;

Status JsPort::Start() {
  tx_bh_ = ctx_->aio->NewBh(TxBh, this, "jsport-tx");
  rx_room_bh_ = ctx_->aio->NewBh(RxRoomBh, this, "jsport-rx-room");
  wake_bh_ = ctx_->aio->NewBh(WakeBh, this, "jsport-rx-wake");
  AioContext::ScheduleBh(tx_bh_);  // frames JS wrote before we started
  return Status::Ok();
}

void JsPort::Stop() {
  wake_scheduled_ = false;
  for (BottomHalf** bh : {&tx_bh_, &rx_room_bh_, &wake_bh_}) {
    if (*bh) {
      AioContext::CancelBh(*bh);
      AioContext::DeleteBh(*bh);
      *bh = nullptr;
    }
  }
}

void JsPort::KickTx() {
  if (tx_bh_) AioContext::ScheduleBh(tx_bh_);
}
void JsPort::KickRxRoom() {
  if (rx_room_bh_) AioContext::ScheduleBh(rx_room_bh_);
}
void JsPort::TxBh(void* opaque) { static_cast<JsPort*>(opaque)->DrainTx(); }
void JsPort::RxRoomBh(void* opaque) { static_cast<JsPort*>(opaque)->FlushQueuedPackets(); }
void JsPort::WakeBh(void* opaque) {
  auto* self = static_cast<JsPort*>(opaque);
  self->wake_scheduled_ = false;
  self->WakeConsumer();
}

void JsPort::RequestWake() {
  if (!wake_bh_) {
    WakeConsumer();
    return;
  }
  if (wake_scheduled_) return;
  wake_scheduled_ = true;
  AioContext::ScheduleBh(wake_bh_);
}

void JsPort::OnQueuedSent() {
  tx_blocked_ = false;
  KickTx();
}

void JsPort::DrainTx() {
  tx_.wake().store(0, std::memory_order_seq_cst);
  if (tx_blocked_) return;
  const uint32_t cap = tx_.capacity();
  const size_t hdr = static_cast<size_t>(hdr_len_);
  uint32_t t = tx_.tail().load(std::memory_order_relaxed);
  uint32_t h = tx_.head().load(std::memory_order_acquire);
  if (!SpscRing::PositionsSane(h, t, cap)) {
    // JS wrote the ring words directly and broke the format (PacketPort never does): count
    // one bad record and read nothing, rather than read off the ring. The tail moves to the
    // (aligned) head, so a producer that sets head = tail starts over on a sane ring.
    counters_.In(0);
    counters_.Drop(DropReason::kBadVnetHdr);
    tx_.tail().store(h & ~7u, std::memory_order_release);
    return;
  }
  int sent = 0;
  while (t != h && sent < kTxBudget) {
    uint32_t off = t & (cap - 1);
    uint32_t len;
    std::memcpy(&len, tx_.data() + off, 4);
    if (len == kRingWrapMark) {
      t += cap - off;
      continue;
    }
    if (len > cap - off - 8 || static_cast<uint32_t>(h - t) < SpscRing::RecordSize(len)) {
      // JS broke the ring format: drop what is there rather than read out of bounds.
      counters_.In(0);
      counters_.Drop(DropReason::kBadVnetHdr);
      t = h;
      break;
    }
    const uint8_t* p = tx_.data() + off + 8;
    t += static_cast<uint32_t>(SpscRing::RecordSize(len));
    ++sent;
    if (len < hdr + kMinEthFrame || len - hdr > 65535) {
      counters_.In(0);
      counters_.Drop(DropReason::kOversize);
      continue;
    }
    if (hdr > 0) {
      // PacketPort.send() validated this header before publishing it; check again here, on
      // the engine's side, so a record written into the ring some other way never reaches a
      // TAP unvalidated. (Cheap: GSO_NONE frames are a few compares.)
      VnetHdr vh = ParseVnetHdr(p, hdr);
      if (ValidateVnetHdr(vh, p + hdr, len - hdr) != VnetError::kOk) {
        counters_.In(0);
        counters_.Drop(DropReason::kBadVnetHdr);
        continue;
      }
    }
    Frame f{p, len, static_cast<uint16_t>(hdr)};
    counters_.In(f.eth_len());
    counters_.DevRx(f.eth_len());
    if (Send(f, /*with_callback=*/true) == SendResult::kQueued) {
      tx_blocked_ = true;  // OnQueuedSent resumes us
      break;
    }
  }
  tx_.tail().store(t, std::memory_order_release);
  if (tx_.blocked().exchange(0, std::memory_order_seq_cst) != 0)
    ctx_->Emit(GraphEvent{GraphEvent::Kind::kPortTxRoom, handle_, 0, {}});
  if (!tx_blocked_ && t != tx_.head().load(std::memory_order_acquire)) AioContext::ScheduleBh(tx_bh_);
}

void JsPort::WakeConsumer() {
  if (rx_.wake().exchange(1, std::memory_order_seq_cst) == 0)
    ctx_->Emit(GraphEvent{GraphEvent::Kind::kPortRx, handle_, 0, {}});
}

bool JsPort::RoomOrBlock(size_t need) {
  if (rx_.HasRoom(need)) return true;
  if (drop_when_full_) return false;
  rx_.blocked().store(1, std::memory_order_seq_cst);
  return rx_.HasRoom(need);  // JS may have freed room in between
}

RecvResult JsPort::Full() {
  if (drop_when_full_) {
    counters_.Drop(DropReason::kQueueFull);
    return RecvResult::kConsumed;
  }
  return RecvResult::kNotNow;
}

namespace {
struct RingSegmentSink {
  SpscRing* ring;
  int pushed = 0;
  int lost = 0;
};
void PushSegment(void* opaque, const uint8_t* frame, size_t len) {
  auto* s = static_cast<RingSegmentSink*>(opaque);
  iovec iov{const_cast<uint8_t*>(frame), len};
  if (s->ring->Push(&iov, 1, len, 0))
    ++s->pushed;
  else
    ++s->lost;
}
}  // namespace

RecvResult JsPort::Receive(NetClient*, const Frame& f) {
  uint8_t hdr_scratch[kMaxVnetHdrLen];
  DeviceFrame d;
  if (!ShapeOrDrop(f, kMaxFrameLen, hdr_scratch, &d)) return RecvResult::kError;
  if (d.kind == DeviceFrame::Kind::kSoftware) {
    // Room for every segment (each at most headers + gso_size) plus one wrap.
    size_t payload = d.eth_len;
    size_t segs = d.hdr.gso_size ? payload / d.hdr.gso_size + 1 : 1;
    size_t seg_max = d.hdr.gso_size ? std::min<size_t>(payload, 256 + d.hdr.gso_size) : payload;
    size_t need = segs * SpscRing::RecordSize(seg_max) + SpscRing::RecordSize(seg_max);
    if (need > rx_.capacity() / 2) {
      counters_.Drop(DropReason::kOversize);
      return RecvResult::kError;
    }
    if (!RoomOrBlock(need)) return Full();
    RingSegmentSink sink{&rx_};
    VnetError e = SegmentFrame(d.hdr, f.eth(), f.eth_len(), ctx_->scratch.data(), PushSegment, &sink);
    if (e != VnetError::kOk) {
      counters_.Drop(DropReason::kBadVnetHdr);
      return RecvResult::kError;
    }
    counters_.Out(d.eth_len);
    counters_.DevTx(d.eth_len);
    counters_.segments.Add(sink.pushed);
    if (sink.pushed) RequestWake();
    return RecvResult::kConsumed;
  }
  size_t len = 0;
  for (int i = 0; i < d.iovcnt; ++i) len += d.iov[i].iov_len;
  if (!rx_.Push(d.iov, d.iovcnt, len, 0)) {
    if (!RoomOrBlock(len)) return Full();
    rx_.Push(d.iov, d.iovcnt, len, 0);
  }
  counters_.Out(d.eth_len);
  counters_.DevTx(d.eth_len);
  RequestWake();
  return RecvResult::kConsumed;
}

int JsPort::ValidateUnpublishedTx(uint32_t pos, uint32_t count, int hdr_len, VnetError* why) {
  if (hdr_len <= 0) return -1;
  const uint32_t cap = tx_.capacity();
  const size_t hdr = static_cast<size_t>(hdr_len);
  for (uint32_t i = 0; i < count;) {
    uint32_t off = pos & (cap - 1);
    uint32_t len;
    std::memcpy(&len, tx_.data() + off, 4);
    if (len == kRingWrapMark) {
      pos += cap - off;
      continue;
    }
    if (len > cap - off - 8 || len < hdr + kMinEthFrame) {
      *why = VnetError::kShortFrame;
      counters_.Reject(DropReason::kBadVnetHdr);
      return static_cast<int>(i);
    }
    const uint8_t* p = tx_.data() + off + 8;
    VnetHdr h = ParseVnetHdr(p, hdr);
    VnetError e = ValidateVnetHdr(h, p + hdr, len - hdr);
    if (e != VnetError::kOk) {
      *why = e;
      counters_.Reject(DropReason::kBadVnetHdr);
      return static_cast<int>(i);
    }
    pos += static_cast<uint32_t>(SpscRing::RecordSize(len));
    ++i;
  }
  return -1;
}

void JsPort::CountRejected(DropReason reason, uint32_t n) { counters_.Reject(reason, n); }

}  // namespace netplane::core
