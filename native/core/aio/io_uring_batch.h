// IoUringBatch: an io_uring used as a batch of reads and writes, on bare system calls (no
// liburing dependency). A caller queues up to capacity() operations, then Run() hands all
// of them to the kernel with one io_uring_enter, waits until every one has completed and
// reports each result (the read(2)/write(2) return value, or -errno) by the tag it was
// queued with. Every operation carries RWF_NOWAIT: io_uring ignores an fd's O_NONBLOCK and
// would park a read that finds nothing (or a write to a full socket) on a poll, so waiting
// for the whole batch would never return; with RWF_NOWAIT it completes at once with -EAGAIN.
// One thread only (the owner's home thread).
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <memory>

#include "base/status.h"

namespace netplane::core {

class IoUringBatch {
 public:
  // Fails with io_uring_setup's or mmap's errno: ENOSYS (no io_uring, or a tool such as
  // valgrind that does not pass it through), EPERM (kernel.io_uring_disabled), ENOMEM ...
  static Result<std::unique_ptr<IoUringBatch>> Create(unsigned entries);
  ~IoUringBatch();
  IoUringBatch(const IoUringBatch&) = delete;
  IoUringBatch& operator=(const IoUringBatch&) = delete;

  unsigned capacity() const { return entries_; }
  unsigned queued() const { return queued_; }
  // A failed io_uring_enter leaves the ring unusable: the owner falls back to plain calls.
  bool broken() const { return broken_; }

  // Register fd as the ring's one fixed file: operations on it then skip the kernel's
  // per-operation file lookup and reference (fget/fput). False where the kernel refuses
  // (the operations then name the fd as usual). The ring drops the file when destroyed.
  bool RegisterFile(int fd);

  // False when the batch is full (or broken): Run() it first.
  bool AddRead(int fd, void* buf, uint32_t len, uint64_t tag);
  bool AddWrite(int fd, const void* buf, uint32_t len, uint64_t tag);

  using Completion = void (*)(void* opaque, uint64_t tag, int32_t res);
  // Submit what is queued and wait for all of it; done runs once per queued operation, in
  // completion order (the owner orders by tag if it needs to). On a failed enter the
  // operations the kernel never took complete with -errno and the ring becomes broken().
  void Run(Completion done, void* opaque);

 private:
  struct Ring;
  explicit IoUringBatch(std::unique_ptr<Ring> ring, unsigned entries);
  bool Add(uint8_t opcode, int fd, uint64_t addr, uint32_t len, uint64_t tag);
  unsigned Reap(Completion done, void* opaque);

  std::unique_ptr<Ring> ring_;
  unsigned entries_;
  unsigned queued_ = 0;
  int fixed_fd_ = -1;  // the registered file, at fixed index 0
  bool broken_ = false;
};

}  // namespace netplane::core
