// Test helpers: build ethernet frames (optional VLAN tags, IPv4 with options or IPv6 with
// extension headers, TCP or UDP) the way a Linux sender hands them to a TAP with offloads
// (L4 checksum field seeded with the pseudo-header sum), and check checksums of results.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "vnet/checksum.h"
#include "vnet/segment.h"
#include "vnet/vnet_hdr.h"

// CHECK_EQ for VnetError, printing the error names.
#define CHECK_VERR(expr, want)                                                                      \
  do {                                                                                              \
    auto np_got = (expr);                                                                           \
    auto np_want = (want);                                                                          \
    if (np_got != np_want)                                                                          \
      nptest::Fail(__FILE__, __LINE__,                                                              \
                   std::string("CHECK_VERR(" #expr "): ") + netplane::core::VnetErrorName(np_got) + \
                       " != " + netplane::core::VnetErrorName(np_want));                            \
  } while (0)

namespace nptest {

namespace nc = netplane::core;

struct FrameSpec {
  bool ipv6 = false;
  bool udp = false;
  size_t payload = 1000;
  size_t vlan_tags = 0;
  size_t ipv4_options = 0;   // bytes, multiple of 4 (NOP-filled)
  size_t ipv6_hbh = 0;       // 0 or a multiple of 8: one hop-by-hop header that long
  size_t tcp_options = 0;    // bytes, multiple of 4 (NOP-filled)
  uint8_t tcp_flags = 0x18;  // PSH|ACK
  uint32_t seq = 1000;
  uint16_t ip_id = 0x1234;
  bool df = true;
  uint8_t payload_seed = 0;
};

inline std::vector<uint8_t> BuildFrame(const FrameSpec& s, size_t* l3_out = nullptr, size_t* l4_out = nullptr) {
  std::vector<uint8_t> f;
  const uint8_t dst[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};
  const uint8_t src[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
  f.insert(f.end(), dst, dst + 6);
  f.insert(f.end(), src, src + 6);
  for (size_t i = 0; i < s.vlan_tags; ++i) {
    uint16_t tpid = i == 0 && s.vlan_tags > 1 ? 0x88a8 : 0x8100;
    f.push_back(static_cast<uint8_t>(tpid >> 8));
    f.push_back(static_cast<uint8_t>(tpid));
    f.push_back(0x00);
    f.push_back(static_cast<uint8_t>(10 + i));
  }
  uint16_t type = s.ipv6 ? 0x86dd : 0x0800;
  f.push_back(static_cast<uint8_t>(type >> 8));
  f.push_back(static_cast<uint8_t>(type));
  size_t l3 = f.size();
  uint8_t proto = s.udp ? 17 : 6;
  size_t l4_hdr = s.udp ? 8 : 20 + s.tcp_options;
  if (!s.ipv6) {
    size_t ihl = 20 + s.ipv4_options;
    f.resize(l3 + ihl, 0);
    uint8_t* ip = &f[l3];
    ip[0] = static_cast<uint8_t>(0x40 | (ihl / 4));
    nc::StoreBe16(ip + 2, static_cast<uint16_t>(ihl + l4_hdr + s.payload));
    nc::StoreBe16(ip + 4, s.ip_id);
    nc::StoreBe16(ip + 6, s.df ? 0x4000 : 0);
    ip[8] = 64;
    ip[9] = proto;
    const uint8_t a[4] = {10, 99, 0, 1}, b[4] = {10, 99, 0, 2};
    std::memcpy(ip + 12, a, 4);
    std::memcpy(ip + 16, b, 4);
    for (size_t i = 20; i < ihl; ++i) ip[i] = 1;  // NOP options
    nc::StoreBe16(ip + 10, nc::InternetChecksum(ip, ihl));
  } else {
    f.resize(l3 + 40 + s.ipv6_hbh, 0);
    uint8_t* ip = &f[l3];
    ip[0] = 0x60;
    nc::StoreBe16(ip + 4, static_cast<uint16_t>(s.ipv6_hbh + l4_hdr + s.payload));
    ip[6] = s.ipv6_hbh ? 0 : proto;
    ip[7] = 64;
    ip[8] = 0xfd;
    ip[23] = 1;
    ip[24] = 0xfd;
    ip[39] = 2;
    if (s.ipv6_hbh) {
      uint8_t* h = ip + 40;
      h[0] = proto;
      h[1] = static_cast<uint8_t>(s.ipv6_hbh / 8 - 1);
      h[2] = 1;  // PadN option covering the rest
      h[3] = static_cast<uint8_t>(s.ipv6_hbh - 4);
    }
  }
  size_t l4 = f.size();
  f.resize(l4 + l4_hdr, 0);
  uint8_t* th = &f[l4];
  nc::StoreBe16(th, 40000);
  nc::StoreBe16(th + 2, 5201);
  if (s.udp) {
    nc::StoreBe16(th + 4, static_cast<uint16_t>(8 + s.payload));
  } else {
    nc::StoreBe32(th + 4, s.seq);
    nc::StoreBe32(th + 8, 0xabcdef01);
    th[12] = static_cast<uint8_t>((l4_hdr / 4) << 4);
    th[13] = s.tcp_flags;
    nc::StoreBe16(th + 14, 512);
    for (size_t i = 20; i < l4_hdr; ++i) th[i] = 1;
  }
  for (size_t i = 0; i < s.payload; ++i) f.push_back(static_cast<uint8_t>(i * 7 + s.payload_seed + (i >> 8)));
  // Seed the checksum field with the (uncomplemented) pseudo-header sum, as Linux does
  // for CHECKSUM_PARTIAL.
  uint32_t l4_len = static_cast<uint32_t>(f.size() - l4);
  const uint8_t* ip = &f[l3];
  uint64_t ps = s.ipv6 ? nc::PseudoHeaderSumV6(ip + 8, ip + 24, proto, l4_len)
                       : nc::PseudoHeaderSumV4(ip + 12, ip + 16, proto, l4_len);
  nc::StoreBe16(&f[l4 + (s.udp ? 6 : 16)], nc::ChecksumFold(ps));
  if (l3_out) *l3_out = l3;
  if (l4_out) *l4_out = l4;
  return f;
}

// The header Linux would attach to such a frame when sending it with offloads.
inline nc::VnetHdr GsoHeader(const FrameSpec& s, size_t l4, uint8_t gso_type, uint16_t mss) {
  nc::VnetHdr h;
  h.flags = nc::kVnetFlagNeedsCsum;
  h.gso_type = gso_type;
  h.gso_size = mss;
  h.csum_start = static_cast<uint16_t>(l4);
  h.csum_offset = s.udp ? 6 : 16;
  h.hdr_len = static_cast<uint16_t>(l4 + (s.udp ? 8 : 20 + s.tcp_options));
  return h;
}

// A TSO4 frame of `payload` bytes with a header of hdr_len bytes as Linux sends it.
inline std::vector<uint8_t> Tso4(size_t payload, size_t hdr_len = 12, uint16_t mss = 1000) {
  FrameSpec s;
  s.payload = payload;
  size_t l3, l4;
  auto f = BuildFrame(s, &l3, &l4);
  nc::VnetHdr h = GsoHeader(s, l4, nc::kGsoTcpv4, mss);
  std::vector<uint8_t> out(hdr_len + f.size());
  nc::WriteVnetHdr(h, out.data(), hdr_len);
  std::copy(f.begin(), f.end(), out.begin() + static_cast<ptrdiff_t>(hdr_len));
  return out;
}

// True if the L4 checksum of a complete (unfragmented) TCP/UDP packet verifies.
inline bool L4ChecksumOk(const uint8_t* frame, size_t len, const nc::FrameLayout& lay) {
  const uint8_t* ip = frame + lay.l3;
  uint32_t l4_len = static_cast<uint32_t>(len - lay.l4);
  uint64_t ps = lay.ipv6 ? nc::PseudoHeaderSumV6(ip + 8, ip + 24, lay.l4_proto, l4_len)
                         : nc::PseudoHeaderSumV4(ip + 12, ip + 16, lay.l4_proto, l4_len);
  return nc::ChecksumFold(nc::ChecksumAdd(ps, frame + lay.l4, l4_len)) == 0xffff;
}

inline bool Ipv4HeaderChecksumOk(const uint8_t* ip) {
  return nc::ChecksumFold(nc::ChecksumAdd(0, ip, (ip[0] & 0x0f) * 4u)) == 0xffff;
}

// Collects SegmentFrame's output.
struct Collected {
  std::vector<std::vector<uint8_t>> frames;
  static void Sink(void* opaque, const uint8_t* p, size_t len) {
    static_cast<Collected*>(opaque)->frames.emplace_back(p, p + len);
  }
};

}  // namespace nptest
