// libFuzzer harness: the vnet header parser, writer, converter and validator on arbitrary
// bytes. Input: 1 selector byte (header length), the header, then the frame.
// Invariants: nothing crashes or reads out of bounds (ASan/UBSan); write(parse(x)) keeps
// every field of the layout; conversion keeps the common prefix and zero-fills; a header
// that validates has its checksum field inside the frame and completing it verifies.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "fuzz_assert.h"
#include "vnet/checksum.h"
#include "vnet/vnet_hdr.h"

using namespace netplane::core;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t lens[3] = {kVnetHdrLenLegacy, kVnetHdrLenMrg, kVnetHdrLenHash};
  size_t hlen = lens[data[0] % 3];
  ++data;
  --size;
  if (size < hlen) return 0;

  VnetHdr h = ParseVnetHdr(data, hlen);
  uint8_t out[kVnetHdrLenHash];
  WriteVnetHdr(h, out, hlen);
  VnetHdr back = ParseVnetHdr(out, hlen);
  FUZZ_ASSERT(back.flags == h.flags && back.gso_type == h.gso_type && back.hdr_len == h.hdr_len &&
              back.gso_size == h.gso_size && back.csum_start == h.csum_start && back.csum_offset == h.csum_offset &&
              back.num_buffers == h.num_buffers && back.hash_value == h.hash_value &&
              back.hash_report == h.hash_report);
  // The 20-byte layout's last two bytes are padding: everything else round-trips.
  FUZZ_ASSERT(std::memcmp(out, data, hlen == kVnetHdrLenHash ? 18 : hlen) == 0);

  for (size_t to : lens) {
    uint8_t conv[kVnetHdrLenHash];
    ConvertVnetHdr(data, hlen, conv, to);
    size_t common = hlen < to ? hlen : to;
    FUZZ_ASSERT(std::memcmp(conv, data, common) == 0);
    for (size_t i = common; i < to; ++i) FUZZ_ASSERT(conv[i] == 0);
  }

  const uint8_t* frame = data + hlen;
  size_t frame_len = size - hlen;
  VnetError e = ValidateVnetHdr(h, frame, frame_len);
  FUZZ_ASSERT(VnetErrorName(e) != nullptr);
  if (e == VnetError::kOk) {
    FUZZ_ASSERT(h.hdr_len <= frame_len);
    if (h.flags & kVnetFlagNeedsCsum) {
      FUZZ_ASSERT(static_cast<size_t>(h.csum_start) + h.csum_offset + 2 <= frame_len);
      std::vector<uint8_t> copy(frame, frame + frame_len);
      FUZZ_ASSERT(CompleteChecksum(h, copy.data(), copy.size()) == VnetError::kOk);
      // The seed that sat in the field stands for the pseudo-header: seed + the completed
      // range must sum to all ones (also when a zero result went out as 0xffff).
      // (Only meaningful for an even csum_offset: an odd one straddles two words.)
      uint16_t seed = LoadBe16(frame + h.csum_start + h.csum_offset);
      uint64_t sum = ChecksumAdd(seed, copy.data() + h.csum_start, copy.size() - h.csum_start);
      if (h.csum_offset % 2 == 0) FUZZ_ASSERT(ChecksumFold(sum) == 0xffff);
    }
    if ((h.gso_type & ~kGsoEcn) != kGsoNone) {
      FrameLayout lay;
      FUZZ_ASSERT(ParseFrameLayout(frame, frame_len, 0, &lay) == VnetError::kOk);
      FUZZ_ASSERT(lay.l4 + lay.l4_hdr_len <= frame_len);
    }
  }
  return 0;
}
