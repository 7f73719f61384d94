// VirtioDeviceQueue against a driver-side ring in a memfd (virtio_guest.h) and a FakeTap
// peer: frames both ways, mergeable buffers, notification suppression, back-pressure, and
// the hostile guest.
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
