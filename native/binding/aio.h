// Event-loop objects for other bindings: turn a JS IoThread or MainLoopContext into the
// core object it wraps. Keep a JS reference to that object for as long as the core
// pointer is used (the wrapper stops/closes it when it is collected or the env exits),
// and do not use it after the IoThread's stop(): stop() frees the thread and its context.
#pragma once

#include <napi.h>

#include "aio/aio_context.h"
#include "aio/iothread.h"

namespace netplane::binding {

// An IoThread or a MainLoopContext; otherwise throws a TypeError naming `what` and
// returns nullptr. A stopped IoThread / closed context also throws.
core::AioContext* UnwrapAioContext(Napi::Env env, Napi::Value value, const char* what = "context");
// An IoThread only (nullptr + TypeError otherwise).
core::IoThread* UnwrapIoThread(Napi::Env env, Napi::Value value, const char* what = "iothread");

}  // namespace netplane::binding
