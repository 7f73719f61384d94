// The packed virtqueue layout (virtio 1.1 section 2.8), as both the device side
// (packed_virtqueue.h) and the driver side (packed_virtqueue_driver.h) see it. Little-endian,
// read as native integers (split_ring.h checks the host).
//
//   descriptor ring   N x { addr le64, len le32, id le16, flags le16 }    16N bytes, align 16
//   driver event      { off_wrap le16, flags le16 }  written by the driver: when the device
//                     interrupts                                        4 bytes, align 4
//   device event      { off_wrap le16, flags le16 }  written by the device: when the driver
//                     kicks                                             4 bytes, align 4
//
// N is 1..32768, not necessarily a power of two. Both sides keep a position (0..N-1) and a
// wrap counter (starts at 1, flips each time the position passes N - 1). A descriptor is
// available when its AVAIL bit equals the driver's wrap counter and its USED bit does not;
// the device completes a buffer by writing one descriptor {id, len, flags} with both bits
// equal to its own wrap counter, at its used position, then skips as many positions as the
// buffer took in the ring (an indirect buffer takes one). The flags word is what publishes a
// descriptor: written last with release, read first with acquire.
//
// In vhost-user (SET_VRING_ADDR) the three addresses are desc = descriptor ring, avail =
// driver event area, used = device event area; SET_VRING_BASE / GET_VRING_BASE carry the
// position in bits 0-14 and the wrap counter in bit 15 (GET_VRING_BASE adds the used
// position and wrap counter in the upper 16 bits, as QEMU sends and reads them).
#pragma once

#include <cstddef>
#include <cstdint>

#include "virtio/split_ring.h"

namespace netplane::core {

enum PackedDescFlags : uint16_t {
  kPackedDescFAvail = 1u << 7,
  kPackedDescFUsed = 1u << 15,
};

// The event suppression flags (either area).
enum PackedEventFlags : uint16_t {
  kPackedEventEnable = 0,   // notify on every buffer
  kPackedEventDisable = 1,  // never notify
  kPackedEventDesc = 2,     // notify when the position in off_wrap is reached (EVENT_IDX)
};

struct PackedDesc {
  uint64_t addr;
  uint32_t len;
  uint16_t id;
  uint16_t flags;
};

constexpr size_t kPackedDescFlagsOff = 14;
constexpr size_t kPackedEventOffWrapOff = 0;
constexpr size_t kPackedEventFlagsOff = 2;
constexpr uint64_t kPackedEventBytes = 4;

inline constexpr uint64_t PackedDescBytes(uint32_t n) { return 16ull * n; }
inline bool IsValidPackedQueueSize(uint32_t n) { return n >= 1 && n <= kMaxQueueSize; }

// A position and wrap counter as one u16 (bit 15 the wrap counter), the vhost-user form.
inline constexpr uint16_t PackedPosWrap(uint16_t pos, bool wrap) {
  return static_cast<uint16_t>(pos | (wrap ? 0x8000u : 0u));
}

// A descriptor is available to the device that expects wrap counter `wrap`.
inline bool PackedDescAvail(uint16_t flags, bool wrap) {
  return ((flags & kPackedDescFAvail) != 0) == wrap && ((flags & kPackedDescFUsed) != 0) != wrap;
}
// A descriptor is used (completed) as seen by the driver whose used wrap counter is `wrap`.
inline bool PackedDescUsed(uint16_t flags, bool wrap) {
  return ((flags & kPackedDescFAvail) != 0) == wrap && ((flags & kPackedDescFUsed) != 0) == wrap;
}

// The EVENT_IDX rule over positions: the other side asked (off_wrap) to be told once the
// descriptor at that position (of that lap) is passed. `now` and `old` are a free-running u16
// count of positions passed, now and at the last check; cur_pos / cur_wrap is where `now`
// stands in the ring. The event is turned into that count (a different lap is taken as the
// previous one), so a whole ring's worth between two checks still signals.
inline bool PackedNeedEvent(uint16_t off_wrap, uint32_t size, uint16_t cur_pos, bool cur_wrap, uint16_t now,
                            uint16_t old) {
  uint16_t event = static_cast<uint16_t>(now - cur_pos + (off_wrap & 0x7fff));
  if (((off_wrap >> 15) != 0) != cur_wrap) event = static_cast<uint16_t>(event - size);
  return VringNeedEvent(event, now, old);
}

// The same 16 bytes as a split descriptor, with bytes 12-13 the id and 14-15 the flags: read
// and written through split_ring.h's single-load / byte-wise helpers.
inline PackedDesc FromSplitLayout(const VringDesc& v) { return PackedDesc{v.addr, v.len, v.flags, v.next}; }
inline VringDesc ToSplitLayout(const PackedDesc& d) { return VringDesc{d.addr, d.len, d.id, d.flags}; }
inline PackedDesc LoadPackedDesc(const uint8_t* p) { return FromSplitLayout(LoadDesc(p)); }
inline PackedDesc DecodePackedDesc(const uint8_t raw[16]) { return FromSplitLayout(DecodeDesc(raw)); }
inline void EncodePackedDesc(const PackedDesc& d, uint8_t raw[16]) { EncodeDesc(ToSplitLayout(d), raw); }

// addr, len, id relaxed; flags last with release (what makes the descriptor the other side's).
inline void PublishPackedDesc(uint8_t* p, const PackedDesc& d) {
  __atomic_store_n(reinterpret_cast<uint64_t*>(p), d.addr, __ATOMIC_RELAXED);
  StoreRelaxed32(p + 8, d.len);
  StoreRelaxed16(p + 12, d.id);
  StoreRelease16(p + kPackedDescFlagsOff, d.flags);
}

// One ring's three parts as host pointers (MapPackedRing in packed_virtqueue.h).
struct PackedRingView {
  uint8_t* desc = nullptr;
  uint8_t* driver_event = nullptr;
  uint8_t* device_event = nullptr;
  uint32_t size = 0;
};

}  // namespace netplane::core
