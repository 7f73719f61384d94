// Guest memory for JavaScript (core/virtio/guest_memory.h):
//  * guestMemoryMap([{ guestAddr, size, userAddr, fd, fdOffset }]): maps every region
//    MAP_SHARED (a memfd, or the fds of a vhost-user SET_MEM_TABLE). The fds are used only
//    during the call (mmap needs no fd afterwards): the caller keeps and closes its own.
//  * guestMemoryWrap([{ guestAddr, bytes }]): regions over memory JavaScript owns (a
//    Uint8Array over a SharedArrayBuffer); this object keeps each array referenced, and the
//    data plane keeps this object referenced while a ring uses it.
// Both return a GuestMemory; an invalid table throws code NETPLANE_INVALID naming the
// region and the reason. close() drops this object's reference: the mapping goes when the
// last ring using it is stopped (rings hold their own). Idempotent.
#include <climits>

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "virtio/guest_memory.h"

namespace netplane::binding {

namespace {

struct Pending {
  std::shared_ptr<core::GuestMemory> mem;
  std::vector<Napi::Object> keep;
};

class GuestMemoryWrap : public Napi::ObjectWrap<GuestMemoryWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "GuestMemory",
                       {
                           InstanceMethod<&GuestMemoryWrap::JsClose>("close"),
                           InstanceAccessor<&GuestMemoryWrap::JsClosed>("closed"),
                           InstanceAccessor<&GuestMemoryWrap::JsSize>("size"),
                           InstanceAccessor<&GuestMemoryWrap::JsRegions>("regionCount"),
                       });
  }

  explicit GuestMemoryWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GuestMemoryWrap>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) {
      Napi::TypeError::New(info.Env(), "GuestMemory is made by guestMemoryMap() or guestMemoryWrap()")
          .ThrowAsJavaScriptException();
      return;
    }
    auto* p = info[0].As<Napi::External<Pending>>().Data();
    mem_ = std::move(p->mem);
    for (Napi::Object& o : p->keep) keep_.push_back(Napi::Persistent(o));
  }

  std::shared_ptr<const core::GuestMemory> memory() const { return mem_; }

 private:
  Napi::Value JsClose(const Napi::CallbackInfo& info) {
    mem_.reset();  // the arrays stay referenced until GC: a ring may still use them
    return info.Env().Undefined();
  }
  Napi::Value JsClosed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !mem_); }
  Napi::Value JsSize(const Napi::CallbackInfo& info) {
    return Napi::BigInt::New(info.Env(), mem_ ? mem_->total_bytes() : 0);
  }
  Napi::Value JsRegions(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), mem_ ? static_cast<double>(mem_->regions().size()) : 0);
  }

  std::shared_ptr<core::GuestMemory> mem_;
  std::vector<Napi::ObjectReference> keep_;
};

bool ReadRegionList(Napi::Env env, Napi::Value v, Napi::Array* out) {
  if (!v.IsArray()) {
    ThrowTypeError(env, "regions must be an array");
    return false;
  }
  *out = v.As<Napi::Array>();
  if (out->Length() > core::GuestMemory::kMaxRegions) {
    ThrowStatus(env, core::Status::InvalidInput("guest memory table has " + std::to_string(out->Length()) +
                                                " regions, more than the " +
                                                std::to_string(core::GuestMemory::kMaxRegions) + " allowed"));
    return false;
  }
  return true;
}

Napi::Value Make(Napi::Env env, Pending* p) {
  Napi::Function cls = GetAddonData(env).guest_memory_class.Value();
  return cls.New({Napi::External<Pending>::New(env, p)});
}

// guestMemoryMap(regions)
Napi::Value JsMap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array list;
  if (!ReadRegionList(env, info[0], &list)) return env.Undefined();
  std::vector<core::GuestRegionSpec> specs(list.Length());
  for (uint32_t i = 0; i < list.Length(); ++i) {
    std::string at = "regions[" + std::to_string(i) + "].";
    Napi::Object o;
    core::GuestRegionSpec& s = specs[i];
    if (!ReadObject(env, list.Get(i), "regions[" + std::to_string(i) + "]", &o) ||
        !ReadU64(env, o.Get("guestAddr"), at + "guestAddr", &s.guest_addr) ||
        !ReadU64(env, o.Get("size"), at + "size", &s.size) ||
        !ReadU64(env, o.Get("userAddr"), at + "userAddr", &s.user_addr) ||
        !ReadFd(env, o.Get("fd"), at + "fd", &s.fd) || !ReadU64(env, o.Get("fdOffset"), at + "fdOffset", &s.fd_offset))
      return env.Undefined();
  }
  auto m = core::GuestMemory::Map(specs);
  if (!m.ok()) return ThrowStatus(env, m.status);
  Pending p{std::move(m.value), {}};
  return Make(env, &p);
}

// guestMemoryWrap(regions)
Napi::Value JsWrap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array list;
  if (!ReadRegionList(env, info[0], &list)) return env.Undefined();
  std::vector<core::BorrowedRegionSpec> specs(list.Length());
  Pending p;
  for (uint32_t i = 0; i < list.Length(); ++i) {
    std::string at = "regions[" + std::to_string(i) + "].";
    Napi::Object o;
    Napi::Uint8Array bytes;
    if (!ReadObject(env, list.Get(i), "regions[" + std::to_string(i) + "]", &o) ||
        !ReadU64(env, o.Get("guestAddr"), at + "guestAddr", &specs[i].guest_addr) ||
        !ReadBytes(env, o.Get("bytes"), at + "bytes", &bytes))
      return env.Undefined();
    specs[i].host = bytes.Data();
    specs[i].size = bytes.ByteLength();
    p.keep.push_back(bytes);
  }
  auto m = core::GuestMemory::Wrap(specs);
  if (!m.ok()) return ThrowStatus(env, m.status);
  p.mem = std::move(m.value);
  return Make(env, &p);
}

}  // namespace

std::shared_ptr<const core::GuestMemory> UnwrapGuestMemory(Napi::Env env, Napi::Value v, const char* what) {
  Napi::Function cls = GetAddonData(env).guest_memory_class.Value();
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(cls)) {
    ThrowTypeError(env, std::string(what) + " must be a GuestMemory");
    return nullptr;
  }
  auto mem = GuestMemoryWrap::Unwrap(v.As<Napi::Object>())->memory();
  if (!mem) ThrowStatus(env, core::Status::Closed(std::string(what) + " is closed"));
  return mem;
}

void InitGuestMemory(Napi::Env env, Napi::Object exports) {
  Napi::Function cls = GuestMemoryWrap::Define(env);
  GetAddonData(env).guest_memory_class = Napi::Persistent(cls);
  exports.Set("GuestMemory", cls);
  exports.Set("guestMemoryMap", Napi::Function::New<JsMap>(env, "guestMemoryMap"));
  exports.Set("guestMemoryWrap", Napi::Function::New<JsWrap>(env, "guestMemoryWrap"));
}

}  // namespace netplane::binding
