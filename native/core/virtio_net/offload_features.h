// virtio-net feature bits and what they mean for offloaded frames (kOffload* of net_client.h),
// shared by both roles: the device (VirtioDeviceQueue) asks which frames its guest takes on
// rx (GUEST_*), the driver (VirtioDriverQueue) which frames its back-end takes on tx (HOST_*).
#pragma once

#include <cstddef>
#include <cstdint>

#include "vnet/vnet_hdr.h"

namespace netplane::core {

// virtio-net feature bits (virtio 1.x 5.1.3).
constexpr int kVirtioNetFCsum = 0;
constexpr int kVirtioNetFGuestCsum = 1;
constexpr int kVirtioNetFGuestTso4 = 7;
constexpr int kVirtioNetFGuestTso6 = 8;
constexpr int kVirtioNetFGuestEcn = 9;
constexpr int kVirtioNetFGuestUfo = 10;
constexpr int kVirtioNetFHostTso4 = 11;
constexpr int kVirtioNetFHostTso6 = 12;
constexpr int kVirtioNetFHostEcn = 13;
constexpr int kVirtioNetFHostUfo = 14;
constexpr int kVirtioNetFMrgRxbuf = 15;
constexpr int kVirtioNetFGuestUso4 = 54;
constexpr int kVirtioNetFGuestUso6 = 55;
constexpr int kVirtioNetFHostUso = 56;
constexpr int kVirtioNetFHashReport = 57;

inline bool HasFeature(uint64_t features, int bit) { return (features >> bit) & 1; }

// Frames the driver may be given on rx (GUEST_*; nothing without GUEST_CSUM, as the spec
// makes every GSO feature depend on it).
unsigned GuestOffloads(uint64_t features);
// Frames the device takes on tx (HOST_*; nothing without CSUM).
unsigned HostOffloads(uint64_t features);
// Whether a receiver that takes `offloads` can be handed this frame whole: its checksum and
// GSO requests are all among them (USO by the frame's IP version).
bool OffloadsTake(unsigned offloads, const VnetHdr& h, const uint8_t* frame, size_t len);

}  // namespace netplane::core
