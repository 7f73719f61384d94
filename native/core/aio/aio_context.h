// AioContext: one event loop (epoll, level-triggered) with fd handlers, bottom halves,
// timers and a cross-thread notifier, after QEMU's util/async.c + aio-posix.c contract
// (shared/reference/qemu-net-semantics.md section 6). It runs either on an IoThread
// (Poll(true) in a loop) or embedded in another loop (libuv) through EpollFd() and the
// Prepare/Check/Dispatch phases.
//
// Threading: every method is for the home thread (the thread that polls) unless marked
// "any thread". Callbacks always run on the home thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/status.h"

namespace netplane::core {

// Callbacks are plain function pointers + opaque (no allocation, no std::function) because
// they sit on the per-frame path.
using IoHandler = void (*)(void* opaque);
using IoPollFn = bool (*)(void* opaque);  // true = ready (adaptive polling)
using BhCallback = void (*)(void* opaque);
using TimerCallback = void (*)(void* opaque);

struct BottomHalf;  // opaque; owned by its context
struct AioTimer;    // opaque; owned by its context

struct PollParams {
  int64_t max_ns = 0;  // 0 = adaptive polling off (default, so an idle loop uses no CPU)
  int64_t grow = 0;    // 0 -> 2
  int64_t shrink = 0;  // 0 -> reset to 0
};

// What the IoThreads of the net graph use unless told otherwise (QEMU's iothread default):
// the window grows from 0 while events keep arriving within it, and any sleep longer than
// max_ns resets it to 0, so a loop that goes idle sleeps in epoll_wait and uses no CPU.
inline PollParams DefaultIothreadPollParams() {
  PollParams p;
  p.max_ns = 32768;
  return p;
}

class AioContext {
 public:
  static Result<std::unique_ptr<AioContext>> Create(std::string name);
  ~AioContext();
  AioContext(const AioContext&) = delete;
  AioContext& operator=(const AioContext&) = delete;

  const std::string& name() const;

  // ---- fd handlers -------------------------------------------------------------------
  // Install or replace the handler for fd. io_read / io_write may be null (that direction
  // is not polled). io_poll without io_poll_ready is ignored. All of read, write and poll
  // null removes the handler. Read handlers also run on EPOLLERR/EPOLLHUP. Removal during
  // a dispatch walk is deferred to the end of the walk: once RemoveFdHandler returns, the
  // callbacks are never called again with that opaque, so the caller may free it.
  // Fails (epoll_ctl's errno) for an fd epoll cannot watch (closed, regular file); the
  // previous handler, if any, then stays in place.
  Status SetFdHandler(int fd, IoHandler io_read, IoHandler io_write, IoPollFn io_poll, IoHandler io_poll_ready,
                      void* opaque);
  void RemoveFdHandler(int fd);
  bool HasFdHandler(int fd) const;
  // Turn read / write polling on or off without replacing the callbacks (e.g. a TAP that
  // hit EAGAIN enables write polling; a sender whose peer is busy disables read polling).
  // A handler with both directions off is taken out of epoll entirely (so an fd in
  // ERR/HUP state cannot spin the loop). Unknown fd: no-op.
  Status SetFdPolling(int fd, bool read, bool write);

  // ---- bottom halves -----------------------------------------------------------------
  BottomHalf* NewBh(BhCallback cb, void* opaque, const char* name);
  static void ScheduleBh(BottomHalf* bh);      // any thread; idempotent until it runs
  static void ScheduleBhIdle(BottomHalf* bh);  // any thread; no progress, caps sleep at 10 ms
  static void CancelBh(BottomHalf* bh);        // any thread; callback will not run
  static void DeleteBh(BottomHalf* bh);        // any thread; freed by the next BH pass
  // Allocate + schedule a BH that runs fn once and frees itself. Any thread.
  void ScheduleOneshot(std::function<void()> fn, const char* name = "oneshot");

  // ---- timers (monotonic clock, ns) --------------------------------------------------
  // Timers belong to the context and are freed with it at the latest. A callback may
  // re-arm its own timer. TimerMod / TimerDel / TimerPending may be called from any thread
  // (a timer that becomes the earliest wakes a sleeping loop); NewTimer / TimerFree only
  // on the home thread (or while the loop is not running).
  static int64_t NowNs();
  AioTimer* NewTimer(TimerCallback cb, void* opaque);
  void TimerMod(AioTimer* t, int64_t expire_ns);  // absolute; FIFO among equal deadlines
  void TimerDel(AioTimer* t);
  void TimerFree(AioTimer* t);
  bool TimerPending(const AioTimer* t) const;

  // ---- notification ------------------------------------------------------------------
  void Notify();        // any thread; writes the eventfd only if a waiter advertised itself
  void NotifyAccept();  // clear "notified"
  // How many times Notify() actually wrote the eventfd (tests of the notify_me protocol).
  uint64_t notifier_writes() const;

  // ---- running -----------------------------------------------------------------------
  // One iteration: run BHs, ready handlers and expired timers, blocking for the computed
  // timeout when asked. Returns true if progress was made (a non-idle BH ran, a handler
  // other than the notifier ran, or a timer fired).
  bool Poll(bool blocking);

  // Embedding (GSource-style) phases for a foreign loop that polls EpollFd():
  // Prepare advertises a waiter and returns the timeout in ns (-1 = infinite, 0 = ready);
  // Check withdraws it and returns true if anything is ready; Dispatch runs BHs, ready fd
  // handlers (non-blocking epoll_wait on EpollFd()) and expired timers.
  int64_t Prepare();
  bool Check();
  bool Dispatch();
  int EpollFd() const;
  // The timeout Prepare() would return (ns, -1 = nothing pending), without advertising a
  // waiter. An embedder uses it to decide whether pending work should keep its loop alive.
  int64_t NextTimeoutNs() const;
  // ns -> ms for a poll(2)-style wait, rounding up so a loop never wakes before a
  // deadline: -1 stays -1 (infinite), 0 stays 0, 1 ns is 1 ms; clamped to INT32_MAX.
  static int64_t TimeoutNsToMs(int64_t ns);

  // Adaptive polling (7.2 style, one poll window per context): before it sleeps, the loop
  // spins for the current window over the io_poll callbacks and, while some handler has no
  // io_poll, over a non-blocking epoll_wait (so a TAP is polled too). Negative values are
  // rejected with "<name> value must be in range [0, INT64_MAX]". Home thread (an
  // IoThread's owner uses RunSync). Resets the current poll window to 0.
  Status SetPollParams(const PollParams& p);
  PollParams poll_params() const;
  int64_t current_poll_ns() const;  // for tests of grow/shrink

  // The thread that owns this context (the one that calls Poll). Set by IoThread or the
  // embedder; defaults to the creating thread.
  void SetHomeThread();
  bool InHomeThread() const;

  struct Impl;

 private:
  explicit AioContext(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace netplane::core
