// ForwardBatch: the move behind PacketBatch.forward() (lib/dataplane/packet-batch.ts).
// JavaScript read a batch of frames out of one port's rx ring (offsets and lengths into the
// ring's data area, no copy), may have edited them in place, and gave each a verdict: an
// output (an index into `outputs`) or drop. This copies every passed frame from that rx ring
// straight into its output's tx ring and wakes each output once, so JavaScript neither
// allocates a view per frame nor copies bytes itself.
//
// It runs on the JavaScript thread, which is the one producer of every tx ring (send() writes
// them there too) and the one consumer of every rx ring, so no other lock is needed.
//
// Everything JavaScript wrote (offsets, lengths, targets) is checked before the first frame
// moves: a bad entry moves nothing and names the frame. Only a full output stops part-way;
// the frames before it have moved and JavaScript continues from `next` once there is room.
// Every vnet header is validated here, as send() validates its frames, so a frame an in-place
// edit broke is refused at forward() rather than dropped later by the output's engine.
#pragma once

#include <cstddef>
#include <cstdint>

#include "port/spsc_ring.h"
#include "vnet/vnet_hdr.h"

namespace netplane::core {

class JsPort;

constexpr uint32_t kBatchDrop = 0xFFFFFFFFu;  // a target of -1 in JavaScript's Int32Array
constexpr uint32_t kBatchMaxOutputs = 256;

// The one Uint32Array a PacketBatch shares with the binding (lib/dataplane/packet-batch.ts
// mirrors these numbers): a header of request and result words, the output port handles,
// then capacity offsets, capacity lengths and capacity targets. One array, so a forward is
// one call with two arguments.
enum BatchDescWord : uint32_t {
  kDescFrom = 0,  // in: first frame to handle
  kDescCount,     // in: frames in the batch
  kDescPos,       // in: BatchView::pos
  kDescBytes,     // in: BatchView::bytes
  kDescOutputs,   // in: output handles that follow the header
  kDescHdrLen,    // in: vnet header bytes
  kDescNext,      // out: BatchForwardResult::next
  kDescDropped,   // out: BatchForwardResult::dropped
  kDescStop,      // out: BatchForwardResult::stop
  kDescAt,        // out: BatchForwardResult::at
  kDescWhy,       // out: BatchForwardResult::why
  kDescHeaderWords = 16,
  kDescArraysStart = kDescHeaderWords + kBatchMaxOutputs,
};

// A batch as JavaScript holds it: positions into the source rx ring and three parallel arrays.
struct BatchView {
  const SpscRing* ring = nullptr;     // the source port's rx ring
  uint32_t pos = 0;                   // ring position of the batch's first record
  uint32_t bytes = 0;                 // ring bytes the batch spans (its records and any wrap waste)
  const uint32_t* offsets = nullptr;  // frame i starts at ring->data() + offsets[i]
  const uint32_t* lengths = nullptr;  // its bytes, vnet header included; may only shrink
  const uint32_t* targets = nullptr;  // an index into the outputs, or kBatchDrop
};

enum class BatchStop : uint32_t {
  kDone = 0,        // frames [from, count) all moved or dropped
  kOutputFull = 1,  // `at` is the output whose tx ring has no room for frame `next`
  kBadTarget = 2,   // `at` is the frame: its target is not an output index nor the drop verdict
  kBadOffset = 3,   // `at` is the frame: its offset does not point at a record of this batch
  kBadLength = 4,   // `at` is the frame: its length is shorter than a frame or longer than its record
  kBadVnetHdr = 5,  // `at` is the frame: its vnet header (maybe edited in place) fails validation
};

struct BatchForwardResult {
  uint32_t next = 0;     // frames [from, next) were handled
  uint32_t dropped = 0;  // of those, the ones with the drop verdict
  BatchStop stop = BatchStop::kDone;
  uint32_t at = 0;
  VnetError why = VnetError::kOk;  // for kBadVnetHdr
};

// outputs[k] is the port for target k (n_outputs <= kBatchMaxOutputs); hdr_len the vnet
// header bytes every frame starts with (the source's and every output's).
BatchForwardResult ForwardBatch(const BatchView& b, uint32_t from, uint32_t count, JsPort* const* outputs,
                                uint32_t n_outputs, size_t hdr_len);

}  // namespace netplane::core
