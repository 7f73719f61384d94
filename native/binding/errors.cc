#include "errors.h"

#include <uv.h>

#include <cstring>

#include "addon.h"

namespace netplane::binding {

Napi::Error MakeSystemError(Napi::Env env, const core::Status& status) {
  std::string message = status.message;
  if (message.empty()) message = status.syscall + ": " + std::strerror(status.err);
  Napi::Error error = Napi::Error::New(env, message);
  Napi::Object obj = error.Value();
  if (status.err != 0) {
    // libuv's name table so codes match fs errors exactly (EPERM, EBADFD, ...).
    obj.Set("code", uv_err_name(-status.err));
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
