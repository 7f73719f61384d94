// The ring engine on its own: GuestMemory tables and translation, descriptor chains with
// every hostile shape of the reference note's section 3.2 items 23-27, and Virtqueue's
// index, notification and layout rules, driven from a driver-side ring in heap memory
// (borrowed regions) or a memfd (mapped regions).
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>

#include "fd_count.h"
#include "io/memfd.h"
#include "test.h"
#include "virtio/descriptor_chain.h"
#include "virtio/guest_memory.h"
#include "virtio/split_ring.h"
#include "virtio/virtqueue.h"
#include "virtio/virtqueue_driver.h"

using namespace netplane::core;

namespace {

// Two heap regions: guest-physical [0x1000, 0x11000) and [0x11000, 0x21000) (adjacent, so a
// buffer may cross), plus a hole up to a third at [0x40000, 0x50000).
struct HeapGuest {
  static constexpr uint64_t kLen = 0x10000;
  std::vector<uint64_t> a = std::vector<uint64_t>(kLen / 8), b = std::vector<uint64_t>(kLen / 8),
                        c = std::vector<uint64_t>(kLen / 8);
  std::shared_ptr<GuestMemory> mem;
  HeapGuest() {
    mem = GuestMemory::Wrap({{0x1000, reinterpret_cast<uint8_t*>(a.data()), kLen},
                             {0x11000, reinterpret_cast<uint8_t*>(b.data()), kLen},
                             {0x40000, reinterpret_cast<uint8_t*>(c.data()), kLen}})
              .value;
  }
  uint8_t* Host(uint64_t gpa) { return mem->TranslateContiguous(AddrSpace::kGuest, gpa, 1); }
  void Desc(uint64_t table, uint32_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    uint8_t raw[16];
    EncodeDesc(VringDesc{addr, len, flags, next}, raw);
    iovec v[4];
    int n = mem->Translate(AddrSpace::kGuest, table + 16ull * i, 16, v, 4);
    size_t at = 0;
    for (int k = 0; k < n; ++k) {
      std::memcpy(v[k].iov_base, raw + at, v[k].iov_len);
      at += v[k].iov_len;
    }
  }
};

constexpr uint64_t kTable = 0x1000;  // ring descriptor table (16 entries)
constexpr uint32_t kSize = 16;

VirtqError Walk(HeapGuest& g, uint16_t head, DescChain* c = nullptr, int max_iov = 64) {
  iovec iov[64];
  DescChain local;
  return WalkChain(*g.mem, g.Host(kTable), kSize, head, iov, max_iov, c ? c : &local);
}

#define CHECK_VQ(expr, want)                                                                                       \
  do {                                                                                                             \
    VirtqError np_got = (expr);                                                                                    \
    if (np_got != (want))                                                                                          \
      nptest::Fail(__FILE__, __LINE__,                                                                             \
                   std::string("CHECK_VQ(" #expr "): ") + VirtqErrorName(np_got) + " != " + VirtqErrorName(want)); \
  } while (0)

int MapsMentioning(const std::string& what) {
  std::ifstream f("/proc/self/maps");
  std::string line;
  int n = 0;
  while (std::getline(f, line)) n += line.find(what) != std::string::npos;
  return n;
}

}  // namespace

// ---- GuestMemory -------------------------------------------------------------------------

TEST(GuestMemory, MapRejectsBadTables) {
  auto fd = MemfdCreate("np-test-gm", 1 << 20);
  REQUIRE(fd.ok());
  int f = fd.value.get();
  auto bad = [&](std::vector<GuestRegionSpec> t, const char* needle) {
    auto r = GuestMemory::Map(t);
    CHECK(!r.ok());
    CHECK(r.status.code == StatusCode::kInvalidInput);
    if (r.status.message.find(needle) == std::string::npos) {
      nptest::Fail(__FILE__, __LINE__, "message '" + r.status.message + "' lacks '" + needle + "'");
    }
  };
  bad({}, "no regions");
  bad({{0, 0, 0, f, 0}}, "size 0");
  bad({{~0ull - 10, 4096, 0, f, 0}}, "guest address");
  bad({{0, 4096, ~0ull - 10, f, 0}}, "user address");
  bad({{0, 4096, 0, f, ~0ull - 10}}, "file offset");
  bad({{0, 2 << 20, 0, f, 0}}, "past the end of its file");
  bad({{0, 8192, 0, f, 0}, {4096, 4096, 1 << 30, f, 0}}, "guest-physical");
  bad({{0, 8192, 0, f, 0}, {1 << 20, 4096, 4096, f, 0}}, "user address space");
  std::vector<GuestRegionSpec> many;
  for (uint64_t i = 0; i <= GuestMemory::kMaxRegions; ++i) many.push_back({i * 4096, 4096, i * 4096, f, 0});
  bad(many, "more than");
  int p[2];
  REQUIRE(pipe(p) == 0);
  bad({{0, 4096, 0, p[0], 0}}, "not a regular file");
  close(p[0]);
  close(p[1]);
}

TEST(GuestMemory, UnalignedOffsetsMapTheRightBytes) {
  auto fd = MemfdCreate("np-test-gm", 1 << 20);
  REQUIRE(fd.ok());
  uint8_t tag[4] = {1, 2, 3, 4};
  REQUIRE(pwrite(fd.value.get(), tag, 4, 4096 + 100) == 4);
  auto m = GuestMemory::Map({{0x10000, 8192, 0x7000000, fd.value.get(), 4096 + 100}});
  REQUIRE(m.ok());
  uint8_t* p = m.value->TranslateContiguous(AddrSpace::kGuest, 0x10000, 4);
  REQUIRE(p != nullptr);
  CHECK(std::memcmp(p, tag, 4) == 0);
  CHECK(m.value->TranslateContiguous(AddrSpace::kUser, 0x7000000, 4) == p);
}

TEST(GuestMemory, TranslateSplitsAtRegionEndsAndRefusesGaps) {
  HeapGuest g;
  iovec v[4];
  // Crossing from region 0 into region 1: two pieces.
  CHECK_EQ(g.mem->Translate(AddrSpace::kGuest, 0x11000 - 10, 30, v, 4), 2);
  CHECK_EQ(v[0].iov_len, size_t{10});
  CHECK_EQ(v[1].iov_len, size_t{20});
  CHECK(v[1].iov_base == g.b.data());
  // Ending one byte past region 1 (the hole follows): refused.
  CHECK_EQ(g.mem->Translate(AddrSpace::kGuest, 0x21000 - 10, 11, v, 4), GuestMemory::kOutside);
  CHECK_EQ(g.mem->Translate(AddrSpace::kGuest, 0x21000 - 10, 10, v, 4), 1);
  CHECK_EQ(g.mem->Translate(AddrSpace::kGuest, 0, 1, v, 4), GuestMemory::kOutside);        // addr 0: no region
  CHECK_EQ(g.mem->Translate(AddrSpace::kGuest, 0x30000, 1, v, 4), GuestMemory::kOutside);  // the hole
  CHECK_EQ(g.mem->Translate(AddrSpace::kGuest, ~0ull, 2, v, 4), GuestMemory::kOutside);    // wraps
  CHECK_EQ(g.mem->Translate(AddrSpace::kGuest, 0x11000 - 10, 30, v, 1), GuestMemory::kNoRoom);
  CHECK(g.mem->TranslateContiguous(AddrSpace::kGuest, 0x11000 - 10, 30) == nullptr);
  CHECK_EQ(g.mem->Translate(AddrSpace::kGuest, 0x5000, 0, v, 4), 0);
}

TEST(GuestMemory, MappingLivesUntilTheLastReferenceGoes) {
  auto fd = MemfdCreate("np-test-lifetime", 1 << 16);
  REQUIRE(fd.ok());
  int before = nptest::OpenFdCount();
  auto m = GuestMemory::Map({{0, 1 << 16, 0, fd.value.get(), 0}});
  REQUIRE(m.ok());
  CHECK_EQ(nptest::OpenFdCount(), before);  // no fd kept
  CHECK_EQ(MapsMentioning("np-test-lifetime"), 1);
  std::shared_ptr<const GuestMemory> queue_ref = m.value;
  m.value.reset();  // the owner closes; a "queue" still holds it
  CHECK_EQ(MapsMentioning("np-test-lifetime"), 1);
  queue_ref.reset();
  CHECK_EQ(MapsMentioning("np-test-lifetime"), 0);
}

// ---- descriptor chains ------------------------------------------------------------------

TEST(DescriptorChain, DirectAndIndirectChainsGather) {
  HeapGuest g;
  g.Desc(kTable, 0, 0x2000, 100, kVringDescFNext, 1);
  g.Desc(kTable, 1, 0x11000 - 50, 100, kVringDescFWrite, 0);  // crosses regions
  DescChain c;
  CHECK_VQ(Walk(g, 0, &c), VirtqError::kOk);
  CHECK_EQ(c.n_readable, 1);
  CHECK_EQ(c.n_writable, 2);
  CHECK_EQ(c.readable_bytes, uint64_t{100});
  CHECK_EQ(c.writable_bytes, uint64_t{100});
  // An indirect table that itself straddles the region boundary.
  uint64_t t = 0x11000 - 24;
  g.Desc(t, 0, 0x3000, 10, kVringDescFNext, 1);
  g.Desc(t, 1, 0x3100, 20, kVringDescFNext, 2);
  g.Desc(t, 2, 0x3200, 30, kVringDescFWrite, 0);
  g.Desc(kTable, 2, t, 48, kVringDescFIndirect, 0);
  CHECK_VQ(Walk(g, 2, &c), VirtqError::kOk);
  CHECK_EQ(c.n_readable, 2);
  CHECK_EQ(c.readable_bytes, uint64_t{30});
  CHECK_EQ(c.writable_bytes, uint64_t{30});
  CHECK_EQ(c.descriptors, uint32_t{4});
}

TEST(DescriptorChain, HostileShapesAreErrors) {
  HeapGuest g;
  // Loops: A -> B -> A, and a self-loop.
  g.Desc(kTable, 0, 0x2000, 10, kVringDescFNext, 1);
  g.Desc(kTable, 1, 0x2000, 10, kVringDescFNext, 0);
  CHECK_VQ(Walk(g, 0), VirtqError::kChainTooLong);
  g.Desc(kTable, 3, 0x2000, 10, kVringDescFNext, 3);
  CHECK_VQ(Walk(g, 3), VirtqError::kChainTooLong);
  // next >= size, head >= size.
  g.Desc(kTable, 4, 0x2000, 10, kVringDescFNext, kSize);
  CHECK_VQ(Walk(g, 4), VirtqError::kNextOutOfRange);
  CHECK_VQ(Walk(g, kSize), VirtqError::kHeadOutOfRange);
  // Zero length (with a garbage address): never dereferenced.
  g.Desc(kTable, 5, 0xdead0000, 0, 0, 0);
  CHECK_VQ(Walk(g, 5), VirtqError::kZeroLength);
  // Outside every region, in the hole, address 0, wrapping, one byte past a region.
  g.Desc(kTable, 6, 0x30000, 10, 0, 0);
  CHECK_VQ(Walk(g, 6), VirtqError::kBadAddress);
  g.Desc(kTable, 6, 0, 10, 0, 0);
  CHECK_VQ(Walk(g, 6), VirtqError::kBadAddress);
  g.Desc(kTable, 6, ~0ull - 4, 10, 0, 0);
  CHECK_VQ(Walk(g, 6), VirtqError::kBadAddress);
  g.Desc(kTable, 6, 0x21000 - 10, 11, 0, 0);
  CHECK_VQ(Walk(g, 6), VirtqError::kBadAddress);
  // Readable after writable.
  g.Desc(kTable, 7, 0x2000, 10, kVringDescFWrite | kVringDescFNext, 8);
  g.Desc(kTable, 8, 0x2000, 10, 0, 0);
  CHECK_VQ(Walk(g, 7), VirtqError::kReadableAfterWritable);
  // Indirect: + NEXT, bad lengths, outside, nested, next leaving the table.
  uint64_t t = 0x4000;
  g.Desc(kTable, 9, t, 32, kVringDescFIndirect | kVringDescFNext, 0);
  CHECK_VQ(Walk(g, 9), VirtqError::kIndirectWithNext);
  for (uint32_t len : {0u, 15u, 16u * (kMaxQueueSize + 1), 0xfffffff0u}) {
    g.Desc(kTable, 9, t, len, kVringDescFIndirect, 0);
    CHECK_VQ(Walk(g, 9), VirtqError::kIndirectBadLen);
  }
  g.Desc(kTable, 9, 0x30000, 32, kVringDescFIndirect, 0);
  CHECK_VQ(Walk(g, 9), VirtqError::kIndirectBadAddress);
  g.Desc(t, 0, 0x2000, 10, kVringDescFNext, 1);
  g.Desc(t, 1, 0x5000, 32, kVringDescFIndirect, 0);
  g.Desc(kTable, 9, t, 32, kVringDescFIndirect, 0);
  CHECK_VQ(Walk(g, 9), VirtqError::kNestedIndirect);
  g.Desc(t, 1, 0x2000, 10, kVringDescFNext, 2);  // entry 2 is outside a 2-entry table
  CHECK_VQ(Walk(g, 9), VirtqError::kNextOutOfRange);
  g.Desc(t, 1, 0x2000, 10, kVringDescFNext, 0);  // a loop inside the table
  CHECK_VQ(Walk(g, 9), VirtqError::kChainTooLong);
  // More pieces than the caller's iovec array.
  g.Desc(kTable, 10, 0x11000 - 5, 10, 0, 0);
  iovec one[1];
  DescChain c;
  CHECK_VQ(WalkChain(*g.mem, g.Host(kTable), kSize, 10, one, 1, &c), VirtqError::kTooManyPieces);
}

TEST(DescriptorChain, LengthsThatSumPastFourGiBAreErrors) {
  // Never dereferenced by a walk: a borrowed 8 GiB "region" over a small buffer is enough.
  std::vector<uint64_t> table(kSize * 2);
  auto m = GuestMemory::Wrap({{0, reinterpret_cast<uint8_t*>(table.data()), 1ull << 33}});
  REQUIRE(m.ok());
  auto put = [&](uint32_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    EncodeDesc(VringDesc{addr, len, flags, next}, reinterpret_cast<uint8_t*>(table.data()) + 16 * i);
  };
  put(0, 0x100000, 0xffffffffu, kVringDescFNext, 1);
  put(1, 0x200000000ull, 2, 0, 0);
  iovec iov[8];
  DescChain c;
  CHECK_VQ(WalkChain(*m.value, reinterpret_cast<uint8_t*>(table.data()), kSize, 0, iov, 8, &c),
           VirtqError::kChainTooBig);
}

// ---- Virtqueue ----------------------------------------------------------------------------

namespace {
struct Ring {
  HeapGuest g;
  VirtqueueDriver drv;
  Virtqueue vq;
  static constexpr uint64_t kDesc = 0x1000, kAvail = 0x2000, kUsed = 0x3000;
  explicit Ring(bool event_idx = false, uint32_t size = kSize) {
    REQUIRE(drv.Init(g.mem, size, kDesc, kAvail, kUsed, event_idx).ok());
    VringAddrs a;
    a.size = size;
    a.desc = kDesc;
    a.avail = kAvail;
    a.used = kUsed;
    a.event_idx = event_idx;
    REQUIRE(vq.Start(g.mem, a).ok());
  }
  int Post(uint32_t len = 64, bool writable = false) {
    VirtqueueDriver::Buffer b{0x8000, len, writable};
    return drv.AddBuffers(&b, 1);
  }
  Virtqueue::PopResult Pop(DescChain* c = nullptr) {
    iovec iov[16];
    DescChain local;
    return vq.Pop(iov, 16, c ? c : &local);
  }
};
}  // namespace

TEST(Virtqueue, StartChecksTheLayout) {
  HeapGuest g;
  auto start = [&](uint32_t size, uint64_t desc, uint64_t avail, uint64_t used, const char* needle) {
    Virtqueue vq;
    VringAddrs a;
    a.size = size;
    a.desc = desc;
    a.avail = avail;
    a.used = used;
    Status s = vq.Start(g.mem, a);
    if (!needle) {
      CHECK(s.ok());
      return;
    }
    CHECK(s.code == StatusCode::kInvalidInput);
    if (s.message.find(needle) == std::string::npos)
      nptest::Fail(__FILE__, __LINE__, "message '" + s.message + "' lacks '" + needle + "'");
    CHECK(!vq.started());
  };
  start(16, 0x1000, 0x2000, 0x3000, nullptr);
  for (uint32_t bad : {0u, 3u, 65535u, 32769u, 65536u}) start(bad, 0x1000, 0x2000, 0x3000, "power of two");
  start(16, 0x1008, 0x2000, 0x3000, "aligned");
  start(16, 0x1000, 0x2001, 0x3000, "aligned");
  start(16, 0x1000, 0x2000, 0x3002, "aligned");
  start(16, 0x30000, 0x2000, 0x3000, "descriptor table");  // in the hole
  start(16, 0x1000, 0x2000, 0x11000 - 64, "used ring");    // straddles a region end
  start(16, 0x1000, 0x2000, 0x1000 + 64, "used ring overlaps the descriptor table");
  start(16, 0x1000, 0x2000, 0x2000 + 16, "used ring overlaps the avail ring");
  start(16, 0x1000, 0x1000 + 128, 0x3000, "avail ring overlaps the descriptor table");
}

TEST(Virtqueue, PopPushFlushAndBase) {
  Ring r;
  for (int i = 0; i < 3; ++i) REQUIRE(r.Post() >= 0);
  CHECK(r.Pop() == Virtqueue::PopResult::kEmpty);  // not published yet
  r.drv.Publish();
  DescChain c;
  for (int i = 0; i < 3; ++i) {
    REQUIRE(r.Pop(&c) == Virtqueue::PopResult::kChain);
    r.vq.Push(c.head, 7);
  }
  CHECK(r.Pop() == Virtqueue::PopResult::kEmpty);
  uint32_t head, len;
  CHECK(!r.drv.GetUsed(&head, &len));  // nothing before Flush
  CHECK(r.vq.Flush());
  CHECK(!r.vq.Flush());  // one store per burst, nothing new after it
  int n = 0;
  while (r.drv.GetUsed(&head, &len)) {
    CHECK_EQ(len, uint32_t{7});
    ++n;
  }
  CHECK_EQ(n, 3);
  CHECK_EQ(r.vq.Stop(), uint16_t{3});
  // Resume from the base on the same ring: the next chain pops, none is seen twice.
  VringAddrs a{kSize, Ring::kDesc, Ring::kAvail, Ring::kUsed, AddrSpace::kGuest, 3, false};
  REQUIRE(r.vq.Start(r.g.mem, a).ok());
  CHECK(r.Pop() == Virtqueue::PopResult::kEmpty);
  r.Post();
  r.drv.Publish();
  CHECK(r.Pop() == Virtqueue::PopResult::kChain);
}

TEST(Virtqueue, AvailIndexJumpsAndBadHeadsBreakTheQueue) {
  for (uint16_t jump : {uint16_t{kSize + 1}, uint16_t{0x8000}, uint16_t{0xffff}}) {  // 0xffff: backwards
    Ring r;
    r.drv.SetAvailIdxRaw(jump);
    CHECK(r.Pop() == Virtqueue::PopResult::kError);
    CHECK(r.vq.error() == VirtqError::kAvailIdxJump);
    CHECK(r.Pop() == Virtqueue::PopResult::kError);  // stays broken
  }
  Ring r;
  r.drv.PushAvailRaw(kSize + 5);
  r.drv.Publish();
  CHECK(r.Pop() == Virtqueue::PopResult::kError);
  CHECK(r.vq.error() == VirtqError::kHeadOutOfRange);
}

TEST(Virtqueue, MoreChainsInFlightThanTheRingHoldsIsAnError) {
  Ring r;
  // The guest offers the same head again and again without getting it back.
  for (uint32_t i = 0; i < kSize; ++i) r.drv.PushAvailRaw(0);
  r.drv.Publish();
  VringDesc d{0x8000, 64, 0, 0};
  StoreDesc(r.drv.desc_table(), d);
  for (uint32_t i = 0; i < kSize; ++i) REQUIRE(r.Pop() == Virtqueue::PopResult::kChain);
  for (uint32_t i = 0; i < kSize; ++i) r.drv.PushAvailRaw(0);
  r.drv.Publish();
  CHECK(r.Pop() == Virtqueue::PopResult::kError);
  CHECK(r.vq.error() == VirtqError::kTooManyInFlight);
}

TEST(Virtqueue, MarkAndRewindUndoUnflushedWork) {
  Ring r;
  for (int i = 0; i < 4; ++i) r.Post();
  r.drv.Publish();
  auto m = r.vq.GetMark();
  DescChain c;
  REQUIRE(r.Pop(&c) == Virtqueue::PopResult::kChain);
  r.vq.Push(c.head, 1);
  REQUIRE(r.Pop(&c) == Virtqueue::PopResult::kChain);
  r.vq.Rewind(m);
  CHECK_EQ(r.vq.Base(), m.last_avail);
  CHECK(!r.vq.Flush());
  CHECK_EQ(r.vq.Available(), uint16_t{4});
}

TEST(Virtqueue, UnpopGivesBackTheLastChainsPoppedAndNotPushed) {
  // A tx batch the peer refused part of: the chains after the refused one come out again.
  Ring r;
  for (int i = 0; i < 3; ++i) r.Post();
  r.drv.Publish();
  DescChain c[3];
  for (auto& x : c) REQUIRE(r.Pop(&x) == Virtqueue::PopResult::kChain);
  r.vq.Push(c[0].head, 0);
  r.vq.Unpop(5);  // more than are held: only the two not pushed go back
  CHECK_EQ(r.vq.in_flight(), uint16_t{0});
  CHECK_EQ(r.vq.Available(), uint16_t{2});
  DescChain again;
  REQUIRE(r.Pop(&again) == Virtqueue::PopResult::kChain);
  CHECK_EQ(again.head, c[1].head);
  REQUIRE(r.Pop(&again) == Virtqueue::PopResult::kChain);
  CHECK_EQ(again.head, c[2].head);
}

TEST(Virtqueue, InterruptsFollowNoInterruptWithoutEventIdx) {
  Ring r;
  r.Post();
  r.drv.Publish();
  DescChain c;
  REQUIRE(r.Pop(&c) == Virtqueue::PopResult::kChain);
  r.vq.Push(c.head, 0);
  r.vq.Flush();
  CHECK(r.vq.NeedsNotify());
  CHECK(!r.vq.NeedsNotify());  // nothing new
  r.drv.SuppressInterrupts(true);
  r.Post();
  r.drv.Publish();
  REQUIRE(r.Pop(&c) == Virtqueue::PopResult::kChain);
  r.vq.Push(c.head, 0);
  r.vq.Flush();
  CHECK(!r.vq.NeedsNotify());
}

TEST(Virtqueue, EventIdxSuppressesInterruptsAndKicks) {
  Ring r(/*event_idx=*/true);
  DescChain c;
  auto complete = [&](int n) {
    for (int i = 0; i < n; ++i) r.Post();
    r.drv.Publish();
    for (int i = 0; i < n; ++i) {
      REQUIRE(r.Pop(&c) == Virtqueue::PopResult::kChain);
      r.vq.Push(c.head, 0);
    }
    r.vq.Flush();
    uint32_t h, l;
    while (r.drv.GetUsed(&h, &l)) {
    }
  };
  // The first signal after a start is always wanted, even with a used_event in the past.
  r.drv.SetUsedEvent(100);
  complete(1);
  CHECK(r.vq.NeedsNotify());
  // used_event = 5: completions up to index 5 do not interrupt; passing it does.
  r.drv.SetUsedEvent(5);
  complete(3);  // used idx 1 -> 4
  CHECK(!r.vq.NeedsNotify());
  complete(2);  // 4 -> 6 crosses 5
  CHECK(r.vq.NeedsNotify());
  // Kicks: while the device has notifications enabled it keeps avail_event at its index, so
  // the driver's next publish kicks; disabled, the stale avail_event makes it stay quiet.
  r.vq.EnableNotification();
  r.Post();
  CHECK(r.drv.Publish());
  REQUIRE(r.Pop(&c) == Virtqueue::PopResult::kChain);
  r.vq.Push(c.head, 0);
  r.vq.DisableNotification();
  r.Post();
  CHECK(r.drv.Publish());  // avail_event still says "the slot after the last one popped"
  r.Post();
  CHECK(!r.drv.Publish());  // stale now: no kick
  // Re-enabling with buffers already there reports them (no lost kick).
  CHECK(r.vq.EnableNotification());
}

TEST(Virtqueue, NoNotifyFlagWithoutEventIdx) {
  Ring r;
  r.vq.DisableNotification();
  r.Post();
  CHECK(!r.drv.Publish());
  CHECK(r.vq.EnableNotification());  // the buffer is there: process it
  r.Post();
  CHECK(r.drv.Publish());
}

TEST(Virtqueue, DriverRingInAMemfdRoundTrips) {
  auto fd = MemfdCreate("np-test-vq", 1 << 20);
  REQUIRE(fd.ok());
  auto m = GuestMemory::Map({{0, 1 << 20, 0x7f0000000000ull, fd.value.get(), 0}});
  REQUIRE(m.ok());
  VirtqueueDriver drv;
  REQUIRE(drv.Init(m.value, 256, 0, 0x1000, 0x2000, true).ok());
  Virtqueue vq;
  VringAddrs a{256, 0x7f0000000000ull, 0x7f0000001000ull, 0x7f0000002000ull, AddrSpace::kUser, 0, true};
  REQUIRE(vq.Start(m.value, a).ok());
  const char msg[] = "hello, device";
  REQUIRE(drv.Write(0x10000, msg, sizeof msg));
  VirtqueueDriver::Buffer b[2] = {{0x10000, sizeof msg, false}, {0x20000, 64, true}};
  REQUIRE(drv.AddBuffers(b, 2, /*indirect_table=*/0x30000) >= 0);
  drv.Publish();
  iovec iov[8];
  DescChain c;
  REQUIRE(vq.Pop(iov, 8, &c) == Virtqueue::PopResult::kChain);
  CHECK_EQ(c.n_readable, 1);
  CHECK(std::memcmp(iov[0].iov_base, msg, sizeof msg) == 0);
  std::memcpy(iov[1].iov_base, "ok", 2);
  vq.Push(c.head, 2);
  vq.Flush();
  uint32_t head, len;
  REQUIRE(drv.GetUsed(&head, &len));
  CHECK_EQ(len, uint32_t{2});
  char back[2];
  REQUIRE(drv.Read(0x20000, back, 2));
  CHECK(std::memcmp(back, "ok", 2) == 0);
  CHECK_EQ(drv.free_descriptors(), uint32_t{256});
}
