// Software GSO: split a TSO4/TSO6/UFO/USO frame into the wire frames Linux's own software
// segmentation emits (net/ipv4/tcp_offload.c, udp_offload.c, af_inet.c inet_gso_segment,
// net/ipv6/ip6_offload.c), checksums completed. One segment at a time is built in the
// caller's scratch buffer and handed to the sink: no allocation.
#include "vnet/segment.h"

#include <cstring>

#include "vnet/checksum.h"
#include "vnet/vnet_hdr.h"
#include "vnet/wire_format.h"

namespace netplane::core {

namespace {

// What every segment shares: the parsed headers and how the payload is cut.
struct Plan {
  FrameLayout lay;
  uint8_t base = kGsoNone;  // gso_type without the ECN bit
  size_t payload_off = 0;   // bytes before the payload (copied into every segment)
  size_t payload_len = 0;
  size_t mss = 0;
  size_t count = 1;
};

// Fills plan; false when the frame goes out as one frame (no GSO, or Linux's "too small
// packets are not really GSO ones").
bool MakePlan(const VnetHdr& h, const uint8_t* frame, size_t frame_len, Plan* plan) {
  plan->base = h.gso_type & ~kGsoEcn;
  if (plan->base == kGsoNone) return false;
  if (ParseFrameLayout(frame, frame_len, 0, &plan->lay) != VnetError::kOk) return false;
  // UFO fragments the whole UDP datagram (header included); the others cut after the L4
  // header and give every segment its own copy of it.
  plan->payload_off = plan->base == kGsoUdp ? plan->lay.l4 : plan->lay.l4 + plan->lay.l4_hdr_len;
  plan->payload_len = frame_len - plan->payload_off;
  plan->mss = h.gso_size;
  if (plan->payload_len <= plan->mss) return false;
  plan->count = (plan->payload_len + plan->mss - 1) / plan->mss;
  return true;
}

void FinishIpv4Header(uint8_t* seg, const FrameLayout& lay, size_t seg_len) {
  uint8_t* ip = seg + lay.l3;
  size_t ihl = static_cast<size_t>(ip[0] & 0x0f) * 4;
  StoreBe16(ip + 2, static_cast<uint16_t>(seg_len - lay.l3));
  StoreBe16(ip + 10, 0);
  StoreBe16(ip + 10, InternetChecksum(ip, ihl));
}

void FinishIpHeader(uint8_t* seg, const FrameLayout& lay, size_t seg_len) {
  if (lay.ipv6) {
    StoreBe16(seg + lay.l3 + 4, static_cast<uint16_t>(seg_len - lay.l3 - kIpv6HdrLen));
  } else {
    FinishIpv4Header(seg, lay, seg_len);
  }
}

// Pseudo-header sum for the L4 segment at seg + l4 of l4_len bytes.
uint64_t PseudoSum(const uint8_t* seg, const FrameLayout& lay, uint8_t proto, size_t l4_len) {
  const uint8_t* ip = seg + lay.l3;
  return lay.ipv6 ? PseudoHeaderSumV6(ip + 8, ip + 24, proto, static_cast<uint32_t>(l4_len))
                  : PseudoHeaderSumV4(ip + 12, ip + 16, proto, static_cast<uint32_t>(l4_len));
}

// TSO4 / TSO6 / USO: every segment is a complete TCP segment or UDP datagram.
void EmitL4Segments(const Plan& p, const uint8_t* frame, uint8_t* scratch, SegmentSink sink, void* opaque) {
  const FrameLayout& lay = p.lay;
  bool tcp = lay.l4_proto == kProtoTcp;
  uint16_t ip_id = lay.ipv6 ? 0 : LoadBe16(frame + lay.l3 + 4);
  uint32_t seq = tcp ? LoadBe32(frame + lay.l4 + 4) : 0;
  for (size_t i = 0; i < p.count; ++i) {
    size_t off = i * p.mss;
    size_t chunk = p.payload_len - off < p.mss ? p.payload_len - off : p.mss;
    size_t seg_len = p.payload_off + chunk;
    std::memcpy(scratch, frame, p.payload_off);
    std::memcpy(scratch + p.payload_off, frame + p.payload_off + off, chunk);
    bool first = i == 0, last = i + 1 == p.count;
    if (!lay.ipv6) StoreBe16(scratch + lay.l3 + 4, static_cast<uint16_t>(ip_id + i));
    FinishIpHeader(scratch, lay, seg_len);
    uint8_t* l4 = scratch + lay.l4;
    size_t l4_len = seg_len - lay.l4;
    if (tcp) {
      StoreBe32(l4 + 4, static_cast<uint32_t>(seq + off));
      if (!last) l4[13] &= static_cast<uint8_t>(~(kTcpFin | kTcpPsh));
      if (!first) l4[13] &= static_cast<uint8_t>(~kTcpCwr);
      StoreBe16(l4 + kTcpCsumOffset, 0);
      uint64_t sum = ChecksumAdd(PseudoSum(scratch, lay, kProtoTcp, l4_len), l4, l4_len);
      StoreBe16(l4 + kTcpCsumOffset, ChecksumFinish(sum));  // TCP: a zero result stays zero
    } else {
      StoreBe16(l4 + 4, static_cast<uint16_t>(l4_len));
      StoreBe16(l4 + kUdpCsumOffset, 0);
      uint16_t csum = ChecksumFinish(ChecksumAdd(PseudoSum(scratch, lay, kProtoUdp, l4_len), l4, l4_len));
      StoreBe16(l4 + kUdpCsumOffset, csum == 0 ? 0xffff : csum);
    }
    sink(opaque, scratch, seg_len);
  }
}

// UFO: the datagram's checksum is completed over the whole datagram, which is then cut
// into IP fragments of mss bytes (the UDP header travels in the first one only).
void EmitUdpFragments(const Plan& p, const uint8_t* frame, size_t frame_len, uint8_t* scratch, SegmentSink sink,
                      void* opaque) {
  const FrameLayout& lay = p.lay;
  size_t udp_len = frame_len - lay.l4;
  // Sum the datagram as if its checksum field were zero (the field's 2 bytes skipped).
  uint64_t sum = PseudoSum(frame, lay, kProtoUdp, udp_len);
  sum = ChecksumAdd(sum, frame + lay.l4, kUdpCsumOffset);
  sum = ChecksumAdd(sum, frame + lay.l4 + kUdpHdrLen, udp_len - kUdpHdrLen);
  uint16_t udp_csum = ChecksumFinish(sum);
  if (udp_csum == 0) udp_csum = 0xffff;

  // IPv6 inserts a fragment header at the end of the unfragmentable part.
  size_t frag_point = lay.ipv6 ? lay.ipv6_frag_point : lay.l4;
  size_t extra = lay.ipv6 ? kIpv6FragHdrLen : 0;
  size_t hdr_len = lay.l4 + extra;
  uint32_t frag_id = lay.ipv6 ? NextIpv6FragmentId() : 0;
  for (size_t i = 0; i < p.count; ++i) {
    size_t off = i * p.mss;
    size_t chunk = p.payload_len - off < p.mss ? p.payload_len - off : p.mss;
    size_t seg_len = hdr_len + chunk;
    bool last = i + 1 == p.count;
    std::memcpy(scratch, frame, frag_point);
    std::memcpy(scratch + frag_point + extra, frame + frag_point, lay.l4 - frag_point);
    std::memcpy(scratch + hdr_len, frame + lay.l4 + off, chunk);
    if (i == 0) StoreBe16(scratch + hdr_len + kUdpCsumOffset, udp_csum);
    if (lay.ipv6) {
      uint8_t* fh = scratch + frag_point;
      fh[0] = frame[lay.ipv6_prev_nexthdr];
      fh[1] = 0;
      StoreBe16(fh + 2, static_cast<uint16_t>(off | (last ? 0 : kIpv6MoreFragments)));
      StoreBe32(fh + 4, frag_id);
      scratch[lay.ipv6_prev_nexthdr] = kIpv6Fragment;
      StoreBe16(scratch + lay.l3 + 4, static_cast<uint16_t>(seg_len - lay.l3 - kIpv6HdrLen));
    } else {
      // As Linux: the whole field is rewritten (DF cleared), the ID is kept.
      StoreBe16(scratch + lay.l3 + 6, static_cast<uint16_t>((off >> 3) | (last ? 0 : kIpv4MoreFragments)));
      FinishIpv4Header(scratch, lay, seg_len);
    }
    sink(opaque, scratch, seg_len);
  }
}

}  // namespace

size_t CountSegments(const VnetHdr& h, const uint8_t* frame, size_t frame_len) {
  Plan plan;
  return MakePlan(h, frame, frame_len, &plan) ? plan.count : 1;
}

VnetError SegmentFrame(const VnetHdr& h, const uint8_t* frame, size_t frame_len, uint8_t* scratch, SegmentSink sink,
                       void* opaque) {
  VnetError e = ValidateVnetHdr(h, frame, frame_len);
  if (e != VnetError::kOk) return e;
  Plan plan;
  if (!MakePlan(h, frame, frame_len, &plan)) {
    if (!(h.flags & kVnetFlagNeedsCsum)) {
      sink(opaque, frame, frame_len);
      return VnetError::kOk;
    }
    std::memcpy(scratch, frame, frame_len);
    e = CompleteChecksum(h, scratch, frame_len);
    if (e != VnetError::kOk) return e;
    sink(opaque, scratch, frame_len);
    return VnetError::kOk;
  }
  if (plan.base == kGsoUdp) {
    EmitUdpFragments(plan, frame, frame_len, scratch, sink, opaque);
  } else {
    EmitL4Segments(plan, frame, scratch, sink, opaque);
  }
  return VnetError::kOk;
}

}  // namespace netplane::core
