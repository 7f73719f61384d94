// Numbers from the Ethernet, IPv4, IPv6, TCP and UDP header formats that header parsing
// (vnet_hdr.cc) and software segmentation (segment.cc) both need: one definition each.
// Byte-order loads/stores and checksums are in checksum.h.
#pragma once

#include <cstddef>
#include <cstdint>

namespace netplane::core {

// Ethernet (IEEE 802.3) and its type field.
constexpr size_t kEthHdrLen = 14;
constexpr uint16_t kEtherTypeIpv4 = 0x0800;
constexpr uint16_t kEtherTypeIpv6 = 0x86dd;
constexpr uint16_t kEtherTypeVlan = 0x8100;  // 802.1Q
constexpr uint16_t kEtherTypeQinQ = 0x88a8;  // 802.1ad

// IP protocol / IPv6 next-header numbers.
constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kProtoUdp = 17;
constexpr uint8_t kIpv6HopByHop = 0;
constexpr uint8_t kIpv6Routing = 43;
constexpr uint8_t kIpv6Fragment = 44;
constexpr uint8_t kIpv6DestOpts = 60;

// IPv4 flags/fragment-offset field (host order).
constexpr uint16_t kIpv4MoreFragments = 0x2000;

// IPv6: fixed header and fragment header; the M flag of the fragment header's offset field.
constexpr size_t kIpv6HdrLen = 40;
constexpr size_t kIpv6FragHdrLen = 8;
constexpr uint16_t kIpv6MoreFragments = 0x0001;

// TCP and UDP: header sizes, where the checksum field sits, TCP flag bits (byte 13).
constexpr size_t kUdpHdrLen = 8;
constexpr size_t kTcpCsumOffset = 16;
constexpr size_t kUdpCsumOffset = 6;
constexpr uint8_t kTcpFin = 0x01;
constexpr uint8_t kTcpPsh = 0x08;
constexpr uint8_t kTcpCwr = 0x80;

}  // namespace netplane::core
