#include "aio/io_uring_batch.h"

#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace netplane::core {

namespace {
// The ring indices are shared with the kernel: read its side with acquire, publish ours
// with release (the kernel's liburing-free ABI contract).
unsigned LoadAcquire(const unsigned* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
void StoreRelease(unsigned* p, unsigned v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

void* MapRing(int fd, size_t len, off_t what) {
  void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, what);
  return p == MAP_FAILED ? nullptr : p;
}
}  // namespace

// The three kernel mappings (the CQ ring shares the SQ ring's mapping on kernels that
// offer IORING_FEAT_SINGLE_MMAP) and the pointers into them.
struct IoUringBatch::Ring {
  int fd = -1;
  void* sq_map = nullptr;
  size_t sq_map_len = 0;
  void* cq_map = nullptr;  // == sq_map with a single mapping
  size_t cq_map_len = 0;
  io_uring_sqe* sqes = nullptr;
  size_t sqes_len = 0;
  unsigned *sq_tail = nullptr, *sq_mask = nullptr, *sq_array = nullptr;
  unsigned *cq_head = nullptr, *cq_tail = nullptr, *cq_mask = nullptr;
  io_uring_cqe* cqes = nullptr;

  ~Ring() {
    if (sqes) ::munmap(sqes, sqes_len);
    if (cq_map && cq_map != sq_map) ::munmap(cq_map, cq_map_len);
    if (sq_map) ::munmap(sq_map, sq_map_len);
    if (fd >= 0) ::close(fd);
  }
};

Result<std::unique_ptr<IoUringBatch>> IoUringBatch::Create(unsigned entries) {
  using R = Result<std::unique_ptr<IoUringBatch>>;
  auto ring = std::make_unique<Ring>();
  io_uring_params p;
  std::memset(&p, 0, sizeof p);
  ring->fd = static_cast<int>(::syscall(__NR_io_uring_setup, entries, &p));
  if (ring->fd < 0) return R::Fail(Status::Errno(errno, "io_uring_setup", "io_uring is not available"));
  auto* base = static_cast<uint8_t*>(nullptr);
  ring->sq_map_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  ring->cq_map_len = p.cq_off.cqes + p.cq_entries * sizeof(io_uring_cqe);
  const bool single = (p.features & IORING_FEAT_SINGLE_MMAP) != 0;
  if (single && ring->cq_map_len > ring->sq_map_len) ring->sq_map_len = ring->cq_map_len;
  ring->sq_map = MapRing(ring->fd, ring->sq_map_len, IORING_OFF_SQ_RING);
  if (!ring->sq_map) return R::Fail(Status::Errno(errno, "mmap", "cannot map the io_uring submission ring"));
  ring->cq_map = single ? ring->sq_map : MapRing(ring->fd, ring->cq_map_len, IORING_OFF_CQ_RING);
  if (!ring->cq_map) return R::Fail(Status::Errno(errno, "mmap", "cannot map the io_uring completion ring"));
  ring->sqes_len = p.sq_entries * sizeof(io_uring_sqe);
  ring->sqes = static_cast<io_uring_sqe*>(MapRing(ring->fd, ring->sqes_len, IORING_OFF_SQES));
  if (!ring->sqes) return R::Fail(Status::Errno(errno, "mmap", "cannot map the io_uring submission entries"));
  base = static_cast<uint8_t*>(ring->sq_map);
  ring->sq_tail = reinterpret_cast<unsigned*>(base + p.sq_off.tail);
  ring->sq_mask = reinterpret_cast<unsigned*>(base + p.sq_off.ring_mask);
  ring->sq_array = reinterpret_cast<unsigned*>(base + p.sq_off.array);
  auto* cq = static_cast<uint8_t*>(ring->cq_map);
  ring->cq_head = reinterpret_cast<unsigned*>(cq + p.cq_off.head);
  ring->cq_tail = reinterpret_cast<unsigned*>(cq + p.cq_off.tail);
  ring->cq_mask = reinterpret_cast<unsigned*>(cq + p.cq_off.ring_mask);
  ring->cqes = reinterpret_cast<io_uring_cqe*>(cq + p.cq_off.cqes);
  return R::Of(std::unique_ptr<IoUringBatch>(new IoUringBatch(std::move(ring), p.sq_entries)));
}

IoUringBatch::IoUringBatch(std::unique_ptr<Ring> ring, unsigned entries) : ring_(std::move(ring)), entries_(entries) {}

IoUringBatch::~IoUringBatch() {
  // Unregistering puts the file now; left to the ring's teardown, which the kernel defers to
  // a worker, a closed TAP could outlive its close and keep its name busy.
  if (fixed_fd_ >= 0) ::syscall(__NR_io_uring_register, ring_->fd, IORING_UNREGISTER_FILES, nullptr, 0);
}

bool IoUringBatch::RegisterFile(int fd) {
  if (fixed_fd_ >= 0 || fd < 0) return false;
  if (::syscall(__NR_io_uring_register, ring_->fd, IORING_REGISTER_FILES, &fd, 1) != 0) return false;
  fixed_fd_ = fd;
  return true;
}

bool IoUringBatch::AddRead(int fd, void* buf, uint32_t len, uint64_t tag) {
  return Add(IORING_OP_READ, fd, reinterpret_cast<uintptr_t>(buf), len, tag);
}

bool IoUringBatch::AddWrite(int fd, const void* buf, uint32_t len, uint64_t tag) {
  return Add(IORING_OP_WRITE, fd, reinterpret_cast<uintptr_t>(buf), len, tag);
}

bool IoUringBatch::Add(uint8_t opcode, int fd, uint64_t addr, uint32_t len, uint64_t tag) {
  if (broken_ || queued_ >= entries_) return false;
  Ring& r = *ring_;
  // Only this thread moves the tail, so a plain read of it is current.
  const unsigned slot = (*r.sq_tail + queued_) & *r.sq_mask;
  io_uring_sqe& e = r.sqes[slot];
  std::memset(&e, 0, sizeof e);
  e.opcode = opcode;
  if (fd == fixed_fd_) {
    e.fd = 0;
    e.flags = IOSQE_FIXED_FILE;
  } else {
    e.fd = fd;
  }
  e.addr = addr;
  e.len = len;
  e.off = static_cast<uint64_t>(-1);  // "the current position", as read(2)/write(2); a TAP has none
  e.user_data = tag;
  e.rw_flags = RWF_NOWAIT;  // never parked on a poll: the enter that waits for all must return
  r.sq_array[slot] = slot;
  ++queued_;
  return true;
}

unsigned IoUringBatch::Reap(Completion done, void* opaque) {
  Ring& r = *ring_;
  unsigned head = *r.cq_head;
  const unsigned tail = LoadAcquire(r.cq_tail);
  unsigned n = 0;
  for (; head != tail; ++head, ++n) {
    const io_uring_cqe& c = r.cqes[head & *r.cq_mask];
    done(opaque, c.user_data, c.res);
  }
  StoreRelease(r.cq_head, head);
  return n;
}

void IoUringBatch::Run(Completion done, void* opaque) {
  if (queued_ == 0) return;
  Ring& r = *ring_;
  const unsigned first = *r.sq_tail;
  const unsigned total = queued_;
  StoreRelease(r.sq_tail, first + total);
  queued_ = 0;
  unsigned to_submit = total, submitted = 0, completed = 0;
  while (completed < total) {
    const unsigned want = submitted - completed + to_submit;
    long n = ::syscall(__NR_io_uring_enter, r.fd, to_submit, want, IORING_ENTER_GETEVENTS, nullptr, 0);
    if (n < 0 && errno == EINTR) {
      completed += Reap(done, opaque);
      continue;
    }
    if (n < 0 || (n == 0 && to_submit > 0 && submitted == completed)) {
      // Nothing more can be had from this ring: what was submitted has completed or is
      // reaped below; the rest is reported as failed and the ring is retired.
      const int err = n < 0 ? errno : EIO;
      completed += Reap(done, opaque);
      for (unsigned i = submitted; i < total; ++i) done(opaque, r.sqes[(first + i) & *r.sq_mask].user_data, -err);
      broken_ = true;
      return;
    }
    submitted += static_cast<unsigned>(n);
    to_submit -= static_cast<unsigned>(n);
    completed += Reap(done, opaque);
  }
}

}  // namespace netplane::core
