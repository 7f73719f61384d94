#include "slirp/libslirp_loader.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace netplane::core {

namespace {

struct Loaded {
  Libslirp lib;
  Status status;
};

template <class T>
bool Sym(void* h, const char* name, T* out, std::string* missing) {
  void* p = dlsym(h, name);
  if (!p) {
    if (missing->empty()) *missing = name;
    return false;
  }
  *out = reinterpret_cast<T>(p);
  return true;
}

Loaded Load() {
  Loaded r;
  const char* override_path = std::getenv("NETPLANE_LIBSLIRP");
  const std::string file = override_path && *override_path ? override_path : kLibslirpSoname;
  // RTLD_LOCAL: libslirp's GLib stays out of the global namespace; it is never unloaded.
  void* h = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* e = dlerror();
    r.status = Status::NotFound("-netdev user needs libslirp, which could not be loaded (" +
                                std::string(e ? e : file.c_str()) + "): " + kLibslirpInstallHint);
    return r;
  }
  slirp_abi::Api& a = r.lib.api;
  std::string missing;
  Sym(h, "slirp_version_string", &a.slirp_version_string, &missing);
  Sym(h, "slirp_new", &a.slirp_new, &missing);
  Sym(h, "slirp_cleanup", &a.slirp_cleanup, &missing);
  Sym(h, "slirp_pollfds_fill", &a.slirp_pollfds_fill, &missing);
  Sym(h, "slirp_pollfds_poll", &a.slirp_pollfds_poll, &missing);
  Sym(h, "slirp_input", &a.slirp_input, &missing);
  Sym(h, "slirp_add_hostfwd", &a.slirp_add_hostfwd, &missing);
  Sym(h, "slirp_remove_hostfwd", &a.slirp_remove_hostfwd, &missing);
  Sym(h, "slirp_add_exec", &a.slirp_add_exec, &missing);
  Sym(h, "slirp_connection_info", &a.slirp_connection_info, &missing);
  if (!missing.empty()) {
    r.status = Status::NotFound("-netdev user needs libslirp 4.0 or newer; " + file + " lacks " + missing + ": " +
                                kLibslirpInstallHint);
    return r;
  }
  std::string unused;
  Sym(h, "slirp_handle_timer", &a.slirp_handle_timer, &unused);
  // slirp_connection_info's string comes from GLib's allocator; GLib is libslirp's dependency,
  // so dlsym on libslirp's handle finds g_free. (Since GLib 2.46 that is free() anyway.)
  if (!Sym(h, "g_free", &a.free_string, &unused)) a.free_string = std::free;

  r.lib.version = a.slirp_version_string() ? a.slirp_version_string() : "";
  if (std::sscanf(r.lib.version.c_str(), "%d.%d.%d", &r.lib.major, &r.lib.minor, &r.lib.micro) < 2 || r.lib.major < 4) {
    r.status = Status::NotFound("-netdev user needs libslirp 4.0 or newer, found version '" + r.lib.version +
                                "': " + kLibslirpInstallHint);
    return r;
  }
  // The newest SlirpConfig layout this library reads and that netplane declares: v4 (disable_dhcp)
  // from 4.7, v3 (disable_dns) from 4.5, v2 (outbound addresses) from 4.1, else v1.
  const int v = r.lib.major * 100 + r.lib.minor;
  r.lib.config_version = v >= 407 ? 4 : v >= 405 ? 3 : v >= 401 ? 2 : 1;
  r.lib.timers_by_id = r.lib.config_version >= 4 && a.slirp_handle_timer != nullptr;
  return r;
}

}  // namespace

Result<const Libslirp*> LoadLibslirp() {
  static std::once_flag once;
  static Loaded* loaded = nullptr;  // never freed: the library stays open for the process
  std::call_once(once, [] { loaded = new Loaded(Load()); });
  if (!loaded->status.ok()) return Result<const Libslirp*>::Fail(loaded->status);
  return Result<const Libslirp*>::Of(&loaded->lib);
}

}  // namespace netplane::core
