// filter-dump's capture path without a graph: a client's Send copies into its ring, the
// writer thread turns the rings into a pcap file, a full ring counts what it cannot keep.
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "dataplane_helpers.h"
#include "net/filter_dump.h"
#include "net/net_client.h"
#include "test.h"

using namespace netplane::core;

namespace {

class Sink : public NetClient {
 public:
  Sink(uint32_t h, const char* name, NetContext* ctx) : NetClient(ClientKind::kPort, h, name, ctx) {}
  RecvResult Receive(NetClient*, const Frame& f) override {
    counters_.Out(f.eth_len());
    return RecvResult::kConsumed;
  }
};

std::string TempPath() {
  char tmpl[] = "/tmp/np-fdump-XXXXXX";
  int fd = mkstemp(tmpl);
  if (fd >= 0) close(fd);
  return tmpl;
}

std::vector<uint8_t> ReadFile(const std::string& path) {
  std::vector<uint8_t> out;
  FILE* f = fopen(path.c_str(), "rb");
  if (!f) return out;
  uint8_t buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.insert(out.end(), buf, buf + n);
  fclose(f);
  return out;
}

uint32_t U32(const std::vector<uint8_t>& b, size_t at) {
  uint32_t v;
  std::memcpy(&v, b.data() + at, 4);
  return v;
}

}  // namespace

TEST(FilterDump, BothDirectionsReachThePcapFileCutAtMaxlen) {
  NetContext ctx;
  Sink a(1, "a", &ctx), b(2, "b", &ctx);
  REQUIRE(NetClient::Link(&a, &b).ok());
  std::string path = TempPath();
  FilterDump dump;
  FilterDumpConfig cfg;
  cfg.path = path;
  cfg.maxlen = 40;
  cfg.buffer_bytes = 65536;
  REQUIRE(dump.Start(cfg).ok());
  a.set_capture(dump.ring(0));
  auto f1 = nptest::EthFrame(60, 1);
  auto f2 = nptest::EthFrame(100, 2);
  a.Send(Frame{f1.data(), static_cast<uint32_t>(f1.size()), 0}, false);  // tx at a
  b.Send(Frame{f2.data(), static_cast<uint32_t>(f2.size()), 0}, false);  // rx at a
  a.set_capture(nullptr);
  a.Send(Frame{f1.data(), static_cast<uint32_t>(f1.size()), 0}, false);  // not captured
  dump.Stop();
  FilterDumpStats s = dump.Stats();
  CHECK_EQ(s.total.frames, uint64_t{2});
  CHECK_EQ(s.total.dropped, uint64_t{0});
  CHECK_EQ(s.written, uint64_t{2});
  auto file = ReadFile(path);
  REQUIRE(file.size() == 24 + 2 * (16 + 40));
  CHECK_EQ(U32(file, 0), uint32_t{0xa1b2c3d4});
  CHECK_EQ(U32(file, 16), uint32_t{40});  // snaplen
  CHECK_EQ(U32(file, 20), uint32_t{1});   // ethernet
  CHECK_EQ(U32(file, 24 + 8), uint32_t{40});
  CHECK_EQ(U32(file, 24 + 12), uint32_t{60});
  CHECK(std::memcmp(file.data() + 24 + 16, f1.data(), 40) == 0);
  CHECK_EQ(U32(file, 24 + 56 + 12), uint32_t{100});
  CHECK(std::memcmp(file.data() + 24 + 56 + 16, f2.data(), 40) == 0);
  unlink(path.c_str());
}

TEST(FilterDump, AFullRingCountsWhatItCannotKeep) {
  CaptureRing ring(4096, 1500, kCaptureAll);
  auto f = nptest::EthFrame(1500, 3);
  for (int i = 0; i < 10; i++) ring.Push(f.data(), static_cast<uint32_t>(f.size()));
  CaptureCounters c = ring.counters();
  CHECK_EQ(c.frames + c.dropped, uint64_t{10});
  CHECK(c.frames >= 1 && c.frames <= 2);
  CHECK_EQ(c.dropped_bytes, c.dropped * 1500);
  std::vector<uint8_t> out;
  CHECK_EQ(ring.Drain(&out, 1 << 20), static_cast<size_t>(c.frames));
  // Room again after the drain, across the ring's wrap point.
  for (int i = 0; i < 20; i++) {
    ring.Push(f.data(), static_cast<uint32_t>(f.size()));
    out.clear();
    CHECK_EQ(ring.Drain(&out, 1 << 20), size_t{1});
    CHECK(std::memcmp(out.data() + 16, f.data(), f.size()) == 0);
  }
}

TEST(FilterDump, DirectionsAndOpenErrors) {
  CaptureRing rx(4096, 64, kCaptureRx);
  CHECK(rx.wants(kCaptureRx));
  CHECK(!rx.wants(kCaptureTx));
  FilterDump dump;
  FilterDumpConfig cfg;
  cfg.path = "/nonexistent-np-dir/x.pcap";
  Status s = dump.Start(cfg);
  CHECK(!s.ok());
  CHECK(s.message == "net dump: can't open /nonexistent-np-dir/x.pcap: No such file or directory");
}
