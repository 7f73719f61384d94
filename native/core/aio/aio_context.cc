// AioContext implementation: one level-triggered epoll set, an eventfd notifier, a
// lock-free list of pending bottom halves and a sorted timer list.
//
// The pieces and how they fit (see aio_context.h for the contract):
//  * Bottom halves are pushed on an intrusive lock-free stack by any thread. The home
//    thread detaches the whole stack as a "slice" and runs it; anything scheduled while a
//    slice runs lands in the fresh stack and waits for the next pass.
//  * Wake-ups follow a two-flag protocol: a thread about to sleep advertises itself in
//    notify_me_, a producer always raises notified_ and writes the eventfd only when
//    someone advertised. The sleeper re-reads notified_ after advertising, so between the
//    two of them no wake-up is lost.
//  * fd handler records are never freed while a dispatch walk may still hold a pointer
//    to them (epoll_event.data.ptr); removal marks them deleted and the sweep happens when
//    the outermost walk ends.
#include "aio/aio_context.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "base/unique_fd.h"

namespace netplane::core {

namespace {

// Bottom-half state bits (one atomic word per BH).
constexpr unsigned kBhPending = 1u << 0;    // linked in the pending stack or a slice
constexpr unsigned kBhScheduled = 1u << 1;  // the callback should run
constexpr unsigned kBhDeleted = 1u << 2;    // free it, never run it again
constexpr unsigned kBhOneshot = 1u << 3;    // free it after it ran
constexpr unsigned kBhIdle = 1u << 4;       // no progress, caps the sleep at 10 ms

constexpr int64_t kIdleBhTimeoutNs = 10'000'000;
constexpr int64_t kPollFirstWindowNs = 4000;  // first grow step from a window of 0
constexpr int kMaxEvents = 128;

// epoll_event.data.ptr of the context's own notifier (not a handler record).
char notifier_tag;

int64_t Min(int64_t a, int64_t b) {  // -1 = infinite
  if (a < 0) return b;
  if (b < 0) return a;
  return std::min(a, b);
}

}  // namespace

struct BottomHalf {
  AioContext::Impl* ctx = nullptr;
  BhCallback cb = nullptr;
  void* opaque = nullptr;
  const char* name = "";
  std::function<void()> oneshot_fn;
  std::atomic<unsigned> flags{0};
  BottomHalf* next = nullptr;  // link in the pending stack / a slice
  // Registry of every BH of the context, so the context frees the ones never deleted.
  BottomHalf* all_prev = nullptr;
  BottomHalf* all_next = nullptr;
};

struct AioTimer {
  AioContext::Impl* ctx = nullptr;
  TimerCallback cb = nullptr;
  void* opaque = nullptr;
  int64_t expire = -1;  // -1 = not armed
  AioTimer* prev = nullptr;
  AioTimer* next = nullptr;
};

namespace {

struct FdRecord {
  int fd = -1;
  IoHandler io_read = nullptr;
  IoHandler io_write = nullptr;
  IoPollFn io_poll = nullptr;
  IoHandler io_poll_ready = nullptr;
  void* opaque = nullptr;
  bool read_enabled = true;
  bool write_enabled = true;
  bool in_epoll = false;
  bool deleted = false;
  bool poll_ready = false;  // polling found it ready; io_poll_ready runs at dispatch

  uint32_t Events() const {
    uint32_t ev = 0;
    if (io_read && read_enabled) ev |= EPOLLIN;
    if (io_write && write_enabled) ev |= EPOLLOUT;
    return ev;
  }
};

// A detached run of pending BHs (see BhPoll). Lives on the stack of the BhPoll call that
// detached it; queued so a nested BhPoll finishes the outer slices first.
struct BhSlice {
  BottomHalf* head = nullptr;
  BhSlice* next = nullptr;
};

}  // namespace

struct AioContext::Impl {
  std::string name;
  UniqueFd epfd;
  UniqueFd notifier;  // eventfd
  std::thread::id home;

  // ---- wake-up protocol
  std::atomic<unsigned> notify_me{0};  // bit 0: embedder between Prepare/Check; +2 per Poll waiter
  std::atomic<bool> notified{false};
  std::atomic<uint64_t> notifier_writes{0};

  // ---- bottom halves
  std::atomic<BottomHalf*> bh_pending{nullptr};
  BhSlice* slices_head = nullptr;
  BhSlice* slices_tail = nullptr;
  std::mutex bh_all_mu;
  BottomHalf* bh_all = nullptr;

  // ---- fd handlers (home thread)
  std::vector<FdRecord*> records;  // live and deleted-not-yet-swept, insertion order
  std::unordered_map<int, FdRecord*> by_fd;
  int walking = 0;
  bool sweep_needed = false;
  int poll_disable_cnt = 0;  // live records without io_poll
  // Events gathered by Check(), dispatched by Dispatch().
  epoll_event gathered[kMaxEvents];
  int gathered_n = -1;  // -1 = nothing gathered

  // ---- timers
  mutable std::mutex timer_mu;
  AioTimer* timer_head = nullptr;
  std::unordered_set<AioTimer*> timers;

  // ---- adaptive polling
  std::atomic<int64_t> poll_max_ns{0};
  std::atomic<int64_t> poll_grow{0};
  std::atomic<int64_t> poll_shrink{0};
  std::atomic<int64_t> poll_ns{0};

  ~Impl() {
    // Free whatever was never deleted: BHs (including pending one-shots), records, timers.
    while (bh_all) {
      BottomHalf* bh = bh_all;
      bh_all = bh->all_next;
      delete bh;
    }
    for (FdRecord* r : records) delete r;
    for (AioTimer* t : timers) delete t;
  }

  // ---------------------------------------------------------------- notification
  void Notify() {
    notified.store(true, std::memory_order_seq_cst);
    if (notify_me.load(std::memory_order_seq_cst) != 0) {
      uint64_t one = 1;
      ssize_t n = ::write(notifier.get(), &one, sizeof one);
      (void)n;  // EAGAIN only when the counter is saturated: it is readable anyway
      notifier_writes.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void DrainNotifier() {
    uint64_t value;
    ssize_t n = ::read(notifier.get(), &value, sizeof value);
    (void)n;
  }

  // ---------------------------------------------------------------- bottom halves
  void Register(BottomHalf* bh) {
    std::lock_guard<std::mutex> lock(bh_all_mu);
    bh->all_next = bh_all;
    if (bh_all) bh_all->all_prev = bh;
    bh_all = bh;
  }

  void Free(BottomHalf* bh) {
    {
      std::lock_guard<std::mutex> lock(bh_all_mu);
      if (bh->all_prev)
        bh->all_prev->all_next = bh->all_next;
      else
        bh_all = bh->all_next;
      if (bh->all_next) bh->all_next->all_prev = bh->all_prev;
    }
    delete bh;
  }

  // Mark and, if it was not linked yet, push on the pending stack. Any thread.
  void Enqueue(BottomHalf* bh, unsigned add) {
    unsigned old = bh->flags.fetch_or(kBhPending | add, std::memory_order_acq_rel);
    if (!(old & kBhPending)) {
      BottomHalf* head = bh_pending.load(std::memory_order_relaxed);
      do {
        bh->next = head;
      } while (!bh_pending.compare_exchange_weak(head, bh, std::memory_order_release, std::memory_order_relaxed));
    }
    Notify();
  }

  // Run every BH pending now; ones scheduled meanwhile wait for the next pass.
  bool BhPoll() {
    BhSlice slice;
    slice.head = bh_pending.exchange(nullptr, std::memory_order_acq_rel);
    if (slices_tail)
      slices_tail->next = &slice;
    else
      slices_head = &slice;
    slices_tail = &slice;

    bool progress = false;
    while (BhSlice* s = slices_head) {
      BottomHalf* bh = s->head;
      if (!bh) {
        slices_head = s->next;
        if (!slices_head) slices_tail = nullptr;
        continue;
      }
      // Unlink before clearing PENDING: from then on another thread may push it again.
      s->head = bh->next;
      bh->next = nullptr;
      unsigned f = bh->flags.fetch_and(~(kBhPending | kBhScheduled | kBhIdle), std::memory_order_acq_rel);
      if ((f & (kBhScheduled | kBhDeleted)) == kBhScheduled) {
        if (!(f & kBhIdle)) progress = true;
        if (bh->oneshot_fn)
          bh->oneshot_fn();
        else
          bh->cb(bh->opaque);
      }
      if (f & (kBhDeleted | kBhOneshot)) Free(bh);
    }
    return progress;
  }

  // 0 if a non-idle BH is scheduled, 10 ms if only idle ones are, else -1.
  int64_t BhTimeoutNs() const {
    int64_t timeout = -1;
    auto scan = [&timeout](const BottomHalf* bh) {
      for (; bh; bh = bh->next) {
        unsigned f = bh->flags.load(std::memory_order_acquire);
        if ((f & (kBhScheduled | kBhDeleted)) != kBhScheduled) continue;
        if (!(f & kBhIdle)) return true;
        timeout = kIdleBhTimeoutNs;
      }
      return false;
    };
    if (scan(bh_pending.load(std::memory_order_acquire))) return 0;
    for (const BhSlice* s = slices_head; s; s = s->next) {
      if (scan(s->head)) return 0;
    }
    return timeout;
  }

  bool AnyBhScheduled() const { return BhTimeoutNs() >= 0; }

  // ---------------------------------------------------------------- fd handlers
  Status EpollUpdate(FdRecord* r) {
    uint32_t ev = r->Events();
    if (ev == 0) {
      if (r->in_epoll) ::epoll_ctl(epfd.get(), EPOLL_CTL_DEL, r->fd, nullptr);
      r->in_epoll = false;
      return Status::Ok();
    }
    epoll_event e{};
    e.events = ev;
    e.data.ptr = r;
    int op = r->in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (::epoll_ctl(epfd.get(), op, r->fd, &e) != 0) {
      int err = errno;
      return Status::Errno(err, op == EPOLL_CTL_ADD ? "epoll_ctl(EPOLL_CTL_ADD)" : "epoll_ctl(EPOLL_CTL_MOD)",
                           "cannot watch fd " + std::to_string(r->fd) + ": " + std::strerror(err));
    }
    r->in_epoll = true;
    return Status::Ok();
  }

  void MarkDeleted(FdRecord* r) {
    r->deleted = true;
    r->poll_ready = false;
    if (!r->io_poll) --poll_disable_cnt;
    sweep_needed = true;
    if (walking == 0) Sweep();
  }

  void Sweep() {
    if (!sweep_needed) return;
    sweep_needed = false;
    auto dead = std::stable_partition(records.begin(), records.end(), [](const FdRecord* r) { return !r->deleted; });
    for (auto it = dead; it != records.end(); ++it) delete *it;
    records.erase(dead, records.end());
  }

  void EndWalk() {
    if (--walking == 0) Sweep();
  }

  // Run the handlers of a batch of epoll events. Notifier events only drain it.
  bool DispatchEvents(const epoll_event* evs, int n) {
    bool progress = false;
    ++walking;
    for (int i = 0; i < n; ++i) {
      if (evs[i].data.ptr == &notifier_tag) {
        DrainNotifier();
        continue;
      }
      auto* r = static_cast<FdRecord*>(evs[i].data.ptr);
      uint32_t rev = evs[i].events;
      // ERR and HUP wake the reader too: it is the one that will see the EOF / error.
      if (!r->deleted && r->io_read && r->read_enabled && (rev & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))) {
        r->io_read(r->opaque);
        progress = true;
      }
      if (!r->deleted && r->io_write && r->write_enabled && (rev & (EPOLLOUT | EPOLLERR))) {
        r->io_write(r->opaque);
        progress = true;
      }
    }
    EndWalk();
    return progress;
  }

  bool DispatchPollReady() {
    bool progress = false;
    ++walking;
    // Index loop: callbacks may append records (never erase: we are walking).
    for (size_t i = 0; i < records.size(); ++i) {
      FdRecord* r = records[i];
      if (!r->poll_ready) continue;
      r->poll_ready = false;
      if (r->deleted || !r->io_poll_ready) continue;
      r->io_poll_ready(r->opaque);
      progress = true;
    }
    EndWalk();
    return progress;
  }

  // Spin for up to budget_ns (at least one round) over the io_poll callbacks and, while
  // some handler has none (a TAP: only the kernel knows when it is readable), over a
  // non-blocking epoll_wait into evs (*n events). True if a handler became ready, epoll
  // reported events or a notification arrived.
  bool RunPollHandlers(int64_t budget_ns, epoll_event* evs, int* n) {
    int64_t end = AioContext::NowNs() + budget_ns;
    bool found = false;
    ++walking;
    do {
      for (size_t i = 0; i < records.size(); ++i) {
        FdRecord* r = records[i];
        if (r->deleted || !r->io_poll || !r->read_enabled) continue;
        if (r->io_poll(r->opaque)) {
          r->poll_ready = true;
          found = true;
        }
      }
      if (poll_disable_cnt > 0 && !found) {
        *n = Wait(evs, 0);
        if (*n > 0) found = true;
      }
      if (notified.load(std::memory_order_acquire)) found = true;
    } while (!found && AioContext::NowNs() < end);
    EndWalk();
    return found;
  }

  void AdjustPollWindow(int64_t block_ns) {
    int64_t max = poll_max_ns.load(std::memory_order_relaxed);
    int64_t ns = poll_ns.load(std::memory_order_relaxed);
    if (block_ns <= ns) return;  // the window was big enough: keep it
    if (block_ns > max) {        // we slept for long anyway: polling was wasted, shrink
      int64_t shrink = poll_shrink.load(std::memory_order_relaxed);
      ns = shrink > 0 ? ns / shrink : 0;
    } else if (ns < max) {  // a slightly longer window would have caught it: grow
      int64_t grow = poll_grow.load(std::memory_order_relaxed);
      if (grow <= 0) grow = 2;
      ns = ns == 0 ? kPollFirstWindowNs : ns * grow;
      if (ns > max) ns = max;
    }
    poll_ns.store(ns, std::memory_order_relaxed);
  }

  // ---------------------------------------------------------------- timers
  void TimerUnlockedUnlink(AioTimer* t) {
    if (t->expire < 0) return;
    if (t->prev)
      t->prev->next = t->next;
    else
      timer_head = t->next;
    if (t->next) t->next->prev = t->prev;
    t->prev = t->next = nullptr;
    t->expire = -1;
  }

  int64_t TimerDeadlineNs() const {
    std::lock_guard<std::mutex> lock(timer_mu);
    if (!timer_head) return -1;
    int64_t left = timer_head->expire - AioContext::NowNs();
    return left > 0 ? left : 0;
  }

  bool RunTimers() {
    bool progress = false;
    const int64_t now = AioContext::NowNs();
    for (;;) {
      TimerCallback cb;
      void* opaque;
      {
        std::lock_guard<std::mutex> lock(timer_mu);
        AioTimer* t = timer_head;
        if (!t || t->expire > now) break;
        TimerUnlockedUnlink(t);  // inactive before the callback, which may re-arm it
        cb = t->cb;
        opaque = t->opaque;
      }
      cb(opaque);
      progress = true;
    }
    return progress;
  }

  int64_t ComputeTimeoutNs() const { return Min(BhTimeoutNs(), TimerDeadlineNs()); }

  // ---------------------------------------------------------------- waiting
  int Wait(epoll_event* evs, int64_t timeout_ns) {
    int n = ::epoll_wait(epfd.get(), evs, kMaxEvents, static_cast<int>(AioContext::TimeoutNsToMs(timeout_ns)));
    return n < 0 ? 0 : n;  // EINTR: nothing ready
  }

  void DropGathered() {
    if (gathered_n >= 0) {
      gathered_n = -1;
      EndWalk();
    }
  }

  void Gather() {
    DropGathered();
    int n = Wait(gathered, 0);
    if (n > 0) {
      ++walking;  // the gathered pointers must stay valid until Dispatch
      gathered_n = n;
    }
  }
};

// ================================================================== AioContext

Result<std::unique_ptr<AioContext>> AioContext::Create(std::string name) {
  auto impl = std::make_unique<Impl>();
  impl->name = std::move(name);
  impl->home = std::this_thread::get_id();
  impl->epfd.Reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!impl->epfd.valid()) {
    int err = errno;
    return Result<std::unique_ptr<AioContext>>::Fail(
        Status::Errno(err, "epoll_create1", "cannot create event loop: " + std::string(std::strerror(err))));
  }
  impl->notifier.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!impl->notifier.valid()) {
    int err = errno;
    return Result<std::unique_ptr<AioContext>>::Fail(
        Status::Errno(err, "eventfd", "cannot create event notifier: " + std::string(std::strerror(err))));
  }
  epoll_event e{};
  e.events = EPOLLIN;
  e.data.ptr = &notifier_tag;
  if (::epoll_ctl(impl->epfd.get(), EPOLL_CTL_ADD, impl->notifier.get(), &e) != 0) {
    int err = errno;
    return Result<std::unique_ptr<AioContext>>::Fail(Status::Errno(
        err, "epoll_ctl(EPOLL_CTL_ADD)", "cannot watch event notifier: " + std::string(std::strerror(err))));
  }
  return Result<std::unique_ptr<AioContext>>::Of(std::unique_ptr<AioContext>(new AioContext(std::move(impl))));
}

AioContext::AioContext(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AioContext::~AioContext() = default;

const std::string& AioContext::name() const { return impl_->name; }

// ---- fd handlers

Status AioContext::SetFdHandler(int fd, IoHandler io_read, IoHandler io_write, IoPollFn io_poll,
                                IoHandler io_poll_ready, void* opaque) {
  if (io_poll && !io_poll_ready) io_poll = nullptr;
  if (!io_read && !io_write && !io_poll) {
    RemoveFdHandler(fd);
    return Status::Ok();
  }
  if (fd < 0)
    return Status::Errno(EBADF, "epoll_ctl(EPOLL_CTL_ADD)",
                         "cannot watch fd " + std::to_string(fd) + ": bad file descriptor");
  Impl& d = *impl_;
  auto rec = std::make_unique<FdRecord>();
  rec->fd = fd;
  rec->io_read = io_read;
  rec->io_write = io_write;
  rec->io_poll = io_poll;
  rec->io_poll_ready = io_poll_ready;
  rec->opaque = opaque;
  auto it = d.by_fd.find(fd);
  FdRecord* old = it == d.by_fd.end() ? nullptr : it->second;
  // Take over the old record's epoll registration (MOD re-points data.ptr at the new one).
  rec->in_epoll = old && old->in_epoll;
  Status st = d.EpollUpdate(rec.get());
  if (!st.ok()) return st;
  if (old) {
    old->in_epoll = false;
    d.MarkDeleted(old);
  }
  FdRecord* r = rec.release();
  if (!r->io_poll) ++d.poll_disable_cnt;
  d.records.push_back(r);
  d.by_fd[fd] = r;
  d.Notify();
  return Status::Ok();
}

void AioContext::RemoveFdHandler(int fd) {
  Impl& d = *impl_;
  auto it = d.by_fd.find(fd);
  if (it == d.by_fd.end()) return;
  FdRecord* r = it->second;
  d.by_fd.erase(it);
  // The fd may already be closed (then the kernel dropped it from the set): ignore errors.
  if (r->in_epoll) ::epoll_ctl(d.epfd.get(), EPOLL_CTL_DEL, fd, nullptr);
  r->in_epoll = false;
  d.MarkDeleted(r);
  d.Notify();
}

bool AioContext::HasFdHandler(int fd) const { return impl_->by_fd.count(fd) != 0; }

Status AioContext::SetFdPolling(int fd, bool read, bool write) {
  Impl& d = *impl_;
  auto it = d.by_fd.find(fd);
  if (it == d.by_fd.end()) return Status::Ok();
  FdRecord* r = it->second;
  bool old_read = r->read_enabled, old_write = r->write_enabled;
  r->read_enabled = read;
  r->write_enabled = write;
  Status st = d.EpollUpdate(r);
  if (!st.ok()) {
    r->read_enabled = old_read;
    r->write_enabled = old_write;
    return st;
  }
  if (!read) r->poll_ready = false;
  d.Notify();
  return Status::Ok();
}

// ---- bottom halves

BottomHalf* AioContext::NewBh(BhCallback cb, void* opaque, const char* name) {
  auto* bh = new BottomHalf();
  bh->ctx = impl_.get();
  bh->cb = cb;
  bh->opaque = opaque;
  bh->name = name ? name : "";
  impl_->Register(bh);
  return bh;
}

void AioContext::ScheduleBh(BottomHalf* bh) { bh->ctx->Enqueue(bh, kBhScheduled); }
void AioContext::ScheduleBhIdle(BottomHalf* bh) { bh->ctx->Enqueue(bh, kBhScheduled | kBhIdle); }
// Cancel only clears the run request: the BH may stay linked and is skipped when reached.
void AioContext::CancelBh(BottomHalf* bh) { bh->flags.fetch_and(~kBhScheduled, std::memory_order_acq_rel); }
void AioContext::DeleteBh(BottomHalf* bh) { bh->ctx->Enqueue(bh, kBhDeleted); }

void AioContext::ScheduleOneshot(std::function<void()> fn, const char* name) {
  auto* bh = new BottomHalf();
  bh->ctx = impl_.get();
  bh->name = name ? name : "oneshot";
  bh->oneshot_fn = std::move(fn);
  bh->flags.store(kBhOneshot, std::memory_order_relaxed);
  impl_->Register(bh);
  impl_->Enqueue(bh, kBhScheduled);
}

// ---- timers

int64_t AioContext::NowNs() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

AioTimer* AioContext::NewTimer(TimerCallback cb, void* opaque) {
  auto* t = new AioTimer();
  t->ctx = impl_.get();
  t->cb = cb;
  t->opaque = opaque;
  std::lock_guard<std::mutex> lock(impl_->timer_mu);
  impl_->timers.insert(t);
  return t;
}

void AioContext::TimerMod(AioTimer* t, int64_t expire_ns) {
  Impl& d = *impl_;
  if (expire_ns < 0) expire_ns = 0;
  bool first;
  {
    std::lock_guard<std::mutex> lock(d.timer_mu);
    d.TimerUnlockedUnlink(t);
    // After every timer due at or before it: equal deadlines fire in arming order.
    AioTimer* prev = nullptr;
    AioTimer* cur = d.timer_head;
    while (cur && cur->expire <= expire_ns) {
      prev = cur;
      cur = cur->next;
    }
    t->expire = expire_ns;
    t->prev = prev;
    t->next = cur;
    if (cur) cur->prev = t;
    if (prev)
      prev->next = t;
    else
      d.timer_head = t;
    first = prev == nullptr;
  }
  // A new earliest deadline: a loop asleep on the old one must recompute its timeout.
  if (first) d.Notify();
}

void AioContext::TimerDel(AioTimer* t) {
  std::lock_guard<std::mutex> lock(impl_->timer_mu);
  impl_->TimerUnlockedUnlink(t);
}

void AioContext::TimerFree(AioTimer* t) {
  if (!t) return;
  std::lock_guard<std::mutex> lock(impl_->timer_mu);
  impl_->TimerUnlockedUnlink(t);
  impl_->timers.erase(t);
  delete t;
}

bool AioContext::TimerPending(const AioTimer* t) const {
  std::lock_guard<std::mutex> lock(impl_->timer_mu);
  return t->expire >= 0;
}

// ---- notification

void AioContext::Notify() { impl_->Notify(); }
void AioContext::NotifyAccept() { impl_->notified.store(false, std::memory_order_release); }
uint64_t AioContext::notifier_writes() const { return impl_->notifier_writes.load(std::memory_order_relaxed); }

// ---- running

int64_t AioContext::TimeoutNsToMs(int64_t ns) {
  if (ns < 0) return -1;
  if (ns == 0) return 0;
  int64_t ms = ns / 1'000'000 + (ns % 1'000'000 != 0 ? 1 : 0);
  return std::min<int64_t>(ms, INT32_MAX);
}

bool AioContext::Poll(bool blocking) {
  Impl& d = *impl_;
  d.DropGathered();  // a Check() not followed by Dispatch(): those events are stale
  int64_t timeout = blocking ? d.ComputeTimeoutNs() : 0;
  // Userspace polling when it is switched on: io_poll callbacks, and a non-blocking epoll
  // for handlers without one.
  const bool polling = d.poll_max_ns.load(std::memory_order_relaxed) > 0;
  const int64_t start = polling ? NowNs() : 0;
  bool poll_hit = false;
  int64_t window = d.poll_ns.load(std::memory_order_relaxed);
  epoll_event evs[kMaxEvents];
  int n = 0;
  if (polling && window > 0 && timeout != 0) {
    poll_hit = d.RunPollHandlers(timeout < 0 ? window : std::min(timeout, window), evs, &n);
    if (poll_hit) timeout = 0;
  }

  bool advertised = false;
  if (timeout != 0) {
    d.notify_me.fetch_add(2, std::memory_order_seq_cst);
    advertised = true;
    // A producer that ran before we advertised saw notify_me == 0 and skipped the eventfd:
    // its notified flag tells us not to sleep.
    if (d.notified.load(std::memory_order_seq_cst)) timeout = 0;
  }
  if (!poll_hit) {
    const int64_t deadline = timeout > 0 ? NowNs() + timeout : 0;
    n = d.Wait(evs, timeout);
    // epoll's ms granularity: never report "timed out" before a timer's deadline.
    while (n == 0 && timeout > 0 && NowNs() < deadline) n = d.Wait(evs, deadline - NowNs());
  }
  if (advertised) d.notify_me.fetch_sub(2, std::memory_order_release);
  NotifyAccept();
  if (polling && blocking) d.AdjustPollWindow(NowNs() - start);

  // evs holds record pointers: keep removals deferred until the batch is dispatched (the
  // BHs that run first may remove handlers).
  ++d.walking;
  bool progress = d.BhPoll();
  if (d.DispatchEvents(evs, n)) progress = true;
  if (d.DispatchPollReady()) progress = true;
  d.EndWalk();
  if (d.RunTimers()) progress = true;
  return progress;
}

int64_t AioContext::Prepare() {
  Impl& d = *impl_;
  d.notify_me.fetch_or(1, std::memory_order_seq_cst);
  return d.ComputeTimeoutNs();
}

bool AioContext::Check() {
  Impl& d = *impl_;
  d.notify_me.fetch_and(~1u, std::memory_order_release);
  NotifyAccept();
  d.Gather();
  if (d.gathered_n > 0) return true;
  if (d.AnyBhScheduled()) return true;
  return d.TimerDeadlineNs() == 0;
}

bool AioContext::Dispatch() {
  Impl& d = *impl_;
  bool progress = d.BhPoll();
  if (d.gathered_n < 0) d.Gather();
  if (d.gathered_n > 0) {
    // Copy: a callback may run a nested Check/Dispatch that reuses the gather buffer.
    epoll_event evs[kMaxEvents];
    int n = d.gathered_n;
    std::copy(d.gathered, d.gathered + n, evs);
    d.gathered_n = -1;  // the walk reference taken by Gather moves to this dispatch
    if (d.DispatchEvents(evs, n)) progress = true;
    d.EndWalk();
  }
  if (d.RunTimers()) progress = true;
  return progress;
}

int AioContext::EpollFd() const { return impl_->epfd.get(); }
int64_t AioContext::NextTimeoutNs() const { return impl_->ComputeTimeoutNs(); }

Status AioContext::SetPollParams(const PollParams& p) {
  if (p.max_ns < 0) return Status::Invalid("poll-max-ns value must be in range [0, " + std::to_string(INT64_MAX) + "]");
  if (p.grow < 0) return Status::Invalid("poll-grow value must be in range [0, " + std::to_string(INT64_MAX) + "]");
  if (p.shrink < 0) return Status::Invalid("poll-shrink value must be in range [0, " + std::to_string(INT64_MAX) + "]");
  impl_->poll_max_ns.store(p.max_ns, std::memory_order_relaxed);
  impl_->poll_grow.store(p.grow, std::memory_order_relaxed);
  impl_->poll_shrink.store(p.shrink, std::memory_order_relaxed);
  impl_->poll_ns.store(0, std::memory_order_relaxed);
  impl_->Notify();
  return Status::Ok();
}

PollParams AioContext::poll_params() const {
  PollParams p;
  p.max_ns = impl_->poll_max_ns.load(std::memory_order_relaxed);
  p.grow = impl_->poll_grow.load(std::memory_order_relaxed);
  p.shrink = impl_->poll_shrink.load(std::memory_order_relaxed);
  return p;
}

int64_t AioContext::current_poll_ns() const { return impl_->poll_ns.load(std::memory_order_relaxed); }

void AioContext::SetHomeThread() { impl_->home = std::this_thread::get_id(); }
bool AioContext::InHomeThread() const { return impl_->home == std::this_thread::get_id(); }

}  // namespace netplane::core
