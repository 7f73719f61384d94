// filter-dump for JavaScript: the graph's addCapture / removeCapture / captureStats methods
// (core/net/filter_dump.h), kept out of graph.cc.
#pragma once

#include <napi.h>

#include "net/net_graph.h"

namespace netplane::binding {

// addCapture(id, { path, maxlen, bufferBytes, directions: 'rx'|'tx'|'all' }, handles[])
Napi::Value CaptureAdd(const Napi::CallbackInfo& info, core::NetGraph* g);
// removeCapture(id) -> the final counters
Napi::Value CaptureRemove(const Napi::CallbackInfo& info, core::NetGraph* g);
// captureStats(id) -> { frames, bytes, dropped, droppedBytes, written, writeErrors, fileBytes, writeError }
Napi::Value CaptureStatsOf(const Napi::CallbackInfo& info, core::NetGraph* g);

}  // namespace netplane::binding
