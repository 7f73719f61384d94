// StreamClient: a stream socket (TCP or unix) carrying frames as QEMU's stream and socket
// netdevs do (net/stream.c, net/socket.c): each frame is a 4-byte big-endian length and then
// the ethernet frame, no vnet header. Read: into one buffer, frames cut out of it (copied
// only when one spans two reads), at most kReadBudget frames per loop iteration: one read
// can hold thousands of small frames, and the rest wait in the buffer while the thread's
// other handlers run (a bottom half resumes them, read polling off meanwhile); a frame longer than
// kNetBufSize means the stream lost its framing: counted oversize and the connection closed
// (QEMU closes it too). Write: one sendmsg of length + frame; a partial write keeps the rest
// and polls for room (the frame is out, the next waits in the queue), EAGAIN queues the frame.
#pragma once

#include <memory>
#include <vector>

#include "socket/socket_client.h"

namespace netplane::core {

class StreamClient : public SocketClient {
 public:
  static constexpr size_t kReadBufSize = 256 * 1024;
  static constexpr size_t kLenPrefix = 4;

  StreamClient(uint32_t handle, std::string name, NetContext* ctx);
  ~StreamClient() override;

  Status Start() override;
  void Stop() override;
  RecvResult Receive(NetClient* sender, const Frame& f) override;

 protected:
  void ReadBatch() override;
  bool FlushPending() override;
  void ResetState() override;
  void ResumeHeld() override;

 private:
  // Cut frames out of rbuf_[rpos_, rend_), at most *budget of them (counted down); false
  // when reading must stop: held, closed, or the budget is spent with bytes left (yielded).
  bool Parse(int* budget);
  // Stop reading and hand the buffered rest on from continue_bh_ in a later iteration.
  void Yield();
  static void OnContinue(void* opaque);
  void Continue();
  void DeleteContinueBh();
  bool SendAll(const iovec* iov, int cnt, size_t total);

  std::unique_ptr<uint8_t[]> rbuf_;
  size_t rpos_ = 0, rend_ = 0;
  std::unique_ptr<uint8_t[]> fbuf_;  // a frame that spans reads
  uint8_t hdr_[kLenPrefix] = {};
  size_t hdr_got_ = 0;
  size_t flen_ = 0, fgot_ = 0;
  std::vector<uint8_t> pending_;  // unwritten tail of the last frame(s)
  size_t pending_off_ = 0;
  // Made on first use on the current context (a stopped client may move to another one).
  BottomHalf* continue_bh_ = nullptr;
};

}  // namespace netplane::core
