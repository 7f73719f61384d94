// TapDevice against the real kernel: open/adopt, header size, offloads, queue attach and
// detach, sndbuf, and the failure paths (nothing leaks, errors name the step).
#include <dirent.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>

#include "fd_count.h"
#include "tap/tap_device.h"
#include "test.h"

using netplane::core::Status;
using netplane::core::TapDevice;
using netplane::core::TapOffloads;
using netplane::core::TapOpenOptions;
using netplane::core::ValidateTapIfname;
using netplane::core::VnetHdrMode;

namespace {

using nptest::OpenFdCount;

void RequireTapPrivilege() {
  if (geteuid() != 0) nptest::Skip("needs root (CAP_NET_ADMIN) to create TAP devices");
  if (access("/dev/net/tun", R_OK | W_OK) != 0) nptest::Skip("needs /dev/net/tun");
}

std::string TestIfname(const char* tag) {
  return ("npc" + std::string(tag) + std::to_string(getpid() % 100000)).substr(0, 15);
}

long TunFlags(const std::string& ifname) {
  std::ifstream in("/sys/class/net/" + ifname + "/tun_flags");
  std::string text;
  if (!(in >> text)) return -1;
  return std::stol(text, nullptr, 0);
}

bool LinkExists(const std::string& ifname) { return if_nametoindex(ifname.c_str()) != 0; }

// Create (or remove) a persistent single-queue TAP the way `ip tuntap add` does.
void SetPersistent(const std::string& ifname, bool persist) {
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  REQUIRE(fd >= 0);
  ifreq ifr{};
  std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname.c_str());
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  bool ok = ioctl(fd, TUNSETIFF, &ifr) == 0 && ioctl(fd, TUNSETPERSIST, persist ? 1 : 0) == 0;
  close(fd);
  REQUIRE(ok);
}

}  // namespace

TEST(TapIfname, AcceptsKernelNames) {
  CHECK(ValidateTapIfname("").ok());
  CHECK(ValidateTapIfname("np0").ok());
  CHECK(ValidateTapIfname("np%d").ok());
  CHECK(ValidateTapIfname("abcdefghijklmno").ok());  // 15 = IFNAMSIZ - 1
}

TEST(TapIfname, RejectsBadNames) {
  for (const char* bad : {"abcdefghijklmnop", "a/b", "a b", "a:1", "tab\tx", ".", ".."}) {
    Status s = ValidateTapIfname(bad);
    CHECK(!s.ok());
    CHECK_EQ(s.err, EINVAL);
    CHECK(s.message.find(bad) != std::string::npos);  // names the offending value
  }
  CHECK(ValidateTapIfname("abcdefghijklmnop").message.find("too long") != std::string::npos);
}

TEST(TapOpen, RejectsBadOptionsWithoutTouchingTheKernel) {
  int before = OpenFdCount();
  TapOpenOptions o;
  o.queues = 0;
  auto r = TapDevice::Open(o);
  CHECK(!r.ok());
  CHECK(r.status.message.find("queues") != std::string::npos);
  o.queues = 1025;
  CHECK(!TapDevice::Open(o).ok());
  o.queues = 1;
  o.ifname = "bad name";
  CHECK(!TapDevice::Open(o).ok());
  o.ifname = "";
  o.sndbuf = -5;
  CHECK(!TapDevice::Open(o).ok());
  CHECK_EQ(OpenFdCount(), before);
}

TEST(TapOpen, KernelNamedMultiqueueWithVnetHdr) {
  RequireTapPrivilege();
  int before = OpenFdCount();
  std::string name;
  {
    TapOpenOptions o;
    o.queues = 3;
    o.vnet_hdr = VnetHdrMode::kRequired;
    auto r = TapDevice::Open(o);
    REQUIRE(r.ok());
    TapDevice& tap = *r.value;
    name = tap.ifname();
    CHECK(name.rfind("tap", 0) == 0);
    CHECK(LinkExists(name));
    CHECK_EQ(tap.queue_count(), 3u);
    CHECK(tap.has_vnet_hdr());
    CHECK_EQ(tap.vnet_hdr_len(), 10);
    CHECK_EQ(tap.offload_flags(), 0u);
    CHECK((tap.kernel_features() & IFF_MULTI_QUEUE) != 0);
    long flags = TunFlags(name);
    CHECK((flags & IFF_MULTI_QUEUE) != 0);
    CHECK((flags & IFF_VNET_HDR) != 0);
    CHECK((flags & IFF_NO_PI) != 0);
    for (uint32_t q = 0; q < 3; ++q) {
      int fd = tap.fd(q);
      REQUIRE(fd >= 0);
      CHECK((fcntl(fd, F_GETFL) & O_NONBLOCK) != 0);
      CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
      CHECK(tap.queue_enabled(q));
    }
    CHECK_EQ(tap.fd(3), -1);
    CHECK_EQ(OpenFdCount(), before + 3);
  }
  // Non-persistent: the interface goes with its last fd.
  CHECK(!LinkExists(name));
  CHECK_EQ(OpenFdCount(), before);
}

TEST(TapOpen, VnetHdrOffLeavesNoHeader) {
  RequireTapPrivilege();
  TapOpenOptions o;
  o.vnet_hdr = VnetHdrMode::kOff;
  auto r = TapDevice::Open(o);
  REQUIRE(r.ok());
  CHECK(!r.value->has_vnet_hdr());
  CHECK_EQ(r.value->vnet_hdr_len(), 0);
  CHECK_EQ(TunFlags(r.value->ifname()) & IFF_VNET_HDR, 0);
  // Offloads and header sizes need a header.
  CHECK(!r.value->SetVnetHdrLen(12).ok());
  TapOffloads off;
  off.csum = true;
  CHECK(!r.value->SetOffloads(off).ok());
  CHECK(r.value->SetOffloads(TapOffloads{}).ok());
}

TEST(TapOpen, HeaderLengthOffloadsQueuesSndbuf) {
  RequireTapPrivilege();
  TapOpenOptions o;
  o.queues = 2;
  auto r = TapDevice::Open(o);
  REQUIRE(r.ok());
  TapDevice& tap = *r.value;
  REQUIRE(tap.has_vnet_hdr());

  CHECK(tap.SetVnetHdrLen(12).ok());
  CHECK_EQ(tap.vnet_hdr_len(), 12);
  int sz = 0;
  CHECK_EQ(ioctl(tap.fd(1), TUNGETVNETHDRSZ, &sz), 0);
  CHECK_EQ(sz, 12);
  Status bad = tap.SetVnetHdrLen(11);
  CHECK(!bad.ok());
  CHECK_EQ(tap.vnet_hdr_len(), 12);

  TapOffloads off;
  off.csum = off.tso4 = off.tso6 = off.ecn = true;
  CHECK(tap.SetOffloads(off).ok());
  CHECK_EQ(tap.offload_flags(), 0x0fu);
  off.ecn = false;
  off.ufo = true;
  CHECK(tap.SetOffloads(off).ok());
  CHECK_EQ(tap.offload_flags(), tap.has_ufo() ? 0x17u : 0x07u);
  // No csum: nothing is offloaded at all.
  off.csum = false;
  CHECK(tap.SetOffloads(off).ok());
  CHECK_EQ(tap.offload_flags(), 0u);

  CHECK(tap.SetQueueEnabled(1, false).ok());
  CHECK(!tap.queue_enabled(1));
  CHECK(tap.SetQueueEnabled(1, false).ok());  // already detached: no-op
  CHECK(tap.SetQueueEnabled(1, true).ok());
  CHECK(tap.queue_enabled(1));
  CHECK(!tap.SetQueueEnabled(2, false).ok());

  CHECK(tap.SetSndbuf(1 << 20).ok());
  CHECK(tap.SetSndbuf(int64_t{1} << 40).ok());  // clamps to INT_MAX
  CHECK(!tap.SetSndbuf(-1).ok());
}

TEST(TapOpen, PersistentTapGetsItsHeaderSizeReset) {
  RequireTapPrivilege();
  std::string name = TestIfname("hs");
  SetPersistent(name, true);
  {
    TapOpenOptions o;
    o.ifname = name;
    auto r = TapDevice::Open(o);
    REQUIRE(r.ok());
    CHECK(r.value->SetVnetHdrLen(20).ok());
  }
  {
    TapOpenOptions o;
    o.ifname = name;
    auto r = TapDevice::Open(o);
    REQUIRE(r.ok());
    int sz = 0;
    CHECK_EQ(ioctl(r.value->fd(0), TUNGETVNETHDRSZ, &sz), 0);
    CHECK_EQ(sz, 10);
  }
  SetPersistent(name, false);
  CHECK(!LinkExists(name));
}

TEST(TapOpen, MultiqueueOpenOfSingleQueuePersistentTapFailsClearly) {
  RequireTapPrivilege();
  std::string name = TestIfname("sq");
  SetPersistent(name, true);
  int before = OpenFdCount();
  TapOpenOptions o;
  o.ifname = name;
  o.queues = 2;
  auto r = TapDevice::Open(o);
  CHECK(!r.ok());
  CHECK_EQ(r.status.err, EINVAL);
  CHECK(r.status.syscall == "ioctl(TUNSETIFF)");
  CHECK(r.status.message.rfind("could not configure /dev/net/tun (" + name + "): Invalid argument", 0) == 0);
  CHECK(r.status.message.find("single-queue") != std::string::npos);
  CHECK_EQ(OpenFdCount(), before);
  SetPersistent(name, false);
}

TEST(TapOpen, FailureHalfwayClosesEveryQueue) {
  RequireTapPrivilege();
  int before = OpenFdCount();
  rlimit old{};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &old) == 0);
  // Room for exactly two more fds, so queue 2 of 4 cannot be opened. fds are allocated
  // lowest-first, so the limit sits just above the next two free slots.
  rlimit tight = old;
  int a = dup(0), b = dup(0);
  REQUIRE(a >= 0 && b >= 0);
  tight.rlim_cur = static_cast<rlim_t>(std::max(a, b) + 1);
  close(a);
  close(b);
  REQUIRE(setrlimit(RLIMIT_NOFILE, &tight) == 0);
  TapOpenOptions o;
  o.ifname = TestIfname("hf");
  o.queues = 4;
  auto r = TapDevice::Open(o);
  setrlimit(RLIMIT_NOFILE, &old);
  CHECK(!r.ok());
  CHECK_EQ(r.status.err, EMFILE);
  CHECK(r.status.syscall == "open(/dev/net/tun)");
  CHECK(r.status.message.rfind("could not open /dev/net/tun: ", 0) == 0);
  CHECK_EQ(OpenFdCount(), before);
  CHECK(!LinkExists(o.ifname));
}

TEST(TapAdopt, AdoptsOpenedFdsAndDupsThem) {
  RequireTapPrivilege();
  TapOpenOptions o;
  o.queues = 2;
  auto r = TapDevice::Open(o);
  REQUIRE(r.ok());
  int before = OpenFdCount();
  {
    auto a = TapDevice::Adopt({r.value->fd(0), r.value->fd(1)}, 1 << 20);
    REQUIRE(a.ok());
    CHECK(a.value->ifname() == r.value->ifname());
    CHECK_EQ(a.value->queue_count(), 2u);
    CHECK(a.value->has_vnet_hdr());
    CHECK_EQ(a.value->vnet_hdr_len(), 10);
    CHECK(a.value->fd(0) != r.value->fd(0));
    CHECK((fcntl(a.value->fd(0), F_GETFD) & FD_CLOEXEC) != 0);
    CHECK_EQ(OpenFdCount(), before + 2);
  }
  CHECK_EQ(OpenFdCount(), before);
  CHECK(LinkExists(r.value->ifname()));  // the original fds still hold it
}

TEST(TapAdopt, RejectsWhatIsNotATap) {
  int before = OpenFdCount();
  int p[2];
  REQUIRE(pipe(p) == 0);
  auto r = TapDevice::Adopt({p[0]});
  CHECK(!r.ok());
  CHECK(r.status.syscall == "ioctl(TUNGETIFF)");
  CHECK(r.status.message.rfind("Unable to query TUNGETIFF on FD " + std::to_string(p[0]) + ": ", 0) == 0);
  close(p[0]);
  close(p[1]);
  CHECK(!TapDevice::Adopt({}).ok());
  CHECK(!TapDevice::Adopt({-1}).ok());
  CHECK_EQ(OpenFdCount(), before);
}

TEST(TapAdopt, RejectsInconsistentVnetHdr) {
  RequireTapPrivilege();
  TapOpenOptions with;
  auto a = TapDevice::Open(with);
  TapOpenOptions without;
  without.vnet_hdr = VnetHdrMode::kOff;
  auto b = TapDevice::Open(without);
  REQUIRE(a.ok() && b.ok());
  int before = OpenFdCount();
  auto r = TapDevice::Adopt({a.value->fd(0), b.value->fd(0)});
  CHECK(!r.ok());
  CHECK(r.status.message == "vnet_hdr not consistent across given tap fds");
  CHECK_EQ(OpenFdCount(), before);
}
