// Multithreaded AioContext / IoThread tests (QEMU's test-aio-multithread inventory in our
// own words, without coroutines): IoThread lifecycle, cross-thread scheduling with no lost
// wake-ups, shared counters under locks from BHs on several IoThreads, cross-thread timers
// and notifications.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "aio/aio_context.h"
#include "aio/iothread.h"
#include "test.h"

using netplane::core::AioContext;
using netplane::core::AioTimer;
using netplane::core::BottomHalf;
using netplane::core::IoThread;

// test.h's CHECK_EQ prints numbers; strings need their own.
#define CHECK_STR_EQ(a, b)                                                                      \
  do {                                                                                          \
    std::string np_sa = (a), np_sb = (b);                                                       \
    if (np_sa != np_sb) nptest::Fail(__FILE__, __LINE__, "'" + np_sa + "' != '" + np_sb + "'"); \
  } while (0)

namespace {

constexpr auto kWaitLimit = std::chrono::seconds(30);  // generous: only a hang fails

// Something the test thread waits for, set from an IoThread.
class Latch {
 public:
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  bool Wait(std::chrono::milliseconds limit = std::chrono::duration_cast<std::chrono::milliseconds>(kWaitLimit)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, limit, [&] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

std::vector<std::unique_ptr<IoThread>> StartThreads(int n, const std::string& prefix) {
  std::vector<std::unique_ptr<IoThread>> threads;
  for (int i = 0; i < n; ++i) {
    auto t = IoThread::Start(prefix + std::to_string(i));
    REQUIRE(t.ok());
    threads.push_back(std::move(t.value));
  }
  return threads;
}

std::string TaskComm(int tid) {
  std::ifstream f("/proc/self/task/" + std::to_string(tid) + "/comm");
  std::string name;
  std::getline(f, name);
  return name;
}

}  // namespace

// /aio/multi/lifecycle: IoThreads start named, take work through one-shot BHs (which run
// on their own thread), stop, join; stopping twice is harmless.
TEST(aio_multi, lifecycle) {
  auto threads = StartThreads(5, "np-life-");
  std::vector<std::atomic<int>> ran(threads.size());
  std::atomic<int> wrong_thread{0};
  for (size_t i = 0; i < threads.size(); ++i) {
    CHECK(threads[i]->running());
    CHECK(threads[i]->tid() > 0);
    CHECK_STR_EQ(TaskComm(threads[i]->tid()), "np-life-" + std::to_string(i));
    AioContext* ctx = &threads[i]->context();
    for (int k = 0; k < 100; ++k) {
      ctx->ScheduleOneshot([&, i, ctx] {
        if (!ctx->InHomeThread()) wrong_thread.fetch_add(1);
        ran[i].fetch_add(1);
      });
    }
  }
  for (auto& t : threads) t->RunSync([] {});  // one-shots run in order of arrival passes
  for (size_t i = 0; i < threads.size(); ++i) {
    // RunSync's BH may share a pass with the last ones: one more round trip settles it.
    threads[i]->RunSync([] {});
    CHECK_EQ(ran[i].load(), 100);
  }
  CHECK_EQ(wrong_thread.load(), 0);
  for (auto& t : threads) {
    t->Stop();
    CHECK(!t->running());
    t->Stop();
    CHECK(!t->running());
  }
  // After the loop ended, RunSync still runs the work (inline) instead of hanging.
  bool ran_after_stop = false;
  threads[0]->RunSync([&] { ran_after_stop = true; });
  CHECK(ran_after_stop);
}

// A long name is cut to the kernel's 15 characters, not rejected.
TEST(aio_multi, long_thread_name) {
  auto t = IoThread::Start("np-a-very-long-iothread-name");
  REQUIRE(t.ok());
  CHECK_STR_EQ(TaskComm(t.value->tid()), "np-a-very-long-");
  CHECK_STR_EQ(t.value->name(), "np-a-very-long-iothread-name");
}

// A BH on the thread may stop its own IoThread; the owner's destructor joins it.
TEST(aio_multi, stop_from_own_thread) {
  auto t = IoThread::Start("np-selfstop");
  REQUIRE(t.ok());
  IoThread* raw = t.value.get();
  Latch stopped;
  raw->context().ScheduleOneshot([&] {
    raw->Stop();
    stopped.Open();
  });
  CHECK(stopped.Wait());
  t.value.reset();  // joins
}

// /aio/multi/schedule: work hops between five contexts 20000 times, each hop scheduled
// from the IoThread of the previous one onto a random target; every hop runs on its
// target's thread and none is lost (a lost wake-up would stall the chain).
TEST(aio_multi, cross_thread_hops_no_lost_wakeups) {
  auto threads = StartThreads(5, "np-hop-");
  struct Chain {
    std::vector<AioContext*> ctxs;
    std::atomic<int> hops{0};
    std::atomic<int> wrong_thread{0};
    int limit = 20000;
    Latch done;
    std::mutex rng_mu;
    std::mt19937 rng{12345};
    size_t Pick() {
      std::lock_guard<std::mutex> lock(rng_mu);
      return rng() % ctxs.size();
    }
    void Hop(size_t target) {
      AioContext* ctx = ctxs[target];
      ctx->ScheduleOneshot([this, ctx] {
        if (!ctx->InHomeThread()) wrong_thread.fetch_add(1);
        if (hops.fetch_add(1) + 1 >= limit) {
          done.Open();
          return;
        }
        Hop(Pick());
      });
    }
  } chain;
  for (auto& t : threads) chain.ctxs.push_back(&t->context());
  // Several chains at once so contexts are busy and idle at random moments.
  for (int c = 0; c < 4; ++c) chain.Hop(static_cast<size_t>(c) % chain.ctxs.size());
  CHECK(chain.done.Wait());
  CHECK(chain.hops.load() >= chain.limit);
  CHECK_EQ(chain.wrong_thread.load(), 0);
  for (auto& t : threads) t->Stop();
}

// Idempotent cross-thread schedule with no lost wake-up: four producers schedule one BH
// over and over; every schedule is followed by a run that observes it.
TEST(aio_multi, idempotent_cross_thread_schedule) {
  auto t = IoThread::Start("np-idem");
  REQUIRE(t.ok());
  struct State {
    std::atomic<int64_t> requested{0};
    std::atomic<int64_t> seen{0};
    std::atomic<int> runs{0};
  } st;
  BottomHalf* bh = nullptr;
  t.value->RunSync([&] {
    bh = t.value->context().NewBh(
        [](void* o) {
          auto* s = static_cast<State*>(o);
          s->runs.fetch_add(1);
          s->seen.store(s->requested.load());
        },
        &st, "idempotent");
  });
  constexpr int kPerProducer = 20000;
  std::vector<std::thread> producers;
  for (int p = 0; p < 4; ++p) {
    producers.emplace_back([&] {
      for (int i = 0; i < kPerProducer; ++i) {
        st.requested.fetch_add(1);
        AioContext::ScheduleBh(bh);
      }
    });
  }
  for (auto& p : producers) p.join();
  const int64_t total = st.requested.load();
  CHECK_EQ(total, 4 * kPerProducer);
  auto deadline = std::chrono::steady_clock::now() + kWaitLimit;
  while (st.seen.load() != total && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK_EQ(st.seen.load(), total);
  // Coalesced: far fewer runs than schedules is allowed, more is not.
  CHECK(st.runs.load() >= 1);
  CHECK(st.runs.load() <= total);
  AioContext::DeleteBh(bh);
  t.value->Stop();
}

namespace {

// /aio/multi/mutex/*: BHs on `n` IoThreads increment a shared counter `per_thread` times
// each under `lock`; an atomic counter alongside must agree with it at the end.
template <class Lock>
void RunCounterCase(int n, int per_thread) {
  auto threads = StartThreads(n, "np-mtx-");
  struct Worker {
    AioContext* ctx = nullptr;
    BottomHalf* bh = nullptr;
    int left = 0;
    Lock* lock = nullptr;
    int64_t* counter = nullptr;
    std::atomic<int64_t>* atomic_counter = nullptr;
    Latch* done = nullptr;
    std::atomic<int>* remaining = nullptr;
  };
  Lock lock;
  int64_t counter = 0;
  std::atomic<int64_t> atomic_counter{0};
  std::atomic<int> remaining{n};
  Latch done;
  std::vector<Worker> workers(threads.size());
  for (size_t i = 0; i < threads.size(); ++i) {
    Worker& w = workers[i];
    w = Worker{&threads[i]->context(), nullptr, per_thread, &lock, &counter, &atomic_counter, &done, &remaining};
    threads[i]->RunSync([&w] {
      w.bh = w.ctx->NewBh(
          [](void* o) {
            auto* self = static_cast<Worker*>(o);
            // A few increments per run, then yield to the loop by re-scheduling.
            for (int k = 0; k < 8 && self->left > 0; ++k, --self->left) {
              self->lock->lock();
              int64_t v = *self->counter;
              *self->counter = v + 1;
              self->lock->unlock();
              self->atomic_counter->fetch_add(1);
            }
            if (self->left > 0) {
              AioContext::ScheduleBh(self->bh);
            } else if (self->remaining->fetch_sub(1) == 1) {
              self->done->Open();
            }
          },
          &w, "counter");
    });
  }
  for (auto& w : workers) AioContext::ScheduleBh(w.bh);
  CHECK(done.Wait());
  for (size_t i = 0; i < threads.size(); ++i) {
    threads[i]->RunSync([&] { AioContext::DeleteBh(workers[i].bh); });
    threads[i]->Stop();
  }
  CHECK_EQ(atomic_counter.load(), static_cast<int64_t>(n) * per_thread);
  CHECK_EQ(counter, atomic_counter.load());
}

// A test-and-set spin lock: the "hand-rolled lock" baseline (QEMU's MCS case).
class SpinLock {
 public:
  void lock() {
    while (flag_.test_and_set(std::memory_order_acquire)) std::this_thread::yield();
  }
  void unlock() { flag_.clear(std::memory_order_release); }

 private:
  std::atomic_flag flag_ = ATOMIC_FLAG_INIT;
};

}  // namespace

TEST(aio_multi, mutex_contended_5_threads) { RunCounterCase<std::mutex>(5, 20000); }
TEST(aio_multi, mutex_handoff_2_threads) { RunCounterCase<std::mutex>(2, 50000); }
TEST(aio_multi, spinlock_5_threads) { RunCounterCase<SpinLock>(5, 20000); }

// A timer armed from another thread while the IoThread sleeps with no deadline wakes it
// (the new earliest timer notifies); so does one that lands before an hour-long timer.
TEST(aio_multi, timer_from_other_thread_wakes_sleeper) {
  auto t = IoThread::Start("np-timer");
  REQUIRE(t.ok());
  AioContext& ctx = t.value->context();
  Latch fired1, fired2;
  AioTimer* t1 = nullptr;
  AioTimer* t2 = nullptr;
  AioTimer* far = nullptr;
  t.value->RunSync([&] {
    t1 = ctx.NewTimer([](void* o) { static_cast<Latch*>(o)->Open(); }, &fired1);
    t2 = ctx.NewTimer([](void* o) { static_cast<Latch*>(o)->Open(); }, &fired2);
    far = ctx.NewTimer([](void*) {}, nullptr);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let it fall asleep
  ctx.TimerMod(t1, AioContext::NowNs() + 1'000'000);
  CHECK(fired1.Wait());
  ctx.TimerMod(far, AioContext::NowNs() + 3600'000'000'000);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // asleep on the far timer
  ctx.TimerMod(t2, AioContext::NowNs() + 1'000'000);
  CHECK(fired2.Wait());
  t.value->RunSync([&] {
    ctx.TimerFree(t1);
    ctx.TimerFree(t2);
    ctx.TimerFree(far);
  });
  t.value->Stop();
}

// A sleeping IoThread is woken through the eventfd (notify_me advertised); an idle one is
// not disturbed by nothing: the write count only moves when someone notifies.
TEST(aio_multi, notify_wakes_sleeping_iothread) {
  auto t = IoThread::Start("np-notify");
  REQUIRE(t.ok());
  AioContext& ctx = t.value->context();
  const uint64_t w0 = ctx.notifier_writes();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK_EQ(ctx.notifier_writes(), w0);  // nobody notified: no writes
  for (int round = 0; round < 20; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    Latch ran;
    ctx.ScheduleOneshot([&] { ran.Open(); });
    CHECK(ran.Wait());
  }
  CHECK(ctx.notifier_writes() > w0);
  t.value->Stop();
}

// Cancel and delete from another thread while the BH is queued: it never runs.
TEST(aio_multi, cancel_and_delete_from_other_thread) {
  auto t = IoThread::Start("np-cancel");
  REQUIRE(t.ok());
  AioContext& ctx = t.value->context();
  std::atomic<int> runs{0};
  BottomHalf* a = nullptr;
  BottomHalf* b = nullptr;
  t.value->RunSync([&] {
    a = ctx.NewBh([](void* o) { static_cast<std::atomic<int>*>(o)->fetch_add(1); }, &runs, "a");
    b = ctx.NewBh([](void* o) { static_cast<std::atomic<int>*>(o)->fetch_add(1); }, &runs, "b");
  });
  // Hold the IoThread inside a BH while we schedule and cancel / delete from here.
  Latch holding, release;
  ctx.ScheduleOneshot([&] {
    holding.Open();
    release.Wait();
  });
  CHECK(holding.Wait());
  AioContext::ScheduleBh(a);
  AioContext::CancelBh(a);
  AioContext::ScheduleBh(b);
  AioContext::DeleteBh(b);  // freed later, on the IoThread
  release.Open();
  t.value->RunSync([] {});
  t.value->RunSync([] {});
  CHECK_EQ(runs.load(), 0);
  t.value->RunSync([&] { AioContext::DeleteBh(a); });
  t.value->Stop();
}

// RunSync racing with Stop never hangs: each call runs its function exactly once, on the
// thread or (once the loop is gone) inline.
TEST(aio_multi, run_sync_racing_stop) {
  for (int round = 0; round < 20; ++round) {
    auto t = IoThread::Start("np-race");
    REQUIRE(t.ok());
    std::atomic<int> calls{0};
    std::atomic<int> ran{0};
    std::thread caller([&] {
      for (int i = 0; i < 200; ++i) {
        calls.fetch_add(1);
        t.value->RunSync([&] { ran.fetch_add(1); });
      }
    });
    std::this_thread::sleep_for(std::chrono::microseconds(200 * (round % 5)));
    t.value->Stop();
    caller.join();
    CHECK_EQ(ran.load(), calls.load());
  }
}
