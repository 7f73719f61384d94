// BatchIo: many TAP reads, or many TAP writes, per system call, through io_uring driven
// with its raw system calls (no liburing). One per NetContext, home thread only, and only
// when asked for (NETPLANE_IO=uring in the environment): the plain read/write path stays
// the default.
//
// Why: on this class of machine a system call costs far more than the work of moving a
// 60-byte frame through our code, and a TAP offers no batched read or write of its own
// (it is a character device: no recvmmsg/sendmmsg). io_uring lets one io_uring_enter carry
// a whole batch.
//
// Every request is issued with RWF_NOWAIT, so the kernel completes it inside the
// io_uring_enter that submitted it (a read of an empty TAP says -EAGAIN instead of waiting);
// nothing is ever left in flight between calls, so a caller's buffers are free again when
// ReadMany / Flush return.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "status.h"

struct io_uring_sqe;
struct io_uring_cqe;

namespace netplane::core {

class BatchIo {
 public:
  static constexpr unsigned kEntries = 256;  // most requests in one call
  static constexpr int kMaxStaged = 128;     // staged writes before an early flush

  // True when the environment asks for io_uring (NETPLANE_IO=uring).
  static bool Wanted();
  // Fails when the kernel has no io_uring or refuses it (io_uring_disabled, seccomp).
  static Result<std::unique_ptr<BatchIo>> Create();
  ~BatchIo();
  BatchIo(const BatchIo&) = delete;
  BatchIo& operator=(const BatchIo&) = delete;

  // Read up to n (<= kEntries) frames from fd, the i-th into bufs[i] (cap bytes each), in
  // one system call. res[i] = bytes read, or -errno (-EAGAIN: nothing was there). Returns 0,
  // or the -errno of io_uring_enter itself (then nothing was read; res is untouched).
  int ReadMany(int fd, uint8_t* const* bufs, size_t cap, int n, int32_t* res);

  // A write waiting for Flush. The owner fills it in after StageWrite; iov may point at
  // hdr (copied header bytes) and at frame bytes that stay valid until Flush returns.
  struct Staged;
  using DoneFn = void (*)(Staged& w, int res);
  struct Staged {
    int fd = -1;
    iovec iov[2];
    int iovcnt = 0;
    uint8_t hdr[20];
    DoneFn done = nullptr;
    void* owner = nullptr;  // the receiving client
    void* sender = nullptr;
    const uint8_t* frame = nullptr;  // the frame as sent (for a late fallback)
    uint32_t frame_len = 0;
    uint16_t frame_hdr_len = 0;
    uint32_t eth_len = 0;
  };

  // Writes are staged only inside a window a reader opens around one batch of frames.
  void OpenWindow() { window_ = true; }
  void CloseWindow() { window_ = false; }
  bool accepting() const { return window_ && !flushing_; }
  bool has_staged() const { return staged_ > 0; }
  // A slot to fill in, or nullptr when not accepting or full (Flush, then retry).
  Staged* StageWrite();
  // Submit every staged write in one system call, then run each one's done(res) in staging
  // order (res = bytes written or -errno). done may write synchronously but not stage.
  void Flush();

  uint64_t enters() const { return enters_; }
  bool broken() const { return broken_; }

 private:
  BatchIo() = default;
  // Submit `n` prepared requests and reap their n completions into res (by user_data).
  int SubmitAndReap(unsigned n, int32_t* res);
  struct io_uring_sqe* NextSqe();

  int ring_fd_ = -1;
  void* sq_ptr_ = nullptr;
  size_t sq_len_ = 0;
  void* sqes_ptr_ = nullptr;
  size_t sqes_len_ = 0;
  unsigned* sq_tail_ = nullptr;
  unsigned* sq_mask_ = nullptr;
  unsigned* sq_array_ = nullptr;
  unsigned* cq_head_ = nullptr;
  unsigned* cq_tail_ = nullptr;
  unsigned* cq_mask_ = nullptr;
  struct io_uring_cqe* cqes_ = nullptr;
  struct io_uring_sqe* sqes_ = nullptr;
  unsigned local_tail_ = 0;

  bool broken_ = false;
  bool window_ = false;
  bool flushing_ = false;
  int staged_ = 0;
  Staged slots_[kMaxStaged];
  uint64_t enters_ = 0;
};

}  // namespace netplane::core
