// PacketBatch.forward() in the binding: the one call per batch that moves a batch's passed
// frames from its port's rx ring into the output ports' tx rings (core/port/batch_forward.h).
#pragma once

#include <napi.h>

#include "net/net_graph.h"

namespace netplane::binding {

// forwardBatch(sourceHandle, desc: Uint32Array) -> undefined. desc holds the request and
// receives the result, in the layout of core::BatchDescWord.
Napi::Value BatchForward(const Napi::CallbackInfo& info, core::NetGraph* g);

}  // namespace netplane::binding
