// A guest for the virtio tests: memory in a memfd mapped as two regions (guest-physical 0
// and 1 MiB, at unrelated "front-end" user addresses, like QEMU's SET_MEM_TABLE), a
// driver-side ring per virtqueue of one queue pair, eventfds for kicks, calls and errors,
// and helpers to post buffers and read completions.
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "dataplane_helpers.h"
#include "io/memfd.h"
#include "net/net_graph.h"
#include "virtio/virtqueue_driver.h"

namespace nptest {

namespace nc = netplane::core;

constexpr uint64_t kRegionSize = 1 << 20;
constexpr uint64_t kUserBase0 = 0x7f0000000000ull;
constexpr uint64_t kUserBase1 = 0x7f8000000000ull;
constexpr uint64_t kFeatVersion1 = 1ull << 32;
constexpr uint64_t kFeatMrg = 1ull << 15;
constexpr uint64_t kFeatEventIdx = 1ull << 29;
constexpr uint64_t kFeatGuestCsum = 1ull << 1;
constexpr uint64_t kFeatGuestTso4 = 1ull << 7;
constexpr uint64_t kFeatGuestTso6 = 1ull << 8;

inline uint64_t UserAddr(uint64_t gpa) {
  return gpa < kRegionSize ? kUserBase0 + gpa : kUserBase1 + (gpa - kRegionSize);
}

struct EventFd {
  int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  ~EventFd() {
    if (fd >= 0) ::close(fd);
  }
  void Signal() const {
    uint64_t one = 1;
    (void)!::write(fd, &one, 8);
  }
  // The count since the last Take (0 when none).
  uint64_t Take() const {
    uint64_t v = 0;
    if (::read(fd, &v, 8) != 8) return 0;
    return v;
  }
};

struct GuestRing {
  uint64_t desc, avail, used;
  nc::VirtqueueDriver drv;
  EventFd kick, call, err;
};

struct Guest {
  nc::UniqueFd memfd;
  std::shared_ptr<nc::GuestMemory> mem;
  GuestRing rx, tx;
  uint32_t size;
  uint64_t next_buf = 0x20000;  // buffer area (the rings sit below)
  bool event_idx = false;

  explicit Guest(uint32_t queue_size = 256, bool with_event_idx = false) : size(queue_size), event_idx(with_event_idx) {
    auto fd = nc::MemfdCreate("np-test-guest", 2 * kRegionSize);
    memfd = std::move(fd.value);
    std::vector<nc::GuestRegionSpec> regions = {{0, kRegionSize, kUserBase0, memfd.get(), 0},
                                                {kRegionSize, kRegionSize, kUserBase1, memfd.get(), kRegionSize}};
    mem = nc::GuestMemory::Map(regions).value;
    Layout(&rx, 0x0000);
    Layout(&tx, 0x10000);
  }
  void Layout(GuestRing* r, uint64_t base) {
    r->desc = base;
    r->avail = base + nc::VringDescBytes(size);
    r->used = (r->avail + nc::VringAvailBytes(size) + 15) & ~15ull;
    r->drv.Init(mem, size, r->desc, r->avail, r->used, event_idx);
  }
  GuestRing& ring(nc::VirtioRing r) { return r == nc::VirtioRing::kRx ? rx : tx; }

  nc::VirtioRingStart Start(nc::VirtioRing which, uint16_t base = 0) {
    GuestRing& r = ring(which);
    nc::VirtioRingStart s;
    s.memory = mem;
    s.addrs.size = size;
    s.addrs.desc = UserAddr(r.desc);
    s.addrs.avail = UserAddr(r.avail);
    s.addrs.used = UserAddr(r.used);
    s.addrs.space = nc::AddrSpace::kUser;
    s.addrs.base = base;
    s.kick = nc::UniqueFd(::fcntl(r.kick.fd, F_DUPFD_CLOEXEC, 0));
    s.call = nc::UniqueFd(::fcntl(r.call.fd, F_DUPFD_CLOEXEC, 0));
    s.err = nc::UniqueFd(::fcntl(r.err.fd, F_DUPFD_CLOEXEC, 0));
    return s;
  }
  // Set features and start both rings of client `h`.
  bool StartAll(nc::NetGraph& g, uint32_t h, uint64_t features) {
    return g.SetVirtioFeatures(h, features).ok() &&
           g.StartVring(h, nc::VirtioRing::kRx, Start(nc::VirtioRing::kRx)).ok() &&
           g.StartVring(h, nc::VirtioRing::kTx, Start(nc::VirtioRing::kTx)).ok();
  }

  uint64_t Alloc(uint32_t len) {
    uint64_t a = next_buf;
    next_buf += (len + 63) & ~63u;
    return a;
  }
  // Post one tx chain holding [hdr | frame] in one buffer (or split at `split` bytes).
  int SendFrame(const std::vector<uint8_t>& pkt, size_t split = 0, uint64_t indirect = 0) {
    uint64_t a = Alloc(static_cast<uint32_t>(pkt.size()));
    tx.drv.Write(a, pkt.data(), pkt.size());
    if (split == 0 || split >= pkt.size()) {
      nc::VirtqueueDriver::Buffer b{a, static_cast<uint32_t>(pkt.size()), false};
      return tx.drv.AddBuffers(&b, 1, indirect);
    }
    nc::VirtqueueDriver::Buffer b[2] = {{a, static_cast<uint32_t>(split), false},
                                        {a + split, static_cast<uint32_t>(pkt.size() - split), false}};
    return tx.drv.AddBuffers(b, 2, indirect);
  }
  // Post n rx buffers of len bytes each; remembers their addresses by head.
  std::vector<uint64_t> rx_addr = std::vector<uint64_t>(32768, 0);
  void PostRx(int n, uint32_t len) {
    for (int i = 0; i < n; ++i) {
      uint64_t a = Alloc(len);
      nc::VirtqueueDriver::Buffer b{a, len, true};
      int h = rx.drv.AddBuffers(&b, 1);
      if (h >= 0) rx_addr[h] = a;
    }
  }
  void Kick(GuestRing& r) {
    if (r.drv.Publish()) r.kick.Signal();
  }
  // Completed rx chains as [bytes the device wrote].
  std::vector<std::vector<uint8_t>> TakeRx() {
    std::vector<std::vector<uint8_t>> out;
    uint32_t head, len;
    while (rx.drv.GetUsed(&head, &len)) {
      std::vector<uint8_t> b(len);
      rx.drv.Read(rx_addr[head], b.data(), len);
      out.push_back(std::move(b));
    }
    return out;
  }
  int TakeTxDone() {
    int n = 0;
    uint32_t head, len;
    while (tx.drv.GetUsed(&head, &len)) ++n;
    return n;
  }
};

// [12-byte zero header | frame]
inline std::vector<uint8_t> WithHdr(const std::vector<uint8_t>& frame, size_t hdr = 12) {
  std::vector<uint8_t> v(hdr + frame.size(), 0);
  std::copy(frame.begin(), frame.end(), v.begin() + static_cast<ptrdiff_t>(hdr));
  return v;
}

}  // namespace nptest
