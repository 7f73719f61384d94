// Hub forwarding (semantics reference section 1.5) with socketpair "TAPs".
#include "dataplane_helpers.h"
#include "test.h"

using namespace netplane::core;
using nptest::FakeTap;

namespace {
// taps[i] (handle 10+i) <-> hub port (handle 20+i) on hub 0.
void BuildHub(NetGraph& g, FakeTap* taps, int n) {
  for (int i = 0; i < n; ++i) {
    std::string tn = "t" + std::to_string(i), pn = "hub0port" + std::to_string(i);
    REQUIRE(g.AddTap(nptest::Spec(10 + i, tn.c_str()), taps[i].dp(), 0).ok());
    REQUIRE(g.AddHubPort(nptest::Spec(20 + i, pn.c_str()), 0).ok());
    REQUIRE(g.Connect(10 + i, 20 + i).ok());
  }
}
}  // namespace

TEST(Hub, FrameFromOnePortReachesEveryOtherPort) {
  FakeTap t[3];
  NetGraph g(nullptr);
  BuildHub(g, t, 3);
  REQUIRE(t[0].Inject(nptest::EthFrame(200, 9)));
  CHECK_EQ(t[1].Take().size(), size_t{200});
  CHECK_EQ(t[2].Take().size(), size_t{200});
  CHECK(t[0].Take(50).empty());  // never back to the sender
  auto p0 = nptest::InfoOf(g, 20);
  CHECK_EQ(p0.hub_id, 0);
  CHECK_EQ(p0.counters.frames_out, uint64_t{1});
  CHECK_EQ(nptest::InfoOf(g, 21).counters.frames_out, uint64_t{1});
  CHECK(nptest::AllConserved(g));
}

TEST(Hub, HubPortLinkDownDropsBothDirections) {
  FakeTap t[2];
  NetGraph g(nullptr);
  BuildHub(g, t, 2);
  REQUIRE(g.SetLinkDown(21, true).ok());
  REQUIRE(t[0].Inject(nptest::EthFrame(100, 1)));
  REQUIRE(t[1].Inject(nptest::EthFrame(100, 2)));
  CHECK(nptest::WaitFor([&] { return nptest::Drops(nptest::InfoOf(g, 21), DropReason::kLinkDown) == 2; }));
  CHECK(t[0].Take(50).empty());
  CHECK(t[1].Take(50).empty());
  CHECK(nptest::AllConserved(g));
}

TEST(Hub, BlockedReceiverStopsTheSenderUntilItDrains) {
  FakeTap t[2];
  NetGraph g(nullptr);
  t[1].SmallBuffers();
  BuildHub(g, t, 2);
  int injected = 0;
  for (int i = 0; i < 100; ++i) injected += t[0].Inject(nptest::EthFrame(1000, static_cast<uint8_t>(i)));
  CHECK(nptest::WaitFor([&] { return nptest::InfoOf(g, 11).counters.eagain > 0; }));
  int got = 0;
  while (got < injected) {
    auto f = t[1].Take();
    if (f.empty()) break;
    CHECK_EQ(f[20], static_cast<uint8_t>(got));
    ++got;
  }
  CHECK_EQ(got, injected);
  for (auto& i : g.Snapshot()) CHECK_EQ(i.counters.dropped(), uint64_t{0});
  CHECK(nptest::AllConserved(g));
}

TEST(Hub, RemovingAPortKeepsTheRestWorking) {
  FakeTap t[3];
  NetGraph g(nullptr);
  BuildHub(g, t, 3);
  REQUIRE(g.Remove(22).ok());
  REQUIRE(t[0].Inject(nptest::EthFrame(100, 1)));
  CHECK_EQ(t[1].Take().size(), size_t{100});
  CHECK(t[2].Take(50).empty());
  auto i2 = nptest::InfoOf(g, 12);
  CHECK_EQ(i2.peer, int64_t{-1});
  CHECK(nptest::AllConserved(g));
}

// The only other port leaves while a frame from t0 waits on port 20 (nobody could take it),
// so t0 stopped reading. When a port joins again the waiting frame moves (a counted noPeer
// drop at the new, still peerless port) and t0 reads again: nothing stays stuck. Found by
// test/faults.test.ts (netdev_del + netdev_add of a hub's ports under a flood).
TEST(Hub, SenderBlockedOnAnEmptyHubResumesWhenAPortJoins) {
  FakeTap t[3];
  NetGraph g(nullptr);
  BuildHub(g, t, 2);
  REQUIRE(g.Remove(21).ok());
  REQUIRE(g.Remove(11).ok());
  REQUIRE(t[0].Inject(nptest::EthFrame(100, 1)));
  CHECK(nptest::WaitFor([&] { return nptest::InfoOf(g, 20).counters.queued == 1; }));
  REQUIRE(g.AddTap(nptest::Spec(12, "t2"), t[2].dp(), 0).ok());
  REQUIRE(g.AddHubPort(nptest::Spec(22, "hub0port2"), 0).ok());
  REQUIRE(g.Connect(12, 22).ok());
  CHECK_EQ(nptest::InfoOf(g, 20).counters.queued, uint64_t{0});
  CHECK_EQ(nptest::Drops(nptest::InfoOf(g, 22), DropReason::kNoPeer), uint64_t{1});
  REQUIRE(t[0].Inject(nptest::EthFrame(100, 2)));
  auto f = t[2].Take();
  CHECK_EQ(f.size(), size_t{100});
  CHECK_EQ(f.empty() ? 0 : f[20], 2);
  CHECK(nptest::AllConserved(g));
}

// A port whose peer is gone drops what the hub gives it (counted), as QEMU does, instead
// of making the other ports' senders wait for ever.
TEST(Hub, PeerlessPortDropsAndCountsInsteadOfBlocking) {
  FakeTap t[2];
  NetGraph g(nullptr);
  BuildHub(g, t, 2);
  REQUIRE(g.Remove(11).ok());  // port 21 stays, without a peer
  for (int i = 0; i < 5; ++i) REQUIRE(t[0].Inject(nptest::EthFrame(100, static_cast<uint8_t>(i))));
  CHECK(nptest::WaitFor([&] { return nptest::Drops(nptest::InfoOf(g, 21), DropReason::kNoPeer) == 5; }));
  CHECK_EQ(nptest::InfoOf(g, 20).counters.queued, uint64_t{0});
  CHECK_EQ(nptest::InfoOf(g, 10).counters.frames_in, uint64_t{5});
  CHECK(nptest::AllConserved(g));
}
