// Eventfds for vring notifications (the front-end role creates the kick and call fds it
// sends with SET_VRING_KICK / CALL): non-blocking, close-on-exec; the caller owns the fd.
#pragma once

#include "base/status.h"
#include "base/unique_fd.h"

namespace netplane::core {

Result<UniqueFd> EventfdCreate();

}  // namespace netplane::core
