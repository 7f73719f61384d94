// TAP clients forwarding through a NetGraph on IoThreads, with SOCK_SEQPACKET socketpairs
// standing in for TAP queue fds (no privilege needed).
#include "dataplane_helpers.h"
#include "test.h"

using namespace netplane::core;
using nptest::FakeTap;

TEST(TapClient, ForwardsBothWaysAndPadsShortFrames) {
  nptest::EventLog log;
  FakeTap a, b;
  NetGraph g(log.Sink());
  REQUIRE(g.AddTap(nptest::Spec(1, "ta"), a.dp(), 0).ok());
  REQUIRE(g.AddTap(nptest::Spec(2, "tb"), b.dp(), 0).ok());
  REQUIRE(g.Connect(1, 2).ok());
  REQUIRE(a.Inject(nptest::EthFrame(34, 1)));
  auto got = b.Take();
  CHECK_EQ(got.size(), size_t{60});  // padded: the peer is not a NIC
  CHECK_EQ(got[20], 1);
  CHECK_EQ(got[40], 0);
  REQUIRE(b.Inject(nptest::EthFrame(1500, 2)));
  got = a.Take();
  CHECK_EQ(got.size(), size_t{1500});
  auto ia = nptest::InfoOf(g, 1);
  CHECK_EQ(ia.counters.dev_rx_frames, uint64_t{1});
  CHECK_EQ(ia.counters.dev_tx_frames, uint64_t{1});
  CHECK_EQ(ia.peer, int64_t{2});
  CHECK(ia.iothread == std::string("np-q0"));
  CHECK(nptest::AllConserved(g));
}

TEST(TapClient, VnetHeaderStrippedAndPrepended) {
  FakeTap a, b;
  NetGraph g(nullptr);
  REQUIRE(g.AddTap(nptest::Spec(1, "ta"), a.dp(), 12).ok());
  REQUIRE(g.AddTap(nptest::Spec(2, "tb"), b.dp(), 0).ok());
  REQUIRE(g.Connect(1, 2).ok());
  std::vector<uint8_t> framed(12, 0);
  auto eth = nptest::EthFrame(100, 3);
  framed.insert(framed.end(), eth.begin(), eth.end());
  REQUIRE(a.Inject(framed));
  auto got = b.Take();
  CHECK(got == eth);
  REQUIRE(b.Inject(eth));
  got = a.Take();
  REQUIRE(got.size() == 112);
  CHECK(std::vector<uint8_t>(got.begin(), got.begin() + 12) == std::vector<uint8_t>(12, 0));
  CHECK(std::vector<uint8_t>(got.begin() + 12, got.end()) == eth);
  // A read no longer than the header is dropped and counted.
  REQUIRE(a.Inject(std::vector<uint8_t>(12, 0)));
  CHECK(nptest::WaitFor([&] { return nptest::Drops(nptest::InfoOf(g, 1), DropReason::kBadVnetHdr) == 1; }));
  CHECK(nptest::AllConserved(g));
}

TEST(TapClient, EagainQueuesStopsTheSenderAndLosesNothing) {
  FakeTap a, b;
  NetGraph g(nullptr);
  b.SmallBuffers();
  REQUIRE(g.AddTap(nptest::Spec(1, "ta"), a.dp(), 0).ok());
  REQUIRE(g.AddTap(nptest::Spec(2, "tb"), b.dp(), 0).ok());
  REQUIRE(g.Connect(1, 2).ok());
  // More frames than b's buffer holds, while nobody reads b: b hits EAGAIN, queues one
  // frame, and a stops reading (the rest wait in a's socket, like the kernel's tap queue).
  const int kFrames = 200;
  int injected = 0;
  // Tagged by the count of frames that went in: an inject the full socket refuses (a slow
  // run, valgrind) leaves no gap in the tags the drain below checks in order.
  for (int i = 0; i < kFrames; ++i) injected += a.Inject(nptest::EthFrame(1000, static_cast<uint8_t>(injected)));
  CHECK(nptest::WaitFor([&] { return nptest::InfoOf(g, 2).counters.eagain > 0; }));
  auto ib = nptest::InfoOf(g, 2);
  CHECK(ib.counters.queued <= 1);
  CHECK(nptest::AllConserved(g));
  // Drain b: every frame arrives, in order, with no drop anywhere.
  int got = 0;
  bool in_order = true;
  while (got < injected) {
    auto f = b.Take();
    if (f.empty()) break;
    in_order = in_order && f[20] == static_cast<uint8_t>(got);
    ++got;
  }
  CHECK_EQ(got, injected);
  CHECK(in_order);
  for (auto& i : g.Snapshot()) CHECK_EQ(i.counters.dropped(), uint64_t{0});
  CHECK(nptest::AllConserved(g));
}

TEST(TapClient, DeadDeviceRaisesOneEventAndStopsPolling) {
  nptest::EventLog log;
  FakeTap a, b;
  NetGraph g(log.Sink());
  REQUIRE(g.AddTap(nptest::Spec(1, "ta"), a.dp(), 0).ok());
  REQUIRE(g.AddTap(nptest::Spec(2, "tb"), b.dp(), 0).ok());
  REQUIRE(g.Connect(1, 2).ok());
  a.CloseKernelSide();  // the socket reports HUP and EOF, as a deleted TAP reports EBADFD
  CHECK(nptest::WaitFor([&] { return log.Count(GraphEvent::Kind::kTapDead) == 1; }));
  auto ia = nptest::InfoOf(g, 1);
  CHECK(ia.dead);
  CHECK(ia.link_down);
  // Nothing polls the dead fd any more: the wakeup count stays put.
  uint64_t wakeups = ia.counters.wakeups;
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK_EQ(nptest::InfoOf(g, 1).counters.wakeups, wakeups);
  // Frames towards the dead tap are dropped and counted as deadDevice.
  REQUIRE(b.Inject(nptest::EthFrame(100, 1)));
  CHECK(nptest::WaitFor([&] { return nptest::Drops(nptest::InfoOf(g, 1), DropReason::kDeadDevice) == 1; }));
  CHECK_EQ(log.Count(GraphEvent::Kind::kTapDead), size_t{1});
  // Link up does not revive a dead device.
  REQUIRE(g.SetLinkDown(1, false).ok());
  CHECK(nptest::InfoOf(g, 1).link_down);
  CHECK(nptest::AllConserved(g));
}

TEST(TapClient, LinkDownDropsAndCountsThenUpRestores) {
  FakeTap a, b;
  NetGraph g(nullptr);
  REQUIRE(g.AddTap(nptest::Spec(1, "ta"), a.dp(), 0).ok());
  REQUIRE(g.AddTap(nptest::Spec(2, "tb"), b.dp(), 0).ok());
  REQUIRE(g.Connect(1, 2).ok());
  REQUIRE(g.SetLinkDown(1, true).ok());
  REQUIRE(a.Inject(nptest::EthFrame(100, 1)));  // a keeps reading while down: dropped
  REQUIRE(b.Inject(nptest::EthFrame(100, 2)));  // towards a: dropped at a
  CHECK(nptest::WaitFor([&] { return nptest::Drops(nptest::InfoOf(g, 1), DropReason::kLinkDown) == 2; }));
  CHECK(b.Take(50).empty());
  CHECK(a.Take(50).empty());
  REQUIRE(g.SetLinkDown(1, false).ok());
  REQUIRE(a.Inject(nptest::EthFrame(100, 3)));
  auto got = b.Take();
  REQUIRE(got.size() == 100);
  CHECK_EQ(got[20], 3);
  CHECK(nptest::AllConserved(g));
}

TEST(TapClient, DisabledQueueIsNotPolled) {
  FakeTap a, b;
  NetGraph g(nullptr);
  REQUIRE(g.AddTap(nptest::Spec(1, "ta"), a.dp(), 0).ok());
  REQUIRE(g.AddTap(nptest::Spec(2, "tb"), b.dp(), 0).ok());
  REQUIRE(g.Connect(1, 2).ok());
  REQUIRE(g.SetQueueEnabled(1, false).ok());
  REQUIRE(a.Inject(nptest::EthFrame(100, 1)));
  CHECK(b.Take(50).empty());
  REQUIRE(g.SetQueueEnabled(1, true).ok());
  CHECK_EQ(b.Take().size(), size_t{100});
  CHECK(nptest::AllConserved(g));
}

TEST(NetGraph, PlacementPerQueueAndErrors) {
  FakeTap a0, a1, b0, b1, p;
  NetGraph g(nullptr);
  REQUIRE(g.AddTap(nptest::Spec(1, "a", 0), a0.dp(), 0).ok());
  REQUIRE(g.AddTap(nptest::Spec(2, "a", 1), a1.dp(), 0).ok());
  REQUIRE(g.AddTap(nptest::Spec(3, "b", 0), b0.dp(), 0).ok());
  REQUIRE(g.AddTap(nptest::Spec(4, "b", 1), b1.dp(), 0).ok());
  REQUIRE(g.Connect(1, 3).ok());
  REQUIRE(g.Connect(2, 4).ok());
  auto i1 = nptest::InfoOf(g, 1), i2 = nptest::InfoOf(g, 2);
  CHECK(i1.iothread == std::string("np-q0"));
  CHECK(i2.iothread == std::string("np-q1"));
  CHECK(i1.thread_id != i2.thread_id);
  Status s = g.Connect(1, 4);
  CHECK(!s.ok());
  CHECK(s.message.find("already has a peer") != std::string::npos);
  CHECK(!g.AddTap(nptest::Spec(1, "dup"), a0.dp(), 0).ok());
  CHECK(!g.AddTap(nptest::Spec(9, "bad"), a0.dp(), 11).ok());
  CHECK(!g.Connect(1, 99).ok());
  REQUIRE(g.Remove(3).ok());
  CHECK_EQ(nptest::InfoOf(g, 1).peer, int64_t{-1});
  // A pinned client and a client elsewhere: the unpinned one moves.
  ClientSpec pinned = nptest::Spec(5, "p");
  pinned.iothread = "io-x";
  REQUIRE(g.AddTap(pinned, p.dp(), 0).ok());
  REQUIRE(g.Connect(5, 1).ok());
  CHECK(nptest::InfoOf(g, 1).iothread == std::string("io-x"));
  REQUIRE(p.Inject(nptest::EthFrame(80, 5)));
  CHECK_EQ(a0.Take().size(), size_t{80});
}

namespace {
// [vnet hdr (10) | eth | IPv4 | TCP | payload] with TSO4, gso_size 1000.
std::vector<uint8_t> TsoFrame(size_t payload) {
  std::vector<uint8_t> f(10 + 14 + 20 + 20 + payload, 0);
  VnetHdr h;
  h.flags = kVnetFlagNeedsCsum;
  h.gso_type = kGsoTcpv4;
  h.hdr_len = 54;
  h.gso_size = 1000;
  h.csum_start = 34;
  h.csum_offset = 16;
  WriteVnetHdr(h, f.data(), 10);
  uint8_t* e = f.data() + 10;
  auto eth = nptest::EthFrame(14, 0);
  std::memcpy(e, eth.data(), 12);
  e[12] = 0x08;
  e[13] = 0x00;
  uint8_t* ip = e + 14;
  ip[0] = 0x45;
  uint16_t tot = static_cast<uint16_t>(40 + payload);
  ip[2] = tot >> 8;
  ip[3] = tot & 0xff;
  ip[8] = 64;
  ip[9] = 6;
  const uint8_t src[4] = {10, 0, 0, 1}, dst[4] = {10, 0, 0, 2};
  std::memcpy(ip + 12, src, 4);
  std::memcpy(ip + 16, dst, 4);
  uint8_t* tcp = ip + 20;
  tcp[12] = 5 << 4;
  tcp[13] = 0x18;
  for (size_t i = 0; i < payload; ++i) tcp[20 + i] = static_cast<uint8_t>(i);
  return f;
}
}  // namespace

TEST(TapClient, GsoFramePassesThroughBetweenHeaderSpeakersAndIsSegmentedOtherwise) {
  FakeTap a, b, c;
  NetGraph g(nullptr);
  REQUIRE(g.AddTap(nptest::Spec(1, "ta"), a.dp(), 10).ok());
  REQUIRE(g.AddTap(nptest::Spec(2, "tb"), b.dp(), 10).ok());
  REQUIRE(g.Connect(1, 2).ok());
  auto tso = TsoFrame(3000);
  REQUIRE(a.Inject(tso));
  CHECK(b.Take() == tso);  // untouched, header and all
  // Same frame towards a TAP without a vnet header: three wire segments.
  REQUIRE(g.Remove(2).ok());
  REQUIRE(g.AddTap(nptest::Spec(3, "tc"), c.dp(), 0).ok());
  REQUIRE(g.Connect(1, 3).ok());
  REQUIRE(a.Inject(tso));
  for (int i = 0; i < 3; ++i) {
    auto seg = c.Take();
    CHECK_EQ(seg.size(), size_t{14 + 20 + 20 + 1000});
    if (seg.size() > 60) CHECK_EQ(seg[54], static_cast<uint8_t>((i * 1000) & 0xff));
  }
  CHECK(c.Take(50).empty());
  CHECK_EQ(nptest::InfoOf(g, 3).counters.segments, uint64_t{3});
  CHECK(nptest::AllConserved(g));
}
