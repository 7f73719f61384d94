// VirtioDriverQueue (netplane as the virtio driver) against VirtioDeviceQueue (netplane as
// the device) over rings in one memfd, each peered with a FakeTap: frames both ways through
// both roles' rings, a stop and resume from the saved base, link-down drops, and a device
// that completes a buffer that is not in flight.
#include <fcntl.h>
#include <sys/eventfd.h>

#include "frame_builder.h"
#include "test.h"
#include "virtio_guest.h"

using namespace netplane::core;
using nptest::FakeTap;

namespace {
constexpr uint32_t kSize = 64;
constexpr uint32_t kBuf = 2048;
constexpr uint64_t kRingStride = 0x30000;  // desc, avail, used 4 KiB apart, buffers from +12 KiB
constexpr uint64_t kMemSize = 4 * kRingStride;

UniqueFd Dup(int fd) { return UniqueFd(::fcntl(fd, F_DUPFD_CLOEXEC, 0)); }

struct Rig {
  nptest::EventLog log;
  FakeTap tap_a, tap_b;
  UniqueFd memfd;
  std::shared_ptr<GuestMemory> mem;
  nptest::EventFd kick[2], call[2];
  NetGraph g{log.Sink()};

  // Both roles negotiate `features`; the taps carry headers of tap_hdr bytes.
  explicit Rig(uint64_t features = nptest::kFeatVersion1, int tap_hdr = 0) {
    memfd = std::move(MemfdCreate("np-test-drv", kMemSize).value);
    std::vector<GuestRegionSpec> r = {{0, kMemSize, 0x7f0000000000ull, memfd.get(), 0}};
    mem = GuestMemory::Map(r).value;
    REQUIRE(g.AddTap(nptest::Spec(1, "ta"), tap_a.dp(), tap_hdr).ok());
    REQUIRE(g.AddVirtioDriver(nptest::Spec(2, "drv")).ok());
    REQUIRE(g.AddVirtioDevice(nptest::Spec(3, "dev")).ok());
    REQUIRE(g.AddTap(nptest::Spec(4, "tb"), tap_b.dp(), tap_hdr).ok());
    REQUIRE(g.Connect(1, 2).ok());
    REQUIRE(g.Connect(3, 4).ok());
    REQUIRE(g.SetDriverFeatures(2, features).ok());
    REQUIRE(g.SetVirtioFeatures(3, features).ok());
  }
  static uint64_t Base(int ring) { return uint64_t(ring) * kRingStride; }
  Status StartDriver(int ring, bool reset) {
    DriverRingStart s;
    s.memory = mem;
    s.size = kSize;
    s.desc = Base(ring);
    s.avail = Base(ring) + 0x1000;
    s.used = Base(ring) + 0x2000;
    s.buffers = Base(ring) + 0x3000;
    s.buffer_size = kBuf;
    s.kick = Dup(kick[ring].fd);
    s.call = Dup(call[ring].fd);
    s.reset = reset;
    return g.StartDriverRing(2, ring == 0 ? VirtioRing::kRx : VirtioRing::kTx, std::move(s));
  }
  Status StartDevice(int ring, uint16_t base) {
    VirtioRingStart s;
    s.memory = mem;
    s.addrs.size = kSize;
    s.addrs.desc = Base(ring);
    s.addrs.avail = Base(ring) + 0x1000;
    s.addrs.used = Base(ring) + 0x2000;
    s.addrs.space = AddrSpace::kGuest;
    s.addrs.base = base;
    s.kick = Dup(kick[ring].fd);
    s.call = Dup(call[ring].fd);
    return g.StartVring(3, ring == 0 ? VirtioRing::kRx : VirtioRing::kTx, std::move(s));
  }
  void StartAll(bool reset = true, uint16_t rx_base = 0, uint16_t tx_base = 0) {
    REQUIRE(StartDriver(0, reset).ok());
    REQUIRE(StartDriver(1, reset).ok());
    REQUIRE(StartDevice(0, rx_base).ok());
    REQUIRE(StartDevice(1, tx_base).ok());
  }
  ClientInfo Info(uint32_t h) { return nptest::InfoOf(g, h); }
};

// Frames both ways; with taps carrying headers, each frame has a zero one in front.
void CrossBothWays(Rig& r, int n, uint8_t tag, size_t tap_hdr = 0) {
  auto framed = [&](std::vector<uint8_t> eth) {
    eth.insert(eth.begin(), tap_hdr, 0);
    return eth;
  };
  for (int i = 0; i < n; ++i) {
    auto a = framed(nptest::EthFrame(100 + i, static_cast<uint8_t>(tag + i)));
    REQUIRE(r.tap_a.Inject(a));
    CHECK(r.tap_b.Take() == a);  // A -> driver tx ring -> device -> B
    auto b = framed(nptest::EthFrame(1514, static_cast<uint8_t>(tag + i)));
    REQUIRE(r.tap_b.Inject(b));
    CHECK(r.tap_a.Take() == b);  // B -> device -> driver rx ring -> A
  }
}
}  // namespace

TEST(VirtioDriver, FramesCrossBothRolesAndRecycleBuffers) {
  Rig r;
  r.StartAll();
  CrossBothWays(r, 3 * kSize, 0);  // three rings' worth: buffers go round
  // Each direction counts: from the peer (in) to the back-end (out), and back.
  CHECK_EQ(r.Info(2).counters.frames_in, uint64_t{2 * 3 * kSize});
  CHECK_EQ(r.Info(2).counters.frames_out, uint64_t{2 * 3 * kSize});
  CHECK_EQ(r.Info(2).counters.dev_rx_frames, uint64_t{3 * kSize});
  CHECK_EQ(r.Info(2).counters.dev_tx_frames, uint64_t{3 * kSize});
  CHECK(r.Info(2).kind == ClientKind::kVirtioDriver);
  CHECK(nptest::AllConserved(r.g));
}

TEST(VirtioDriver, StopAndResumeFromTheUsedIndex) {
  Rig r;
  r.StartAll();
  CrossBothWays(r, 10, 1);
  // The back-end goes away: both sides stop; the driver's used index is the resume base.
  auto rx_base = r.g.StopDriverRing(2, VirtioRing::kRx);
  auto tx_base = r.g.StopDriverRing(2, VirtioRing::kTx);
  REQUIRE(rx_base.ok() && tx_base.ok());
  CHECK_EQ(rx_base.value, uint16_t{10});
  CHECK_EQ(tx_base.value, uint16_t{10});
  r.g.StopVring(3, VirtioRing::kRx);
  r.g.StopVring(3, VirtioRing::kTx);
  // Link down: what comes for the back-end now is a counted drop, not a queued frame.
  REQUIRE(r.g.SetLinkDown(2, true).ok());
  REQUIRE(r.tap_a.Inject(nptest::EthFrame(80, 9)));
  CHECK(nptest::WaitFor([&] { return r.Info(2).counters.drops[size_t(DropReason::kLinkDown)] == 1; }));
  REQUIRE(r.g.SetLinkDown(2, false).ok());
  // A new back-end is told the saved bases; the rings resume without a reset.
  r.StartAll(false, rx_base.value, tx_base.value);
  CrossBothWays(r, kSize, 2);
  CHECK(nptest::AllConserved(r.g));
  // Resuming with another layout is refused.
  r.g.StopDriverRing(2, VirtioRing::kRx);
  DriverRingStart s;
  s.memory = r.mem;
  s.size = kSize / 2;
  s.buffer_size = kBuf;
  s.kick = Dup(r.kick[0].fd);
  s.call = Dup(r.call[0].fd);
  s.reset = false;
  CHECK(!r.g.StartDriverRing(2, VirtioRing::kRx, std::move(s)).ok());
}

TEST(VirtioDriver, AUsedIdNotInFlightBreaksThePair) {
  Rig r;
  REQUIRE(r.StartDriver(0, true).ok());
  REQUIRE(r.StartDriver(1, true).ok());
  // Play a hostile device on the tx ring: complete descriptor 5, which was never added.
  uint8_t* used = r.mem->TranslateContiguous(AddrSpace::kGuest, Rig::Base(1) + 0x2000, 6 + 8 * kSize);
  REQUIRE(used != nullptr);
  StoreRelaxed32(used + kRingEntriesOff, 5);
  StoreRelaxed32(used + kRingEntriesOff + 4, 0);
  StoreRelease16(used + kRingIdxOff, 1);
  REQUIRE(r.tap_a.Inject(nptest::EthFrame(80, 1)));
  CHECK(nptest::WaitFor([&] { return r.Info(2).broken; }));
  CHECK(r.Info(2).error.find("in flight") != std::string::npos);
  CHECK(nptest::WaitFor([&] { return r.log.Count(GraphEvent::Kind::kVringError) == 1; }));
  // Frames for it are dropped and counted; the process goes on.
  REQUIRE(r.tap_a.Inject(nptest::EthFrame(80, 2)));
  CHECK(nptest::WaitFor([&] { return r.Info(2).counters.drops[size_t(DropReason::kDeadDevice)] >= 1; }));
  CHECK(nptest::AllConserved(r.g));
  // A used length past the buffer on the rx ring is refused the same way (after a reset).
  r.g.StopDriverRing(2, VirtioRing::kRx);
  r.g.StopDriverRing(2, VirtioRing::kTx);
  REQUIRE(r.StartDriver(0, true).ok());
  REQUIRE(r.StartDriver(1, true).ok());
  CHECK(!r.Info(2).broken);
  uint8_t* rx_used = r.mem->TranslateContiguous(AddrSpace::kGuest, Rig::Base(0) + 0x2000, 6 + 8 * kSize);
  StoreRelaxed32(rx_used + kRingEntriesOff, 0);
  StoreRelaxed32(rx_used + kRingEntriesOff + 4, kBuf + 1);
  StoreRelease16(rx_used + kRingIdxOff, 1);
  r.call[0].Signal();
  CHECK(nptest::WaitFor([&] { return r.Info(2).broken; }));
  CHECK(r.Info(2).error.find("is larger than chain") != std::string::npos);
  CHECK(nptest::AllConserved(r.g));
}

namespace {
constexpr uint64_t kCsum = 1ull << 0, kHostTso4 = 1ull << 11;
constexpr uint64_t kOffloadFeatures = nptest::kFeatVersion1 | nptest::kFeatMrg | nptest::kFeatEventIdx | kCsum |
                                      kHostTso4 | nptest::kFeatGuestCsum | nptest::kFeatGuestTso4;
}  // namespace

TEST(VirtioDriver, GsoFramesOf64KiBCrossWholeBothWaysOverChainsAndMergedBuffers) {
  Rig r(kOffloadFeatures, 12);
  r.StartAll();
  // The back-end takes TSO4: the tap's offloads follow what the driver accepts.
  CHECK_EQ(r.Info(2).features, kOffloadFeatures);
  for (int i = 0; i < 3; ++i) {
    auto pkt = nptest::Tso4(65000 - 54, 12);  // 65000-byte frame: a chain of 32 tx buffers
    pkt[12 + 60] = static_cast<uint8_t>(i);
    REQUIRE(r.tap_a.Inject(pkt));
    CHECK(r.tap_b.Take() == pkt);  // whole, header and all
    REQUIRE(r.tap_b.Inject(pkt));
    CHECK(r.tap_a.Take() == pkt);  // whole, over 32 mergeable rx buffers
  }
  const ClientInfo d = r.Info(2);
  CHECK_EQ(d.tx_gso, uint64_t{3});
  CHECK_EQ(d.rx_gso, uint64_t{3});
  CHECK_EQ(d.rx_merged, uint64_t{3});
  CHECK_EQ(d.rx_buffers, uint64_t{3 * 32});
  CHECK_EQ(d.tx_max_frame, uint64_t{65000});
  CHECK_EQ(d.rx_max_frame, uint64_t{65000});
  CHECK_EQ(d.counters.segments, uint64_t{0});
  // EVENT_IDX: the driver keeps tx interrupts off (used_event behind), so the device waives
  // each tx completion interrupt and counts it.
  CHECK(nptest::WaitFor([&] { return r.Info(3).notifies_suppressed >= 1; }));
  CrossBothWays(r, 2 * kSize, 7, 12);  // small frames keep going round the rings
  CHECK(nptest::AllConserved(r.g));
}

TEST(VirtioDriver, ABackEndWithoutTsoGetsSegmentsAndTooBigIsCounted) {
  Rig r(nptest::kFeatVersion1 | nptest::kFeatMrg | nptest::kFeatEventIdx, 12);
  r.StartAll();
  REQUIRE(r.tap_a.Inject(nptest::Tso4(3000, 12)));
  for (int i = 0; i < 3; ++i) {
    auto seg = r.tap_b.Take();
    REQUIRE(seg.size() == 12 + 54 + 1000);
    CHECK_EQ(seg[1], kGsoNone);
  }
  CHECK_EQ(r.Info(2).counters.segments, uint64_t{3});
  // 64 KiB in 1000-byte segments: 65 chains, more than the 64-descriptor ring can ever hold.
  REQUIRE(r.tap_a.Inject(nptest::Tso4(65000 - 54, 12)));
  CHECK(nptest::WaitFor([&] { return r.Info(2).counters.drops[size_t(DropReason::kOversize)] == 1; }));
  CHECK(nptest::AllConserved(r.g));
}
