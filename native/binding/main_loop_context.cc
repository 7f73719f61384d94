// MainLoopContext for JavaScript: an AioContext embedded in Node's libuv loop, the way
// QEMU's AioContext is a GSource in GLib's loop. A uv_poll watches the context's epoll fd, a
// uv_prepare calls Prepare() and arms a uv_timer for the timeout it returns (so libuv
// never sleeps past a BH or timer), a uv_check calls Check() + Dispatch(). JS registers
// bottom halves, one-shots, timers and fd handlers whose callbacks are JS functions; tests
// may also drive it by hand (poll / prepare / check / dispatch). Like IoThread, an embedding
// API: the data plane does not run on it.
//
// Keep-alive: the handles are unref'd, so a context with nothing scheduled does not keep
// the process alive (like an unref'd socket); pending BHs / armed timers do (like
// setImmediate / setTimeout), and ref() makes the context keep it alive unconditionally.
//
// Teardown: close() or GC closes the uv handles with uv_close; at env exit an async
// cleanup hook does it and keeps the env waiting until the close callbacks ran, so no
// handle is left open on a worker's loop.
#include <uv.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "addon.h"
#include "aio/aio_context.h"
#include "args.h"
#include "errors.h"

namespace netplane::binding {

namespace {

struct LoopState;

struct JsBh {
  LoopState* state;
  core::BottomHalf* bh;
  Napi::FunctionReference fn;
};

struct JsTimer {
  LoopState* state;
  core::AioTimer* timer;
  Napi::FunctionReference fn;
};

struct JsFd {
  LoopState* state;
  int fd;
  Napi::FunctionReference read;
  Napi::FunctionReference write;
};

// Everything a MainLoopContext owns. Outlives its JS wrapper while uv handles are closing
// (self_ keeps it) and the wrapper while it lives (the wrapper's shared_ptr).
struct LoopState : std::enable_shared_from_this<LoopState> {
  napi_env env = nullptr;
  uv_loop_t* loop = nullptr;
  std::unique_ptr<core::AioContext> ctx;
  std::unique_ptr<Napi::AsyncContext> async_context;
  napi_async_cleanup_hook_handle cleanup_hook = nullptr;
  std::shared_ptr<LoopState> self;  // set while uv handles are open or closing

  uv_poll_t poll_handle{};
  uv_prepare_t prepare_handle{};
  uv_check_t check_handle{};
  uv_timer_t timer_handle{};
  int handles_closing = 0;

  bool closed = false;    // no more JS calls or API use
  bool driven = false;    // libuv runs the phases
  bool prepared = false;  // Prepare() ran; Check() owed
  bool user_ref = false;
  int uv_dispatching = 0;  // inside the uv_check dispatch (errors go to uncaughtException)
  int depth = 0;           // JS-visible loop iterations in progress

  uint32_t next_id = 1;
  std::unordered_map<uint32_t, std::unique_ptr<JsBh>> bhs;
  std::unordered_map<uint32_t, std::unique_ptr<JsTimer>> timers;
  std::unordered_map<int, std::unique_ptr<JsFd>> fds;
  std::vector<std::unique_ptr<JsFd>> fd_graveyard;  // removed during a walk: freed after it
  Napi::Reference<Napi::Value> first_error;         // from a manual iteration, rethrown after it

  // ---- calling JS
  void CallJs(Napi::FunctionReference& ref) {
    if (closed || ref.IsEmpty()) return;
    Napi::Env e(env);
    Napi::HandleScope scope(e);
    Napi::Function fn = ref.Value();  // a local handle: survives removal of the record
    // Raw N-API call, not fn.Call(): once the env stops running JS (process.exit() or
    // terminate() in a worker, even from inside this very callback) the call fails with no
    // exception object, and node-addon-api's Error::New turns that into a fatal abort
    // ("Error::Error napi_define_properties"). Then there is nothing to report: just return.
    napi_value result;
    if (napi_call_function(env, e.Undefined(), fn, 0, nullptr, &result) == napi_ok) return;
    bool pending = false;
    napi_value error;
    if (napi_is_exception_pending(env, &pending) != napi_ok || !pending) return;
    if (napi_get_and_clear_last_exception(env, &error) != napi_ok) return;
    ReportError(Napi::Value(e, error));
  }

  void ReportError(Napi::Value error) {
    if (closed) return;
    if (uv_dispatching > 0) {
      // Nobody called us from JS: like any other libuv callback, an uncaught exception.
      napi_fatal_exception(env, error);
    } else if (first_error.IsEmpty()) {
      first_error = Napi::Persistent(error);
    }
  }

  static void OnBh(void* opaque) { static_cast<JsBh*>(opaque)->state->CallJs(static_cast<JsBh*>(opaque)->fn); }
  static void OnTimer(void* opaque) { static_cast<JsTimer*>(opaque)->state->CallJs(static_cast<JsTimer*>(opaque)->fn); }
  static void OnFdRead(void* opaque) { static_cast<JsFd*>(opaque)->state->CallJs(static_cast<JsFd*>(opaque)->read); }
  static void OnFdWrite(void* opaque) { static_cast<JsFd*>(opaque)->state->CallJs(static_cast<JsFd*>(opaque)->write); }

  // Run one loop phase on behalf of JS (or libuv); free handler records removed meanwhile.
  template <class Fn>
  bool RunPhase(Fn fn) {
    ++depth;
    bool progress = fn();
    if (--depth == 0) fd_graveyard.clear();
    return progress;
  }

  void Bury(std::unique_ptr<JsFd> rec) {
    if (depth > 0) fd_graveyard.push_back(std::move(rec));
  }

  // ---- libuv driving
  static LoopState* From(void* handle) { return static_cast<LoopState*>(static_cast<uv_handle_t*>(handle)->data); }

  static void OnUvPoll(uv_poll_t*, int, int) {}  // the wake-up is the point; uv_check works
  // Bounds libuv's sleep to our timeout, and keeps the loop alive while work is pending:
  // libuv >= 1.45 runs timers *after* the check phase, so the zero-delay timer a dispatch
  // armed (a BH re-scheduled or a timer re-armed from its own callback) fires in that same
  // iteration; left inactive, the loop would see nothing alive and the process would exit
  // with work pending. Re-arm it, never with 0 here (libuv < 1.45 would run it again in the
  // same pass); the next prepare phase shortens it to the real timeout.
  static void OnUvTimer(uv_timer_t* h) {
    LoopState* s = From(h);
    if (s->closed || !s->driven) return;
    int64_t timeout = s->ctx->NextTimeoutNs();
    if (timeout < 0) return;
    int64_t ms = core::AioContext::TimeoutNsToMs(timeout);
    uv_timer_start(h, OnUvTimer, static_cast<uint64_t>(ms > 0 ? ms : 1), 0);
  }

  static void OnUvPrepare(uv_prepare_t* h) {
    LoopState* s = From(h);
    if (s->closed || !s->driven) return;
    int64_t timeout = s->ctx->Prepare();
    s->prepared = true;
    s->ArmTimer(timeout);
  }

  static void OnUvCheck(uv_check_t* h) {
    LoopState* s = From(h);
    if (s->closed || !s->driven || !s->prepared) return;
    s->prepared = false;
    std::shared_ptr<LoopState> keep = s->shared_from_this();  // a callback may close us
    if (s->ctx->Check()) {
      Napi::Env e(s->env);
      Napi::HandleScope scope(e);
      // Callback scope: microtasks and nextTicks queued by the callbacks run when it ends.
      Napi::CallbackScope callback_scope(e, *s->async_context);
      ++s->uv_dispatching;
      s->RunPhase([s] { return s->ctx->Dispatch(); });
      --s->uv_dispatching;
    }
    s->UpdateKeepAlive();
  }

  void ArmTimer(int64_t timeout_ns) {
    if (timeout_ns < 0) {
      uv_timer_stop(&timer_handle);
    } else {
      uv_timer_start(&timer_handle, OnUvTimer, static_cast<uint64_t>(core::AioContext::TimeoutNsToMs(timeout_ns)), 0);
    }
  }

  // Pending work (scheduled BH, armed timer) keeps the loop alive through the timer
  // handle; an idle context keeps nothing alive unless ref() was asked.
  void UpdateKeepAlive() {
    if (closed) return;
    int64_t timeout = driven ? ctx->NextTimeoutNs() : -1;
    if (timeout >= 0) {
      ArmTimer(timeout);
      uv_ref(reinterpret_cast<uv_handle_t*>(&timer_handle));
    } else {
      uv_timer_stop(&timer_handle);  // nothing due: no spurious wake-up either
      uv_unref(reinterpret_cast<uv_handle_t*>(&timer_handle));
    }
  }

  bool StartHandles() {
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) return false;
    uv_poll_init(loop, &poll_handle, ctx->EpollFd());
    uv_prepare_init(loop, &prepare_handle);
    uv_check_init(loop, &check_handle);
    uv_timer_init(loop, &timer_handle);
    for (uv_handle_t* h : Handles()) {
      h->data = this;
      uv_unref(h);
    }
    return true;
  }

  std::vector<uv_handle_t*> Handles() {
    return {reinterpret_cast<uv_handle_t*>(&poll_handle), reinterpret_cast<uv_handle_t*>(&prepare_handle),
            reinterpret_cast<uv_handle_t*>(&check_handle), reinterpret_cast<uv_handle_t*>(&timer_handle)};
  }

  void SetDriven(bool on) {
    if (closed || on == driven) return;
    driven = on;
    if (on) {
      uv_poll_start(&poll_handle, UV_READABLE, OnUvPoll);
      uv_prepare_start(&prepare_handle, OnUvPrepare);
      uv_check_start(&check_handle, OnUvCheck);
      UpdateKeepAlive();
    } else {
      uv_poll_stop(&poll_handle);
      uv_prepare_stop(&prepare_handle);
      uv_check_stop(&check_handle);
      uv_timer_stop(&timer_handle);
      if (prepared) {
        ctx->Check();  // withdraw the waiter Prepare() advertised
        prepared = false;
      }
    }
  }

  void SetUserRef(bool on) {
    user_ref = on;
    if (closed) return;
    if (on)
      uv_ref(reinterpret_cast<uv_handle_t*>(&poll_handle));
    else
      uv_unref(reinterpret_cast<uv_handle_t*>(&poll_handle));
  }

  // ---- teardown
  void Close() {
    if (closed) return;
    closed = true;
    driven = false;
    // We may be inside a dispatch walk (close() from a callback): first make sure the core
    // never calls back into the records freed below.
    for (auto& entry : bhs) core::AioContext::DeleteBh(entry.second->bh);
    for (auto& entry : fds) ctx->RemoveFdHandler(entry.first);
    for (auto& entry : timers) ctx->TimerFree(entry.second->timer);
    // JS references go now, on the JS thread, while the env is alive.
    bhs.clear();
    timers.clear();
    fds.clear();
    fd_graveyard.clear();
    first_error.Reset();
    async_context.reset();
    handles_closing = 4;
    for (uv_handle_t* h : Handles()) uv_close(h, OnUvClosed);
  }

  static void OnUvClosed(uv_handle_t* h) {
    LoopState* s = static_cast<LoopState*>(h->data);
    if (--s->handles_closing > 0) return;
    // All handles are gone: the epoll fd may close now, then the env may finish exiting.
    s->ctx.reset();
    if (s->cleanup_hook) {
      napi_remove_async_cleanup_hook(s->cleanup_hook);
      s->cleanup_hook = nullptr;
    }
    s->self.reset();  // may delete s
  }

  static void OnEnvCleanup(napi_async_cleanup_hook_handle, void* arg) {
    // Runs while the env's loop still runs; it waits until OnUvClosed removes the hook.
    static_cast<LoopState*>(arg)->Close();
  }
};

class MainLoopContextWrap : public Napi::ObjectWrap<MainLoopContextWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "MainLoopContext",
                       {
                           InstanceAccessor<&MainLoopContextWrap::JsName>("name"),
                           InstanceAccessor<&MainLoopContextWrap::JsClosed>("closed"),
                           InstanceAccessor<&MainLoopContextWrap::JsDriven>("driven"),
                           InstanceAccessor<&MainLoopContextWrap::JsNotifierWrites>("notifierWrites"),
                           InstanceMethod<&MainLoopContextWrap::JsBhNew>("bhNew"),
                           InstanceMethod<&MainLoopContextWrap::JsBhSchedule>("bhSchedule"),
                           InstanceMethod<&MainLoopContextWrap::JsBhScheduleIdle>("bhScheduleIdle"),
                           InstanceMethod<&MainLoopContextWrap::JsBhCancel>("bhCancel"),
                           InstanceMethod<&MainLoopContextWrap::JsBhDelete>("bhDelete"),
                           InstanceMethod<&MainLoopContextWrap::JsOneshot>("oneshot"),
                           InstanceMethod<&MainLoopContextWrap::JsTimerNew>("timerNew"),
                           InstanceMethod<&MainLoopContextWrap::JsTimerMod>("timerMod"),
                           InstanceMethod<&MainLoopContextWrap::JsTimerDel>("timerDel"),
                           InstanceMethod<&MainLoopContextWrap::JsTimerFree>("timerFree"),
                           InstanceMethod<&MainLoopContextWrap::JsTimerPending>("timerPending"),
                           InstanceMethod<&MainLoopContextWrap::JsSetFdHandler>("setFdHandler"),
                           InstanceMethod<&MainLoopContextWrap::JsRemoveFdHandler>("removeFdHandler"),
                           InstanceMethod<&MainLoopContextWrap::JsSetFdPolling>("setFdPolling"),
                           InstanceMethod<&MainLoopContextWrap::JsNotify>("notify"),
                           InstanceMethod<&MainLoopContextWrap::JsPoll>("poll"),
                           InstanceMethod<&MainLoopContextWrap::JsPrepare>("prepare"),
                           InstanceMethod<&MainLoopContextWrap::JsCheck>("check"),
                           InstanceMethod<&MainLoopContextWrap::JsDispatch>("dispatch"),
                           InstanceMethod<&MainLoopContextWrap::JsNextTimeoutNs>("nextTimeoutNs"),
                           InstanceMethod<&MainLoopContextWrap::JsSetDriven>("setDriven"),
                           InstanceMethod<&MainLoopContextWrap::JsRef>("ref"),
                           InstanceMethod<&MainLoopContextWrap::JsUnref>("unref"),
                           InstanceMethod<&MainLoopContextWrap::JsClose>("close"),
                       });
  }

  // new MainLoopContext(name?, { driven?: boolean = true })
  explicit MainLoopContextWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<MainLoopContextWrap>(info) {
    Napi::Env env = info.Env();
    std::string name = "main-loop";
    if (!info[0].IsUndefined() && !ReadString(env, info[0], "context name", &name)) return;
    bool driven = true;
    if (!info[1].IsUndefined()) {
      Napi::Object opts;
      if (!ReadObject(env, info[1], "context options", &opts)) return;
      Napi::Value d = opts.Get("driven");
      if (!d.IsUndefined() && !ReadBool(env, d, "driven", &driven)) return;
    }
    auto ctx = core::AioContext::Create(name);
    if (!ctx.ok()) {
      ThrowStatus(env, ctx.status);
      return;
    }
    auto state = std::make_shared<LoopState>();
    state->env = env;
    state->ctx = std::move(ctx.value);
    state->async_context = std::make_unique<Napi::AsyncContext>(env, "netplane:MainLoopContext");
    if (!state->StartHandles()) {
      Napi::Error::New(env, "cannot reach the libuv loop of this environment").ThrowAsJavaScriptException();
      return;
    }
    state->self = state;
    napi_add_async_cleanup_hook(env, &LoopState::OnEnvCleanup, state.get(), &state->cleanup_hook);
    state_ = state;
    state_->SetDriven(driven);
  }

  ~MainLoopContextWrap() override {
    if (state_) state_->Close();
  }

 private:
  // Throws and returns nullptr when closed.
  LoopState* Live(Napi::Env env) {
    if (!state_ || state_->closed) {
      ThrowStatus(env, core::Status::Closed("main loop context is closed"));
      return nullptr;
    }
    return state_.get();
  }

  template <class Rec>
  Rec* Lookup(Napi::Env env, std::unordered_map<uint32_t, std::unique_ptr<Rec>>& map, Napi::Value id,
              const char* what) {
    uint32_t key;
    if (!ReadInteger(env, id, std::string(what) + " id", 1, UINT32_MAX, &key)) return nullptr;
    auto it = map.find(key);
    if (it == map.end()) {
      ThrowRangeError(env,
                      std::string("no such ") + what + " (deleted or never created): " + id.ToString().Utf8Value());
      return nullptr;
    }
    return it->second.get();
  }

  bool GetCallback(Napi::Env env, Napi::Value v, const char* what, bool optional) {
    if (optional && (v.IsUndefined() || v.IsNull())) return true;
    Napi::Function fn;
    return ReadFunction(env, v, what, &fn);
  }

  // A manual iteration done: rethrow the first JS exception a callback raised.
  Napi::Value Finish(Napi::Env env, Napi::Value result) {
    if (state_ && !state_->first_error.IsEmpty()) {
      Napi::Value err = state_->first_error.Value();
      state_->first_error.Reset();
      Napi::Error(env, err).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (state_) state_->UpdateKeepAlive();
    return result;
  }

  template <class Fn>
  Napi::Value Manual(Napi::Env env, Fn fn) {
    LoopState* s = Live(env);
    if (!s) return env.Undefined();
    std::shared_ptr<LoopState> keep = state_;
    int saved = s->uv_dispatching;
    s->uv_dispatching = 0;  // errors raised below go back to our caller
    Napi::Value result =
        s->RunPhase([&] { return fn(s); }) ? Napi::Boolean::New(env, true) : Napi::Boolean::New(env, false);
    s->uv_dispatching = saved;
    return Finish(env, result);
  }

  Napi::Value JsName(const Napi::CallbackInfo& info) {
    LoopState* s = Live(info.Env());
    return s ? Napi::String::New(info.Env(), s->ctx->name()) : info.Env().Undefined();
  }
  Napi::Value JsClosed(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), !state_ || state_->closed);
  }
  Napi::Value JsDriven(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), state_ && !state_->closed && state_->driven);
  }
  Napi::Value JsNotifierWrites(const Napi::CallbackInfo& info) {
    LoopState* s = Live(info.Env());
    return s ? Napi::Number::New(info.Env(), static_cast<double>(s->ctx->notifier_writes())) : info.Env().Undefined();
  }

  // ---- bottom halves
  Napi::Value JsBhNew(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    LoopState* s = Live(env);
    if (!s || !GetCallback(env, info[0], "bottom half callback", false)) return env.Undefined();
    auto rec = std::make_unique<JsBh>();
    rec->state = s;
    rec->fn = Napi::Persistent(info[0].As<Napi::Function>());
    rec->bh = s->ctx->NewBh(&LoopState::OnBh, rec.get(), "js-bh");
    uint32_t id = s->next_id++;
    s->bhs[id] = std::move(rec);
    return Napi::Number::New(env, id);
  }

  template <void (*Op)(core::BottomHalf*)>
  Napi::Value BhOp(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    LoopState* s = Live(env);
    if (!s) return env.Undefined();
    JsBh* rec = Lookup(env, s->bhs, info[0], "bottom half");
    if (!rec) return env.Undefined();
    Op(rec->bh);
    s->UpdateKeepAlive();
    return env.Undefined();
  }
  Napi::Value JsBhSchedule(const Napi::CallbackInfo& info) { return BhOp<&core::AioContext::ScheduleBh>(info); }
  Napi::Value JsBhScheduleIdle(const Napi::CallbackInfo& info) { return BhOp<&core::AioContext::ScheduleBhIdle>(info); }
  Napi::Value JsBhCancel(const Napi::CallbackInfo& info) { return BhOp<&core::AioContext::CancelBh>(info); }

  Napi::Value JsBhDelete(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    LoopState* s = Live(env);
    if (!s) return env.Undefined();
    JsBh* rec = Lookup(env, s->bhs, info[0], "bottom half");
    if (!rec) return env.Undefined();
    // The core frees the BH on its next pass and never calls it again, so the JS side can
    // go now (even from the BH's own callback: CallJs holds its own handle).
    core::AioContext::DeleteBh(rec->bh);
    s->bhs.erase(static_cast<uint32_t>(info[0].As<Napi::Number>().DoubleValue()));
    return env.Undefined();
  }

  Napi::Value JsOneshot(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    LoopState* s = Live(env);
    if (!s || !GetCallback(env, info[0], "one-shot callback", false)) return env.Undefined();
    auto fn = std::make_shared<Napi::FunctionReference>(Napi::Persistent(info[0].As<Napi::Function>()));
    s->ctx->ScheduleOneshot([s, fn] { s->CallJs(*fn); }, "js-oneshot");
    s->UpdateKeepAlive();
    return env.Undefined();
  }

  // ---- timers
  Napi::Value JsTimerNew(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    LoopState* s = Live(env);
    if (!s || !GetCallback(env, info[0], "timer callback", false)) return env.Undefined();
    auto rec = std::make_unique<JsTimer>();
    rec->state = s;
    rec->fn = Napi::Persistent(info[0].As<Napi::Function>());
    rec->timer = s->ctx->NewTimer(&LoopState::OnTimer, rec.get());
    uint32_t id = s->next_id++;
    s->timers[id] = std::move(rec);
    return Napi::Number::New(env, id);
  }

  // timerMod(id, delayMs): fire delayMs (>= 0, fractions allowed) from now.
  Napi::Value JsTimerMod(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    LoopState* s = Live(env);
    if (!s) return env.Undefined();
    JsTimer* rec = Lookup(env, s->timers, info[0], "timer");
    if (!rec) return env.Undefined();
    if (!info[1].IsNumber()) return ThrowTypeError(env, "timer delay must be a number of milliseconds");
    double ms = info[1].As<Napi::Number>().DoubleValue();
    if (!std::isfinite(ms) || ms < 0 || ms > 1e12) {
      return ThrowRangeError(
          env, "timer delay must be a finite number of milliseconds >= 0, got " + info[1].ToString().Utf8Value());
    }
    s->ctx->TimerMod(rec->timer, core::AioContext::NowNs() + static_cast<int64_t>(std::ceil(ms * 1e6)));
    s->UpdateKeepAlive();
    return env.Undefined();
  }

  Napi::Value JsTimerDel(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    LoopState* s = Live(env);
    if (!s) return env.Undefined();
    JsTimer* rec = Lookup(env, s->timers, info[0], "timer");
    if (!rec) return env.Undefined();
    s->ctx->TimerDel(rec->timer);
    s->UpdateKeepAlive();
    return env.Undefined();
  }

  Napi::Value JsTimerFree(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    LoopState* s = Live(env);
    if (!s) return env.Undefined();
    JsTimer* rec = Lookup(env, s->timers, info[0], "timer");
    if (!rec) return env.Undefined();
    // Safe from the timer's own callback: it is unlinked before being called.
    s->ctx->TimerFree(rec->timer);
    s->timers.erase(static_cast<uint32_t>(info[0].As<Napi::Number>().DoubleValue()));
    s->UpdateKeepAlive();
    return env.Undefined();
  }

  Napi::Value JsTimerPending(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    LoopState* s = Live(env);
    if (!s) return env.Undefined();
    JsTimer* rec = Lookup(env, s->timers, info[0], "timer");
    if (!rec) return env.Undefined();
    return Napi::Boolean::New(env, s->ctx->TimerPending(rec->timer));
  }

  // ---- fd handlers
  // setFdHandler(fd, read?: fn|null, write?: fn|null); both absent removes the handler.
  Napi::Value JsSetFdHandler(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    LoopState* s = Live(env);
    int fd;
    if (!s || !ReadFd(env, info[0], "fd", &fd)) return env.Undefined();
    if (!GetCallback(env, info[1], "read handler", true) || !GetCallback(env, info[2], "write handler", true)) {
      return env.Undefined();
    }
    bool has_read = info[1].IsFunction(), has_write = info[2].IsFunction();
    if (!has_read && !has_write) return RemoveFd(env, s, fd);
    auto rec = std::make_unique<JsFd>();
    rec->state = s;
    rec->fd = fd;
    if (has_read) rec->read = Napi::Persistent(info[1].As<Napi::Function>());
    if (has_write) rec->write = Napi::Persistent(info[2].As<Napi::Function>());
    core::Status st = s->ctx->SetFdHandler(fd, has_read ? &LoopState::OnFdRead : nullptr,
                                           has_write ? &LoopState::OnFdWrite : nullptr, nullptr, nullptr, rec.get());
    if (!st.ok()) return ThrowStatus(env, st);
    auto it = s->fds.find(fd);
    if (it != s->fds.end()) {
      s->Bury(std::move(it->second));
      it->second = std::move(rec);
    } else {
      s->fds[fd] = std::move(rec);
    }
    return env.Undefined();
  }

  Napi::Value RemoveFd(Napi::Env env, LoopState* s, int fd) {
    s->ctx->RemoveFdHandler(fd);
    auto it = s->fds.find(fd);
    if (it != s->fds.end()) {
      s->Bury(std::move(it->second));
      s->fds.erase(it);
    }
    return env.Undefined();
  }

  Napi::Value JsRemoveFdHandler(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    LoopState* s = Live(env);
    int fd;
    if (!s || !ReadFd(env, info[0], "fd", &fd)) return env.Undefined();
    return RemoveFd(env, s, fd);
  }

  Napi::Value JsSetFdPolling(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    LoopState* s = Live(env);
    int fd;
    bool read, write;
    if (!s || !ReadFd(env, info[0], "fd", &fd) || !ReadBool(env, info[1], "read", &read) ||
        !ReadBool(env, info[2], "write", &write)) {
      return env.Undefined();
    }
    if (!s->ctx->HasFdHandler(fd)) return ThrowRangeError(env, "no fd handler registered for fd " + std::to_string(fd));
    core::Status st = s->ctx->SetFdPolling(fd, read, write);
    if (!st.ok()) return ThrowStatus(env, st);
    return env.Undefined();
  }

  // ---- running
  Napi::Value JsNotify(const Napi::CallbackInfo& info) {
    LoopState* s = Live(info.Env());
    if (s) s->ctx->Notify();
    return info.Env().Undefined();
  }

  Napi::Value JsPoll(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bool blocking;
    if (!ReadBool(env, info[0], "blocking", &blocking)) return env.Undefined();
    return Manual(env, [blocking](LoopState* s) { return s->ctx->Poll(blocking); });
  }

  Napi::Value JsPrepare(const Napi::CallbackInfo& info) {
    LoopState* s = Live(info.Env());
    if (!s) return info.Env().Undefined();
    return Napi::Number::New(info.Env(), static_cast<double>(s->ctx->Prepare()));
  }

  Napi::Value JsCheck(const Napi::CallbackInfo& info) {
    LoopState* s = Live(info.Env());
    if (!s) return info.Env().Undefined();
    return Napi::Boolean::New(info.Env(), s->ctx->Check());
  }

  Napi::Value JsDispatch(const Napi::CallbackInfo& info) {
    return Manual(info.Env(), [](LoopState* s) { return s->ctx->Dispatch(); });
  }

  Napi::Value JsNextTimeoutNs(const Napi::CallbackInfo& info) {
    LoopState* s = Live(info.Env());
    if (!s) return info.Env().Undefined();
    return Napi::Number::New(info.Env(), static_cast<double>(s->ctx->NextTimeoutNs()));
  }

  Napi::Value JsSetDriven(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    LoopState* s = Live(env);
    bool on;
    if (!s || !ReadBool(env, info[0], "driven", &on)) return env.Undefined();
    s->SetDriven(on);
    return env.Undefined();
  }

  Napi::Value JsRef(const Napi::CallbackInfo& info) {
    if (LoopState* s = Live(info.Env())) s->SetUserRef(true);
    return info.Env().Undefined();
  }

  Napi::Value JsUnref(const Napi::CallbackInfo& info) {
    if (LoopState* s = Live(info.Env())) s->SetUserRef(false);
    return info.Env().Undefined();
  }

  Napi::Value JsClose(const Napi::CallbackInfo& info) {
    if (state_) state_->Close();  // idempotent
    return info.Env().Undefined();
  }

  std::shared_ptr<LoopState> state_;
};

// aioTimeoutNsToMs(ns): how a timeout in ns becomes a poll(2) timeout in ms.
Napi::Value JsAioTimeoutNsToMs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t ns;
  if (!ReadInteger(env, info[0], "timeout", -1, kMaxSafeInteger, &ns)) return env.Undefined();
  return Napi::Number::New(env, static_cast<double>(core::AioContext::TimeoutNsToMs(ns)));
}

}  // namespace

void InitMainLoopContext(Napi::Env env, Napi::Object exports) {
  // Each context closes through its own async cleanup hook at env exit.
  exports.Set("MainLoopContext", MainLoopContextWrap::Define(env));
  exports.Set("aioTimeoutNsToMs", Napi::Function::New(env, JsAioTimeoutNsToMs, "aioTimeoutNsToMs"));
}

}  // namespace netplane::binding
