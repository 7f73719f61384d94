// The vnet header: byte layouts, conversion, validation against the frame, checksum
// completion.
#include <stdexcept>

#include "frame_builder.h"
#include "test.h"

using namespace netplane::core;
using nptest::BuildFrame;
using nptest::FrameSpec;
using nptest::GsoHeader;

TEST(VnetHdr, ParsesLittleEndianFieldsOfEveryLayout) {
  const uint8_t bytes[20] = {0x01, 0x81, 0x36, 0x00, 0xa8, 0x05, 0x22, 0x00, 0x10, 0x00,
                             0x03, 0x00, 0x78, 0x56, 0x34, 0x12, 0x02, 0x00, 0xee, 0xee};
  VnetHdr h = ParseVnetHdr(bytes, 10);
  CHECK_EQ(h.flags, 1);
  CHECK_EQ(h.gso_type, 0x81);
  CHECK_EQ(h.hdr_len, 0x36);
  CHECK_EQ(h.gso_size, 1448);
  CHECK_EQ(h.csum_start, 34);
  CHECK_EQ(h.csum_offset, 16);
  CHECK_EQ(h.num_buffers, 0);  // not in the 10-byte layout
  h = ParseVnetHdr(bytes, 12);
  CHECK_EQ(h.num_buffers, 3);
  CHECK_EQ(h.hash_value, 0u);
  h = ParseVnetHdr(bytes, 20);
  CHECK_EQ(h.hash_value, 0x12345678u);
  CHECK_EQ(h.hash_report, 2);
}

TEST(VnetHdr, WriteIsTheInverseOfParseAndZeroesPadding) {
  for (size_t len : {kVnetHdrLenLegacy, kVnetHdrLenMrg, kVnetHdrLenHash}) {
    VnetHdr h;
    h.flags = kVnetFlagNeedsCsum;
    h.gso_type = kGsoTcpv6;
    h.hdr_len = 86;
    h.gso_size = 1428;
    h.csum_start = 54;
    h.csum_offset = 16;
    h.num_buffers = 1;
    h.hash_value = 0xdeadbeef;
    h.hash_report = 7;
    uint8_t buf[20];
    std::memset(buf, 0xcc, sizeof buf);
    WriteVnetHdr(h, buf, len);
    VnetHdr back = ParseVnetHdr(buf, len);
    CHECK_EQ(back.gso_type, kGsoTcpv6);
    CHECK_EQ(back.gso_size, 1428);
    CHECK_EQ(back.csum_start, 54);
    CHECK_EQ(back.num_buffers, len >= 12 ? 1 : 0);
    CHECK_EQ(back.hash_value, len == 20 ? 0xdeadbeefu : 0u);
    if (len == 20) CHECK_EQ(buf[18] | buf[19], 0);
    CHECK_EQ(buf[len < 20 ? len : 19] == 0xcc, len < 20);  // nothing written past len
  }
}

TEST(VnetHdr, ConvertKeepsTheCommonPrefixAndZeroesTheRest) {
  uint8_t src[20];
  for (int i = 0; i < 20; ++i) src[i] = static_cast<uint8_t>(i + 1);
  uint8_t out[20];
  std::memset(out, 0xcc, sizeof out);
  ConvertVnetHdr(src, 12, out, 20);
  CHECK(std::memcmp(out, src, 12) == 0);
  for (int i = 12; i < 20; ++i) CHECK_EQ(out[i], 0);
  std::memset(out, 0xcc, sizeof out);
  ConvertVnetHdr(src, 20, out, 10);
  CHECK(std::memcmp(out, src, 10) == 0);
  CHECK_EQ(out[10], 0xcc);
  uint8_t zero[12];
  std::memset(zero, 0xcc, sizeof zero);
  WriteZeroVnetHdr(zero, 12);
  VnetHdr z = ParseVnetHdr(zero, 12);
  CHECK(!NeedsSoftwareOffload(z));
  for (uint8_t b : zero) CHECK_EQ(b, 0);
  CHECK(IsVnetHdrLen(10) && IsVnetHdrLen(12) && IsVnetHdrLen(20));
  CHECK(!IsVnetHdrLen(0) && !IsVnetHdrLen(24) && !IsVnetHdrLen(11));
}

TEST(VnetHdr, AcceptsWhatLinuxSends) {
  for (bool v6 : {false, true}) {
    for (bool udp : {false, true}) {
      FrameSpec s;
      s.ipv6 = v6;
      s.udp = udp;
      s.payload = 5000;
      size_t l4;
      auto f = BuildFrame(s, nullptr, &l4);
      uint8_t type = udp ? kGsoUdpL4 : v6 ? kGsoTcpv6 : kGsoTcpv4;
      VnetHdr h = GsoHeader(s, l4, type, 1448);
      CHECK_VERR(ValidateVnetHdr(h, f.data(), f.size()), VnetError::kOk);
      if (udp) {
        h.gso_type = kGsoUdp;
        h.gso_size = 1480;
        CHECK_VERR(ValidateVnetHdr(h, f.data(), f.size()), VnetError::kOk);
      } else {
        h.gso_type |= kGsoEcn;
        CHECK_VERR(ValidateVnetHdr(h, f.data(), f.size()), VnetError::kOk);
      }
    }
  }
}

TEST(VnetHdr, AcceptsVlanTagsIpv4OptionsAndIpv6ExtensionHeaders) {
  FrameSpec s;
  s.vlan_tags = 2;
  s.ipv4_options = 8;
  s.tcp_options = 12;
  s.payload = 3000;
  size_t l4;
  auto f = BuildFrame(s, nullptr, &l4);
  CHECK_EQ(l4, 14u + 8 + 28);
  CHECK_VERR(ValidateVnetHdr(GsoHeader(s, l4, kGsoTcpv4, 1400), f.data(), f.size()), VnetError::kOk);
  FrameSpec s6;
  s6.ipv6 = true;
  s6.ipv6_hbh = 16;
  s6.vlan_tags = 1;
  auto f6 = BuildFrame(s6, nullptr, &l4);
  CHECK_EQ(l4, 18u + 40 + 16);
  CHECK_VERR(ValidateVnetHdr(GsoHeader(s6, l4, kGsoTcpv6, 500), f6.data(), f6.size()), VnetError::kOk);
}

TEST(VnetHdr, RejectsEachBadFieldWithItsName) {
  FrameSpec s;
  s.payload = 3000;
  size_t l4;
  auto f = BuildFrame(s, nullptr, &l4);
  const VnetHdr good = GsoHeader(s, l4, kGsoTcpv4, 1448);
  auto check = [&](VnetHdr h, VnetError want) { CHECK_VERR(ValidateVnetHdr(h, f.data(), f.size()), want); };
  CHECK_VERR(ValidateVnetHdr(good, f.data(), 13), VnetError::kShortFrame);
  VnetHdr h = good;
  h.flags = 0x08;
  check(h, VnetError::kBadFlags);
  h = good;
  h.gso_type = 2;
  check(h, VnetError::kBadGsoType);
  h.gso_type = 6;
  check(h, VnetError::kBadGsoType);
  h.gso_type = kGsoNone | kGsoEcn;
  check(h, VnetError::kBadGsoType);
  h.gso_type = kGsoUdpL4 | kGsoEcn;
  check(h, VnetError::kBadGsoType);
  h = good;
  h.gso_size = 0;
  check(h, VnetError::kBadGsoSize);
  h.gso_size = 0xffff;
  check(h, VnetError::kBadGsoSize);
  h = good;
  h.hdr_len = static_cast<uint16_t>(f.size() + 1);
  check(h, VnetError::kBadHdrLen);
  h = good;
  h.csum_start = static_cast<uint16_t>(f.size() - 1);
  check(h, VnetError::kBadCsum);
  h = good;
  h.csum_start = static_cast<uint16_t>(l4 - 4);  // inside the IP header
  check(h, VnetError::kBadCsum);
  h = good;
  h.csum_offset = 6;  // UDP's offset on a TCP frame
  check(h, VnetError::kBadCsum);
  h = good;
  h.gso_type = kGsoTcpv6;  // IPv4 frame
  check(h, VnetError::kBadPacket);
  h = good;
  h.gso_type = kGsoUdpL4;  // TCP frame
  h.csum_offset = 6;
  check(h, VnetError::kBadPacket);
  // Non-GSO frames only need the checksum bounds.
  h = VnetHdr{};
  h.flags = kVnetFlagNeedsCsum;
  h.csum_start = static_cast<uint16_t>(f.size() - 2);
  h.csum_offset = 0;
  check(h, VnetError::kOk);
  h.csum_offset = 1;
  check(h, VnetError::kBadCsum);
  std::vector<uint8_t> huge(kMaxFrameLen + 1, 0);
  CHECK_VERR(ValidateVnetHdr(VnetHdr{}, huge.data(), huge.size()), VnetError::kFrameTooLong);
}

TEST(VnetHdr, RejectsFramesThatAreNotWhatTheGsoTypeSays) {
  FrameSpec s;
  s.payload = 3000;
  size_t l4;
  auto f = BuildFrame(s, nullptr, &l4);
  VnetHdr h = GsoHeader(s, l4, kGsoTcpv4, 1448);
  auto g = f;
  g[14 + 6] |= 0x20;  // MF: an IP fragment
  CHECK_VERR(ValidateVnetHdr(h, g.data(), g.size()), VnetError::kBadPacket);
  g = f;
  g[12] = 0x08;
  g[13] = 0x06;  // ARP
  CHECK_VERR(ValidateVnetHdr(h, g.data(), g.size()), VnetError::kBadPacket);
  g = f;
  g[14] = 0x44;  // ihl 4
  CHECK_VERR(ValidateVnetHdr(h, g.data(), g.size()), VnetError::kBadPacket);
  g = f;
  g[l4 + 12] = 0x40;  // doff 4
  CHECK_VERR(ValidateVnetHdr(h, g.data(), g.size()), VnetError::kBadPacket);
  // Truncated inside the TCP header.
  CHECK_VERR(
      ValidateVnetHdr(VnetHdr{kVnetFlagNeedsCsum, kGsoTcpv4, 0, 100, static_cast<uint16_t>(l4), 16}, f.data(), l4 + 18),
      VnetError::kBadPacket);
  // Five stacked VLAN tags are more than we walk.
  FrameSpec deep;
  deep.vlan_tags = 5;
  auto d = BuildFrame(deep, nullptr, &l4);
  CHECK_VERR(ValidateVnetHdr(GsoHeader(deep, l4, kGsoTcpv4, 100), d.data(), d.size()), VnetError::kBadPacket);
}

TEST(VnetHdr, UdpRules) {
  FrameSpec s;
  s.udp = true;
  s.payload = 4000;
  size_t l4;
  auto f = BuildFrame(s, nullptr, &l4);
  VnetHdr h = GsoHeader(s, l4, kGsoUdpL4, 1000);
  h.flags = 0;
  CHECK_VERR(ValidateVnetHdr(h, f.data(), f.size()), VnetError::kBadGsoType);  // USO needs NEEDS_CSUM
  h = GsoHeader(s, l4, kGsoUdpL4, 31);                                         // 130 segments > 128
  CHECK_VERR(ValidateVnetHdr(h, f.data(), f.size()), VnetError::kTooManySegments);
  h = GsoHeader(s, l4, kGsoUdp, 1001);  // fragment offsets need multiples of 8
  CHECK_VERR(ValidateVnetHdr(h, f.data(), f.size()), VnetError::kBadGsoSize);
  h = GsoHeader(s, l4, kGsoUdp, 1000);
  h.flags = 0;  // UFO may come without NEEDS_CSUM: the checksum is computed from scratch
  CHECK_VERR(ValidateVnetHdr(h, f.data(), f.size()), VnetError::kOk);
}

TEST(Checksum, CompletesTheSeededChecksumAndMangledZero) {
  for (bool v6 : {false, true}) {
    for (bool udp : {false, true}) {
      FrameSpec s;
      s.ipv6 = v6;
      s.udp = udp;
      s.payload = 777;  // odd length
      size_t l4;
      auto f = BuildFrame(s, nullptr, &l4);
      VnetHdr h = GsoHeader(s, l4, kGsoNone, 0);
      FrameLayout lay;
      REQUIRE(ParseFrameLayout(f.data(), f.size(), 0, &lay) == VnetError::kOk);
      CHECK(!nptest::L4ChecksumOk(f.data(), f.size(), lay));
      CHECK_VERR(CompleteChecksum(h, f.data(), f.size()), VnetError::kOk);
      CHECK(nptest::L4ChecksumOk(f.data(), f.size(), lay));
    }
  }
  // Choose the last two payload bytes so that the computed checksum is 0: it must go out
  // as 0xffff (Linux skb_checksum_help).
  FrameSpec s;
  s.udp = true;
  s.payload = 100;
  size_t l4;
  auto f = BuildFrame(s, nullptr, &l4);
  VnetHdr h = GsoHeader(s, l4, kGsoNone, 0);
  f[f.size() - 2] = f[f.size() - 1] = 0;
  uint16_t partial = ChecksumFold(ChecksumAdd(0, f.data() + l4, f.size() - l4));
  StoreBe16(&f[f.size() - 2], static_cast<uint16_t>(~partial));  // total sum -> 0xffff
  CHECK_VERR(CompleteChecksum(h, f.data(), f.size()), VnetError::kOk);
  CHECK_EQ(LoadBe16(&f[l4 + 6]), 0xffff);
  // Without NEEDS_CSUM nothing changes; a field past the end is refused.
  auto g = f;
  CHECK_VERR(CompleteChecksum(VnetHdr{}, g.data(), g.size()), VnetError::kOk);
  CHECK(g == f);
  h.csum_offset = static_cast<uint16_t>(f.size());
  CHECK_VERR(CompleteChecksum(h, g.data(), g.size()), VnetError::kBadCsum);
}

TEST(Checksum, MatchesRfc1071Example) {
  // RFC 1071 section 3 example: words 0001 f203 f4f5 f6f7 sum to 0xddf2.
  const uint8_t data[8] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  CHECK_EQ(ChecksumFold(ChecksumAdd(0, data, 8)), 0xddf2);
  CHECK_EQ(InternetChecksum(data, 8), static_cast<uint16_t>(~0xddf2));
  // Chaining even-length pieces equals one pass; an odd tail is padded with zero.
  CHECK_EQ(ChecksumFold(ChecksumAdd(ChecksumAdd(0, data, 2), data + 2, 6)), 0xddf2);
  const uint8_t odd[3] = {0x12, 0x34, 0x56};
  CHECK_EQ(ChecksumFold(ChecksumAdd(0, odd, 3)), 0x1234 + 0x5600);
}
