// Sockets for the stream / dgram / socket netdevs (core/socket/sock_open.h):
//  * socketListen(addr, backlog): a bound, listening stream socket's fd (close-on-exec);
//  * dgramOpen({ local?, group?, mcastIf? }): a bound datagram socket's fd (multicast: joins
//    group and binds to it);
//  * socketDup(fd): a close-on-exec duplicate (the data plane then owns it);
//  * resolveHost(name, family): getaddrinfo's first address as text, or null;
//  * socketInfo(fd): { type: 'stream'|'dgram'|'other', family, local, peer } for fd= sockets
//    and the info strings (addresses as { host, port } or { path }, null when none).
// Errors are system errors with QEMU's wording and the errno's code.
#include "socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "addon.h"
#include "args.h"
#include "errors.h"

namespace netplane::binding {

bool ReadSockAddr(Napi::Env env, Napi::Value v, const char* what, bool allow_none, core::SockAddr* out) {
  if (allow_none && (v.IsNull() || v.IsUndefined())) {
    out->len = 0;
    return true;
  }
  Napi::Object o;
  std::string family;
  if (!ReadObject(env, v, what, &o) || !ReadString(env, o.Get("family"), std::string(what) + ".family", &family))
    return false;
  core::Result<core::SockAddr> r = core::Result<core::SockAddr>::Fail(core::Status::Invalid(""));
  if (family == "inet") {
    std::string host;
    int port;
    if (!ReadString(env, o.Get("host"), std::string(what) + ".host", &host) ||
        !ReadInteger(env, o.Get("port"), std::string(what) + ".port", 0, 65535, &port))
      return false;
    r = core::MakeInetAddr(host, port);
  } else if (family == "unix") {
    std::string path;
    bool abstract = false;
    if (!ReadString(env, o.Get("path"), std::string(what) + ".path", &path)) return false;
    Napi::Value a = o.Get("abstract");
    if (!a.IsUndefined() && !ReadBool(env, a, std::string(what) + ".abstract", &abstract)) return false;
    r = core::MakeUnixAddr(path, abstract);
  } else {
    Napi::TypeError::New(env, std::string(what) + ".family must be 'inet' or 'unix', got '" + family + "'")
        .ThrowAsJavaScriptException();
    return false;
  }
  if (!r.ok()) {
    ThrowStatus(env, r.status);
    return false;
  }
  *out = r.value;
  return true;
}

namespace {

Napi::Value AddrToJs(Napi::Env env, const sockaddr_storage& ss, socklen_t len) {
  Napi::Object o = Napi::Object::New(env);
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
    o.Set("host", buf);
    o.Set("port", ntohs(a->sin_port));
  } else if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
    o.Set("host", buf);
    o.Set("port", ntohs(a->sin6_port));
  } else if (ss.ss_family == AF_UNIX) {
    const auto* a = reinterpret_cast<const sockaddr_un*>(&ss);
    size_t n = len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
    std::string path(a->sun_path, n);
    bool abstract = !path.empty() && path[0] == '\0';
    if (abstract) path.erase(0, 1);
    while (!path.empty() && path.back() == '\0') path.pop_back();
    o.Set("path", path);
    o.Set("abstract", abstract);
  } else {
    return env.Null();
  }
  return o;
}

Napi::Value JsSocketListen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  core::SockAddr addr;
  int backlog;
  if (!ReadSockAddr(env, info[0], "addr", false, &addr) || !ReadInteger(env, info[1], "backlog", 1, INT_MAX, &backlog))
    return env.Undefined();
  auto r = core::OpenStreamListener(addr, backlog);
  if (!r.ok()) return ThrowStatus(env, r.status);
  return Napi::Number::New(env, r.value);
}

Napi::Value JsDgramOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o;
  if (!ReadObject(env, info[0], "options", &o)) return env.Undefined();
  core::DgramSpec spec;
  if (!ReadSockAddr(env, o.Get("local"), "local", true, &spec.local) ||
      !ReadSockAddr(env, o.Get("group"), "group", true, &spec.group))
    return env.Undefined();
  spec.has_local = spec.local.len > 0;
  spec.multicast = spec.group.len > 0;
  Napi::Value mif = o.Get("mcastIf");
  if (!mif.IsUndefined() && !ReadString(env, mif, "mcastIf", &spec.mcast_if)) return env.Undefined();
  if (!spec.multicast && !spec.has_local) {
    Napi::TypeError::New(env, "dgramOpen needs local or group").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto r = core::OpenDgram(spec);
  if (!r.ok()) return ThrowStatus(env, r.status);
  return Napi::Number::New(env, r.value);
}

Napi::Value JsSocketDup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ReadFd(env, info[0], "fd", &fd)) return env.Undefined();
  int d = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (d < 0) return ThrowStatus(env, core::Status::Errno(errno, "fcntl(F_DUPFD_CLOEXEC)", std::strerror(errno)));
  return Napi::Number::New(env, d);
}

Napi::Value JsSocketInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ReadFd(env, info[0], "fd", &fd)) return env.Undefined();
  int type = 0;
  socklen_t tl = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0)
    return ThrowStatus(env, core::Status::Errno(errno, "getsockopt(SO_TYPE)", std::strerror(errno)));
  Napi::Object o = Napi::Object::New(env);
  o.Set("type", type == SOCK_STREAM ? "stream" : type == SOCK_DGRAM ? "dgram" : "other");
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
    o.Set("family", ss.ss_family == AF_INET    ? "inet"
                    : ss.ss_family == AF_INET6 ? "inet6"
                    : ss.ss_family == AF_UNIX  ? "unix"
                                               : "other");
    o.Set("local", AddrToJs(env, ss, len));
  }
  sockaddr_storage ps{};
  socklen_t plen = sizeof ps;
  o.Set("peer", ::getpeername(fd, reinterpret_cast<sockaddr*>(&ps), &plen) == 0 ? AddrToJs(env, ps, plen) : env.Null());
  return o;
}

// resolveHost(name, family 4 | 6 | 0): the first address as text, or null.
Napi::Value JsResolveHost(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string host;
  int fam;
  if (!ReadString(env, info[0], "host", &host) || !ReadInteger(env, info[1], "family", 0, 6, &fam))
    return env.Undefined();
  std::string out;
  if (!core::ResolveHost(host, fam == 4 ? AF_INET : fam == 6 ? AF_INET6 : AF_UNSPEC, &out)) return env.Null();
  return Napi::String::New(env, out);
}

}  // namespace

void InitSocket(Napi::Env env, Napi::Object exports) {
  exports.Set("socketListen", Napi::Function::New(env, JsSocketListen, "socketListen"));
  exports.Set("dgramOpen", Napi::Function::New(env, JsDgramOpen, "dgramOpen"));
  exports.Set("socketDup", Napi::Function::New(env, JsSocketDup, "socketDup"));
  exports.Set("resolveHost", Napi::Function::New(env, JsResolveHost, "resolveHost"));
  exports.Set("socketInfo", Napi::Function::New(env, JsSocketInfo, "socketInfo"));
}

}  // namespace netplane::binding
