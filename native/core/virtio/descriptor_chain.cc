#include "virtio/descriptor_chain.h"

#include <cstring>

#include "virtio/split_ring.h"

namespace netplane::core {

const char* VirtqErrorName(VirtqError e) {
  switch (e) {
    case VirtqError::kOk:
      return "ok";
    case VirtqError::kAvailIdxJump:
      return "avail index moved by more than the ring size";
    case VirtqError::kHeadOutOfRange:
      return "head index out of range";
    case VirtqError::kNextOutOfRange:
      return "next index out of range";
    case VirtqError::kChainTooLong:
      return "descriptor chain longer than its table (loop)";
    case VirtqError::kNestedIndirect:
      return "indirect descriptor inside an indirect table";
    case VirtqError::kIndirectWithNext:
      return "indirect descriptor with NEXT set";
    case VirtqError::kIndirectBadLen:
      return "indirect table length invalid";
    case VirtqError::kIndirectBadAddress:
      return "indirect table outside guest memory";
    case VirtqError::kZeroLength:
      return "zero-length buffer";
    case VirtqError::kBadAddress:
      return "buffer outside guest memory";
    case VirtqError::kTooManyPieces:
      return "buffer needs too many pieces";
    case VirtqError::kChainTooBig:
      return "descriptor chain of 4 GiB or more";
    case VirtqError::kReadableAfterWritable:
      return "device-readable descriptor after a writable one";
    case VirtqError::kWritableInTx:
      return "device-writable descriptor in a tx chain";
    case VirtqError::kReadableInRx:
      return "device-readable descriptor in an rx chain";
    case VirtqError::kTooManyInFlight:
      return "more chains in flight than the ring holds";
    case VirtqError::kRxBufferTooSmall:
      return "rx buffer smaller than the virtio-net header";
    case VirtqError::kKickFd:
      return "kick fd failed";
  }
  return "unknown";
}

namespace {

constexpr int kMaxIndirectPieces = 8;

// An indirect table as guest memory pieces; entry i is gathered from them byte-wise (the
// table may straddle regions and need not be aligned).
struct IndirectTable {
  iovec pieces[kMaxIndirectPieces];
  int n = 0;

  VringDesc Entry(uint32_t i) const {
    uint8_t raw[16];
    uint64_t off = 16ull * i;
    size_t got = 0;
    for (int k = 0; k < n && got < 16; ++k) {
      if (off >= pieces[k].iov_len) {
        off -= pieces[k].iov_len;
        continue;
      }
      size_t take = pieces[k].iov_len - off;
      if (take > 16 - got) take = 16 - got;
      std::memcpy(raw + got, static_cast<uint8_t*>(pieces[k].iov_base) + off, take);
      got += take;
      off = 0;
    }
    return DecodeDesc(raw);
  }
};

}  // namespace

VirtqError WalkChain(const GuestMemory& mem, const uint8_t* table, uint32_t size, uint16_t head, iovec* iov,
                     int max_iov, DescChain* out) {
  *out = DescChain{};
  out->head = head;
  if (head >= size) return VirtqError::kHeadOutOfRange;
  IndirectTable ind;
  bool in_indirect = false;
  uint32_t table_size = size;
  uint32_t visited = 0;  // in the current table
  uint32_t idx = head;
  int n = 0;
  for (;;) {
    if (idx >= table_size) return VirtqError::kNextOutOfRange;
    if (++visited > table_size) return VirtqError::kChainTooLong;
    ++out->descriptors;
    const VringDesc d = in_indirect ? ind.Entry(idx) : LoadDesc(table + 16ull * idx);
    if (d.flags & kVringDescFIndirect) {
      if (in_indirect) return VirtqError::kNestedIndirect;
      if (d.flags & kVringDescFNext) return VirtqError::kIndirectWithNext;
      if (d.len == 0 || d.len % 16 != 0 || d.len / 16 > kMaxQueueSize) return VirtqError::kIndirectBadLen;
      int k = mem.Translate(AddrSpace::kGuest, d.addr, d.len, ind.pieces, kMaxIndirectPieces);
      if (k <= 0) return VirtqError::kIndirectBadAddress;
      ind.n = k;
      in_indirect = true;
      table_size = d.len / 16;
      visited = 0;
      idx = 0;
      continue;
    }
    if (d.len == 0) return VirtqError::kZeroLength;
    const bool writable = d.flags & kVringDescFWrite;
    if (!writable && out->n_writable > 0) return VirtqError::kReadableAfterWritable;
    uint64_t& bytes = writable ? out->writable_bytes : out->readable_bytes;
    bytes += d.len;
    if (out->readable_bytes + out->writable_bytes >= (1ull << 32)) return VirtqError::kChainTooBig;
    int k = mem.Translate(AddrSpace::kGuest, d.addr, d.len, iov + n, max_iov - n);
    if (k == GuestMemory::kNoRoom) return VirtqError::kTooManyPieces;
    if (k < 0) return VirtqError::kBadAddress;
    n += k;
    (writable ? out->n_writable : out->n_readable) += k;
    if (!(d.flags & kVringDescFNext)) return VirtqError::kOk;
    idx = d.next;
  }
}

}  // namespace netplane::core
