#include "errors.h"

#include <uv.h>

#include <cstdio>
#include <cstring>

#include "addon.h"

namespace netplane::binding {

Napi::Error MakeSystemError(Napi::Env env, const core::Status& status) {
  std::string message = status.message;
  if (message.empty()) message = status.syscall + ": " + std::strerror(status.err);
  Napi::Error error = Napi::Error::New(env, message);
  Napi::Object obj = error.Value();
  if (status.err != 0) {
    // libuv's name table so codes match fs errors exactly (EPERM, ENOTTY, ...); libuv does
    // not know every errno (EBADFD, which tun returns a lot), so fall back to glibc's name.
    char name[64];
    uv_err_name_r(-status.err, name, sizeof(name));
#ifdef __GLIBC__
    if (std::strncmp(name, "Unknown", 7) == 0) {
      if (const char* glibc_name = strerrorname_np(status.err)) std::snprintf(name, sizeof(name), "%s", glibc_name);
    }
#endif
    obj.Set("code", name);
    obj.Set("errno", Napi::Number::New(env, -status.err));
  }
  if (!status.syscall.empty()) obj.Set("syscall", status.syscall);
  return error;
}

Napi::Value ThrowStatus(Napi::Env env, const core::Status& status) {
  MakeSystemError(env, status).ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value ThrowTypeError(Napi::Env env, const std::string& message) {
  Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value ThrowRangeError(Napi::Env env, const std::string& message) {
  Napi::RangeError::New(env, message).ThrowAsJavaScriptException();
  return env.Undefined();
}

void InitErrors(Napi::Env, Napi::Object) {}

}  // namespace netplane::binding
