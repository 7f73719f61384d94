// Hub and hub ports (QEMU net/hub.c, semantics reference section 1.5). All ports of a hub
// live in the hub's context. A frame delivered to port P (sent by P's peer) is re-sent,
// unchanged (vnet header and all), from every other port Q towards Q's peer with the plain
// bounded send; the hub always consumes. P can receive iff at least one other port could
// send right now: it has no peer (the frame is then a counted noPeer drop there, as QEMU's
// qemu_can_send_packet says yes for a peerless sender), or a peer that is neither
// receive-disabled nor refusing.
#pragma once

#include <vector>

#include "net/net_client.h"

namespace netplane::core {

class HubPort;

class Hub {
 public:
  Hub(int id, NetContext* ctx) : id_(id), ctx_(ctx) {}
  int id() const { return id_; }
  NetContext* context() const { return ctx_; }
  const std::vector<HubPort*>& ports() const { return ports_; }
  bool empty() const { return ports_.empty(); }
  // A port joined or left the hub, or gained or lost its peer: a sender whose frame waits in
  // a port's queue because no other port could take it may go on now. Nothing else would
  // retry that queue (the sender stopped producing), so flush every port's queue here.
  void FlushPorts();

 private:
  friend class HubPort;
  int id_;
  NetContext* ctx_;
  std::vector<HubPort*> ports_;
};

class HubPort : public NetClient {
 public:
  HubPort(uint32_t handle, std::string name, Hub* hub);  // joins the hub
  ~HubPort() override;                                   // leaves it

  Hub* hub() const { return hub_; }
  int hub_id() const override { return hub_->id(); }
  // A new peer can take what senders on the other ports queued.
  void OnLinked() override { hub_->FlushPorts(); }
  void Describe(ClientInfo& info) const override { info.hub_id = hub_->id(); }
  bool CanReceive() const override;
  RecvResult Receive(NetClient* sender, const Frame& f) override;
  // A hub port passes headers through; it takes offloaded frames iff every other port's
  // peer does (so a TAP behind the hub may enable offloads).
  bool AcceptsOffloads() const override;

 protected:
  void FlushHubSiblings() override;

 private:
  Hub* hub_;
};

}  // namespace netplane::core
