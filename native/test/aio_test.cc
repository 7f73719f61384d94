// AioContext conformance suite (QEMU's test-aio inventory and the event-loop items of the
// semantics reference, section 9 item 18, in our own words).
//
// Every AIO_CASE runs three times:
//   aio_poll.<case>      a context polled directly by the test thread (Poll(blocking));
//   aio_phases.<case>    the same context driven like an embedding loop would drive it:
//                        Prepare, poll(2) on EpollFd(), Check, Dispatch (QEMU's
//                        aio-gsource twins; the libuv embedding does exactly this);
//   aio_iothread.<case>  the context of a running IoThread: the case body runs on that
//                        thread (RunSync) and drives it with nested Poll calls, so every
//                        callback is a native callback on the IoThread.
// AIO_POLL_CASE (adaptive polling) skips the phases variant: an embedded context never
// busy-polls.
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include "aio/aio_context.h"
#include "aio/iothread.h"
#include "base/unique_fd.h"
#include "test.h"

using netplane::core::AioContext;
using netplane::core::AioTimer;
using netplane::core::BottomHalf;
using netplane::core::IoThread;
using netplane::core::PollParams;
using netplane::core::UniqueFd;

namespace {

enum class Mode { kPoll, kPhases, kIoThread };

struct Loop {
  AioContext& ctx;
  Mode mode;

  // One loop iteration; returns whether progress was made.
  bool Iterate(bool blocking) {
    if (mode != Mode::kPhases) return ctx.Poll(blocking);
    for (;;) {
      int64_t timeout = ctx.Prepare();
      if (!blocking) timeout = 0;
      if (timeout != 0) {
        pollfd p{ctx.EpollFd(), POLLIN, 0};
        ::poll(&p, 1, static_cast<int>(AioContext::TimeoutNsToMs(timeout)));
      }
      if (ctx.Check()) return ctx.Dispatch();
      if (!blocking) return false;
    }
  }

  // Consume stale wake-ups (e.g. the notification that delivered the case to an IoThread).
  void Settle() {
    for (int i = 0; i < 100 && Iterate(false); ++i) {
    }
  }
};

using CaseFn = void (*)(Loop&);

void RunCase(Mode mode, CaseFn fn) {
  if (mode != Mode::kIoThread) {
    auto ctx = AioContext::Create("np-test");
    REQUIRE(ctx.ok());
    Loop loop{*ctx.value, mode};
    fn(loop);
    loop.Settle();
    return;
  }
  auto thread = IoThread::Start("np-aio-case");
  REQUIRE(thread.ok());
  std::exception_ptr error;
  bool ran_on_thread = false;
  thread.value->RunSync([&] {
    ran_on_thread = thread.value->context().InHomeThread();
    Loop loop{thread.value->context(), mode};
    loop.Settle();
    try {
      fn(loop);
    } catch (...) {
      error = std::current_exception();
    }
    loop.Settle();
  });
  CHECK(ran_on_thread);
  thread.value->Stop();
  if (error) std::rethrow_exception(error);
}

#define AIO_CASE(name)                                                \
  static void Case_##name(Loop& loop);                                \
  TEST(aio_poll, name) { RunCase(Mode::kPoll, Case_##name); }         \
  TEST(aio_phases, name) { RunCase(Mode::kPhases, Case_##name); }     \
  TEST(aio_iothread, name) { RunCase(Mode::kIoThread, Case_##name); } \
  static void Case_##name(Loop& loop)

#define AIO_POLL_CASE(name)                                           \
  static void Case_##name(Loop& loop);                                \
  TEST(aio_poll, name) { RunCase(Mode::kPoll, Case_##name); }         \
  TEST(aio_iothread, name) { RunCase(Mode::kIoThread, Case_##name); } \
  static void Case_##name(Loop& loop)

// ---- helpers ----------------------------------------------------------------------------

// A bottom half that counts its runs, optionally re-schedules itself up to `max` runs, and
// checks it always runs on its context's home thread.
struct CountingBh {
  AioContext* ctx = nullptr;
  BottomHalf* bh = nullptr;
  int runs = 0;
  int max = 0;  // > 0: re-schedule until runs == max
  bool delete_at_max = false;
  bool deleted = false;

  explicit CountingBh(AioContext& c, int max_runs = 0, bool del = false) : ctx(&c), max(max_runs), delete_at_max(del) {
    bh = c.NewBh(&CountingBh::Run, this, "counting");
  }
  static void Run(void* opaque) {
    auto* self = static_cast<CountingBh*>(opaque);
    CHECK(self->ctx->InHomeThread());
    ++self->runs;
    if (self->max > 0 && self->runs < self->max) {
      AioContext::ScheduleBh(self->bh);
    } else if (self->delete_at_max) {
      AioContext::DeleteBh(self->bh);
      self->deleted = true;
    }
  }
  void Delete() {
    if (!deleted) AioContext::DeleteBh(bh);
    deleted = true;
  }
};

// QEMU's EventNotifier: an eventfd that is "set" by writing and cleared by reading.
struct Notifier {
  UniqueFd fd{::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
  void Set() {
    uint64_t one = 1;
    CHECK_EQ(::write(fd.get(), &one, sizeof one), static_cast<ssize_t>(sizeof one));
  }
  bool TestAndClear() {
    uint64_t value;
    return ::read(fd.get(), &value, sizeof value) == static_cast<ssize_t>(sizeof value);
  }
};

// A read handler on a notifier: counts calls, clears the notifier, and while `active` > 0
// counts it down and (with auto_set) sets the notifier again.
struct NotifierHandler {
  AioContext* ctx;
  Notifier notifier;
  int calls = 0;
  int active = 0;
  bool auto_set = false;
  bool clear = true;

  explicit NotifierHandler(AioContext& c) : ctx(&c) {}
  static void OnRead(void* opaque) {
    auto* self = static_cast<NotifierHandler*>(opaque);
    CHECK(self->ctx->InHomeThread());
    ++self->calls;
    if (self->clear) self->notifier.TestAndClear();
    if (self->active > 0) --self->active;
    if (self->auto_set && self->active > 0) self->notifier.Set();
  }
  void Register() { CHECK(ctx->SetFdHandler(notifier.fd.get(), OnRead, nullptr, nullptr, nullptr, this).ok()); }
  void Unregister() { ctx->RemoveFdHandler(notifier.fd.get()); }
};

// A timer that fires into a counter and can re-arm itself `rearm` more times.
struct CountingTimer {
  AioContext* ctx;
  AioTimer* timer;
  int fires = 0;
  int rearm = 0;
  int64_t interval_ns = 0;
  std::vector<int>* order = nullptr;
  int id = 0;

  explicit CountingTimer(AioContext& c) : ctx(&c) { timer = c.NewTimer(&CountingTimer::Fire, this); }
  ~CountingTimer() { ctx->TimerFree(timer); }
  static void Fire(void* opaque) {
    auto* self = static_cast<CountingTimer*>(opaque);
    CHECK(self->ctx->InHomeThread());
    ++self->fires;
    if (self->order) self->order->push_back(self->id);
    if (self->rearm > 0) {
      --self->rearm;
      self->ctx->TimerMod(self->timer, AioContext::NowNs() + self->interval_ns);
    }
  }
};

// A long safety timer: a case that would otherwise block forever wakes up and fails.
struct Watchdog {
  CountingTimer t;
  explicit Watchdog(AioContext& c, int64_t ns = 5'000'000'000) : t(c) { c.TimerMod(t.timer, AioContext::NowNs() + ns); }
  bool fired() const { return t.fires > 0; }
};

bool Readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

struct Pipe {
  UniqueFd r, w;
  Pipe() {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0);
    r.Reset(fds[0]);
    w.Reset(fds[1]);
  }
};

struct SocketPair {
  UniqueFd a, b;
  SocketPair() {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
    a.Reset(fds[0]);
    b.Reset(fds[1]);
  }
};

void WriteByte(int fd) { CHECK_EQ(::write(fd, "x", 1), 1); }

}  // namespace

// ======================================================================= bottom halves

// /aio/bh/schedule: nothing runs until polled; one blocking poll runs it once.
AIO_CASE(bh_schedule) {
  CountingBh c(loop.ctx);
  AioContext::ScheduleBh(c.bh);
  CHECK_EQ(c.runs, 0);
  CHECK(loop.Iterate(true));
  CHECK_EQ(c.runs, 1);
  CHECK(!loop.Iterate(false));
  CHECK_EQ(c.runs, 1);
  c.Delete();
}

// /aio/bh/schedule10: a self-rescheduling BH runs exactly once per iteration.
AIO_CASE(bh_schedule10) {
  CountingBh c(loop.ctx, 10);
  AioContext::ScheduleBh(c.bh);
  for (int i = 1; i <= 10; ++i) {
    CHECK(loop.Iterate(false));
    CHECK_EQ(c.runs, i);
  }
  CHECK(!loop.Iterate(false));
  CHECK_EQ(c.runs, 10);
  c.Delete();
}

// /aio/bh/cancel, and "cancel does not unlink": a cancelled BH is skipped, does not hold
// the loop awake, and can be scheduled again and then runs exactly once.
AIO_CASE(bh_cancel) {
  CountingBh c(loop.ctx);
  AioContext::ScheduleBh(c.bh);
  AioContext::CancelBh(c.bh);
  CHECK_EQ(loop.ctx.NextTimeoutNs(), -1);
  CHECK(!loop.Iterate(false));
  CHECK_EQ(c.runs, 0);

  AioContext::ScheduleBh(c.bh);
  AioContext::CancelBh(c.bh);    // still linked from this schedule...
  AioContext::ScheduleBh(c.bh);  // ...so this one must not link it twice
  CHECK(loop.Iterate(false));
  CHECK_EQ(c.runs, 1);
  CHECK(!loop.Iterate(false));
  CHECK_EQ(c.runs, 1);
  c.Delete();
}

// /aio/bh/delete: deleting a scheduled BH prevents the callback; the free is deferred to
// the next BH pass (ASan checks the BH is freed exactly once).
AIO_CASE(bh_delete) {
  CountingBh c(loop.ctx);
  AioContext::ScheduleBh(c.bh);
  c.Delete();
  CHECK(!loop.Iterate(false));
  CHECK_EQ(c.runs, 0);
}

// /aio/bh/callback-delete/one: a BH deletes itself from its callback.
AIO_CASE(bh_callback_delete_one) {
  CountingBh c(loop.ctx, 1, true);
  AioContext::ScheduleBh(c.bh);
  CHECK(loop.Iterate(true));
  CHECK_EQ(c.runs, 1);
  CHECK(c.deleted);
  CHECK(!loop.Iterate(false));
  CHECK_EQ(c.runs, 1);
}

// /aio/bh/callback-delete/many: four self-deleting BHs with 1..4 runs each.
AIO_CASE(bh_callback_delete_many) {
  CountingBh a(loop.ctx, 1, true), b(loop.ctx, 2, true), c(loop.ctx, 3, true), d(loop.ctx, 4, true);
  for (CountingBh* x : {&a, &b, &c, &d}) AioContext::ScheduleBh(x->bh);
  CHECK(loop.Iterate(false));
  for (CountingBh* x : {&a, &b, &c, &d}) CHECK_EQ(x->runs, 1);
  for (int i = 0; i < 10 && loop.Iterate(false); ++i) {
  }
  CHECK_EQ(a.runs, 1);
  CHECK_EQ(b.runs, 2);
  CHECK_EQ(c.runs, 3);
  CHECK_EQ(d.runs, 4);
  for (CountingBh* x : {&a, &b, &c, &d}) CHECK(x->deleted);
  CHECK(!loop.Iterate(false));
}

// /aio/bh/flush: one blocking iteration drains a single scheduled BH.
AIO_CASE(bh_flush) {
  CountingBh c(loop.ctx);
  AioContext::ScheduleBh(c.bh);
  CHECK(loop.Iterate(true));
  CHECK_EQ(c.runs, 1);
  CHECK(!loop.Iterate(false));
  c.Delete();
}

// Scheduling is idempotent until the BH runs.
AIO_CASE(bh_schedule_idempotent) {
  CountingBh c(loop.ctx);
  for (int i = 0; i < 5; ++i) AioContext::ScheduleBh(c.bh);
  CHECK(loop.Iterate(false));
  CHECK_EQ(c.runs, 1);
  CHECK(!loop.Iterate(false));
  c.Delete();
}

// Idle BHs: cap the sleep at 10 ms, run, but are not progress.
AIO_CASE(bh_idle) {
  CountingBh idle(loop.ctx);
  AioContext::ScheduleBhIdle(idle.bh);
  CHECK_EQ(loop.ctx.NextTimeoutNs(), 10'000'000);
  CountingBh busy(loop.ctx);
  AioContext::ScheduleBh(busy.bh);
  CHECK_EQ(loop.ctx.NextTimeoutNs(), 0);  // a normal BH overrides the idle cap
  CHECK(loop.Iterate(false));             // progress comes from the normal BH only
  CHECK_EQ(idle.runs, 1);
  CHECK_EQ(busy.runs, 1);

  AioContext::ScheduleBhIdle(idle.bh);
  CHECK(!loop.Iterate(false));  // ran, but idle work is not progress
  CHECK_EQ(idle.runs, 2);

  // A blocking iteration with only an idle BH pending must wake up by itself (10 ms cap)
  // instead of sleeping until the watchdog.
  Watchdog dog(loop.ctx);
  AioContext::ScheduleBhIdle(idle.bh);
  CHECK(!loop.Iterate(true));
  CHECK_EQ(idle.runs, 3);
  CHECK(!dog.fired());
  idle.Delete();
  busy.Delete();
}

// One-shot BHs run once and free themselves; one scheduled from a BH waits for the next pass.
AIO_CASE(bh_oneshot) {
  int runs = 0;
  int nested_runs = 0;
  AioContext* ctx = &loop.ctx;
  loop.ctx.ScheduleOneshot([&] {
    CHECK(ctx->InHomeThread());
    ++runs;
    ctx->ScheduleOneshot([&] { ++nested_runs; });
  });
  CHECK(loop.Iterate(true));
  CHECK_EQ(runs, 1);
  CHECK_EQ(nested_runs, 0);
  CHECK(loop.Iterate(false));
  CHECK_EQ(nested_runs, 1);
  CHECK(!loop.Iterate(false));
  CHECK_EQ(runs, 1);
}

// A BH that polls the context from its callback finishes the outer slice in the nested
// call: the BH scheduled alongside it runs once, inside the nested poll.
AIO_CASE(bh_nested_poll_finishes_outer_slice) {
  struct Outer {
    AioContext* ctx;
    CountingBh* sibling;
    int sibling_runs_seen = -1;
  };
  CountingBh sibling(loop.ctx);
  Outer outer{&loop.ctx, &sibling};
  BottomHalf* bh = loop.ctx.NewBh(
      [](void* opaque) {
        auto* o = static_cast<Outer*>(opaque);
        o->ctx->Poll(false);
        o->sibling_runs_seen = o->sibling->runs;
      },
      &outer, "nesting");
  // Scheduled in this order, both land in the same slice.
  AioContext::ScheduleBh(sibling.bh);
  AioContext::ScheduleBh(bh);
  CHECK(loop.Iterate(false));
  CHECK_EQ(sibling.runs, 1);
  // Whichever ran first, the sibling has run by the time the nesting BH returned.
  CHECK_EQ(outer.sibling_runs_seen, 1);
  CHECK(!loop.Iterate(false));
  AioContext::DeleteBh(bh);
  sibling.Delete();
}

// ======================================================================= event notifiers

// /aio/event/add-remove: an unsignalled notifier causes no callback and no progress.
AIO_CASE(event_add_remove) {
  NotifierHandler h(loop.ctx);
  h.Register();
  CHECK(!loop.Iterate(false));
  CHECK_EQ(h.calls, 0);
  h.Unregister();
  CHECK(!loop.Iterate(false));
  CHECK_EQ(h.calls, 0);
}

// /aio/event/wait: set -> one callback on the next iteration, no repeat; after removal,
// setting it again calls nothing.
AIO_CASE(event_wait) {
  NotifierHandler h(loop.ctx);
  h.Register();
  h.notifier.Set();
  CHECK(loop.Iterate(false));
  CHECK_EQ(h.calls, 1);
  CHECK(!loop.Iterate(false));
  CHECK_EQ(h.calls, 1);
  h.Unregister();
  h.notifier.Set();
  CHECK(!loop.Iterate(false));
  CHECK_EQ(h.calls, 1);
}

// /aio/event/wait/no-flush-cb: a signalled notifier never lets a poll block; with a second
// notifier registered, each set yields exactly one callback per iteration.
AIO_CASE(event_wait_no_flush_cb) {
  Watchdog dog(loop.ctx);
  NotifierHandler data(loop.ctx);
  data.Register();
  CHECK(!loop.Iterate(false));
  CHECK_EQ(data.calls, 0);
  data.notifier.Set();
  CHECK(loop.Iterate(true));  // must not block: the fd is ready
  CHECK(!dog.fired());
  data.calls = 0;

  NotifierHandler dummy(loop.ctx);
  dummy.active = 1;
  dummy.Register();
  data.notifier.Set();
  CHECK(loop.Iterate(false));
  CHECK_EQ(data.calls, 1);
  CHECK(!loop.Iterate(false));
  CHECK_EQ(data.calls, 1);
  data.notifier.Set();
  CHECK(loop.Iterate(false));
  CHECK_EQ(data.calls, 2);
  CHECK(!loop.Iterate(false));
  CHECK_EQ(data.calls, 2);

  dummy.notifier.Set();
  for (int i = 0; i < 10 && dummy.active > 0; ++i) loop.Iterate(false);
  CHECK_EQ(dummy.active, 0);
  CHECK_EQ(dummy.calls, 1);
  CHECK_EQ(data.calls, 2);
  data.Unregister();
  dummy.Unregister();
  CHECK(!loop.Iterate(false));
}

// /aio/event/flush: a handler that signals itself again runs once per iteration until its
// counter reaches 0 (10 calls).
AIO_CASE(event_flush) {
  NotifierHandler h(loop.ctx);
  h.active = 10;
  h.auto_set = true;
  h.Register();
  h.notifier.Set();
  for (int i = 1; i <= 10; ++i) {
    CHECK(loop.Iterate(false));
    CHECK_EQ(h.calls, i);
  }
  CHECK_EQ(h.active, 0);
  CHECK(!loop.Iterate(false));
  CHECK_EQ(h.calls, 10);
  h.Unregister();
}

// Level-triggered: a handler that does not consume its fd runs again on every iteration.
AIO_CASE(event_level_triggered) {
  NotifierHandler h(loop.ctx);
  h.clear = false;
  h.Register();
  h.notifier.Set();
  for (int i = 1; i <= 3; ++i) {
    CHECK(loop.Iterate(false));
    CHECK_EQ(h.calls, i);
  }
  h.Unregister();
}

// ======================================================================= fd handlers

// Removing handlers while a dispatch walk is running is deferred: a handler that removes
// another one (and frees that one's opaque) prevents its callback in the same batch.
AIO_CASE(fd_remove_other_during_dispatch) {
  struct Side {
    AioContext* ctx;
    int fd;
    Side** other;  // slot holding the other side (nulled when freed)
    int* calls;
  };
  Pipe p1, p2;
  int calls = 0;
  Side* s1 = nullptr;
  Side* s2 = nullptr;
  s1 = new Side{&loop.ctx, p1.r.get(), &s2, &calls};
  s2 = new Side{&loop.ctx, p2.r.get(), &s1, &calls};
  auto on_read = [](void* opaque) {
    auto* self = static_cast<Side*>(opaque);
    ++*self->calls;
    Side* other = *self->other;
    if (other) {
      self->ctx->RemoveFdHandler(other->fd);
      delete other;  // freeing the opaque right after removal must be safe
      *self->other = nullptr;
    }
  };
  CHECK(loop.ctx.SetFdHandler(s1->fd, on_read, nullptr, nullptr, nullptr, s1).ok());
  CHECK(loop.ctx.SetFdHandler(s2->fd, on_read, nullptr, nullptr, nullptr, s2).ok());
  WriteByte(p1.w.get());
  WriteByte(p2.w.get());
  CHECK(loop.Iterate(false));
  CHECK_EQ(calls, 1);  // both were ready, but the first to run removed the second
  Side* survivor = s1 ? s1 : s2;
  REQUIRE(survivor != nullptr);
  loop.ctx.RemoveFdHandler(survivor->fd);
  delete survivor;
  CHECK(!loop.Iterate(false));
  CHECK_EQ(calls, 1);
}

// A handler may remove itself and free its opaque; its write callback (ready in the same
// batch) must then not run.
AIO_CASE(fd_remove_self_during_dispatch) {
  struct Self {
    AioContext* ctx;
    int fd;
    int* reads;
    int* writes;
  };
  SocketPair sp;
  int reads = 0, writes = 0;
  auto* self = new Self{&loop.ctx, sp.a.get(), &reads, &writes};
  auto on_read = [](void* opaque) {
    auto* s = static_cast<Self*>(opaque);
    ++*s->reads;
    s->ctx->RemoveFdHandler(s->fd);
    delete s;
  };
  auto on_write = [](void* opaque) { ++*static_cast<Self*>(opaque)->writes; };
  CHECK(loop.ctx.SetFdHandler(sp.a.get(), on_read, on_write, nullptr, nullptr, self).ok());
  WriteByte(sp.b.get());  // a is now readable and (always) writable
  CHECK(loop.Iterate(false));
  CHECK_EQ(reads, 1);
  CHECK_EQ(writes, 0);
  CHECK(!loop.ctx.HasFdHandler(sp.a.get()));
  CHECK(!loop.Iterate(false));
}

// Replacing a handler from inside its own callback: the old one never runs again, the new
// one picks the (still ready, level-triggered) fd up on the next iteration.
AIO_CASE(fd_replace_during_dispatch) {
  struct State {
    AioContext* ctx;
    int fd;
    int old_calls = 0;
    int new_calls = 0;
  };
  Pipe p;
  State st{&loop.ctx, p.r.get()};
  auto on_old = [](void* opaque) {
    auto* s = static_cast<State*>(opaque);
    ++s->old_calls;
    auto on_new = [](void* o) { ++static_cast<State*>(o)->new_calls; };
    CHECK(s->ctx->SetFdHandler(s->fd, on_new, nullptr, nullptr, nullptr, s).ok());
  };
  CHECK(loop.ctx.SetFdHandler(p.r.get(), on_old, nullptr, nullptr, nullptr, &st).ok());
  WriteByte(p.w.get());
  CHECK(loop.Iterate(false));
  CHECK_EQ(st.old_calls, 1);
  CHECK(loop.Iterate(false));
  CHECK_EQ(st.old_calls, 1);
  CHECK(st.new_calls >= 1);
  loop.ctx.RemoveFdHandler(p.r.get());
}

// Read handlers run on HUP/ERR too: a pipe whose write end closed, a socket whose peer
// closed; a write handler runs on EPOLLERR (pipe whose read end closed).
AIO_CASE(fd_read_handler_on_hup_err) {
  struct Hit {
    int fd;
    int calls = 0;
    ssize_t last_read = -2;
  };
  auto on_read = [](void* opaque) {
    auto* h = static_cast<Hit*>(opaque);
    ++h->calls;
    char buf[8];
    h->last_read = ::read(h->fd, buf, sizeof buf);
  };
  {
    Pipe p;
    Hit hit{p.r.get()};
    CHECK(loop.ctx.SetFdHandler(p.r.get(), on_read, nullptr, nullptr, nullptr, &hit).ok());
    CHECK(!loop.Iterate(false));
    p.w.Reset();  // writer gone: HUP on the read end, no data
    CHECK(loop.Iterate(false));
    CHECK_EQ(hit.calls, 1);
    CHECK_EQ(hit.last_read, 0);  // EOF
    loop.ctx.RemoveFdHandler(p.r.get());
  }
  {
    SocketPair sp;
    Hit hit{sp.a.get()};
    CHECK(loop.ctx.SetFdHandler(sp.a.get(), on_read, nullptr, nullptr, nullptr, &hit).ok());
    CHECK(!loop.Iterate(false));
    sp.b.Reset();  // peer closed
    CHECK(loop.Iterate(false));
    CHECK_EQ(hit.calls, 1);
    CHECK_EQ(hit.last_read, 0);
    loop.ctx.RemoveFdHandler(sp.a.get());
  }
  {
    Pipe p;
    int writes = 0;
    // Fill the pipe so the write end is not writable, then close the reader: only ERR.
    char chunk[4096] = {};
    while (::write(p.w.get(), chunk, sizeof chunk) > 0) {
    }
    CHECK(loop.ctx
              .SetFdHandler(
                  p.w.get(), nullptr, [](void* o) { ++*static_cast<int*>(o); }, nullptr, nullptr, &writes)
              .ok());
    CHECK(!loop.Iterate(false));
    CHECK_EQ(writes, 0);
    p.r.Reset();
    CHECK(loop.Iterate(false));
    CHECK_EQ(writes, 1);
    loop.ctx.RemoveFdHandler(p.w.get());
  }
}

// SetFdPolling turns directions on and off without touching the callbacks; with both off
// an fd in HUP state cannot spin the loop.
AIO_CASE(fd_set_polling) {
  struct Counts {
    int reads = 0;
    int writes = 0;
  } n;
  SocketPair sp;
  auto on_read = [](void* o) { ++static_cast<Counts*>(o)->reads; };
  auto on_write = [](void* o) { ++static_cast<Counts*>(o)->writes; };
  CHECK(loop.ctx.SetFdHandler(sp.a.get(), on_read, on_write, nullptr, nullptr, &n).ok());
  WriteByte(sp.b.get());
  CHECK(loop.Iterate(false));
  CHECK_EQ(n.reads, 1);
  CHECK_EQ(n.writes, 1);

  CHECK(loop.ctx.SetFdPolling(sp.a.get(), false, true).ok());
  CHECK(loop.Iterate(false));
  CHECK_EQ(n.reads, 1);
  CHECK_EQ(n.writes, 2);

  CHECK(loop.ctx.SetFdPolling(sp.a.get(), false, false).ok());
  sp.b.Reset();  // HUP on a: must not wake anything while both directions are off
  CHECK(!loop.Iterate(false));
  CHECK_EQ(n.reads, 1);
  CHECK_EQ(n.writes, 2);

  CHECK(loop.ctx.SetFdPolling(sp.a.get(), true, false).ok());
  CHECK(loop.Iterate(false));
  CHECK_EQ(n.reads, 2);
  CHECK_EQ(n.writes, 2);
  loop.ctx.RemoveFdHandler(sp.a.get());
  CHECK(!loop.Iterate(false));
}

// Bad fds are reported, never crash, and leave no handler behind.
AIO_CASE(fd_bad_fd) {
  int dummy = 0;
  auto cb = [](void*) {};
  auto st = loop.ctx.SetFdHandler(-1, cb, nullptr, nullptr, nullptr, &dummy);
  CHECK(!st.ok());
  CHECK_EQ(st.err, EBADF);
  Pipe p;
  int closed_fd = p.r.get();
  p.r.Reset();
  st = loop.ctx.SetFdHandler(closed_fd, cb, nullptr, nullptr, nullptr, &dummy);
  CHECK(!st.ok());
  CHECK_EQ(st.err, EBADF);
  CHECK(!loop.ctx.HasFdHandler(closed_fd));
  // Removing an unknown fd and toggling an unknown fd are no-ops.
  loop.ctx.RemoveFdHandler(12345);
  CHECK(loop.ctx.SetFdPolling(12345, true, true).ok());
  CHECK(!loop.Iterate(false));
}

// ======================================================================= timers

// /aio/timer/schedule: not early, fires on the first iteration after expiry, a re-armed
// timer fires again on a blocking iteration, no spurious progress.
AIO_CASE(timer_schedule) {
  constexpr int64_t kInterval = 100'000'000;  // 100 ms
  CountingTimer t(loop.ctx);
  t.rearm = 1;
  t.interval_ns = kInterval;
  const int64_t expire = AioContext::NowNs() + kInterval;
  loop.ctx.TimerMod(t.timer, expire);
  CHECK(loop.ctx.TimerPending(t.timer));
  CHECK(!loop.Iterate(false));
  CHECK_EQ(t.fires, 0);
  while (AioContext::NowNs() < expire) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  CHECK(loop.Iterate(false));
  CHECK_EQ(t.fires, 1);
  CHECK(loop.ctx.TimerPending(t.timer));  // re-armed by its callback
  CHECK(!loop.Iterate(false));
  CHECK_EQ(t.fires, 1);
  CHECK(loop.Iterate(true));  // sleeps until the re-armed deadline
  CHECK_EQ(t.fires, 2);
  CHECK(!loop.ctx.TimerPending(t.timer));
  CHECK(!loop.Iterate(false));
}

// Equal deadlines fire in arming order; re-arming moves a timer behind its equals.
AIO_CASE(timer_fifo_equal_deadlines) {
  std::vector<int> order;
  CountingTimer a(loop.ctx), b(loop.ctx), c(loop.ctx);
  a.id = 1, b.id = 2, c.id = 3;
  a.order = b.order = c.order = &order;
  const int64_t when = AioContext::NowNs() - 1;  // already due
  loop.ctx.TimerMod(b.timer, when);
  loop.ctx.TimerMod(a.timer, when);
  loop.ctx.TimerMod(c.timer, when);
  loop.ctx.TimerMod(b.timer, when);  // re-armed: now last among equals
  CHECK(loop.Iterate(false));
  CHECK_EQ(order.size(), 3u);
  if (order.size() == 3) {
    CHECK_EQ(order[0], 1);
    CHECK_EQ(order[1], 3);
    CHECK_EQ(order[2], 2);
  }
}

// TimerDel disarms; a deleted timer never fires.
AIO_CASE(timer_del) {
  CountingTimer t(loop.ctx);
  loop.ctx.TimerMod(t.timer, AioContext::NowNs() - 1);
  loop.ctx.TimerDel(t.timer);
  CHECK(!loop.ctx.TimerPending(t.timer));
  CHECK_EQ(loop.ctx.NextTimeoutNs(), -1);
  CHECK(!loop.Iterate(false));
  CHECK_EQ(t.fires, 0);
}

// A timer that becomes the earliest notifies a waiter (so a sleeping loop recomputes its
// timeout); one that lands behind another does not.
AIO_CASE(timer_new_earliest_notifies) {
  CountingTimer t1(loop.ctx), t2(loop.ctx), t3(loop.ctx);
  const int64_t now = AioContext::NowNs();
  loop.ctx.Prepare();  // advertise a waiter
  uint64_t w0 = loop.ctx.notifier_writes();
  loop.ctx.TimerMod(t1.timer, now + 2'000'000'000);
  CHECK_EQ(loop.ctx.notifier_writes(), w0 + 1);
  loop.ctx.TimerMod(t2.timer, now + 3'000'000'000);  // behind t1: no wake-up needed
  CHECK_EQ(loop.ctx.notifier_writes(), w0 + 1);
  loop.ctx.TimerMod(t3.timer, now + 1'000'000'000);  // new earliest
  CHECK_EQ(loop.ctx.notifier_writes(), w0 + 2);
  loop.ctx.Check();
  loop.ctx.Dispatch();
}

// Timeouts round up to whole ms for a poll(2)-style wait, so a loop never wakes early.
AIO_CASE(timeout_rounds_up) {
  CHECK_EQ(AioContext::TimeoutNsToMs(-1), -1);
  CHECK_EQ(AioContext::TimeoutNsToMs(0), 0);
  CHECK_EQ(AioContext::TimeoutNsToMs(1), 1);
  CHECK_EQ(AioContext::TimeoutNsToMs(999'999), 1);
  CHECK_EQ(AioContext::TimeoutNsToMs(1'000'000), 1);
  CHECK_EQ(AioContext::TimeoutNsToMs(1'000'001), 2);
  CHECK_EQ(AioContext::TimeoutNsToMs(INT64_MAX), static_cast<int64_t>(INT32_MAX));
  CountingTimer t(loop.ctx);
  loop.ctx.TimerMod(t.timer, AioContext::NowNs() + 500'000'000 + 300);
  int64_t ns = loop.ctx.Prepare();
  CHECK(ns > 0);
  int64_t ms = AioContext::TimeoutNsToMs(ns);
  CHECK(ms * 1'000'000 >= ns);
  CHECK(ms * 1'000'000 - ns < 1'000'000);
  loop.ctx.Check();
  loop.ctx.Dispatch();
}

// ======================================================================= notification

// The eventfd is written only when a waiter advertised itself; otherwise Notify only
// raises the flag that a would-be sleeper re-checks.
AIO_CASE(notify_only_when_waiter) {
  uint64_t w0 = loop.ctx.notifier_writes();
  loop.ctx.Notify();
  CHECK_EQ(loop.ctx.notifier_writes(), w0);
  CHECK(!Readable(loop.ctx.EpollFd()));
  loop.ctx.NotifyAccept();

  loop.ctx.Prepare();
  loop.ctx.Notify();
  CHECK_EQ(loop.ctx.notifier_writes(), w0 + 1);
  CHECK(Readable(loop.ctx.EpollFd()));
  CHECK(loop.ctx.Check());      // the notifier is ready...
  CHECK(!loop.ctx.Dispatch());  // ...but draining it is not progress
  CHECK(!Readable(loop.ctx.EpollFd()));
  loop.ctx.Notify();  // withdrawn by Check: no write
  CHECK_EQ(loop.ctx.notifier_writes(), w0 + 1);

  if (loop.mode != Mode::kPhases) {
    // Notified before advertising: a blocking Poll must not go to sleep.
    Watchdog dog(loop.ctx);
    loop.ctx.Notify();
    CHECK(!loop.Iterate(true));
    CHECK(!dog.fired());
  }
  loop.ctx.NotifyAccept();
}

// aio-gsource/flush: after a notification, an embedding cycle drains it and then nothing
// is pending (Prepare says "infinite", Check says "not ready").
AIO_CASE(phases_flush_notification) {
  loop.ctx.Prepare();
  loop.ctx.Notify();
  CHECK(loop.ctx.Check());
  CHECK(!loop.ctx.Dispatch());
  CHECK_EQ(loop.ctx.Prepare(), -1);
  CHECK(!Readable(loop.ctx.EpollFd()));
  CHECK(!loop.ctx.Check());
}

// Prepare/Check report readiness the way an embedding loop needs it.
AIO_CASE(phases_readiness) {
  CHECK_EQ(loop.ctx.Prepare(), -1);
  CHECK(!loop.ctx.Check());
  CountingBh c(loop.ctx);
  AioContext::ScheduleBh(c.bh);
  CHECK_EQ(loop.ctx.Prepare(), 0);
  CHECK(loop.ctx.Check());
  CHECK(loop.ctx.Dispatch());
  CHECK_EQ(c.runs, 1);

  NotifierHandler h(loop.ctx);
  h.Register();
  loop.Settle();
  CHECK_EQ(loop.ctx.Prepare(), -1);
  h.notifier.Set();
  CHECK(Readable(loop.ctx.EpollFd()));
  CHECK(loop.ctx.Check());
  CHECK(loop.ctx.Dispatch());
  CHECK_EQ(h.calls, 1);

  CountingTimer t(loop.ctx);
  loop.ctx.TimerMod(t.timer, AioContext::NowNs() - 1);
  CHECK_EQ(loop.ctx.Prepare(), 0);
  CHECK(loop.ctx.Check());
  CHECK(loop.ctx.Dispatch());
  CHECK_EQ(t.fires, 1);
  h.Unregister();
  c.Delete();
}

// ======================================================================= adaptive polling

namespace {

// A handler that can be polled: io_poll reports `ready`, io_poll_ready / io_read count.
struct Pollable {
  AioContext* ctx;
  Pipe pipe;
  bool ready = false;
  int polls_ready = 0;
  int reads = 0;
  int depth = 0;
  bool reentered = false;
  bool nest = false;

  static bool Poll(void* o) { return static_cast<Pollable*>(o)->ready; }
  static void OnPollReady(void* o) {
    auto* p = static_cast<Pollable*>(o);
    if (p->depth > 0) p->reentered = true;
    ++p->depth;
    ++p->polls_ready;
    p->ready = false;
    char buf[16];
    while (::read(p->pipe.r.get(), buf, sizeof buf) > 0) {
    }
    if (p->nest) p->ctx->Poll(false);  // must not re-enter this callback
    --p->depth;
  }
  static void OnRead(void* o) {
    auto* p = static_cast<Pollable*>(o);
    ++p->reads;
    char buf[16];
    while (::read(p->pipe.r.get(), buf, sizeof buf) > 0) {
    }
  }
  explicit Pollable(AioContext& c) : ctx(&c) {
    CHECK(c.SetFdHandler(pipe.r.get(), OnRead, nullptr, Poll, OnPollReady, this).ok());
  }
  ~Pollable() { ctx->RemoveFdHandler(pipe.r.get()); }
};

// One blocking Poll that sleeps on a timer `ns` ahead (the poll handlers never fire).
void BlockFor(AioContext& ctx, int64_t ns) {
  CountingTimer t(ctx);
  ctx.TimerMod(t.timer, AioContext::NowNs() + ns);
  // Arming the earliest timer raised "notified" (nobody was waiting, so only the flag):
  // accept it so the next Poll really sleeps (a Poll that finds a notification returns at
  // once, which would count as a short block).
  ctx.NotifyAccept();
  while (t.fires == 0) ctx.Poll(true);
}

}  // namespace

// Off by default: no window, no growth, however long the loop sleeps.
AIO_POLL_CASE(polling_off_by_default) {
  CHECK_EQ(loop.ctx.poll_params().max_ns, 0);
  Pollable p(loop.ctx);
  BlockFor(loop.ctx, 5'000'000);
  CHECK_EQ(loop.ctx.current_poll_ns(), 0);
}

// Grow (4000 ns first, then x grow) while the sleeps fit under max; shrink (/ shrink, or
// to 0 when shrink is 0) after a sleep longer than max.
AIO_POLL_CASE(polling_grow_shrink) {
  Pollable p(loop.ctx);
  PollParams params;
  params.max_ns = 200'000'000;
  params.grow = 3;
  params.shrink = 2;
  CHECK(loop.ctx.SetPollParams(params).ok());
  CHECK_EQ(loop.ctx.current_poll_ns(), 0);
  BlockFor(loop.ctx, 5'000'000);
  CHECK_EQ(loop.ctx.current_poll_ns(), 4000);
  BlockFor(loop.ctx, 5'000'000);
  CHECK_EQ(loop.ctx.current_poll_ns(), 12000);
  BlockFor(loop.ctx, 5'000'000);
  CHECK_EQ(loop.ctx.current_poll_ns(), 36000);
  BlockFor(loop.ctx, 300'000'000);  // longer than max: polling was wasted
  CHECK_EQ(loop.ctx.current_poll_ns(), 18000);

  params.grow = 0;    // 0 -> 2
  params.shrink = 0;  // 0 -> reset
  CHECK(loop.ctx.SetPollParams(params).ok());
  CHECK_EQ(loop.ctx.current_poll_ns(), 0);  // new params reset the window
  BlockFor(loop.ctx, 5'000'000);
  CHECK_EQ(loop.ctx.current_poll_ns(), 4000);
  BlockFor(loop.ctx, 5'000'000);
  CHECK_EQ(loop.ctx.current_poll_ns(), 8000);
  BlockFor(loop.ctx, 300'000'000);
  CHECK_EQ(loop.ctx.current_poll_ns(), 0);
  CHECK(loop.ctx.SetPollParams(PollParams{}).ok());
}

// A handler without io_poll (a TAP) does not switch polling off: the spin asks epoll
// without blocking, and an fd found readable there runs its io_read in that iteration.
AIO_POLL_CASE(polling_spins_on_epoll_for_plain_handlers) {
  Pollable p(loop.ctx);
  Pipe plain;
  static int plain_reads;
  plain_reads = 0;
  auto cb = [](void* o) {
    ++plain_reads;
    char buf[16];
    while (::read(*static_cast<int*>(o), buf, sizeof buf) > 0) {
    }
  };
  int rfd = plain.r.get();
  CHECK(loop.ctx.SetFdHandler(rfd, cb, nullptr, nullptr, nullptr, &rfd).ok());
  PollParams params;
  params.max_ns = 200'000'000;
  CHECK(loop.ctx.SetPollParams(params).ok());
  BlockFor(loop.ctx, 5'000'000);
  CHECK_EQ(loop.ctx.current_poll_ns(), 4000);
  WriteByte(plain.w.get());
  CHECK(loop.ctx.Poll(true));
  CHECK_EQ(plain_reads, 1);
  CHECK(!Readable(rfd));
  CHECK(loop.ctx.current_poll_ns() >= 4000);  // found within the window: kept or grown
  BlockFor(loop.ctx, 300'000'000);            // longer than max: back to 0, the loop sleeps
  CHECK_EQ(loop.ctx.current_poll_ns(), 0);
  loop.ctx.RemoveFdHandler(rfd);
  CHECK(loop.ctx.SetPollParams(PollParams{}).ok());
}

// A handler found ready by polling gets io_poll_ready instead of io_read; a find while
// polling never shrinks the window.
AIO_POLL_CASE(polling_calls_poll_ready) {
  Pollable p(loop.ctx);
  PollParams params;
  params.max_ns = 200'000'000;
  CHECK(loop.ctx.SetPollParams(params).ok());
  BlockFor(loop.ctx, 5'000'000);
  CHECK_EQ(loop.ctx.current_poll_ns(), 4000);
  WriteByte(p.pipe.w.get());
  p.ready = true;
  CHECK(loop.ctx.Poll(true));
  CHECK_EQ(p.polls_ready, 1);
  CHECK_EQ(p.reads, 0);
  CHECK(!Readable(p.pipe.r.get()));
  CHECK(loop.ctx.current_poll_ns() >= 4000);
  CHECK(loop.ctx.SetPollParams(PollParams{}).ok());
}

// test-nested-aio-poll: an io_poll_ready callback that polls the context again is not
// re-entered, and polling keeps working afterwards.
AIO_POLL_CASE(polling_nested_poll_from_poll_ready) {
  Pollable p(loop.ctx);
  p.nest = true;
  PollParams params;
  params.max_ns = 200'000'000;
  CHECK(loop.ctx.SetPollParams(params).ok());
  BlockFor(loop.ctx, 5'000'000);
  for (int round = 1; round <= 3; ++round) {
    p.ready = true;
    CHECK(loop.ctx.Poll(true));
    CHECK_EQ(p.polls_ready, round);
  }
  CHECK(!p.reentered);
  CHECK(loop.ctx.SetPollParams(PollParams{}).ok());
}

// Negative parameters are rejected with QEMU's wording and change nothing.
AIO_POLL_CASE(polling_rejects_negative_params) {
  PollParams bad;
  bad.max_ns = -1;
  auto st = loop.ctx.SetPollParams(bad);
  CHECK(!st.ok());
  CHECK(st.message.find("poll-max-ns value must be in range [0, ") == 0);
  bad = PollParams{};
  bad.grow = -5;
  st = loop.ctx.SetPollParams(bad);
  CHECK(st.message.find("poll-grow") == 0);
  bad = PollParams{};
  bad.shrink = -5;
  st = loop.ctx.SetPollParams(bad);
  CHECK(st.message.find("poll-shrink") == 0);
  CHECK_EQ(loop.ctx.poll_params().max_ns, 0);
}
