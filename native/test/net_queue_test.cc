// NetQueue and the NetClient delivery rules (semantics reference section 4), with scripted
// clients and no threads.
#include <deque>

#include "dataplane_helpers.h"
#include "net/net_client.h"
#include "test.h"

using namespace netplane::core;
using nptest::ScriptedClient;

namespace {

Frame F(const std::vector<uint8_t>& v) { return Frame{v.data(), static_cast<uint32_t>(v.size()), 0}; }

}  // namespace

TEST(NetQueue, DirectDeliveryWhenReceiverReady) {
  NetContext ctx;
  ScriptedClient a(1, "a", &ctx), b(2, "b", &ctx);
  REQUIRE(NetClient::Link(&a, &b).ok());
  auto f = nptest::EthFrame(60, 1);
  CHECK(a.Send(F(f), true) == NetClient::SendResult::kDone);
  CHECK_EQ(b.got.size(), size_t{1});
  CHECK_EQ(b.counters().Snapshot().frames_in, uint64_t{1});
  CHECK(b.counters().Snapshot().Conserved());
}

TEST(NetQueue, NotNowQueuesThenFlushDeliversInOrderWithCallback) {
  NetContext ctx;
  ScriptedClient a(1, "a", &ctx), b(2, "b", &ctx);
  REQUIRE(NetClient::Link(&a, &b).ok());
  b.busy = true;
  auto f1 = nptest::EthFrame(60, 1), f2 = nptest::EthFrame(60, 2);
  CHECK(a.Send(F(f1), true) == NetClient::SendResult::kQueued);
  CHECK(b.receive_disabled());
  // While disabled, further frames queue behind without a delivery attempt.
  CHECK(a.Send(F(f2), true) == NetClient::SendResult::kQueued);
  CHECK_EQ(b.incoming().size(), size_t{2});
  CHECK_EQ(b.counters().Snapshot().queued, uint64_t{2});
  b.busy = false;
  CHECK(b.FlushQueuedPackets());
  REQUIRE(b.got.size() == 2);
  CHECK_EQ(b.got[0][20], 1);
  CHECK_EQ(b.got[1][20], 2);
  CHECK_EQ(a.sent_callbacks, 2);
  CHECK(b.counters().Snapshot().Conserved());
  CHECK_EQ(b.counters().Snapshot().queued, uint64_t{0});
}

TEST(NetQueue, NonCallbackSendersAreBoundedAndCountedQueueFull) {
  NetContext ctx;
  ScriptedClient a(1, "a", &ctx), b(2, "b", &ctx);
  REQUIRE(NetClient::Link(&a, &b).ok());
  b.busy = true;
  auto f = nptest::EthFrame(60, 1);
  for (size_t i = 0; i < NetQueue::kMaxFrames + 10; ++i) a.Send(F(f), false);
  auto s = b.counters().Snapshot();
  CHECK_EQ(s.queued, uint64_t{NetQueue::kMaxFrames});
  CHECK_EQ(s.drops[static_cast<size_t>(DropReason::kQueueFull)], uint64_t{10});
  CHECK(s.Conserved());
  // The pool reuses buffers: draining and refilling allocates nothing new.
  b.busy = false;
  b.FlushQueuedPackets();
  size_t allocs = ctx.pool.allocations();
  b.busy = true;
  for (size_t i = 0; i < 100; ++i) a.Send(F(f), false);
  CHECK_EQ(ctx.pool.allocations(), allocs);
  b.incoming().Purge(nullptr, DropReason::kPurged);
}

TEST(NetQueue, PurgeBySenderCountsAndCallsBack) {
  NetContext ctx;
  ScriptedClient a(1, "a", &ctx), b(2, "b", &ctx);
  REQUIRE(NetClient::Link(&a, &b).ok());
  b.busy = true;
  auto f = nptest::EthFrame(60, 1);
  a.Send(F(f), true);
  a.Send(F(f), false);
  b.incoming().Purge(&a, DropReason::kPurged);  // a is going away: no callback to it
  CHECK_EQ(a.sent_callbacks, 0);
  CHECK(b.incoming().empty());
  auto s = b.counters().Snapshot();
  CHECK_EQ(s.drops[static_cast<size_t>(DropReason::kPurged)], uint64_t{2});
  CHECK(s.Conserved());
  a.Send(F(f), true);
  b.incoming().Purge(nullptr, DropReason::kPurged);  // receiver purge: sender resumes
  CHECK_EQ(a.sent_callbacks, 1);
}

TEST(NetQueue, LinkDownDropsBothWaysAndCounts) {
  NetContext ctx;
  ScriptedClient a(1, "a", &ctx), b(2, "b", &ctx);
  REQUIRE(NetClient::Link(&a, &b).ok());
  auto f = nptest::EthFrame(60, 1);
  b.SetLinkDown(true);
  CHECK(a.Send(F(f), true) == NetClient::SendResult::kDone);
  CHECK(b.got.empty());
  CHECK_EQ(b.counters().Snapshot().drops[static_cast<size_t>(DropReason::kLinkDown)], uint64_t{1});
  a.SetLinkDown(true);
  a.Send(F(f), true);
  CHECK_EQ(a.counters().Snapshot().drops[static_cast<size_t>(DropReason::kLinkDown)], uint64_t{1});
  CHECK(b.counters().Snapshot().Conserved());
}

TEST(NetQueue, NoPeerDropsAndSecondPeerIsAnError) {
  NetContext ctx;
  ScriptedClient a(1, "a", &ctx), b(2, "b", &ctx), c(3, "c", &ctx);
  auto f = nptest::EthFrame(60, 1);
  a.Send(F(f), true);
  CHECK_EQ(a.counters().Snapshot().drops[static_cast<size_t>(DropReason::kNoPeer)], uint64_t{1});
  REQUIRE(NetClient::Link(&a, &b).ok());
  Status s = NetClient::Link(&a, &c);
  CHECK(!s.ok());
  CHECK(s.message.find("already has a peer") != std::string::npos);
  CHECK(!NetClient::Link(&c, &c).ok());
}

TEST(ShapeForDevice, PrependConvertAndStrip) {
  auto eth = nptest::EthFrame(60, 7);
  uint8_t scratch[kMaxVnetHdrLen];
  Frame plain{eth.data(), 60, 0};
  DeviceFrame d = ShapeForDevice(plain, 12, scratch);
  CHECK_EQ(d.iovcnt, 2);
  CHECK_EQ(d.iov[0].iov_len, size_t{12});
  std::vector<uint8_t> with_hdr(10, 0);
  with_hdr.insert(with_hdr.end(), eth.begin(), eth.end());
  Frame h10{with_hdr.data(), 70, 10};
  d = ShapeForDevice(h10, 0, scratch);
  CHECK(d.kind == DeviceFrame::Kind::kIov);
  CHECK_EQ(d.iov[0].iov_len, size_t{60});
  CHECK(d.iov[0].iov_base == with_hdr.data() + 10);
  d = ShapeForDevice(h10, 12, scratch);
  CHECK_EQ(d.iov[0].iov_len, size_t{12});
  CHECK_EQ(d.iov[1].iov_len, size_t{60});
  d = ShapeForDevice(h10, 10, scratch);
  CHECK_EQ(d.iovcnt, 1);
  CHECK_EQ(d.iov[0].iov_len, size_t{70});
  // A GSO header in front of something that is not TCP is refused before segmentation.
  with_hdr[0] = kVnetFlagNeedsCsum;
  with_hdr[1] = kGsoTcpv4;
  d = ShapeForDevice(h10, 0, scratch);
  CHECK(d.kind == DeviceFrame::Kind::kBad);
}
