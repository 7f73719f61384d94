#include "batch_io.h"

#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif

namespace netplane::core {

namespace {
int SysSetup(unsigned entries, io_uring_params* p) {
  return static_cast<int>(::syscall(__NR_io_uring_setup, entries, p));
}
int SysEnter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags) {
  return static_cast<int>(::syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags, nullptr, 0));
}
template <class T>
T* At(void* base, unsigned off) {
  return reinterpret_cast<T*>(static_cast<uint8_t*>(base) + off);
}
}  // namespace

bool BatchIo::Wanted() {
  const char* v = std::getenv("NETPLANE_IO");
  return v && std::strcmp(v, "uring") == 0;
}

Result<std::unique_ptr<BatchIo>> BatchIo::Create() {
  using R = Result<std::unique_ptr<BatchIo>>;
  io_uring_params p;
  std::memset(&p, 0, sizeof p);
  p.flags = IORING_SETUP_CLAMP;
  int fd = SysSetup(kEntries, &p);
  if (fd < 0) return R::Fail(Status::Errno(errno, "io_uring_setup", "io_uring is not available"));
  std::unique_ptr<BatchIo> b(new BatchIo());
  b->ring_fd_ = fd;
  size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(io_uring_cqe);
  // One mapping for both rings (IORING_FEAT_SINGLE_MMAP, every kernel since 5.4).
  b->sq_len_ = sq_len > cq_len ? sq_len : cq_len;
  void* sq = ::mmap(nullptr, b->sq_len_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
  if (sq == MAP_FAILED) return R::Fail(Status::Errno(errno, "mmap", "cannot map the io_uring rings"));
  b->sq_ptr_ = sq;
  b->sqes_len_ = p.sq_entries * sizeof(io_uring_sqe);
  void* sqes = ::mmap(nullptr, b->sqes_len_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
  if (sqes == MAP_FAILED) return R::Fail(Status::Errno(errno, "mmap", "cannot map the io_uring entries"));
  b->sqes_ptr_ = sqes;
  b->sqes_ = static_cast<io_uring_sqe*>(sqes);
  b->sq_tail_ = At<unsigned>(sq, p.sq_off.tail);
  b->sq_mask_ = At<unsigned>(sq, p.sq_off.ring_mask);
  b->sq_array_ = At<unsigned>(sq, p.sq_off.array);
  b->cq_head_ = At<unsigned>(sq, p.cq_off.head);
  b->cq_tail_ = At<unsigned>(sq, p.cq_off.tail);
  b->cq_mask_ = At<unsigned>(sq, p.cq_off.ring_mask);
  b->cqes_ = At<io_uring_cqe>(sq, p.cq_off.cqes);
  b->local_tail_ = *b->sq_tail_;
  return R::Of(std::move(b));
}

BatchIo::~BatchIo() {
  if (sqes_ptr_) ::munmap(sqes_ptr_, sqes_len_);
  if (sq_ptr_) ::munmap(sq_ptr_, sq_len_);
  if (ring_fd_ >= 0) ::close(ring_fd_);
}

io_uring_sqe* BatchIo::NextSqe() {
  unsigned idx = local_tail_ & *sq_mask_;
  io_uring_sqe* sqe = &sqes_[idx];
  std::memset(sqe, 0, sizeof *sqe);
  sq_array_[idx] = idx;
  ++local_tail_;
  return sqe;
}

int BatchIo::SubmitAndReap(unsigned n, int32_t* res) {
  if (broken_) {
    local_tail_ -= n;
    return -EIO;
  }
  __atomic_store_n(sq_tail_, local_tail_, __ATOMIC_RELEASE);
  unsigned to_submit = n, reaped = 0;
  for (int attempt = 0; reaped < n; ++attempt) {
    int r = SysEnter(ring_fd_, to_submit, n - reaped, IORING_ENTER_GETEVENTS);
    ++enters_;
    if (r < 0) {
      int err = errno;
      if (to_submit == n && err != EINTR && err != EAGAIN && err != EBUSY) {
        // Nothing was taken: withdraw the entries so the ring stays in step.
        local_tail_ -= n;
        __atomic_store_n(sq_tail_, local_tail_, __ATOMIC_RELEASE);
        return -err;
      }
      if (attempt > 1000) {
        // Part of the batch is stuck: give up on this ring (callers fall back to plain I/O).
        broken_ = true;
        return -err;
      }
    } else {
      unsigned took = static_cast<unsigned>(r);
      to_submit -= took < to_submit ? took : to_submit;
    }
    unsigned head = *cq_head_;
    unsigned tail = __atomic_load_n(cq_tail_, __ATOMIC_ACQUIRE);
    for (; head != tail; ++head) {
      const io_uring_cqe& c = cqes_[head & *cq_mask_];
      if (c.user_data < n) res[c.user_data] = c.res;
      ++reaped;
    }
    __atomic_store_n(cq_head_, head, __ATOMIC_RELEASE);
  }
  return 0;
}

int BatchIo::ReadMany(int fd, uint8_t* const* bufs, size_t cap, int n, int32_t* res) {
  if (n <= 0) return 0;
  if (n > static_cast<int>(kEntries)) n = kEntries;
  for (int i = 0; i < n; ++i) {
    io_uring_sqe* s = NextSqe();
    s->opcode = IORING_OP_READ;
    s->fd = fd;
    s->addr = reinterpret_cast<uint64_t>(bufs[i]);
    s->len = static_cast<uint32_t>(cap);
    s->off = static_cast<uint64_t>(-1);  // the file position (a TAP has none)
    s->rw_flags = RWF_NOWAIT;
    s->user_data = static_cast<uint64_t>(i);
  }
  return SubmitAndReap(static_cast<unsigned>(n), res);
}

BatchIo::Staged* BatchIo::StageWrite() {
  if (!accepting() || staged_ >= kMaxStaged) return nullptr;
  Staged* w = &slots_[staged_++];
  *w = Staged();
  return w;
}

void BatchIo::Flush() {
  if (staged_ == 0 || flushing_) return;
  flushing_ = true;
  const int n = staged_;
  int32_t res[kMaxStaged];
  for (int i = 0; i < n; ++i) {
    Staged& w = slots_[i];
    io_uring_sqe* s = NextSqe();
    s->opcode = w.iovcnt == 1 ? IORING_OP_WRITE : IORING_OP_WRITEV;
    s->fd = w.fd;
    if (w.iovcnt == 1) {
      s->addr = reinterpret_cast<uint64_t>(w.iov[0].iov_base);
      s->len = static_cast<uint32_t>(w.iov[0].iov_len);
    } else {
      s->addr = reinterpret_cast<uint64_t>(w.iov);
      s->len = static_cast<uint32_t>(w.iovcnt);
    }
    s->off = static_cast<uint64_t>(-1);
    s->rw_flags = RWF_NOWAIT;
    s->user_data = static_cast<uint64_t>(i);
  }
  int err = SubmitAndReap(static_cast<unsigned>(n), res);
  if (err != 0)
    for (int i = 0; i < n; ++i) res[i] = err;
  staged_ = 0;
  // Callbacks see the slots as they were; nothing can stage until we are done.
  for (int i = 0; i < n; ++i) slots_[i].done(slots_[i], res[i]);
  flushing_ = false;
}

}  // namespace netplane::core
