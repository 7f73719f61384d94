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

#include "status.h"

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
  // a dispatch walk is deferred to the end of the walk.
  void SetFdHandler(int fd, IoHandler io_read, IoHandler io_write, IoPollFn io_poll,
                    IoHandler io_poll_ready, void* opaque);
  void RemoveFdHandler(int fd);
  // Turn read / write polling on or off without replacing the callbacks (e.g. a TAP that
  // hit EAGAIN enables write polling; a sender whose peer is busy disables read polling).
  void SetFdPolling(int fd, bool read, bool write);

  // ---- bottom halves -----------------------------------------------------------------
  BottomHalf* NewBh(BhCallback cb, void* opaque, const char* name);
  static void ScheduleBh(BottomHalf* bh);      // any thread; idempotent until it runs
  static void ScheduleBhIdle(BottomHalf* bh);  // any thread; no progress, caps sleep at 10 ms
  static void CancelBh(BottomHalf* bh);        // any thread; callback will not run
  static void DeleteBh(BottomHalf* bh);        // any thread; freed by the next BH pass
  // Allocate + schedule a BH that runs fn once and frees itself. Any thread.
  void ScheduleOneshot(std::function<void()> fn, const char* name = "oneshot");

  // ---- timers (monotonic clock, ns) --------------------------------------------------
  static int64_t NowNs();
  AioTimer* NewTimer(TimerCallback cb, void* opaque);
  void TimerMod(AioTimer* t, int64_t expire_ns);  // absolute; FIFO among equal deadlines
  void TimerDel(AioTimer* t);
  void TimerFree(AioTimer* t);
  bool TimerPending(const AioTimer* t) const;

  // ---- notification ------------------------------------------------------------------
  void Notify();        // any thread; writes the eventfd only if a waiter advertised itself
  void NotifyAccept();  // clear "notified"

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

  void SetPollParams(const PollParams& p);
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
