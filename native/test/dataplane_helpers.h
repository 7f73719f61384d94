// Shared helpers for the data plane tests: a socketpair(AF_UNIX, SOCK_SEQPACKET) stands in
// for a TAP queue fd (one datagram = one frame, non-blocking, EAGAIN when full), a graph
// whose events are collected, and bounded waits.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "net/net_graph.h"
#include "test.h"

namespace nptest {

// fds[0] is handed to the data plane as the "TAP"; fds[1] is the kernel's side. Declare
// FakeTaps (and ring memory) before the NetGraph that uses them, so the graph stops polling
// an fd before it is closed (the other order is a race ThreadSanitizer reports).
struct FakeTap {
  int fds[2] = {-1, -1};
  FakeTap() {
    signal(SIGPIPE, SIG_IGN);
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) fds[0] = fds[1] = -1;
  }
  ~FakeTap() {
    CloseKernelSide();
    if (fds[0] >= 0) close(fds[0]);
  }
  int dp() const { return fds[0]; }
  void CloseKernelSide() {
    if (fds[1] >= 0) close(fds[1]);
    fds[1] = -1;
  }
  // The kernel "receives" a frame the host stack sends: the data plane will read it.
  bool Inject(const std::vector<uint8_t>& f) { return write(fds[1], f.data(), f.size()) == (ssize_t)f.size(); }
  // A frame the data plane wrote, waiting up to timeout_ms; empty when none came. The
  // default only bounds a hang: under valgrind on a loaded machine a wake-up can take seconds.
  std::vector<uint8_t> Take(int timeout_ms = 15000) {
    pollfd p{fds[1], POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) return {};
    std::vector<uint8_t> buf(70000);
    ssize_t n = read(fds[1], buf.data(), buf.size());
    if (n < 0) return {};
    buf.resize(static_cast<size_t>(n));
    return buf;
  }
  // Shrink the socket buffers so the data plane sees EAGAIN after a few frames.
  void SmallBuffers() {
    int sz = 4096;
    setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  }
};

// One AioContext that the test's own thread polls, and a NetContext on it for clients built by
// hand (no NetGraph, no IoThread): the test decides when each turn of the loop runs.
struct Loop {
  std::unique_ptr<netplane::core::AioContext> aio;
  netplane::core::NetContext net;
  explicit Loop(const char* name) {
    auto r = netplane::core::AioContext::Create(name);
    REQUIRE(r.ok());
    aio = std::move(r.value);
    net.aio = aio.get();
    net.name = name;
  }
};

// An ethernet frame of `len` bytes whose payload bytes carry `tag`.
inline std::vector<uint8_t> EthFrame(size_t len, uint8_t tag) {
  std::vector<uint8_t> f(len, tag);
  const uint8_t dst[6] = {0x52, 0x54, 0, 0, 0, 2}, src[6] = {0x52, 0x54, 0, 0, 0, 1};
  std::memcpy(f.data(), dst, 6);
  std::memcpy(f.data() + 6, src, 6);
  f[12] = 0x88;  // local experimental ethertype 0x88b5
  f[13] = 0xb5;
  return f;
}

struct EventLog {
  std::mutex mu;
  std::vector<netplane::core::GraphEvent> events;
  netplane::core::EventSink Sink() {
    return [this](const netplane::core::GraphEvent& e) {
      std::lock_guard<std::mutex> l(mu);
      events.push_back(e);
    };
  }
  size_t Count(netplane::core::GraphEvent::Kind k) {
    std::lock_guard<std::mutex> l(mu);
    size_t n = 0;
    for (auto& e : events) n += e.kind == k;
    return n;
  }
};

template <class Pred>
bool WaitFor(Pred pred, int timeout_ms = 20000) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return pred();
}

// A receiver whose answers are scripted: "not now" while busy, otherwise it records frames.
class ScriptedClient : public netplane::core::NetClient {
 public:
  ScriptedClient(uint32_t h, const char* name, netplane::core::NetContext* ctx)
      : NetClient(netplane::core::ClientKind::kPort, h, name, ctx) {}
  bool busy = false;
  std::vector<std::vector<uint8_t>> got;
  int sent_callbacks = 0;
  netplane::core::RecvResult Receive(NetClient*, const netplane::core::Frame& f) override {
    if (busy) return netplane::core::RecvResult::kNotNow;
    got.emplace_back(f.data, f.data + f.len);
    counters_.Out(f.eth_len());
    return netplane::core::RecvResult::kConsumed;
  }
  void OnQueuedSent() override { ++sent_callbacks; }
};

inline netplane::core::ClientInfo InfoOf(netplane::core::NetGraph& g, uint32_t handle) {
  for (auto& i : g.Snapshot())
    if (i.handle == handle) return i;
  return {};
}

inline bool AllConserved(netplane::core::NetGraph& g) {
  for (auto& i : g.Snapshot())
    if (!i.counters.Conserved()) {
      std::fprintf(stderr, "  not conserved: %s in=%llu out=%llu queued=%llu dropped=%llu\n", i.name.c_str(),
                   (unsigned long long)i.counters.frames_in, (unsigned long long)i.counters.frames_out,
                   (unsigned long long)i.counters.queued, (unsigned long long)i.counters.dropped());
      return false;
    }
  return true;
}

inline netplane::core::ClientSpec Spec(uint32_t handle, const char* name, uint32_t q = 0) {
  netplane::core::ClientSpec s;
  s.handle = handle;
  s.name = name;
  s.queue_index = q;
  return s;
}

inline uint64_t Drops(const netplane::core::ClientInfo& i, netplane::core::DropReason r) {
  return i.counters.drops[static_cast<size_t>(r)];
}

}  // namespace nptest
