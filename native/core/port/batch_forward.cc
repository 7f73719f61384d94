#include "port/batch_forward.h"

#include <sys/uio.h>

#include <cstring>

#include "net/net_client.h"
#include "port/js_port.h"

namespace netplane::core {

namespace {

constexpr size_t kMaxEthFrame = 65535;  // what a tx ring record may carry (JsPort::DrainTx)

// Whether frame i of the batch lies inside one of the batch's records, fits it, and carries a
// valid vnet header.
BatchStop CheckFrame(const BatchView& b, uint32_t i, size_t hdr_len, VnetError* why) {
  const uint32_t cap = b.ring->capacity();
  const uint32_t off = b.offsets[i];
  const uint32_t len = b.lengths[i];
  // A frame starts 8 bytes into an 8-aligned record that does not cross the ring's end.
  if ((off & 7) != 0 || off < 8 || off >= cap) return BatchStop::kBadOffset;
  const uint32_t rel = (off - 8 - b.pos) & (cap - 1);  // the record's distance from the batch start
  uint32_t rec_len;
  std::memcpy(&rec_len, b.ring->data() + off - 8, 4);
  if (rel >= b.bytes || rec_len == kRingWrapMark) return BatchStop::kBadOffset;
  if (len < hdr_len + kMinEthFrame || len - hdr_len > kMaxEthFrame || len > rec_len) return BatchStop::kBadLength;
  // Bounded by the batch and the ring whatever JavaScript wrote into the record header.
  if (static_cast<uint64_t>(rel) + 8 + len > b.bytes || static_cast<uint64_t>(off) + len > cap)
    return BatchStop::kBadLength;
  if (hdr_len > 0) {
    const uint8_t* p = b.ring->data() + off;
    *why = ValidateVnetHdr(ParseVnetHdr(p, hdr_len), p + hdr_len, len - hdr_len);
    if (*why != VnetError::kOk) return BatchStop::kBadVnetHdr;
  }
  return BatchStop::kDone;
}

}  // namespace

BatchForwardResult ForwardBatch(const BatchView& b, uint32_t from, uint32_t count, JsPort* const* outputs,
                                uint32_t n_outputs, size_t hdr_len) {
  BatchForwardResult r;
  r.next = from;
  for (uint32_t i = from; i < count; ++i) {
    const uint32_t t = b.targets[i];
    if (t == kBatchDrop) continue;
    BatchStop bad = t < n_outputs ? CheckFrame(b, i, hdr_len, &r.why) : BatchStop::kBadTarget;
    if (bad != BatchStop::kDone) {
      r.stop = bad;
      r.at = i;
      return r;
    }
  }
  bool touched[kBatchMaxOutputs] = {};
  uint32_t i = from;
  for (; i < count; ++i) {
    const uint32_t t = b.targets[i];
    if (t == kBatchDrop) {
      ++r.dropped;
      continue;
    }
    SpscRing& tx = outputs[t]->tx_ring();
    iovec iov{const_cast<uint8_t*>(b.ring->data() + b.offsets[i]), b.lengths[i]};
    if (!tx.Push(&iov, 1, iov.iov_len, 0)) {
      // Ask the engine to say when it frees room, then look once more: it may have drained
      // the ring between the failed push and the flag.
      tx.blocked().store(1, std::memory_order_seq_cst);
      if (!tx.Push(&iov, 1, iov.iov_len, 0)) {
        r.stop = BatchStop::kOutputFull;
        r.at = t;
        break;
      }
    }
    touched[t] = true;
  }
  r.next = i;
  for (uint32_t k = 0; k < n_outputs; ++k)
    if (touched[k]) outputs[k]->NotifyTxPublished();
  return r;
}

}  // namespace netplane::core
