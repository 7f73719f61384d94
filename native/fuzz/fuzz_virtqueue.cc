// libFuzzer harness: a hostile guest that owns every byte of its memory. The input is the
// guest's memory image (both rings, descriptor tables, indirect tables, headers, packets)
// over two adjacent regions, a control byte choosing features and peer behaviour, and an
// optional second image the guest writes between bursts (a guest that rewrites what the
// device already looked at). One VirtioDeviceQueue serves the queue pair on a real
// AioContext (polled here, single-threaded); a sink peer takes tx frames and sends rx
// frames back, sometimes saying "not now".
// Invariants: nothing crashes or reads/writes outside guest memory (ASan/UBSan); every
// frame the peer gets is 14..kMaxFrameLen bytes after its header and has a header that
// validates; used.idx moves by at most the chains the device could pop (unless the guest put
// an rx buffer over it); the counters of both clients balance (frames in = out + queued +
// dropped) after every step.
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "aio/aio_context.h"
#include "fuzz_assert.h"
#include "net/net_client.h"
#include "virtio/guest_memory.h"
#include "virtio/split_ring.h"
#include "virtio_net/virtio_device_queue.h"

using namespace netplane::core;

namespace {

constexpr size_t kHalf = 0x4000;  // two regions of 16 KiB, adjacent in guest-physical space
constexpr uint64_t kBase = 0x10000;
constexpr uint32_t kQ = 16;
constexpr uint64_t kRx = kBase, kTx = kBase + 0x400;  // desc at +0, avail +0x100, used +0x200

class Sink : public NetClient {
 public:
  Sink(NetContext* ctx, int hdr) : NetClient(ClientKind::kPort, 1, "sink", ctx), hdr_(hdr) {}
  int vnet_hdr_len() const override { return hdr_; }
  bool refuse = false;
  RecvResult Receive(NetClient*, const Frame& f) override {
    FUZZ_ASSERT(f.len >= f.hdr_len);
    size_t eth = f.eth_len();
    FUZZ_ASSERT(eth >= kMinEthFrame && eth <= kMaxFrameLen);
    if (f.hdr_len) {
      VnetHdr h = ParseVnetHdr(f.data, f.hdr_len);
      FUZZ_ASSERT(ValidateVnetHdr(h, f.eth(), eth) == VnetError::kOk);
    }
    if (refuse) return RecvResult::kNotNow;
    counters_.Out(eth);
    return RecvResult::kConsumed;
  }

 private:
  int hdr_;
};

bool Balanced(const NetClient& c) { return c.counters().Snapshot().Conserved(); }

void RunLoop(AioContext* aio) {
  for (int i = 0; i < 64 && aio->Poll(false); ++i) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t ctl = data[0];
  ++data;
  --size;
  alignas(64) static uint8_t mem_a[kHalf], mem_b[kHalf];
  std::memset(mem_a, 0, kHalf);
  std::memset(mem_b, 0, kHalf);
  // The first image goes in from the ring area on; the rest (if any) is the rewrite.
  size_t first = size < 2 * kHalf ? size : 2 * kHalf;
  size_t split = ctl & 0x40 ? first / 2 : first;
  auto load = [&](const uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; ++i) (i < kHalf ? mem_a[i] : mem_b[i - kHalf]) = p[i];
  };
  load(data, split);

  auto mem = GuestMemory::Wrap({{kBase, mem_a, kHalf}, {kBase + kHalf, mem_b, kHalf}});
  FUZZ_ASSERT(mem.ok());
  // One loop for the whole run (creating an epoll set per input would dominate).
  static std::unique_ptr<AioContext> aio = std::move(AioContext::Create("fuzz").value);
  FUZZ_ASSERT(aio);
  NetContext ctx;
  ctx.aio = aio.get();
  ctx.name = "fuzz";
  {
    VirtioDeviceQueue q(2, "vq", &ctx);
    Sink peer(&ctx, ctl & 0x08 ? 12 : 0);
    FUZZ_ASSERT(NetClient::Link(&q, &peer).ok());
    uint64_t features = 0;
    if (ctl & 0x01) features |= 1ull << kVirtioNetFMrgRxbuf;
    if (ctl & 0x02) features |= 1ull << kVirtioFVersion1;
    if (ctl & 0x04) features |= 1ull << kVirtioFRingEventIdx;
    if (ctl & 0x10) features |= 1ull << kVirtioNetFGuestCsum | 1ull << kVirtioNetFGuestTso4;
    FUZZ_ASSERT(q.SetFeatures(features).ok());
    FUZZ_ASSERT(q.Start().ok());
    int kick[2] = {eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)};
    for (VirtioRing r : {VirtioRing::kRx, VirtioRing::kTx}) {
      uint64_t base = r == VirtioRing::kRx ? kRx : kTx;
      VirtioRingStart s;
      s.memory = mem.value;
      s.addrs = VringAddrs{kQ, base, base + 0x100, base + 0x200, AddrSpace::kGuest, 0, false};
      s.kick = UniqueFd(dup(kick[static_cast<int>(r)]));
      s.call = UniqueFd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
      FUZZ_ASSERT(q.StartRing(r, std::move(s)).ok());
    }
    uint8_t* used_tx = mem_a + 0x600;
    uint16_t used_before = LoadRelaxed16(used_tx + 2);
    // An rx buffer the guest placed over the tx used ring (directly, or perhaps through an
    // indirect table) lets the frames we write rewrite its used.idx: harmless (guest memory,
    // the guest's choice), but then the used.idx bound below does not hold.
    bool rx_over_tx_used = false;
    for (uint32_t i = 0; i < kQ; ++i) {
      VringDesc d = DecodeDesc(mem_a + (kRx - kBase) + 16 * i);
      const uint64_t lo = kTx + 0x200, hi = kTx + 0x200 + 4;  // used flags and idx
      if ((d.flags & kVringDescFIndirect) || ((d.flags & kVringDescFWrite) && d.addr < hi && d.addr + d.len > lo))
        rx_over_tx_used = true;
    }
    RunLoop(ctx.aio);  // the start scan
    // Frames from the peer towards the guest: small, mergeable-sized, and a GSO frame built
    // from guest-chosen bytes (it may or may not validate).
    std::vector<uint8_t> frame(12 + 4000, 0);
    for (size_t i = 0; i < frame.size(); ++i) frame[i] = data[i % size];
    for (int round = 0; round < 2; ++round) {
      peer.refuse = (ctl & 0x20) && round == 0;
      for (uint32_t len : {60u, 1500u, 4000u}) {
        Frame f{frame.data(), static_cast<uint32_t>(peer.vnet_hdr_len() + len),
                static_cast<uint16_t>(peer.vnet_hdr_len())};
        peer.counters().In(len);
        peer.Send(f, /*with_callback=*/false);
      }
      uint64_t one = 1;
      (void)!write(kick[0], &one, 8);
      (void)!write(kick[1], &one, 8);
      RunLoop(ctx.aio);
      if (peer.refuse) {
        peer.refuse = false;
        peer.FlushQueuedPackets();
        RunLoop(ctx.aio);
      }
      // (Only until the guest rewrites its memory: it may scribble over used.idx too.)
      uint16_t used_now = LoadRelaxed16(used_tx + 2);
      if (round == 0 && !rx_over_tx_used) FUZZ_ASSERT(static_cast<uint16_t>(used_now - used_before) <= 3 * kQ);
      FUZZ_ASSERT(Balanced(q));
      FUZZ_ASSERT(Balanced(peer));
      // The guest rewrites its memory (including what the device already read).
      if (round == 0 && split < first) load(data + split, first - split);
    }
    q.StopRing(VirtioRing::kRx);
    q.StopRing(VirtioRing::kTx);
    q.Unlink();
    q.incoming().Purge(nullptr, DropReason::kPurged);
    q.Stop();
    close(kick[0]);
    close(kick[1]);
    RunLoop(ctx.aio);
  }
  return 0;
}
