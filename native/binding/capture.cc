#include "capture.h"

#include <cstdint>
#include <vector>

#include "args.h"
#include "errors.h"

namespace netplane::binding {

namespace {

Napi::Value StatsObject(Napi::Env env, const core::FilterDumpStats& s) {
  auto num = [&](uint64_t v) { return Napi::Number::New(env, static_cast<double>(v)); };
  Napi::Object o = Napi::Object::New(env);
  o.Set("frames", num(s.total.frames));
  o.Set("bytes", num(s.total.bytes));
  o.Set("dropped", num(s.total.dropped));
  o.Set("droppedBytes", num(s.total.dropped_bytes));
  o.Set("written", num(s.written));
  o.Set("writeErrors", num(s.write_errors));
  o.Set("fileBytes", num(s.file_bytes));
  o.Set("writeError", s.write_error.empty() ? env.Null() : Napi::String::New(env, s.write_error));
  return o;
}

}  // namespace

Napi::Value CaptureAdd(const Napi::CallbackInfo& info, core::NetGraph* g) {
  Napi::Env env = info.Env();
  std::string id;
  Napi::Object o;
  if (!ReadString(env, info[0], "id", &id) || !ReadObject(env, info[1], "options", &o)) return env.Undefined();
  core::FilterDumpConfig cfg;
  std::string dirs;
  double buffer = 0;
  if (!ReadString(env, o.Get("path"), "path", &cfg.path) ||
      !ReadInteger(env, o.Get("maxlen"), "maxlen", 1, UINT32_MAX, &cfg.maxlen) ||
      !ReadInteger(env, o.Get("bufferBytes"), "bufferBytes", 4096, 1 << 30, &buffer) ||
      !ReadString(env, o.Get("directions"), "directions", &dirs))
    return env.Undefined();
  cfg.buffer_bytes = static_cast<size_t>(buffer);
  if (dirs == "rx")
    cfg.directions = core::kCaptureRx;
  else if (dirs == "tx")
    cfg.directions = core::kCaptureTx;
  else if (dirs == "all")
    cfg.directions = core::kCaptureAll;
  else
    return ThrowRangeError(env, "directions must be 'rx', 'tx' or 'all'");
  if (!info[2].IsArray()) return ThrowTypeError(env, "handles must be an array");
  Napi::Array arr = info[2].As<Napi::Array>();
  std::vector<uint32_t> handles;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    uint32_t h;
    if (!ReadInteger(env, arr.Get(i), "handle", 0, UINT32_MAX, &h)) return env.Undefined();
    handles.push_back(h);
  }
  core::Status s = g->AddCapture(id, cfg, handles);
  if (!s.ok()) return ThrowStatus(env, s);
  return env.Undefined();
}

namespace {

// removeCapture(id) / captureStats(id): the id, the graph call, its counters as an object.
template <class Fn>
Napi::Value StatsById(const Napi::CallbackInfo& info, Fn&& fn) {
  Napi::Env env = info.Env();
  std::string id;
  if (!ReadString(env, info[0], "id", &id)) return env.Undefined();
  auto r = fn(id);
  if (!r.ok()) return ThrowStatus(env, r.status);
  return StatsObject(env, r.value);
}

}  // namespace

Napi::Value CaptureRemove(const Napi::CallbackInfo& info, core::NetGraph* g) {
  return StatsById(info, [g](const std::string& id) { return g->RemoveCapture(id); });
}

Napi::Value CaptureStatsOf(const Napi::CallbackInfo& info, core::NetGraph* g) {
  return StatsById(info, [g](const std::string& id) { return g->CaptureStats(id); });
}

}  // namespace netplane::binding
