// The argument readers every binding file uses. Each checks one JavaScript value; on a
// mismatch it throws (TypeError for a wrong type, RangeError for a wrong value) in one
// message style, "<what> must be <expectation>[, got <value>]", and returns false, so a
// caller writes `if (!ReadX(...)) return env.Undefined();`.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "aio/aio_context.h"

namespace netplane::binding {

constexpr double kMaxSafeInteger = 9007199254740991.0;  // Number.MAX_SAFE_INTEGER

// An integer number in [lo, hi].
bool ReadInteger(Napi::Env env, Napi::Value v, const std::string& what, double lo, double hi, double* out);
template <class T>
bool ReadInteger(Napi::Env env, Napi::Value v, const std::string& what, double lo, double hi, T* out) {
  double d;
  if (!ReadInteger(env, v, what, lo, hi, &d)) return false;
  *out = static_cast<T>(d);
  return true;
}
// A u64: a BigInt in 0..2^64-1, or a non-negative safe-integer number.
bool ReadU64(Napi::Env env, Napi::Value v, const std::string& what, uint64_t* out);
// A file descriptor: an integer in 0..INT_MAX.
bool ReadFd(Napi::Env env, Napi::Value v, const std::string& what, int* out);
bool ReadBool(Napi::Env env, Napi::Value v, const std::string& what, bool* out);
bool ReadString(Napi::Env env, Napi::Value v, const std::string& what, std::string* out);
bool ReadObject(Napi::Env env, Napi::Value v, const std::string& what, Napi::Object* out);
bool ReadFunction(Napi::Env env, Napi::Value v, const std::string& what, Napi::Function* out);
// A Uint8Array (Buffer included).
bool ReadBytes(Napi::Env env, Napi::Value v, const std::string& what, Napi::Uint8Array* out);
// { pollMaxNs?, pollGrow?, pollShrink? } (undefined: all absent) as safe integers, the range
// of QEMU's int64 properties that a JS number holds exactly. Negative values pass through,
// so the core rejects them with QEMU's wording. Absent fields keep what *out holds.
bool ReadPollParams(Napi::Env env, Napi::Value v, core::PollParams* out);

}  // namespace netplane::binding
