// What both virtio ring clients (VirtioDeviceQueue, VirtioDriverQueue) count beyond the
// common counters: notifications written and waived, and how offloaded frames crossed.
// Named after the virtqueues: tx is the driver-to-device ring, rx the other one.
#pragma once

#include <algorithm>
#include <cstdint>

#include "net/net_client.h"

namespace netplane::core {

struct VirtioCounters {
  uint64_t notifies = 0;             // interrupts (device) or kicks (driver) written
  uint64_t notifies_suppressed = 0;  // ones the other side waived (EVENT_IDX, or the flags)
  uint64_t tx_gso = 0, rx_gso = 0;   // frames with a GSO type, handed on whole
  uint64_t rx_merged = 0;            // rx frames over more than one buffer
  uint64_t rx_buffers = 0;           // buffers all rx frames took
  uint64_t tx_max_frame = 0, rx_max_frame = 0;

  void Describe(ClientInfo& info) const {
    info.notifies = notifies;
    info.notifies_suppressed = notifies_suppressed;
    info.tx_gso = tx_gso;
    info.rx_gso = rx_gso;
    info.rx_merged = rx_merged;
    info.rx_buffers = rx_buffers;
    info.tx_max_frame = tx_max_frame;
    info.rx_max_frame = rx_max_frame;
  }
};

}  // namespace netplane::core
