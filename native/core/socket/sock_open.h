// Socket creation for the stream / dgram / socket netdevs, done synchronously so that a bad
// address fails the netdev's creation with QEMU's text (bind and listen never wait; a stream
// client's connect is left to the control side, which may wait for it). Addresses are
// numeric: the control side resolves names first.
#pragma once

#include <sys/socket.h>

#include <string>

#include "base/status.h"

namespace netplane::core {

struct SockAddr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family() const { return ss.ss_family; }
};

// family "inet" (IPv4 or IPv6 text), or "unix" (path; abstract: a leading NUL).
Result<SockAddr> MakeInetAddr(const std::string& host, int port);
Result<SockAddr> MakeUnixAddr(const std::string& path, bool abstract);

// A bound, listening stream socket (close-on-exec, SO_REUSEADDR for inet).
Result<int> OpenStreamListener(const SockAddr& addr, int backlog);

struct DgramSpec {
  bool has_local = false;
  SockAddr local;
  // Multicast: join group (the socket binds to it, as QEMU does), loopback on, optionally
  // sending from the interface that has mcast_if (IPv4 text, empty: the default route's).
  bool multicast = false;
  SockAddr group;
  std::string mcast_if;
};
// A bound datagram socket (close-on-exec, non-blocking).
Result<int> OpenDgram(const DgramSpec& spec);

// getaddrinfo (blocking, as QEMU's own lookups are): the first address of `host` in family
// (AF_INET, AF_INET6 or AF_UNSPEC) as text; false when there is none.
bool ResolveHost(const std::string& host, int family, std::string* out);

// True for an IPv4 multicast address (224.0.0.0/4) or an IPv6 one (ff00::/8).
bool IsMulticast(const SockAddr& a);

}  // namespace netplane::core
