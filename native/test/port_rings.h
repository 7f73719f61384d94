// Ring memory for a JsPort in the native tests, and the consumer side of a ring as
// JavaScript runs it (take every published record).
#pragma once

#include <cstring>
#include <vector>

#include "port/js_port.h"

namespace nptest {

using netplane::core::JsPortConfig;
using netplane::core::kRingHeaderBytes;
using netplane::core::kRingMinCapacity;
using netplane::core::kRingWrapMark;
using netplane::core::SpscRing;

struct Rings {
  static constexpr size_t kLen = kRingHeaderBytes + kRingMinCapacity;
  std::vector<uint64_t> rx = std::vector<uint64_t>(kLen / 8), tx = std::vector<uint64_t>(kLen / 8);
  JsPortConfig Config(bool drop = false, int hdr = 0) {
    JsPortConfig c;
    c.rx_mem = reinterpret_cast<uint8_t*>(rx.data());
    c.rx_len = kLen;
    c.tx_mem = reinterpret_cast<uint8_t*>(tx.data());
    c.tx_len = kLen;
    c.drop_when_full = drop;
    c.vnet_hdr_len = hdr;
    return c;
  }
  SpscRing Rx() {
    SpscRing r;
    SpscRing::Attach(reinterpret_cast<uint8_t*>(rx.data()), kLen, false, &r);
    return r;
  }
  SpscRing Tx() {
    SpscRing r;
    SpscRing::Attach(reinterpret_cast<uint8_t*>(tx.data()), kLen, false, &r);
    return r;
  }
};

// Walk the published records from the tail without consuming them: fn(offset of the
// record's bytes in data(), their length) per record; returns the position after the last.
template <class Fn>
uint32_t ForEachRecord(SpscRing r, Fn fn) {
  uint32_t t = r.tail().load(), h = r.head().load();
  while (t != h) {
    uint32_t off = t & (r.capacity() - 1), len;
    std::memcpy(&len, r.data() + off, 4);
    if (len == kRingWrapMark) {
      t += r.capacity() - off;
      continue;
    }
    fn(off + 8, len);
    t += static_cast<uint32_t>(SpscRing::RecordSize(len));
  }
  return t;
}

// Consumer side of a ring: take every published record (what a JS batch does).
inline std::vector<std::vector<uint8_t>> DrainRing(SpscRing r) {
  std::vector<std::vector<uint8_t>> out;
  r.wake().store(0);
  uint32_t t =
      ForEachRecord(r, [&](uint32_t off, uint32_t len) { out.emplace_back(r.data() + off, r.data() + off + len); });
  r.tail().store(t);
  return out;
}

}  // namespace nptest
