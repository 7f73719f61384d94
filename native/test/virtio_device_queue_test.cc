// VirtioDeviceQueue against a driver-side ring in a memfd (virtio_guest.h) and a FakeTap
// peer: frames both ways, mergeable buffers, notification suppression, back-pressure, and
// the hostile guest.
#include <fcntl.h>

#include <cstdio>
#include <functional>

#include "fd_count.h"
#include "frame_builder.h"
#include "test.h"
#include "virtio_guest.h"

using namespace netplane::core;
using nptest::FakeTap;
using nptest::Guest;

namespace {
constexpr uint64_t kModern = nptest::kFeatVersion1 | nptest::kFeatMrg;

struct Pair {
  nptest::EventLog log;
  FakeTap tap;
  Guest guest;
  NetGraph g{log.Sink()};
  explicit Pair(uint64_t features = kModern, int tap_hdr = 0, uint32_t qsize = 256, bool event_idx = false)
      : guest(qsize, event_idx) {
    REQUIRE(g.AddTap(nptest::Spec(1, "t"), tap.dp(), tap_hdr).ok());
    REQUIRE(g.AddVirtioDevice(nptest::Spec(2, "vd")).ok());
    REQUIRE(g.Connect(1, 2).ok());
    REQUIRE(guest.StartAll(g, 2, features | (event_idx ? nptest::kFeatEventIdx : 0)));
  }
  ClientInfo Info() { return nptest::InfoOf(g, 2); }
};
}  // namespace

TEST(VirtioDevice, TxFramesReachTheTap) {
  Pair p;
  auto eth = nptest::EthFrame(64, 7);
  for (int i = 0; i < 3; ++i) REQUIRE(p.guest.SendFrame(nptest::WithHdr(eth)) >= 0);
  p.guest.Kick(p.guest.tx);
  for (int i = 0; i < 3; ++i) CHECK(p.tap.Take() == eth);  // header stripped for the plain tap
  CHECK(nptest::WaitFor([&] { return p.guest.TakeTxDone() == 3 || p.Info().counters.frames_out == 3; }));
  CHECK(nptest::WaitFor([&] { return p.guest.tx.call.Take() > 0; }));
  CHECK_EQ(p.Info().counters.frames_in, uint64_t{3});
  CHECK(nptest::AllConserved(p.g));
}

TEST(VirtioDevice, TapFramesReachTheGuest) {
  Pair p;
  p.guest.PostRx(16, 2048);
  p.guest.Kick(p.guest.rx);
  auto eth = nptest::EthFrame(100, 3);
  for (int i = 0; i < 5; ++i) REQUIRE(p.tap.Inject(eth));
  std::vector<std::vector<uint8_t>> got;
  CHECK(nptest::WaitFor([&] {
    for (auto& b : p.guest.TakeRx()) got.push_back(b);
    return got.size() == 5;
  }));
  REQUIRE(got.size() == 5);
  CHECK_EQ(got[0].size(), size_t{112});
  CHECK_EQ(got[0][10], 1);  // num_buffers
  CHECK(std::equal(eth.begin(), eth.end(), got[0].begin() + 12));
  CHECK(nptest::WaitFor([&] { return p.guest.rx.call.Take() > 0; }));
  CHECK(nptest::AllConserved(p.g));
}

using nptest::Tso4;

namespace {
std::vector<std::vector<uint8_t>> WaitRx(Guest& g, size_t n, int timeout_ms = 10000) {
  std::vector<std::vector<uint8_t>> got;
  nptest::WaitFor(
      [&] {
        for (auto& b : g.TakeRx()) got.push_back(std::move(b));
        return got.size() >= n;
      },
      timeout_ms);
  return got;
}
}  // namespace

TEST(VirtioDevice, MergeableBuffersCarryAFrameLargerThanOneBuffer) {
  Pair p(kModern, /*tap_hdr=*/12);
  p.guest.PostRx(64, 256);
  p.guest.Kick(p.guest.rx);
  auto eth = nptest::EthFrame(3000, 9);
  REQUIRE(p.tap.Inject(nptest::WithHdr(eth)));
  // 12 + 3000 bytes over 256-byte buffers: 12 chains, num_buffers 12 in the first.
  auto got = WaitRx(p.guest, 12);
  REQUIRE(got.size() == 12);
  CHECK_EQ(got[0][10] | got[0][11] << 8, 12);
  std::vector<uint8_t> joined;
  for (auto& b : got) joined.insert(joined.end(), b.begin(), b.end());
  joined[10] = 0;
  CHECK(joined == nptest::WithHdr(eth));
  CHECK(nptest::AllConserved(p.g));
}

TEST(VirtioDevice, WithoutMergeableBuffersAFrameMustFitOneChain) {
  Pair p(nptest::kFeatVersion1);  // 12-byte header, num_buffers always 1
  p.guest.PostRx(4, 128);
  p.guest.Kick(p.guest.rx);
  REQUIRE(p.tap.Inject(nptest::EthFrame(200, 1)));  // 212 > 128: dropped, chain kept
  REQUIRE(p.tap.Inject(nptest::EthFrame(100, 2)));
  auto got = WaitRx(p.guest, 1);
  REQUIRE(got.size() == 1);
  CHECK_EQ(got[0].size(), size_t{112});
  CHECK_EQ(got[0][10], 1);
  CHECK_EQ(got[0][12 + 20], 2);
  CHECK_EQ(nptest::Drops(p.Info(), DropReason::kOversize), uint64_t{1});
  CHECK(nptest::AllConserved(p.g));
}

TEST(VirtioDevice, LegacyFeaturesUseTheTenByteHeader) {
  Pair p(0);
  CHECK_EQ(p.Info().vnet_hdr_len, 10);
  p.guest.PostRx(4, 2048);
  p.guest.Kick(p.guest.rx);
  auto eth = nptest::EthFrame(80, 4);
  REQUIRE(p.tap.Inject(eth));
  auto got = WaitRx(p.guest, 1);
  REQUIRE(got.size() == 1);
  CHECK_EQ(got[0].size(), size_t{90});
  REQUIRE(p.guest.SendFrame(nptest::WithHdr(eth, 10)) >= 0);
  p.guest.Kick(p.guest.tx);
  CHECK(p.tap.Take() == eth);
}

TEST(VirtioDevice, EventIdxSuppressesInterrupts) {
  Pair p(kModern, 0, 256, /*event_idx=*/true);
  p.guest.PostRx(32, 2048);
  p.guest.Kick(p.guest.rx);
  p.guest.rx.drv.SetUsedEvent(100);
  REQUIRE(p.tap.Inject(nptest::EthFrame(60, 1)));
  CHECK_EQ(WaitRx(p.guest, 1).size(), size_t{1});
  CHECK(nptest::WaitFor([&] { return p.guest.rx.call.Take() > 0; }));  // the first one always
  for (int i = 0; i < 5; ++i) REQUIRE(p.tap.Inject(nptest::EthFrame(60, 2)));
  CHECK_EQ(WaitRx(p.guest, 5).size(), size_t{5});
  CHECK_EQ(p.guest.rx.call.Take(), uint64_t{0});  // used idx 6 < used_event 100: no interrupt
  // Tx: after an idle drain the device asks for the next kick (avail_event = its index).
  auto eth = nptest::EthFrame(64, 3);
  for (int round = 0; round < 3; ++round) {
    REQUIRE(p.guest.SendFrame(nptest::WithHdr(eth)) >= 0);
    bool kick = p.guest.tx.drv.Publish();
    CHECK(kick);
    p.guest.tx.kick.Signal();
    CHECK(p.tap.Take() == eth);
    CHECK(nptest::WaitFor([&] { return p.guest.TakeTxDone() == 1; }));
  }
  CHECK(nptest::AllConserved(p.g));
}

TEST(VirtioDevice, IndirectTablesAndBuffersAcrossRegions) {
  Pair p;
  auto eth = nptest::EthFrame(300, 6);
  // The buffer straddles guest-physical 1 MiB (two regions, two unrelated host ranges), and so
  // does the indirect table.
  p.guest.next_buf = nptest::kRegionSize - 100;
  uint64_t table = nptest::kRegionSize + 0x8000 - 16;
  REQUIRE(p.guest.SendFrame(nptest::WithHdr(eth), /*split=*/12, table) >= 0);
  p.guest.Kick(p.guest.tx);
  CHECK(p.tap.Take() == eth);
  // Rx into an indirect chain of two buffers, the second across the region boundary.
  uint64_t a = nptest::kRegionSize - 40;
  VirtqueueDriver::Buffer b[2] = {{0x30000, 12, true}, {a, 400, true}};
  int h = p.guest.rx.drv.AddBuffers(b, 2, nptest::kRegionSize + 0x9000);
  REQUIRE(h >= 0);
  p.guest.Kick(p.guest.rx);
  REQUIRE(p.tap.Inject(eth));
  uint32_t head = 0, len = 0;
  CHECK(nptest::WaitFor([&] { return p.guest.rx.drv.GetUsed(&head, &len); }));
  CHECK_EQ(len, uint32_t{312});
  std::vector<uint8_t> back(300);
  p.guest.rx.drv.Read(a, back.data(), back.size());
  CHECK(back == eth);
  CHECK(nptest::AllConserved(p.g));
}

TEST(VirtioDevice, NoRxBuffersHoldsFramesWithoutLoss) {
  Pair p;
  for (int i = 0; i < 20; ++i) REQUIRE(p.tap.Inject(nptest::EthFrame(100, static_cast<uint8_t>(i))));
  // One frame waits in our queue, the TAP stops reading: nothing is dropped.
  CHECK(nptest::WaitFor([&] { return p.Info().counters.queued == 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK_EQ(nptest::InfoOf(p.g, 1).counters.frames_in, uint64_t{1});
  CHECK_EQ(p.Info().counters.dropped(), uint64_t{0});
  p.guest.PostRx(32, 2048);
  p.guest.Kick(p.guest.rx);
  auto got = WaitRx(p.guest, 20);
  REQUIRE(got.size() == 20);
  for (int i = 0; i < 20; ++i) CHECK_EQ(got[i][12 + 20], i);  // in order
  CHECK_EQ(p.Info().counters.dropped(), uint64_t{0});
  CHECK_EQ(nptest::InfoOf(p.g, 1).counters.dropped(), uint64_t{0});
  CHECK(nptest::AllConserved(p.g));
}

TEST(VirtioDevice, RxRefillsRightAfterRunningOut) {
  Pair p;
  p.guest.PostRx(4, 2048);
  p.guest.Kick(p.guest.rx);
  for (int i = 0; i < 10; ++i) REQUIRE(p.tap.Inject(nptest::EthFrame(100, static_cast<uint8_t>(i))));
  CHECK_EQ(WaitRx(p.guest, 4).size(), size_t{4});
  // The device ran out and asked for a kick; the refill brings the rest.
  p.guest.PostRx(8, 2048);
  p.guest.Kick(p.guest.rx);
  CHECK_EQ(WaitRx(p.guest, 6).size(), size_t{6});
  CHECK(nptest::AllConserved(p.g));
}

TEST(VirtioDevice, TooManyTinyBuffersForOneFrameIsAnOversizeDrop) {
  Pair p(kModern, 0, /*qsize=*/16);
  p.guest.PostRx(16, 16);  // the whole ring: 256 bytes, and the frame needs 1012
  p.guest.Kick(p.guest.rx);
  REQUIRE(p.tap.Inject(nptest::EthFrame(1000, 1)));
  REQUIRE(p.tap.Inject(nptest::EthFrame(60, 2)));  // 72 bytes: 5 chains, fits
  auto got = WaitRx(p.guest, 5);
  CHECK_EQ(got.size(), size_t{5});
  CHECK_EQ(nptest::Drops(p.Info(), DropReason::kOversize), uint64_t{1});
  CHECK(nptest::AllConserved(p.g));
}

TEST(VirtioDevice, GuestGsoIsSegmentedForAPlainTapAndKeptWholeForAVnetTap) {
  for (int tap_hdr : {0, 12}) {
    Pair p(kModern, tap_hdr);
    auto pkt = Tso4(3000);
    REQUIRE(p.guest.SendFrame(pkt) >= 0);
    p.guest.Kick(p.guest.tx);
    if (tap_hdr == 0) {
      for (int i = 0; i < 3; ++i) CHECK_EQ(p.tap.Take().size(), size_t{14 + 20 + 20 + 1000});
      CHECK_EQ(nptest::InfoOf(p.g, 1).counters.segments, uint64_t{3});
    } else {
      CHECK(p.tap.Take() == pkt);
    }
    CHECK(p.tap.Take(50).empty());
    CHECK(nptest::AllConserved(p.g));
  }
}

TEST(VirtioDevice, TapGsoReachesTheGuestWholeOrSegmentedByItsFeatures) {
  // With GUEST_CSUM|GUEST_TSO4 and mergeable buffers: the 3054-byte frame whole.
  {
    Pair p(kModern | nptest::kFeatGuestCsum | nptest::kFeatGuestTso4, 12);
    CHECK_EQ(p.Info().counters.frames_in, uint64_t{0});
    p.guest.PostRx(16, 2048);
    p.guest.Kick(p.guest.rx);
    auto pkt = Tso4(3000);
    REQUIRE(p.tap.Inject(pkt));
    auto got = WaitRx(p.guest, 2);
    REQUIRE(got.size() == 2);
    CHECK_EQ(got[0][1], kGsoTcpv4);
    CHECK_EQ(got[0][10], 2);
    std::vector<uint8_t> joined;
    for (auto& b : got) joined.insert(joined.end(), b.begin(), b.end());
    joined[10] = 0;
    CHECK(joined == pkt);
  }
  // Without them: three wire frames, checksums done, zero headers.
  {
    Pair p(kModern, 12);
    p.guest.PostRx(16, 2048);
    p.guest.Kick(p.guest.rx);
    REQUIRE(p.tap.Inject(Tso4(3000)));
    auto got = WaitRx(p.guest, 3);
    REQUIRE(got.size() == 3);
    for (auto& b : got) {
      CHECK_EQ(b.size(), size_t{12 + 1054});
      CHECK_EQ(b[0], 0);
      CHECK_EQ(b[1], kGsoNone);
      FrameLayout lay;
      REQUIRE(ParseFrameLayout(b.data() + 12, b.size() - 12, 0, &lay) == VnetError::kOk);
      CHECK(nptest::L4ChecksumOk(b.data() + 12, b.size() - 12, lay));
    }
    CHECK_EQ(p.Info().counters.segments, uint64_t{3});
    CHECK(nptest::AllConserved(p.g));
  }
}

TEST(VirtioDevice, AcceptedOffloadsFollowTheGuestFeatures) {
  // The graph asks this of a TAP peer's client (a socketpair cannot take TUNSETOFFLOAD, so
  // ask directly; a NetContext without a loop has no home thread to check).
  NetContext ctx;
  VirtioDeviceQueue q2(10, "probe", &ctx);
  CHECK_EQ(q2.AcceptedOffloads(), 0u);
  REQUIRE(q2.SetFeatures(nptest::kFeatGuestCsum | nptest::kFeatGuestTso4 | nptest::kFeatGuestTso6).ok());
  CHECK_EQ(q2.AcceptedOffloads(), kOffloadCsum | kOffloadTso4 | kOffloadTso6);
  REQUIRE(q2.SetFeatures(nptest::kFeatGuestTso4).ok());  // TSO without CSUM: nothing
  CHECK_EQ(q2.AcceptedOffloads(), 0u);
  CHECK(q2.SetFeatures(1ull << 34).ok());   // packed rings: packed_virtqueue_test.cc
  CHECK(!q2.SetFeatures(1ull << 57).ok());  // hash report
}

TEST(VirtioDevice, TxBudgetYieldsAndContinues) {
  Pair p(kModern, 0, /*qsize=*/1024);
  auto eth = nptest::EthFrame(60, 8);
  for (int i = 0; i < 700; ++i) REQUIRE(p.guest.SendFrame(nptest::WithHdr(eth)) >= 0);
  p.guest.Kick(p.guest.tx);
  int n = 0;
  while (!p.tap.Take(2000).empty()) ++n;
  CHECK_EQ(n, 700);
  CHECK(nptest::WaitFor([&] { return p.guest.TakeTxDone() == 700; }));
  CHECK(nptest::AllConserved(p.g));
}

TEST(VirtioDevice, TxBackpressureFromAFullTapLosesNothing) {
  Pair p;
  p.tap.SmallBuffers();
  auto eth = nptest::EthFrame(1000, 5);
  for (int i = 0; i < 100; ++i) REQUIRE(p.guest.SendFrame(nptest::WithHdr(eth)) >= 0);
  p.guest.Kick(p.guest.tx);
  int n = 0;
  while (!p.tap.Take(2000).empty()) ++n;
  CHECK_EQ(n, 100);
  CHECK_EQ(p.Info().counters.dropped(), uint64_t{0});
  CHECK(nptest::AllConserved(p.g));
}

TEST(VirtioDevice, StopReturnsTheBaseAndARestartResumesThere) {
  Pair p;
  auto eth = nptest::EthFrame(64, 1);
  for (int i = 0; i < 5; ++i) REQUIRE(p.guest.SendFrame(nptest::WithHdr(eth)) >= 0);
  p.guest.Kick(p.guest.tx);
  for (int i = 0; i < 5; ++i) CHECK(p.tap.Take() == eth);
  auto base = p.g.StopVring(2, VirtioRing::kTx);
  REQUIRE(base.ok());
  CHECK_EQ(base.value, uint16_t{5});
  CHECK(!p.g.SetVirtioFeatures(2, kModern).ok());  // rx still runs
  REQUIRE(p.guest.SendFrame(nptest::WithHdr(eth)) >= 0);
  p.guest.Kick(p.guest.tx);  // nobody listens
  CHECK(p.tap.Take(100).empty());
  REQUIRE(p.g.StartVring(2, VirtioRing::kTx, p.guest.Start(VirtioRing::kTx, base.value)).ok());
  CHECK(p.tap.Take() == eth);  // the start scan found it without a kick
  CHECK(p.tap.Take(100).empty());
  CHECK(!p.g.StartVring(2, VirtioRing::kTx, p.guest.Start(VirtioRing::kTx)).ok());  // already running
}

TEST(VirtioDevice, RingsThatDoNotFitGuestMemoryAreRefused) {
  nptest::EventLog log;
  Guest guest;
  NetGraph g(log.Sink());
  REQUIRE(g.AddVirtioDevice(nptest::Spec(2, "vd")).ok());
  REQUIRE(g.SetVirtioFeatures(2, kModern).ok());
  auto s = guest.Start(VirtioRing::kTx);
  s.addrs.used = s.addrs.desc + 64;  // the used ring over the descriptor table
  Status st = g.StartVring(2, VirtioRing::kTx, std::move(s));
  CHECK(st.code == StatusCode::kInvalidInput);
  s = guest.Start(VirtioRing::kTx);
  s.addrs.desc = nptest::kUserBase0 + nptest::kRegionSize - 256;  // past the region's end
  CHECK(g.StartVring(2, VirtioRing::kTx, std::move(s)).code == StatusCode::kInvalidInput);
  s = guest.Start(VirtioRing::kTx);
  s.addrs.space = AddrSpace::kGuest;  // user addresses read as guest ones: outside
  CHECK(g.StartVring(2, VirtioRing::kTx, std::move(s)).code == StatusCode::kInvalidInput);
  ClientInfo i = nptest::InfoOf(g, 2);
  CHECK(!i.tx_started);
  // Each refusal is hostile input: counted, the pair in its error state, the err fd written.
  CHECK(i.broken);
  CHECK_EQ(i.errors, uint64_t{3});
  CHECK(i.error.find("tx ring: vring descriptor table") == 0);
  CHECK_EQ(guest.tx.err.Take(), uint64_t{3});
  CHECK_EQ(log.Count(GraphEvent::Kind::kVringError), size_t{3});
  // Both rings stopped: a good layout starts again (a reset).
  REQUIRE(g.StartVring(2, VirtioRing::kTx, guest.Start(VirtioRing::kTx)).ok());
  CHECK(!nptest::InfoOf(g, 2).broken);
}

// ---- a hostile guest ---------------------------------------------------------------------
// Queue pair 0 gets the hostile input, queue pair 1 (its own guest rings, TAP and thread)
// must not notice. Expected for each case: pair 0 broken with a reason, counted once, its err
// fd written, one vring-error event, frames for it dropped and counted, the process alive.

namespace {

struct TwoPairs {
  nptest::EventLog log;
  FakeTap t0, t1;
  Guest g0, g1;
  NetGraph g{log.Sink()};
  TwoPairs() {
    REQUIRE(g.AddTap(nptest::Spec(1, "t0", 0), t0.dp(), 0).ok());
    REQUIRE(g.AddVirtioDevice(nptest::Spec(2, "vd0", 0)).ok());
    REQUIRE(g.AddTap(nptest::Spec(3, "t1", 1), t1.dp(), 0).ok());
    REQUIRE(g.AddVirtioDevice(nptest::Spec(4, "vd1", 1)).ok());
    REQUIRE(g.Connect(1, 2).ok());
    REQUIRE(g.Connect(3, 4).ok());
    REQUIRE(g0.StartAll(g, 2, kModern));
    REQUIRE(g1.StartAll(g, 4, kModern));
    g1.PostRx(64, 2048);
    g1.Kick(g1.rx);
  }
  // Descriptor i of ring r's table, or entry i of an indirect table at `table`.
  void Raw(nptest::GuestRing& r, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next,
           uint64_t table = 0) {
    REQUIRE(r.drv.WriteDescRaw(i, VringDesc{addr, len, flags, next}, table));
  }
  // Offer head `head` on ring r and kick.
  void Offer(nptest::GuestRing& r, uint16_t head) {
    r.drv.PushAvailRaw(head);
    r.drv.Publish();
    r.kick.Signal();
  }
  void SecondPairWorks() {
    auto eth = nptest::EthFrame(64, 0x11);
    REQUIRE(g1.SendFrame(nptest::WithHdr(eth)) >= 0);
    g1.Kick(g1.tx);
    CHECK(t1.Take() == eth);
    REQUIRE(t1.Inject(eth));
    auto got = WaitRx(g1, 1);
    CHECK_EQ(got.size(), size_t{1});
  }
  void ExpectBroken(VirtioRing ring, const char* reason) {
    nptest::GuestRing& r = g0.ring(ring);
    CHECK(nptest::WaitFor([&] { return nptest::InfoOf(g, 2).broken; }));
    ClientInfo i = nptest::InfoOf(g, 2);
    CHECK_EQ(i.errors, uint64_t{1});
    if (i.error.find(reason) == std::string::npos || i.error.find(VirtioRingName(ring)) != 0)
      nptest::Fail(__FILE__, __LINE__,
                   "error '" + i.error + "' is not '" + VirtioRingName(ring) + " ring: " + reason + "'");
    CHECK(nptest::WaitFor([&] { return r.err.Take() == 1; }));
    CHECK(nptest::WaitFor([&] { return log.Count(GraphEvent::Kind::kVringError) == 1; }));
    {
      std::lock_guard<std::mutex> l(log.mu);
      for (auto& e : log.events)
        if (e.kind == GraphEvent::Kind::kVringError) {
          CHECK_EQ(e.handle, uint32_t{2});
          CHECK_EQ(e.ring, static_cast<int>(ring));
          CHECK(e.reason == i.error);
        }
    }
    SecondPairWorks();
    // Frames for the broken pair are dropped and counted; nothing piles up.
    uint64_t dead = nptest::Drops(i, DropReason::kDeadDevice);
    REQUIRE(t0.Inject(nptest::EthFrame(64, 1)));
    CHECK(nptest::WaitFor([&] { return nptest::Drops(nptest::InfoOf(g, 2), DropReason::kDeadDevice) > dead; }));
    CHECK(!nptest::InfoOf(g, 1).link_down);
    CHECK(nptest::AllConserved(g));
    CHECK(!nptest::InfoOf(g, 4).broken);
  }
};

}  // namespace

namespace {
// One hostile input to queue pair 0: descriptors the guest writes (into ring r's table, or
// with `table` into an indirect table there), the head it then offers (-1: none), or
// something else it does; which ring breaks and the reason.
struct RawDesc {
  uint16_t i;
  uint64_t addr;
  uint32_t len;
  uint16_t flags, next;
  uint64_t table;
};
struct HostileCase {
  const char* name;
  VirtioRing ring;
  const char* reason;
  std::vector<RawDesc> descs;
  int offer;
  std::function<void(TwoPairs&)> act;
};

void RunHostile(const std::vector<HostileCase>& cases) {
  for (const HostileCase& c : cases) {
    std::fprintf(stderr, "  case: %s\n", c.name);
    TwoPairs p;
    nptest::GuestRing& r = p.g0.ring(c.ring);
    for (const RawDesc& d : c.descs) p.Raw(r, d.i, d.addr, d.len, d.flags, d.next, d.table);
    if (c.offer >= 0) p.Offer(r, static_cast<uint16_t>(c.offer));
    if (c.act) c.act(p);
    if (c.ring == VirtioRing::kRx) REQUIRE(p.t0.Inject(nptest::EthFrame(64, 1)));  // rx breaks on use
    p.ExpectBroken(c.ring, c.reason);
  }
}

constexpr uint16_t kN = kVringDescFNext, kW = kVringDescFWrite, kI = kVringDescFIndirect;
constexpr uint64_t kMemEnd = 2 * nptest::kRegionSize;
}  // namespace

TEST(VirtioHostile, TxDescriptorsBreakOnlyTheirQueuePair) {
  const VirtioRing tx = VirtioRing::kTx;
  RunHostile({
      {"loop A->B->A", tx, "loop", {{0, 0x40000, 64, kN, 1, 0}, {1, 0x40000, 64, kN, 0, 0}}, 0, {}},
      {"self-loop in an indirect table",
       tx,
       "loop",
       {{0, 0x40000, 64, kN, 0, 0x50000}, {0, 0x50000, 16, kI, 0, 0}},
       0,
       {}},
      {"next >= size", tx, "next index out of range", {{0, 0x40000, 64, kN, 300, 0}}, 0, {}},
      {"head >= size", tx, "head index out of range", {}, 256, {}},
      {"nested indirect",
       tx,
       "indirect descriptor inside an indirect table",
       {{0, 0x60000, 16, kI, 0, 0x50000}, {0, 0x50000, 16, kI, 0, 0}},
       0,
       {}},
      {"indirect len 15", tx, "indirect table length", {{0, 0x50000, 15, kI, 0, 0}}, 0, {}},
      {"outside every region", tx, "outside guest memory", {{0, 3 * nptest::kRegionSize, 64, 0, 0, 0}}, 0, {}},
      {"addr + len wraps", tx, "outside guest memory", {{0, ~0ull - 16, 64, 0, 0, 0}}, 0, {}},
      {"one byte past the memory", tx, "outside guest memory", {{0, kMemEnd - 63, 64, 0, 0, 0}}, 0, {}},
      {"zero length", tx, "zero-length", {{0, 0xdeadbeef000ull, 0, 0, 0, 0}}, 0, {}},
      {"writable descriptor in tx",
       tx,
       "device-writable descriptor in a tx chain",
       {{0, 0x40000, 64, kW, 0, 0}},
       0,
       {}},
      {"avail idx jumps by N+1",
       tx,
       "avail index moved",
       {},
       -1,
       [](TwoPairs& p) {
         p.g0.tx.drv.SetAvailIdxRaw(257);
         p.g0.tx.kick.Signal();
       }},
  });
}

TEST(VirtioHostile, RxDescriptorsBreakOnlyTheirQueuePair) {
  const VirtioRing rx = VirtioRing::kRx;
  RunHostile({
      {"readable descriptor in rx",
       rx,
       "device-readable descriptor in an rx chain",
       {{0, 0x40000, 2048, 0, 0, 0}},
       0,
       {}},
      {"rx buffer smaller than the header", rx, "rx buffer smaller", {{0, 0x40000, 4, kW, 0, 0}}, 0, {}},
      {"rx avail idx jumps by 0x8000",
       rx,
       "avail index moved",
       {},
       -1,
       [](TwoPairs& p) {
         p.g0.rx.drv.SetAvailIdxRaw(0x8000);
         p.g0.rx.kick.Signal();
       }},
  });
}

TEST(VirtioHostile, KickFdThatIsNotAnEventfd) {
  TwoPairs p;
  REQUIRE(p.g.StopVring(2, VirtioRing::kTx).ok());
  int pfd[2];
  REQUIRE(pipe(pfd) == 0);
  auto s = p.g0.Start(VirtioRing::kTx);
  s.kick = UniqueFd(pfd[0]);
  REQUIRE(p.g.StartVring(2, VirtioRing::kTx, std::move(s)).ok());
  close(pfd[1]);  // EOF: readable forever
  p.ExpectBroken(VirtioRing::kTx, "kick fd failed");
}

TEST(VirtioHostile, BrokenPairResetsWhenBothRingsRestart) {
  TwoPairs p;
  p.g0.tx.drv.SetAvailIdxRaw(1000);
  p.g0.tx.kick.Signal();
  CHECK(nptest::WaitFor([&] { return nptest::InfoOf(p.g, 2).broken; }));
  CHECK(!p.g.StartVring(2, VirtioRing::kTx, p.g0.Start(VirtioRing::kTx)).ok());  // rx still runs
  REQUIRE(p.g.StopVring(2, VirtioRing::kRx).ok());
  REQUIRE(p.g.StopVring(2, VirtioRing::kTx).ok());
  // The driver starts over (a device reset re-initialises the rings).
  p.g0.Layout(&p.g0.rx, 0x0000);
  p.g0.Layout(&p.g0.tx, 0x10000);
  REQUIRE(p.g.StartVring(2, VirtioRing::kRx, p.g0.Start(VirtioRing::kRx)).ok());
  REQUIRE(p.g.StartVring(2, VirtioRing::kTx, p.g0.Start(VirtioRing::kTx)).ok());
  ClientInfo i = nptest::InfoOf(p.g, 2);
  CHECK(!i.broken);
  CHECK_EQ(i.errors, uint64_t{1});  // the count stays
  auto eth = nptest::EthFrame(64, 2);
  REQUIRE(p.g0.SendFrame(nptest::WithHdr(eth)) >= 0);
  p.g0.Kick(p.g0.tx);
  CHECK(p.t0.Take() == eth);
}

TEST(VirtioHostile, BadTxPacketsAreDroppedNotFatal) {
  Pair p(kModern, 0);
  auto eth = nptest::EthFrame(100, 3);
  std::vector<std::vector<uint8_t>> bad;
  bad.push_back(std::vector<uint8_t>(12, 0));  // only a header
  bad.push_back(std::vector<uint8_t>(8, 0));   // less than a header
  auto csum = nptest::WithHdr(eth);
  csum[0] = kVnetFlagNeedsCsum;
  csum[6] = 200;  // csum_start beyond the packet
  bad.push_back(csum);
  auto gso0 = Tso4(2000);
  gso0[4] = gso0[5] = 0;  // gso_size 0
  bad.push_back(gso0);
  auto unknown = nptest::WithHdr(eth);
  unknown[1] = 7;  // no such gso_type
  bad.push_back(unknown);
  bad.push_back(nptest::WithHdr(nptest::EthFrame(kMaxFrameLen + 1, 1)));  // larger than a TAP takes
  for (auto& b : bad) REQUIRE(p.guest.SendFrame(b) >= 0);
  // A good one split over three descriptors, the header itself split in two.
  auto good = nptest::WithHdr(eth);
  uint64_t a = p.guest.Alloc(static_cast<uint32_t>(good.size()));
  p.guest.tx.drv.Write(a, good.data(), good.size());
  VirtqueueDriver::Buffer parts[3] = {
      {a, 5, false}, {a + 5, 20, false}, {a + 25, static_cast<uint32_t>(good.size() - 25), false}};
  REQUIRE(p.guest.tx.drv.AddBuffers(parts, 3) >= 0);
  p.guest.Kick(p.guest.tx);
  CHECK(p.tap.Take() == eth);
  CHECK(nptest::WaitFor([&] { return p.guest.TakeTxDone() == 7; }));
  ClientInfo i = p.Info();
  CHECK(!i.broken);
  CHECK_EQ(nptest::Drops(i, DropReason::kBadVnetHdr), uint64_t{5});
  CHECK_EQ(nptest::Drops(i, DropReason::kOversize), uint64_t{1});
  CHECK(nptest::AllConserved(p.g));
}

TEST(VirtioDevice, StartStopCyclesAndRefusedStartsLeakNoFd) {
  Pair p;
  REQUIRE(p.g.StopVring(2, VirtioRing::kRx).ok());
  REQUIRE(p.g.StopVring(2, VirtioRing::kTx).ok());
  int before = nptest::OpenFdCount();
  for (int i = 0; i < 2000; ++i) {
    REQUIRE(p.g.StartVring(2, VirtioRing::kTx, p.guest.Start(VirtioRing::kTx)).ok());
    auto bad = p.guest.Start(VirtioRing::kRx);
    bad.addrs.used = bad.addrs.desc;  // refused: its fds are closed, not kept
    REQUIRE(!p.g.StartVring(2, VirtioRing::kRx, std::move(bad)).ok());
    REQUIRE(p.g.StopVring(2, VirtioRing::kTx).ok());
  }
  CHECK_EQ(nptest::OpenFdCount(), before);
  // A ring never started answers GET_VRING_BASE with its base (0), twice in a row too.
  auto b = p.g.StopVring(2, VirtioRing::kRx);
  REQUIRE(b.ok());
  CHECK_EQ(b.value, uint16_t{0});
  CHECK(p.g.StopVring(2, VirtioRing::kRx).ok());
  CHECK(!p.g.StopVring(1, VirtioRing::kRx).ok());  // a TAP is not a virtio queue pair
}

TEST(VirtioDevice, ACallFdThatWouldBlockDoesNotStallTheQueue) {
  Pair p;
  REQUIRE(p.g.StopVring(2, VirtioRing::kTx).ok());
  int pfd[2];
  REQUIRE(pipe2(pfd, O_NONBLOCK | O_CLOEXEC) == 0);
  char junk[4096] = {};
  while (write(pfd[1], junk, sizeof junk) > 0) {
  }
  auto s = p.guest.Start(VirtioRing::kTx, 0);
  s.call = UniqueFd(pfd[1]);  // full: every interrupt write would block
  REQUIRE(p.g.StartVring(2, VirtioRing::kTx, std::move(s)).ok());
  auto eth = nptest::EthFrame(64, 4);
  for (int round = 0; round < 3; ++round) {
    REQUIRE(p.guest.SendFrame(nptest::WithHdr(eth)) >= 0);
    p.guest.Kick(p.guest.tx);
    CHECK(p.tap.Take() == eth);
  }
  close(pfd[0]);
}
