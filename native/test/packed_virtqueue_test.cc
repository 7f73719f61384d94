// Packed virtqueues (virtio 1.1 2.8): the device side (PackedVirtqueue) driven from the
// driver side (PackedVirtqueueDriver) in a memfd mapped as two regions: layout checks,
// chains and indirect tables across many laps of the ring, mark / rewind, event suppression
// both ways (flags and EVENT_IDX's DESC form), base save / restore, every hostile shape of
// the split tests; then a VirtioDeviceQueue running packed rings against a FakeTap.
#include <fcntl.h>

#include <cstring>
#include <functional>
#include <vector>

#include "frame_builder.h"
#include "test.h"
#include "virtio/device_ring.h"
#include "virtio/packed_virtqueue.h"
#include "virtio/packed_virtqueue_driver.h"
#include "virtio_guest.h"

using namespace netplane::core;

namespace {

constexpr uint64_t kDesc = 0x1000;   // descriptor ring
constexpr uint64_t kDrvEv = 0x9000;  // driver event area
constexpr uint64_t kDevEv = 0x9010;  // device event area
constexpr uint64_t kBufs = 0x10000;  // buffers from here (region 0 ends at 1 MiB)
constexpr uint64_t kIndir = 0xa000;  // indirect tables
constexpr uint64_t kFeatPacked = 1ull << 34;

// Guest memory as nptest::Guest lays it out (two mapped regions of a memfd), with one
// packed ring on each side.
struct PackedPair {
  UniqueFd memfd;
  std::shared_ptr<GuestMemory> mem;
  PackedVirtqueueDriver drv;
  PackedVirtqueue dev;
  uint32_t size;
  iovec iov[64];

  explicit PackedPair(uint32_t n = 8, bool event_idx = false, uint16_t base = 0x8000) : size(n) {
    auto fd = MemfdCreate("np-test-packed", 2 * nptest::kRegionSize);
    memfd = std::move(fd.value);
    mem = GuestMemory::Map(
              {{0, nptest::kRegionSize, nptest::kUserBase0, memfd.get(), 0},
               {nptest::kRegionSize, nptest::kRegionSize, nptest::kUserBase1, memfd.get(), nptest::kRegionSize}})
              .value;
    REQUIRE(drv.Init(mem, n, kDesc, kDrvEv, kDevEv, event_idx).ok());
    REQUIRE(dev.Start(mem, Addrs(event_idx, base)).ok());
  }
  VringAddrs Addrs(bool event_idx, uint16_t base) const {
    VringAddrs a;
    a.size = size;
    a.desc = kDesc;
    a.avail = kDrvEv;
    a.used = kDevEv;
    a.base = base;
    a.event_idx = event_idx;
    a.packed = true;
    return a;
  }
  uint8_t* Host(uint64_t gpa) { return mem->TranslateContiguous(AddrSpace::kGuest, gpa, 1); }
  // n single-buffer chains through both sides: added, published, popped, pushed, flushed, taken.
  void CompleteSingles(int n) {
    PackedVirtqueueDriver::Buffer b{kBufs, 64, false};
    for (int i = 0; i < n; ++i) REQUIRE(drv.AddBuffers(&b, 1) >= 0);
    drv.Publish();
    DescChain c;
    for (int i = 0; i < n; ++i) {
      REQUIRE(dev.Pop(iov, 64, &c) == Virtqueue::PopResult::kChain);
      dev.Push(c.head, 0);
    }
    dev.Flush();
    uint32_t id, len;
    for (int i = 0; i < n; ++i) REQUIRE(drv.GetUsed(&id, &len));
  }
  VirtqError PopError() {
    DescChain c;
    CHECK(dev.Pop(iov, 64, &c) == Virtqueue::PopResult::kError);
    CHECK(dev.broken());
    return dev.error();
  }
  // Make a raw chain of descriptors available at the driver's next positions (the first's
  // flags written last), bypassing the driver's bookkeeping: a hostile guest.
  uint16_t raw_pos = 0;
  bool raw_wrap = true;
  void RawChain(const std::vector<PackedDesc>& ds) {
    uint16_t& pos = raw_pos;
    bool& wrap = raw_wrap;
    std::vector<std::pair<uint16_t, PackedDesc>> out;
    for (PackedDesc d : ds) {
      d.flags = static_cast<uint16_t>(d.flags | (wrap ? kPackedDescFAvail : kPackedDescFUsed));
      out.push_back({pos, d});
      if (++pos == size) {
        pos = 0;
        wrap = !wrap;
      }
    }
    for (size_t i = out.size(); i > 0; --i) drv.WriteDescRaw(out[i - 1].first, out[i - 1].second);
  }
  void WriteIndirect(uint64_t table, const std::vector<PackedDesc>& ds) {
    for (size_t i = 0; i < ds.size(); ++i) {
      uint8_t raw[16];
      EncodePackedDesc(ds[i], raw);
      std::memcpy(Host(table + 16 * i), raw, 16);
    }
  }
};

}  // namespace

TEST(PackedRing, StartChecksTheLayout) {
  PackedPair p;
  auto refused = [&](VringAddrs a) {
    PackedVirtqueue q;
    Status s = q.Start(p.mem, a);
    CHECK(!s.ok());
    CHECK(s.code == StatusCode::kInvalidInput);
    CHECK(!q.started());
  };
  VringAddrs a = p.Addrs(false, 0x8000);
  a.size = 0;
  refused(a);
  a.size = 32769;
  refused(a);
  a = p.Addrs(false, 0x8000);
  a.desc = kDesc + 8;  // not 16-aligned
  refused(a);
  a = p.Addrs(false, 0x8000);
  a.avail = kDrvEv + 2;  // not 4-aligned
  refused(a);
  a = p.Addrs(false, 0x8000);
  a.used = 4 * nptest::kRegionSize;  // outside memory
  refused(a);
  a = p.Addrs(false, 0x8000);
  a.desc = nptest::kRegionSize - 64;  // crosses the region end
  refused(a);
  a = p.Addrs(false, 0x8000);
  a.avail = kDesc + 16;  // driver event area over the descriptor ring
  refused(a);
  a = p.Addrs(false, 0x8000);
  a.used = a.avail;  // both event areas on one word
  refused(a);
  a = p.Addrs(false, 0x8000 | 8);  // base position == size
  refused(a);
  // Any size up to 32768 is a packed ring (no power of two needed).
  a = p.Addrs(false, 0x8000);
  a.size = 3;
  PackedVirtqueue q;
  CHECK(q.Start(p.mem, a).ok());
}

TEST(PackedRing, ChainsAndIndirectTablesOverManyLaps) {
  PackedPair p(5);  // an odd size: positions wrap mid-chain
  uint8_t* bytes = p.Host(kBufs);
  for (int i = 0; i < 4096; ++i) bytes[i] = static_cast<uint8_t>(i * 7);
  for (int round = 0; round < 40; ++round) {
    const int n = 1 + round % 3;
    const bool indirect = round % 4 == 3;
    PackedVirtqueueDriver::Buffer b[3] = {{kBufs, 10, false}, {kBufs + 10, 20, false}, {kBufs + 100, 50, true}};
    int id = p.drv.AddBuffers(b, n, indirect ? kIndir : 0);
    REQUIRE(id >= 0);
    CHECK(p.dev.Available() == 0);  // not published yet
    p.drv.Publish();
    CHECK(p.dev.Available() == 1);
    DescChain c;
    REQUIRE(p.dev.Pop(p.iov, 64, &c) == Virtqueue::PopResult::kChain);
    CHECK_EQ(c.head, id);
    CHECK_EQ(c.n_readable, n >= 2 ? 2 : 1);
    CHECK_EQ(c.n_writable, n == 3 ? 1 : 0);
    CHECK_EQ(c.readable_bytes, uint64_t{n >= 2 ? 30u : 10u});
    CHECK(p.iov[0].iov_base == bytes);
    CHECK(p.dev.Pop(p.iov, 64, &c) == Virtqueue::PopResult::kEmpty);
    p.dev.Push(c.head, static_cast<uint32_t>(round));
    uint32_t uid, len;
    CHECK(!p.drv.GetUsed(&uid, &len));  // nothing written before Flush
    CHECK(p.dev.Flush());
    REQUIRE(p.drv.GetUsed(&uid, &len));
    CHECK_EQ(uid, static_cast<uint32_t>(id));
    CHECK_EQ(len, static_cast<uint32_t>(round));
    CHECK_EQ(p.drv.free_descriptors(), 5u);
  }
  CHECK(!p.dev.broken());
}

TEST(PackedRing, BatchesCompleteInOrderAndTheDriverSeesThemAtOnce) {
  PackedPair p(8);
  std::vector<int> ids;
  for (int i = 0; i < 3; ++i) {
    PackedVirtqueueDriver::Buffer b[2] = {{kBufs, 64, true}, {kBufs + 64, 64, true}};
    ids.push_back(p.drv.AddBuffers(b, 2));
  }
  p.drv.Publish();
  DescChain c[3];
  for (auto& x : c) REQUIRE(p.dev.Pop(p.iov, 64, &x) == Virtqueue::PopResult::kChain);
  CHECK_EQ(p.dev.in_flight(), 3);
  for (auto& x : c) p.dev.Push(x.head, 100);
  CHECK_EQ(p.dev.unflushed(), 3);
  p.dev.Flush();
  for (int i = 0; i < 3; ++i) {
    uint32_t id, len;
    REQUIRE(p.drv.GetUsed(&id, &len));
    CHECK_EQ(id, static_cast<uint32_t>(ids[i]));
    CHECK_EQ(len, 100u);
  }
  CHECK_EQ(p.drv.used_pos(), 6);
}

TEST(PackedRing, MarkAndRewindLeaveTheRingUntouched) {
  PackedPair p(4);
  PackedVirtqueueDriver::Buffer b{kBufs, 64, true};
  int a = p.drv.AddBuffers(&b, 1), bb = p.drv.AddBuffers(&b, 1);
  p.drv.Publish();
  const PackedVirtqueue::Mark m = p.dev.GetMark();
  DescChain c;
  REQUIRE(p.dev.Pop(p.iov, 64, &c) == Virtqueue::PopResult::kChain);
  p.dev.Push(c.head, 10);
  REQUIRE(p.dev.Pop(p.iov, 64, &c) == Virtqueue::PopResult::kChain);
  CHECK_EQ(p.dev.ChainsSince(m), 2u);
  p.dev.Rewind(m);
  CHECK_EQ(p.dev.in_flight(), 0);
  CHECK_EQ(p.dev.unflushed(), 0);
  CHECK(!p.dev.Flush());
  // The same two buffers again, intact.
  REQUIRE(p.dev.Pop(p.iov, 64, &c) == Virtqueue::PopResult::kChain);
  CHECK_EQ(c.head, a);
  REQUIRE(p.dev.Pop(p.iov, 64, &c) == Virtqueue::PopResult::kChain);
  CHECK_EQ(c.head, bb);
}

TEST(PackedRing, UnpopGivesBackTheLastChainsAcrossALap) {
  // A tx batch the peer refused part of: the chains popped after the refused one go back and
  // come out again, in order, also when they cross the end of the ring (wrap counter).
  PackedPair p(4);
  p.CompleteSingles(3);  // positions 0..2 used: the next chains wrap
  PackedVirtqueueDriver::Buffer two[2] = {{kBufs, 64, false}, {kBufs + 64, 64, false}};
  PackedVirtqueueDriver::Buffer one{kBufs, 64, false};
  const int a = p.drv.AddBuffers(&one, 1);  // position 3
  const int b = p.drv.AddBuffers(two, 2);   // positions 0, 1 of the next lap
  p.drv.Publish();
  const uint16_t base0 = static_cast<uint16_t>(p.dev.Stop());
  REQUIRE(p.dev.Start(p.mem, p.Addrs(false, base0)).ok());
  DescChain c;
  REQUIRE(p.dev.Pop(p.iov, 64, &c) == Virtqueue::PopResult::kChain);
  CHECK_EQ(c.head, a);
  p.dev.Push(c.head, 0);
  REQUIRE(p.dev.Pop(p.iov, 64, &c) == Virtqueue::PopResult::kChain);
  CHECK_EQ(c.head, b);
  p.dev.Unpop(5);  // more than popped and not pushed: only b goes back
  CHECK_EQ(p.dev.in_flight(), 0);
  CHECK_EQ(p.dev.Base(), PackedPosWrap(0, false));  // the lap's start, wrap counter flipped
  REQUIRE(p.dev.Pop(p.iov, 64, &c) == Virtqueue::PopResult::kChain);
  CHECK_EQ(c.head, b);
  CHECK_EQ(c.n_readable, 2);
  p.dev.Push(c.head, 0);
  p.dev.Flush();
  uint32_t id, len;
  REQUIRE(p.drv.GetUsed(&id, &len));
  CHECK_EQ(id, static_cast<uint32_t>(a));
  REQUIRE(p.drv.GetUsed(&id, &len));
  CHECK_EQ(id, static_cast<uint32_t>(b));
}

TEST(PackedRing, BaseCarriesPositionAndWrapCounter) {
  PackedPair p(4);
  for (int i = 0; i < 6; ++i) p.CompleteSingles(1);  // one and a half laps
  const uint32_t base = p.dev.Stop();
  CHECK_EQ(base & 0xffff, 2u);  // position 2, wrap counter 0 (one lap done)
  CHECK_EQ(base >> 16, 2u);     // used: the same
  CHECK(!p.dev.started());
  // Resume from the low half, as SET_VRING_BASE gives it back.
  REQUIRE(p.dev.Start(p.mem, p.Addrs(false, static_cast<uint16_t>(base))).ok());
  p.CompleteSingles(1);
  // A device that resumes at the wrong lap sees nothing available.
  PackedVirtqueueDriver::Buffer b{kBufs, 64, false};
  DescChain c;
  PackedPair q(4);
  REQUIRE(q.drv.AddBuffers(&b, 1) >= 0);
  q.drv.Publish();
  q.dev.Stop();
  REQUIRE(q.dev.Start(q.mem, q.Addrs(false, 0)).ok());
  CHECK(q.dev.Pop(q.iov, 64, &c) == Virtqueue::PopResult::kEmpty);
}

TEST(PackedRing, InterruptsFollowTheDriverEventArea) {
  PackedPair p(8);
  auto complete_one = [&] { p.CompleteSingles(1); };
  complete_one();
  CHECK(p.dev.NeedsNotify());
  CHECK(!p.dev.NeedsNotify());  // nothing new
  p.drv.SuppressInterrupts(true);
  complete_one();
  CHECK(!p.dev.NeedsNotify());
  p.drv.SuppressInterrupts(false);
  complete_one();
  CHECK(p.dev.NeedsNotify());
}

TEST(PackedRing, EventIdxDescPositionsBothWays) {
  PackedPair p(8, /*event_idx=*/true);
  PackedVirtqueueDriver::Buffer b{kBufs, 64, false};
  auto complete = [&](int n) { p.CompleteSingles(n); };
  complete(1);
  CHECK(p.dev.NeedsNotify());  // the first always signals
  // Interrupt once position 5 (this lap) is used: 1 -> 3 does not pass it, 3 -> 6 does.
  p.drv.SetUsedEvent(PackedPosWrap(5, true));
  complete(2);
  CHECK(!p.dev.NeedsNotify());
  complete(3);
  CHECK(p.dev.NeedsNotify());
  // A whole ring's worth between two checks still signals (positions alone would not move).
  p.drv.SetUsedEvent(PackedPosWrap(p.drv.used_pos(), p.drv.used_wrap()));
  complete(8);
  CHECK(p.dev.NeedsNotify());

  // Kicks: the device asks for one at its avail position; disabled, the driver does not kick.
  p.dev.DisableNotification();
  REQUIRE(p.drv.AddBuffers(&b, 1) >= 0);
  CHECK(!p.drv.Publish());
  CHECK(p.dev.EnableNotification());  // a buffer came meanwhile
  DescChain c;
  REQUIRE(p.dev.Pop(p.iov, 64, &c) == Virtqueue::PopResult::kChain);
  p.dev.Push(c.head, 0);
  p.dev.Flush();
  CHECK(!p.dev.EnableNotification());
  REQUIRE(p.drv.AddBuffers(&b, 1) >= 0);
  CHECK(p.drv.Publish());  // passes the device's event position
}

TEST(PackedRing, KicksFollowTheDeviceEventFlagsWithoutEventIdx) {
  PackedPair p(8);
  PackedVirtqueueDriver::Buffer b{kBufs, 64, false};
  REQUIRE(p.drv.AddBuffers(&b, 1) >= 0);
  CHECK(p.drv.Publish());
  p.dev.DisableNotification();
  REQUIRE(p.drv.AddBuffers(&b, 1) >= 0);
  CHECK(!p.drv.Publish());
  CHECK(p.dev.EnableNotification());
  CHECK(!p.drv.Publish());  // nothing new published
}

TEST(PackedRing, HostileShapesBreakTheQueue) {
  struct Case {
    const char* name;
    std::function<void(PackedPair&)> setup;
    VirtqError want;
  };
  const uint16_t W = kVringDescFWrite, N = kVringDescFNext, I = kVringDescFIndirect;
  std::vector<Case> cases = {
      {"chain longer than the ring",
       [&](PackedPair& p) {
         std::vector<PackedDesc> ds(9, PackedDesc{kBufs, 16, 0, N});  // all NEXT: wraps onto itself
         p.RawChain(ds);
       },
       VirtqError::kChainTooLong},
      {"nested indirect",
       [&](PackedPair& p) {
         p.WriteIndirect(kIndir, {{kBufs, 16, 0, 0}, {kIndir, 32, 0, I}});
         p.RawChain({{kIndir, 32, 1, I}});
       },
       VirtqError::kNestedIndirect},
      {"indirect with next",
       [&](PackedPair& p) {
         p.RawChain({{kIndir, 32, 1, I | N}, {kBufs, 16, 1, 0}});
       },
       VirtqError::kIndirectWithNext},
      {"indirect length not a multiple of 16",
       [&](PackedPair& p) {
         p.RawChain({{kIndir, 24, 1, I}});
       },
       VirtqError::kIndirectBadLen},
      {"indirect length zero",
       [&](PackedPair& p) {
         p.RawChain({{kIndir, 0, 1, I}});
       },
       VirtqError::kIndirectBadLen},
      {"indirect table outside memory",
       [&](PackedPair& p) {
         p.RawChain({{0x7000000, 32, 1, I}});
       },
       VirtqError::kIndirectBadAddress},
      {"buffer outside memory",
       [&](PackedPair& p) {
         p.RawChain({{3 * nptest::kRegionSize, 64, 1, 0}});
       },
       VirtqError::kBadAddress},
      {"address + length overflows",
       [&](PackedPair& p) {
         p.RawChain({{~0ull - 8, 64, 1, 0}});
       },
       VirtqError::kBadAddress},
      {"zero-length buffer",
       [&](PackedPair& p) {
         p.RawChain({{kBufs, 0, 1, 0}});
       },
       VirtqError::kZeroLength},
      {"readable after writable",
       [&](PackedPair& p) {
         p.RawChain({{kBufs, 16, 1, W | N}, {kBufs, 16, 1, 0}});
       },
       VirtqError::kReadableAfterWritable},
      {"4 GiB in one chain",
       [&](PackedPair& p) {
         p.WriteIndirect(kIndir, {{kBufs, 16, 0, 0}, {kBufs, 0xfffffff8u, 0, 0}});
         p.RawChain({{kIndir, 32, 1, I}});
       },
       VirtqError::kChainTooBig},
      {"more in flight than the ring holds",
       [&](PackedPair& p) {
         // Eight single buffers popped and held; then the driver flips the first position's
         // flags to the next lap without getting anything back.
         for (int i = 0; i < 8; ++i) p.RawChain({{kBufs, 16, static_cast<uint16_t>(i), 0}});
         DescChain c;
         for (int i = 0; i < 8; ++i) REQUIRE(p.dev.Pop(p.iov, 64, &c) == Virtqueue::PopResult::kChain);
         p.drv.WriteDescRaw(0, PackedDesc{kBufs, 16, 9, kPackedDescFUsed});  // available in lap 2
       },
       VirtqError::kTooManyInFlight},
  };
  for (auto& k : cases) {
    PackedPair p(8);
    k.setup(p);
    VirtqError got = p.PopError();
    if (got != k.want) nptest::Fail(__FILE__, __LINE__, std::string(k.name) + ": " + VirtqErrorName(got));
    DescChain c;
    CHECK(p.dev.Pop(p.iov, 64, &c) == Virtqueue::PopResult::kError);  // stays broken
    CHECK_EQ(p.dev.Available(), 0);
    // A restart clears it.
    p.dev.Stop();
    CHECK(p.dev.Start(p.mem, p.Addrs(false, 0x8000)).ok());
    CHECK(!p.dev.broken());
  }
}

TEST(PackedRing, DeviceRingPicksTheKind) {
  PackedPair p(8);
  p.dev.Stop();
  DeviceRing r;
  REQUIRE(r.Start(p.mem, p.Addrs(false, 0x8000)).ok());
  CHECK(r.packed());
  PackedVirtqueueDriver::Buffer b{kBufs, 64, true};
  int id = p.drv.AddBuffers(&b, 1);
  p.drv.Publish();
  const DeviceRing::Mark m = r.GetMark();
  DescChain c;
  REQUIRE(r.Pop(p.iov, 64, &c) == DeviceRing::PopResult::kChain);
  CHECK_EQ(r.ChainsSince(m), 1u);
  r.Push(c.head, 5);
  CHECK(r.Flush());
  uint32_t got, len;
  REQUIRE(p.drv.GetUsed(&got, &len));
  CHECK_EQ(got, static_cast<uint32_t>(id));
  CHECK_EQ(r.Stop(), 0x80018001u);
}

// ---- VirtioDeviceQueue over packed rings ----------------------------------------------------

namespace {

struct PackedRingSide {
  uint64_t desc, drv_ev, dev_ev;
  PackedVirtqueueDriver drv;
  nptest::EventFd kick, call, err;
};

// A guest with packed rx and tx rings in nptest::Guest's memory (its split drivers unused).
struct PackedNic {
  nptest::EventLog log;
  nptest::FakeTap tap;
  nptest::Guest guest;  // memory and buffer allocation
  PackedRingSide rx, tx;
  NetGraph g{log.Sink()};
  std::vector<uint64_t> rx_addr = std::vector<uint64_t>(1024, 0);

  explicit PackedNic(uint32_t qsize = 16, bool event_idx = false, int tap_hdr = 0) : guest(qsize, event_idx) {
    Layout(&rx, 0x40000, qsize, event_idx);
    Layout(&tx, 0x50000, qsize, event_idx);
    REQUIRE(g.AddTap(nptest::Spec(1, "t"), tap.dp(), tap_hdr).ok());
    REQUIRE(g.AddVirtioDevice(nptest::Spec(2, "vd")).ok());
    REQUIRE(g.Connect(1, 2).ok());
    uint64_t f = nptest::kFeatVersion1 | nptest::kFeatMrg | kFeatPacked | (event_idx ? nptest::kFeatEventIdx : 0);
    REQUIRE(g.SetVirtioFeatures(2, f).ok());
    REQUIRE(g.StartVring(2, VirtioRing::kRx, Start(rx, 0x8000)).ok());
    REQUIRE(g.StartVring(2, VirtioRing::kTx, Start(tx, 0x8000)).ok());
  }
  void Layout(PackedRingSide* r, uint64_t base, uint32_t n, bool event_idx) {
    r->desc = base;
    r->drv_ev = base + PackedDescBytes(n);
    r->dev_ev = r->drv_ev + 4;
    REQUIRE(r->drv.Init(guest.mem, n, r->desc, r->drv_ev, r->dev_ev, event_idx).ok());
  }
  VirtioRingStart Start(PackedRingSide& r, uint16_t base) {
    VirtioRingStart s;
    s.memory = guest.mem;
    s.addrs.size = r.drv.size();
    s.addrs.desc = nptest::UserAddr(r.desc);
    s.addrs.avail = nptest::UserAddr(r.drv_ev);
    s.addrs.used = nptest::UserAddr(r.dev_ev);
    s.addrs.space = AddrSpace::kUser;
    s.addrs.base = base;
    s.kick = UniqueFd(::fcntl(r.kick.fd, F_DUPFD_CLOEXEC, 0));
    s.call = UniqueFd(::fcntl(r.call.fd, F_DUPFD_CLOEXEC, 0));
    s.err = UniqueFd(::fcntl(r.err.fd, F_DUPFD_CLOEXEC, 0));
    return s;
  }
  void Kick(PackedRingSide& r) {
    if (r.drv.Publish()) r.kick.Signal();
  }
  int SendFrame(const std::vector<uint8_t>& pkt, bool split_in_two, uint64_t indirect = 0) {
    uint64_t a = guest.Alloc(static_cast<uint32_t>(pkt.size()));
    guest.tx.drv.Write(a, pkt.data(), pkt.size());
    const uint32_t half = split_in_two ? static_cast<uint32_t>(pkt.size() / 2) : static_cast<uint32_t>(pkt.size());
    PackedVirtqueueDriver::Buffer b[2] = {{a, half, false},
                                          {a + half, static_cast<uint32_t>(pkt.size() - half), false}};
    return tx.drv.AddBuffers(b, split_in_two ? 2 : 1, indirect);
  }
  void PostRx(int n, uint32_t len) {
    for (int i = 0; i < n; ++i) {
      uint64_t a = guest.Alloc(len);
      PackedVirtqueueDriver::Buffer b{a, len, true};
      int id = rx.drv.AddBuffers(&b, 1);
      if (id >= 0) rx_addr[id] = a;
    }
  }
  std::vector<std::vector<uint8_t>> TakeRx() {
    std::vector<std::vector<uint8_t>> out;
    uint32_t id, len;
    while (rx.drv.GetUsed(&id, &len)) {
      std::vector<uint8_t> b(len);
      guest.tx.drv.Read(rx_addr[id], b.data(), len);
      out.push_back(std::move(b));
    }
    return out;
  }
  int TakeTxDone() {
    int n = 0;
    uint32_t id, len;
    while (tx.drv.GetUsed(&id, &len)) ++n;
    return n;
  }
  ClientInfo Info() { return nptest::InfoOf(g, 2); }
};

}  // namespace

TEST(PackedDevice, TxFramesReachTheTapOverManyLaps) {
  PackedNic p(8);
  int sent = 0, done = 0;
  for (int round = 0; round < 12; ++round) {
    for (int i = 0; i < 3; ++i) {
      auto eth = nptest::EthFrame(64 + round, static_cast<uint8_t>(round));
      REQUIRE(p.SendFrame(nptest::WithHdr(eth), i == 1, i == 2 ? 0x60000 + 0x100 * (round % 4) : 0) >= 0);
      ++sent;
    }
    p.Kick(p.tx);
    for (int i = 0; i < 3; ++i) CHECK(p.tap.Take() == nptest::EthFrame(64 + round, static_cast<uint8_t>(round)));
    CHECK(nptest::WaitFor([&] {
      done += p.TakeTxDone();
      return done == sent;
    }));
  }
  CHECK_EQ(p.Info().counters.frames_in, uint64_t{36});
  CHECK(!p.Info().broken);
  CHECK(nptest::AllConserved(p.g));
}

TEST(PackedDevice, TapFramesReachTheGuestWithMergeableBuffers) {
  PackedNic p(16, /*event_idx=*/true, /*tap_hdr=*/12);
  size_t got_frames = 0;
  for (int round = 0; round < 6; ++round) {
    p.PostRx(14, 256);
    p.Kick(p.rx);
    auto eth = nptest::EthFrame(1000, static_cast<uint8_t>(round));  // 12 + 1000 bytes: 4 buffers
    for (int i = 0; i < 3; ++i) REQUIRE(p.tap.Inject(nptest::WithHdr(eth)));
    std::vector<std::vector<uint8_t>> got;
    CHECK(nptest::WaitFor([&] {
      for (auto& b : p.TakeRx()) got.push_back(std::move(b));
      return got.size() >= 12;
    }));
    REQUIRE(got.size() == 12);
    CHECK_EQ(got[0][10] | got[0][11] << 8, 4);
    std::vector<uint8_t> joined;
    for (int i = 0; i < 4; ++i) joined.insert(joined.end(), got[i].begin(), got[i].end());
    joined[10] = 0;
    CHECK(joined == nptest::WithHdr(eth));
    got_frames += 3;
    // Use the rest of the posted buffers so the next round starts on a fresh lap position.
    p.tap.Inject(nptest::WithHdr(nptest::EthFrame(400, 0)));
    CHECK(nptest::WaitFor([&] { return p.TakeRx().size() == 2; }));
    ++got_frames;
  }
  CHECK_EQ(p.Info().counters.frames_out, uint64_t{got_frames});
  CHECK(p.rx.call.Take() > 0);
  CHECK(nptest::AllConserved(p.g));
}

TEST(PackedDevice, AHostileRingPutsThePairInItsErrorState) {
  PackedNic p(8);
  // A zero-length tx buffer.
  PackedVirtqueueDriver::Buffer b{0x70000, 0, false};
  REQUIRE(p.tx.drv.AddBuffers(&b, 1) >= 0);
  p.Kick(p.tx);
  CHECK(nptest::WaitFor([&] { return p.Info().broken; }));
  CHECK_EQ(p.Info().errors, uint64_t{1});
  CHECK(p.Info().error.find("zero-length") != std::string::npos);
  CHECK(nptest::WaitFor([&] { return p.tx.err.Take() > 0; }));
  // Both rings stopped and started again: a reset, the pair works.
  auto tx_base = p.g.StopVring(2, VirtioRing::kTx);
  auto rx_base = p.g.StopVring(2, VirtioRing::kRx);
  REQUIRE(tx_base.ok() && rx_base.ok());
  CHECK_EQ(rx_base.value, 0x80008000u);
  REQUIRE(p.tx.drv.Init(p.guest.mem, 8, p.tx.desc, p.tx.drv_ev, p.tx.dev_ev, false).ok());
  REQUIRE(p.g.StartVring(2, VirtioRing::kRx, p.Start(p.rx, static_cast<uint16_t>(rx_base.value))).ok());
  REQUIRE(p.g.StartVring(2, VirtioRing::kTx, p.Start(p.tx, 0x8000)).ok());
  CHECK(!p.Info().broken);
  auto eth = nptest::EthFrame(80, 5);
  REQUIRE(p.SendFrame(nptest::WithHdr(eth), false) >= 0);
  p.Kick(p.tx);
  CHECK(p.tap.Take() == eth);
}

TEST(PackedDevice, ALayoutOverlappingItselfIsRefusedAndCounted) {
  PackedNic p(8);
  p.g.StopVring(2, VirtioRing::kTx);
  VirtioRingStart s = p.Start(p.tx, 0x8000);
  s.addrs.avail = s.addrs.desc + 32;  // driver event area inside the descriptor ring
  Status st = p.g.StartVring(2, VirtioRing::kTx, std::move(s));
  CHECK(st.code == StatusCode::kInvalidInput);
  CHECK(p.Info().broken);
  CHECK_EQ(p.Info().errors, uint64_t{1});
}
