#include "virtio_net/virtio_device_queue.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/debug_check.h"
#include "virtio_net/ring_fds.h"
#include "vnet/segment.h"
#include "vnet/wire_format.h"

namespace netplane::core {

const char* VirtioRingName(VirtioRing r) { return r == VirtioRing::kRx ? "rx" : "tx"; }

VirtioDeviceQueue::VirtioDeviceQueue(uint32_t handle, std::string name, NetContext* ctx)
    : NetClient(ClientKind::kVirtioDevice, handle, std::move(name), ctx), txbuf_(kMaxVnetHdrLen + kMaxFrameLen) {}

VirtioDeviceQueue::~VirtioDeviceQueue() { Stop(); }

Status VirtioDeviceQueue::SetFeatures(uint64_t f) {
  NP_DCHECK_HOME(ctx_->aio);
  if (ring(VirtioRing::kRx).vq.started() || ring(VirtioRing::kTx).vq.started())
    return Status::Invalid("virtio device '" + name_ + "': features can change only while both rings are stopped");
  if (HasFeature(f, kVirtioNetFHashReport))
    return Status::InvalidInput("virtio device '" + name_ + "': VIRTIO_NET_F_HASH_REPORT is not supported");
  features_ = f;
  mrg_rxbuf_ = HasFeature(f, kVirtioNetFMrgRxbuf);
  // One source of truth for the header length (QEMU CVE-2023-6693 came from two).
  hdr_len_ = mrg_rxbuf_ || HasFeature(f, kVirtioFVersion1) ? kVnetHdrLenMrg : kVnetHdrLenLegacy;
  event_idx_ = HasFeature(f, kVirtioFRingEventIdx);
  packed_ = HasFeature(f, kVirtioFRingPacked);
  guest_offloads_ = GuestOffloads(f);
  return Status::Ok();
}

Status VirtioDeviceQueue::SetVnetHdrLen(int) {
  return Status::Invalid("virtio device '" + name_ + "': its header length follows the negotiated features");
}

Status VirtioDeviceQueue::StartRing(VirtioRing r, VirtioRingStart start) {
  NP_DCHECK_HOME(ctx_->aio);
  Ring& g = ring(r);
  const VirtioRing other = r == VirtioRing::kRx ? VirtioRing::kTx : VirtioRing::kRx;
  const std::string what = "virtio device '" + name_ + "' " + VirtioRingName(r) + " ring";
  if (g.vq.started()) return Status::InUse(what + " is already started");
  if (!start.kick.valid()) return Status::Invalid(what + ": a kick fd is required");
  if (broken_) {
    if (ring(other).vq.started())
      return Status::Invalid(what + ": the queue pair is broken (" + error_ + "); stop both rings to reset it");
    broken_ = false;  // both rings stopped: a device reset
    error_.clear();
  }
  Status s = SetNonBlocking(start.kick.get(), "kick");
  if (s.ok() && start.call.valid()) s = SetNonBlocking(start.call.get(), "call");
  if (s.ok() && start.err.valid()) s = SetNonBlocking(start.err.get(), "err");
  if (!s.ok()) return s;
  VringAddrs a = start.addrs;
  a.event_idx = event_idx_;
  a.packed = packed_;
  s = g.vq.Start(std::move(start.memory), a);
  if (!s.ok()) {
    s.message = what + ": " + s.message;
    // A layout the guest (or front-end) chose that does not fit its memory is hostile input
    // like any other: the pair enters the error state (and says so on this ring's err fd).
    if (s.code == StatusCode::kInvalidInput) {
      g.err = std::move(start.err);
      Fail(r, s.message.substr(what.size() + 2));
      g.err.Reset();
    }
    return s;
  }
  if (r == VirtioRing::kRx) rx_used_.assign(a.size, VringUsedElem{0, 0});
  g.kick.Reset(std::move(start.kick));
  g.call = std::move(start.call);
  g.err = std::move(start.err);
  if (started_) {
    s = Poll(r);
    if (!s.ok()) {
      g.vq.Stop();
      g.kick.Reset();
      g.call.Reset();
      g.err.Reset();
      return s;
    }
    // Scan once: the guest may have kicked before we listened.
    AioContext::ScheduleBh(r == VirtioRing::kTx ? tx_bh_ : rx_flush_bh_);
  }
  return Status::Ok();
}

uint32_t VirtioDeviceQueue::StopRing(VirtioRing r) {
  NP_DCHECK_HOME(ctx_->aio);
  Ring& g = ring(r);
  // Completed chains are published (Stop flushes); nothing popped stays in flight: tx
  // completes each chain as it sends it, rx pops and completes within one Receive.
  uint32_t base = g.vq.Stop();
  g.kick.Reset();
  g.call.Reset();
  g.err.Reset();
  return base;
}

Status VirtioDeviceQueue::Start() {
  tx_bh_ = ctx_->aio->NewBh(TxBh, this, "virtio-tx");
  rx_flush_bh_ = ctx_->aio->NewBh(RxFlushBh, this, "virtio-rx-flush");
  rx_done_bh_ = ctx_->aio->NewBh(RxDoneBh, this, "virtio-rx-done");
  started_ = true;
  for (VirtioRing r : {VirtioRing::kRx, VirtioRing::kTx}) {
    if (!ring(r).vq.started() || broken_) continue;
    Status s = Poll(r);
    if (!s.ok()) return s;
  }
  AioContext::ScheduleBh(tx_bh_);
  AioContext::ScheduleBh(rx_flush_bh_);
  return Status::Ok();
}

void VirtioDeviceQueue::Stop() {
  for (Ring& g : rings_) g.kick.Unpoll();
  // Publish what was completed: the guest must not wait for a bottom half that is gone.
  for (Ring& g : rings_) g.vq.Flush();
  rx_done_scheduled_ = false;
  ReleaseBhs({&tx_bh_, &rx_flush_bh_, &rx_done_bh_});
  started_ = false;
}

Status VirtioDeviceQueue::Poll(VirtioRing r) {
  return ring(r).kick.Poll(ctx_->aio, r == VirtioRing::kTx ? OnTxKick : OnRxKick, this,
                           "virtio device '" + name_ + "' " + VirtioRingName(r) + " ring: cannot poll the kick fd");
}

bool VirtioDeviceQueue::DrainKick(VirtioRing r) {
  Ring& g = ring(r);
  ++g.kicks;
  counters_.wakeups.Add();
  const int e = g.kick.Drain();
  if (e == 0) return true;
  // EOF or an error: not an eventfd we can use. Stop, or the loop would spin on it.
  ring(r).vq.SetError(VirtqError::kKickFd);
  Fail(r, std::string(VirtqErrorName(VirtqError::kKickFd)) +
              (e < 0 ? " (end of file)" : ": " + std::string(std::strerror(e))));
  return false;
}

void VirtioDeviceQueue::OnTxKick(void* opaque) {
  auto* self = static_cast<VirtioDeviceQueue*>(opaque);
  if (self->DrainKick(VirtioRing::kTx)) self->DrainTx();
}

void VirtioDeviceQueue::OnRxKick(void* opaque) {
  auto* self = static_cast<VirtioDeviceQueue*>(opaque);
  if (!self->DrainKick(VirtioRing::kRx)) return;
  // New buffers: no more rx kicks until we run out again (NoRoom asks for them then).
  self->ring(VirtioRing::kRx).vq.DisableNotification();
  self->FlushQueuedPackets();
}

void VirtioDeviceQueue::TxBh(void* opaque) { static_cast<VirtioDeviceQueue*>(opaque)->DrainTx(); }
void VirtioDeviceQueue::RxFlushBh(void* opaque) { static_cast<VirtioDeviceQueue*>(opaque)->FlushQueuedPackets(); }

void VirtioDeviceQueue::RxDoneBh(void* opaque) {
  auto* self = static_cast<VirtioDeviceQueue*>(opaque);
  self->rx_done_scheduled_ = false;
  self->PublishAndSignal(VirtioRing::kRx);
}

void VirtioDeviceQueue::RequestRxDone() {
  if (rx_done_scheduled_ || !rx_done_bh_) return;
  rx_done_scheduled_ = true;
  AioContext::ScheduleBh(rx_done_bh_);
}

void VirtioDeviceQueue::PublishAndSignal(VirtioRing r) {
  DeviceRing& vq = ring(r).vq;
  if (!vq.Flush()) return;
  if (vq.NeedsNotify())
    Signal(r);
  else
    ++vc_.notifies_suppressed;  // the driver's used_event (or NO_INTERRUPT) waived it
}

void VirtioDeviceQueue::Signal(VirtioRing r) {
  Ring& g = ring(r);
  if (!g.call.valid()) return;
  ++vc_.notifies;
  WriteEvent(g.call.get());
}

void VirtioDeviceQueue::Fail(VirtioRing r, const std::string& reason) {
  if (broken_) return;
  broken_ = true;
  ++errors_;
  error_ = std::string(VirtioRingName(r)) + " ring: " + reason;
  for (Ring& g : rings_) g.kick.Unpoll();
  if (ring(r).err.valid()) WriteEvent(ring(r).err.get());
  GraphEvent ev{GraphEvent::Kind::kVringError, handle_, 0, {}, static_cast<int>(r), error_};
  ctx_->Emit(ev);
  // Frames waiting for us are dropped from now on (deadDevice); the flush also lets a
  // sender that waits for one of them go on. Not inline: we may be inside a flush.
  if (rx_flush_bh_) AioContext::ScheduleBh(rx_flush_bh_);
}

void VirtioDeviceQueue::OnQueuedSent() {
  tx_blocked_ = false;
  if (tx_bh_) AioContext::ScheduleBh(tx_bh_);
}

void VirtioDeviceQueue::DrainTx() {
  Ring& t = ring(VirtioRing::kTx);
  if (!started_ || broken_ || tx_blocked_ || !t.vq.started()) return;
  t.vq.DisableNotification();
  int packets = 0;
  size_t bytes = 0;
  const char* failure = nullptr;
  for (bool more = true; more;) {
    if (packets >= kTxBurstPackets || bytes >= kTxBurstBytes) {
      // Budget spent: yield to the other clients of this thread, continue right after.
      AioContext::ScheduleBh(tx_bh_);
      break;
    }
    // Pop a batch (within the budget), prefetching as we go, then send it.
    t.vq.PrefetchAvail(kTxBatch);
    int n = 0, at = 0;
    while (n < kTxBatch && packets < kTxBurstPackets && bytes < kTxBurstBytes && at <= kMaxChainIov) {
      DescChain& c = tx_batch_[n].chain;
      Virtqueue::PopResult pr = t.vq.Pop(tx_iov_ + at, kMaxChainIov, &c);
      if (pr == Virtqueue::PopResult::kEmpty) {
        if (n > 0) break;  // send these first; the next round looks again
        if (t.vq.EnableNotification()) {
          t.vq.DisableNotification();
          continue;
        }
        more = false;
        break;
      }
      if (pr == Virtqueue::PopResult::kError) {
        failure = VirtqErrorName(t.vq.error());
        more = false;
        break;
      }
      if (c.n_writable > 0) {
        t.vq.SetError(VirtqError::kWritableInTx);
        failure = VirtqErrorName(VirtqError::kWritableInTx);
        more = false;
        break;
      }
      for (int i = 0; i < c.n_readable; ++i) {
        const iovec& v = tx_iov_[at + i];
        __builtin_prefetch(v.iov_base);
        if (v.iov_len > 64) __builtin_prefetch(static_cast<const uint8_t*>(v.iov_base) + 64);
      }
      tx_batch_[n++].iov_at = at;
      at += c.n_readable;
      ++packets;
      bytes += c.readable_bytes;
    }
    for (int k = 0; k < n; ++k) {
      const TxSlot& slot = tx_batch_[k];
      bool queued = SendChain(slot.chain, tx_iov_ + slot.iov_at);
      t.vq.Push(slot.chain.head, 0);  // tx completions carry no written bytes
      if (queued) {
        // OnQueuedSent resumes us; the chains popped after this one go back to the ring.
        tx_blocked_ = true;
        t.vq.Unpop(static_cast<uint16_t>(n - k - 1));
        more = false;
        break;
      }
    }
  }
  if (failure) Fail(VirtioRing::kTx, failure);
  PublishAndSignal(VirtioRing::kTx);
}

bool VirtioDeviceQueue::SendChain(const DescChain& c, const iovec* iov) {
  const size_t hdr = static_cast<size_t>(hdr_len_);
  const uint64_t total = c.readable_bytes;
  if (total <= hdr) {
    // Only a header (or less): no packet (DPDK's rule since CVE-2022-2132).
    counters_.In(0);
    counters_.Drop(DropReason::kBadVnetHdr);
    return false;
  }
  if (total - hdr > kMaxFrameLen || total - hdr < kMinEthFrame) {
    counters_.In(0);
    counters_.Drop(DropReason::kOversize);
    return false;
  }
  // One copy out of guest memory: what we check is what we send (no double fetch).
  uint8_t* p = txbuf_.data();
  size_t off = 0;
  for (int i = 0; i < c.n_readable; ++i) {
    std::memcpy(p + off, iov[i].iov_base, iov[i].iov_len);
    off += iov[i].iov_len;
  }
  const size_t eth_len = total - hdr;
  VnetHdr h = ParseVnetHdr(p, hdr);
  if (ValidateVnetHdr(h, p + hdr, eth_len) != VnetError::kOk) {
    counters_.In(0);
    counters_.Drop(DropReason::kBadVnetHdr);
    return false;
  }
  if (hdr >= kVnetHdrLenMrg) p[10] = p[11] = 0;  // num_buffers means nothing on tx
  if (h.gso_type != kGsoNone) ++vc_.tx_gso;
  vc_.tx_max_frame = std::max<uint64_t>(vc_.tx_max_frame, eth_len);
  Frame f{p, static_cast<uint32_t>(total), static_cast<uint16_t>(hdr)};
  counters_.In(eth_len);
  counters_.DevRx(eth_len);
  return Send(f, /*with_callback=*/true) == SendResult::kQueued;
}

bool VirtioDeviceQueue::CanReceive() const {
  if (broken_) return true;  // Receive drops and counts
  DeviceRing& vq = rings_[0].vq;
  if (!vq.started()) return false;
  if (vq.Available() > 0 || vq.broken()) return true;  // a broken ring: Receive reports it
  return vq.EnableNotification();
}

RecvResult VirtioDeviceQueue::Receive(NetClient*, const Frame& f) {
  if (broken_) {
    counters_.Drop(DropReason::kDeadDevice);
    return RecvResult::kConsumed;
  }
  DeviceRing& vq = ring(VirtioRing::kRx).vq;
  if (!vq.started()) return RecvResult::kNotNow;
  const uint8_t* eth = f.eth();
  const size_t len = f.eth_len();
  VnetHdr h;
  if (!SenderHeaderOrDrop(f, &h)) return RecvResult::kError;
  RxResult res;
  if (NeedsSoftwareOffload(h) && !OffloadsTake(guest_offloads_, h, eth, len)) {
    if (ValidateVnetHdr(h, eth, len) != VnetError::kOk) {
      counters_.Drop(DropReason::kBadVnetHdr);
      return RecvResult::kError;
    }
    // Finish the offload here: every wire frame becomes its own rx packet. All or none: a
    // frame whose segments do not all fit now is rewound and waits.
    const DeviceRing::Mark mark = vq.GetMark();
    const uint64_t buffers0 = vc_.rx_buffers, merged0 = vc_.rx_merged;  // a rewind takes them back
    struct Sink {
      VirtioDeviceQueue* q;
      int segments;
      RxResult result;
    } sink{this, 0, RxResult::kOk};
    VnetError e = SegmentFrame(
        h, eth, len, ctx_->scratch.data(),
        [](void* opaque, const uint8_t* seg, size_t seg_len) {
          auto* s = static_cast<Sink*>(opaque);
          if (s->result != RxResult::kOk) return;
          s->result = s->q->WriteRx(VnetHdr{}, seg, seg_len);
          if (s->result == RxResult::kOk) ++s->segments;
        },
        &sink);
    res = sink.result;
    if (res == RxResult::kOk ? e != VnetError::kOk : res != RxResult::kBroken) {  // rewound below
      vc_.rx_buffers = buffers0;
      vc_.rx_merged = merged0;
    }
    if (e != VnetError::kOk && res == RxResult::kOk) {
      vq.Rewind(mark);
      counters_.Drop(DropReason::kBadVnetHdr);
      return RecvResult::kError;
    }
    if (res == RxResult::kOk) {
      counters_.segments.Add(sink.segments);
    } else if (res != RxResult::kBroken) {
      // Chains the earlier segments took plus the ones the failing segment tried: a whole
      // ring's worth means the frame can never fit.
      uint32_t popped = vq.ChainsSince(mark) + last_rx_chains_;
      vq.Rewind(mark);
      if (popped >= vq.size()) res = RxResult::kTooBig;
    }
  } else {
    VnetHdr g = h;
    if (!(guest_offloads_ & kOffloadCsum)) g.flags &= static_cast<uint8_t>(~kVnetFlagDataValid);
    g.flags &= static_cast<uint8_t>(~kVnetFlagRscInfo);
    res = WriteRx(g, eth, len);
  }
  switch (res) {
    case RxResult::kOk:
      vc_.rx_max_frame = std::max<uint64_t>(vc_.rx_max_frame, len);
      counters_.Out(len);
      counters_.DevTx(len);
      RequestRxDone();
      return RecvResult::kConsumed;
    case RxResult::kNoBuffers:
      return NoRoom();
    case RxResult::kTooBig:
      counters_.Drop(DropReason::kOversize);
      return RecvResult::kError;
    case RxResult::kBroken:
      counters_.Drop(DropReason::kDeadDevice);
      return RecvResult::kConsumed;
  }
  return RecvResult::kError;
}

RecvResult VirtioDeviceQueue::NoRoom() {
  DeviceRing& vq = ring(VirtioRing::kRx).vq;
  // The guest can only refill with what it gets back: publish completions now.
  PublishAndSignal(VirtioRing::kRx);
  // Ask for a kick on new buffers; some may have come meanwhile: then retry soon ourselves.
  if (vq.EnableNotification() && rx_flush_bh_) AioContext::ScheduleBh(rx_flush_bh_);
  return RecvResult::kNotNow;
}

VirtioDeviceQueue::RxResult VirtioDeviceQueue::WriteRx(const VnetHdr& h, const uint8_t* frame, size_t len) {
  DeviceRing& vq = ring(VirtioRing::kRx).vq;
  const size_t hdr = static_cast<size_t>(hdr_len_);
  const uint64_t total = hdr + len;
  const DeviceRing::Mark mark = vq.GetMark();
  iovec hdr_dst[kMaxVnetHdrLen];  // where the header goes (it may span buffers: ANY_LAYOUT)
  int n_hdr_dst = 0;
  size_t chains = 0;
  uint64_t done = 0;  // bytes of [header | frame] placed
  while (done < total) {
    DescChain c;
    Virtqueue::PopResult pr = chains < rx_used_.size() ? vq.Pop(iov_, kMaxChainIov, &c) : Virtqueue::PopResult::kEmpty;
    if (pr == Virtqueue::PopResult::kEmpty) {
      vq.Rewind(mark);
      last_rx_chains_ = static_cast<uint32_t>(chains);
      // Every buffer the ring can hold at once was not enough: waiting cannot help.
      return chains >= vq.size() ? RxResult::kTooBig : RxResult::kNoBuffers;
    }
    if (pr == Virtqueue::PopResult::kError) {
      Fail(VirtioRing::kRx, VirtqErrorName(vq.error()));
      return RxResult::kBroken;
    }
    if (c.n_readable > 0) {
      vq.SetError(VirtqError::kReadableInRx);
      Fail(VirtioRing::kRx, VirtqErrorName(VirtqError::kReadableInRx));
      return RxResult::kBroken;
    }
    int i = 0;
    size_t off = 0;
    uint64_t written = 0;
    if (chains == 0) {
      if (c.writable_bytes < hdr) {
        vq.SetError(VirtqError::kRxBufferTooSmall);
        Fail(VirtioRing::kRx, VirtqErrorName(VirtqError::kRxBufferTooSmall));
        return RxResult::kBroken;
      }
      for (size_t got = 0; got < hdr;) {
        size_t take = std::min(hdr - got, iov_[i].iov_len - off);
        hdr_dst[n_hdr_dst++] = {static_cast<uint8_t*>(iov_[i].iov_base) + off, take};
        got += take;
        off += take;
        if (off == iov_[i].iov_len) {
          ++i;
          off = 0;
        }
      }
      written = done = hdr;
    }
    const int end = c.n_writable;
    while (done < total && i < end) {
      size_t take = static_cast<size_t>(std::min<uint64_t>(iov_[i].iov_len - off, total - done));
      std::memcpy(static_cast<uint8_t*>(iov_[i].iov_base) + off, frame + (done - hdr), take);
      done += take;
      written += take;
      off += take;
      if (off == iov_[i].iov_len) {
        ++i;
        off = 0;
      }
    }
    rx_used_[chains++] = {c.head, static_cast<uint32_t>(written)};
    if (!mrg_rxbuf_ && done < total) {
      // Without mergeable buffers a packet must fit one chain; keep the chain for the next.
      vq.Rewind(mark);
      return RxResult::kTooBig;
    }
  }
  VnetHdr g = h;
  g.num_buffers = static_cast<uint16_t>(mrg_rxbuf_ ? chains : 1);
  uint8_t hb[kMaxVnetHdrLen];
  WriteVnetHdr(g, hb, hdr);
  size_t at = 0;
  for (int k = 0; k < n_hdr_dst; ++k) {
    std::memcpy(hdr_dst[k].iov_base, hb + at, hdr_dst[k].iov_len);
    at += hdr_dst[k].iov_len;
  }
  for (size_t k = 0; k < chains; ++k) vq.Push(static_cast<uint16_t>(rx_used_[k].id), rx_used_[k].len);
  vc_.rx_buffers += chains;
  if (chains > 1) ++vc_.rx_merged;
  if (g.gso_type != kGsoNone) ++vc_.rx_gso;
  return RxResult::kOk;
}

void VirtioDeviceQueue::Describe(ClientInfo& info) const {
  info.broken = broken_;
  info.errors = errors_;
  info.error = error_;
  info.features = features_;
  vc_.Describe(info);
  info.rx_started = rings_[0].vq.started();
  info.tx_started = rings_[1].vq.started();
}

}  // namespace netplane::core
