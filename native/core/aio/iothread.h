// IoThread: a named native thread that runs one AioContext (Poll(true) in a loop) until
// stopped by a one-shot bottom half, then is joined. QEMU's -object iothread.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "aio/aio_context.h"
#include "base/status.h"

namespace netplane::core {

class IoThread {
 public:
  // name: thread name (truncated to 15 chars for the kernel).
  static Result<std::unique_ptr<IoThread>> Start(std::string name, PollParams params = {});
  ~IoThread();  // Stop()s if still running

  AioContext& context();
  const std::string& name() const;
  // Run fn on the thread (as a one-shot BH) and wait until it ran. Must not be called from
  // the thread itself (then fn runs inline).
  void RunSync(const std::function<void()>& fn);
  // Schedule a one-shot BH that ends the loop, then join. Idempotent.
  void Stop();
  bool running() const;
  int tid() const;  // kernel thread id, for tests (/proc/self/task/<tid>)

  struct Impl;

 private:
  explicit IoThread(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace netplane::core
