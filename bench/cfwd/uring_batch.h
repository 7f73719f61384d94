// A minimal io_uring for cfwd --uring, on raw system calls (no liburing): one ring whose
// submission queue carries a batch of reads or writes, submitted and reaped with one
// io_uring_enter. It measures what batching the per-frame system calls would buy a TAP
// forwarder before netplane's data path takes it on. Reads carry RWF_NOWAIT: io_uring ignores
// the fd's O_NONBLOCK and would park a read with nothing queued on a poll, so the enter
// waiting for the whole batch never returned; with RWF_NOWAIT it completes at once with
// -EAGAIN. A TAP write never blocks, so every operation has completed when the enter returns.
#pragma once

#include <linux/io_uring.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

struct UringBatch {
  int fd;
  unsigned entries;
  unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
  unsigned *cq_head, *cq_tail, *cq_mask;
  struct io_uring_sqe *sqes;
  struct io_uring_cqe *cqes;
  unsigned pending;  // SQEs filled since the last enter
};

// 0 on success, -1 with errno set.
static int UringBatchInit(struct UringBatch *u, unsigned entries) {
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  memset(u, 0, sizeof *u);
  u->fd = (int)syscall(__NR_io_uring_setup, entries, &p);
  if (u->fd < 0) return -1;
  u->entries = p.sq_entries;
  size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  if (!(p.features & IORING_FEAT_SINGLE_MMAP)) {
    errno = ENOSYS;  // kernels before 5.4: not worth a second mapping for a bench tool
    return -1;
  }
  size_t ring_len = sq_len > cq_len ? sq_len : cq_len;
  uint8_t *ring = mmap(NULL, ring_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, u->fd, IORING_OFF_SQ_RING);
  if (ring == MAP_FAILED) return -1;
  u->sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                 u->fd, IORING_OFF_SQES);
  if (u->sqes == MAP_FAILED) return -1;
  u->sq_head = (unsigned *)(ring + p.sq_off.head);
  u->sq_tail = (unsigned *)(ring + p.sq_off.tail);
  u->sq_mask = (unsigned *)(ring + p.sq_off.ring_mask);
  u->sq_array = (unsigned *)(ring + p.sq_off.array);
  u->cq_head = (unsigned *)(ring + p.cq_off.head);
  u->cq_tail = (unsigned *)(ring + p.cq_off.tail);
  u->cq_mask = (unsigned *)(ring + p.cq_off.ring_mask);
  u->cqes = (struct io_uring_cqe *)(ring + p.cq_off.cqes);
  return 0;
}

// Queue one read or write of buf[0..len) on fd; user_data comes back in its completion.
static void UringBatchAdd(struct UringBatch *u, uint8_t opcode, int fd, void *buf, unsigned len, uint64_t user_data) {
  // (RWF_NOWAIT is in linux/fs.h, which linux/io_uring.h includes.)
  unsigned tail = *u->sq_tail + u->pending;
  unsigned idx = tail & *u->sq_mask;
  struct io_uring_sqe *sqe = &u->sqes[idx];
  memset(sqe, 0, sizeof *sqe);
  sqe->opcode = opcode;
  sqe->fd = fd;
  sqe->addr = (uint64_t)(uintptr_t)buf;
  sqe->len = len;
  sqe->off = (uint64_t)-1;  // the file position, as read(2) and write(2) use (none for a TAP)
  sqe->user_data = user_data;
  if (opcode == IORING_OP_READ) sqe->rw_flags = RWF_NOWAIT;
  u->sq_array[idx] = idx;
  u->pending++;
}

// Submit what was added and wait for all of it; then call done(ctx, user_data, res) for each
// completion. Returns the number reaped, or -1 with errno set.
static int UringBatchRun(struct UringBatch *u, void (*done)(void *, uint64_t, int), void *ctx) {
  unsigned n = u->pending;
  if (n == 0) return 0;
  atomic_store_explicit((_Atomic unsigned *)u->sq_tail, *u->sq_tail + n, memory_order_release);
  u->pending = 0;
  for (;;) {
    long r = syscall(__NR_io_uring_enter, u->fd, n, n, IORING_ENTER_GETEVENTS, NULL, 0);
    if (r >= 0) break;
    if (errno != EINTR) return -1;
    n = 0;  // submitted already; only wait
  }
  unsigned head = *u->cq_head;
  unsigned tail = atomic_load_explicit((_Atomic unsigned *)u->cq_tail, memory_order_acquire);
  int reaped = 0;
  for (; head != tail; head++, reaped++) {
    struct io_uring_cqe *c = &u->cqes[head & *u->cq_mask];
    done(ctx, c->user_data, c->res);
  }
  atomic_store_explicit((_Atomic unsigned *)u->cq_head, head, memory_order_release);
  return reaped;
}
