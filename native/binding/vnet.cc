// The vnet header for JavaScript: parse/write/convert the 10/12/20-byte layouts, validate a
// header against its frame, complete a checksum, segment a GSO frame, and the constants.
// Every argument is checked: wrong types throw TypeError, bad sizes/values RangeError, both
// naming the argument. Not the data path (that stays native): results are fresh Buffers.
#include <cstring>
#include <string>
#include <vector>

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "vnet/checksum.h"
#include "vnet/segment.h"
#include "vnet/vnet_hdr.h"

namespace netplane::binding {

namespace {

using core::VnetError;
using core::VnetHdr;

// A Uint8Array (Buffer included) argument as pointer and length.
bool GetBytes(Napi::Env env, Napi::Value v, const char* what, uint8_t** data, size_t* len) {
  Napi::Uint8Array arr;
  if (!ReadBytes(env, v, what, &arr)) return false;
  *data = arr.Data();
  *len = arr.ByteLength();
  return true;
}

bool GetHdrLen(Napi::Env env, Napi::Value v, const char* what, size_t* out) {
  double d;
  if (!ReadInteger(env, v, what, 0, 65535, &d)) return false;
  if (!core::IsVnetHdrLen(static_cast<size_t>(d))) {
    ThrowRangeError(env, std::string(what) + " must be 10, 12 or 20, got " + v.ToString().Utf8Value());
    return false;
  }
  *out = static_cast<size_t>(d);
  return true;
}

Napi::Object HdrToObject(Napi::Env env, const VnetHdr& h) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("flags", h.flags);
  o.Set("gsoType", h.gso_type);
  o.Set("hdrLen", h.hdr_len);
  o.Set("gsoSize", h.gso_size);
  o.Set("csumStart", h.csum_start);
  o.Set("csumOffset", h.csum_offset);
  o.Set("numBuffers", h.num_buffers);
  o.Set("hashValue", h.hash_value);
  o.Set("hashReport", h.hash_report);
  return o;
}

// A header given as raw bytes (10, 12 or 20 of them) or as an object with camelCase fields
// (missing fields are 0).
bool GetHdr(Napi::Env env, Napi::Value v, const char* what, VnetHdr* out) {
  if (v.IsTypedArray()) {
    uint8_t* p;
    size_t len;
    if (!GetBytes(env, v, what, &p, &len)) return false;
    if (!core::IsVnetHdrLen(len)) {
      ThrowRangeError(env, std::string(what) + " must be 10, 12 or 20 bytes long, got " + std::to_string(len));
      return false;
    }
    *out = core::ParseVnetHdr(p, len);
    return true;
  }
  if (!v.IsObject() || v.IsArray() || v.IsFunction()) {
    ThrowTypeError(env, std::string(what) + " must be a header object or a Buffer");
    return false;
  }
  Napi::Object o = v.As<Napi::Object>();
  struct Field {
    const char* name;
    double max;
    double value;
  } fields[] = {
      {"flags", 255, 0},       {"gsoType", 255, 0},      {"hdrLen", 65535, 0},     {"gsoSize", 65535, 0},
      {"csumStart", 65535, 0}, {"csumOffset", 65535, 0}, {"numBuffers", 65535, 0}, {"hashValue", 4294967295.0, 0},
      {"hashReport", 65535, 0}};
  for (auto& f : fields) {
    Napi::Value fv = o.Get(f.name);
    if (fv.IsUndefined()) continue;
    if (!ReadInteger(env, fv, std::string(what) + "." + f.name, 0, f.max, &f.value)) return false;
  }
  out->flags = static_cast<uint8_t>(fields[0].value);
  out->gso_type = static_cast<uint8_t>(fields[1].value);
  out->hdr_len = static_cast<uint16_t>(fields[2].value);
  out->gso_size = static_cast<uint16_t>(fields[3].value);
  out->csum_start = static_cast<uint16_t>(fields[4].value);
  out->csum_offset = static_cast<uint16_t>(fields[5].value);
  out->num_buffers = static_cast<uint16_t>(fields[6].value);
  out->hash_value = static_cast<uint32_t>(fields[7].value);
  out->hash_report = static_cast<uint16_t>(fields[8].value);
  return true;
}

Napi::Value ErrorOrNull(Napi::Env env, VnetError e) {
  if (e == VnetError::kOk) return env.Null();
  return Napi::String::New(env, core::VnetErrorName(e));
}

bool CheckArgc(const Napi::CallbackInfo& info, size_t n, const char* fn) {
  if (info.Length() < n) {
    ThrowTypeError(info.Env(), std::string(fn) + " needs " + std::to_string(n) + " argument(s)");
    return false;
  }
  return true;
}

// parseVnetHdr(buf, len) -> header object
Napi::Value JsParseVnetHdr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckArgc(info, 2, "parseVnetHdr")) return env.Undefined();
  uint8_t* p;
  size_t avail, len;
  if (!GetBytes(env, info[0], "buf", &p, &avail) || !GetHdrLen(env, info[1], "len", &len)) {
    return env.Undefined();
  }
  if (avail < len) {
    return ThrowRangeError(env, "buf holds " + std::to_string(avail) + " bytes, fewer than len " + std::to_string(len));
  }
  return HdrToObject(env, core::ParseVnetHdr(p, len));
}

// writeVnetHdr(hdr, len) -> Buffer of len bytes
Napi::Value JsWriteVnetHdr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckArgc(info, 2, "writeVnetHdr")) return env.Undefined();
  VnetHdr h;
  size_t len;
  if (!GetHdr(env, info[0], "hdr", &h) || !GetHdrLen(env, info[1], "len", &len)) return env.Undefined();
  auto out = Napi::Buffer<uint8_t>::New(env, len);
  core::WriteVnetHdr(h, out.Data(), len);
  return out;
}

// convertVnetHdr(buf, toLen) -> Buffer: the common prefix kept, the rest zero
Napi::Value JsConvertVnetHdr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckArgc(info, 2, "convertVnetHdr")) return env.Undefined();
  uint8_t* p;
  size_t in_len, to;
  if (!GetBytes(env, info[0], "buf", &p, &in_len) || !GetHdrLen(env, info[1], "toLen", &to)) {
    return env.Undefined();
  }
  if (!core::IsVnetHdrLen(in_len)) {
    return ThrowRangeError(env, "buf must be a 10, 12 or 20-byte header, got " + std::to_string(in_len) + " bytes");
  }
  auto out = Napi::Buffer<uint8_t>::New(env, to);
  core::ConvertVnetHdr(p, in_len, out.Data(), to);
  return out;
}

// validateVnetHdr(hdr, frame) -> null or the error name ('BAD_GSO_SIZE', ...)
Napi::Value JsValidateVnetHdr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckArgc(info, 2, "validateVnetHdr")) return env.Undefined();
  VnetHdr h;
  uint8_t* frame;
  size_t len;
  if (!GetHdr(env, info[0], "hdr", &h) || !GetBytes(env, info[1], "frame", &frame, &len)) {
    return env.Undefined();
  }
  return ErrorOrNull(env, core::ValidateVnetHdr(h, frame, len));
}

// completeChecksum(hdr, frame) -> null or the error name; fills the checksum in place
Napi::Value JsCompleteChecksum(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckArgc(info, 2, "completeChecksum")) return env.Undefined();
  VnetHdr h;
  uint8_t* frame;
  size_t len;
  if (!GetHdr(env, info[0], "hdr", &h) || !GetBytes(env, info[1], "frame", &frame, &len)) {
    return env.Undefined();
  }
  return ErrorOrNull(env, core::CompleteChecksum(h, frame, len));
}

// internetChecksum(buf) -> the RFC 1071 checksum of buf (what goes in an IPv4 header)
Napi::Value JsInternetChecksum(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckArgc(info, 1, "internetChecksum")) return env.Undefined();
  uint8_t* p;
  size_t len;
  if (!GetBytes(env, info[0], "buf", &p, &len)) return env.Undefined();
  return Napi::Number::New(env, core::InternetChecksum(p, len));
}

struct SegmentCollector {
  Napi::Env env;
  Napi::Array out;
  uint32_t n = 0;
  static void Sink(void* opaque, const uint8_t* p, size_t len) {
    auto* c = static_cast<SegmentCollector*>(opaque);
    c->out.Set(c->n++, Napi::Buffer<uint8_t>::Copy(c->env, p, len));
  }
};

// segmentFrame(hdrLen, bufWithHeader) -> Buffer[] (wire frames, no header). An invalid
// header throws an Error with code 'ERR_VNET_<NAME>' (e.g. ERR_VNET_BAD_GSO_SIZE).
Napi::Value JsSegmentFrame(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckArgc(info, 2, "segmentFrame")) return env.Undefined();
  size_t hdr_len;
  uint8_t* p;
  size_t len;
  if (!GetHdrLen(env, info[0], "hdrLen", &hdr_len) || !GetBytes(env, info[1], "buf", &p, &len)) {
    return env.Undefined();
  }
  if (len < hdr_len) {
    return ThrowRangeError(env,
                           "buf holds " + std::to_string(len) + " bytes, fewer than hdrLen " + std::to_string(hdr_len));
  }
  VnetHdr h = core::ParseVnetHdr(p, hdr_len);
  thread_local std::vector<uint8_t> scratch(core::kMaxFrameLen);
  SegmentCollector c{env, Napi::Array::New(env)};
  VnetError e = core::SegmentFrame(h, p + hdr_len, len - hdr_len, scratch.data(), SegmentCollector::Sink, &c);
  if (e != VnetError::kOk) {
    Napi::Error err = Napi::Error::New(
        env, std::string("segmentFrame: invalid vnet header for this frame: ") + core::VnetErrorName(e));
    err.Set("code", std::string("ERR_VNET_") + core::VnetErrorName(e));
    err.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return c.out;
}

Napi::Object Constants(Napi::Env env) {
  Napi::Object c = Napi::Object::New(env);
  c.Set("HDR_LEN_LEGACY", core::kVnetHdrLenLegacy);
  c.Set("HDR_LEN_MRG", core::kVnetHdrLenMrg);
  c.Set("HDR_LEN_HASH", core::kVnetHdrLenHash);
  c.Set("FLAG_NEEDS_CSUM", core::kVnetFlagNeedsCsum);
  c.Set("FLAG_DATA_VALID", core::kVnetFlagDataValid);
  c.Set("FLAG_RSC_INFO", core::kVnetFlagRscInfo);
  c.Set("GSO_NONE", core::kGsoNone);
  c.Set("GSO_TCPV4", core::kGsoTcpv4);
  c.Set("GSO_UDP", core::kGsoUdp);
  c.Set("GSO_TCPV6", core::kGsoTcpv6);
  c.Set("GSO_UDP_L4", core::kGsoUdpL4);
  c.Set("GSO_ECN", core::kGsoEcn);
  c.Set("MAX_FRAME_LEN", static_cast<double>(core::kMaxFrameLen));
  c.Set("MAX_USO_SEGMENTS", static_cast<double>(core::kMaxUsoSegments));
  c.Freeze();
  return c;
}

}  // namespace

void InitVnet(Napi::Env env, Napi::Object exports) {
  exports.Set("parseVnetHdr", Napi::Function::New<JsParseVnetHdr>(env, "parseVnetHdr"));
  exports.Set("writeVnetHdr", Napi::Function::New<JsWriteVnetHdr>(env, "writeVnetHdr"));
  exports.Set("convertVnetHdr", Napi::Function::New<JsConvertVnetHdr>(env, "convertVnetHdr"));
  exports.Set("validateVnetHdr", Napi::Function::New<JsValidateVnetHdr>(env, "validateVnetHdr"));
  exports.Set("completeChecksum", Napi::Function::New<JsCompleteChecksum>(env, "completeChecksum"));
  exports.Set("internetChecksum", Napi::Function::New<JsInternetChecksum>(env, "internetChecksum"));
  exports.Set("segmentFrame", Napi::Function::New<JsSegmentFrame>(env, "segmentFrame"));
  exports.Set("vnetConstants", Constants(env));
}

}  // namespace netplane::binding
