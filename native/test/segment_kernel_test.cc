// SegmentFrame against the kernel's own software GSO, byte for byte (needs root).
//
// 1. Capture real GSO frames: a TAP "A" with IFF_VNET_HDR and offloads on lives in a
//    namespace with an address; a TCP socket there connects to a fake peer behind the TAP
//    (we answer the handshake ourselves) and writes 64 KiB, so the kernel hands us a
//    GSO_TCPV4/TCPV6 frame; a UDP socket with UDP_SEGMENT gives a GSO_UDP_L4 frame.
// 2. Get the kernel's segmentation of exactly that frame: TAPs "B" (vnet header on) and
//    "C" (no vnet header, offloads off) in a bridge in a second namespace; a frame written
//    into B is forwarded to C, and since C cannot take TSO/USO/checksum offload the kernel
//    segments it in software (validate_xmit_skb -> skb_gso_segment).
// 3. Compare C's frames with SegmentFrame's output.
// UFO cannot be captured (Linux stopped generating it in 4.14) but the kernel still
// segments UFO frames written into a TAP, so synthetic UFO frames go through step 2/3;
// so do synthetic TSO frames with the corner cases (CWR/FIN, VLAN, options, wraps).
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "base/unique_fd.h"
#include "frame_builder.h"
#include "test.h"

using namespace netplane::core;
using nptest::BuildFrame;
using nptest::Collected;
using nptest::FrameSpec;
using nptest::GsoHeader;

namespace {

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#define TUN_F_USO6 0x40
#endif

const uint8_t kPeerMac[6] = {0x02, 0x6e, 0x70, 0x00, 0x00, 0x02};

void Run(const std::string& cmd) {
  if (std::system((cmd + " >/dev/null 2>&1").c_str()) != 0) {
    throw std::runtime_error("command failed: " + cmd);
  }
}
void RunQuiet(const std::string& cmd) {
  if (std::system((cmd + " >/dev/null 2>&1").c_str()) != 0) { /* best effort */
  }
}

bool Privileged() {
  return geteuid() == 0 && access("/dev/net/tun", R_OK | W_OK) == 0 &&
         std::system("ip netns list >/dev/null 2>&1") == 0;
}

// A throwaway network namespace, deleted (with every interface in it) on scope exit.
class Netns {
 public:
  explicit Netns(std::string name) : name_(std::move(name)) {
    RunQuiet("ip netns del " + name_);
    Run("ip netns add " + name_);
    Run("ip -n " + name_ + " link set lo up");
    // No IPv6 chatter (router solicitations, MLD) and no br_netfilter in our way.
    RunQuiet("ip netns exec " + name_ + " sysctl -qw net.ipv6.conf.default.disable_ipv6=1");
    RunQuiet("ip netns exec " + name_ + " sysctl -qw net.bridge.bridge-nf-call-iptables=0");
    RunQuiet("ip netns exec " + name_ + " sysctl -qw net.bridge.bridge-nf-call-ip6tables=0");
  }
  ~Netns() { RunQuiet("ip netns del " + name_); }
  const std::string& name() const { return name_; }
  std::string Ip(const std::string& args) const { return "ip -n " + name_ + " " + args; }

 private:
  std::string name_;
};

// Run this thread inside a namespace until scope exit (TAPs and sockets created meanwhile
// belong to it).
class EnterNetns {
 public:
  explicit EnterNetns(const Netns& ns) : orig_(open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC)) {
    UniqueFd target(open(("/var/run/netns/" + ns.name()).c_str(), O_RDONLY | O_CLOEXEC));
    if (!orig_.valid() || !target.valid() || setns(target.get(), CLONE_NEWNET) != 0) {
      throw std::runtime_error("setns into " + ns.name() + " failed");
    }
  }
  ~EnterNetns() {
    if (setns(orig_.get(), CLONE_NEWNET) != 0) std::abort();  // never run on in the wrong ns
  }

 private:
  UniqueFd orig_;
};

UniqueFd OpenTap(const std::string& name, bool vnet_hdr, unsigned offloads) {
  UniqueFd fd(open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK));
  if (!fd.valid()) throw std::runtime_error("open /dev/net/tun failed");
  ifreq ifr{};
  std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name.c_str());
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (vnet_hdr ? IFF_VNET_HDR : 0);
  if (ioctl(fd.get(), TUNSETIFF, &ifr) != 0) throw std::runtime_error("TUNSETIFF " + name);
  if (vnet_hdr) {
    int len = 10;
    if (ioctl(fd.get(), TUNSETVNETHDRSZ, &len) != 0) throw std::runtime_error("TUNSETVNETHDRSZ");
  }
  if (ioctl(fd.get(), TUNSETOFFLOAD, offloads) != 0) {
    throw std::runtime_error("TUNSETOFFLOAD " + std::to_string(offloads));
  }
  return fd;
}

// One read from fd, waiting up to timeout_ms; empty on timeout.
std::vector<uint8_t> ReadFrame(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) <= 0) return {};
  std::vector<uint8_t> buf(kNetBufSize);
  ssize_t n = read(fd, buf.data(), buf.size());
  if (n <= 0) return {};
  buf.resize(static_cast<size_t>(n));
  return buf;
}

using Clock = std::chrono::steady_clock;

// ---- step 2: the kernel's segmentation --------------------------------------------------

class KernelSegmenter {
 public:
  KernelSegmenter()
      : ns_("npsgk" + std::to_string(getpid())),
        br_("npsgbr" + std::to_string(getpid() % 100000)),
        b_name_("npsgb" + std::to_string(getpid() % 100000)),
        c_name_("npsgc" + std::to_string(getpid() % 100000)) {
    {
      EnterNetns in(ns_);
      b_ = OpenTap(b_name_, true, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6);
      c_ = OpenTap(c_name_, false, 0);  // no checksum, no TSO/USO: software GSO happens
    }
    Run(ns_.Ip("link add " + br_ + " type bridge stp_state 0"));
    Run(ns_.Ip("link set " + b_name_ + " master " + br_));
    Run(ns_.Ip("link set " + c_name_ + " master " + br_));
    for (const auto& d : {br_, b_name_, c_name_}) Run(ns_.Ip("link set " + d + " up"));
  }

  // Write hdr+frame into B and return what comes out of C (frames with the same MACs),
  // stopping at `expect` frames or 1 s after the last one.
  std::vector<std::vector<uint8_t>> Segment(const VnetHdr& h, const std::vector<uint8_t>& frame, size_t expect) {
    while (!ReadFrame(c_.get(), 0).empty()) {
    }  // drop leftovers
    std::vector<uint8_t> buf(kVnetHdrLenLegacy);
    WriteVnetHdr(h, buf.data(), buf.size());
    buf.insert(buf.end(), frame.begin(), frame.end());
    ssize_t n = write(b_.get(), buf.data(), buf.size());
    if (n != static_cast<ssize_t>(buf.size())) {
      throw std::runtime_error("write into B failed: " + std::string(std::strerror(errno)));
    }
    std::vector<std::vector<uint8_t>> out;
    while (out.size() < expect) {
      auto f = ReadFrame(c_.get(), 1000);
      if (f.empty()) break;
      if (f.size() >= 12 && std::memcmp(f.data(), frame.data(), 12) == 0) out.push_back(std::move(f));
    }
    return out;
  }

 private:
  Netns ns_;
  std::string br_, b_name_, c_name_;
  UniqueFd b_, c_;
};

// ---- step 3: compare ---------------------------------------------------------------------

std::string Hex(const std::vector<uint8_t>& v, size_t from, size_t n) {
  std::string s;
  char tmp[4];
  for (size_t i = from; i < v.size() && i < from + n; ++i) {
    std::snprintf(tmp, sizeof tmp, "%02x", v[i]);
    s += tmp;
  }
  return s;
}

// Segment with both, compare. ipv6_frag_id_at: offset of an IPv6 fragment identification
// the kernel picks at random (checked to be one value, then copied into ours).
void CompareWithKernel(KernelSegmenter& k, const char* what, const VnetHdr& h, const std::vector<uint8_t>& frame,
                       size_t ipv6_frag_id_at = 0) {
  std::vector<uint8_t> scratch(kMaxFrameLen);
  Collected ours;
  VnetError e = SegmentFrame(h, frame.data(), frame.size(), scratch.data(), Collected::Sink, &ours);
  if (e != VnetError::kOk) {
    nptest::Fail(__FILE__, __LINE__, std::string(what) + ": SegmentFrame: " + VnetErrorName(e));
    return;
  }
  auto theirs = k.Segment(h, frame, ours.frames.size());
  if (theirs.size() != ours.frames.size()) {
    nptest::Fail(__FILE__, __LINE__,
                 std::string(what) + ": kernel emitted " + std::to_string(theirs.size()) + " frames, we " +
                     std::to_string(ours.frames.size()));
    return;
  }
  for (size_t i = 0; i < theirs.size(); ++i) {
    auto& mine = ours.frames[i];
    if (ipv6_frag_id_at && theirs[i].size() >= ipv6_frag_id_at + 4 && mine.size() >= ipv6_frag_id_at + 4) {
      CHECK(std::memcmp(&theirs[i][ipv6_frag_id_at], &theirs[0][ipv6_frag_id_at], 4) == 0);
      std::memcpy(&mine[ipv6_frag_id_at], &theirs[i][ipv6_frag_id_at], 4);
    }
    if (mine != theirs[i]) {
      size_t at = 0;
      while (at < mine.size() && at < theirs[i].size() && mine[at] == theirs[i][at]) ++at;
      nptest::Fail(__FILE__, __LINE__,
                   std::string(what) + ": segment " + std::to_string(i) + " differs at byte " + std::to_string(at) +
                       " (len ours " + std::to_string(mine.size()) + ", kernel " + std::to_string(theirs[i].size()) +
                       "): ours " + Hex(mine, at, 8) + " kernel " + Hex(theirs[i], at, 8));
      return;
    }
  }
  std::printf("    %s: %zu frames identical to the kernel's\n", what, theirs.size());
}

// ---- step 1: capture real GSO frames ------------------------------------------------------

struct Captured {
  VnetHdr hdr;
  std::vector<uint8_t> frame;
};

class CaptureNs {
 public:
  CaptureNs() : ns_("npsga" + std::to_string(getpid())), tap_name_("npsga" + std::to_string(getpid() % 100000)) {
    RunQuiet("ip netns exec " + ns_.name() + " sysctl -qw net.ipv6.conf.default.disable_ipv6=0");
    {
      EnterNetns in(ns_);
      tap_ = OpenTap(tap_name_, true, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6);
    }
    Run(ns_.Ip("link set " + tap_name_ + " up"));
    Run(ns_.Ip("addr add 10.201.0.1/24 dev " + tap_name_));
    Run(ns_.Ip("-6 addr add fd00:6e70::1/64 dev " + tap_name_ + " nodad"));
    Run(ns_.Ip("neigh replace 10.201.0.2 lladdr 02:6e:70:00:00:02 nud permanent dev " + tap_name_));
    Run(ns_.Ip("-6 neigh replace fd00:6e70::2 lladdr 02:6e:70:00:00:02 nud permanent dev " + tap_name_));
    // A large initial window, so the first burst is one big TSO frame.
    Run(ns_.Ip("route replace 10.201.0.0/24 dev " + tap_name_ + " initcwnd 64"));
    Run(ns_.Ip("-6 route replace fd00:6e70::/64 dev " + tap_name_ + " metric 1 initcwnd 64"));
  }

  // A TCP connection from the namespace to the fake peer, then 64 KiB of data: returns
  // the first GSO frame the kernel hands the TAP.
  Captured CaptureTcp(bool v6) {
    UniqueFd sock;
    {
      EnterNetns in(ns_);
      sock.Reset(socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    }
    if (!sock.valid()) throw std::runtime_error("socket");
    int sndbuf = 4 << 20;
    setsockopt(sock.get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    sockaddr_storage ss{};
    socklen_t sl = PeerAddr(v6, 5201, &ss);
    if (connect(sock.get(), reinterpret_cast<sockaddr*>(&ss), sl) == 0 || errno != EINPROGRESS) {
      throw std::runtime_error("connect did not start");
    }
    std::vector<uint8_t> syn = WaitFor([&](const VnetHdr&, const std::vector<uint8_t>& f) {
      size_t l4 = 0;
      return TcpAt(f, v6, &l4) && (f[l4 + 13] & 0x12) == 0x02;
    });
    WritePlain(Reply(syn, v6, true));
    pollfd p{sock.get(), POLLOUT, 0};
    int soerr = -1;
    socklen_t el = sizeof soerr;
    if (poll(&p, 1, 3000) != 1 || getsockopt(sock.get(), SOL_SOCKET, SO_ERROR, &soerr, &el) != 0 || soerr != 0) {
      throw std::runtime_error("handshake did not complete");
    }
    // Open the window wide (scaled by 7): Linux sizes its TSO frames to at most half the
    // largest window the peer advertised, and the SYN-ACK's window is capped at 64 KiB.
    WritePlain(Reply(syn, v6, false));
    std::vector<uint8_t> data(64 * 1024);
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 13 + (i >> 9));
    if (send(sock.get(), data.data(), data.size(), 0) <= 0) throw std::runtime_error("send");
    auto is_tso = [&](const VnetHdr& h, const std::vector<uint8_t>&) {
      return (h.gso_type & ~kGsoEcn) == (v6 ? kGsoTcpv6 : kGsoTcpv4);
    };
    Captured c;
    c.frame = WaitFor(is_tso, &c.hdr);
    // The rest of the first burst may hold bigger GSO frames: keep the biggest.
    for (auto buf = ReadFrame(tap_.get(), 200); buf.size() > kVnetHdrLenLegacy; buf = ReadFrame(tap_.get(), 200)) {
      VnetHdr h = ParseVnetHdr(buf.data(), kVnetHdrLenLegacy);
      std::vector<uint8_t> f(buf.begin() + kVnetHdrLenLegacy, buf.end());
      if (is_tso(h, f) && f.size() > c.frame.size()) {
        c.hdr = h;
        c.frame = std::move(f);
      }
    }
    return c;
  }

  // One UDP_SEGMENT send of `len` bytes in gso_size pieces: the GSO_UDP_L4 frame.
  Captured CaptureUdp(bool v6, size_t len, int gso_size) {
    UniqueFd sock;
    {
      EnterNetns in(ns_);
      sock.Reset(socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    }
    if (!sock.valid()) throw std::runtime_error("socket");
    if (setsockopt(sock.get(), IPPROTO_UDP, UDP_SEGMENT, &gso_size, sizeof gso_size) != 0) {
      throw std::runtime_error("UDP_SEGMENT not supported");
    }
    sockaddr_storage ss{};
    socklen_t sl = PeerAddr(v6, 9, &ss);
    std::vector<uint8_t> data(len);
    for (size_t i = 0; i < len; ++i) data[i] = static_cast<uint8_t>(i * 5 + 3);
    if (sendto(sock.get(), data.data(), len, 0, reinterpret_cast<sockaddr*>(&ss), sl) != static_cast<ssize_t>(len)) {
      throw std::runtime_error("sendto with UDP_SEGMENT failed: " + std::string(std::strerror(errno)));
    }
    Captured c;
    c.frame = WaitFor([&](const VnetHdr& h, const std::vector<uint8_t>&) { return h.gso_type == kGsoUdpL4; }, &c.hdr);
    return c;
  }

 private:
  static socklen_t PeerAddr(bool v6, uint16_t port, sockaddr_storage* ss) {
    if (v6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(ss);
      a->sin6_family = AF_INET6;
      a->sin6_port = htons(port);
      inet_pton(AF_INET6, "fd00:6e70::2", &a->sin6_addr);
      return sizeof *a;
    }
    auto* a = reinterpret_cast<sockaddr_in*>(ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    inet_pton(AF_INET, "10.201.0.2", &a->sin_addr);
    return sizeof *a;
  }

  // A plain IPv4/IPv6 TCP frame (no VLAN) and where its TCP header starts.
  static bool TcpAt(const std::vector<uint8_t>& f, bool v6, size_t* l4) {
    if (f.size() < 14 + 40 + 20) return false;
    if (v6) {
      if (LoadBe16(&f[12]) != 0x86dd || f[14 + 6] != 6) return false;
      *l4 = 14 + 40;
    } else {
      if (LoadBe16(&f[12]) != 0x0800 || f[14 + 9] != 6) return false;
      *l4 = 14 + (f[14] & 0x0f) * 4u;
    }
    return f.size() >= *l4 + 20;
  }

  template <class Pred>
  std::vector<uint8_t> WaitFor(Pred pred, VnetHdr* hdr_out = nullptr) {
    auto deadline = Clock::now() + std::chrono::seconds(5);
    while (Clock::now() < deadline) {
      auto buf = ReadFrame(tap_.get(), 200);
      if (buf.size() <= kVnetHdrLenLegacy) continue;
      VnetHdr h = ParseVnetHdr(buf.data(), kVnetHdrLenLegacy);
      std::vector<uint8_t> f(buf.begin() + kVnetHdrLenLegacy, buf.end());
      if (pred(h, f)) {
        if (hdr_out) *hdr_out = h;
        return f;
      }
    }
    throw std::runtime_error("expected frame did not arrive from the TAP");
  }

  void WritePlain(const std::vector<uint8_t>& frame) {
    std::vector<uint8_t> out(kVnetHdrLenLegacy, 0);  // zero header: a plain frame
    out.insert(out.end(), frame.begin(), frame.end());
    if (write(tap_.get(), out.data(), out.size()) != static_cast<ssize_t>(out.size())) {
      throw std::runtime_error("write to the capture TAP failed");
    }
  }

  // The fake peer's answers to the kernel's SYN: the SYN-ACK (MSS, window scale 7 and, if
  // offered, timestamps), or the ACK that follows it with the window opened to 8 MiB.
  static std::vector<uint8_t> Reply(const std::vector<uint8_t>& syn, bool v6, bool synack) {
    size_t l4 = 0;
    TcpAt(syn, v6, &l4);
    const uint8_t* sth = &syn[l4];
    uint32_t tsval = 0;
    bool ts = false;
    size_t opt_end = l4 + (sth[12] >> 4) * 4u;
    for (size_t o = l4 + 20; o < opt_end && o < syn.size();) {
      uint8_t kind = syn[o];
      if (kind == 0) break;
      if (kind == 1) {
        ++o;
        continue;
      }
      if (o + 1 >= syn.size() || syn[o + 1] < 2) break;
      if (kind == 8 && o + 10 <= syn.size()) {
        ts = true;
        tsval = LoadBe32(&syn[o + 2]);
      }
      o += syn[o + 1];
    }
    std::vector<uint8_t> f(syn.begin(), syn.begin() + l4);
    std::memcpy(&f[0], &syn[6], 6);
    std::memcpy(&f[6], kPeerMac, 6);
    size_t l3 = 14;
    uint8_t opts[20];
    size_t optlen = 0;
    auto put = [&](std::initializer_list<uint8_t> b) {
      for (uint8_t x : b) opts[optlen++] = x;
    };
    uint16_t mss = v6 ? 1440 : 1460;
    if (synack) {
      put({2, 4, static_cast<uint8_t>(mss >> 8), static_cast<uint8_t>(mss)});
      put({1, 3, 3, 7});
    }
    if (ts) {
      put({1, 1, 8, 10, 0, 0, 0, 1});
      put({static_cast<uint8_t>(tsval >> 24), static_cast<uint8_t>(tsval >> 16), static_cast<uint8_t>(tsval >> 8),
           static_cast<uint8_t>(tsval)});
    }
    size_t thl = 20 + optlen;
    f.resize(l4 + thl, 0);
    uint8_t* ip = &f[l3];
    if (v6) {
      std::memcpy(ip + 8, &syn[l3 + 24], 16);
      std::memcpy(ip + 24, &syn[l3 + 8], 16);
      StoreBe16(ip + 4, static_cast<uint16_t>(thl));
    } else {
      std::memcpy(ip + 12, &syn[l3 + 16], 4);
      std::memcpy(ip + 16, &syn[l3 + 12], 4);
      StoreBe16(ip + 2, static_cast<uint16_t>(l4 - l3 + thl));
      StoreBe16(ip + 4, 0);
      StoreBe16(ip + 10, 0);
      StoreBe16(ip + 10, InternetChecksum(ip, l4 - l3));
    }
    uint8_t* th = &f[l4];
    StoreBe16(th, LoadBe16(sth + 2));
    StoreBe16(th + 2, LoadBe16(sth));
    StoreBe32(th + 4, synack ? 0x6e700000 : 0x6e700001);
    StoreBe32(th + 8, LoadBe32(sth + 4) + 1);
    th[12] = static_cast<uint8_t>((thl / 4) << 4);
    th[13] = synack ? 0x12 : 0x10;  // SYN|ACK, or ACK
    StoreBe16(th + 14, 65535);
    std::memcpy(th + 20, opts, optlen);
    uint64_t ps = v6 ? PseudoHeaderSumV6(ip + 8, ip + 24, 6, static_cast<uint32_t>(thl))
                     : PseudoHeaderSumV4(ip + 12, ip + 16, 6, static_cast<uint32_t>(thl));
    StoreBe16(th + 16, ChecksumFinish(ChecksumAdd(ps, th, thl)));
    return f;
  }

  Netns ns_;
  std::string tap_name_;
  UniqueFd tap_;
};

void RequireRoot() {
  if (!Privileged()) nptest::Skip("needs root, /dev/net/tun and ip netns");
}

}  // namespace

TEST(SegmentKernel, CapturedTcpFramesMatchTheKernel) {
  RequireRoot();
  KernelSegmenter k;
  CaptureNs cap;
  for (bool v6 : {false, true}) {
    Captured c = cap.CaptureTcp(v6);
    CHECK_VERR(ValidateVnetHdr(c.hdr, c.frame.data(), c.frame.size()), VnetError::kOk);
    size_t segs = CountSegments(c.hdr, c.frame.data(), c.frame.size());
    std::printf("    captured %s frame: %zu bytes, gso_size %u -> %zu segments\n", v6 ? "TSO6" : "TSO4", c.frame.size(),
                c.hdr.gso_size, segs);
    CHECK(segs >= 2);
    CompareWithKernel(k, v6 ? "captured TSO6" : "captured TSO4", c.hdr, c.frame);
  }
}

TEST(SegmentKernel, CapturedUdpSegmentFramesMatchTheKernel) {
  RequireRoot();
  KernelSegmenter k;
  CaptureNs cap;
  for (bool v6 : {false, true}) {
    Captured c = cap.CaptureUdp(v6, 10000, 1200);
    CHECK_VERR(ValidateVnetHdr(c.hdr, c.frame.data(), c.frame.size()), VnetError::kOk);
    CHECK_EQ(CountSegments(c.hdr, c.frame.data(), c.frame.size()), 9u);
    CompareWithKernel(k, v6 ? "captured USO6" : "captured USO4", c.hdr, c.frame);
  }
}

TEST(SegmentKernel, SyntheticCornerCasesMatchTheKernel) {
  RequireRoot();
  KernelSegmenter k;
  size_t l4;
  {
    FrameSpec s;  // CWR/FIN/PSH handling, seq and IP ID wrapping, IP and TCP options
    s.payload = 7000;
    s.tcp_flags = 0x80 | 0x10 | 0x08 | 0x01;
    s.seq = 0xfffff000;
    s.ip_id = 0xfffe;
    s.ipv4_options = 4;
    s.tcp_options = 12;
    auto f = BuildFrame(s, nullptr, &l4);
    CompareWithKernel(k, "TSO4 CWR/FIN/wraps/options", GsoHeader(s, l4, kGsoTcpv4 | kGsoEcn, 1000), f);
  }
  {
    FrameSpec s;  // 802.1Q-tagged
    s.vlan_tags = 1;
    s.payload = 5000;
    auto f = BuildFrame(s, nullptr, &l4);
    CompareWithKernel(k, "TSO4 VLAN", GsoHeader(s, l4, kGsoTcpv4, 1448), f);
  }
  {
    FrameSpec s;  // IPv6 with a hop-by-hop header before TCP
    s.ipv6 = true;
    s.ipv6_hbh = 8;
    s.payload = 6000;
    s.tcp_flags = 0x19;
    auto f = BuildFrame(s, nullptr, &l4);
    CompareWithKernel(k, "TSO6 hop-by-hop", GsoHeader(s, l4, kGsoTcpv6, 1400), f);
  }
  {
    FrameSpec s;  // UFO over IPv4: fragments with one ID, MF and offsets
    s.udp = true;
    s.payload = 6000;
    auto f = BuildFrame(s, nullptr, &l4);
    CompareWithKernel(k, "UFO4", GsoHeader(s, l4, kGsoUdp, 1480), f);
  }
  {
    FrameSpec s;  // UFO over IPv6: a fragment header; the kernel picks the ID at random
    s.ipv6 = true;
    s.udp = true;
    s.payload = 4000;
    auto f = BuildFrame(s, nullptr, &l4);
    CompareWithKernel(k, "UFO6", GsoHeader(s, l4, kGsoUdp, 1448), f, l4 + 4);
  }
  {
    FrameSpec s;  // USO over IPv6, last segment short
    s.ipv6 = true;
    s.udp = true;
    s.payload = 3001;
    auto f = BuildFrame(s, nullptr, &l4);
    CompareWithKernel(k, "USO6 odd tail", GsoHeader(s, l4, kGsoUdpL4, 1000), f);
  }
  {
    FrameSpec s;  // not GSO: checksum completion only
    s.udp = true;
    s.payload = 333;
    auto f = BuildFrame(s, nullptr, &l4);
    CompareWithKernel(k, "NEEDS_CSUM only", GsoHeader(s, l4, kGsoNone, 0), f);
  }
  {
    FrameSpec s;  // GSO type but payload <= gso_size: one frame, checksum completed
    s.payload = 900;
    auto f = BuildFrame(s, nullptr, &l4);
    CompareWithKernel(k, "small TSO4", GsoHeader(s, l4, kGsoTcpv4, 1448), f);
  }
}
