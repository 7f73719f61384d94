#include "tap/tap_client.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "tap/tun_ioctl.h"
#include "vnet/segment.h"

namespace netplane::core {

namespace {
// The data path's read/write/writev as bare system calls: libc's wrappers are pthread
// cancellation points and pay two atomic updates per call for it, which shows in a profile
// at millions of frames per second. Same results: -1 with errno set on failure.
ssize_t RawRead(int fd, void* buf, size_t len) { return ::syscall(SYS_read, fd, buf, len); }
ssize_t RawWrite(int fd, const void* buf, size_t len) { return ::syscall(SYS_write, fd, buf, len); }
ssize_t RawWritev(int fd, const iovec* iov, int cnt) { return ::syscall(SYS_writev, fd, iov, cnt); }

// Software segmentation writes each wire frame; the first failure stops further writes.
struct SegmentWriter {
  int fd;
  int written = 0;
  int failed = 0;
  int err = 0;
};
void WriteSegment(void* opaque, const uint8_t* frame, size_t len) {
  auto* w = static_cast<SegmentWriter*>(opaque);
  if (w->err != 0) {
    ++w->failed;
    return;
  }
  for (;;) {
    if (RawWrite(w->fd, frame, len) >= 0) {
      ++w->written;
      return;
    }
    if (errno == EINTR) continue;
    w->err = errno;
    ++w->failed;
    return;
  }
}
}  // namespace

TapClient::TapClient(uint32_t handle, std::string name, NetContext* ctx, int fd, int vnet_hdr_len)
    : NetClient(ClientKind::kTap, handle, std::move(name), ctx),
      fd_(fd),
      hdr_len_(vnet_hdr_len),
      rbuf_(new uint8_t[kMaxVnetHdrLen + kNetBufSize + kPadFrameLen]) {}

TapClient::~TapClient() = default;

Status TapClient::Start() {
  int fl = ::fcntl(fd_, F_GETFL);
  if (fl < 0) return Status::Errno(errno, "fcntl(F_GETFL)", "tap fd " + std::to_string(fd_) + " is not open");
  if (!(fl & O_NONBLOCK) && ::fcntl(fd_, F_SETFL, fl | O_NONBLOCK) < 0)
    return Status::Errno(errno, "fcntl(F_SETFL)", "cannot make tap fd non-blocking");
  started_ = true;
  Status s = UpdatePolling();
  if (!s.ok()) started_ = false;
  return s;
}

void TapClient::Stop() {
  RemoveHandler();
  started_ = false;
}

void TapClient::RemoveHandler() { watch_.Remove(ctx_->aio, fd_); }

Status TapClient::UpdatePolling() {
  if (!started_ || !enabled_ || dead_) return Status::Ok();
  return watch_.Poll(ctx_->aio, fd_, OnReadable, OnWritable, this, read_poll_, write_poll_);
}

void TapClient::SetQueueEnabled(bool enabled) {
  if (enabled == enabled_) return;
  if (!enabled) {
    // Remove the handler entirely: a detached queue reports POLLERR, which would spin.
    RemoveHandler();
    enabled_ = false;
    write_poll_ = false;
    FlushQueuedPackets();  // what waits here is dropped (Receive refuses while detached)
    return;
  }
  enabled_ = true;
  read_poll_ = true;
  UpdatePolling();
}

Status TapClient::SetVnetHdrLen(int len) {
  hdr_len_ = len;
  return Status::Ok();
}

void TapClient::RecomputeOffloads(bool auto_on) {
  if (hdr_len_ == 0 || dead_) return;
  if (peer_ && peer_->OwnsPeerOffloads()) {
    offloads_external_ = true;
    return;
  }
  unsigned want = auto_on && peer_ ? peer_->AcceptedOffloads() & kOffloadAll : 0;
  if (offloads_external_ || want != requested_offloads_) SetOffloads(want);
  offloads_external_ = false;
}

void TapClient::Describe(ClientInfo& info) const {
  info.enabled = enabled_;
  info.offloads = offloads_;
}

Result<unsigned> TapClient::SetOffloads(unsigned mask) {
  using namespace tun;  // NOLINT: the tun ABI names
  static_assert(kOffloadCsum == kTunFCsum && kOffloadTso4 == kTunFTso4 && kOffloadTso6 == kTunFTso6 &&
                    kOffloadTsoEcn == kTunFTsoEcn && kOffloadUfo == kTunFUfo && kOffloadUso4 == kTunFUso4 &&
                    kOffloadUso6 == kTunFUso6,
                "kOffload* are the TUN_F_* values");
  // The kernel ignores TSO/UFO/USO without CSUM: ask for none of them then.
  if (!(mask & kOffloadCsum)) mask = 0;
  requested_offloads_ = mask;
  unsigned flags = 0;
  int err = mask ? SetOffload(fd_, mask, &flags) : IoctlValue(fd_, kTunSetOffload, 0);
  if (err != 0)
    return Result<unsigned>::Fail(
        Status::Errno(err, "ioctl(TUNSETOFFLOAD)", "TUNSETOFFLOAD ioctl() failed: " + std::string(std::strerror(err))));
  offloads_ = flags;
  return Result<unsigned>::Of(flags);
}

void TapClient::OnReadable(void* opaque) { static_cast<TapClient*>(opaque)->ReadBatch(); }

void TapClient::OnWritable(void* opaque) {
  auto* self = static_cast<TapClient*>(opaque);
  self->write_poll_ = false;
  self->UpdatePolling();
  self->FlushQueuedPackets();
}

bool TapClient::CheckFdError() {
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLERR | POLLHUP | POLLNVAL))) {
    Die(EBADFD, "poll");
    return true;
  }
  return false;
}

void TapClient::ReadBatch() {
  counters_.wakeups.Add();
  if (!read_poll_) {
    // Only an error condition wakes us while reading is paused.
    CheckFdError();
    return;
  }
  const size_t cap = static_cast<size_t>(hdr_len_) + kNetBufSize;
  uint8_t* buf = rbuf_.get();
  for (int got = 0; got < kReadBudget;) {
    ssize_t n = RawRead(fd_, buf, cap);
    if (n < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) {
        if (got == 0) CheckFdError();
        return;
      }
      Die(err, "read");
      return;
    }
    if (n == 0) {
      if (got == 0) CheckFdError();
      return;
    }
    ++got;
    if (DeliverRead(buf, static_cast<size_t>(n))) {
      // The peer holds our frame: stop reading until it leaves the queue.
      read_poll_ = false;
      UpdatePolling();
      return;
    }
    if (dead_ || !started_ || !enabled_) return;
  }
}

bool TapClient::DeliverRead(uint8_t* buf, size_t len) {
  const size_t hdr = static_cast<size_t>(hdr_len_);
  if (len <= hdr) {
    counters_.In(0);
    counters_.Drop(DropReason::kBadVnetHdr);
    return false;
  }
  counters_.DevRx(len - hdr);
  if (len - hdr < kPadFrameLen && !(peer_ && peer_->DoNotPad())) {
    std::memset(buf + len, 0, hdr + kPadFrameLen - len);
    len = hdr + kPadFrameLen;
  }
  Frame f{buf, static_cast<uint32_t>(len), static_cast<uint16_t>(hdr)};
  counters_.In(f.eth_len());
  return Send(f, /*with_callback=*/true) == SendResult::kQueued;
}

void TapClient::OnQueuedSent() {
  if (read_poll_) return;
  read_poll_ = true;
  UpdatePolling();
}

void TapClient::SetLinkDown(bool down) { link_down_ = down || dead_; }

void TapClient::Die(int err, const char* syscall) {
  if (dead_) return;
  dead_ = true;
  link_down_ = true;
  RemoveHandler();
  // Whatever waits here is drained as deadDevice drops (callbacks run, so senders resume
  // and their later frames are dropped and counted too). If a flush is already running it
  // sees link_down and drains the rest itself.
  receive_disabled_ = false;
  incoming_.Flush();
  GraphEvent ev{GraphEvent::Kind::kTapDead, handle_, err, syscall};
  ctx_->Emit(ev);
}

RecvResult TapClient::Receive(NetClient*, const Frame& f) {
  if (!enabled_) {
    counters_.Drop(DropReason::kDeadDevice);
    return RecvResult::kConsumed;
  }
  uint8_t hdr_scratch[kMaxVnetHdrLen];
  DeviceFrame d;
  if (!ShapeOrDrop(f, kNetBufSize, hdr_scratch, &d)) return RecvResult::kError;
  int err = 0;
  if (d.kind == DeviceFrame::Kind::kSoftware) {
    SegmentWriter w{fd_};
    VnetError e = SegmentFrame(d.hdr, f.eth(), f.eth_len(), ctx_->scratch.data(), WriteSegment, &w);
    if (e != VnetError::kOk) {
      counters_.Drop(DropReason::kBadVnetHdr);
      return RecvResult::kError;
    }
    if (w.written > 0) {
      counters_.Out(d.eth_len);
      counters_.DevTx(d.eth_len);
      counters_.segments.Add(w.written);
      return RecvResult::kConsumed;
    }
    err = w.err;
  } else {
    for (;;) {
      ssize_t n = d.iovcnt == 1 ? RawWrite(fd_, d.iov[0].iov_base, d.iov[0].iov_len) : RawWritev(fd_, d.iov, d.iovcnt);
      if (n >= 0) {
        counters_.Out(d.eth_len);
        counters_.DevTx(d.eth_len);
        return RecvResult::kConsumed;
      }
      if (errno != EINTR) break;
    }
    err = errno;
  }
  return WriteFailed(err, d.iovcnt == 1 ? "write" : "writev");
}

RecvResult TapClient::WriteFailed(int err, const char* syscall) {
  if (err == EAGAIN || err == EWOULDBLOCK) {
    counters_.eagain.Add();
    write_poll_ = true;
    UpdatePolling();
    return RecvResult::kNotNow;
  }
  if (err == EBADFD || err == ENODEV) {
    counters_.Drop(DropReason::kDeadDevice);
    Die(err, syscall);
    return RecvResult::kConsumed;
  }
  counters_.Drop(DropReason::kWriteError);
  return RecvResult::kError;
}

}  // namespace netplane::core
