// DgramClient: a datagram socket (UDP, unicast or multicast, or a unix datagram socket)
// carrying one bare ethernet frame per datagram, as QEMU's dgram netdev and socket
// udp=/mcast= do (net/dgram.c, net/socket.c). Frames go to a fixed destination (sendto) or,
// with none, to the socket's connected peer. There is no connection to lose: a refused
// datagram (ICMP port unreachable) is a counted write error and the socket stays.
#pragma once

#include <sys/socket.h>

#include <memory>

#include "socket/socket_client.h"

namespace netplane::core {

class DgramClient : public SocketClient {
 public:
  // dest/dest_len: where frames go (dest_len 0: the connected peer).
  DgramClient(uint32_t handle, std::string name, NetContext* ctx, const sockaddr_storage& dest, socklen_t dest_len);
  ~DgramClient() override;

  RecvResult Receive(NetClient* sender, const Frame& f) override;

 protected:
  void ReadBatch() override;

 private:
  // One sendto; 0 on success, else errno.
  int SendOne(const uint8_t* data, size_t len);
  RecvResult Failed(int err);

  sockaddr_storage dest_;
  socklen_t dest_len_;
  std::unique_ptr<uint8_t[]> rbuf_;
};

}  // namespace netplane::core
