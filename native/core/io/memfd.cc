#include "io/memfd.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace netplane::core {

Result<UniqueFd> MemfdCreate(const std::string& name, uint64_t size) {
  using R = Result<UniqueFd>;
  if (size > static_cast<uint64_t>(INT64_MAX)) return R::Fail(Status::Invalid("memfd size is too large"));
  int fd = static_cast<int>(::syscall(SYS_memfd_create, name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (fd < 0)
    return R::Fail(Status::Errno(errno, "memfd_create", "memfd_create(" + name + ") failed: " + std::strerror(errno)));
  UniqueFd owned(fd);
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0)
    return R::Fail(Status::Errno(errno, "ftruncate", "cannot size memfd " + name + ": " + std::strerror(errno)));
  if (::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) != 0)
    return R::Fail(
        Status::Errno(errno, "fcntl(F_ADD_SEALS)", "cannot seal memfd " + name + ": " + std::strerror(errno)));
  return R::Of(std::move(owned));
}

Result<UniqueFd> DupFd(int fd, const std::string& what) {
  int d = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (d < 0)
    return Result<UniqueFd>::Fail(
        Status::Errno(errno, "fcntl(F_DUPFD_CLOEXEC)",
                      what + " (fd " + std::to_string(fd) + ") cannot be duplicated: " + std::strerror(errno)));
  return Result<UniqueFd>::Of(UniqueFd(d));
}

}  // namespace netplane::core
