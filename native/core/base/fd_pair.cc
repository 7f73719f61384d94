#include "base/fd_pair.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>

namespace netplane::core {

namespace {

Result<std::shared_ptr<FdPair>> Wrap(int rc, const int fds[2], const char* syscall) {
  if (rc != 0) {
    int err = errno;
    return Result<std::shared_ptr<FdPair>>::Fail(
        Status::Errno(err, syscall, std::string(syscall) + ": " + std::strerror(err)));
  }
  auto pair = std::make_shared<FdPair>();
  pair->first.Reset(fds[0]);
  pair->second.Reset(fds[1]);
  return Result<std::shared_ptr<FdPair>>::Of(std::move(pair));
}

}  // namespace

Result<std::shared_ptr<FdPair>> MakePipe() {
  int fds[2] = {-1, -1};
  int rc = ::pipe2(fds, O_NONBLOCK | O_CLOEXEC);
  return Wrap(rc, fds, "pipe2");
}

Result<std::shared_ptr<FdPair>> MakeSocketPair() {
  int fds[2] = {-1, -1};
  int rc = ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds);
  return Wrap(rc, fds, "socketpair");
}

}  // namespace netplane::core
