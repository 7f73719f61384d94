// File descriptors over AF_UNIX sockets (SCM_RIGHTS), for the QMP getfd / add-fd commands:
// Node's net.Socket reads with read(2), which makes the kernel drop passed fds, so the QMP
// server reads its client sockets with RecvWithFds instead. SendWithFds is the other side
// (tests, and library users that talk QMP to another netplane).
//
// Ownership: every fd that arrives is close-on-exec (MSG_CMSG_CLOEXEC) and owned by a
// UniqueFd, so an fd nobody claims is closed when its message is dropped. Fds that do not
// fit the control buffer (MSG_CTRUNC) are never installed: the kernel releases them.
#pragma once

#include <cstddef>
#include <vector>

#include "base/status.h"
#include "base/unique_fd.h"

namespace netplane::core {

// The kernel's limit for one SCM_RIGHTS message (SCM_MAX_FD).
constexpr size_t kMaxFdsPerMessage = 253;

struct ReceivedChunk {
  size_t bytes = 0;            // bytes stored in the caller's buffer
  bool eof = false;            // the peer closed its side (bytes == 0)
  bool would_block = false;    // nothing to read now (bytes == 0)
  bool fds_truncated = false;  // the peer sent more fds than fit; the excess was dropped
  std::vector<UniqueFd> fds;   // fds that arrived with these bytes, in order
};

// One non-blocking recvmsg(2) on a stream socket: up to `len` bytes plus any SCM_RIGHTS
// fds. EINTR is retried; EAGAIN is reported as would_block, not as an error.
Result<ReceivedChunk> RecvWithFds(int sock, void* buf, size_t len);

// sendmsg(2) of `len` bytes (at least 1) with `nfds` fds attached (0..kMaxFdsPerMessage).
// Returns the number of bytes sent, which may be short on a non-blocking socket; the fds
// travel with the first byte, so a short send still delivered all of them.
Result<size_t> SendWithFds(int sock, const void* buf, size_t len, const int* fds, size_t nfds);

// dup(2) to the lowest free fd >= 0 with close-on-exec set.
Result<UniqueFd> DupCloexec(int fd);

// Set FD_CLOEXEC on fd, so that an inherited fd reaches no program we start.
Status SetCloexec(int fd);

}  // namespace netplane::core
