// The fd and bottom-half chores both ring clients share (VirtioDeviceQueue polls kick fds and
// writes call fds, VirtioDriverQueue the other way round): notifier fds made non-blocking,
// signalled, drained; polled on the client's context; bottom halves released on Stop().
#pragma once

#include <initializer_list>
#include <string>

#include "aio/aio_context.h"
#include "base/status.h"
#include "base/unique_fd.h"

namespace netplane::core {

// Make fd non-blocking; `what` ("kick", "call", "err") names it in the error.
Status SetNonBlocking(int fd, const char* what);

// Write 1 to an eventfd (or a pipe). Non-blocking: a counter near overflow or a full pipe
// loses nothing that matters (the other side is already signalled).
void WriteEvent(int fd);

// Read what a notifier fd holds. An eventfd gives its whole count in one read; anything else
// (a pipe) is read a bounded number of times, the level-triggered loop brings us back for the
// rest. 0: nothing more to read now; -1: end of file; > 0: the errno of a failed read.
int DrainNotifier(int fd);

// Poll `fd` for reads on `aio`; the error names the fd (`what`, e.g. "virtio driver 'n0' rx
// ring: cannot poll the call fd").
Status PollNotifier(AioContext* aio, int fd, IoHandler on_read, void* opaque, const std::string& what);

// The notifier fd a ring client owns and polls (a device's kick fd, a driver's call fd):
// polled once on one context, unpolled before it is closed or replaced. Home thread.
class PolledNotifier {
 public:
  PolledNotifier() = default;
  ~PolledNotifier() { Reset(); }
  PolledNotifier(const PolledNotifier&) = delete;
  PolledNotifier& operator=(const PolledNotifier&) = delete;

  // Own `fd` (the old one is unpolled and closed first).
  void Reset(UniqueFd fd = UniqueFd());
  bool valid() const { return fd_.valid(); }
  int get() const { return fd_.get(); }
  bool polled() const { return aio_ != nullptr; }
  // Poll for reads; a no-op when already polled or without an fd.
  Status Poll(AioContext* aio, IoHandler on_read, void* opaque, const std::string& what);
  void Unpoll();
  // DrainNotifier on the fd.
  int Drain() const { return DrainNotifier(fd_.get()); }

 private:
  UniqueFd fd_;
  AioContext* aio_ = nullptr;  // where it is polled, null when not
};

// Cancel and delete each bottom half that exists, and clear its pointer.
void ReleaseBhs(std::initializer_list<BottomHalf**> bhs);

}  // namespace netplane::core
