// -netdev user in the binding: the NetGraph methods that create and drive a libslirp stack
// (called from graph.cc's wrapper) and the module export libslirpInfo().
#pragma once

#include <napi.h>

#include "net/net_graph.h"

namespace netplane::binding {

// addSlirp({ handle, name, queueIndex, iothread, restricted, ipv4, ipv6, net, mask, host,
//            dhcpStart, dns, prefix6, prefix6Len, host6, dns6, hostname, tftpServerName,
//            tftpPath, bootfile, domainname, dnssearch: string[] })
Napi::Value SlirpAdd(const Napi::CallbackInfo& info, core::NetGraph* g);
// slirpControl(handle, op, args): op 'hostfwd-add' { udp, hostAddr, hostPort, guestAddr,
// guestPort } -> undefined; 'hostfwd-remove' { udp, hostAddr, hostPort } -> boolean (found);
// 'guestfwd-exec' { guestAddr, guestPort, command } -> undefined; 'info' -> string.
Napi::Value SlirpControl(const Napi::CallbackInfo& info, core::NetGraph* g);

void InitSlirp(Napi::Env env, Napi::Object exports);

}  // namespace netplane::binding
