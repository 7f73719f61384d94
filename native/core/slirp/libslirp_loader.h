// Opens libslirp at run time (dlopen("libslirp.so.0")), once per process, so that the addon
// loads and runs everything else where libslirp is not installed. NETPLANE_LIBSLIRP names
// another file to open instead (tests use it to see the "not installed" path).
#pragma once

#include <cstdint>
#include <string>

#include "base/status.h"
#include "slirp/libslirp_abi.h"

namespace netplane::core {

struct Libslirp {
  slirp_abi::Api api{};
  std::string version;  // slirp_version_string(), e.g. "4.7.0"
  int major = 0, minor = 0, micro = 0;
  uint32_t config_version = 1;  // the SlirpConfig version netplane fills in for this library
  bool timers_by_id = false;    // 4.7+: timer_new_opaque + slirp_handle_timer
};

// The soname opened by default, and the package that provides it.
inline constexpr const char* kLibslirpSoname = "libslirp.so.0";
inline constexpr const char* kLibslirpInstallHint =
    "install libslirp0 (Debian/Ubuntu: apt-get install libslirp0; Fedora: dnf install libslirp)";

// The library, or why it is unusable (not found, too old, a symbol missing); the error
// text names what to install. Thread-safe; the first call decides for the process.
Result<const Libslirp*> LoadLibslirp();

}  // namespace netplane::core
