#include "socket/dgram_client.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "vnet/segment.h"

namespace netplane::core {

namespace {
struct SegmentSender {
  DgramClient* self;
  int (*send)(DgramClient*, const uint8_t*, size_t);
  int written = 0;
  int err = 0;
};
}  // namespace

DgramClient::DgramClient(uint32_t handle, std::string name, NetContext* ctx, const sockaddr_storage& dest,
                         socklen_t dest_len)
    : SocketClient(ClientKind::kDgram, handle, std::move(name), ctx),
      dest_(dest),
      dest_len_(dest_len),
      rbuf_(new uint8_t[kNetBufSize]) {}

DgramClient::~DgramClient() = default;

void DgramClient::ReadBatch() {
  for (int i = 0; i < kReadBudget; ++i) {
    ssize_t n = ::recv(fd_, rbuf_.get(), kNetBufSize, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      // An ICMP error queued on the socket (a peer not listening yet): reported once, read on.
      if (errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ENETUNREACH) continue;
      Closed(errno, "recv");
      return;
    }
    if (n == 0) {
      counters_.In(0);
      counters_.Drop(DropReason::kBadVnetHdr);  // an empty datagram: no frame in it
      continue;
    }
    if (DeliverRead(rbuf_.get(), static_cast<size_t>(n))) {
      PauseRead();
      return;
    }
    if (fd_ < 0 || !started_) return;
  }
}

int DgramClient::SendOne(const uint8_t* data, size_t len) {
  for (;;) {
    ssize_t n = dest_len_ > 0 ? ::sendto(fd_, data, len, MSG_NOSIGNAL | MSG_DONTWAIT,
                                         reinterpret_cast<const sockaddr*>(&dest_), dest_len_)
                              : ::send(fd_, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) return 0;
    if (errno != EINTR) return errno;
  }
}

RecvResult DgramClient::Failed(int err) {
  if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
    WantWrite();
    return RecvResult::kNotNow;
  }
  if (err == EMSGSIZE) {
    counters_.Drop(DropReason::kOversize);  // larger than a datagram can be
    return RecvResult::kError;
  }
  counters_.Drop(DropReason::kWriteError);
  return RecvResult::kError;
}

RecvResult DgramClient::Receive(NetClient*, const Frame& f) {
  if (fd_ < 0) return DropClosed();
  uint8_t hdr_scratch[kMaxVnetHdrLen];
  DeviceFrame d;
  if (!ShapeOrDrop(f, kNetBufSize, hdr_scratch, &d)) return RecvResult::kError;
  if (d.kind == DeviceFrame::Kind::kSoftware) {
    SegmentSender s{this, [](DgramClient* c, const uint8_t* p, size_t l) { return c->SendOne(p, l); }};
    VnetError e = SegmentFrame(
        d.hdr, f.eth(), f.eth_len(), ctx_->scratch.data(),
        [](void* opaque, const uint8_t* frame, size_t len) {
          auto* w = static_cast<SegmentSender*>(opaque);
          if (w->err != 0) return;
          w->err = w->send(w->self, frame, len);
          if (w->err == 0) ++w->written;
        },
        &s);
    if (e != VnetError::kOk) {
      counters_.Drop(DropReason::kBadVnetHdr);
      return RecvResult::kError;
    }
    if (s.written > 0) {
      counters_.Out(d.eth_len);
      counters_.DevTx(d.eth_len);
      counters_.segments.Add(static_cast<uint64_t>(s.written));
      return RecvResult::kConsumed;
    }
    return Failed(s.err);
  }
  const uint8_t* data;
  if (d.iovcnt == 1) {
    data = static_cast<const uint8_t*>(d.iov[0].iov_base);
  } else {
    // Join header and frame (cannot happen at header length 0, kept for safety).
    size_t off = 0;
    for (int i = 0; i < d.iovcnt; ++i) {
      std::memcpy(ctx_->scratch.data() + off, d.iov[i].iov_base, d.iov[i].iov_len);
      off += d.iov[i].iov_len;
    }
    data = ctx_->scratch.data();
  }
  int err = SendOne(data, d.eth_len);
  if (err == 0) {
    counters_.Out(d.eth_len);
    counters_.DevTx(d.eth_len);
    return RecvResult::kConsumed;
  }
  return Failed(err);
}

}  // namespace netplane::core
