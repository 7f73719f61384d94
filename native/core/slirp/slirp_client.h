// SlirpClient: a user-mode network stack (libslirp, opened at run time) as a net client:
// QEMU's net/slirp.c on netplane's data plane. Frames its peer sends go into slirp_input;
// what libslirp emits (ARP, DHCP, NATed TCP/UDP from host sockets) is sent to the peer.
//
// libslirp's poll loop runs on the client's AioContext, as QEMU maps it onto its main loop:
//  - after every poll round (slirp_pollfds_poll) the client asks libslirp which sockets it
//    wants polled (slirp_pollfds_fill) and mirrors that set into fd handlers of the context,
//    changing only what changed (one epoll_ctl per change), plus a timer for the timeout
//    the fill returns (TCP's fast and slow timers);
//  - a ready handler, a frame in, a libslirp timer or libslirp's notify() schedule one
//    bottom half that runs the next round: poll(2) with timeout 0 over the fds of the last
//    fill for their exact revents, slirp_pollfds_poll, then the next fill;
//  - libslirp's timers are AioTimers of the context (by id from 4.7, by callback before).
// libslirp is single-threaded: every call is made on the home thread. Stop() removes the
// handlers and timers but keeps the stack (connections, forwarding rules); Start() puts them
// back, so the client may be moved to another context while stopped.
#pragma once

#include <netinet/in.h>
#include <poll.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "net/net_client.h"
#include "slirp/libslirp_loader.h"

namespace netplane::core {

// The stack's configuration, already checked and defaulted (QEMU's net_slirp_init rules are
// applied by the caller); addresses in network byte order.
struct SlirpOptions {
  bool restricted = false;
  bool ipv4 = true;
  bool ipv6 = true;
  in_addr net{}, mask{}, host{}, dhcp_start{}, dns{};
  in6_addr prefix6{}, host6{}, dns6{};
  uint8_t prefix6_len = 64;
  std::string hostname, tftp_server_name, tftp_path, bootfile, domainname;
  std::vector<std::string> dnssearch;
};

class SlirpClient : public NetClient {
 public:
  // Fails (NotFound, naming what to install) when libslirp cannot be loaded.
  static Result<std::unique_ptr<SlirpClient>> Create(uint32_t handle, std::string name, NetContext* ctx,
                                                     SlirpOptions opts);
  ~SlirpClient() override;

  // Home thread. The first Start creates the libslirp instance.
  Status Start() override;
  void Stop() override;
  RecvResult Receive(NetClient* sender, const Frame& f) override;

  // Control, home thread. Failures are Invalid (AddHostfwd: the host port could not be
  // bound) or NotFound (RemoveHostfwd: no such rule).
  Status AddHostfwd(bool udp, in_addr host_addr, int host_port, in_addr guest_addr, int guest_port);
  Status RemoveHostfwd(bool udp, in_addr host_addr, int host_port);
  // guestfwd=tcp:ADDR:PORT-cmd:COMMAND: a guest connection to ADDR:PORT runs COMMAND
  // (libslirp forks it with the connection on its stdin/stdout).
  Status AddGuestfwdExec(in_addr guest_addr, int guest_port, const std::string& command);
  // slirp_connection_info(): the `info usernet` table.
  std::string ConnectionInfo();
  const std::string& library_version() const { return lib_->version; }

 private:
  struct FdRec {
    SlirpClient* owner;
    int fd;
    bool want_read = false, want_write = false;
    bool read = false, write = false;  // installed in the context
  };
  struct TimerRec {
    SlirpClient* owner;
    slirp_abi::TimerCb cb = nullptr;  // by callback (libslirp < 4.7)
    slirp_abi::TimerId id = slirp_abi::kTimerRa;
    bool by_id = false;
    void* cb_opaque = nullptr;
    AioTimer* timer = nullptr;  // null while stopped
    int64_t expire_ns = -1;     // armed deadline, -1 = not armed
  };

  SlirpClient(uint32_t handle, std::string name, NetContext* ctx, const Libslirp* lib, SlirpOptions opts);

  void ScheduleRound();
  void Round();
  void Mirror();
  void RemoveAllHandlers();
  TimerRec* NewTimerRec();
  void ArmTimer(TimerRec* t);

  static void OnRoundBh(void* opaque);
  static void OnPollTimer(void* opaque);
  static void OnFdReady(void* opaque);
  static void OnSlirpTimer(void* opaque);
  static void InputSegment(void* opaque, const uint8_t* frame, size_t len);

  // libslirp callbacks (opaque = this).
  static ssize_t CbSendPacket(const void* buf, size_t len, void* opaque);
  static void CbGuestError(const char* msg, void* opaque);
  static int64_t CbClockNs(void* opaque);
  static void* CbTimerNew(slirp_abi::TimerCb cb, void* cb_opaque, void* opaque);
  static void* CbTimerNewById(slirp_abi::TimerId id, void* cb_opaque, void* opaque);
  static void CbTimerFree(void* timer, void* opaque);
  static void CbTimerMod(void* timer, int64_t expire_ms, void* opaque);
  static void CbRegisterFd(int fd, void* opaque);
  static void CbUnregisterFd(int fd, void* opaque);
  static void CbNotify(void* opaque);
  static int CbAddPoll(int fd, int events, void* opaque);
  static int CbGetREvents(int idx, void* opaque);

  const Libslirp* lib_;
  SlirpOptions opts_;
  std::vector<const char*> dnssearch_ptrs_;
  slirp_abi::Callbacks cb_{};
  slirp_abi::Slirp* slirp_ = nullptr;
  bool started_ = false;
  bool in_round_ = false;
  BottomHalf* round_bh_ = nullptr;
  AioTimer* poll_timer_ = nullptr;
  std::vector<pollfd> pollfds_;  // what the last fill asked for, by libslirp's index
  std::unordered_map<int, std::unique_ptr<FdRec>> fds_;
  std::unordered_map<TimerRec*, std::unique_ptr<TimerRec>> timers_;
};

}  // namespace netplane::core
