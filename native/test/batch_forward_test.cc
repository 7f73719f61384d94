// ForwardBatch from C++ acting as JavaScript: TAP 1 -> port A's rx ring -> a batch read in
// place -> verdicts -> ForwardBatch -> port B's tx ring -> TAP 4. Checks order, contents,
// drops, shortened frames, the checks on what JavaScript wrote (vnet headers included), and a
// full output.
#include "port/batch_forward.h"

#include <cstring>

#include "dataplane_helpers.h"
#include "port/js_port.h"
#include "port_rings.h"
#include "test.h"

using namespace netplane::core;
using nptest::FakeTap;
using nptest::Rings;

namespace {

// What PacketPort.readBatch() does: walk the published records from the tail, in place.
struct Batch {
  uint32_t pos = 0, bytes = 0;
  std::vector<uint32_t> offsets, lengths, targets;
  BatchView View(const SpscRing* ring) const {
    return BatchView{ring, pos, bytes, offsets.data(), lengths.data(), targets.data()};
  }
  void Read(SpscRing r) {
    r.wake().store(0);
    pos = r.tail().load();
    bytes = nptest::ForEachRecord(r,
                                  [&](uint32_t off, uint32_t len) {
                                    offsets.push_back(off);
                                    lengths.push_back(len);
                                    targets.push_back(0);
                                  }) -
            pos;
  }
  void Release(SpscRing r) const { r.tail().store(pos + bytes); }
};

// Two TAPs, each peered with a JS port: 1 <-> A (2), B (3) <-> 4.
struct Bed {
  nptest::EventLog log;
  FakeTap in, out;
  Rings ra, rb;
  NetGraph g{log.Sink()};
  JsPort* b = nullptr;
  Bed() {
    REQUIRE(g.AddTap(nptest::Spec(1, "in"), in.dp(), 0).ok());
    REQUIRE(g.AddJsPort(nptest::Spec(2, "a"), ra.Config()).ok());
    REQUIRE(g.AddJsPort(nptest::Spec(3, "b"), rb.Config()).ok());
    REQUIRE(g.AddTap(nptest::Spec(4, "out"), out.dp(), 0).ok());
    REQUIRE(g.Connect(1, 2).ok());
    REQUIRE(g.Connect(3, 4).ok());
    b = g.FindPort(3).value;
  }
  // Inject n frames of len bytes tagged 0..n-1 and read them as one batch.
  Batch Deliver(int n, size_t len) {
    for (int i = 0; i < n; ++i) REQUIRE(in.Inject(nptest::EthFrame(len, static_cast<uint8_t>(i))));
    REQUIRE(nptest::WaitFor([&] { return nptest::InfoOf(g, 2).counters.frames_out == static_cast<uint64_t>(n); }));
    Batch batch;
    batch.Read(ra.Rx());
    return batch;
  }
};

}  // namespace

TEST(BatchForward, MovesPassedFramesInOrderAndCountsDrops) {
  Bed bed;
  Batch batch = bed.Deliver(10, 60);
  REQUIRE(batch.offsets.size() == 10u);
  for (int i : {1, 4, 5}) batch.targets[i] = kBatchDrop;
  batch.lengths[2] = 42;  // shortened in place
  SpscRing rx = bed.ra.Rx();
  JsPort* outs[] = {bed.b};
  BatchForwardResult r = ForwardBatch(batch.View(&rx), 0, 10, outs, 1, 0);
  CHECK(r.stop == BatchStop::kDone);
  CHECK_EQ(r.next, 10u);
  CHECK_EQ(r.dropped, 3u);
  batch.Release(rx);
  for (int i : {0, 2, 3, 6, 7, 8, 9}) {
    auto f = bed.out.Take();
    REQUIRE(!f.empty());
    CHECK_EQ(f.size(), size_t{i == 2 ? 42u : 60u});
    CHECK_EQ(f[20], i);
  }
  CHECK(bed.out.Take(100).empty());
  CHECK_EQ(nptest::InfoOf(bed.g, 3).counters.frames_in, uint64_t{7});
  CHECK(nptest::AllConserved(bed.g));
}

TEST(BatchForward, BadEntriesMoveNothingAndNameTheFrame) {
  Bed bed;
  Batch batch = bed.Deliver(4, 60);
  SpscRing rx = bed.ra.Rx();
  SpscRing tx = bed.rb.Tx();
  JsPort* outs[] = {bed.b};
  const uint32_t head0 = tx.head().load();
  struct Case {
    int frame;
    void (*spoil)(Batch&, int);
    BatchStop want;
  } cases[] = {
      {2, [](Batch& b, int i) { b.targets[i] = 1; }, BatchStop::kBadTarget},
      {1, [](Batch& b, int i) { b.offsets[i] += 4; }, BatchStop::kBadOffset},
      {3, [](Batch& b, int i) { b.offsets[i] = b.offsets[0] + 64 * 1024; }, BatchStop::kBadOffset},
      {0, [](Batch& b, int i) { b.lengths[i] = 61; }, BatchStop::kBadLength},
      {3, [](Batch& b, int i) { b.lengths[i] = 13; }, BatchStop::kBadLength},
  };
  for (const Case& c : cases) {
    Batch spoiled = batch;
    c.spoil(spoiled, c.frame);
    BatchForwardResult r = ForwardBatch(spoiled.View(&rx), 0, 4, outs, 1, 0);
    CHECK(r.stop == c.want);
    CHECK_EQ(r.at, static_cast<uint32_t>(c.frame));
    CHECK_EQ(r.next, 0u);
    CHECK_EQ(tx.head().load(), head0);
  }
  // A vnet header an in-place edit broke: every frame gets a valid 10-byte one (GSO_NONE),
  // then frame 2 an unknown gso_type. Nothing moves and the result says why.
  constexpr size_t kHdr = 10;
  for (uint32_t off : batch.offsets) std::memset(rx.data() + off, 0, kHdr);
  rx.data()[batch.offsets[2] + 1] = 9;
  BatchForwardResult bad = ForwardBatch(batch.View(&rx), 0, 4, outs, 1, kHdr);
  CHECK(bad.stop == BatchStop::kBadVnetHdr);
  CHECK_EQ(bad.at, 2u);
  CHECK(bad.why == VnetError::kBadGsoType);
  CHECK_EQ(bad.next, 0u);
  CHECK_EQ(tx.head().load(), head0);
  rx.data()[batch.offsets[2] + 1] = 0;
  // A dropped frame is not looked at: garbage under a DROP verdict is fine.
  Batch dropped = batch;
  dropped.targets[1] = kBatchDrop;
  dropped.offsets[1] = 3;
  BatchForwardResult r = ForwardBatch(dropped.View(&rx), 0, 4, outs, 1, 0);
  CHECK(r.stop == BatchStop::kDone);
  CHECK_EQ(r.dropped, 1u);
  batch.Release(rx);
  for (int i = 0; i < 3; ++i) CHECK(!bed.out.Take().empty());
  CHECK(nptest::AllConserved(bed.g));
}

TEST(BatchForward, FullOutputStopsInPlaceAndResumes) {
  Bed bed;
  // Fill B's tx ring without kicking it: the engine does not drain what it was not told of.
  SpscRing tx = bed.rb.Tx();
  auto filler = nptest::EthFrame(1000, 0xee);
  iovec iov{filler.data(), filler.size()};
  int filled = 0;
  while (tx.Push(&iov, 1, filler.size(), 0)) ++filled;
  Batch batch = bed.Deliver(5, 60);
  batch.targets[0] = kBatchDrop;
  SpscRing rx = bed.ra.Rx();
  JsPort* outs[] = {bed.b};
  BatchForwardResult r = ForwardBatch(batch.View(&rx), 0, 5, outs, 1, 0);
  CHECK(r.stop == BatchStop::kOutputFull);
  CHECK_EQ(r.at, 0u);
  CHECK_EQ(r.next, 1u);  // the dropped frame is done, frame 1 waits
  CHECK_EQ(r.dropped, 1u);
  CHECK_EQ(tx.blocked().load(), 1u);  // asked to be told of room
  // The engine drains the filler and says there is room.
  REQUIRE(bed.g.KickPort(3, true).ok());
  CHECK(nptest::WaitFor([&] { return bed.log.Count(GraphEvent::Kind::kPortTxRoom) >= 1; }));
  int seen_filler = 0;
  while (seen_filler < filled) {
    auto f = bed.out.Take();
    REQUIRE(!f.empty());
    if (f[20] == 0xee) ++seen_filler;
  }
  r = ForwardBatch(batch.View(&rx), r.next, 5, outs, 1, 0);
  CHECK(r.stop == BatchStop::kDone);
  CHECK_EQ(r.next, 5u);
  CHECK_EQ(r.dropped, 0u);
  batch.Release(rx);
  for (int i = 1; i < 5; ++i) {
    auto f = bed.out.Take();
    REQUIRE(!f.empty());
    CHECK_EQ(f[20], i);
  }
  CHECK(nptest::AllConserved(bed.g));
}
