// IoThread for JavaScript: a named native thread running its own AioContext
// (core/aio/iothread.h), started by `new IoThread(name, pollParams)`. It is an embedding API
// beside the data plane: the data plane's iothreads are created by name inside NetGraph
// (addIothread), not from these objects. At env exit every IoThread still running is
// stopped and joined from the env cleanup list (GetAddonData(env).cleanups).
#include <memory>
#include <string>
#include <unordered_set>

#include "addon.h"
#include "aio/iothread.h"
#include "args.h"
#include "errors.h"

namespace netplane::binding {

namespace {

class IoThreadWrap;

// Per-env: live IoThread wrappers, so the env cleanup can stop them.
struct IoThreadRegistry : std::enable_shared_from_this<IoThreadRegistry> {
  std::unordered_set<IoThreadWrap*> threads;
};

Napi::Value ThrowPollParamsError(Napi::Env env, const core::Status& s) {
  // The core's only failure here is a value out of range.
  return s.syscall.empty() ? ThrowRangeError(env, s.message) : ThrowStatus(env, s);
}

class IoThreadWrap : public Napi::ObjectWrap<IoThreadWrap> {
 public:
  static Napi::Function Define(Napi::Env env, IoThreadRegistry* registry) {
    return DefineClass(env, "IoThread",
                       {
                           InstanceAccessor<&IoThreadWrap::JsName>("name"),
                           InstanceAccessor<&IoThreadWrap::JsTid>("tid"),
                           InstanceAccessor<&IoThreadWrap::JsRunning>("running"),
                           InstanceAccessor<&IoThreadWrap::JsPollParams>("pollParams"),
                           InstanceAccessor<&IoThreadWrap::JsCurrentPollNs>("currentPollNs"),
                           InstanceMethod<&IoThreadWrap::JsSetPollParams>("setPollParams"),
                           InstanceMethod<&IoThreadWrap::JsStop>("stop"),
                       },
                       registry);
  }

  // new IoThread(name, { pollMaxNs?, pollGrow?, pollShrink? })
  explicit IoThreadWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<IoThreadWrap>(info) {
    Napi::Env env = info.Env();
    registry_ = static_cast<IoThreadRegistry*>(info.Data())->shared_from_this();
    std::string name;
    if (!ReadString(env, info[0], "iothread name", &name)) return;
    if (name.empty()) {
      ThrowRangeError(env, "iothread name must not be empty");
      return;
    }
    core::PollParams params;
    if (!ReadPollParams(env, info[1], &params)) return;
    auto r = core::IoThread::Start(name, params);
    if (!r.ok()) {
      ThrowPollParamsError(env, r.status);
      return;
    }
    thread_ = std::move(r.value);
    name_ = thread_->name();
    tid_ = thread_->tid();
    registry_->threads.insert(this);
  }

  ~IoThreadWrap() override {
    if (registry_) registry_->threads.erase(this);
    StopThread();  // joins; the context goes with it
  }

  // Stop and join, then free the thread's loop at once: a stopped IoThread must not hold
  // its epoll fd and event notifier until GC (test/lifecycle.test.ts counts fds). The
  // getters keep showing the name, tid and last poll parameters.
  void StopThread() {
    if (!thread_) return;
    thread_->Stop();
    last_params_ = thread_->context().poll_params();
    thread_.reset();
  }

 private:
  Napi::Value JsName(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), name_); }
  Napi::Value JsTid(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), tid_); }
  Napi::Value JsRunning(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), thread_ && thread_->running());
  }

  Napi::Value JsPollParams(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (name_.empty()) return env.Undefined();  // construction failed
    core::PollParams p = thread_ ? thread_->context().poll_params() : last_params_;
    Napi::Object o = Napi::Object::New(env);
    o.Set("pollMaxNs", Napi::Number::New(env, static_cast<double>(p.max_ns)));
    o.Set("pollGrow", Napi::Number::New(env, static_cast<double>(p.grow)));
    o.Set("pollShrink", Napi::Number::New(env, static_cast<double>(p.shrink)));
    return o;
  }

  Napi::Value JsCurrentPollNs(const Napi::CallbackInfo& info) {
    if (!thread_) return Napi::Number::New(info.Env(), 0);
    return Napi::Number::New(info.Env(), static_cast<double>(thread_->context().current_poll_ns()));
  }

  Napi::Value JsSetPollParams(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!thread_ || !thread_->running()) return ThrowStatus(env, core::Status::Closed("iothread is stopped"));
    if (!info[0].IsObject()) return ThrowTypeError(env, "poll parameters must be an object");
    core::PollParams params = thread_->context().poll_params();
    if (!ReadPollParams(env, info[0], &params)) return env.Undefined();
    core::Status st;
    core::AioContext* ctx = &thread_->context();
    thread_->RunSync([&] { st = ctx->SetPollParams(params); });  // home thread only
    if (!st.ok()) return ThrowPollParamsError(env, st);
    return env.Undefined();
  }

  Napi::Value JsStop(const Napi::CallbackInfo& info) {
    StopThread();  // idempotent; joins
    return info.Env().Undefined();
  }

  std::shared_ptr<IoThreadRegistry> registry_;
  std::unique_ptr<core::IoThread> thread_;  // null once stopped
  std::string name_;
  int tid_ = 0;
  core::PollParams last_params_;
};

}  // namespace

void InitIoThread(Napi::Env env, Napi::Object exports) {
  auto registry = std::make_shared<IoThreadRegistry>();
  exports.Set("IoThread", IoThreadWrap::Define(env, registry.get()));
  // At env exit stop and join every IoThread still running (wrappers collected later find
  // them stopped).
  GetAddonData(env).cleanups.push_back([registry]() {
    for (IoThreadWrap* w : registry->threads) w->StopThread();
  });
}

}  // namespace netplane::binding
