// Anonymous shared memory for guest RAM and rings: a memfd of a given size, sealed against
// shrinking (a shrunk file would make a mapping over it raise SIGBUS), close-on-exec. Used
// by the front-end role, the in-process hypervisor and the tests; the caller owns the fd.
#pragma once

#include <cstdint>
#include <string>

#include "base/status.h"
#include "base/unique_fd.h"

namespace netplane::core {

Result<UniqueFd> MemfdCreate(const std::string& name, uint64_t size);

// A close-on-exec duplicate of fd (F_DUPFD_CLOEXEC); `what` names the fd in the error.
Result<UniqueFd> DupFd(int fd, const std::string& what);

}  // namespace netplane::core
