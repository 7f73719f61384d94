// TapDevice: a Linux TAP interface opened (or adopted) as N queue fds, with the vnet
// header, offload, queue attach/detach and sndbuf controls QEMU's net/tap-linux.c uses
// (shared/reference/qemu-net-semantics.md section 3). Every failure is a Status naming the
// step; a failure halfway through a multiqueue open closes every fd already opened.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "base/unique_fd.h"

namespace netplane::core {

enum class VnetHdrMode { kOff, kIfAvailable, kRequired };  // QEMU vnet_hdr=off / absent / on

struct TapOpenOptions {
  std::string ifname;   // empty = kernel picks tap%d
  uint32_t queues = 1;  // 1..kMaxTapQueues; > 1 sets IFF_MULTI_QUEUE
  VnetHdrMode vnet_hdr = VnetHdrMode::kIfAvailable;
  int64_t sndbuf = -1;  // -1 = not given (INT_MAX, failure ignored); else 0..INT64
};

// Offload set requested by a negotiated virtio-net driver (QEMU's NetOffloads, no tunnel).
struct TapOffloads {
  bool csum = false, tso4 = false, tso6 = false, ecn = false, ufo = false, uso4 = false, uso6 = false;
};

constexpr uint32_t kMaxTapQueues = 1024;

// The kernel's interface-name rules (dev_valid_name): empty is fine (kernel picks tap%d),
// otherwise at most IFNAMSIZ-1 bytes, not "." or "..", no '/', ':', whitespace or control
// characters. Open() checks this itself; exposed for callers that validate early.
Status ValidateTapIfname(const std::string& ifname);

class TapDevice {
 public:
  static Result<std::unique_ptr<TapDevice>> Open(const TapOpenOptions& opts);
  // Adopt pre-opened fds (QEMU fd= / fds=): each must be a TAP (TUNGETIFF), all must agree
  // on IFF_VNET_HDR ("vnet_hdr not consistent across given tap fds"). The fds are dup'ed
  // (F_DUPFD_CLOEXEC), so the caller keeps its own and nothing leaks on failure.
  static Result<std::unique_ptr<TapDevice>> Adopt(const std::vector<int>& fds, int64_t sndbuf = -1);
  ~TapDevice();

  const std::string& ifname() const;
  uint32_t queue_count() const;
  int fd(uint32_t queue) const;
  uint32_t kernel_features() const;  // TUNGETFEATURES result
  bool has_vnet_hdr() const;         // IFF_VNET_HDR active
  bool has_ufo() const;              // probed TUN_F_UFO support
  bool has_uso() const;              // probed TUN_F_USO4|USO6 support
  int vnet_hdr_len() const;          // current TUNSETVNETHDRSZ value (0 without vnet hdr)
  bool queue_enabled(uint32_t queue) const;
  uint32_t offload_flags() const;  // TUN_F_* mask last applied

  // TUNSETVNETHDRSZ on every queue; len must be 10, 12 or 20.
  Status SetVnetHdrLen(int len);
  // TUNSETOFFLOAD with QEMU's staged fallback (without USO, then without UFO).
  Status SetOffloads(const TapOffloads& o);
  // TUNSETQUEUE IFF_ATTACH_QUEUE / IFF_DETACH_QUEUE (no-op when already in that state).
  Status SetQueueEnabled(uint32_t queue, bool enabled);
  Status SetSndbuf(int64_t bytes);

  struct Impl;

 private:
  explicit TapDevice(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace netplane::core
