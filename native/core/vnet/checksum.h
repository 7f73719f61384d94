// Internet checksum (RFC 1071) helpers: a 64-bit accumulator of big-endian words that is
// folded to 16 bits at the end, plus the IPv4/IPv6 pseudo-header sums used by TCP and UDP.
// Chaining: every piece but the last must have an even length (headers always do).
#pragma once

#include <cstddef>
#include <cstdint>

namespace netplane::core {

// Add the bytes p[0..len) to a running sum, as big-endian 16-bit words (an odd last byte
// is the high half of a word padded with zero).
uint64_t ChecksumAdd(uint64_t sum, const uint8_t* p, size_t len);
// Fold a running sum to 16 bits with end-around carry (the one's complement sum).
uint16_t ChecksumFold(uint64_t sum);
// The checksum field value for data whose running sum is `sum`: ~fold(sum).
inline uint16_t ChecksumFinish(uint64_t sum) { return static_cast<uint16_t>(~ChecksumFold(sum)); }
// ~sum(p[0..len)): the IPv4 header checksum when computed over a header whose field is 0.
inline uint16_t InternetChecksum(const uint8_t* p, size_t len) { return ChecksumFinish(ChecksumAdd(0, p, len)); }

// Pseudo-header sums (RFC 793 / RFC 8200 section 8.1). src/dst point at the addresses as
// they sit in the IP header; l4_len is the TCP/UDP length (header + payload).
uint64_t PseudoHeaderSumV4(const uint8_t* src, const uint8_t* dst, uint8_t proto, uint32_t l4_len);
uint64_t PseudoHeaderSumV6(const uint8_t* src, const uint8_t* dst, uint8_t proto, uint32_t l4_len);

// Big-endian loads and stores for header fields (unaligned-safe).
inline uint16_t LoadBe16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t LoadBe32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 | static_cast<uint32_t>(p[2]) << 8 |
         p[3];
}
inline void StoreBe16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline void StoreBe32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

}  // namespace netplane::core
