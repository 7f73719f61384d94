// The split virtqueue layout (virtio 1.x section 2.7), as both the device side (virtqueue.h)
// and the driver side (virtqueue_driver.h) see it. All fields are little-endian; netplane
// runs on little-endian hosts only (checked below), so they are read as native integers.
//
//   descriptor table  N x { addr le64, len le32, flags le16, next le16 }        16N bytes, align 16
//   avail ring        flags le16, idx le16, ring[N] le16, used_event le16       6+2N bytes, align 2
//   used ring         flags le16, idx le16, ring[N] {id le32, len le32},
//                     avail_event le16                                          6+8N bytes, align 4
//
// N is a power of two, 1..32768. idx fields are free-running u16 counters; slot = idx % N.
// The index fields and the event words are shared with the other side while it runs: read
// and write them with the atomics below (acquire for avail.idx / used.idx, release when
// publishing), never as plain loads a compiler may repeat.
#pragma once

#include <cstddef>
#include <cstdint>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "virtio rings are little-endian; so must the host be");

namespace netplane::core {

// Descriptor flags; the ring flags (used.flags NO_NOTIFY: device -> driver, do not kick;
// avail.flags NO_INTERRUPT: driver -> device, do not interrupt).
enum VringFlags : uint16_t {
  kVringDescFNext = 1,
  kVringDescFWrite = 2,
  kVringDescFIndirect = 4,
  kVringUsedFNoNotify = 1,
  kVringAvailFNoInterrupt = 1,
};

constexpr uint32_t kMaxQueueSize = 32768;

// Virtio feature bits (numbers) the ring engine cares about.
enum VirtioFeatureBit : int {
  kVirtioFRingIndirectDesc = 28,
  kVirtioFRingEventIdx = 29,
  kVirtioFVersion1 = 32,
  kVirtioFRingPacked = 34,
};

struct VringDesc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(VringDesc) == 16, "descriptor layout");

struct VringUsedElem {
  uint32_t id;
  uint32_t len;
};
static_assert(sizeof(VringUsedElem) == 8, "used element layout");

inline constexpr uint64_t VringDescBytes(uint32_t n) { return 16ull * n; }
// With the trailing used_event / avail_event word (present whether or not EVENT_IDX is
// negotiated: the whole extent must be guest memory).
inline constexpr uint64_t VringAvailBytes(uint32_t n) { return 6ull + 2ull * n; }
inline constexpr uint64_t VringUsedBytes(uint32_t n) { return 6ull + 8ull * n; }

inline bool IsValidQueueSize(uint32_t n) { return n >= 1 && n <= kMaxQueueSize && (n & (n - 1)) == 0; }

// The EVENT_IDX rule, both directions: after moving an index from old to new_idx, notify the
// other side iff it asked to be told when the index passes `event`.
inline bool VringNeedEvent(uint16_t event, uint16_t new_idx, uint16_t old) {
  return static_cast<uint16_t>(new_idx - event - 1) < static_cast<uint16_t>(new_idx - old);
}

// A descriptor as its 16 bytes (indirect tables are copied byte-wise: they need not be
// aligned and may straddle regions).
inline void EncodeDesc(const VringDesc& d, uint8_t raw[16]) {
  __builtin_memcpy(raw, &d.addr, 8);
  __builtin_memcpy(raw + 8, &d.len, 4);
  __builtin_memcpy(raw + 12, &d.flags, 2);
  __builtin_memcpy(raw + 14, &d.next, 2);
}
inline VringDesc DecodeDesc(const uint8_t raw[16]) {
  VringDesc d;
  __builtin_memcpy(&d.addr, raw, 8);
  __builtin_memcpy(&d.len, raw + 8, 4);
  __builtin_memcpy(&d.flags, raw + 12, 2);
  __builtin_memcpy(&d.next, raw + 14, 2);
  return d;
}

// Shared-memory word access (the other side may write concurrently).
inline uint16_t LoadAcquire16(const uint8_t* p) {
  return __atomic_load_n(reinterpret_cast<const uint16_t*>(p), __ATOMIC_ACQUIRE);
}
inline uint16_t LoadRelaxed16(const uint8_t* p) {
  return __atomic_load_n(reinterpret_cast<const uint16_t*>(p), __ATOMIC_RELAXED);
}
inline void StoreRelease16(uint8_t* p, uint16_t v) {
  __atomic_store_n(reinterpret_cast<uint16_t*>(p), v, __ATOMIC_RELEASE);
}
inline void StoreRelaxed16(uint8_t* p, uint16_t v) {
  __atomic_store_n(reinterpret_cast<uint16_t*>(p), v, __ATOMIC_RELAXED);
}
inline void StoreRelaxed32(uint8_t* p, uint32_t v) {
  __atomic_store_n(reinterpret_cast<uint32_t*>(p), v, __ATOMIC_RELAXED);
}
inline uint32_t LoadRelaxed32(const uint8_t* p) {
  return __atomic_load_n(reinterpret_cast<const uint32_t*>(p), __ATOMIC_RELAXED);
}
// A descriptor, read once into a local copy (a guest may rewrite it meanwhile: whatever we
// act on is what we read here). Two relaxed 64-bit loads: no torn field, no second fetch.
inline VringDesc LoadDesc(const uint8_t* p) {
  uint64_t a = __atomic_load_n(reinterpret_cast<const uint64_t*>(p), __ATOMIC_RELAXED);
  uint64_t b = __atomic_load_n(reinterpret_cast<const uint64_t*>(p + 8), __ATOMIC_RELAXED);
  VringDesc d;
  d.addr = a;
  d.len = static_cast<uint32_t>(b);
  d.flags = static_cast<uint16_t>(b >> 32);
  d.next = static_cast<uint16_t>(b >> 48);
  return d;
}
inline void StoreDesc(uint8_t* p, const VringDesc& d) {
  uint64_t b =
      static_cast<uint64_t>(d.len) | static_cast<uint64_t>(d.flags) << 32 | static_cast<uint64_t>(d.next) << 48;
  __atomic_store_n(reinterpret_cast<uint64_t*>(p), d.addr, __ATOMIC_RELAXED);
  __atomic_store_n(reinterpret_cast<uint64_t*>(p + 8), b, __ATOMIC_RELAXED);
}

// One ring's three parts as host pointers (see MapSplitRing in virtqueue.h).
struct SplitRingView {
  uint8_t* desc = nullptr;
  uint8_t* avail = nullptr;
  uint8_t* used = nullptr;
  uint32_t size = 0;
};

// Offsets inside the avail / used rings.
constexpr size_t kRingFlagsOff = 0;
constexpr size_t kRingIdxOff = 2;
constexpr size_t kRingEntriesOff = 4;
inline constexpr size_t AvailEventWordOff(uint32_t n) { return 4 + 2ull * n; }  // used_event
inline constexpr size_t UsedEventWordOff(uint32_t n) { return 4 + 8ull * n; }   // avail_event

}  // namespace netplane::core
