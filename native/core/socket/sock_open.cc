#include "socket/sock_open.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "base/unique_fd.h"

namespace netplane::core {

Result<SockAddr> MakeInetAddr(const std::string& host, int port) {
  SockAddr a;
  if (port < 0 || port > 65535)
    return Result<SockAddr>::Fail(Status::Invalid("port " + std::to_string(port) + " is out of range"));
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.ss);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    a.len = sizeof(sockaddr_in);
    return Result<SockAddr>::Of(a);
  }
  std::memset(&a.ss, 0, sizeof a.ss);
  if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    a.len = sizeof(sockaddr_in6);
    return Result<SockAddr>::Of(a);
  }
  return Result<SockAddr>::Fail(Status::Invalid("'" + host + "' is not a numeric IPv4 or IPv6 address"));
}

Result<SockAddr> MakeUnixAddr(const std::string& path, bool abstract) {
  SockAddr a;
  auto* un = reinterpret_cast<sockaddr_un*>(&a.ss);
  size_t off = abstract ? 1 : 0;
  if (path.empty() || path.size() + off >= sizeof un->sun_path || path.find('\0') != std::string::npos)
    return Result<SockAddr>::Fail(Status::Invalid("UNIX socket path '" + path + "' is too long or empty"));
  un->sun_family = AF_UNIX;
  std::memcpy(un->sun_path + off, path.data(), path.size());
  a.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + off + path.size() + (abstract ? 0 : 1));
  return Result<SockAddr>::Of(a);
}

bool ResolveHost(const std::string& host, int family, std::string* out) {
  addrinfo hints{};
  hints.ai_family = family;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0 || res == nullptr) return false;
  char buf[INET6_ADDRSTRLEN] = {};
  const void* src = res->ai_family == AF_INET
                        ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr)
                        : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(res->ai_addr)->sin6_addr);
  bool ok = ::inet_ntop(res->ai_family, src, buf, sizeof buf) != nullptr;
  ::freeaddrinfo(res);
  if (ok) *out = buf;
  return ok;
}

bool IsMulticast(const SockAddr& a) {
  if (a.family() == AF_INET) {
    uint32_t v = ntohl(reinterpret_cast<const sockaddr_in*>(&a.ss)->sin_addr.s_addr);
    return (v >> 28) == 0xe;
  }
  if (a.family() == AF_INET6) return reinterpret_cast<const sockaddr_in6*>(&a.ss)->sin6_addr.s6_addr[0] == 0xff;
  return false;
}

Result<int> OpenStreamListener(const SockAddr& addr, int backlog) {
  UniqueFd fd(::socket(addr.family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return Result<int>::Fail(Status::Errno(errno, "socket", "Failed to create socket"));
  if (addr.family() != AF_UNIX) {
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  }
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr.ss), addr.len) < 0)
    return Result<int>::Fail(
        Status::Errno(errno, "bind", std::string("Failed to bind socket: ") + std::strerror(errno)));
  if (::listen(fd.get(), backlog) < 0)
    return Result<int>::Fail(
        Status::Errno(errno, "listen", std::string("Failed to listen on socket: ") + std::strerror(errno)));
  return Result<int>::Of(fd.Release());
}

Result<int> OpenDgram(const DgramSpec& spec) {
  int family = spec.multicast ? spec.group.family() : spec.local.family();
  UniqueFd fd(::socket(family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid())
    return Result<int>::Fail(
        Status::Errno(errno, "socket", std::string("can't create datagram socket: ") + std::strerror(errno)));
  auto fail = [](const char* call, const std::string& what) {
    return Result<int>::Fail(Status::Errno(errno, call, what + ": " + std::strerror(errno)));
  };
  if (spec.multicast) {
    if (family != AF_INET) return Result<int>::Fail(Status::Invalid("multicast is supported for IPv4 addresses only"));
    int one = 1;
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
      return fail("setsockopt", "can't set socket option SO_REUSEADDR");
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&spec.group.ss), spec.group.len) < 0)
      return fail("bind", "can't bind ip=" +
                              std::string(inet_ntoa(reinterpret_cast<const sockaddr_in*>(&spec.group.ss)->sin_addr)) +
                              " to socket");
    ip_mreq mreq{};
    mreq.imr_multiaddr = reinterpret_cast<const sockaddr_in*>(&spec.group.ss)->sin_addr;
    mreq.imr_interface.s_addr = htonl(INADDR_ANY);
    if (!spec.mcast_if.empty() && ::inet_pton(AF_INET, spec.mcast_if.c_str(), &mreq.imr_interface) != 1)
      return Result<int>::Fail(Status::Invalid("'" + spec.mcast_if + "' is not a numeric IPv4 address"));
    if (::setsockopt(fd.get(), IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof mreq) < 0)
      return fail("setsockopt", "can't add socket to multicast group");
    unsigned char loop = 1;
    if (::setsockopt(fd.get(), IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof loop) < 0)
      return fail("setsockopt", "can't force multicast message to loopback");
    if (!spec.mcast_if.empty() &&
        ::setsockopt(fd.get(), IPPROTO_IP, IP_MULTICAST_IF, &mreq.imr_interface, sizeof mreq.imr_interface) < 0)
      return fail("setsockopt", "can't set socket option IP_MULTICAST_IF");
    return Result<int>::Of(fd.Release());
  }
  if (spec.local.family() != AF_UNIX) {
    int one = 1;
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
      return fail("setsockopt", "can't set socket option SO_REUSEADDR");
  }
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&spec.local.ss), spec.local.len) < 0)
    return fail("bind", "can't bind socket");
  return Result<int>::Of(fd.Release());
}

}  // namespace netplane::core
