#include "batch_forward.h"

#include <cstdint>
#include <string>

#include "args.h"
#include "errors.h"
#include "port/batch_forward.h"
#include "port/js_port.h"
#include "vnet/vnet_hdr.h"

namespace netplane::binding {

using core::BatchDescWord;

Napi::Value BatchForward(const Napi::CallbackInfo& info, core::NetGraph* g) {
  Napi::Env env = info.Env();
  uint32_t src;
  if (!ReadInteger(env, info[0], "handle", 0, UINT32_MAX, &src)) return env.Undefined();
  Napi::Value v = info[1];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
    return ThrowTypeError(env, "desc must be a Uint32Array");
  Napi::Uint32Array desc = v.As<Napi::Uint32Array>();
  const size_t words = desc.ElementLength();
  const size_t start = core::kDescArraysStart;
  if (words < start + 3 || (words - start) % 3 != 0)
    return ThrowRangeError(env, "desc must hold the batch header and three arrays of equal length");
  const uint32_t cap = static_cast<uint32_t>((words - start) / 3);
  uint32_t* d = desc.Data();
  const uint32_t from = d[core::kDescFrom], count = d[core::kDescCount], pos = d[core::kDescPos],
                 bytes = d[core::kDescBytes], n_out = d[core::kDescOutputs], hdr = d[core::kDescHdrLen];
  if (count > cap || from > count) return ThrowRangeError(env, "batch frames out of range");
  if (n_out > core::kBatchMaxOutputs)
    return ThrowRangeError(env, "at most " + std::to_string(core::kBatchMaxOutputs) + " outputs");
  if (hdr != 0 && !core::IsVnetHdrLen(hdr)) return ThrowRangeError(env, "vnet header length must be 0, 10, 12 or 20");
  auto source = g->FindPort(src);
  if (!source.ok()) return ThrowStatus(env, source.status);
  const core::SpscRing& ring = source.value->rx_ring();
  if (bytes > ring.capacity() || (pos & 7) != 0) return ThrowRangeError(env, "batch position out of range");
  core::JsPort* outputs[core::kBatchMaxOutputs];
  for (uint32_t k = 0; k < n_out; ++k) {
    auto p = g->FindPort(d[core::kDescHeaderWords + k]);
    if (!p.ok()) return ThrowStatus(env, p.status);
    outputs[k] = p.value;
  }
  core::BatchView b;
  b.ring = &ring;
  b.pos = pos;
  b.bytes = bytes;
  b.offsets = d + start;
  b.lengths = d + start + cap;
  b.targets = d + start + 2 * size_t{cap};
  core::BatchForwardResult r = core::ForwardBatch(b, from, count, outputs, n_out, hdr);
  // Drops land in the engine's counters of the port the frame was handed to, as send()'s
  // refusals do: a verdict's on the source, a refused header's on the output it was meant for.
  if (r.dropped) source.value->CountRejected(core::DropReason::kFiltered, r.dropped);
  if (r.stop == core::BatchStop::kBadVnetHdr) outputs[b.targets[r.at]]->CountRejected(core::DropReason::kBadVnetHdr, 1);
  d[core::kDescNext] = r.next;
  d[core::kDescDropped] = r.dropped;
  d[core::kDescStop] = static_cast<uint32_t>(r.stop);
  d[core::kDescAt] = r.at;
  d[core::kDescWhy] = static_cast<uint32_t>(r.why);
  return env.Undefined();
}

}  // namespace netplane::binding
