// libFuzzer harness: netplane as the driver of a hostile device. The input is a script: each
// byte picks an operation (add a chain of 1..4 buffers, writable or not, and publish it; the
// device pushes a used entry with the id and length of the next bytes; the device stores
// used.idx; the device overwrites descriptor-table bytes; the driver takes used entries),
// so ids out of range, double completions, lengths past the chain and a used index running
// ahead all come up, mixed with honest completions. One split ring of 16, event_idx on or
// off by the first byte.
// Invariants: nothing crashes or touches memory outside the ring (ASan/UBSan); GetUsed()
// returns only chains the driver added and has not returned, with a length within them; no
// descriptor is lost (free + in flight == ring size); once the driver refuses the ring it
// stays refused until Init().
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "fuzz_assert.h"
#include "virtio/guest_memory.h"
#include "virtio/split_ring.h"
#include "virtio/virtqueue_driver.h"

using namespace netplane::core;

namespace {
constexpr uint32_t kQ = 16;
constexpr uint64_t kBase = 0x1000, kDesc = kBase, kAvail = kBase + 0x100, kUsed = kBase + 0x200;

struct Cursor {
  const uint8_t* p;
  size_t n;
  uint8_t Byte() {
    if (!n) return 0;
    --n;
    return *p++;
  }
  uint32_t U32() {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = v << 8 | Byte();
    return v;
  }
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  alignas(64) static uint8_t mem[0x1000];
  std::memset(mem, 0, sizeof mem);
  auto gm = GuestMemory::Wrap({{kBase, mem, sizeof mem}});
  if (!gm.ok()) __builtin_trap();
  VirtqueueDriver drv;
  Cursor in{data, size};
  FUZZ_ASSERT(drv.Init(gm.value, kQ, kDesc, kAvail, kUsed, in.Byte() & 1).ok());
  // Per head: descriptors (0: not in flight) and bytes, as the harness believes them.
  uint32_t descs[kQ] = {}, bytes[kQ] = {};
  uint16_t used_idx = 0;
  bool refused = false;
  while (in.n) {
    const uint8_t op = in.Byte();
    switch (op % 5) {
      case 0: {
        VirtqueueDriver::Buffer b[4];
        const int n = 1 + (op >> 3) % 4;
        uint32_t total = 0;
        for (int i = 0; i < n; ++i) {
          b[i] = {kBase + 0x800 + 0x100u * i, in.Byte() + 1u, bool(op & 0x80)};
          total += b[i].len;
        }
        const int head = drv.AddBuffers(b, n);
        if (head >= 0) {
          FUZZ_ASSERT(head < int(kQ) && descs[head] == 0);
          descs[head] = uint32_t(n);
          bytes[head] = total;
        }
        drv.Publish();
        break;
      }
      case 1: {
        uint8_t* e = drv.used_ring() + kRingEntriesOff + 8u * (used_idx & (kQ - 1));
        const uint32_t id = op & 0x80 ? in.Byte() % kQ : in.U32();
        StoreRelaxed32(e, id);
        StoreRelaxed32(e + 4, op & 0x40 ? in.U32() : (id < kQ ? bytes[id] : 0));
        StoreRelease16(drv.used_ring() + kRingIdxOff, ++used_idx);
        break;
      }
      case 2:
        used_idx = static_cast<uint16_t>(in.Byte() | in.Byte() << 8);
        StoreRelease16(drv.used_ring() + kRingIdxOff, used_idx);
        break;
      case 3: {
        const uint8_t at = in.Byte();
        drv.desc_table()[at % (16 * kQ)] = in.Byte();
        break;
      }
      case 4: {
        uint32_t head, len;
        while (drv.GetUsed(&head, &len)) {
          FUZZ_ASSERT(!refused);
          FUZZ_ASSERT(head < kQ && descs[head] != 0 && len <= bytes[head]);
          descs[head] = 0;
        }
        if (drv.broken()) refused = true;
        FUZZ_ASSERT(refused == drv.broken());
        break;
      }
    }
    uint32_t in_flight = 0;
    for (uint32_t d : descs) in_flight += d;
    FUZZ_ASSERT(drv.free_descriptors() + in_flight == kQ);
  }
  return 0;
}
