// Socket addresses from JavaScript for the stream/dgram netdevs (socket.cc).
#pragma once

#include <napi.h>

#include "socket/sock_open.h"

namespace netplane::binding {

// { family: 'inet', host, port } | { family: 'unix', path, abstract? }; null/undefined is
// "none" (out->len = 0) when allow_none.
bool ReadSockAddr(Napi::Env env, Napi::Value v, const char* what, bool allow_none, core::SockAddr* out);

}  // namespace netplane::binding
