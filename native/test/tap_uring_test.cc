// TAP clients with io_uring batching (io-uring=on) forwarding through a NetGraph, over
// SOCK_SEQPACKET socketpairs standing in for TAP queue fds, and the fallback to read/write
// when io_uring_setup is refused (a seccomp filter on one thread and the IoThreads it starts
// stands in for kernel.io_uring_disabled, without touching the machine's setting).
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>
#include <thread>
#include <utility>

#include "aio/io_uring_batch.h"
#include "dataplane_helpers.h"
#include "tap/tap_client.h"
#include "test.h"

using namespace netplane::core;
using nptest::FakeTap;

namespace {

bool UringAvailable() { return IoUringBatch::Create(8).ok(); }

// Refuse io_uring_setup with EPERM (what kernel.io_uring_disabled=2 answers) on the calling
// thread and every thread it creates afterwards. False where the filter cannot be built.
bool RefuseIoUringOnThisThread() {
#if defined(__x86_64__)
  constexpr uint32_t kArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
  constexpr uint32_t kArch = AUDIT_ARCH_AARCH64;
#else
  return false;
#endif
  sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kArch, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof code / sizeof code[0]), code};
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return false;
  return ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0;
}

// Frames tagged 0..n-1 into a, all out of b in order; returns how many came out in order.
int ForwardTagged(NetGraph& g, FakeTap& a, FakeTap& b, int n, size_t len) {
  int sent = 0, got = 0;
  bool in_order = true;
  while (got < n) {
    // Keep a few frames in flight so reads find batches, without overrunning the sockets.
    while (sent < n && sent - got < 48 && a.Inject(nptest::EthFrame(len, static_cast<uint8_t>(sent)))) ++sent;
    auto f = b.Take();
    if (f.empty()) break;
    in_order = in_order && f.size() == len && f[20] == static_cast<uint8_t>(got);
    ++got;
  }
  (void)g;
  return in_order ? got : -1;
}

}  // namespace

TEST(TapUring, BatchConservesFramesAndKeepsOrderBothWays) {
  FakeTap a, b;
  NetGraph g(nullptr);
  REQUIRE(g.AddTap(nptest::Spec(1, "ta"), a.dp(), 0, /*io_uring=*/true).ok());
  REQUIRE(g.AddTap(nptest::Spec(2, "tb"), b.dp(), 0, /*io_uring=*/true).ok());
  REQUIRE(g.Connect(1, 2).ok());
  const bool uring = UringAvailable();
  CHECK_EQ(nptest::InfoOf(g, 1).io_uring, uring);  // under a tool without io_uring: the fallback
  CHECK_EQ(ForwardTagged(g, a, b, 1000, 200), 1000);
  CHECK_EQ(ForwardTagged(g, b, a, 300, 1500), 300);
  auto ia = nptest::InfoOf(g, 1), ib = nptest::InfoOf(g, 2);
  CHECK_EQ(ia.counters.dev_rx_frames, uint64_t{1000});
  CHECK_EQ(ib.counters.dev_tx_frames, uint64_t{1000});
  CHECK_EQ(ib.counters.dev_rx_frames, uint64_t{300});
  CHECK_EQ(ia.counters.dev_tx_frames, uint64_t{300});
  for (auto& i : g.Snapshot()) CHECK_EQ(i.counters.dropped(), uint64_t{0});
  CHECK(nptest::AllConserved(g));
}

TEST(TapUring, TapsMovedOntoAHubsThreadKeepBatchingThere) {
  FakeTap a, b;
  NetGraph g(nullptr);
  // Queue indexes 0 and 1 start on two IoThreads; peering with the hub's ports moves both
  // onto the hub's, and the write flush must follow them there.
  REQUIRE(g.AddTap(nptest::Spec(1, "ta", 0), a.dp(), 0, true).ok());
  REQUIRE(g.AddTap(nptest::Spec(2, "tb", 1), b.dp(), 0, true).ok());
  REQUIRE(g.AddHubPort(nptest::Spec(11, "hub0port0"), 0).ok());
  REQUIRE(g.AddHubPort(nptest::Spec(12, "hub0port1"), 0).ok());
  REQUIRE(g.Connect(1, 11).ok());
  REQUIRE(g.Connect(2, 12).ok());
  CHECK(nptest::InfoOf(g, 1).iothread == nptest::InfoOf(g, 11).iothread);
  CHECK(nptest::InfoOf(g, 2).iothread == nptest::InfoOf(g, 11).iothread);
  CHECK_EQ(nptest::InfoOf(g, 2).io_uring, UringAvailable());
  CHECK_EQ(ForwardTagged(g, a, b, 500, 100), 500);
  CHECK_EQ(ForwardTagged(g, b, a, 500, 100), 500);
  for (auto& i : g.Snapshot()) CHECK_EQ(i.counters.dropped(), uint64_t{0});
  CHECK(nptest::AllConserved(g));
}

TEST(TapUring, RegisteredFileIsUsedAndReleasedWithTheRing) {
  if (!UringAvailable()) return;
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
  auto r = IoUringBatch::Create(8);
  REQUIRE(r.ok());
  auto ring = std::move(r.value);
  CHECK(ring->RegisterFile(sv[0]));
  CHECK(!ring->RegisterFile(sv[0]));  // one fixed file per ring
  const char msg[] = "fixed";
  int32_t res = 0;
  REQUIRE(ring->AddWrite(sv[0], msg, sizeof msg, 7));
  ring->Run([](void* o, uint64_t tag, int32_t v) { *static_cast<int32_t*>(o) = tag == 7 ? v : -1; }, &res);
  CHECK_EQ(res, static_cast<int32_t>(sizeof msg));
  char got[16] = {};
  CHECK_EQ(::read(sv[1], got, sizeof got), static_cast<ssize_t>(sizeof msg));
  // Once the ring is gone and the fd closed, the socket is released at once: the ring
  // unregisters its file rather than leaving it to the kernel's deferred teardown.
  ring.reset();
  ::close(sv[0]);
  CHECK_EQ(::read(sv[1], got, sizeof got), ssize_t{0});  // EOF, not EAGAIN
  ::close(sv[1]);
}

TEST(TapUring, FramesWaitingInTheWriteBatchCountAsQueued) {
  // One loop on this thread, so the test looks between a turn's writes and the flush that
  // ends the turn, where the graph's snapshot (a one-shot on the same loop) can land too.
  nptest::Loop loop("npcl-uring");
  FakeTap b;
  TapClient tap(2, "npcl-tb", &loop.net, b.dp(), 0, /*io_uring=*/true);
  nptest::ScriptedClient src(1, "npcl-src", &loop.net);
  REQUIRE(NetClient::Link(&src, &tap).ok());
  REQUIRE(tap.Start().ok());
  auto frame = nptest::EthFrame(100, 1);
  const Frame f{frame.data(), static_cast<uint32_t>(frame.size()), 0};
  auto send_turn = [&] {
    for (int i = 0; i < 2; ++i) CHECK(src.Send(f, false) == NetClient::SendResult::kDone);
  };
  send_turn();  // a turn with two writes: the next turn batches
  loop.aio->Poll(false);
  send_turn();
  const auto mid = tap.counters().Snapshot();
  CHECK(mid.Conserved());
  if (UringAvailable()) CHECK_EQ(mid.queued, uint64_t{2});
  loop.aio->Poll(false);  // the turn's flush submits them
  const auto end = tap.counters().Snapshot();
  CHECK(end.Conserved());
  CHECK_EQ(end.queued, uint64_t{0});
  CHECK_EQ(end.dev_tx_frames, uint64_t{4});
  for (int i = 0; i < 4; ++i) CHECK(b.Take().size() == frame.size());
  tap.Stop();
}

// A receiver that turns the next frame away (CanReceive false, as a full virtqueue does) and
// then takes everything: the frame it turned away waits in its queue until the next Send
// flushes it, in the middle of the sender's batch.
class RefusesOnce : public nptest::ScriptedClient {
 public:
  using ScriptedClient::ScriptedClient;
  mutable bool refuse_next = false;
  bool CanReceive() const override { return !std::exchange(refuse_next, false); }
};

TEST(TapUring, APeerThatTakesTheHeldFrameMidBatchLetsReadingResume) {
  // The peer took the held frame while the rest of the batch was delivered: reading must not
  // pause after the batch, because no later OnQueuedSent would resume it (a TCP stream
  // through the vhost-user front-end stalled on this).
  nptest::Loop loop("npcl-uring");
  FakeTap a;
  TapClient tap(1, "npcl-ta", &loop.net, a.dp(), 0, /*io_uring=*/true);
  RefusesOnce dst(2, "npcl-dst", &loop.net);
  REQUIRE(NetClient::Link(&tap, &dst).ok());
  REQUIRE(tap.Start().ok());
  uint8_t tag = 0;
  auto inject_turn = [&](bool refuse_first) {
    for (int i = 0; i < 8; ++i) REQUIRE(a.Inject(nptest::EthFrame(100, tag++)));
    dst.refuse_next = refuse_first;
    // Turns until the frames are in (a batch may find fewer); after each, the peer flushes
    // its queue as a virtqueue does once it has room (nothing to flush if it took them).
    for (int t = 0; t < 50 && dst.got.size() < tag; ++t) {
      loop.aio->Poll(false);
      dst.FlushQueuedPackets();
    }
  };
  inject_turn(false);  // frames on read(2): the next wake-up reads a batch
  inject_turn(true);   // the batch: its first frame is held, the second's Send flushes it
  inject_turn(false);  // read only if reading resumed
  CHECK_EQ(dst.got.size(), size_t{24});
  for (size_t i = 0; i < dst.got.size(); ++i) CHECK_EQ(dst.got[i][20], static_cast<uint8_t>(i));
  CHECK(tap.counters().Snapshot().Conserved());
  tap.Stop();
}

TEST(TapUring, VnetHeaderAndGsoFramesPassThrough) {
  FakeTap a, b;
  NetGraph g(nullptr);
  REQUIRE(g.AddTap(nptest::Spec(1, "ta"), a.dp(), 12, true).ok());
  REQUIRE(g.AddTap(nptest::Spec(2, "tb"), b.dp(), 12, true).ok());
  REQUIRE(g.Connect(1, 2).ok());
  // A 64 KiB frame behind a zero header: the read and write slots hold the largest read.
  std::vector<uint8_t> framed(12, 0);
  auto eth = nptest::EthFrame(65000, 7);
  framed.insert(framed.end(), eth.begin(), eth.end());
  int sz = 1 << 20;
  setsockopt(a.fds[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  setsockopt(b.fds[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  REQUIRE(a.Inject(framed));
  auto got = b.Take();
  CHECK(got == framed);
  CHECK(nptest::AllConserved(g));
}

TEST(TapUring, FailedWritesAreCountedDrops) {
  if (!UringAvailable()) return;  // the plain path queues instead (tap_client_test)
  // One loop on this thread, so every frame of the flood is written in one turn on the batch
  // path (a turn of lone frames would take write(2), which holds a frame back on EAGAIN).
  nptest::Loop loop("npcl-uring");
  FakeTap b;
  b.SmallBuffers();
  TapClient tap(2, "npcl-tb", &loop.net, b.dp(), 0, /*io_uring=*/true);
  nptest::ScriptedClient src(1, "npcl-src", &loop.net);
  REQUIRE(NetClient::Link(&src, &tap).ok());
  REQUIRE(tap.Start().ok());
  auto small = nptest::EthFrame(60, 0);
  for (int i = 0; i < 2; ++i) src.Send(Frame{small.data(), static_cast<uint32_t>(small.size()), 0}, false);
  loop.aio->Poll(false);  // a turn with two writes: the next turn batches
  for (int i = 0; i < 2; ++i) REQUIRE(b.Take().size() == small.size());
  const uint64_t primed = tap.counters().Snapshot().dev_tx_frames;
  // Nobody reads b now: its socket fills, and every write that finds it full is a counted drop
  // (the batch has already accepted the frame). Nothing hangs, nothing is lost uncounted.
  const int injected = 100;
  for (int i = 0; i < injected; ++i) {
    auto f = nptest::EthFrame(1000, static_cast<uint8_t>(i));
    CHECK(src.Send(Frame{f.data(), static_cast<uint32_t>(f.size()), 0}, false) == NetClient::SendResult::kDone);
  }
  loop.aio->Poll(false);  // the turn's flush submits the rest
  const auto c = tap.counters().Snapshot();
  CHECK_EQ(c.queued, uint64_t{0});
  CHECK(c.eagain > 0);
  CHECK(c.drops[static_cast<size_t>(DropReason::kWriteError)] > 0);
  CHECK_EQ(c.dev_tx_frames - primed + c.drops[static_cast<size_t>(DropReason::kWriteError)], uint64_t(injected));
  CHECK(c.Conserved());
  tap.Stop();
}

TEST(TapUring, DeadDeviceOnTheBatchPathIsCounted) {
  nptest::EventLog log;
  FakeTap a, b;
  NetGraph g(log.Sink());
  REQUIRE(g.AddTap(nptest::Spec(1, "ta"), a.dp(), 0, true).ok());
  REQUIRE(g.AddTap(nptest::Spec(2, "tb"), b.dp(), 0, true).ok());
  REQUIRE(g.Connect(1, 2).ok());
  b.CloseKernelSide();  // b's writes now fail (EPIPE): write errors, counted per frame
  for (int i = 0; i < 5; ++i) REQUIRE(a.Inject(nptest::EthFrame(100, static_cast<uint8_t>(i))));
  CHECK(nptest::WaitFor(
      [&] { return nptest::InfoOf(g, 2).counters.dropped() + nptest::InfoOf(g, 2).counters.dev_tx_frames == 5; }));
  CHECK_EQ(nptest::InfoOf(g, 2).counters.dev_tx_frames, uint64_t{0});
  CHECK(nptest::AllConserved(g));
}

TEST(TapUring, RefusedIoUringFallsBackToReadWrite) {
  bool filtered = false, active = true, conserved = false;
  int forwarded = 0;
  // The graph, its IoThreads and the clients live on a thread that io_uring_setup refuses.
  std::thread t([&] {
    if (!RefuseIoUringOnThisThread()) return;
    filtered = true;
    FakeTap a, b;
    NetGraph g(nullptr);
    if (!g.AddTap(nptest::Spec(1, "ta"), a.dp(), 0, true).ok() ||
        !g.AddTap(nptest::Spec(2, "tb"), b.dp(), 0, true).ok() || !g.Connect(1, 2).ok())
      return;
    active = nptest::InfoOf(g, 1).io_uring || nptest::InfoOf(g, 2).io_uring;
    forwarded = ForwardTagged(g, a, b, 200, 300);
    conserved = nptest::AllConserved(g);
  });
  t.join();
  if (!filtered) return;  // no seccomp here: nothing to refuse with
  CHECK(!active);
  CHECK_EQ(forwarded, 200);
  CHECK(conserved);
}
