// The virtio-net header (10, 12 and 20-byte layouts; little-endian as on the wire between
// a Linux TAP and its user): parsing, writing, validation against the frame it describes,
// conversion between lengths, and checksum completion for a peer that cannot take
// offloaded frames (segmentation is in segment.h).
#pragma once

#include <cstddef>
#include <cstdint>

namespace netplane::core {

constexpr size_t kVnetHdrLenLegacy = 10;         // virtio_net_hdr
constexpr size_t kVnetHdrLenMrg = 12;            // virtio_net_hdr_mrg_rxbuf (and VERSION_1)
constexpr size_t kVnetHdrLenHash = 20;           // virtio_net_hdr_v1_hash
constexpr size_t kMaxFrameLen = 65536 + 14 + 4;  // largest GSO frame (64 KiB IP + eth + vlan)
constexpr size_t kNetBufSize = 4096 + 65536;     // QEMU NET_BUFSIZE: largest read

constexpr uint8_t kVnetFlagNeedsCsum = 1;
constexpr uint8_t kVnetFlagDataValid = 2;
constexpr uint8_t kVnetFlagRscInfo = 4;

constexpr uint8_t kGsoNone = 0;
constexpr uint8_t kGsoTcpv4 = 1;
constexpr uint8_t kGsoUdp = 3;
constexpr uint8_t kGsoTcpv6 = 4;
constexpr uint8_t kGsoUdpL4 = 5;
constexpr uint8_t kGsoEcn = 0x80;

inline bool IsVnetHdrLen(size_t len) {
  return len == kVnetHdrLenLegacy || len == kVnetHdrLenMrg || len == kVnetHdrLenHash;
}

struct VnetHdr {
  uint8_t flags = 0;
  uint8_t gso_type = kGsoNone;
  uint16_t hdr_len = 0;
  uint16_t gso_size = 0;
  uint16_t csum_start = 0;
  uint16_t csum_offset = 0;
  uint16_t num_buffers = 0;  // 12- and 20-byte layouts
  uint32_t hash_value = 0;   // 20-byte layout
  uint16_t hash_report = 0;  // 20-byte layout
};

enum class VnetError {
  kOk = 0,
  kShortFrame,  // frame shorter than header + ethernet header
  kBadFlags,    // unknown flag bits
  kBadGsoType,  // unknown gso_type, or GSO without NEEDS_CSUM where required
  kBadGsoSize,  // gso_size 0 with GSO, or absurd
  kBadCsum,     // csum_start / csum_offset outside the frame
  kBadHdrLen,   // hdr_len beyond the frame
  kBadPacket,   // frame does not parse as the protocol gso_type claims
  kTooManySegments,
  kFrameTooLong,  // frame (or a segment it would produce) larger than kMaxFrameLen
};
const char* VnetErrorName(VnetError e);

// p must hold at least len bytes; len is 10, 12 or 20.
VnetHdr ParseVnetHdr(const uint8_t* p, size_t len);
void WriteVnetHdr(const VnetHdr& h, uint8_t* p, size_t len);
// Check h against the frame that follows it (frame = ethernet frame, no header).
// Rules (a superset of what Linux's virtio_net_hdr_to_skb enforces):
//  * flags only NEEDS_CSUM | DATA_VALID | RSC_INFO; hdr_len <= frame_len;
//  * NEEDS_CSUM: csum_start + csum_offset + 2 <= frame_len;
//  * gso_type one of NONE, TCPV4, UDP, TCPV6, UDP_L4, the ECN bit only with TCPV4/TCPV6;
//  * GSO: gso_size in 1..65534; the frame (after up to kMaxVlanTags VLAN tags) holds the IP
//    version and L4 protocol the type names (IPv6 extension headers HBH/routing/dstopts
//    are walked), not an IP fragment; with NEEDS_CSUM, csum_start is the L4 header and
//    csum_offset its checksum field; UDP_L4 requires NEEDS_CSUM and at most
//    kMaxUsoSegments segments; UFO requires gso_size % 8 == 0 (fragment offsets).
VnetError ValidateVnetHdr(const VnetHdr& h, const uint8_t* frame, size_t frame_len);
// True if the frame needs work before a peer without offloads can take it.
inline bool NeedsSoftwareOffload(const VnetHdr& h) { return (h.flags & kVnetFlagNeedsCsum) || h.gso_type != kGsoNone; }

// Fill in the checksum at csum_start + csum_offset (NEEDS_CSUM) in place.
VnetError CompleteChecksum(const VnetHdr& h, uint8_t* frame, size_t frame_len);

constexpr size_t kMaxVlanTags = 4;        // stacked 802.1Q / 802.1ad tags we walk through
constexpr size_t kMaxUsoSegments = 128;   // Linux UDP_MAX_SEGMENTS
constexpr uint16_t kGsoByFrags = 0xffff;  // Linux GSO_BY_FRAGS: never valid from a peer

// Where the headers of a GSO frame sit (offsets from the start of the ethernet frame).
struct FrameLayout {
  size_t l3 = 0;  // IP header
  bool ipv6 = false;
  size_t l4 = 0;          // TCP/UDP header
  uint8_t l4_proto = 0;   // 6 or 17
  size_t l4_hdr_len = 0;  // TCP doff * 4, or 8
  // IPv6 only: where a fragment header goes (end of the unfragmentable part) and the
  // offset of the next-header byte that must then say 44.
  size_t ipv6_frag_point = 0;
  size_t ipv6_prev_nexthdr = 0;
};
// Parse the ethernet/IP/L4 headers of frame; kBadPacket if they do not parse as IPv4/IPv6
// + TCP/UDP (l4_proto 0 accepts either) or the IP packet is a fragment.
VnetError ParseFrameLayout(const uint8_t* frame, size_t frame_len, uint8_t l4_proto, FrameLayout* out);

// A header of len bytes (10, 12 or 20) with every field zero: flags 0, GSO_NONE; what a
// peer without vnet headers gets prepended.
void WriteZeroVnetHdr(uint8_t* p, size_t len);
// Convert a header between layouts: the common prefix is kept, fields the destination
// has and the source lacks are zero (num_buffers, hash). in and out may not overlap.
void ConvertVnetHdr(const uint8_t* in, size_t in_len, uint8_t* out, size_t out_len);

// The identification IPv6 UFO puts in its fragment header (Linux picks a hashed,
// secret-salted value; we take a process-wide counter). Exposed for tests.
uint32_t NextIpv6FragmentId();

}  // namespace netplane::core
