// FdWatch: one fd's handler on an AioContext and the directions it polls, for clients that
// turn reading and writing on and off per frame (TAP queues, sockets). The handler is
// installed once with both directions (the context's defaults); afterwards only a change of
// direction reaches epoll_ctl, and no change costs nothing. Home thread only.
#pragma once

#include "aio/aio_context.h"
#include "base/status.h"

namespace netplane::core {

class FdWatch {
 public:
  // Install (first call) and poll exactly the directions asked for.
  Status Poll(AioContext* aio, int fd, IoHandler on_read, IoHandler on_write, void* opaque, bool read, bool write) {
    if (!installed_) {
      Status s = aio->SetFdHandler(fd, on_read, on_write, nullptr, nullptr, opaque);
      if (!s.ok()) return s;
      installed_ = true;
      read_ = write_ = true;
    }
    if (read == read_ && write == write_) return Status::Ok();
    Status s = aio->SetFdPolling(fd, read, write);
    if (s.ok()) {
      read_ = read;
      write_ = write;
    }
    return s;
  }
  void Remove(AioContext* aio, int fd) {
    if (installed_) aio->RemoveFdHandler(fd);
    installed_ = false;
  }
  bool installed() const { return installed_; }

 private:
  bool installed_ = false;
  bool read_ = false, write_ = false;
};

}  // namespace netplane::core
