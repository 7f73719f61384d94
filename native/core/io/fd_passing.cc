// SCM_RIGHTS receive and send (see fd_passing.h).
#include "io/fd_passing.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstring>
#include <string>

namespace netplane::core {

namespace {

Status SysError(int err, const char* syscall) {
  return Status::Errno(err, syscall, std::string(syscall) + ": " + std::strerror(err));
}

// Claim every fd of every SCM_RIGHTS message in `msg` (each becomes a UniqueFd at once, so
// nothing leaks whatever happens next). Other control messages cannot carry fds and are
// ignored.
void CollectFds(msghdr* msg, std::vector<UniqueFd>* out) {
  for (cmsghdr* c = CMSG_FIRSTHDR(msg); c != nullptr; c = CMSG_NXTHDR(msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t payload = c->cmsg_len - CMSG_LEN(0);
    size_t count = payload / sizeof(int);
    const unsigned char* data = CMSG_DATA(c);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, data + i * sizeof(int), sizeof(int));
      if (fd >= 0) out->emplace_back(fd);
    }
  }
}

}  // namespace

Result<ReceivedChunk> RecvWithFds(int sock, void* buf, size_t len) {
  using R = Result<ReceivedChunk>;
  if (len == 0) return R::Fail(Status::Invalid("receive buffer must not be empty"));
  // Room for the kernel's maximum; aligned as cmsghdr requires.
  alignas(cmsghdr) unsigned char control[CMSG_SPACE(kMaxFdsPerMessage * sizeof(int))];
  ReceivedChunk chunk;
  for (;;) {
    iovec iov{buf, len};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = ::recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) {
        chunk.would_block = true;
        return R::Of(std::move(chunk));
      }
      return R::Fail(SysError(err, "recvmsg"));
    }
    CollectFds(&msg, &chunk.fds);
    chunk.fds_truncated = (msg.msg_flags & MSG_CTRUNC) != 0;
    chunk.bytes = static_cast<size_t>(n);
    // A zero-byte read is the end of the stream (fds cannot arrive without a byte).
    chunk.eof = n == 0;
    return R::Of(std::move(chunk));
  }
}

Result<size_t> SendWithFds(int sock, const void* buf, size_t len, const int* fds, size_t nfds) {
  using R = Result<size_t>;
  if (len == 0) return R::Fail(Status::Invalid("at least one byte must be sent with the fds"));
  if (nfds > kMaxFdsPerMessage) {
    return R::Fail(Status::Invalid("at most " + std::to_string(kMaxFdsPerMessage) + " fds fit in one message, got " +
                                   std::to_string(nfds)));
  }
  for (size_t i = 0; i < nfds; ++i) {
    if (fds[i] < 0) return R::Fail(Status::Invalid("fd " + std::to_string(fds[i]) + " is not a file descriptor"));
  }
  alignas(cmsghdr) unsigned char control[CMSG_SPACE(kMaxFdsPerMessage * sizeof(int))];
  iovec iov{const_cast<void*>(buf), len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (nfds > 0) {
    std::memset(control, 0, sizeof(control));
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
    std::memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
  }
  for (;;) {
    ssize_t n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n >= 0) return R::Of(static_cast<size_t>(n));
    int err = errno;
    if (err == EINTR) continue;
    return R::Fail(SysError(err, "sendmsg"));
  }
}

Result<UniqueFd> DupCloexec(int fd) {
  using R = Result<UniqueFd>;
  if (fd < 0) return R::Fail(Status::Invalid("fd " + std::to_string(fd) + " is not a file descriptor"));
  int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return R::Fail(SysError(errno, "fcntl(F_DUPFD_CLOEXEC)"));
  return R::Of(UniqueFd(dup));
}

Status SetCloexec(int fd) {
  int flags = ::fcntl(fd, F_GETFD);
  if (flags < 0 || ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) {
    int err = errno;
    return Status::Errno(err, "fcntl(F_SETFD)", "fd " + std::to_string(fd) + ": " + std::strerror(err));
  }
  return Status::Ok();
}

}  // namespace netplane::core
