// IoThread: a named thread polling one AioContext until a one-shot BH clears `running`.
#include "aio/iothread.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>

#include "base/thread_name.h"

namespace netplane::core {

struct IoThread::Impl {
  std::string name;
  std::unique_ptr<AioContext> ctx;
  std::thread thread;
  std::thread::id thread_id;
  std::atomic<bool> running{false};
  std::atomic<int> tid{0};

  std::mutex mu;
  bool accepting = true;  // RunSync may still hand work to the thread
  bool stop_requested = false;
  std::mutex join_mu;  // one joiner at a time

  void Loop() {
    while (running.load(std::memory_order_acquire)) ctx->Poll(true);
    // Work handed over (RunSync) after the stop BH ran is still executed: one last pass
    // runs every BH pending now, and nothing new is accepted after `accepting` flips.
    {
      std::lock_guard<std::mutex> lock(mu);
      accepting = false;
    }
    ctx->Poll(false);
  }
};

Result<std::unique_ptr<IoThread>> IoThread::Start(std::string name, PollParams params) {
  auto ctx = AioContext::Create(name);
  if (!ctx.ok()) return Result<std::unique_ptr<IoThread>>::Fail(ctx.status);
  Status st = ctx.value->SetPollParams(params);
  if (!st.ok()) return Result<std::unique_ptr<IoThread>>::Fail(st);

  auto impl = std::make_unique<Impl>();
  impl->name = std::move(name);
  impl->ctx = std::move(ctx.value);
  impl->running.store(true);
  Impl* d = impl.get();
  std::mutex started_mu;
  std::condition_variable started_cv;
  bool started = false;
  try {
    d->thread = std::thread([d, &started_mu, &started_cv, &started] {
      SetThreadName(d->name);
      d->ctx->SetHomeThread();
      d->tid.store(static_cast<int>(::syscall(SYS_gettid)));
      {
        // Notify under the lock: the starter destroys the cv as soon as it sees `started`.
        std::lock_guard<std::mutex> lock(started_mu);
        started = true;
        started_cv.notify_one();
      }
      d->Loop();
    });
  } catch (const std::system_error& e) {
    return Result<std::unique_ptr<IoThread>>::Fail(
        Status::Errno(e.code().value(), "pthread_create", "cannot start iothread '" + d->name + "': " + e.what()));
  }
  d->thread_id = d->thread.get_id();
  std::unique_lock<std::mutex> lock(started_mu);
  started_cv.wait(lock, [&] { return started; });
  return Result<std::unique_ptr<IoThread>>::Of(std::unique_ptr<IoThread>(new IoThread(std::move(impl))));
}

IoThread::IoThread(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

IoThread::~IoThread() { Stop(); }

AioContext& IoThread::context() { return *impl_->ctx; }
const std::string& IoThread::name() const { return impl_->name; }
bool IoThread::running() const { return impl_->running.load(std::memory_order_acquire); }
int IoThread::tid() const { return impl_->tid.load(); }

void IoThread::RunSync(const std::function<void()>& fn) {
  Impl& d = *impl_;
  if (std::this_thread::get_id() == d.thread_id) {
    fn();
    return;
  }
  std::mutex done_mu;
  std::condition_variable done_cv;
  bool done = false;
  bool run_here = false;
  {
    std::lock_guard<std::mutex> lock(d.mu);
    if (d.accepting) {
      // Scheduled under the lock, so the thread's final pass is guaranteed to see it.
      d.ctx->ScheduleOneshot(
          [&] {
            fn();
            std::lock_guard<std::mutex> done_lock(done_mu);
            done = true;
            done_cv.notify_one();
          },
          "iothread-run-sync");
    } else {
      run_here = true;  // the loop is gone: nobody else touches the context, run it here
    }
  }
  if (run_here) {
    fn();
    return;
  }
  std::unique_lock<std::mutex> lock(done_mu);
  done_cv.wait(lock, [&] { return done; });
}

void IoThread::Stop() {
  Impl& d = *impl_;
  bool first;
  {
    std::lock_guard<std::mutex> lock(d.mu);
    first = !d.stop_requested;
    d.stop_requested = true;
  }
  if (std::this_thread::get_id() == d.thread_id) {
    // From a callback on the thread itself: end the loop; whoever destroys us joins.
    d.running.store(false, std::memory_order_release);
    return;
  }
  if (first) {
    d.ctx->ScheduleOneshot([&d] { d.running.store(false, std::memory_order_release); }, "iothread-stop");
  }
  std::lock_guard<std::mutex> lock(d.join_mu);
  if (d.thread.joinable()) d.thread.join();
}

}  // namespace netplane::core
