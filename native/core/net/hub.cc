#include "net/hub.h"

#include <algorithm>

namespace netplane::core {

HubPort::HubPort(uint32_t handle, std::string name, Hub* hub)
    : NetClient(ClientKind::kHubPort, handle, std::move(name), hub->context()), hub_(hub) {
  hub_->ports_.push_back(this);
}

HubPort::~HubPort() {
  auto& v = hub_->ports_;
  v.erase(std::remove(v.begin(), v.end(), this), v.end());
}

bool HubPort::CanReceive() const {
  for (HubPort* q : hub_->ports_) {
    if (q == this) continue;
    NetClient* qp = q->peer();
    // A peerless port takes the frame and drops it as noPeer (counted). Requiring a peer
    // here stalled the sender for good when the other ports' peers were deleted.
    if (!qp || (!qp->receive_disabled() && qp->CanReceive())) return true;
  }
  return false;
}

void Hub::FlushPorts() {
  // A flush may send and, through callbacks, make senders produce again; it never adds or
  // removes ports, but iterate over a copy so that could not invalidate the loop.
  std::vector<HubPort*> ports = ports_;
  for (HubPort* p : ports) p->FlushQueuedPackets();
}

RecvResult HubPort::Receive(NetClient*, const Frame& f) {
  counters_.Out(f.eth_len());  // handed to the hub
  for (HubPort* q : hub_->ports_) {
    if (q == this) continue;
    q->counters_.In(f.eth_len());
    q->Send(f, /*with_callback=*/false);
  }
  return RecvResult::kConsumed;
}

bool HubPort::AcceptsOffloads() const {
  bool any = false;
  for (HubPort* q : hub_->ports_) {
    if (q == this) continue;
    NetClient* qp = q->peer();
    if (!qp) continue;
    if (!qp->AcceptsOffloads()) return false;
    any = true;
  }
  return any;
}

void HubPort::FlushHubSiblings() {
  for (HubPort* q : hub_->ports_) {
    if (q == this) continue;
    q->incoming().Flush();
  }
}

}  // namespace netplane::core
