// VirtqueueDriver against a hostile device: the test owns the shared ring and scribbles the
// descriptor table and the used ring between operations (targeted: ids out of range, double
// completion, a length past the chain, used.idx running ahead; random: a seeded generator).
// The driver must refuse what breaks the ring (error(), no crash, no out-of-bounds access
// under ASan/UBSan) and never lose a descriptor: free + in flight == ring size, always.
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include "test.h"
#include "virtio/guest_memory.h"
#include "virtio/split_ring.h"
#include "virtio/virtqueue_driver.h"

using namespace netplane::core;

namespace {

constexpr uint32_t kRingSize = 16;
constexpr uint64_t kDesc = 0x1000, kAvail = 0x2000, kUsed = 0x3000, kBufs = 0x8000;

// The driver, its memory and a model of the chains the test believes are in flight.
struct HostileRig {
  std::vector<uint64_t> backing = std::vector<uint64_t>(0x10000 / 8);
  std::shared_ptr<GuestMemory> mem;
  VirtqueueDriver drv;
  std::map<uint32_t, std::pair<uint32_t, uint32_t>> chains;  // head -> (descriptors, bytes)
  uint16_t used_idx = 0;

  HostileRig() {
    mem = GuestMemory::Wrap({{0x1000, reinterpret_cast<uint8_t*>(backing.data()), 0x10000}}).value;
    REQUIRE(drv.Init(mem, kRingSize, kDesc, kAvail, kUsed, false).ok());
  }
  int Add(int n, uint32_t len = 100, bool writable = true) {
    std::vector<VirtqueueDriver::Buffer> b(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) b[size_t(i)] = {kBufs + 0x100ull * i, len, writable};
    int head = drv.AddBuffers(b.data(), n);
    if (head >= 0) chains[uint32_t(head)] = {uint32_t(n), uint32_t(n) * len};
    return head;
  }
  // The device pushes one used entry (published at once).
  void Complete(uint32_t id, uint32_t len) {
    uint8_t* e = drv.used_ring() + kRingEntriesOff + 8u * (used_idx & (kRingSize - 1));
    StoreRelaxed32(e, id);
    StoreRelaxed32(e + 4, len);
    StoreRelease16(drv.used_ring() + kRingIdxOff, ++used_idx);
  }
  void ScribbleDescTable(std::mt19937& rng) {
    for (uint32_t i = 0; i < 16 * kRingSize; ++i) drv.desc_table()[i] = static_cast<uint8_t>(rng());
  }
  uint32_t InFlightDescs() const {
    uint32_t n = 0;
    for (const auto& c : chains) n += c.second.first;
    return n;
  }
  // Take every used entry; each must be a chain the model has in flight.
  void Reap() {
    uint32_t head, len;
    while (drv.GetUsed(&head, &len)) {
      auto it = chains.find(head);
      REQUIRE(it != chains.end());
      CHECK(len <= it->second.second);
      chains.erase(it);
    }
  }
  void CheckNoLeak() const { CHECK_EQ(drv.free_descriptors() + InFlightDescs(), kRingSize); }
};

bool Contains(const std::string& s, const char* needle) { return s.find(needle) != std::string::npos; }

}  // namespace

TEST(VirtqueueDriverHardening, ARewrittenDescriptorTableDoesNotReachTheFreeList) {
  HostileRig r;
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    // Cycles, out-of-range links, garbage: nothing the driver keeps is in there.
    if (round % 3 == 0) {
      for (uint32_t i = 0; i < kRingSize; ++i) {
        VringDesc d{0, 0, kVringDescFNext, static_cast<uint16_t>(round % 2 ? i : 0xffff)};
        StoreDesc(r.drv.desc_table() + 16ull * i, d);
      }
    } else {
      r.ScribbleDescTable(rng);
    }
    const int n = 1 + int(rng() % 3);
    uint16_t expect[3];
    const bool room = r.drv.PeekFree(uint32_t(n), expect);
    int head = r.Add(n);
    CHECK_EQ(head >= 0, room);
    if (head >= 0) {
      // What the driver wrote is the whole chain, linked in PeekFree's order.
      CHECK_EQ(head, expect[0]);
      for (int i = 0; i < n; ++i) {
        VringDesc d = LoadDesc(r.drv.desc_table() + 16ull * expect[i]);
        CHECK_EQ(d.addr, kBufs + 0x100ull * i);
        CHECK_EQ(d.len, 100u);
        CHECK_EQ(bool(d.flags & kVringDescFNext), i + 1 < n);
        if (i + 1 < n) CHECK_EQ(d.next, expect[i + 1]);
      }
    }
    r.drv.Publish();
    r.ScribbleDescTable(rng);
    // The device completes some chains in flight, in any order.
    if (!r.chains.empty() && (rng() % 2 || head < 0)) {
      auto it = r.chains.begin();
      std::advance(it, rng() % r.chains.size());
      r.Complete(it->first, it->second.second);
    }
    r.Reap();
    CHECK(!r.drv.broken());
    r.CheckNoLeak();
  }
}

TEST(VirtqueueDriverHardening, UsedIdsOutOfRangeOrNotInFlightAreRefused) {
  for (uint32_t bad : {kRingSize, kRingSize + 5, 0xffffffffu, 3u /* a descriptor inside a chain */}) {
    HostileRig r;
    REQUIRE(r.Add(3) == 0);  // descriptors 0, 1, 2
    REQUIRE(r.Add(2) == 3);  // 3, 4
    r.drv.Publish();
    // 3 is a head here; complete it first so that the second entry names a freed head.
    if (bad == 3u) {
      r.Complete(3, 0);
      r.Reap();
      CHECK(!r.drv.broken());
    }
    r.Complete(bad, 0);
    uint32_t head, len;
    CHECK(!r.drv.GetUsed(&head, &len));
    CHECK(r.drv.broken());
    CHECK(Contains(r.drv.error(), "is not a chain in flight"));
    // Latched: later entries, good or not, are not taken; nothing was freed.
    r.Complete(0, 0);
    CHECK(!r.drv.GetUsed(&head, &len));
    r.CheckNoLeak();
    // A new layout clears it.
    REQUIRE(r.drv.Init(r.mem, kRingSize, kDesc, kAvail, kUsed, false).ok());
    CHECK(!r.drv.broken());
    CHECK_EQ(r.drv.free_descriptors(), kRingSize);
  }
}

TEST(VirtqueueDriverHardening, ADoubleCompletionIsRefused) {
  HostileRig r;
  REQUIRE(r.Add(2) == 0);
  REQUIRE(r.Add(1) == 2);
  r.drv.Publish();
  r.Complete(0, 10);
  r.Complete(0, 10);  // used.idx 2 with 2 chains published: the index check passes, the id does not
  uint32_t head, len;
  REQUIRE(r.drv.GetUsed(&head, &len));
  CHECK_EQ(head, 0u);
  r.chains.erase(0);
  CHECK(!r.drv.GetUsed(&head, &len));
  CHECK(Contains(r.drv.error(), "used id 0 is not a chain in flight"));
  r.CheckNoLeak();
  CHECK_EQ(r.drv.free_descriptors(), kRingSize - 1);
}

TEST(VirtqueueDriverHardening, ALengthPastTheChainIsRefused) {
  HostileRig r;
  REQUIRE(r.Add(2, 100) == 0);  // 200 bytes
  r.drv.Publish();
  r.Complete(0, 201);
  uint32_t head, len;
  CHECK(!r.drv.GetUsed(&head, &len));
  CHECK(Contains(r.drv.error(), "used length 201 is larger than chain 0's 200 bytes"));
  r.CheckNoLeak();
  // Exactly the chain's bytes is fine.
  HostileRig ok;
  REQUIRE(ok.Add(2, 100) == 0);
  ok.drv.Publish();
  ok.Complete(0, 200);
  ok.Reap();
  CHECK(!ok.drv.broken());
  CHECK_EQ(ok.drv.free_descriptors(), kRingSize);
}

TEST(VirtqueueDriverHardening, AUsedIndexRunningAheadIsRefused) {
  // used.idx minus the entries taken: one more than in flight, more than the ring, "-1".
  for (uint16_t jump : {uint16_t{3}, uint16_t{kRingSize + 1}, uint16_t{0xffff}}) {
    HostileRig r;
    REQUIRE(r.Add(1) == 0);
    REQUIRE(r.Add(1) == 1);
    REQUIRE(r.Add(1) == 2);
    r.drv.Publish();
    (void)r.Add(1);  // added, not published: the device cannot have used it
    r.Complete(0, 0);
    uint32_t head, len;
    REQUIRE(r.drv.GetUsed(&head, &len));
    r.chains.erase(head);
    // Two chains published and not used: idx may move by 2 at most.
    StoreRelease16(r.drv.used_ring() + kRingIdxOff, static_cast<uint16_t>(1 + jump));
    CHECK(!r.drv.GetUsed(&head, &len));
    CHECK(Contains(r.drv.error(), "chains are in flight"));
    r.CheckNoLeak();
  }
}

TEST(VirtqueueDriverHardening, ARandomHostileDeviceNeitherCrashesNorLeaks) {
  std::mt19937 rng(20261202);
  int refused = 0;
  for (int run = 0; run < 300; ++run) {
    HostileRig r;
    for (int step = 0; step < 60 && !r.drv.broken(); ++step) {
      switch (rng() % 6) {
        case 0:
        case 1:
          (void)r.Add(1 + int(rng() % 4), 1 + rng() % 512, rng() % 2);
          r.drv.Publish();
          break;
        case 2:
          r.ScribbleDescTable(rng);
          break;
        case 3: {  // an honest completion, when there is one
          if (r.chains.empty()) break;
          auto it = r.chains.begin();
          std::advance(it, rng() % r.chains.size());
          r.Complete(it->first, rng() % (it->second.second + 1));
          break;
        }
        case 4:  // a random used entry
          r.Complete(rng() % (2 * kRingSize), rng() % 2048);
          break;
        case 5:  // random bytes over the used ring (idx included)
          for (uint32_t i = 0; i < VringUsedBytes(kRingSize); ++i)
            if (rng() % 4 == 0) r.drv.used_ring()[i] = static_cast<uint8_t>(rng());
          r.used_idx = LoadAcquire16(r.drv.used_ring() + kRingIdxOff);
          break;
      }
      r.Reap();
      r.CheckNoLeak();
    }
    refused += r.drv.broken();
  }
  CHECK(refused > 0);  // the generator does reach the refusals
}
