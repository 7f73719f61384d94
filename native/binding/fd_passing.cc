// File descriptor passing for JavaScript (core/io/fd_passing.h):
//  * new FdReader(fd, onData): reads a stream socket with recvmsg(2) from a uv_poll on a
//    close-on-exec duplicate of `fd`, and calls onData(data, fds, error) for every chunk;
//    the fds that arrived with the chunk are JavaScript's from then on (close them with
//    fs.closeSync). End of stream: onData(null, [], null); a read error: onData(null, [],
//    error). After either, nothing more is delivered. pause()/resume() stop and restart
//    reading; close() stops for good and closes the duplicate (the caller's fd stays open).
//  * fdSend(fd, data, fds): one sendmsg(2) with SCM_RIGHTS; returns the bytes sent.
//  * fdSetCloexec(fd): set FD_CLOEXEC, so that an inherited fd reaches no program we start.
//  * aioPipe() / aioSocketPair(): non-blocking, close-on-exec fd pairs (core/base/fd_pair.h)
//    for event-loop users and tests.
//  * memfdCreate(name, size): a close-on-exec memfd of `size` bytes sealed against shrinking
//    (core/io/memfd.h), for guest memory and rings; the caller owns (and closes) the fd.
//
// Teardown follows main_loop_context.cc: close() or GC closes the uv handle with uv_close;
// at env exit an async cleanup hook does it and keeps the env waiting until the close
// callback ran.
#include <fcntl.h>
#include <uv.h>

#include <cstring>
#include <memory>
#include <vector>

#include "addon.h"
#include "args.h"
#include "base/fd_pair.h"
#include "errors.h"
#include "io/eventfd.h"
#include "io/fd_passing.h"
#include "io/memfd.h"

namespace netplane::binding {

namespace {

constexpr size_t kReadChunk = 64 * 1024;
// Reads per wake-up before returning to the loop, so one flooding client cannot starve the
// others (the poll is level-triggered: what is left wakes us again at once).
constexpr int kReadsPerWakeup = 16;

struct ReaderState : std::enable_shared_from_this<ReaderState> {
  napi_env env = nullptr;
  core::UniqueFd fd;
  uv_poll_t poll{};
  Napi::FunctionReference callback;
  std::unique_ptr<Napi::AsyncContext> async_context;
  napi_async_cleanup_hook_handle cleanup_hook = nullptr;
  std::shared_ptr<ReaderState> self;  // set while the uv handle is open or closing
  std::vector<char> buf = std::vector<char>(kReadChunk);
  bool closed = false;
  bool paused = false;
  bool finished = false;  // EOF or an error was delivered

  void UpdatePolling() {
    if (closed) return;
    if (paused || finished)
      uv_poll_stop(&poll);
    else
      uv_poll_start(&poll, UV_READABLE, OnPoll);
  }

  // Calls onData; the fds become JavaScript's. A throwing callback is an uncaught exception,
  // as from any libuv callback.
  void Deliver(Napi::Value data, std::vector<core::UniqueFd>* fds, Napi::Value error) {
    Napi::Env e(env);
    Napi::Array list = Napi::Array::New(e, fds ? fds->size() : 0);
    if (fds) {
      for (size_t i = 0; i < fds->size(); ++i)
        list.Set(static_cast<uint32_t>(i), Napi::Number::New(e, (*fds)[i].Release()));
    }
    if (closed || callback.IsEmpty()) return;
    Napi::Function fn = callback.Value();  // a local handle: survives close() inside the call
    napi_value args[3] = {data, list, error};
    napi_value result;
    if (napi_call_function(env, e.Undefined(), fn, 3, args, &result) == napi_ok) return;
    bool pending = false;
    napi_value exception;
    if (napi_is_exception_pending(env, &pending) != napi_ok || !pending) return;  // env is exiting
    if (napi_get_and_clear_last_exception(env, &exception) != napi_ok) return;
    napi_fatal_exception(env, exception);
  }

  static void OnPoll(uv_poll_t* h, int status, int) {
    auto* s = static_cast<ReaderState*>(h->data);
    if (s->closed) return;
    std::shared_ptr<ReaderState> keep = s->shared_from_this();  // the callback may close us
    Napi::Env e(s->env);
    Napi::HandleScope scope(e);
    Napi::CallbackScope callback_scope(e, *s->async_context);
    if (status < 0) {
      s->finished = true;
      core::Status st = core::Status::Errno(-status, "uv_poll", std::string("uv_poll: ") + uv_strerror(status));
      s->Deliver(e.Null(), nullptr, MakeSystemError(e, st).Value());
    }
    for (int i = 0; i < kReadsPerWakeup && !s->closed && !s->paused && !s->finished; ++i) {
      auto r = core::RecvWithFds(s->fd.get(), s->buf.data(), s->buf.size());
      if (!r.ok()) {
        s->finished = true;
        s->Deliver(e.Null(), nullptr, MakeSystemError(e, r.status).Value());
        break;
      }
      if (r.value.would_block) break;
      if (r.value.eof) {
        s->finished = true;
        s->Deliver(e.Null(), nullptr, e.Null());
        break;
      }
      Napi::Buffer<char> data = Napi::Buffer<char>::Copy(e, s->buf.data(), r.value.bytes);
      s->Deliver(data, &r.value.fds, e.Null());
    }
    s->UpdatePolling();
  }

  void Close() {
    if (closed) return;
    closed = true;
    callback.Reset();  // inside a callback the function stays alive through its local handle
    uv_close(reinterpret_cast<uv_handle_t*>(&poll), OnUvClosed);
  }

  static void OnUvClosed(uv_handle_t* h) {
    auto* s = static_cast<ReaderState*>(h->data);
    s->fd.Reset();  // only now: the poll no longer watches it
    s->async_context.reset();
    if (s->cleanup_hook) {
      napi_remove_async_cleanup_hook(s->cleanup_hook);
      s->cleanup_hook = nullptr;
    }
    s->self.reset();  // may delete s
  }

  static void OnEnvCleanup(napi_async_cleanup_hook_handle, void* arg) { static_cast<ReaderState*>(arg)->Close(); }
};

class FdReaderWrap : public Napi::ObjectWrap<FdReaderWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FdReader",
                       {
                           InstanceAccessor<&FdReaderWrap::JsClosed>("closed"),
                           InstanceAccessor<&FdReaderWrap::JsFd>("fd"),
                           InstanceMethod<&FdReaderWrap::JsPause>("pause"),
                           InstanceMethod<&FdReaderWrap::JsResume>("resume"),
                           InstanceMethod<&FdReaderWrap::JsClose>("close"),
                       });
  }

  // new FdReader(fd, onData)
  explicit FdReaderWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FdReaderWrap>(info) {
    Napi::Env env = info.Env();
    int fd;
    Napi::Function on_data;
    if (!ReadFd(env, info[0], "fd", &fd) || !ReadFunction(env, info[1], "onData", &on_data)) return;
    auto dup = core::DupCloexec(fd);
    if (!dup.ok()) {
      ThrowStatus(env, dup.status);
      return;
    }
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) {
      Napi::Error::New(env, "cannot reach the libuv loop of this environment").ThrowAsJavaScriptException();
      return;
    }
    auto state = std::make_shared<ReaderState>();
    state->env = env;
    state->fd = std::move(dup.value);
    if (int rc = uv_poll_init(loop, &state->poll, state->fd.get()); rc != 0) {
      ThrowStatus(env, core::Status::Errno(-rc, "uv_poll_init", std::string("uv_poll_init: ") + uv_strerror(rc)));
      return;  // the handle was never initialised: state and its fd simply go
    }
    state->poll.data = state.get();
    state->callback = Napi::Persistent(on_data);
    state->async_context = std::make_unique<Napi::AsyncContext>(env, "netplane:FdReader");
    state->self = state;
    napi_add_async_cleanup_hook(env, &ReaderState::OnEnvCleanup, state.get(), &state->cleanup_hook);
    state_ = state;
    state_->UpdatePolling();
  }

  ~FdReaderWrap() override {
    if (state_) state_->Close();
  }

 private:
  Napi::Value JsClosed(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), !state_ || state_->closed);
  }
  // The duplicate being read (-1 once closed): for diagnostics and tests.
  Napi::Value JsFd(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), state_ && !state_->closed ? state_->fd.get() : -1);
  }
  Napi::Value JsPause(const Napi::CallbackInfo& info) {
    if (state_ && !state_->closed) {
      state_->paused = true;
      state_->UpdatePolling();
    }
    return info.Env().Undefined();
  }
  Napi::Value JsResume(const Napi::CallbackInfo& info) {
    if (state_ && !state_->closed) {
      state_->paused = false;
      state_->UpdatePolling();
    }
    return info.Env().Undefined();
  }
  Napi::Value JsClose(const Napi::CallbackInfo& info) {
    if (state_) state_->Close();
    return info.Env().Undefined();
  }

  std::shared_ptr<ReaderState> state_;
};

// fdSend(fd, data: Uint8Array, fds: number[]) -> bytes sent
Napi::Value JsFdSend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sock;
  Napi::Uint8Array data;
  if (!ReadFd(env, info[0], "fd", &sock) || !ReadBytes(env, info[1], "data", &data)) return env.Undefined();
  if (!info[2].IsArray()) return ThrowTypeError(env, "fds must be an array of file descriptors");
  auto list = info[2].As<Napi::Array>();
  if (list.Length() > core::kMaxFdsPerMessage) {
    return ThrowRangeError(env, "at most " + std::to_string(core::kMaxFdsPerMessage) + " fds fit in one message, got " +
                                    std::to_string(list.Length()));
  }
  std::vector<int> fds(list.Length());
  for (uint32_t i = 0; i < list.Length(); ++i) {
    if (!ReadFd(env, list.Get(i), "fds[i]", &fds[i])) return env.Undefined();
  }
  auto sent = core::SendWithFds(sock, data.Data(), data.ByteLength(), fds.data(), fds.size());
  if (!sent.ok()) return ThrowStatus(env, sent.status);
  return Napi::Number::New(env, static_cast<double>(sent.value));
}

// fdSetCloexec(fd): throws a system error when fd is not open.
Napi::Value JsFdSetCloexec(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ReadFd(env, info[0], "fd", &fd)) return env.Undefined();
  if (core::Status s = core::SetCloexec(fd); !s.ok()) return ThrowStatus(env, s);
  return env.Undefined();
}

// fdDup(fd) -> a close-on-exec duplicate the caller owns (fcntl F_DUPFD_CLOEXEC): a consumer
// that must hand the same fd out again later (a vhost-user reconnect) keeps its own copy.
Napi::Value JsFdDup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ReadFd(env, info[0], "fd", &fd)) return env.Undefined();
  int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) {
    int err = errno;
    return ThrowStatus(env, core::Status::Errno(err, "fcntl(F_DUPFD_CLOEXEC)",
                                                "fd " + std::to_string(fd) + ": " + std::strerror(err)));
  }
  return Napi::Number::New(env, copy);
}

Napi::Value PairToJs(Napi::Env env, core::Result<std::shared_ptr<core::FdPair>> r) {
  if (!r.ok()) return ThrowStatus(env, r.status);
  Napi::Array a = Napi::Array::New(env, 2);
  a.Set(0u, Napi::Number::New(env, r.value->first.Release()));
  a.Set(1u, Napi::Number::New(env, r.value->second.Release()));
  return a;
}

// aioPipe(): [readFd, writeFd], non-blocking, close-on-exec. The caller owns both fds.
Napi::Value JsAioPipe(const Napi::CallbackInfo& info) { return PairToJs(info.Env(), core::MakePipe()); }
// aioSocketPair(): [fdA, fdB], AF_UNIX stream, non-blocking, close-on-exec.
Napi::Value JsAioSocketPair(const Napi::CallbackInfo& info) { return PairToJs(info.Env(), core::MakeSocketPair()); }

// memfdCreate(name, size: number | bigint) -> fd
Napi::Value JsMemfdCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name;
  uint64_t size;
  if (!ReadString(env, info[0], "name", &name) || !ReadU64(env, info[1], "size", &size)) return env.Undefined();
  auto fd = core::MemfdCreate(name, size);
  if (!fd.ok()) return ThrowStatus(env, fd.status);
  return Napi::Number::New(env, fd.value.Release());
}

// eventfdCreate() -> fd: non-blocking, close-on-exec (vring kick / call fds).
Napi::Value JsEventfdCreate(const Napi::CallbackInfo& info) {
  auto fd = core::EventfdCreate();
  if (!fd.ok()) return ThrowStatus(info.Env(), fd.status);
  return Napi::Number::New(info.Env(), fd.value.Release());
}

}  // namespace

void InitFdPassing(Napi::Env env, Napi::Object exports) {
  exports.Set("FdReader", FdReaderWrap::Define(env));
  exports.Set("fdSend", Napi::Function::New<JsFdSend>(env, "fdSend"));
  exports.Set("fdSetCloexec", Napi::Function::New<JsFdSetCloexec>(env, "fdSetCloexec"));
  exports.Set("fdDup", Napi::Function::New<JsFdDup>(env, "fdDup"));
  exports.Set("aioPipe", Napi::Function::New(env, JsAioPipe, "aioPipe"));
  exports.Set("aioSocketPair", Napi::Function::New(env, JsAioSocketPair, "aioSocketPair"));
  exports.Set("memfdCreate", Napi::Function::New<JsMemfdCreate>(env, "memfdCreate"));
  exports.Set("eventfdCreate", Napi::Function::New<JsEventfdCreate>(env, "eventfdCreate"));
}

}  // namespace netplane::binding
