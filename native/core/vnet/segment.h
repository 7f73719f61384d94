// Software GSO for a peer that cannot take offloaded frames: cut a TSO4/TSO6/UFO/USO frame
// into the wire frames Linux's own segmentation emits, checksums completed (segment.cc).
#pragma once

#include <cstddef>
#include <cstdint>

#include "vnet/vnet_hdr.h"

namespace netplane::core {

// Segment a GSO frame (TSO4, TSO6, UFO, USO) into wire frames exactly as the kernel would
// emit them, with checksums completed. For each segment the sink is called with a pointer
// to the frame (no vnet header) and its length; the buffer is only valid during the call.
// A non-GSO frame with NEEDS_CSUM yields one frame with its checksum completed.
// scratch must hold kMaxFrameLen bytes (no allocation on the data path).
using SegmentSink = void (*)(void* opaque, const uint8_t* frame, size_t len);
VnetError SegmentFrame(const VnetHdr& h, const uint8_t* frame, size_t frame_len, uint8_t* scratch, SegmentSink sink,
                       void* opaque);

// Number of wire frames SegmentFrame will emit for a valid (h, frame): 1 when no GSO.
size_t CountSegments(const VnetHdr& h, const uint8_t* frame, size_t frame_len);

}  // namespace netplane::core
