// Per-environment addon state and the module init entry points, one per wrapped concept.
// Each binding file implements its own Init* function and registers its exports.
#pragma once

#include <napi.h>

#include <functional>
#include <memory>
#include <vector>

namespace netplane::core {
class GuestMemory;
}

namespace netplane::binding {

// Per-env state (one per main thread or worker). Cleanup functions run from the env
// cleanup hook, before finalizers: stop threads and close fds there.
struct AddonData {
  std::vector<std::function<void()>> cleanups;
  Napi::FunctionReference guest_memory_class;  // GuestMemory, for instanceof checks
};
AddonData& GetAddonData(Napi::Env env);

void InitTap(Napi::Env env, Napi::Object exports);
void InitVnet(Napi::Env env, Napi::Object exports);
void InitIoThread(Napi::Env env, Napi::Object exports);
void InitMainLoopContext(Napi::Env env, Napi::Object exports);
void InitGraph(Napi::Env env, Napi::Object exports);
void InitFdPassing(Napi::Env env, Napi::Object exports);
void InitGuestMemory(Napi::Env env, Napi::Object exports);
void InitSlirp(Napi::Env env, Napi::Object exports);
void InitSocket(Napi::Env env, Napi::Object exports);

// The memory of a GuestMemory object (guest_memory.cc): throws and returns null when v is
// not one or is closed.
std::shared_ptr<const core::GuestMemory> UnwrapGuestMemory(Napi::Env env, Napi::Value v, const char* what);

}  // namespace netplane::binding
