// Software segmentation (TSO4, TSO6, USO, UFO) on synthetic frames: every rule Linux's GSO
// applies, checked field by field. (segment_kernel_test.cc compares with the kernel.)
#include <stdexcept>

#include "frame_builder.h"
#include "test.h"

using namespace netplane::core;
using nptest::BuildFrame;
using nptest::Collected;
using nptest::FrameSpec;
using nptest::GsoHeader;

namespace {

std::vector<uint8_t> g_scratch(kMaxFrameLen);

Collected Segment(const VnetHdr& h, const std::vector<uint8_t>& f, VnetError want = VnetError::kOk) {
  Collected c;
  CHECK_VERR(SegmentFrame(h, f.data(), f.size(), g_scratch.data(), Collected::Sink, &c), want);
  return c;
}

FrameLayout Layout(const std::vector<uint8_t>& f) {
  FrameLayout lay;
  if (ParseFrameLayout(f.data(), f.size(), 0, &lay) != VnetError::kOk) {
    throw std::runtime_error("segment does not parse");
  }
  return lay;
}

// Checks shared by TSO and USO: sizes, IP fields, checksums, and that the payloads
// concatenate to the original payload.
void CheckL4Segments(const std::vector<uint8_t>& orig, const Collected& c, size_t mss) {
  FrameLayout lay = Layout(orig);
  size_t hdr = lay.l4 + lay.l4_hdr_len;
  size_t payload = orig.size() - hdr;
  REQUIRE(c.frames.size() == (payload + mss - 1) / mss);
  std::vector<uint8_t> joined;
  for (size_t i = 0; i < c.frames.size(); ++i) {
    const auto& s = c.frames[i];
    REQUIRE(s.size() > hdr);
    CHECK_EQ(s.size() - hdr, i + 1 < c.frames.size() ? mss : payload - mss * i);
    CHECK(std::memcmp(s.data(), orig.data(), lay.l3) == 0);  // ethernet + VLAN unchanged
    const uint8_t* ip = s.data() + lay.l3;
    if (lay.ipv6) {
      CHECK_EQ(LoadBe16(ip + 4), s.size() - lay.l3 - 40);
      CHECK(std::memcmp(ip + 6, orig.data() + lay.l3 + 6, lay.l4 - lay.l3 - 6) == 0);
    } else {
      CHECK_EQ(LoadBe16(ip + 2), s.size() - lay.l3);
      CHECK_EQ(LoadBe16(ip + 4), static_cast<uint16_t>(LoadBe16(orig.data() + lay.l3 + 4) + i));
      CHECK_EQ(LoadBe16(ip + 6), LoadBe16(orig.data() + lay.l3 + 6));  // DF kept
      CHECK(nptest::Ipv4HeaderChecksumOk(ip));
    }
    CHECK(nptest::L4ChecksumOk(s.data(), s.size(), lay));
    joined.insert(joined.end(), s.begin() + hdr, s.end());
  }
  CHECK(joined == std::vector<uint8_t>(orig.begin() + hdr, orig.end()));
}

}  // namespace

TEST(Segment, Tso4SplitsAdvancesSeqAndIdAndKeepsFlagsWhereLinuxDoes) {
  FrameSpec s;
  s.payload = 2500;
  s.tcp_flags = 0x80 | 0x10 | 0x08 | 0x01;  // CWR|ACK|PSH|FIN
  s.seq = 0xfffffc00;                       // wraps during the split
  s.ip_id = 0xffff;                         // wraps too
  size_t l4;
  auto f = BuildFrame(s, nullptr, &l4);
  Collected c = Segment(GsoHeader(s, l4, kGsoTcpv4 | kGsoEcn, 1000), f);
  CheckL4Segments(f, c, 1000);
  REQUIRE(c.frames.size() == 3);
  CHECK_EQ(LoadBe16(&c.frames[1][14 + 4]), 0);  // id 0xffff + 1
  for (size_t i = 0; i < 3; ++i) {
    const uint8_t* th = &c.frames[i][l4];
    CHECK_EQ(LoadBe32(th + 4), static_cast<uint32_t>(0xfffffc00u + 1000 * i));
    CHECK_EQ(LoadBe32(th + 8), 0xabcdef01u);  // ack untouched
    uint8_t want = 0x10 | (i == 0 ? 0x80 : 0) | (i == 2 ? 0x09 : 0);
    CHECK_EQ(th[13], want);
  }
}

TEST(Segment, Tso4WithVlanIpOptionsAndTcpOptions) {
  FrameSpec s;
  s.vlan_tags = 1;
  s.ipv4_options = 12;
  s.tcp_options = 12;
  s.payload = 64000;
  size_t l4;
  auto f = BuildFrame(s, nullptr, &l4);
  Collected c = Segment(GsoHeader(s, l4, kGsoTcpv4, 1448), f);
  CheckL4Segments(f, c, 1448);
  // Options are copied into every segment.
  for (const auto& seg : c.frames) CHECK(std::memcmp(&seg[l4 + 20], &f[l4 + 20], 12) == 0);
}

TEST(Segment, Tso6WithHopByHopHeader) {
  FrameSpec s;
  s.ipv6 = true;
  s.ipv6_hbh = 8;
  s.payload = 10000;
  size_t l4;
  auto f = BuildFrame(s, nullptr, &l4);
  Collected c = Segment(GsoHeader(s, l4, kGsoTcpv6, 1420), f);
  CheckL4Segments(f, c, 1420);
}

TEST(Segment, UsoMakesEachSegmentAFullDatagram) {
  for (bool v6 : {false, true}) {
    FrameSpec s;
    s.ipv6 = v6;
    s.udp = true;
    s.payload = 5000;
    size_t l4;
    auto f = BuildFrame(s, nullptr, &l4);
    Collected c = Segment(GsoHeader(s, l4, kGsoUdpL4, 1200), f);
    CheckL4Segments(f, c, 1200);
    for (const auto& seg : c.frames) CHECK_EQ(LoadBe16(&seg[l4 + 4]), seg.size() - l4);
  }
}

TEST(Segment, Ufo4FragmentsTheDatagramWithOneIdAndOffsets) {
  FrameSpec s;
  s.udp = true;
  s.payload = 4000;
  s.ip_id = 0x4242;
  size_t l3, l4;
  auto f = BuildFrame(s, &l3, &l4);
  Collected c = Segment(GsoHeader(s, l4, kGsoUdp, 1480), f);
  size_t data = f.size() - l4;  // UDP header + payload
  REQUIRE(c.frames.size() == 3);
  std::vector<uint8_t> reassembled;
  for (size_t i = 0; i < c.frames.size(); ++i) {
    const auto& seg = c.frames[i];
    const uint8_t* ip = &seg[l3];
    bool last = i == 2;
    CHECK_EQ(seg.size() - l4, last ? data - 2 * 1480 : 1480u);
    CHECK_EQ(LoadBe16(ip + 2), seg.size() - l3);
    CHECK_EQ(LoadBe16(ip + 4), 0x4242);                                // same ID for every fragment
    CHECK_EQ(LoadBe16(ip + 6), (i * 1480 / 8) | (last ? 0 : 0x2000));  // DF gone
    CHECK(nptest::Ipv4HeaderChecksumOk(ip));
    reassembled.insert(reassembled.end(), seg.begin() + l4, seg.end());
  }
  // The reassembled datagram carries a complete, valid checksum; nothing else changed.
  std::vector<uint8_t> whole(f.begin(), f.begin() + l4);
  whole.insert(whole.end(), reassembled.begin(), reassembled.end());
  CHECK(nptest::L4ChecksumOk(whole.data(), whole.size(), Layout(f)));
  CHECK(std::memcmp(&reassembled[0], &f[l4], 6) == 0);
  CHECK(std::memcmp(&reassembled[8], &f[l4 + 8], data - 8) == 0);
}

TEST(Segment, Ufo6InsertsAFragmentHeader) {
  FrameSpec s;
  s.ipv6 = true;
  s.ipv6_hbh = 8;  // unfragmentable: stays before the fragment header
  s.udp = true;
  s.payload = 3000;
  size_t l3, l4;
  auto f = BuildFrame(s, &l3, &l4);
  Collected c = Segment(GsoHeader(s, l4, kGsoUdp, 1232), f);
  REQUIRE(c.frames.size() == 3);
  size_t fh = l4;  // fragment header where the UDP header was
  uint32_t id = LoadBe32(&c.frames[0][fh + 4]);
  std::vector<uint8_t> reassembled;
  for (size_t i = 0; i < c.frames.size(); ++i) {
    const auto& seg = c.frames[i];
    bool last = i == 2;
    CHECK_EQ(seg[l3 + 6], 0);    // IPv6 -> hop-by-hop unchanged
    CHECK_EQ(seg[l3 + 40], 44);  // hop-by-hop -> fragment
    CHECK_EQ(seg[fh], 17);       // fragment -> UDP
    CHECK_EQ(LoadBe16(&seg[fh + 2]), (i * 1232) | (last ? 0 : 1));
    CHECK_EQ(LoadBe32(&seg[fh + 4]), id);
    CHECK_EQ(LoadBe16(&seg[l3 + 4]), seg.size() - l3 - 40);
    reassembled.insert(reassembled.end(), seg.begin() + fh + 8, seg.end());
  }
  CHECK_EQ(reassembled.size(), f.size() - l4);
  std::vector<uint8_t> whole(f.begin(), f.begin() + l4);
  whole.insert(whole.end(), reassembled.begin(), reassembled.end());
  CHECK(nptest::L4ChecksumOk(whole.data(), whole.size(), Layout(f)));
  // The next UFO6 frame gets another identification.
  Collected c2 = Segment(GsoHeader(s, l4, kGsoUdp, 1232), f);
  CHECK(LoadBe32(&c2.frames[0][fh + 4]) != id);
}

TEST(Segment, SmallGsoFrameAndPlainNeedsCsumGoOutWhole) {
  FrameSpec s;
  s.payload = 1000;
  size_t l4;
  auto f = BuildFrame(s, nullptr, &l4);
  // Payload <= gso_size: not really GSO (Linux's rule); only the checksum is completed.
  Collected c = Segment(GsoHeader(s, l4, kGsoTcpv4, 1000), f);
  REQUIRE(c.frames.size() == 1);
  CHECK(nptest::L4ChecksumOk(c.frames[0].data(), c.frames[0].size(), Layout(f)));
  CHECK(std::memcmp(c.frames[0].data(), f.data(), l4) == 0);  // IP header untouched
  CHECK_EQ(CountSegments(GsoHeader(s, l4, kGsoTcpv4, 1000), f.data(), f.size()), 1u);
  CHECK_EQ(CountSegments(GsoHeader(s, l4, kGsoTcpv4, 999), f.data(), f.size()), 2u);
  Collected d = Segment(GsoHeader(s, l4, kGsoNone, 0), f);
  CHECK(d.frames == c.frames);
  // No NEEDS_CSUM, no GSO: the frame is passed through as is.
  Collected e = Segment(VnetHdr{}, f);
  REQUIRE(e.frames.size() == 1);
  CHECK(e.frames[0] == f);
}

TEST(Segment, TsoWithoutNeedsCsumStillGetsFullChecksums) {
  FrameSpec s;
  s.payload = 3000;
  size_t l4;
  auto f = BuildFrame(s, nullptr, &l4);
  VnetHdr h = GsoHeader(s, l4, kGsoTcpv4, 1448);
  h.flags = 0;
  h.csum_start = h.csum_offset = 0;
  StoreBe16(&f[l4 + 16], 0x5555);  // garbage: the segmenter must not depend on it
  CheckL4Segments(f, Segment(h, f), 1448);
}

TEST(Segment, InvalidHeaderEmitsNothing) {
  FrameSpec s;
  s.payload = 3000;
  size_t l4;
  auto f = BuildFrame(s, nullptr, &l4);
  VnetHdr h = GsoHeader(s, l4, kGsoTcpv6, 1448);
  Collected c = Segment(h, f, VnetError::kBadPacket);
  CHECK(c.frames.empty());
}

TEST(Segment, LargestFrameWithTinyMss) {
  FrameSpec s;
  s.payload = 65535 - 20 - 20;  // largest IPv4 packet
  size_t l4;
  auto f = BuildFrame(s, nullptr, &l4);
  REQUIRE(f.size() <= kMaxFrameLen);
  Collected c = Segment(GsoHeader(s, l4, kGsoTcpv4, 1), f);
  CheckL4Segments(f, c, 1);
  CHECK_EQ(c.frames.size(), 65495u);
}
