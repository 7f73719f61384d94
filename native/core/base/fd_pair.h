// Non-blocking, close-on-exec fd pairs for event-loop users and tests: a pipe (read end,
// write end) or an AF_UNIX stream socketpair.
#pragma once

#include <memory>
#include <utility>

#include "base/status.h"
#include "base/unique_fd.h"

namespace netplane::core {

struct FdPair {
  UniqueFd first;   // pipe: read end
  UniqueFd second;  // pipe: write end
};

Result<std::shared_ptr<FdPair>> MakePipe();
Result<std::shared_ptr<FdPair>> MakeSocketPair();

}  // namespace netplane::core
