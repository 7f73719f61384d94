// No starvation on one AioContext. A client whose fd never runs dry (refilled before every
// loop iteration), peered with a receiver that never pushes back, must hand on at most its
// read budget of frames per iteration, so everything else that is ready on the same context
// runs in that very iteration: another link's frame, a bottom half, an expired timer, and a
// one-shot scheduled from another thread (how the graph runs a QMP-driven stop, set_link or
// netdev_del on a client's thread). In the end such a one-shot stops the flood itself.
// One thread, non-blocking polls on fds that are already readable: nothing depends on timing.
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "dataplane_helpers.h"
#include "socket/dgram_client.h"
#include "socket/stream_client.h"
#include "tap/tap_client.h"
#include "test.h"

using namespace netplane::core;
using nptest::FakeTap;
using nptest::Loop;
using nptest::ScriptedClient;

namespace {

constexpr size_t kFloodFrameLen = 64;
constexpr int kRounds = 12;

// The flooded side: a client reading the data-plane end of a socketpair whose feeding end
// the test keeps full. Frames carry their sequence number (mod 256) in byte 20.
struct Flood {
  int fds[2] = {-1, -1};  // [0] the data plane's, owned by a socket client once attached
  bool owned_by_client = false;
  std::unique_ptr<NetClient> client;
  int budget = 0;
  uint32_t next_seq = 0;
  bool stream = false;  // stream framing: 4-byte big-endian length before each frame

  ~Flood() {
    if (fds[1] >= 0) ::close(fds[1]);
    if (!owned_by_client && fds[0] >= 0) ::close(fds[0]);
  }

  void Open(int type) {
    REQUIRE(::socketpair(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
    int big = 4 << 20;  // clamped to wmem_max: plenty of frames beyond one budget either way
    ::setsockopt(fds[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  }

  // Write frames until the socket refuses more; returns how many went in.
  size_t Refill() {
    size_t wrote = 0;
    for (;;) {
      // Stream records go 32 to a send, one socket buffer each, so a send is all or nothing
      // and the framing never breaks; datagram sockets take one frame per send.
      const int per_send = stream ? 32 : 1;
      std::vector<uint8_t> out;
      for (int i = 0; i < per_send; ++i) {
        auto f = nptest::EthFrame(kFloodFrameLen, static_cast<uint8_t>(next_seq + static_cast<uint32_t>(i)));
        if (stream) {
          const uint32_t len = static_cast<uint32_t>(f.size());
          uint8_t pre[4] = {static_cast<uint8_t>(len >> 24), static_cast<uint8_t>(len >> 16),
                            static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len)};
          out.insert(out.end(), pre, pre + 4);
        }
        out.insert(out.end(), f.begin(), f.end());
      }
      ssize_t n = ::send(fds[1], out.data(), out.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n < 0) {
        REQUIRE(errno == EAGAIN || errno == EWOULDBLOCK);
        return wrote;
      }
      REQUIRE(static_cast<size_t>(n) == out.size());
      next_seq += static_cast<uint32_t>(per_send);
      wrote += static_cast<size_t>(per_send);
    }
  }
};

using FloodFactory = std::function<void(Flood&, NetContext*)>;

struct FloodKind {
  const char* name;
  FloodFactory make;
};

const FloodKind kFloodKinds[] = {
    {"tap",
     [](Flood& fl, NetContext* net) {
       fl.Open(SOCK_SEQPACKET);
       fl.client = std::make_unique<TapClient>(1, "npcl-flood", net, fl.fds[0], 0);
       fl.budget = TapClient::kReadBudget;
     }},
    {"dgram",
     [](Flood& fl, NetContext* net) {
       fl.Open(SOCK_DGRAM);
       sockaddr_storage none{};
       auto c = std::make_unique<DgramClient>(1, "npcl-flood", net, none, 0);
       REQUIRE(c->AttachFd(fl.fds[0]).ok());
       fl.owned_by_client = true;
       fl.client = std::move(c);
       fl.budget = SocketClient::kReadBudget;
     }},
    {"stream",
     [](Flood& fl, NetContext* net) {
       fl.Open(SOCK_STREAM);
       fl.stream = true;
       auto c = std::make_unique<StreamClient>(1, "npcl-flood", net);
       REQUIRE(c->AttachFd(fl.fds[0]).ok());
       fl.owned_by_client = true;
       fl.client = std::move(c);
       fl.budget = SocketClient::kReadBudget;
     }},
};

// Everything else that is ready on the flooded context, armed afresh every round.
struct Bystanders {
  Loop& loop;
  FakeTap tap;
  TapClient link;
  ScriptedClient link_sink;
  BottomHalf* bh = nullptr;
  AioTimer* timer = nullptr;
  int bh_runs = 0, timer_runs = 0, oneshot_runs = 0;

  explicit Bystanders(Loop& l)
      : loop(l), link(3, "npcl-other", &l.net, tap.dp(), 0), link_sink(4, "npcl-other-sink", &l.net) {
    REQUIRE(NetClient::Link(&link, &link_sink).ok());
    REQUIRE(link.Start().ok());
    bh = loop.aio->NewBh([](void* o) { ++static_cast<Bystanders*>(o)->bh_runs; }, this, "npcl-bh");
    timer = loop.aio->NewTimer([](void* o) { ++static_cast<Bystanders*>(o)->timer_runs; }, this);
  }
  ~Bystanders() {
    link.Stop();
    AioContext::DeleteBh(bh);
    loop.aio->TimerFree(timer);
  }

  void Arm(int round) {
    REQUIRE(tap.Inject(nptest::EthFrame(100, static_cast<uint8_t>(round))));
    AioContext::ScheduleBh(bh);
    loop.aio->TimerMod(timer, AioContext::NowNs());  // already due
    // From another thread, as the JS thread's RunSync does.
    std::thread([this] { loop.aio->ScheduleOneshot([this] { ++oneshot_runs; }, "npcl-control"); }).join();
  }

  bool AllServed(int rounds) const {
    return link_sink.got.size() == static_cast<size_t>(rounds) && bh_runs == rounds && timer_runs == rounds &&
           oneshot_runs == rounds;
  }
};

bool InSequence(const ScriptedClient& sink) {
  for (size_t i = 0; i < sink.got.size(); ++i)
    if (sink.got[i].size() < 21 || sink.got[i][20] != static_cast<uint8_t>(i)) return false;
  return true;
}

void RunFlood(const FloodKind& kind) {
  Loop loop("npcl-starve");
  Flood flood;
  kind.make(flood, &loop.net);
  ScriptedClient sink(2, "npcl-flood-sink", &loop.net);  // never says "not now"
  REQUIRE(NetClient::Link(flood.client.get(), &sink).ok());
  REQUIRE(flood.client->Start().ok());
  Bystanders others(loop);

  // One iteration: the flood makes progress, within its budget.
  auto iterate = [&](const char* phase, int round) {
    size_t before = sink.got.size();
    loop.aio->Poll(false);
    size_t burst = sink.got.size() - before;
    if (burst == 0 || burst > static_cast<size_t>(flood.budget)) {
      std::fprintf(stderr, "  %s %s %d: the flood handed on %zu frames (budget %d)\n", kind.name, phase, round, burst,
                   flood.budget);
      CHECK(false);
    }
  };
  for (int round = 1; round <= kRounds; ++round) {
    size_t refilled = flood.Refill();
    if (round == 1) REQUIRE(refilled > static_cast<size_t>(4 * flood.budget));
    others.Arm(round);
    iterate("round", round);
    CHECK(others.AllServed(round));
  }
  // No more refills: everything written arrives, in order, in as few iterations as the
  // budget allows (a stream resumes its buffer from a bottom half, then reads on).
  const size_t written = flood.next_seq;
  const size_t left = written - sink.got.size();
  const int most = static_cast<int>((left + static_cast<size_t>(flood.budget) - 1) / static_cast<size_t>(flood.budget));
  for (int i = 0; i < most && sink.got.size() < written; ++i) iterate("drain", i);
  CHECK_EQ(sink.got.size(), written);
  CHECK(InSequence(sink));

  // A control-thread one-shot stops the flooded client: nothing more is read afterwards,
  // however much waits in its socket.
  NetClient* flooded = flood.client.get();
  std::thread([&] { loop.aio->ScheduleOneshot([flooded] { flooded->Stop(); }, "npcl-stop"); }).join();
  loop.aio->Poll(false);
  size_t at_stop = sink.got.size();
  flood.Refill();
  for (int i = 0; i < 3; ++i) loop.aio->Poll(false);
  CHECK_EQ(sink.got.size(), at_stop);
  CHECK(sink.counters().Snapshot().Conserved());
  flooded->Unlink();
}

}  // namespace

TEST(Starvation, FloodedTapLeavesEveryOtherHandlerItsTurn) { RunFlood(kFloodKinds[0]); }
TEST(Starvation, FloodedDgramLeavesEveryOtherHandlerItsTurn) { RunFlood(kFloodKinds[1]); }
TEST(Starvation, FloodedStreamLeavesEveryOtherHandlerItsTurn) { RunFlood(kFloodKinds[2]); }
