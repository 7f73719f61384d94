// JS port rings, exercised from C++ acting as the JavaScript side: read batches from the
// rx ring, write frames into the tx ring, kick, and check back-pressure and drop policy.
#include "port/js_port.h"
#include "dataplane_helpers.h"
#include "port_rings.h"
#include "test.h"

using namespace netplane::core;
using nptest::DrainRing;
using nptest::FakeTap;
using nptest::Rings;

TEST(JsPort, TapFramesArriveInTheRxRingUnpaddedWithOneWake) {
  nptest::EventLog log;
  FakeTap t;
  Rings rings;
  NetGraph g(log.Sink());
  REQUIRE(g.AddTap(nptest::Spec(1, "t"), t.dp(), 0).ok());
  REQUIRE(g.AddJsPort(nptest::Spec(2, "nic"), rings.Config()).ok());
  REQUIRE(g.Connect(1, 2).ok());
  for (int i = 0; i < 10; ++i) REQUIRE(t.Inject(nptest::EthFrame(42, static_cast<uint8_t>(i))));
  CHECK(nptest::WaitFor([&] { return nptest::InfoOf(g, 2).counters.frames_out == 10; }));
  // No consumer ran yet: the wake flag stays set, so only one wake-up was raised. It is
  // raised from a bottom half after the delivering handler: wait for it, not assume it ran.
  CHECK(nptest::WaitFor([&] { return log.Count(GraphEvent::Kind::kPortRx) >= 1; }));
  CHECK_EQ(log.Count(GraphEvent::Kind::kPortRx), size_t{1});
  auto frames = DrainRing(rings.Rx());
  REQUIRE(frames.size() == 10);
  CHECK_EQ(frames[0].size(), size_t{42});  // a NIC-side port asks for no padding
  CHECK_EQ(frames[9][20], 9);
  CHECK(nptest::AllConserved(g));
}

TEST(JsPort, TxRingFramesReachTheTap) {
  FakeTap t;
  Rings rings;
  NetGraph g(nullptr);
  REQUIRE(g.AddTap(nptest::Spec(1, "t"), t.dp(), 0).ok());
  REQUIRE(g.AddJsPort(nptest::Spec(2, "nic"), rings.Config(false, 12)).ok());
  REQUIRE(g.Connect(1, 2).ok());
  SpscRing tx = rings.Tx();
  std::vector<uint8_t> rec(12, 0);
  auto eth = nptest::EthFrame(64, 5);
  rec.insert(rec.end(), eth.begin(), eth.end());
  iovec iov{rec.data(), rec.size()};
  for (int i = 0; i < 3; ++i) REQUIRE(tx.Push(&iov, 1, rec.size(), 0));
  REQUIRE(g.KickPort(2, true).ok());
  for (int i = 0; i < 3; ++i) CHECK(t.Take() == eth);  // header stripped for the plain tap
  auto ip = nptest::InfoOf(g, 2);
  CHECK_EQ(ip.counters.dev_rx_frames, uint64_t{3});
  CHECK(nptest::AllConserved(g));
}

TEST(JsPort, FullRxRingPushesBackAndResumesWhenDrained) {
  FakeTap t;
  Rings rings;
  NetGraph g(nullptr);
  REQUIRE(g.AddTap(nptest::Spec(1, "t"), t.dp(), 0).ok());
  REQUIRE(g.AddJsPort(nptest::Spec(2, "nic"), rings.Config()).ok());
  REQUIRE(g.Connect(1, 2).ok());
  // 1500-byte frames: the 256 KiB ring holds ~170. Keep injecting, consume none, until
  // the port holds one frame in its queue (ring full, tap no longer reading).
  int injected = 0, total = 0;
  std::vector<uint8_t> order;
  CHECK(nptest::WaitFor([&] {
    while (t.Inject(nptest::EthFrame(1500, static_cast<uint8_t>(injected)))) ++injected;
    return nptest::InfoOf(g, 2).counters.queued == 1;
  }));
  CHECK_EQ(rings.Rx().blocked().load(), 1u);
  auto i = nptest::InfoOf(g, 2);
  CHECK_EQ(i.counters.dropped(), uint64_t{0});
  // Drain in batches, kicking the engine whenever it said it was blocked.
  SpscRing rx = rings.Rx();
  CHECK(nptest::WaitFor(
      [&] {
        auto batch = DrainRing(rx);
        for (auto& f : batch) order.push_back(f[20]);
        total += static_cast<int>(batch.size());
        if (rx.blocked().exchange(0)) g.KickPort(2, false);
        return total == injected;
      },
      5000));
  CHECK_EQ(total, injected);
  bool in_order = true;
  for (size_t k = 0; k < order.size(); ++k) in_order = in_order && order[k] == static_cast<uint8_t>(k);
  CHECK(in_order);
  for (auto& c : g.Snapshot()) CHECK_EQ(c.counters.dropped(), uint64_t{0});
  CHECK(nptest::AllConserved(g));
}

TEST(JsPort, DropPolicyCountsQueueFullAndKeepsReading) {
  FakeTap t;
  Rings rings;
  NetGraph g(nullptr);
  REQUIRE(g.AddTap(nptest::Spec(1, "t"), t.dp(), 0).ok());
  REQUIRE(g.AddJsPort(nptest::Spec(2, "nic"), rings.Config(/*drop=*/true)).ok());
  REQUIRE(g.Connect(1, 2).ok());
  int injected = 0;
  for (int i = 0; i < 300; ++i) {
    if (!t.Inject(nptest::EthFrame(1500, 1))) {
      nptest::WaitFor([&] { return nptest::InfoOf(g, 1).counters.dev_rx_frames == (uint64_t)injected; }, 1000);
      --i;
      continue;
    }
    ++injected;
  }
  CHECK(nptest::WaitFor([&] { return nptest::InfoOf(g, 1).counters.dev_rx_frames == (uint64_t)injected; }));
  auto i = nptest::InfoOf(g, 2);
  CHECK(nptest::Drops(i, DropReason::kQueueFull) > 0);
  CHECK_EQ(i.counters.frames_out + nptest::Drops(i, DropReason::kQueueFull), (uint64_t)injected);
  CHECK(nptest::AllConserved(g));
}

TEST(JsPort, RingSizeIsChecked) {
  NetGraph g(nullptr);
  std::vector<uint64_t> small(1024);
  JsPortConfig c;
  c.rx_mem = c.tx_mem = reinterpret_cast<uint8_t*>(small.data());
  c.rx_len = c.tx_len = small.size() * 8;
  Status s = g.AddJsPort(nptest::Spec(1, "nic"), c);
  CHECK(!s.ok());
  CHECK(s.message.find("too small") != std::string::npos);
}
