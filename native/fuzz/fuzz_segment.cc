// libFuzzer harness: SegmentFrame on arbitrary and on structured frames.
// Input byte 0 picks the mode: even = raw (a 10-byte vnet header, then the frame, as read
// from a TAP); odd = structured (parameters, then payload bytes) so that the segmenter's
// deep paths are reached with every header variant.
// Invariants checked on every valid input: each segment is at most headers + gso_size
// bytes (+8 for an IPv6 fragment header) and fits kMaxFrameLen; the count equals
// CountSegments; TSO/USO segments parse, carry correct IP lengths, IPv4 header and L4
// checksums, and their payloads concatenate to the original payload; UFO fragments carry
// consecutive offsets, one identification, MF on all but the last, and reassemble to the
// original datagram with a verifying checksum.
#include <cstdint>
#include <cstring>
#include <vector>

#include "../test/frame_builder.h"
#include "fuzz_assert.h"
#include "vnet/checksum.h"
#include "vnet/vnet_hdr.h"

using namespace netplane::core;

namespace {

struct Checker {
  const uint8_t* frame;
  size_t frame_len;
  VnetHdr h;
  bool gso = false;
  FrameLayout lay;
  size_t payload_off = 0;
  size_t consumed = 0;  // payload bytes seen so far
  size_t count = 0;
  uint32_t frag_id = 0;
  uint64_t ufo_sum = 0;  // running sum of the reassembled UDP datagram
};

uint64_t Pseudo(const uint8_t* f, const FrameLayout& lay, uint8_t proto, size_t len) {
  const uint8_t* ip = f + lay.l3;
  return lay.ipv6 ? PseudoHeaderSumV6(ip + 8, ip + 24, proto, static_cast<uint32_t>(len))
                  : PseudoHeaderSumV4(ip + 12, ip + 16, proto, static_cast<uint32_t>(len));
}

void Sink(void* opaque, const uint8_t* seg, size_t len) {
  auto* c = static_cast<Checker*>(opaque);
  FUZZ_ASSERT(len <= kMaxFrameLen);
  ++c->count;
  if (!c->gso) {
    FUZZ_ASSERT(len == c->frame_len);
    return;
  }
  uint8_t base = c->h.gso_type & ~kGsoEcn;
  const FrameLayout& lay = c->lay;
  size_t total = c->frame_len - c->payload_off;
  if (base == kGsoUdp) {
    size_t extra = lay.ipv6 ? 8 : 0;
    size_t hdr = lay.l4 + extra;
    FUZZ_ASSERT(len > hdr && len - hdr <= c->h.gso_size);
    size_t chunk = len - hdr;
    bool last = c->consumed + chunk == total;
    if (lay.ipv6) {
      const uint8_t* fh = seg + lay.ipv6_frag_point;
      FUZZ_ASSERT(seg[lay.ipv6_prev_nexthdr] == 44);
      FUZZ_ASSERT(LoadBe16(fh + 2) == (c->consumed | (last ? 0 : 1)));
      if (c->count == 1) c->frag_id = LoadBe32(fh + 4);
      FUZZ_ASSERT(LoadBe32(fh + 4) == c->frag_id);
      FUZZ_ASSERT(LoadBe16(seg + lay.l3 + 4) == len - lay.l3 - 40);
    } else {
      const uint8_t* ip = seg + lay.l3;
      FUZZ_ASSERT(LoadBe16(ip + 6) == ((c->consumed >> 3) | (last ? 0 : 0x2000)));
      FUZZ_ASSERT(LoadBe16(ip + 4) == LoadBe16(c->frame + lay.l3 + 4));
      FUZZ_ASSERT(LoadBe16(ip + 2) == len - lay.l3);
      FUZZ_ASSERT(ChecksumFold(ChecksumAdd(0, ip, (ip[0] & 15) * 4u)) == 0xffff);
    }
    // Data equals the original, except the UDP checksum field in the first fragment.
    const uint8_t* orig = c->frame + lay.l4 + c->consumed;
    for (size_t i = 0; i < chunk; ++i) {
      size_t pos = c->consumed + i;
      if (pos != 6 && pos != 7) FUZZ_ASSERT(seg[hdr + i] == orig[i]);
    }
    // Chunks are multiples of 8 bytes, so the running sum stays word-aligned.
    c->ufo_sum = ChecksumAdd(c->ufo_sum, seg + hdr, chunk);
    c->consumed += chunk;
    if (last) {
      FUZZ_ASSERT(ChecksumFold(c->ufo_sum + Pseudo(c->frame, lay, 17, total)) == 0xffff);
    }
    return;
  }
  // TSO / USO: each a complete packet.
  FUZZ_ASSERT(len > c->payload_off && len - c->payload_off <= c->h.gso_size);
  FrameLayout sl;
  FUZZ_ASSERT(ParseFrameLayout(seg, len, lay.l4_proto, &sl) == VnetError::kOk);
  FUZZ_ASSERT(sl.l4 == lay.l4);
  const uint8_t* ip = seg + lay.l3;
  if (lay.ipv6) {
    FUZZ_ASSERT(LoadBe16(ip + 4) == len - lay.l3 - 40);
  } else {
    FUZZ_ASSERT(LoadBe16(ip + 2) == len - lay.l3);
    FUZZ_ASSERT(ChecksumFold(ChecksumAdd(0, ip, (ip[0] & 15) * 4u)) == 0xffff);
  }
  size_t l4_len = len - lay.l4;
  FUZZ_ASSERT(ChecksumFold(ChecksumAdd(Pseudo(seg, lay, lay.l4_proto, l4_len), seg + lay.l4, l4_len)) == 0xffff);
  size_t chunk = len - c->payload_off;
  FUZZ_ASSERT(c->consumed + chunk <= total);
  FUZZ_ASSERT(std::memcmp(seg + c->payload_off, c->frame + c->payload_off + c->consumed, chunk) == 0);
  c->consumed += chunk;
}

std::vector<uint8_t> g_scratch(kMaxFrameLen);

void RunOne(const VnetHdr& h, const uint8_t* frame, size_t frame_len) {
  Checker c{frame, frame_len, h};
  VnetError valid = ValidateVnetHdr(h, frame, frame_len);
  if (valid == VnetError::kOk) {
    size_t expect = CountSegments(h, frame, frame_len);
    c.gso = expect > 1;
    if (c.gso) {
      FUZZ_ASSERT(ParseFrameLayout(frame, frame_len, 0, &c.lay) == VnetError::kOk);
      c.payload_off = (h.gso_type & ~kGsoEcn) == kGsoUdp ? c.lay.l4 : c.lay.l4 + c.lay.l4_hdr_len;
    }
    VnetError e = SegmentFrame(h, frame, frame_len, g_scratch.data(), Sink, &c);
    FUZZ_ASSERT(e == VnetError::kOk);
    FUZZ_ASSERT(c.count == expect);
    if (c.gso) FUZZ_ASSERT(c.consumed == frame_len - c.payload_off);
  } else {
    FUZZ_ASSERT(SegmentFrame(h, frame, frame_len, g_scratch.data(), Sink, &c) == valid);
    FUZZ_ASSERT(c.count == 0);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  uint8_t mode = data[0];
  ++data;
  --size;
  if ((mode & 1) == 0) {
    if (size < kVnetHdrLenLegacy) return 0;
    RunOne(ParseVnetHdr(data, kVnetHdrLenLegacy), data + kVnetHdrLenLegacy, size - kVnetHdrLenLegacy);
    return 0;
  }
  // Structured: 8 parameter bytes, then payload seed bytes.
  if (size < 8) return 0;
  nptest::FrameSpec s;
  s.ipv6 = data[0] & 1;
  s.udp = data[0] & 2;
  s.vlan_tags = (data[0] >> 2) & 3;
  s.ipv4_options = ((data[0] >> 4) & 3) * 4;
  s.ipv6_hbh = ((data[0] >> 6) & 1) * 8;
  s.tcp_options = (data[1] & 7) * 4;
  s.tcp_flags = data[2];
  s.seq = 0xffffff00u + data[3];
  s.ip_id = static_cast<uint16_t>(0xff00 + data[3]);
  s.payload_seed = data[4];
  // Payload length: from the input size, or (one input in four) scaled up to large frames.
  size_t payload = (data[5] & 0xc0) == 0xc0 ? (static_cast<size_t>(data[5] & 0x3f) << 10) + size : size;
  s.payload = payload > 65000 ? 65000 : payload;
  uint16_t gso_size = static_cast<uint16_t>(LoadBe16(data + 6) % 9000 + 1);
  size_t l4;
  std::vector<uint8_t> f = nptest::BuildFrame(s, nullptr, &l4);
  // The input's own bytes go into the payload too, so checksums see varied data.
  size_t hdr = l4 + (s.udp ? 8 : 20 + s.tcp_options);
  for (size_t i = 8; i < size && hdr + i - 8 < f.size(); ++i) f[hdr + i - 8] = data[i];
  uint8_t kind = data[1] >> 3;
  uint8_t type = s.udp ? ((kind & 1) ? kGsoUdp : kGsoUdpL4) : (s.ipv6 ? kGsoTcpv6 : kGsoTcpv4);
  if (kind & 2) type = kGsoNone;
  if (type == kGsoUdp) gso_size = static_cast<uint16_t>((gso_size + 7) & ~7u);
  // Keep runs fast: at most ~2000 segments.
  if (s.payload / gso_size > 2000) gso_size = static_cast<uint16_t>((s.payload / 2000 + 8) & ~7u);
  nptest::FrameSpec spec_for_hdr = s;
  VnetHdr h = nptest::GsoHeader(spec_for_hdr, l4, type, gso_size);
  if (kind & 4) h.gso_type |= kGsoEcn;  // only valid for TCP
  if (kind & 8) h.flags = 0;            // GSO without NEEDS_CSUM
  if (kind & 16) h.csum_offset ^= 2;    // a wrong checksum offset
  RunOne(h, f.data(), f.size());
  return 0;
}
