// TapDevice for JavaScript: tapOpen(opts) / tapAdopt(fds, sndbuf) return a wrapped device
// with getters, setters and close(). Argument checks throw TypeError/RangeError naming the
// argument; core failures throw Node-style system errors (errors.h). Devices still open when
// the environment shuts down (process or worker exit) are closed by the env cleanup hook.
#include <climits>
#include <memory>
#include <unordered_set>

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "tap/tap_device.h"

namespace netplane::binding {

namespace {

class TapWrap;

// Per-env: the class constructor and every live wrapper, so cleanup can close them.
struct TapRegistry : std::enable_shared_from_this<TapRegistry> {
  Napi::FunctionReference ctor;
  std::unordered_set<TapWrap*> live;
  // Set by Wrap() only while it runs the constructor: the opened device to take over.
  // (Not a Napi::External: node keeps a small record per external until GC, and one still
  // alive at exit shows as a valgrind leak; a JS-visible External could also be forged.)
  std::unique_ptr<core::TapDevice>* handoff = nullptr;
};

// sndbuf: absent (undefined) = -1 (QEMU's default: INT_MAX, failure ignored); otherwise a
// non-negative safe integer; the core clamps values above INT_MAX.
bool GetSndbuf(Napi::Env env, Napi::Value v, int64_t* out) {
  if (v.IsUndefined()) {
    *out = -1;
    return true;
  }
  return ReadInteger(env, v, "sndbuf", 0, kMaxSafeInteger, out);
}

class TapWrap : public Napi::ObjectWrap<TapWrap> {
 public:
  static Napi::Function Define(Napi::Env env, TapRegistry* registry) {
    return DefineClass(env, "TapDevice",
                       {
                           InstanceAccessor<&TapWrap::JsIfname>("ifname"),
                           InstanceAccessor<&TapWrap::JsQueues>("queues"),
                           InstanceAccessor<&TapWrap::JsFeatures>("features"),
                           InstanceAccessor<&TapWrap::JsHasVnetHdr>("hasVnetHdr"),
                           InstanceAccessor<&TapWrap::JsHasUfo>("hasUfo"),
                           InstanceAccessor<&TapWrap::JsHasUso>("hasUso"),
                           InstanceAccessor<&TapWrap::JsVnetHdrLen>("vnetHdrLen"),
                           InstanceAccessor<&TapWrap::JsOffloadFlags>("offloadFlags"),
                           InstanceAccessor<&TapWrap::JsClosed>("closed"),
                           InstanceMethod<&TapWrap::JsFd>("fd"),
                           InstanceMethod<&TapWrap::JsQueueEnabled>("queueEnabled"),
                           InstanceMethod<&TapWrap::JsSetVnetHdrLen>("setVnetHdrLen"),
                           InstanceMethod<&TapWrap::JsSetOffloads>("setOffloads"),
                           InstanceMethod<&TapWrap::JsSetQueueEnabled>("setQueueEnabled"),
                           InstanceMethod<&TapWrap::JsSetSndbuf>("setSndbuf"),
                           InstanceMethod<&TapWrap::JsClose>("close"),
                       },
                       registry);
  }

  // Only tapOpen/tapAdopt construct: they hand the opened device over through the registry.
  explicit TapWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TapWrap>(info) {
    registry_ = static_cast<TapRegistry*>(info.Data())->shared_from_this();
    if (registry_->handoff == nullptr) {
      Napi::TypeError::New(info.Env(), "TapDevice cannot be constructed directly; use tapOpen() or tapAdopt()")
          .ThrowAsJavaScriptException();
      return;
    }
    device_ = std::move(*registry_->handoff);
    registry_->handoff = nullptr;
    registry_->live.insert(this);
  }

  ~TapWrap() override {
    if (registry_) registry_->live.erase(this);
  }

  void CloseDevice() { device_.reset(); }

 private:
  // Throws and returns nullptr when closed.
  core::TapDevice* Device(Napi::Env env) {
    if (!device_) {
      ThrowStatus(env, core::Status::Closed("tap device is closed"));
      return nullptr;
    }
    return device_.get();
  }

  bool GetQueue(const Napi::CallbackInfo& info, uint32_t* out) {
    return ReadInteger(info.Env(), info[0], "queue", 0, device_->queue_count() - 1.0, out);
  }

#define NP_TAP_GETTER(Name, expr)                    \
  Napi::Value Name(const Napi::CallbackInfo& info) { \
    core::TapDevice* dev = Device(info.Env());       \
    if (!dev) return info.Env().Undefined();         \
    return expr;                                     \
  }
  NP_TAP_GETTER(JsIfname, Napi::String::New(info.Env(), dev->ifname()))
  NP_TAP_GETTER(JsQueues, Napi::Number::New(info.Env(), dev->queue_count()))
  NP_TAP_GETTER(JsFeatures, Napi::Number::New(info.Env(), dev->kernel_features()))
  NP_TAP_GETTER(JsHasVnetHdr, Napi::Boolean::New(info.Env(), dev->has_vnet_hdr()))
  NP_TAP_GETTER(JsHasUfo, Napi::Boolean::New(info.Env(), dev->has_ufo()))
  NP_TAP_GETTER(JsHasUso, Napi::Boolean::New(info.Env(), dev->has_uso()))
  NP_TAP_GETTER(JsVnetHdrLen, Napi::Number::New(info.Env(), dev->vnet_hdr_len()))
  NP_TAP_GETTER(JsOffloadFlags, Napi::Number::New(info.Env(), dev->offload_flags()))
#undef NP_TAP_GETTER

  Napi::Value JsClosed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !device_); }

  Napi::Value JsFd(const Napi::CallbackInfo& info) {
    uint32_t q;
    if (!Device(info.Env()) || !GetQueue(info, &q)) return info.Env().Undefined();
    return Napi::Number::New(info.Env(), device_->fd(q));
  }

  Napi::Value JsQueueEnabled(const Napi::CallbackInfo& info) {
    uint32_t q;
    if (!Device(info.Env()) || !GetQueue(info, &q)) return info.Env().Undefined();
    return Napi::Boolean::New(info.Env(), device_->queue_enabled(q));
  }

  Napi::Value JsSetVnetHdrLen(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    core::TapDevice* dev = Device(env);
    if (!dev) return env.Undefined();
    if (!info[0].IsNumber()) return ThrowTypeError(env, "vnet header length must be a number");
    double len = info[0].As<Napi::Number>().DoubleValue();
    if (len != 10 && len != 12 && len != 20) {
      return ThrowRangeError(env, "vnet header length must be 10, 12 or 20, got " + info[0].ToString().Utf8Value());
    }
    if (core::Status s = dev->SetVnetHdrLen(static_cast<int>(len)); !s.ok()) return ThrowStatus(env, s);
    return env.Undefined();
  }

  Napi::Value JsSetOffloads(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    core::TapDevice* dev = Device(env);
    if (!dev) return env.Undefined();
    Napi::Object o;
    if (!ReadObject(env, info[0], "offloads", &o)) return env.Undefined();
    core::TapOffloads off;
    struct Field {
      const char* name;
      bool* slot;
    } fields[] = {{"csum", &off.csum}, {"tso4", &off.tso4}, {"tso6", &off.tso6}, {"ecn", &off.ecn},
                  {"ufo", &off.ufo},   {"uso4", &off.uso4}, {"uso6", &off.uso6}};
    for (const Field& f : fields) {
      Napi::Value v = o.Get(f.name);
      if (v.IsUndefined()) continue;
      if (!ReadBool(env, v, std::string("offloads.") + f.name, f.slot)) return env.Undefined();
    }
    if (core::Status s = dev->SetOffloads(off); !s.ok()) return ThrowStatus(env, s);
    return env.Undefined();
  }

  Napi::Value JsSetQueueEnabled(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t q;
    if (!Device(env) || !GetQueue(info, &q)) return env.Undefined();
    bool enabled;
    if (!ReadBool(env, info[1], "enabled", &enabled)) return env.Undefined();
    if (core::Status s = device_->SetQueueEnabled(q, enabled); !s.ok()) {
      return ThrowStatus(env, s);
    }
    return env.Undefined();
  }

  Napi::Value JsSetSndbuf(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    core::TapDevice* dev = Device(env);
    if (!dev) return env.Undefined();
    if (info[0].IsUndefined()) return ThrowTypeError(env, "sndbuf must be a number");
    int64_t bytes;
    if (!GetSndbuf(env, info[0], &bytes)) return env.Undefined();
    if (core::Status s = dev->SetSndbuf(bytes); !s.ok()) return ThrowStatus(env, s);
    return env.Undefined();
  }

  Napi::Value JsClose(const Napi::CallbackInfo& info) {
    CloseDevice();  // idempotent
    return info.Env().Undefined();
  }

  std::shared_ptr<TapRegistry> registry_;
  std::unique_ptr<core::TapDevice> device_;
};

TapRegistry* RegistryOf(const Napi::CallbackInfo& info) { return static_cast<TapRegistry*>(info.Data()); }

Napi::Value Wrap(Napi::Env /*env*/, TapRegistry* registry, std::unique_ptr<core::TapDevice> device) {
  // The slot is lent for the duration of New() only; the wrapper moves from it, and if
  // construction fails the unique_ptr here still closes the device.
  struct Lend {
    TapRegistry* r;
    ~Lend() { r->handoff = nullptr; }
  } lend{registry};
  registry->handoff = &device;
  return registry->ctor.New({});
}

// tapOpen({ ifname?, queues?, vnetHdr?: 'off'|'auto'|'on', sndbuf? })
Napi::Value JsTapOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  core::TapOpenOptions opts;
  if (!info[0].IsUndefined()) {
    Napi::Object o;
    if (!ReadObject(env, info[0], "tap options", &o)) return env.Undefined();
    Napi::Value ifname = o.Get("ifname");
    if (!ifname.IsUndefined()) {
      if (!ReadString(env, ifname, "ifname", &opts.ifname)) return env.Undefined();
      if (core::Status s = core::ValidateTapIfname(opts.ifname); !s.ok()) return ThrowRangeError(env, s.message);
    }
    Napi::Value queues = o.Get("queues");
    if (!queues.IsUndefined()) {
      if (!ReadInteger(env, queues, "queues", 1, core::kMaxTapQueues, &opts.queues)) return env.Undefined();
    }
    Napi::Value vnet = o.Get("vnetHdr");
    if (!vnet.IsUndefined()) {
      std::string mode = vnet.IsString() ? vnet.As<Napi::String>().Utf8Value() : "";
      if (mode == "off") {
        opts.vnet_hdr = core::VnetHdrMode::kOff;
      } else if (mode == "auto") {
        opts.vnet_hdr = core::VnetHdrMode::kIfAvailable;
      } else if (mode == "on") {
        opts.vnet_hdr = core::VnetHdrMode::kRequired;
      } else {
        return ThrowTypeError(env, "vnetHdr must be 'off', 'auto' or 'on'");
      }
    }
    if (!GetSndbuf(env, o.Get("sndbuf"), &opts.sndbuf)) return env.Undefined();
  }
  auto r = core::TapDevice::Open(opts);
  if (!r.ok()) return ThrowStatus(env, r.status);
  return Wrap(env, RegistryOf(info), std::move(r.value));
}

// tapAdopt(fds: number[], sndbuf?: number)
Napi::Value JsTapAdopt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) return ThrowTypeError(env, "fds must be an array of file descriptors");
  Napi::Array arr = info[0].As<Napi::Array>();
  if (arr.Length() < 1 || arr.Length() > core::kMaxTapQueues) {
    return ThrowRangeError(env, "fds must hold 1.." + std::to_string(core::kMaxTapQueues) + " file descriptors, got " +
                                    std::to_string(arr.Length()));
  }
  std::vector<int> fds;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    int fd;
    if (!ReadInteger(env, arr.Get(i), "fd", 0, INT_MAX, &fd)) return env.Undefined();
    fds.push_back(fd);
  }
  int64_t sndbuf;
  if (!GetSndbuf(env, info[1], &sndbuf)) return env.Undefined();
  auto r = core::TapDevice::Adopt(fds, sndbuf);
  if (!r.ok()) return ThrowStatus(env, r.status);
  return Wrap(env, RegistryOf(info), std::move(r.value));
}

}  // namespace

void InitTap(Napi::Env env, Napi::Object exports) {
  auto registry = std::make_shared<TapRegistry>();
  Napi::Function ctor = TapWrap::Define(env, registry.get());
  registry->ctor = Napi::Persistent(ctor);
  exports.Set("TapDevice", ctor);
  exports.Set("tapOpen", Napi::Function::New(env, JsTapOpen, "tapOpen", registry.get()));
  exports.Set("tapAdopt", Napi::Function::New(env, JsTapAdopt, "tapAdopt", registry.get()));
  // At env shutdown close every device still open; wrappers finalized later find it closed.
  GetAddonData(env).cleanups.push_back([registry]() {
    for (TapWrap* w : registry->live) w->CloseDevice();
    registry->ctor.Reset();
  });
}

}  // namespace netplane::binding
