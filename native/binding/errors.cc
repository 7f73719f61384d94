#include "errors.h"

#include <uv.h>

#include <cstdio>
#include <cstring>

namespace netplane::binding {

namespace {
const char* KindCode(core::StatusCode code) {
  switch (code) {
    case core::StatusCode::kNotFound:
      return "NETPLANE_NOT_FOUND";
    case core::StatusCode::kInUse:
      return "NETPLANE_IN_USE";
    case core::StatusCode::kClosed:
      return "NETPLANE_CLOSED";
    case core::StatusCode::kInvalidInput:
      return "NETPLANE_INVALID";
    case core::StatusCode::kOk:
    case core::StatusCode::kSystem:
    case core::StatusCode::kInvalid:
      break;
  }
  return nullptr;
}
}  // namespace

std::string ErrnoName(int err) {
  // libuv's name table so codes match fs errors exactly (EPERM, ENOTTY, ...); libuv does
  // not know every errno (EBADFD, which tun returns a lot), so fall back to glibc's name.
  char name[64];
  uv_err_name_r(-err, name, sizeof(name));
#ifdef __GLIBC__
  if (std::strncmp(name, "Unknown", 7) == 0) {
    if (const char* glibc_name = strerrorname_np(err)) std::snprintf(name, sizeof(name), "%s", glibc_name);
  }
#endif
  return name;
}

Napi::Error MakeSystemError(Napi::Env env, const core::Status& status) {
  std::string message = status.message;
  if (message.empty()) message = status.syscall + ": " + std::strerror(status.err);
  Napi::Error error = Napi::Error::New(env, message);
  Napi::Object obj = error.Value();
  if (const char* code = KindCode(status.code)) {
    obj.Set("code", code);
  } else if (status.err != 0) {
    obj.Set("code", ErrnoName(status.err));
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

}  // namespace netplane::binding
