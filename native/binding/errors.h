// core::Status -> a JavaScript Error shaped like Node's own system errors:
// { code: 'EPERM', errno: -1, syscall: 'ioctl(TUNSETIFF)', message }.
#pragma once

#include <napi.h>

#include "base/status.h"

namespace netplane::binding {

Napi::Error MakeSystemError(Napi::Env env, const core::Status& status);
// Throw (as a JS exception) and return an undefined value, for use in `return Throw(...)`.
Napi::Value ThrowStatus(Napi::Env env, const core::Status& status);
Napi::Value ThrowTypeError(Napi::Env env, const std::string& message);
Napi::Value ThrowRangeError(Napi::Env env, const std::string& message);

}  // namespace netplane::binding
