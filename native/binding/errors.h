// core::Status -> a JavaScript Error. A system failure is shaped like Node's own system
// errors: { code: 'EPERM', errno: -1, syscall: 'ioctl(TUNSETIFF)', message }; an invalid
// request keeps code 'EINVAL' (errno -22); the other kinds get netplane's code
// (NETPLANE_NOT_FOUND, NETPLANE_IN_USE, NETPLANE_CLOSED, NETPLANE_INVALID for untrusted input
// such as a guest memory table, as in lib/errors.ts), so
// JavaScript tells them apart without reading the message.
#pragma once

#include <napi.h>

#include <string>

#include "base/status.h"

namespace netplane::binding {

Napi::Error MakeSystemError(Napi::Env env, const core::Status& status);
// Throw (as a JS exception) and return an undefined value, for use in `return Throw(...)`.
Napi::Value ThrowStatus(Napi::Env env, const core::Status& status);
Napi::Value ThrowTypeError(Napi::Env env, const std::string& message);
Napi::Value ThrowRangeError(Napi::Env env, const std::string& message);
// The errno's name as Node spells it (EPERM, ENOTTY, ...; EBADFD, which libuv lacks, from glibc).
std::string ErrnoName(int err);

}  // namespace netplane::binding
