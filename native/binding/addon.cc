// Module init: per-env data, the env cleanup hook, and every concept's exports.
#include "addon.h"

namespace netplane::binding {

AddonData& GetAddonData(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

static void RunCleanups(void* arg) {
  auto* data = static_cast<AddonData*>(arg);
  // Last registered first: dependents (graphs) go before what they use (threads, taps).
  for (auto it = data->cleanups.rbegin(); it != data->cleanups.rend(); ++it) (*it)();
  data->cleanups.clear();
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  env.SetInstanceData<AddonData>(data);
  napi_add_env_cleanup_hook(env, RunCleanups, data);
  InitTap(env, exports);
  InitVnet(env, exports);
  InitIoThread(env, exports);
  InitMainLoopContext(env, exports);
  InitGraph(env, exports);
  InitFdPassing(env, exports);
  InitGuestMemory(env, exports);
  InitSlirp(env, exports);
  InitSocket(env, exports);
  return exports;
}

NODE_API_MODULE(netplane, Init)

}  // namespace netplane::binding
