#include "virtio_net/offload_features.h"

#include "net/net_client.h"
#include "vnet/wire_format.h"

namespace netplane::core {

unsigned GuestOffloads(uint64_t f) {
  if (!HasFeature(f, kVirtioNetFGuestCsum)) return 0;
  unsigned o = kOffloadCsum;
  if (HasFeature(f, kVirtioNetFGuestTso4)) o |= kOffloadTso4;
  if (HasFeature(f, kVirtioNetFGuestTso6)) o |= kOffloadTso6;
  if (HasFeature(f, kVirtioNetFGuestEcn)) o |= kOffloadTsoEcn;
  if (HasFeature(f, kVirtioNetFGuestUfo)) o |= kOffloadUfo;
  if (HasFeature(f, kVirtioNetFGuestUso4)) o |= kOffloadUso4;
  if (HasFeature(f, kVirtioNetFGuestUso6)) o |= kOffloadUso6;
  return o;
}

unsigned HostOffloads(uint64_t f) {
  if (!HasFeature(f, kVirtioNetFCsum)) return 0;
  unsigned o = kOffloadCsum;
  if (HasFeature(f, kVirtioNetFHostTso4)) o |= kOffloadTso4;
  if (HasFeature(f, kVirtioNetFHostTso6)) o |= kOffloadTso6;
  if (HasFeature(f, kVirtioNetFHostEcn)) o |= kOffloadTsoEcn;
  if (HasFeature(f, kVirtioNetFHostUfo)) o |= kOffloadUfo;
  if (HasFeature(f, kVirtioNetFHostUso)) o |= kOffloadUso4 | kOffloadUso6;  // one bit for both
  return o;
}

bool OffloadsTake(unsigned o, const VnetHdr& h, const uint8_t* frame, size_t len) {
  if ((h.flags & kVnetFlagNeedsCsum) && !(o & kOffloadCsum)) return false;
  if ((h.gso_type & kGsoEcn) && !(o & kOffloadTsoEcn)) return false;
  switch (h.gso_type & ~kGsoEcn) {
    case kGsoNone:
      return true;
    case kGsoTcpv4:
      return o & kOffloadTso4;
    case kGsoTcpv6:
      return o & kOffloadTso6;
    case kGsoUdp:
      return o & kOffloadUfo;
    case kGsoUdpL4: {
      if ((o & (kOffloadUso4 | kOffloadUso6)) == (kOffloadUso4 | kOffloadUso6)) return true;
      if (!(o & (kOffloadUso4 | kOffloadUso6))) return false;
      FrameLayout lay;
      if (ParseFrameLayout(frame, len, kProtoUdp, &lay) != VnetError::kOk) return false;
      return o & (lay.ipv6 ? kOffloadUso6 : kOffloadUso4);
    }
    default:
      return false;
  }
}

}  // namespace netplane::core
