#include "args.h"

#include <climits>
#include <cmath>
#include <cstdio>

#include "errors.h"

namespace netplane::binding {

bool ReadInteger(Napi::Env env, Napi::Value v, const std::string& what, double lo, double hi, double* out) {
  if (!v.IsNumber()) {
    ThrowTypeError(env, what + " must be a number");
    return false;
  }
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::trunc(d) != d || d < lo || d > hi) {
    char range[96];
    std::snprintf(range, sizeof(range), "%.0f..%.0f", lo, hi);
    ThrowRangeError(env, what + " must be an integer in " + range + ", got " + v.ToString().Utf8Value());
    return false;
  }
  *out = d;
  return true;
}

bool ReadU64(Napi::Env env, Napi::Value v, const std::string& what, uint64_t* out) {
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t x = v.As<Napi::BigInt>().Uint64Value(&lossless);
    // Uint64Value wraps negative values and truncates large ones; lossless tells.
    if (!lossless) {
      ThrowRangeError(env, what + " must be a bigint in 0..2^64-1, got " + v.ToString().Utf8Value());
      return false;
    }
    *out = x;
    return true;
  }
  if (!v.IsNumber()) {
    ThrowTypeError(env, what + " must be a bigint");
    return false;
  }
  return ReadInteger(env, v, what, 0, kMaxSafeInteger, out);
}

bool ReadFd(Napi::Env env, Napi::Value v, const std::string& what, int* out) {
  // A number outside the range gets the fd wording; everything else is ReadInteger's.
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : 0;
  if (!std::isfinite(d) || std::trunc(d) != d || d < 0 || d > INT_MAX) {
    ThrowRangeError(env, what + " must be a file descriptor (an integer in 0.." + std::to_string(INT_MAX) + "), got " +
                             v.ToString().Utf8Value());
    return false;
  }
  return ReadInteger(env, v, what, 0, INT_MAX, out);
}

namespace {
// v as T when `is` (v's type check) holds; otherwise a TypeError "<what> must be <expect>".
template <class T>
bool ReadAs(Napi::Env env, Napi::Value v, bool is, const std::string& what, const char* expect, T* out) {
  if (!is) {
    ThrowTypeError(env, what + " must be " + expect);
    return false;
  }
  *out = v.As<T>();
  return true;
}
}  // namespace

bool ReadBool(Napi::Env env, Napi::Value v, const std::string& what, bool* out) {
  Napi::Boolean b;
  if (!ReadAs(env, v, v.IsBoolean(), what, "a boolean", &b)) return false;
  *out = b.Value();
  return true;
}

bool ReadString(Napi::Env env, Napi::Value v, const std::string& what, std::string* out) {
  Napi::String str;
  if (!ReadAs(env, v, v.IsString(), what, "a string", &str)) return false;
  *out = str.Utf8Value();
  return true;
}

bool ReadObject(Napi::Env env, Napi::Value v, const std::string& what, Napi::Object* out) {
  return ReadAs(env, v, v.IsObject(), what, "an object", out);
}

bool ReadFunction(Napi::Env env, Napi::Value v, const std::string& what, Napi::Function* out) {
  return ReadAs(env, v, v.IsFunction(), what, "a function", out);
}

bool ReadBytes(Napi::Env env, Napi::Value v, const std::string& what, Napi::Uint8Array* out) {
  bool is = v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array;
  return ReadAs(env, v, is, what, "a Buffer or Uint8Array", out);
}

bool ReadPollParams(Napi::Env env, Napi::Value v, core::PollParams* out) {
  if (v.IsUndefined()) return true;
  Napi::Object o;
  if (!ReadObject(env, v, "iothread options", &o)) return false;
  struct Field {
    const char* name;
    int64_t* slot;
  } fields[] = {{"pollMaxNs", &out->max_ns}, {"pollGrow", &out->grow}, {"pollShrink", &out->shrink}};
  for (const Field& f : fields) {
    Napi::Value x = o.Get(f.name);
    if (x.IsUndefined()) continue;
    if (!ReadInteger(env, x, f.name, -kMaxSafeInteger, kMaxSafeInteger, f.slot)) return false;
  }
  return true;
}

}  // namespace netplane::binding
