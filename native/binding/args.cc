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

bool ReadFd(Napi::Env env, Napi::Value v, const std::string& what, int* out) {
  if (!v.IsNumber()) {
    ThrowTypeError(env, what + " must be a number");
    return false;
  }
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::trunc(d) != d || d < 0 || d > INT_MAX) {
    ThrowRangeError(env, what + " must be a file descriptor (an integer in 0.." + std::to_string(INT_MAX) + "), got " +
                             v.ToString().Utf8Value());
    return false;
  }
  *out = static_cast<int>(d);
  return true;
}

bool ReadBool(Napi::Env env, Napi::Value v, const std::string& what, bool* out) {
  if (!v.IsBoolean()) {
    ThrowTypeError(env, what + " must be a boolean");
    return false;
  }
  *out = v.As<Napi::Boolean>().Value();
  return true;
}

bool ReadString(Napi::Env env, Napi::Value v, const std::string& what, std::string* out) {
  if (!v.IsString()) {
    ThrowTypeError(env, what + " must be a string");
    return false;
  }
  *out = v.As<Napi::String>().Utf8Value();
  return true;
}

bool ReadObject(Napi::Env env, Napi::Value v, const std::string& what, Napi::Object* out) {
  if (!v.IsObject()) {
    ThrowTypeError(env, what + " must be an object");
    return false;
  }
  *out = v.As<Napi::Object>();
  return true;
}

bool ReadFunction(Napi::Env env, Napi::Value v, const std::string& what, Napi::Function* out) {
  if (!v.IsFunction()) {
    ThrowTypeError(env, what + " must be a function");
    return false;
  }
  *out = v.As<Napi::Function>();
  return true;
}

bool ReadBytes(Napi::Env env, Napi::Value v, const std::string& what, Napi::Uint8Array* out) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowTypeError(env, what + " must be a Buffer or Uint8Array");
    return false;
  }
  *out = v.As<Napi::Uint8Array>();
  return true;
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
