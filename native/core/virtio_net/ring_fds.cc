#include "virtio_net/ring_fds.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace netplane::core {

Status SetNonBlocking(int fd, const char* what) {
  int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0)
    return Status::Errno(errno, "fcntl(F_GETFL)", std::string(what) + " fd " + std::to_string(fd) + " is not open");
  if (!(fl & O_NONBLOCK) && ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
    return Status::Errno(errno, "fcntl(F_SETFL)", std::string("cannot make the ") + what + " fd non-blocking");
  return Status::Ok();
}

void WriteEvent(int fd) {
  uint64_t one = 1;
  while (::write(fd, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

int DrainNotifier(int fd) {
  for (int i = 0; i < 16; ++i) {
    uint64_t v;
    ssize_t n = ::read(fd, &v, sizeof v);
    if (n > 0 || (n < 0 && errno == EINTR)) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    return n == 0 ? -1 : errno;
  }
  return 0;
}

Status PollNotifier(AioContext* aio, int fd, IoHandler on_read, void* opaque, const std::string& what) {
  Status s = aio->SetFdHandler(fd, on_read, nullptr, nullptr, nullptr, opaque);
  if (!s.ok()) s.message = what + ": " + s.message;
  return s;
}

void PolledNotifier::Reset(UniqueFd fd) {
  Unpoll();
  fd_ = std::move(fd);
}

Status PolledNotifier::Poll(AioContext* aio, IoHandler on_read, void* opaque, const std::string& what) {
  if (aio_ || !fd_.valid()) return Status::Ok();
  Status s = PollNotifier(aio, fd_.get(), on_read, opaque, what);
  if (s.ok()) aio_ = aio;
  return s;
}

void PolledNotifier::Unpoll() {
  if (aio_) aio_->RemoveFdHandler(fd_.get());
  aio_ = nullptr;
}

void ReleaseBhs(std::initializer_list<BottomHalf**> bhs) {
  for (BottomHalf** bh : bhs) {
    if (*bh) {
      AioContext::CancelBh(*bh);
      AioContext::DeleteBh(*bh);
      *bh = nullptr;
    }
  }
}

}  // namespace netplane::core
