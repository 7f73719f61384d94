// Internet checksum helpers (see checksum.h).
#include "vnet/checksum.h"

namespace netplane::core {

uint64_t ChecksumAdd(uint64_t sum, const uint8_t* p, size_t len) {
  // Summing big-endian 32-bit words into 64 bits is the same one's complement sum as
  // summing 16-bit words, since 2^16 = 1 (mod 0xffff); the fold takes care of the carries.
  // 2^32 words of at most 2^32 each cannot overflow 64 bits for any frame we handle.
  while (len >= 4) {
    sum += LoadBe32(p);
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    sum += LoadBe16(p);
    p += 2;
    len -= 2;
  }
  if (len == 1) sum += static_cast<uint64_t>(p[0]) << 8;
  return sum;
}

uint16_t ChecksumFold(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

uint64_t PseudoHeaderSumV4(const uint8_t* src, const uint8_t* dst, uint8_t proto, uint32_t l4_len) {
  uint64_t sum = ChecksumAdd(0, src, 4);
  sum = ChecksumAdd(sum, dst, 4);
  return sum + proto + l4_len;
}

uint64_t PseudoHeaderSumV6(const uint8_t* src, const uint8_t* dst, uint8_t proto, uint32_t l4_len) {
  uint64_t sum = ChecksumAdd(0, src, 16);
  sum = ChecksumAdd(sum, dst, 16);
  // The 32-bit length and the next-header value, each as big-endian words.
  return sum + (l4_len >> 16) + (l4_len & 0xffff) + proto;
}

}  // namespace netplane::core
