#include "tap/tap_client.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
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

namespace {
// Room for the largest read (a 64 KiB GSO frame after the largest vnet header) plus padding.
constexpr size_t kReadBufLen = kMaxVnetHdrLen + kNetBufSize + kPadFrameLen;
// A completion's tag: the slot, with this bit for a write.
constexpr uint64_t kWriteTag = uint64_t{1} << 32;
// io_uring read nothing this often in a row while read(2) found frames: the kernel cannot
// read this fd without blocking (no FMODE_NOWAIT), so the plain path takes over.
constexpr int kMaxUringMisses = 16;
// Larger frames (GSO) are written straight from the sender's buffers.
constexpr size_t kMaxQueuedWriteLen = 2048;
}  // namespace

TapClient::TapClient(uint32_t handle, std::string name, NetContext* ctx, int fd, int vnet_hdr_len, bool io_uring)
    : NetClient(ClientKind::kTap, handle, std::move(name), ctx),
      fd_(fd),
      hdr_len_(vnet_hdr_len),
      rbuf_(new uint8_t[kReadBufLen]),
      want_uring_(io_uring) {}

TapClient::~TapClient() {
  if (flush_bh_) AioContext::DeleteBh(flush_bh_);
}

Status TapClient::Start() {
  int fl = ::fcntl(fd_, F_GETFL);
  if (fl < 0) return Status::Errno(errno, "fcntl(F_GETFL)", "tap fd " + std::to_string(fd_) + " is not open");
  if (!(fl & O_NONBLOCK) && ::fcntl(fd_, F_SETFL, fl | O_NONBLOCK) < 0)
    return Status::Errno(errno, "fcntl(F_SETFL)", "cannot make tap fd non-blocking");
  if (want_uring_ && !ring_) {
    // No io_uring (disabled by sysctl, not in this kernel or tool): the plain path, silently;
    // stats tell which path runs.
    auto r = IoUringBatch::Create(kReadBudget + kWriteBatch);
    if (r.ok()) {
      ring_ = std::move(r.value);
      ring_->RegisterFile(fd_);  // where refused, operations name the fd as usual
      writes_.resize(kWriteBatch);
    }
  }
  if (ring_ && !flush_bh_) flush_bh_ = ctx_->aio->NewBh(OnFlushBh, this, "tap-uring-flush");
  started_ = true;
  Status s = UpdatePolling();
  if (!s.ok()) started_ = false;
  return s;
}

void TapClient::Stop() {
  FlushWrites();  // accepted frames go out (or are counted) before the fd may close
  // The BH belongs to this context; a client moved to another one (Relocate) gets a new one.
  if (flush_bh_) AioContext::DeleteBh(flush_bh_);
  flush_bh_ = nullptr;
  writes_in_turn_ = 0;  // the next turn, on whichever context, starts with a new BH
  write_burst_ = false;
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
    FlushWrites();
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
  info.io_uring = ring_ != nullptr;
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
  // io_uring pays off for batches; a wake-up for one frame (a round trip, a trickle) costs
  // less and answers sooner on read(2), which also tells when a burst starts again.
  if (ring_ && read_batch_ > 2) {
    ReadUring();
    return;
  }
  const int got = ReadPlain();
  if (ring_) read_batch_ = std::min(got + 1, kReadBudget);
}

int TapClient::ReadPlain() {
  const size_t cap = static_cast<size_t>(hdr_len_) + kNetBufSize;
  uint8_t* buf = rbuf_.get();
  int got = 0;
  while (got < kReadBudget) {
    ssize_t n = RawRead(fd_, buf, cap);
    if (n < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) {
        if (got == 0) CheckFdError();
        return got;
      }
      Die(err, "read");
      return got;
    }
    if (n == 0) {
      if (got == 0) CheckFdError();
      return got;
    }
    ++got;
    if (DeliverRead(buf, static_cast<size_t>(n))) {
      // The peer holds our frame: stop reading until it leaves the queue.
      read_poll_ = false;
      UpdatePolling();
      return got;
    }
    if (dead_ || !started_ || !enabled_) return got;
  }
  return got;
}

void TapClient::OnCompletion(void* opaque, uint64_t tag, int32_t res) {
  auto* self = static_cast<TapClient*>(opaque);
  const auto slot = static_cast<uint32_t>(tag);
  if (tag & kWriteTag) {
    if (slot < kWriteBatch) self->write_res_[slot] = res;
  } else if (slot < kReadBudget) {
    self->read_res_[slot] = res;
  }
}

void TapClient::ReadUring() {
  const int batch = read_batch_;
  while (read_bufs_.size() < static_cast<size_t>(batch))
    read_bufs_.emplace_back(new uint8_t[kReadBufLen]());  // zeroed: memcheck cannot see the kernel's writes
  const auto cap = static_cast<uint32_t>(hdr_len_ + kNetBufSize);
  for (int i = 0; i < batch; ++i) {
    read_res_[i] = -EAGAIN;
    ring_->AddRead(fd_, read_bufs_[i].get(), cap, static_cast<uint64_t>(i));
  }
  const unsigned writes = nwrites_;  // ride along in the same enter
  ring_->Run(OnCompletion, this);
  if (writes > 0) CountWrites(writes);
  // Deliver every frame read, in slot order (the order the kernel handed them out). A peer
  // that says "not now" queued the frame (callback senders always queue), so the rest
  // queue behind it and nothing read is lost; reading then pauses. It pauses the moment a
  // frame is held: the peer may take the queue while we deliver the rest, and its
  // OnQueuedSent must find reading paused to resume it (else nothing ever would).
  int got = 0, fatal = 0;
  bool unsupported = false;
  for (int i = 0; i < batch; ++i) {
    const int32_t res = read_res_[i];
    if (res > 0) {
      ++got;
      if (DeliverRead(read_bufs_[i].get(), static_cast<size_t>(res))) read_poll_ = false;
    } else if (res == -EOPNOTSUPP || res == -EINVAL) {
      unsupported = true;
    } else if (res < 0 && res != -EAGAIN && res != -EINTR && fatal == 0) {
      fatal = -res;
    }
  }
  read_batch_ = got == batch ? std::min(batch * 2, kReadBudget) : std::max(got + 1, 2);
  if (fatal != 0) {
    Die(fatal, "read");
    return;
  }
  if (unsupported || ring_->broken()) {
    RetireRing();
    if (got == 0) ReadPlain();
  } else if (got == 0) {
    // Nothing for io_uring: read(2) checks the fd's error state as the plain path does, and
    // tells whether io_uring can read this fd at all.
    if (ReadPlain() > 0 && ++uring_misses_ >= kMaxUringMisses) RetireRing();
    return;
  } else {
    uring_misses_ = 0;
  }
  if (!read_poll_) UpdatePolling();  // (ReadBatch calls us only while reading)
}

void TapClient::RetireRing() {
  FlushWrites();
  ring_.reset();
  if (flush_bh_) AioContext::CancelBh(flush_bh_);
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
  if (ring_ && flush_bh_ && d.kind == DeviceFrame::Kind::kIov) {
    // The flush BH ends each turn of the loop and decides the next turn's path from this
    // one's count: a burst goes through the ring, a lone frame straight to write(2).
    if (writes_in_turn_++ == 0) AioContext::ScheduleBh(flush_bh_);
    if (write_burst_ && QueueWrite(d)) return RecvResult::kConsumed;
  }
  FlushWrites();  // frames queued earlier reach the device first
  return WritePlain(f, d);
}

bool TapClient::QueueWrite(const DeviceFrame& d) {
  size_t len = 0;
  for (int i = 0; i < d.iovcnt; ++i) len += d.iov[i].iov_len;
  // A queued write is a copy; a GSO frame's own write(2) costs less than copying it.
  if (len > kMaxQueuedWriteLen) return false;
  if (nwrites_ == kWriteBatch) FlushWrites();
  if (!ring_ || !flush_bh_) return false;  // (no BH: not started on a context)
  PendingWrite& w = writes_[nwrites_];
  w.bytes.resize(len);  // keeps its capacity: no allocation once a slot has seen this size
  size_t at = 0;
  for (int i = 0; i < d.iovcnt; ++i) {
    std::memcpy(w.bytes.data() + at, d.iov[i].iov_base, d.iov[i].iov_len);
    at += d.iov[i].iov_len;
  }
  w.eth_len = static_cast<uint32_t>(d.eth_len);
  if (!ring_->AddWrite(fd_, w.bytes.data(), static_cast<uint32_t>(len), kWriteTag | nwrites_)) return false;
  ++nwrites_;
  counters_.queued.Add();  // accepted, not yet written: a snapshot before the flush still adds up
  return true;
}

void TapClient::OnFlushBh(void* opaque) {
  auto* self = static_cast<TapClient*>(opaque);
  self->FlushWrites();
  self->write_burst_ = self->writes_in_turn_ > 1;
  self->writes_in_turn_ = 0;
}

void TapClient::FlushWrites() {
  if (!ring_ || nwrites_ == 0) return;
  const unsigned n = nwrites_;
  ring_->Run(OnCompletion, this);
  CountWrites(n);
  if (ring_->broken()) RetireRing();
}

void TapClient::CountWrites(unsigned n) {
  nwrites_ = 0;
  counters_.queued.Sub(n);
  int dead_err = 0;
  for (unsigned i = 0; i < n; ++i) {
    const int32_t res = write_res_[i];
    const PendingWrite& w = writes_[i];
    if (res >= 0 && static_cast<size_t>(res) == w.bytes.size()) {
      counters_.Out(w.eth_len);
      counters_.DevTx(w.eth_len);
    } else if (res == -EBADFD || res == -ENODEV) {
      counters_.Drop(DropReason::kDeadDevice);
      dead_err = -res;
    } else if (res == -EAGAIN &&
               RawWrite(fd_, w.bytes.data(), w.bytes.size()) == static_cast<ssize_t>(w.bytes.size())) {
      // io_uring would have had to wait; write(2) took it (a kernel without nowait writes).
      counters_.Out(w.eth_len);
      counters_.DevTx(w.eth_len);
    } else {
      // Short or failed. A device still full after the retry drops it: the frame was already
      // accepted, so it cannot wait in a queue.
      if (res == -EAGAIN) counters_.eagain.Add();
      counters_.Drop(DropReason::kWriteError);
    }
  }
  if (dead_err != 0) Die(dead_err, "write");
}

RecvResult TapClient::WritePlain(const Frame& f, const DeviceFrame& d) {
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
