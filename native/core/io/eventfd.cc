#include "io/eventfd.h"

#include <sys/eventfd.h>

#include <cerrno>
#include <cstring>

namespace netplane::core {

Result<UniqueFd> EventfdCreate() {
  int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0)
    return Result<UniqueFd>::Fail(
        Status::Errno(errno, "eventfd", std::string("eventfd failed: ") + std::strerror(errno)));
  return Result<UniqueFd>::Of(UniqueFd(fd));
}

}  // namespace netplane::core
