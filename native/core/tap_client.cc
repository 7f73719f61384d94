#include "tap_client.h"

#include <fcntl.h>
#include <poll.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

namespace netplane::core {

namespace {
// The data path's read/write/writev as bare system calls: libc's wrappers are pthread
// cancellation points and pay two atomic updates per call for it, which shows in a profile
// at millions of frames per second. Same results: -1 with errno set on failure.
ssize_t RawRead(int fd, void* buf, size_t len) { return ::syscall(SYS_read, fd, buf, len); }
ssize_t RawWrite(int fd, const void* buf, size_t len) { return ::syscall(SYS_write, fd, buf, len); }
ssize_t RawWritev(int fd, const iovec* iov, int cnt) { return ::syscall(SYS_writev, fd, iov, cnt); }

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
  use_batch_ = ctx_->Batch() != nullptr;
  if (use_batch_) {
    if (!rbufs_) rbufs_.reset(new uint8_t[kSlotSize * kReadBudget]);
    // Staged writes keep frame order only if a write never says EAGAIN: true with the
    // INT_MAX send buffer (QEMU's default, ours too); otherwise write directly.
    int sndbuf = 0;
    stage_ok_ = ::ioctl(fd_, TUNGETSNDBUF, &sndbuf) == 0 && sndbuf == INT_MAX;
  }
  started_ = true;
  Status s = UpdatePolling();
  if (!s.ok()) started_ = false;
  return s;
}

void TapClient::Stop() {
  RemoveHandler();
  started_ = false;
}

void TapClient::RemoveHandler() {
  if (installed_) ctx_->aio->RemoveFdHandler(fd_);
  installed_ = false;
}

Status TapClient::UpdatePolling() {
  if (!started_ || !enabled_ || dead_) return Status::Ok();
  // The handler is installed once (both directions, as the context's defaults); afterwards
  // only a change of direction reaches epoll_ctl.
  if (!installed_) {
    Status s = ctx_->aio->SetFdHandler(fd_, OnReadable, OnWritable, nullptr, nullptr, this);
    if (!s.ok()) return s;
    installed_ = true;
    polled_read_ = polled_write_ = true;
  }
  if (read_poll_ == polled_read_ && write_poll_ == polled_write_) return Status::Ok();
  Status s = ctx_->aio->SetFdPolling(fd_, read_poll_, write_poll_);
  if (s.ok()) {
    polled_read_ = read_poll_;
    polled_write_ = write_poll_;
  }
  return s;
}

void TapClient::SetEnabled(bool enabled) {
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
  if (BatchIo* b = ActiveBatch()) {
    ReadBatchBatched(b);
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

// One io_uring_enter reads up to read_ahead_ frames; the writes they cause are staged and
// go out together in a second one. read_ahead_ adapts: doubled while every read finds a
// frame, back to what the last round found (+1) when the TAP ran dry, so an idle link does
// not pay for many empty reads.
void TapClient::ReadBatchBatched(BatchIo* b) {
  const size_t cap = static_cast<size_t>(hdr_len_) + kNetBufSize;
  uint8_t* bufs[kReadBudget];
  int32_t res[kReadBudget];
  for (int total = 0; total < kReadBudget;) {
    const int n = std::min(read_ahead_, kReadBudget - total);
    for (int i = 0; i < n; ++i) bufs[i] = rbufs_.get() + static_cast<size_t>(i) * kSlotSize;
    if (b->ReadMany(fd_, bufs, cap, n, res) != 0) return;  // the ring failed: plain I/O next time
    int got = 0, fatal = 0;
    bool queued = false;
    b->OpenWindow();
    for (int i = 0; i < n; ++i) {
      const int32_t r = res[i];
      if (r == -EAGAIN || r == -EWOULDBLOCK || r == -EINTR || r == 0) continue;
      if (r < 0) {
        fatal = -r;
        break;
      }
      ++got;
      // After one frame waits in the peer's queue, the rest of the round (already read)
      // queue behind it, in order.
      if (DeliverRead(bufs[i], static_cast<size_t>(r))) queued = true;
    }
    b->CloseWindow();
    b->Flush();
    total += got;
    if (fatal != 0) {
      Die(fatal, "read");
      return;
    }
    if (queued) {
      read_poll_ = false;
      UpdatePolling();
      return;
    }
    if (dead_ || !started_ || !enabled_ || !read_poll_) return;
    if (got < n) {
      read_ahead_ = std::max(2, got + 1);
      if (total == 0) CheckFdError();
      return;
    }
    read_ahead_ = std::min(read_ahead_ * 2, static_cast<int>(kReadBudget));
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

void TapClient::OnSentFrameQueuedLate() {
  if (!read_poll_) return;
  read_poll_ = false;
  UpdatePolling();
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

RecvResult TapClient::Receive(NetClient* sender, const Frame& f) {
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
  if (BatchIo* b = ActiveBatch()) {
    if (d.kind == DeviceFrame::Kind::kIov && StageWrite(b, sender, f, d, hdr_scratch)) return RecvResult::kConsumed;
    b->Flush();  // a direct write must not overtake staged ones
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
      ssize_t n = d.iovcnt == 1 ? RawWrite(fd_, d.iov[0].iov_base, d.iov[0].iov_len)
                                : RawWritev(fd_, d.iov, d.iovcnt);
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

namespace netplane::core {

bool TapClient::StageWrite(BatchIo* b, NetClient* sender, const Frame& f, const DeviceFrame& d,
                           const uint8_t* hdr_scratch) {
  if (!stage_ok_ || !b->accepting()) return false;
  BatchIo::Staged* w = b->StageWrite();
  if (!w) {
    b->Flush();
    w = b->StageWrite();
    if (!w) return false;
  }
  w->fd = fd_;
  w->iovcnt = d.iovcnt;
  for (int i = 0; i < d.iovcnt; ++i) w->iov[i] = d.iov[i];
  if (d.iovcnt > 0 && w->iov[0].iov_base == hdr_scratch) {
    // The converted header lives on our caller's stack: keep a copy with the write.
    std::memcpy(w->hdr, hdr_scratch, w->iov[0].iov_len);
    w->iov[0].iov_base = w->hdr;
  }
  w->done = OnStagedWriteDone;
  w->owner = this;
  w->sender = sender;
  w->frame = f.data;
  w->frame_len = f.len;
  w->frame_hdr_len = f.hdr_len;
  w->eth_len = static_cast<uint32_t>(d.eth_len);
  return true;
}

void TapClient::OnStagedWriteDone(BatchIo::Staged& w, int res) {
  static_cast<TapClient*>(w.owner)->FinishStagedWrite(w, res);
}

// The staged write was counted in when we accepted it; now it leaves: out, dropped, or (the
// kernel said "not now") through the synchronous path, which may queue it.
void TapClient::FinishStagedWrite(const BatchIo::Staged& w, int res) {
  if (res >= 0) {
    counters_.Out(w.eth_len);
    counters_.DevTx(w.eth_len);
    return;
  }
  if (dead_ || !enabled_) {
    counters_.Drop(DropReason::kDeadDevice);
    return;
  }
  const int err = -res;
  if (err != EAGAIN && err != EWOULDBLOCK) {
    WriteFailed(err, w.iovcnt == 1 ? "write" : "writev");
    return;
  }
  // Rare (staging needs sndbuf INT_MAX, where a TAP write does not say EAGAIN).
  auto* sender = static_cast<NetClient*>(w.sender);
  Frame f{w.frame, w.frame_len, w.frame_hdr_len};
  if (incoming_.empty() && !receive_disabled_) {
    RecvResult r = Receive(sender, f);  // not staged again: the batch is flushing
    if (r != RecvResult::kNotNow) return;
    receive_disabled_ = true;
  }
  const bool callback = sender && sender->kind() != ClientKind::kHubPort;
  if (incoming_.Append(sender, f, callback, /*count_in=*/false) == NetQueue::AppendResult::kQueued && callback)
    sender->OnSentFrameQueuedLate();
}

}  // namespace netplane::core
