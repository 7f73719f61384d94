#include "tap_client.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace netplane::core {

namespace {
constexpr unsigned long kTunSetOffload = 0x400454d0;
constexpr unsigned kTunFCsum = 0x01, kTunFTso4 = 0x02, kTunFTso6 = 0x04, kTunFTsoEcn = 0x08,
                   kTunFUfo = 0x10, kTunFUso4 = 0x20, kTunFUso6 = 0x40;

int SetOffloadIoctl(int fd, unsigned flags) {
  for (;;) {
    if (::ioctl(fd, kTunSetOffload, static_cast<unsigned long>(flags)) == 0) return 0;
    if (errno != EINTR) return errno;
  }
}

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
    if (::write(w->fd, frame, len) >= 0) {
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
  UpdatePolling();
  return Status::Ok();
}

void TapClient::Stop() {
  if (started_ && enabled_ && !dead_) ctx_->aio->RemoveFdHandler(fd_);
  started_ = false;
}

void TapClient::UpdatePolling() {
  if (!started_ || !enabled_ || dead_) return;
  // SetFdHandler is idempotent for the same callbacks; the polling flags select directions.
  ctx_->aio->SetFdHandler(fd_, OnReadable, OnWritable, nullptr, nullptr, this);
  ctx_->aio->SetFdPolling(fd_, read_poll_, write_poll_);
}

void TapClient::SetEnabled(bool enabled) {
  if (enabled == enabled_) return;
  if (!enabled) {
    // Remove the handler entirely: a detached queue reports POLLERR, which would spin.
    if (started_ && !dead_) ctx_->aio->RemoveFdHandler(fd_);
    enabled_ = false;
    write_poll_ = false;
    FlushQueuedPackets();  // what waits here is dropped (Receive refuses while detached)
    return;
  }
  enabled_ = true;
  read_poll_ = true;
  UpdatePolling();
}

Result<unsigned> TapClient::SetOffloads(bool on) {
  unsigned flags = 0;
  int err = 0;
  if (on) {
    const unsigned base = kTunFCsum | kTunFTso4 | kTunFTso6 | kTunFTsoEcn;
    // Newest first, falling back like QEMU: without USO, then without UFO.
    for (unsigned extra : {kTunFUfo | kTunFUso4 | kTunFUso6, kTunFUfo, 0u}) {
      flags = base | extra;
      err = SetOffloadIoctl(fd_, flags);
      if (err != EINVAL) break;
    }
  } else {
    err = SetOffloadIoctl(fd_, 0);
  }
  if (err != 0)
    return Result<unsigned>::Fail(Status::Errno(err, "ioctl(TUNSETOFFLOAD)",
                                                "TUNSETOFFLOAD ioctl() failed: " + std::string(std::strerror(err))));
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
  const size_t hdr = static_cast<size_t>(hdr_len_);
  const size_t cap = hdr + kNetBufSize;
  uint8_t* buf = rbuf_.get();
  for (int got = 0; got < kReadBudget;) {
    ssize_t n = ::read(fd_, buf, cap);
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
    size_t len = static_cast<size_t>(n);
    if (len <= hdr) {
      counters_.In(0);
      counters_.Drop(DropReason::kBadVnetHdr);
      continue;
    }
    counters_.DevRx(len - hdr);
    if (len - hdr < kPadFrameLen && !(peer_ && peer_->DoNotPad())) {
      std::memset(buf + len, 0, hdr + kPadFrameLen - len);
      len = hdr + kPadFrameLen;
    }
    Frame f{buf, static_cast<uint32_t>(len), static_cast<uint16_t>(hdr)};
    counters_.In(f.eth_len());
    if (Send(f, /*with_callback=*/true) == SendResult::kQueued) {
      // The peer holds our frame: stop reading until it leaves the queue.
      read_poll_ = false;
      UpdatePolling();
      return;
    }
    if (dead_ || !started_ || !enabled_) return;
  }
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
  if (started_ && enabled_) ctx_->aio->RemoveFdHandler(fd_);
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
  if (f.eth_len() > kNetBufSize) {
    counters_.Drop(DropReason::kOversize);
    return RecvResult::kError;
  }
  uint8_t hdr_scratch[kMaxVnetHdrLen];
  DeviceFrame d = ShapeForDevice(f, hdr_len_, hdr_scratch);
  if (d.kind == DeviceFrame::Kind::kBad) {
    counters_.Drop(DropReason::kBadVnetHdr);
    return RecvResult::kError;
  }
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
      ssize_t n = d.iovcnt == 1 ? ::write(fd_, d.iov[0].iov_base, d.iov[0].iov_len)
                                : ::writev(fd_, d.iov, d.iovcnt);
      if (n >= 0) {
        counters_.Out(d.eth_len);
        counters_.DevTx(d.eth_len);
        return RecvResult::kConsumed;
      }
      if (errno != EINTR) break;
    }
    err = errno;
  }
  if (err == EAGAIN || err == EWOULDBLOCK) {
    counters_.eagain.Add();
    write_poll_ = true;
    UpdatePolling();
    return RecvResult::kNotNow;
  }
  if (err == EBADFD || err == ENODEV) {
    counters_.Drop(DropReason::kDeadDevice);
    Die(err, d.iovcnt == 1 ? "write" : "writev");
    return RecvResult::kConsumed;
  }
  counters_.Drop(DropReason::kWriteError);
  return RecvResult::kError;
}

}  // namespace netplane::core
