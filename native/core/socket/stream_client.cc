#include "socket/stream_client.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "vnet/segment.h"

namespace netplane::core {

namespace {
void PutBe32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

// Software segmentation: every wire frame, length-prefixed, appended to the pending bytes.
void AppendSegment(void* opaque, const uint8_t* frame, size_t len) {
  auto* out = static_cast<std::vector<uint8_t>*>(opaque);
  uint8_t pre[StreamClient::kLenPrefix];
  PutBe32(pre, static_cast<uint32_t>(len));
  out->insert(out->end(), pre, pre + sizeof pre);
  out->insert(out->end(), frame, frame + len);
}
}  // namespace

StreamClient::StreamClient(uint32_t handle, std::string name, NetContext* ctx)
    : SocketClient(ClientKind::kStream, handle, std::move(name), ctx),
      rbuf_(new uint8_t[kReadBufSize]),
      fbuf_(new uint8_t[kNetBufSize]) {}

StreamClient::~StreamClient() { DeleteContinueBh(); }

Status StreamClient::Start() {
  Status s = SocketClient::Start();
  if (s.ok() && yielded_) Yield();  // stopped with frames left in the buffer
  return s;
}

void StreamClient::Stop() {
  SocketClient::Stop();
  DeleteContinueBh();
}

void StreamClient::DeleteContinueBh() {
  if (!continue_bh_) return;
  AioContext::DeleteBh(continue_bh_);
  continue_bh_ = nullptr;
}

void StreamClient::ResetState() {
  rpos_ = rend_ = 0;
  hdr_got_ = flen_ = fgot_ = 0;
  pending_.clear();
  pending_off_ = 0;
  yielded_ = false;
}

void StreamClient::ResumeHeld() {
  if (rpos_ < rend_)
    Yield();
  else
    yielded_ = false;
}

void StreamClient::Yield() {
  yielded_ = true;
  UpdatePolling();
  if (!started_) return;  // Start resumes (maybe on another context: no bottom half yet)
  if (!continue_bh_) continue_bh_ = ctx_->aio->NewBh(OnContinue, this, "stream-continue");
  AioContext::ScheduleBh(continue_bh_);
}

void StreamClient::OnContinue(void* opaque) { static_cast<StreamClient*>(opaque)->Continue(); }

void StreamClient::Continue() {
  // Held (the peer's queue has our frame: OnQueuedSent resumes us), closed or stopped.
  if (!yielded_ || !read_poll_ || fd_ < 0 || !started_) return;
  // A wake-up of its own: the buffered frames, then the socket, within a fresh budget. Read
  // polling comes back only when this pass does not yield again (no epoll_ctl per budget).
  yielded_ = false;
  ReadBatch();
  UpdatePolling();
}

void StreamClient::ReadBatch() {
  int budget = kReadBudget;  // frames handed on per wake-up, as a TAP's
  if (!Parse(&budget)) return;
  for (int i = 0; i < kReadBudget && budget > 0; ++i) {
    ssize_t n = ::recv(fd_, rbuf_.get(), kReadBufSize, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      Closed(errno, "read");
      return;
    }
    if (n == 0) {
      Closed(0, "read");
      return;
    }
    rpos_ = 0;
    rend_ = static_cast<size_t>(n);
    if (!Parse(&budget)) return;
    if (fd_ < 0 || !started_) return;
    if (static_cast<size_t>(n) < kReadBufSize) return;  // drained; level-triggered wakes us again
  }
}

bool StreamClient::Parse(int* budget) {
  while (rpos_ < rend_) {
    if (*budget <= 0) {
      Yield();
      return false;
    }
    if (hdr_got_ < kLenPrefix) {
      size_t take = std::min(kLenPrefix - hdr_got_, rend_ - rpos_);
      std::memcpy(hdr_ + hdr_got_, rbuf_.get() + rpos_, take);
      hdr_got_ += take;
      rpos_ += take;
      if (hdr_got_ < kLenPrefix) return true;
      flen_ = (size_t{hdr_[0]} << 24) | (size_t{hdr_[1]} << 16) | (size_t{hdr_[2]} << 8) | size_t{hdr_[3]};
      fgot_ = 0;
      if (flen_ > kNetBufSize) {
        // The stream lost its framing (or the peer is hostile): nothing after this can be
        // trusted. QEMU closes the connection as well.
        counters_.In(0);
        counters_.Drop(DropReason::kOversize);
        Closed(EMSGSIZE, "read");
        return false;
      }
      if (flen_ == 0) {
        counters_.In(0);
        counters_.Drop(DropReason::kBadVnetHdr);  // an empty frame: shorter than any header
        hdr_got_ = 0;
        --*budget;
        continue;
      }
    }
    const uint8_t* data;
    size_t avail = rend_ - rpos_;
    if (fgot_ == 0 && avail >= flen_) {
      data = rbuf_.get() + rpos_;  // whole in this read: no copy (a queued frame is copied)
      rpos_ += flen_;
    } else {
      size_t take = std::min(flen_ - fgot_, avail);
      std::memcpy(fbuf_.get() + fgot_, rbuf_.get() + rpos_, take);
      fgot_ += take;
      rpos_ += take;
      if (fgot_ < flen_) return true;
      data = fbuf_.get();
    }
    hdr_got_ = 0;
    --*budget;
    if (DeliverRead(data, flen_)) {
      PauseRead();
      return false;
    }
    if (fd_ < 0 || !started_) return false;
  }
  return true;
}

bool StreamClient::SendAll(const iovec* iov, int cnt, size_t total) {
  msghdr m{};
  m.msg_iov = const_cast<iovec*>(iov);
  m.msg_iovlen = static_cast<size_t>(cnt);
  ssize_t n;
  do {
    n = ::sendmsg(fd_, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return false;
  if (static_cast<size_t>(n) < total) {
    // Keep the unwritten tail; the frame has left as far as the graph is concerned.
    size_t skip = static_cast<size_t>(n);
    for (int i = 0; i < cnt; ++i) {
      const auto* b = static_cast<const uint8_t*>(iov[i].iov_base);
      size_t l = iov[i].iov_len;
      if (skip >= l) {
        skip -= l;
        continue;
      }
      pending_.insert(pending_.end(), b + skip, b + l);
      skip = 0;
    }
    pending_off_ = 0;
    WantWrite();
  }
  return true;
}

RecvResult StreamClient::Receive(NetClient*, const Frame& f) {
  if (fd_ < 0) return DropClosed();
  if (pending_off_ < pending_.size()) return RecvResult::kNotNow;  // polling for room already
  uint8_t hdr_scratch[kMaxVnetHdrLen];
  DeviceFrame d;
  if (!ShapeOrDrop(f, kNetBufSize, hdr_scratch, &d)) return RecvResult::kError;
  if (d.kind == DeviceFrame::Kind::kSoftware) {
    pending_.clear();
    VnetError e = SegmentFrame(d.hdr, f.eth(), f.eth_len(), ctx_->scratch.data(), AppendSegment, &pending_);
    if (e != VnetError::kOk) {
      pending_.clear();
      counters_.Drop(DropReason::kBadVnetHdr);
      return RecvResult::kError;
    }
    pending_off_ = 0;
    counters_.Out(d.eth_len);
    counters_.DevTx(d.eth_len);
    if (FlushPending()) return RecvResult::kConsumed;
    if (fd_ < 0) return RecvResult::kConsumed;  // closed while writing: counted out already
    WantWrite();
    return RecvResult::kConsumed;
  }
  uint8_t pre[kLenPrefix];
  PutBe32(pre, static_cast<uint32_t>(d.eth_len));
  iovec iov[3];
  iov[0] = {pre, sizeof pre};
  for (int i = 0; i < d.iovcnt; ++i) iov[i + 1] = d.iov[i];
  if (SendAll(iov, d.iovcnt + 1, sizeof pre + d.eth_len)) {
    counters_.Out(d.eth_len);
    counters_.DevTx(d.eth_len);
    return RecvResult::kConsumed;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
    WantWrite();
    return RecvResult::kNotNow;
  }
  Closed(errno, "sendmsg");
  return DropClosed();
}

bool StreamClient::FlushPending() {
  while (pending_off_ < pending_.size()) {
    if (fd_ < 0) return false;
    ssize_t n =
        ::send(fd_, pending_.data() + pending_off_, pending_.size() - pending_off_, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return false;
      Closed(errno, "send");
      return false;
    }
    pending_off_ += static_cast<size_t>(n);
  }
  pending_.clear();
  pending_off_ = 0;
  return true;
}

}  // namespace netplane::core
