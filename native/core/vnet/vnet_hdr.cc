// The virtio-net header: layouts, validation against the frame, conversion, checksum
// completion. Segmentation lives in segment.cc.
#include "vnet/vnet_hdr.h"

#include <atomic>
#include <cstring>

#include "vnet/checksum.h"
#include "vnet/wire_format.h"

namespace netplane::core {

namespace {

constexpr uint8_t kKnownFlags = kVnetFlagNeedsCsum | kVnetFlagDataValid | kVnetFlagRscInfo;

inline uint16_t LoadLe16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
inline uint32_t LoadLe32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}
inline void StoreLe16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
inline void StoreLe32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

// The IPv6 extension-header walk: Linux's GSO skips hop-by-hop, routing and destination
// options; the fragment header goes before the first destination-options header that
// follows a routing header, or before the first header that is none of the three.
VnetError ParseIpv6(const uint8_t* frame, size_t frame_len, size_t l3, FrameLayout* out, uint8_t* final_proto) {
  if (l3 + kIpv6HdrLen > frame_len || (frame[l3] >> 4) != 6) return VnetError::kBadPacket;
  size_t prev = l3 + 6;  // offset of the next-header byte that names the current header
  size_t off = l3 + kIpv6HdrLen;
  bool frag_point_found = false;
  bool seen_routing = false;
  for (;;) {
    uint8_t nh = frame[prev];
    bool ext = nh == kIpv6HopByHop || nh == kIpv6Routing || nh == kIpv6DestOpts;
    if (!frag_point_found && (!ext || (nh == kIpv6DestOpts && seen_routing))) {
      frag_point_found = true;
      out->ipv6_frag_point = off;
      out->ipv6_prev_nexthdr = prev;
    }
    if (!ext) {
      *final_proto = nh;
      out->l4 = off;
      return VnetError::kOk;
    }
    if (nh == kIpv6Routing) seen_routing = true;
    if (off + 8 > frame_len) return VnetError::kBadPacket;
    size_t len = (static_cast<size_t>(frame[off + 1]) + 1) * 8;
    prev = off;
    off += len;
    if (off > frame_len) return VnetError::kBadPacket;
  }
}

}  // namespace

const char* VnetErrorName(VnetError e) {
  switch (e) {
    case VnetError::kOk:
      return "OK";
    case VnetError::kShortFrame:
      return "SHORT_FRAME";
    case VnetError::kBadFlags:
      return "BAD_FLAGS";
    case VnetError::kBadGsoType:
      return "BAD_GSO_TYPE";
    case VnetError::kBadGsoSize:
      return "BAD_GSO_SIZE";
    case VnetError::kBadCsum:
      return "BAD_CSUM";
    case VnetError::kBadHdrLen:
      return "BAD_HDR_LEN";
    case VnetError::kBadPacket:
      return "BAD_PACKET";
    case VnetError::kTooManySegments:
      return "TOO_MANY_SEGMENTS";
    case VnetError::kFrameTooLong:
      return "FRAME_TOO_LONG";
  }
  return "UNKNOWN";
}

VnetHdr ParseVnetHdr(const uint8_t* p, size_t len) {
  VnetHdr h;
  if (len < kVnetHdrLenLegacy) return h;
  h.flags = p[0];
  h.gso_type = p[1];
  h.hdr_len = LoadLe16(p + 2);
  h.gso_size = LoadLe16(p + 4);
  h.csum_start = LoadLe16(p + 6);
  h.csum_offset = LoadLe16(p + 8);
  if (len >= kVnetHdrLenMrg) h.num_buffers = LoadLe16(p + 10);
  if (len >= kVnetHdrLenHash) {
    h.hash_value = LoadLe32(p + 12);
    h.hash_report = LoadLe16(p + 16);
  }
  return h;
}

void WriteVnetHdr(const VnetHdr& h, uint8_t* p, size_t len) {
  if (len < kVnetHdrLenLegacy) return;
  std::memset(p, 0, len);
  p[0] = h.flags;
  p[1] = h.gso_type;
  StoreLe16(p + 2, h.hdr_len);
  StoreLe16(p + 4, h.gso_size);
  StoreLe16(p + 6, h.csum_start);
  StoreLe16(p + 8, h.csum_offset);
  if (len >= kVnetHdrLenMrg) StoreLe16(p + 10, h.num_buffers);
  if (len >= kVnetHdrLenHash) {
    StoreLe32(p + 12, h.hash_value);
    StoreLe16(p + 16, h.hash_report);  // bytes 18..19 are padding, left zero
  }
}

void WriteZeroVnetHdr(uint8_t* p, size_t len) { std::memset(p, 0, len); }

void ConvertVnetHdr(const uint8_t* in, size_t in_len, uint8_t* out, size_t out_len) {
  size_t common = in_len < out_len ? in_len : out_len;
  std::memcpy(out, in, common);
  if (out_len > common) std::memset(out + common, 0, out_len - common);
}

VnetError ParseFrameLayout(const uint8_t* frame, size_t frame_len, uint8_t l4_proto, FrameLayout* out) {
  *out = FrameLayout{};
  if (frame_len < kEthHdrLen) return VnetError::kShortFrame;
  size_t type_off = 12;
  uint16_t type = LoadBe16(frame + type_off);
  for (size_t tags = 0; type == kEtherTypeVlan || type == kEtherTypeQinQ; ++tags) {
    if (tags == kMaxVlanTags || type_off + 6 > frame_len) return VnetError::kBadPacket;
    type_off += 4;
    type = LoadBe16(frame + type_off);
  }
  size_t l3 = type_off + 2;
  out->l3 = l3;
  uint8_t proto = 0;
  if (type == kEtherTypeIpv4) {
    if (l3 + 20 > frame_len || (frame[l3] >> 4) != 4) return VnetError::kBadPacket;
    size_t ihl = static_cast<size_t>(frame[l3] & 0x0f) * 4;
    if (ihl < 20 || l3 + ihl > frame_len) return VnetError::kBadPacket;
    // A fragment (MF or a nonzero offset) has no L4 header to segment.
    if (LoadBe16(frame + l3 + 6) & 0x3fff) return VnetError::kBadPacket;
    proto = frame[l3 + 9];
    out->l4 = l3 + ihl;
  } else if (type == kEtherTypeIpv6) {
    out->ipv6 = true;
    VnetError e = ParseIpv6(frame, frame_len, l3, out, &proto);
    if (e != VnetError::kOk) return e;
  } else {
    return VnetError::kBadPacket;
  }
  if (proto != kProtoTcp && proto != kProtoUdp) return VnetError::kBadPacket;
  if (l4_proto != 0 && proto != l4_proto) return VnetError::kBadPacket;
  out->l4_proto = proto;
  if (proto == kProtoTcp) {
    if (out->l4 + 20 > frame_len) return VnetError::kBadPacket;
    out->l4_hdr_len = static_cast<size_t>(frame[out->l4 + 12] >> 4) * 4;
    if (out->l4_hdr_len < 20) return VnetError::kBadPacket;
  } else {
    out->l4_hdr_len = kUdpHdrLen;
  }
  if (out->l4 + out->l4_hdr_len > frame_len) return VnetError::kBadPacket;
  // The IP length fields must be able to describe what follows them.
  size_t ip_len = frame_len - l3 - (out->ipv6 ? kIpv6HdrLen : 0);
  if (ip_len > 0xffff) return VnetError::kFrameTooLong;
  return VnetError::kOk;
}

VnetError ValidateVnetHdr(const VnetHdr& h, const uint8_t* frame, size_t frame_len) {
  if (frame_len < kEthHdrLen) return VnetError::kShortFrame;
  if (frame_len > kMaxFrameLen) return VnetError::kFrameTooLong;
  if (h.flags & ~kKnownFlags) return VnetError::kBadFlags;
  uint8_t base = h.gso_type & ~kGsoEcn;
  bool ecn = (h.gso_type & kGsoEcn) != 0;
  switch (base) {
    case kGsoNone:
    case kGsoUdp:
    case kGsoUdpL4:
      if (ecn) return VnetError::kBadGsoType;
      break;
    case kGsoTcpv4:
    case kGsoTcpv6:
      break;
    default:
      return VnetError::kBadGsoType;
  }
  if (h.hdr_len > frame_len) return VnetError::kBadHdrLen;
  bool needs_csum = (h.flags & kVnetFlagNeedsCsum) != 0;
  if (needs_csum && static_cast<size_t>(h.csum_start) + h.csum_offset + 2 > frame_len) {
    return VnetError::kBadCsum;
  }
  if (base == kGsoNone) return VnetError::kOk;

  if (h.gso_size == 0 || h.gso_size == kGsoByFrags) return VnetError::kBadGsoSize;
  if (base == kGsoUdpL4 && !needs_csum) return VnetError::kBadGsoType;
  if (base == kGsoUdp && h.gso_size % 8 != 0) return VnetError::kBadGsoSize;

  uint8_t proto = (base == kGsoTcpv4 || base == kGsoTcpv6) ? kProtoTcp : kProtoUdp;
  FrameLayout lay;
  VnetError e = ParseFrameLayout(frame, frame_len, proto, &lay);
  if (e != VnetError::kOk) return e;
  if ((base == kGsoTcpv4 && lay.ipv6) || (base == kGsoTcpv6 && !lay.ipv6)) {
    return VnetError::kBadPacket;
  }
  if (needs_csum) {
    size_t want_offset = proto == kProtoTcp ? kTcpCsumOffset : kUdpCsumOffset;
    if (h.csum_start != lay.l4 || h.csum_offset != want_offset) return VnetError::kBadCsum;
  }
  if (base == kGsoUdpL4) {
    size_t payload = frame_len - lay.l4 - lay.l4_hdr_len;
    if (payload > static_cast<size_t>(h.gso_size) * kMaxUsoSegments) {
      return VnetError::kTooManySegments;
    }
  }
  if (base == kGsoUdp && lay.ipv6) {
    // Every fragment carries an extra 8-byte fragment header: the first one, the
    // largest, must still fit a frame and an IPv6 payload length.
    size_t data = frame_len - lay.l4;
    size_t chunk = data < h.gso_size ? data : h.gso_size;
    size_t seg = lay.l4 + kIpv6FragHdrLen + chunk;
    if (seg > kMaxFrameLen || seg - lay.l3 - kIpv6HdrLen > 0xffff) return VnetError::kFrameTooLong;
  }
  return VnetError::kOk;
}

VnetError CompleteChecksum(const VnetHdr& h, uint8_t* frame, size_t frame_len) {
  if (!(h.flags & kVnetFlagNeedsCsum)) return VnetError::kOk;
  size_t start = h.csum_start;
  size_t field = start + h.csum_offset;
  if (field + 2 > frame_len) return VnetError::kBadCsum;
  // The field holds the pseudo-header sum the sender seeded; summing over it completes
  // the checksum. As Linux's skb_checksum_help, a zero result is sent as 0xffff.
  uint16_t csum = ChecksumFinish(ChecksumAdd(0, frame + start, frame_len - start));
  StoreBe16(frame + field, csum == 0 ? 0xffff : csum);
  return VnetError::kOk;
}

uint32_t NextIpv6FragmentId() {
  static std::atomic<uint32_t> next{0x6e700001};  // arbitrary nonzero start
  return next.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace netplane::core
