// The tun ABI, spelled out here so that old userspace headers (without the USO bits) do
// not matter, and the TUNSETOFFLOAD fallback both TapDevice and TapClient use. Values from
// linux/if_tun.h (section 3.1 of the semantics reference).
#pragma once

#include <sys/ioctl.h>

#include <cerrno>
#include <cstdint>

namespace netplane::core::tun {

constexpr unsigned long kTunSetIff = 0x400454ca;
constexpr unsigned long kTunGetFeatures = 0x800454cf;
constexpr unsigned long kTunSetOffload = 0x400454d0;
constexpr unsigned long kTunGetIff = 0x800454d2;
constexpr unsigned long kTunSetSndbuf = 0x400454d4;
constexpr unsigned long kTunSetVnetHdrSz = 0x400454d8;
constexpr unsigned long kTunSetQueue = 0x400454d9;

constexpr uint16_t kIffTun = 0x0001;
constexpr uint16_t kIffTap = 0x0002;
constexpr uint16_t kIffMultiQueue = 0x0100;
constexpr uint16_t kIffAttachQueue = 0x0200;
constexpr uint16_t kIffDetachQueue = 0x0400;
constexpr uint16_t kIffNoPi = 0x1000;
constexpr uint16_t kIffOneQueue = 0x2000;
constexpr uint16_t kIffVnetHdr = 0x4000;

constexpr unsigned kTunFCsum = 0x01;
constexpr unsigned kTunFTso4 = 0x02;
constexpr unsigned kTunFTso6 = 0x04;
constexpr unsigned kTunFTsoEcn = 0x08;
constexpr unsigned kTunFUfo = 0x10;
constexpr unsigned kTunFUso4 = 0x20;
constexpr unsigned kTunFUso6 = 0x40;

// ioctl that retries on EINTR; returns 0 or the errno.
inline int Ioctl(int fd, unsigned long request, void* arg) {
  for (;;) {
    if (::ioctl(fd, request, arg) == 0) return 0;
    if (errno != EINTR) return errno;
  }
}
// TUNSETOFFLOAD takes its argument by value.
inline int IoctlValue(int fd, unsigned long request, unsigned long value) {
  for (;;) {
    if (::ioctl(fd, request, value) == 0) return 0;
    if (errno != EINTR) return errno;
  }
}

// TUNSETOFFLOAD mask, falling back like QEMU's tap_fd_set_offload when the kernel refuses:
// without USO, then without UFO as well. *applied is the mask of the last attempt; returns 0
// or its errno.
inline int SetOffload(int fd, unsigned mask, unsigned* applied) {
  int err = IoctlValue(fd, kTunSetOffload, mask);
  if (err != 0) {
    mask &= ~(kTunFUso4 | kTunFUso6);
    err = IoctlValue(fd, kTunSetOffload, mask);
  }
  if (err != 0) {
    mask &= ~kTunFUfo;
    err = IoctlValue(fd, kTunSetOffload, mask);
  }
  *applied = mask;
  return err;
}

}  // namespace netplane::core::tun
