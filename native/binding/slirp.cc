#include "slirp.h"

#include <arpa/inet.h>

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "slirp/libslirp_loader.h"

namespace netplane::binding {

namespace {

// An address in text form, read with inet_pton for family AF_INET (in_addr) or AF_INET6.
template <int Family, class Addr>
bool ReadAddr(Napi::Env env, Napi::Value v, const char* what, Addr* out) {
  std::string s;
  if (!ReadString(env, v, what, &s)) return false;
  if (inet_pton(Family, s.c_str(), out) != 1) {
    ThrowTypeError(
        env, std::string(what) + " must be an IPv" + (Family == AF_INET ? "4" : "6") + " address, got '" + s + "'");
    return false;
  }
  return true;
}
bool ReadIn4(Napi::Env env, Napi::Value v, const char* what, in_addr* out) {
  return ReadAddr<AF_INET>(env, v, what, out);
}
bool ReadIn6(Napi::Env env, Napi::Value v, const char* what, in6_addr* out) {
  return ReadAddr<AF_INET6>(env, v, what, out);
}

// An optional string member: absent or undefined leaves out empty.
bool ReadOptString(Napi::Env env, Napi::Object o, const char* key, std::string* out) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return true;
  return ReadString(env, v, key, out);
}

}  // namespace

Napi::Value SlirpAdd(const Napi::CallbackInfo& info, core::NetGraph* g) {
  Napi::Env env = info.Env();
  Napi::Object o;
  if (!ReadObject(env, info[0], "options", &o)) return env.Undefined();
  core::ClientSpec spec;
  core::SlirpOptions so;
  int prefix_len = 64;
  if (!ReadInteger(env, o.Get("handle"), "handle", 0, UINT32_MAX, &spec.handle) ||
      !ReadString(env, o.Get("name"), "name", &spec.name) ||
      !ReadInteger(env, o.Get("queueIndex"), "queueIndex", 0, UINT32_MAX, &spec.queue_index) ||
      !ReadString(env, o.Get("iothread"), "iothread", &spec.iothread) ||
      !ReadBool(env, o.Get("restricted"), "restricted", &so.restricted) ||
      !ReadBool(env, o.Get("ipv4"), "ipv4", &so.ipv4) || !ReadBool(env, o.Get("ipv6"), "ipv6", &so.ipv6) ||
      !ReadIn4(env, o.Get("net"), "net", &so.net) || !ReadIn4(env, o.Get("mask"), "mask", &so.mask) ||
      !ReadIn4(env, o.Get("host"), "host", &so.host) ||
      !ReadIn4(env, o.Get("dhcpStart"), "dhcpStart", &so.dhcp_start) || !ReadIn4(env, o.Get("dns"), "dns", &so.dns) ||
      !ReadIn6(env, o.Get("prefix6"), "prefix6", &so.prefix6) ||
      !ReadInteger(env, o.Get("prefix6Len"), "prefix6Len", 0, 126, &prefix_len) ||
      !ReadIn6(env, o.Get("host6"), "host6", &so.host6) || !ReadIn6(env, o.Get("dns6"), "dns6", &so.dns6) ||
      !ReadOptString(env, o, "hostname", &so.hostname) ||
      !ReadOptString(env, o, "tftpServerName", &so.tftp_server_name) ||
      !ReadOptString(env, o, "tftpPath", &so.tftp_path) || !ReadOptString(env, o, "bootfile", &so.bootfile) ||
      !ReadOptString(env, o, "domainname", &so.domainname))
    return env.Undefined();
  so.prefix6_len = static_cast<uint8_t>(prefix_len);
  Napi::Value search = o.Get("dnssearch");
  if (!search.IsUndefined()) {
    if (!search.IsArray()) return ThrowTypeError(env, "dnssearch must be an array of strings");
    Napi::Array a = search.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) {
      std::string s;
      if (!ReadString(env, a.Get(i), "dnssearch[]", &s)) return env.Undefined();
      so.dnssearch.push_back(std::move(s));
    }
  }
  core::Status s = g->AddSlirp(spec, std::move(so));
  if (!s.ok()) return ThrowStatus(env, s);
  return env.Undefined();
}

Napi::Value SlirpControl(const Napi::CallbackInfo& info, core::NetGraph* g) {
  Napi::Env env = info.Env();
  uint32_t handle;
  std::string op;
  if (!ReadInteger(env, info[0], "handle", 0, UINT32_MAX, &handle) || !ReadString(env, info[1], "op", &op))
    return env.Undefined();
  if (op == "info") {
    std::string text;
    core::Status s = g->WithSlirp(handle, [&](core::SlirpClient* c) {
      text = c->ConnectionInfo();
      return core::Status::Ok();
    });
    if (!s.ok()) return ThrowStatus(env, s);
    return Napi::String::New(env, text);
  }
  Napi::Object a;
  if (!ReadObject(env, info[2], "args", &a)) return env.Undefined();
  if (op == "hostfwd-add" || op == "hostfwd-remove") {
    bool udp;
    in_addr haddr{}, gaddr{};
    int hport, gport = 0;
    if (!ReadBool(env, a.Get("udp"), "udp", &udp) || !ReadIn4(env, a.Get("hostAddr"), "hostAddr", &haddr) ||
        !ReadInteger(env, a.Get("hostPort"), "hostPort", 0, 65535, &hport))
      return env.Undefined();
    if (op == "hostfwd-remove") {
      core::Status s = g->WithSlirp(handle, [&](core::SlirpClient* c) { return c->RemoveHostfwd(udp, haddr, hport); });
      if (s.code == core::StatusCode::kNotFound) return Napi::Boolean::New(env, false);
      if (!s.ok()) return ThrowStatus(env, s);
      return Napi::Boolean::New(env, true);
    }
    if (!ReadIn4(env, a.Get("guestAddr"), "guestAddr", &gaddr) ||
        !ReadInteger(env, a.Get("guestPort"), "guestPort", 1, 65535, &gport))
      return env.Undefined();
    core::Status s =
        g->WithSlirp(handle, [&](core::SlirpClient* c) { return c->AddHostfwd(udp, haddr, hport, gaddr, gport); });
    if (!s.ok()) return ThrowStatus(env, s);
    return env.Undefined();
  }
  if (op == "guestfwd-exec") {
    in_addr gaddr{};
    int gport;
    std::string command;
    if (!ReadIn4(env, a.Get("guestAddr"), "guestAddr", &gaddr) ||
        !ReadInteger(env, a.Get("guestPort"), "guestPort", 1, 65535, &gport) ||
        !ReadString(env, a.Get("command"), "command", &command))
      return env.Undefined();
    core::Status s =
        g->WithSlirp(handle, [&](core::SlirpClient* c) { return c->AddGuestfwdExec(gaddr, gport, command); });
    if (!s.ok()) return ThrowStatus(env, s);
    return env.Undefined();
  }
  return ThrowTypeError(env, "unknown slirp operation '" + op + "'");
}

// libslirpInfo() -> { version, configVersion } | { error }: loads the library on first use.
static Napi::Value LibslirpInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  auto lib = core::LoadLibslirp();
  if (!lib.ok()) {
    out.Set("error", lib.status.message);
    return out;
  }
  out.Set("version", lib.value->version);
  out.Set("configVersion", lib.value->config_version);
  return out;
}

void InitSlirp(Napi::Env env, Napi::Object exports) {
  exports.Set("libslirpInfo", Napi::Function::New(env, LibslirpInfo, "libslirpInfo"));
}

}  // namespace netplane::binding
