// TapDevice: open or adopt the queue fds of a Linux TAP interface and drive the tun ioctls
// the way QEMU's net/tap-linux.c does (qemu-net-semantics.md sections 2.1 and 3).
#include "tap/tap_device.h"

#include <fcntl.h>
#include <net/if.h>
#include <unistd.h>

#include <cctype>
#include <climits>
#include <cstring>
#include <fstream>
#include <set>

#include "tap/tun_ioctl.h"

namespace netplane::core {

namespace {

using namespace tun;  // NOLINT: the tun ABI names, in this file only

constexpr const char* kTunPath = "/dev/net/tun";
constexpr int kDefaultVnetHdrLen = 10;  // sizeof(struct virtio_net_hdr)

std::string ErrText(int err) { return std::strerror(err); }

struct IfReq {
  ifreq ifr;
  IfReq() { std::memset(&ifr, 0, sizeof(ifr)); }
  void SetName(const std::string& name) { std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1); }
  std::string Name() const { return std::string(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ)); }
};

// The tun flags of an existing interface from sysfs, or -1 when it is not a tun/tap device
// (used only to explain a TUNSETIFF EINVAL).
long SysfsTunFlags(const std::string& ifname) {
  if (ifname.empty() || ifname.find('%') != std::string::npos) return -1;
  std::ifstream in("/sys/class/net/" + ifname + "/tun_flags");
  std::string text;
  if (!(in >> text)) return -1;
  try {
    return std::stol(text, nullptr, 0);
  } catch (...) {
    return -1;
  }
}

}  // namespace

Status ValidateTapIfname(const std::string& ifname) {
  if (ifname.empty()) return Status::Ok();  // the kernel picks tap%d
  if (ifname.size() >= IFNAMSIZ) {
    return Status::Invalid("ifname '" + ifname + "' is too long: " + std::to_string(ifname.size()) +
                           " characters, at most " + std::to_string(IFNAMSIZ - 1) + " allowed");
  }
  if (ifname == "." || ifname == "..") return Status::Invalid("ifname '" + ifname + "' is not a valid interface name");
  for (unsigned char c : ifname) {
    if (c == '/' || c == ':' || std::isspace(c) || c < 0x20 || c == 0x7f) {
      std::string shown = std::isprint(c) && c != ' ' ? std::string(1, static_cast<char>(c))
                          : c == ' '                  ? std::string("space")
                                                      : "byte 0x" + std::to_string(c);
      return Status::Invalid("ifname '" + ifname + "' contains an invalid character (" + shown +
                             "); '/', ':', whitespace and control characters are not allowed");
    }
  }
  return Status::Ok();
}

struct TapDevice::Impl {
  std::string ifname;
  std::vector<UniqueFd> fds;
  std::vector<bool> enabled;
  uint32_t features = 0;
  bool vnet_hdr = false;
  bool ufo = false;
  bool uso = false;
  int vnet_hdr_len = 0;
  uint32_t offloads = 0;

  // Per-device initialisation shared by Open and Adopt (QEMU's net_tap_fd_init +
  // net_init_tap_one): offload probes, offload reset, vnet header size reset, sndbuf.
  Status InitQueues(int64_t sndbuf);
  Status SetVnetHdrLenAll(int len);
  Status SetSndbufAll(int64_t bytes, bool explicit_value);
};

Status TapDevice::Impl::InitQueues(int64_t sndbuf) {
  enabled.assign(fds.size(), true);
  int fd0 = fds[0].get();
  // Offloads are per interface, so probing queue 0 answers for all queues. A probe only
  // tests acceptance; everything is reset to 0 right after.
  ufo = IoctlValue(fd0, kTunSetOffload, kTunFCsum | kTunFUfo) == 0;
  uso = IoctlValue(fd0, kTunSetOffload, kTunFCsum | kTunFUso4 | kTunFUso6) == 0;
  // Reset offloads to none. QEMU only prints a warning when this fails and goes on, so a
  // refusal (a kernel without TUNSETOFFLOAD, or a security module saying EPERM to an
  // unprivileged user) must not fail the open either.
  (void)IoctlValue(fd0, kTunSetOffload, 0);
  offloads = 0;
  // A persistent TAP keeps whatever header size its last user set: always reset it.
  if (vnet_hdr) {
    if (Status s = SetVnetHdrLenAll(kDefaultVnetHdrLen); !s.ok()) return s;
  }
  return SetSndbufAll(sndbuf, /*explicit_value=*/sndbuf >= 0);
}

Result<std::unique_ptr<TapDevice>> TapDevice::Open(const TapOpenOptions& opts) {
  using R = Result<std::unique_ptr<TapDevice>>;
  if (Status s = ValidateTapIfname(opts.ifname); !s.ok()) return R::Fail(s);
  if (opts.queues < 1 || opts.queues > kMaxTapQueues) {
    return R::Fail(Status::Invalid("queues must be in 1.." + std::to_string(kMaxTapQueues) + ", got " +
                                   std::to_string(opts.queues)));
  }
  if (opts.sndbuf < -1) return R::Fail(Status::Invalid("sndbuf must not be negative"));

  auto impl = std::make_unique<Impl>();
  std::string name = opts.ifname;  // replaced by the kernel's name after queue 0
  for (uint32_t q = 0; q < opts.queues; ++q) {
    int raw = -1;
    do {
      raw = ::open(kTunPath, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    } while (raw < 0 && errno == EINTR);
    if (raw < 0) {
      int err = errno;
      // impl (and every fd opened so far) is released on return.
      return R::Fail(Status::Errno(err, std::string("open(") + kTunPath + ")",
                                   std::string("could not open ") + kTunPath + ": " + ErrText(err)));
    }
    UniqueFd fd(raw);

    if (q == 0) {
      unsigned features = 0;
      // QEMU only warns when the probe fails and carries on with no features.
      if (Ioctl(fd.get(), kTunGetFeatures, &features) != 0) features = 0;
      impl->features = features;
    }
    uint16_t flags = kIffTap | kIffNoPi;
    if (impl->features & kIffOneQueue) flags |= kIffOneQueue;  // a no-op today; QEMU sets it
    if (opts.vnet_hdr != VnetHdrMode::kOff) {
      if (impl->features & kIffVnetHdr) {
        flags |= kIffVnetHdr;
      } else if (opts.vnet_hdr == VnetHdrMode::kRequired) {
        return R::Fail(Status::Errno(EOPNOTSUPP, "ioctl(TUNGETFEATURES)",
                                     "vnet_hdr=1 requested, but no kernel support for IFF_VNET_HDR available"));
      }
    }
    if (opts.queues > 1) {
      if (!(impl->features & kIffMultiQueue)) {
        return R::Fail(Status::Errno(EOPNOTSUPP, "ioctl(TUNGETFEATURES)",
                                     "multiqueue required, but no kernel support for IFF_MULTI_QUEUE available"));
      }
      flags |= kIffMultiQueue;
    }

    IfReq req;
    req.SetName(name);
    req.ifr.ifr_flags = static_cast<short>(flags);
    if (int err = Ioctl(fd.get(), kTunSetIff, &req.ifr); err != 0) {
      std::string msg = std::string("could not configure ") + kTunPath;
      if (!name.empty()) msg += " (" + name + ")";
      msg += ": " + ErrText(err);
      // QEMU stops at the line above; a TUNSETIFF EINVAL on an existing persistent TAP
      // usually means its queue mode differs from ours, so say that too.
      long existing = err == EINVAL ? SysfsTunFlags(name) : -1;
      if (existing >= 0 && !!(existing & kIffMultiQueue) != (opts.queues > 1)) {
        msg += existing & kIffMultiQueue
                   ? " (" + name + " is a multiqueue TAP: open it with queues > 1)"
                   : " (" + name + " is a single-queue TAP: queues=" + std::to_string(opts.queues) +
                         " needs one created with multi_queue)";
      }
      return R::Fail(Status::Errno(err, "ioctl(TUNSETIFF)", msg));
    }
    if (q == 0) {
      // The kernel's name (tap%d expanded) is what queues 1..N-1 attach to.
      IfReq got;
      if (int err = Ioctl(fd.get(), kTunGetIff, &got.ifr); err != 0) {
        return R::Fail(Status::Errno(err, "ioctl(TUNGETIFF)", "Fail to get ifname: " + ErrText(err)));
      }
      name = got.Name();
      impl->ifname = name;
      impl->vnet_hdr = (got.ifr.ifr_flags & kIffVnetHdr) != 0;
    }
    impl->fds.push_back(std::move(fd));
  }

  if (Status s = impl->InitQueues(opts.sndbuf); !s.ok()) return R::Fail(s);
  return R::Of(std::unique_ptr<TapDevice>(new TapDevice(std::move(impl))));
}

Result<std::unique_ptr<TapDevice>> TapDevice::Adopt(const std::vector<int>& fds, int64_t sndbuf) {
  using R = Result<std::unique_ptr<TapDevice>>;
  if (fds.empty()) return R::Fail(Status::Invalid("at least one tap fd is required"));
  if (fds.size() > kMaxTapQueues) {
    return R::Fail(Status::Invalid("at most " + std::to_string(kMaxTapQueues) + " tap fds are allowed, got " +
                                   std::to_string(fds.size())));
  }
  if (sndbuf < -1) return R::Fail(Status::Invalid("sndbuf must not be negative"));
  std::set<int> seen;
  for (int fd : fds) {
    if (fd < 0) return R::Fail(Status::Invalid("tap fd " + std::to_string(fd) + " is not a file descriptor"));
    if (!seen.insert(fd).second) return R::Fail(Status::Invalid("tap fd " + std::to_string(fd) + " is given twice"));
  }

  auto impl = std::make_unique<Impl>();
  for (size_t i = 0; i < fds.size(); ++i) {
    int fd = fds[i];
    // QEMU's first step with a given fd (making it non-blocking) is what reports a closed one.
    if (::fcntl(fd, F_GETFL) < 0) {
      int err = errno;
      return R::Fail(Status::Errno(err, "fcntl(F_GETFL)",
                                   "Can't use file descriptor " + std::to_string(fd) + ": " + ErrText(err)));
    }
    IfReq got;
    if (int err = Ioctl(fd, kTunGetIff, &got.ifr); err != 0) {
      return R::Fail(Status::Errno(err, "ioctl(TUNGETIFF)",
                                   "Unable to query TUNGETIFF on FD " + std::to_string(fd) + ": " + ErrText(err)));
    }
    uint16_t flags = static_cast<uint16_t>(got.ifr.ifr_flags);
    if (!(flags & kIffTap) || (flags & kIffTun)) {
      return R::Fail(Status::Errno(EINVAL, "ioctl(TUNGETIFF)",
                                   "FD " + std::to_string(fd) + " is a TUN device (" + got.Name() + "), not a TAP"));
    }
    bool vnet = (flags & kIffVnetHdr) != 0;
    if (i == 0) {
      impl->ifname = got.Name();
      impl->vnet_hdr = vnet;
    } else if (vnet != impl->vnet_hdr) {
      return R::Fail(Status::Errno(EINVAL, "ioctl(TUNGETIFF)", "vnet_hdr not consistent across given tap fds"));
    } else if (got.Name() != impl->ifname) {
      return R::Fail(
          Status::Errno(EINVAL, "ioctl(TUNGETIFF)",
                        "tap fds belong to different interfaces (" + impl->ifname + ", " + got.Name() + ")"));
    }
    int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0) {
      int err = errno;
      return R::Fail(Status::Errno(err, "fcntl(F_DUPFD_CLOEXEC)",
                                   "could not duplicate FD " + std::to_string(fd) + ": " + ErrText(err)));
    }
    UniqueFd owned(dup);
    int fl = ::fcntl(dup, F_GETFL);
    if (fl < 0 || ::fcntl(dup, F_SETFL, fl | O_NONBLOCK) < 0) {
      int err = errno;
      return R::Fail(Status::Errno(err, "fcntl(F_SETFL)",
                                   "could not make FD " + std::to_string(fd) + " non-blocking: " + ErrText(err)));
    }
    impl->fds.push_back(std::move(owned));
  }
  unsigned features = 0;
  if (Ioctl(impl->fds[0].get(), kTunGetFeatures, &features) != 0) features = 0;
  impl->features = features;

  if (Status s = impl->InitQueues(sndbuf); !s.ok()) return R::Fail(s);
  return R::Of(std::unique_ptr<TapDevice>(new TapDevice(std::move(impl))));
}

TapDevice::TapDevice(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TapDevice::~TapDevice() = default;

const std::string& TapDevice::ifname() const { return impl_->ifname; }
uint32_t TapDevice::queue_count() const { return static_cast<uint32_t>(impl_->fds.size()); }
int TapDevice::fd(uint32_t queue) const { return queue < impl_->fds.size() ? impl_->fds[queue].get() : -1; }
uint32_t TapDevice::kernel_features() const { return impl_->features; }
bool TapDevice::has_vnet_hdr() const { return impl_->vnet_hdr; }
bool TapDevice::has_ufo() const { return impl_->ufo; }
bool TapDevice::has_uso() const { return impl_->uso; }
int TapDevice::vnet_hdr_len() const { return impl_->vnet_hdr_len; }
bool TapDevice::queue_enabled(uint32_t queue) const { return queue < impl_->enabled.size() && impl_->enabled[queue]; }
uint32_t TapDevice::offload_flags() const { return impl_->offloads; }

Status TapDevice::SetVnetHdrLen(int len) {
  if (len != 10 && len != 12 && len != 20) {
    return Status::Invalid("vnet header length must be 10, 12 or 20, got " + std::to_string(len));
  }
  if (!impl_->vnet_hdr) {
    return Status::Invalid("tap " + impl_->ifname + " has no vnet header (IFF_VNET_HDR is off)");
  }
  return impl_->SetVnetHdrLenAll(len);
}

Status TapDevice::Impl::SetVnetHdrLenAll(int len) {
  // The size is a property of the interface, but QEMU sets it through every queue's fd.
  for (auto& fd : fds) {
    int value = len;
    if (int err = Ioctl(fd.get(), kTunSetVnetHdrSz, &value); err != 0) {
      return Status::Errno(err, "ioctl(TUNSETVNETHDRSZ)", "TUNSETVNETHDRSZ ioctl() failed: " + ErrText(err) + ".");
    }
  }
  vnet_hdr_len = len;
  return Status::Ok();
}

Status TapDevice::SetOffloads(const TapOffloads& o) {
  bool any = o.csum || o.tso4 || o.tso6 || o.ecn || o.ufo || o.uso4 || o.uso6;
  if (any && !impl_->vnet_hdr) {
    // Without a vnet header the kernel could not tell us a frame is unchecksummed or GSO.
    return Status::Invalid("offloads need a vnet header, but tap " + impl_->ifname + " has IFF_VNET_HDR off");
  }
  int fd0 = impl_->fds[0].get();
  // Step 1: clear; EINVAL means a kernel without TUNSETOFFLOAD, which QEMU ignores.
  if (int err = IoctlValue(fd0, kTunSetOffload, 0); err != 0) {
    if (err == EINVAL) return Status::Ok();
    return Status::Errno(err, "ioctl(TUNSETOFFLOAD)", "TUNSETOFFLOAD ioctl() failed: " + ErrText(err));
  }
  impl_->offloads = 0;
  // Step 2: nothing is offloaded unless checksum offload is.
  unsigned mask = 0;
  if (o.csum) {
    mask |= kTunFCsum;
    if (o.tso4) mask |= kTunFTso4;
    if (o.tso6) mask |= kTunFTso6;
    if ((o.tso4 || o.tso6) && o.ecn) mask |= kTunFTsoEcn;
    if (o.ufo) mask |= kTunFUfo;
    if (o.uso4) mask |= kTunFUso4;
    if (o.uso6) mask |= kTunFUso6;
  }
  if (mask == 0) return Status::Ok();
  // Step 3: apply, falling back without USO, then without UFO as well.
  int err = SetOffload(fd0, mask, &mask);
  if (err != 0) return Status::Errno(err, "ioctl(TUNSETOFFLOAD)", "TUNSETOFFLOAD ioctl() failed: " + ErrText(err));
  impl_->offloads = mask;
  return Status::Ok();
}

Status TapDevice::SetQueueEnabled(uint32_t queue, bool enabled) {
  if (queue >= impl_->fds.size()) {
    return Status::Invalid("queue " + std::to_string(queue) + " out of range: tap " + impl_->ifname + " has " +
                           std::to_string(impl_->fds.size()) + " queue(s)");
  }
  if (impl_->enabled[queue] == enabled) return Status::Ok();
  IfReq req;
  req.ifr.ifr_flags = static_cast<short>(enabled ? kIffAttachQueue : kIffDetachQueue);
  if (int err = Ioctl(impl_->fds[queue].get(), kTunSetQueue, &req.ifr); err != 0) {
    return Status::Errno(
        err, "ioctl(TUNSETQUEUE)",
        std::string(enabled ? "could not enable queue" : "could not disable queue") + ": " + ErrText(err));
  }
  impl_->enabled[queue] = enabled;
  return Status::Ok();
}

Status TapDevice::SetSndbuf(int64_t bytes) {
  if (bytes < 0) return Status::Invalid("sndbuf must not be negative, got " + std::to_string(bytes));
  return impl_->SetSndbufAll(bytes, /*explicit_value=*/true);
}

Status TapDevice::Impl::SetSndbufAll(int64_t bytes, bool explicit_value) {
  // QEMU: absent or 0 means INT_MAX; larger values clamp to INT_MAX. A failure only matters
  // when the user asked for a value.
  int value = bytes <= 0 || bytes > INT_MAX ? INT_MAX : static_cast<int>(bytes);
  for (auto& fd : fds) {
    int arg = value;
    int err = Ioctl(fd.get(), kTunSetSndbuf, &arg);
    if (err != 0 && explicit_value) {
      return Status::Errno(err, "ioctl(TUNSETSNDBUF)", "TUNSETSNDBUF ioctl failed: " + ErrText(err));
    }
  }
  return Status::Ok();
}

}  // namespace netplane::core
