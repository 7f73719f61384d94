// SocketClient: what the stream and dgram net clients share (QEMU's net/stream.c and
// net/dgram.c, and the socket transports of net/socket.c). The client owns one socket fd at
// a time, given by the control side with AttachFd once the connection exists (JavaScript
// connects, listens and accepts; the data plane only moves frames). The fd is polled on the
// client's AioContext; when the peer goes away (EOF, a read or write error, a stream that
// lost framing) the client closes the fd, drops what waits for it (counted deadDevice, "a
// closed connection"), and raises one kSocketClosed event. AttachFd(-1) closes the fd
// without an event; a new AttachFd resumes with an empty framing state.
#pragma once

#include "aio/fd_watch.h"
#include "net/net_client.h"

namespace netplane::core {

class SocketClient : public NetClient {
 public:
  static constexpr int kReadBudget = 64;

  SocketClient(ClientKind kind, uint32_t handle, std::string name, NetContext* ctx);
  ~SocketClient() override;

  // Take ownership of fd (made non-blocking) and start polling it; -1 closes the current fd.
  Status AttachFd(int fd);
  bool connected() const { return fd_ >= 0; }

  Status Start() override;
  void Stop() override;
  void OnQueuedSent() override;
  void Describe(ClientInfo& info) const override;

 protected:
  // The fd is readable: read up to kReadBudget units and hand frames on.
  virtual void ReadBatch() = 0;
  // The fd is writable again: write what is pending; true when nothing is left.
  virtual bool FlushPending() { return true; }
  // A new fd: reset framing state.
  virtual void ResetState() {}
  // Reading resumes after the peer's queue let our frame go. A stream may hold frames it
  // read but did not hand on yet: it sends them first (from a bottom half, within the budget).
  virtual void ResumeHeld() {}

  // Hand one frame read from the socket to the peer; true when it now waits in the peer's
  // queue (stop reading until OnQueuedSent).
  bool DeliverRead(const uint8_t* data, size_t len);
  // The connection is gone: close, drain, raise kSocketClosed once.
  void Closed(int err, const char* syscall);
  // Receive() while there is no fd: a closed connection, counted.
  RecvResult DropClosed();
  void PauseRead();
  void WantWrite();
  Status UpdatePolling();
  void RemoveHandler();
  bool CheckHangup();

  int fd_ = -1;
  bool started_ = false;
  bool read_poll_ = true;
  bool write_poll_ = false;
  // The read budget ran out with frames still in the read buffer (stream): the fd is not
  // polled for reading until a bottom half has handed them on, so one wake-up never sends
  // more than kReadBudget frames and the other handlers of the thread get their turn.
  bool yielded_ = false;

 private:
  static void OnReadable(void* opaque);
  static void OnWritable(void* opaque);
  void CloseFd();

  FdWatch watch_;
};

}  // namespace netplane::core
