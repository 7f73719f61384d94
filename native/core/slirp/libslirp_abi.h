// The part of libslirp's public C ABI (libslirp.so.0, libslirp >= 4.0) that netplane uses,
// declared here so that neither the build nor the installed addon needs libslirp: the
// library is opened at run time (libslirp_loader.h). Layouts follow libslirp's documented
// structs field for field; both are append-only across libslirp releases and versioned
// (SlirpConfig::version, the callback table by the config version), so a newer library
// reads only the fields our version says exist.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace netplane::core::slirp_abi {

struct Slirp;  // opaque

// Poll event bits libslirp exchanges with its embedder (not the poll(2) values).
enum : int {
  kPollIn = 1 << 0,
  kPollOut = 1 << 1,
  kPollPri = 1 << 2,
  kPollErr = 1 << 3,
  kPollHup = 1 << 4,
};

using WriteCb = ssize_t (*)(const void* buf, size_t len, void* opaque);
using TimerCb = void (*)(void* opaque);
using AddPollCb = int (*)(int fd, int events, void* opaque);
using GetREventsCb = int (*)(int idx, void* opaque);

// libslirp's SlirpTimerId (4.7+: timers created by id, fired through slirp_handle_timer).
enum TimerId : int { kTimerRa = 0 };

// SlirpCb. The last two members exist from libslirp 4.7 and are read only with a config
// version >= 4.
struct Callbacks {
  WriteCb send_packet;
  void (*guest_error)(const char* msg, void* opaque);
  int64_t (*clock_get_ns)(void* opaque);
  void* (*timer_new)(TimerCb cb, void* cb_opaque, void* opaque);
  void (*timer_free)(void* timer, void* opaque);
  void (*timer_mod)(void* timer, int64_t expire_time_ms, void* opaque);
  void (*register_poll_fd)(int fd, void* opaque);
  void (*unregister_poll_fd)(int fd, void* opaque);
  void (*notify)(void* opaque);
  void (*init_completed)(Slirp* slirp, void* opaque);
  void* (*timer_new_opaque)(TimerId id, void* cb_opaque, void* opaque);
};

// SlirpConfig, versions 1 to 4 (libslirp 4.0 .. 4.7).
struct Config {
  uint32_t version;
  int restricted;
  bool in_enabled;
  in_addr vnetwork;
  in_addr vnetmask;
  in_addr vhost;
  bool in6_enabled;
  in6_addr vprefix_addr6;
  uint8_t vprefix_len;
  in6_addr vhost6;
  const char* vhostname;
  const char* tftp_server_name;
  const char* tftp_path;
  const char* bootfile;
  in_addr vdhcp_start;
  in_addr vnameserver;
  in6_addr vnameserver6;
  const char** vdnssearch;
  const char* vdomainname;
  size_t if_mtu;  // 0 = libslirp's default (1500)
  size_t if_mru;
  bool disable_host_loopback;
  bool enable_emu;
  // version 2
  sockaddr_in* outbound_addr;
  sockaddr_in6* outbound_addr6;
  // version 3
  bool disable_dns;
  // version 4
  bool disable_dhcp;
};

// The functions, as pointers filled in by dlsym.
struct Api {
  Slirp* (*slirp_new)(const Config* cfg, const Callbacks* cb, void* opaque);
  void (*slirp_cleanup)(Slirp* slirp);
  void (*slirp_pollfds_fill)(Slirp* slirp, uint32_t* timeout_ms, AddPollCb add_poll, void* opaque);
  void (*slirp_pollfds_poll)(Slirp* slirp, int select_error, GetREventsCb get_revents, void* opaque);
  void (*slirp_input)(Slirp* slirp, const uint8_t* pkt, int pkt_len);
  int (*slirp_add_hostfwd)(Slirp* slirp, int is_udp, in_addr host_addr, int host_port, in_addr guest_addr,
                           int guest_port);
  int (*slirp_remove_hostfwd)(Slirp* slirp, int is_udp, in_addr host_addr, int host_port);
  int (*slirp_add_exec)(Slirp* slirp, const char* cmdline, in_addr* guest_addr, int guest_port);
  char* (*slirp_connection_info)(Slirp* slirp);
  const char* (*slirp_version_string)();
  // libslirp >= 4.7 only (null before): timers by id.
  void (*slirp_handle_timer)(Slirp* slirp, TimerId id, void* cb_opaque);
  // Frees what slirp_connection_info returned (GLib's g_free, reached through libslirp).
  void (*free_string)(void* p);
};

}  // namespace netplane::core::slirp_abi
