// NetGraph: the data plane's object graph, driven from one control thread (JavaScript's).
// It owns the IoThreads (one per context name), the net clients, and the hubs, and runs
// every change to a client as a synchronous one-shot bottom half on the client's home
// context (IoThread::RunSync), so clients are only ever touched by their own thread.
//
// Placement: a client runs on the iothread its spec names, else on "np-q<queue index>";
// a hub and all its ports share the hub's context (named by the first port's spec, else
// "np-q0"); a client and its peer must share one: Connect moves an unpinned, unpeered
// non-hub client to its peer's context, and fails when both are pinned elsewhere.
//
// Offloads: when auto_offloads is on, a TAP with a vnet header gets TUNSETOFFLOAD
// CSUM|TSO4|TSO6|TSO_ECN(+UFO/USO) exactly when every receiver its frames can reach (its
// peer, or every other port of its hub) takes offloaded frames; otherwise offloads are
// off, so the kernel hands over only finished frames. Recomputed after every change.
// A TAP peered with a JS port (a NIC queue) is left alone: its offloads belong to the port's
// owner (the virtio-net model sets what the guest negotiated), so there is one writer.
// When such a TAP gets another peer, the graph takes over and writes its choice once.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "aio/iothread.h"
#include "net/filter_dump.h"
#include "net/hub.h"
#include "net/net_client.h"
#include "port/js_port.h"
#include "slirp/slirp_client.h"
#include "socket/sock_open.h"
#include "tap/tap_client.h"
#include "virtio_net/virtio_device_queue.h"
#include "virtio_net/virtio_driver_queue.h"

namespace netplane::core {

struct ClientSpec {
  uint32_t handle = 0;
  std::string name;
  uint32_t queue_index = 0;
  std::string iothread;  // empty: default placement
};

class NetGraph {
 public:
  explicit NetGraph(EventSink sink);
  ~NetGraph();
  NetGraph(const NetGraph&) = delete;
  NetGraph& operator=(const NetGraph&) = delete;

  // -object iothread: create (or retune) a named context thread.
  Status AddIothread(const std::string& name, const PollParams& params);

  // io_uring: batch the queue's reads and writes through io_uring where it can be set up.
  Status AddTap(const ClientSpec& spec, int fd, int vnet_hdr_len, bool io_uring = false);
  Status AddHubPort(const ClientSpec& spec, int hub_id);
  Status AddJsPort(const ClientSpec& spec, const JsPortConfig& cfg);
  // A guest's virtio-net queue pair served from its rings (virtio_device_queue.h); it starts
  // with both rings stopped. Placement as a TAP queue: np-q<queue_index>.
  Status AddVirtioDevice(const ClientSpec& spec);
  // Virtio queue pairs (JS thread; each runs on the client's thread and returns when done).
  // Features only while both rings are stopped; offloads are recomputed afterwards.
  Status SetVirtioFeatures(uint32_t handle, uint64_t features);
  Status StartVring(uint32_t handle, VirtioRing ring, VirtioRingStart start);
  // Stopped on return; the next avail index to resume from (packed rings: DeviceRing::Stop).
  Result<uint32_t> StopVring(uint32_t handle, VirtioRing ring);
  // A libslirp user-mode stack (-netdev user). Pinned to its context (default np-q0): its
  // peer moves to it. Fails, naming what to install, when libslirp cannot be loaded.
  Status AddSlirp(const ClientSpec& spec, SlirpOptions opts);
  // Run fn(SlirpClient*) on the stack's thread (hostfwd_add/remove, info usernet).
  Status WithSlirp(uint32_t handle, const std::function<Status(SlirpClient*)>& fn);
  // Stream / dgram sockets (socket/*.h): a stream starts without a connection; a dgram
  // sends to dest (len 0: its connected peer). Placement as a TAP queue.
  Status AddStream(const ClientSpec& spec);
  Status AddDgram(const ClientSpec& spec, const SockAddr& dest);
  // Give a stream/dgram client its socket (the client owns it from then on; -1 closes it).
  Status SetSocketFd(uint32_t handle, int fd);
  // A queue pair netplane drives as the virtio driver (virtio_driver_queue.h), rings stopped.
  Status AddVirtioDriver(const ClientSpec& spec);
  Status SetDriverFeatures(uint32_t handle, uint64_t features);
  Status StartDriverRing(uint32_t handle, VirtioRing ring, DriverRingStart start);
  // Stopped on return; the used index (the base a back-end resumes from).
  Result<uint16_t> StopDriverRing(uint32_t handle, VirtioRing ring);
  // Unlink (purging what waits on either side), stop polling, delete. The fd stays open.
  Status Remove(uint32_t handle);

  Status Connect(uint32_t a, uint32_t b);
  Status SetLinkDown(uint32_t handle, bool down);
  Status SetVnetHdrLen(uint32_t handle, int len);
  Status SetQueueEnabled(uint32_t handle, bool enabled);
  void SetAutoOffloads(bool on);

  // JS ports (JS thread): tx frames were published / rx room was freed.
  Status KickPort(uint32_t handle, bool tx);
  Result<JsPort*> FindPort(uint32_t handle);

  // filter-dump: capture the frames of these clients (a netdev's queues) into cfg.path;
  // ring i belongs to handles[i]. A client takes one capture at a time.
  Status AddCapture(const std::string& id, FilterDumpConfig cfg, const std::vector<uint32_t>& handles);
  // Detach from the clients still there, drain, close the file; the final counters.
  Result<FilterDumpStats> RemoveCapture(const std::string& id);
  Result<FilterDumpStats> CaptureStats(const std::string& id) const;

  // One consistent snapshot per context (taken on that context's thread).
  std::vector<ClientInfo> Snapshot();
  bool Has(uint32_t handle) const { return clients_.count(handle) != 0; }

  // Stop every client and thread. Idempotent; the graph is unusable afterwards.
  void Close();
  bool closed() const { return closed_; }

 private:
  struct Context {
    std::unique_ptr<IoThread> thread;
    std::unique_ptr<NetContext> net;
  };
  struct Entry {
    std::unique_ptr<NetClient> client;
    Context* ctx = nullptr;
    ClientSpec spec;
    bool pinned = false;
    JsPort* port = nullptr;               // the client, when it is a JS port (KickPort, FindPort)
    VirtioDeviceQueue* virtio = nullptr;  // the client, when it is a virtio queue pair
    SlirpClient* slirp = nullptr;         // the client, when it is a user netdev
    VirtioDriverQueue* driver = nullptr;  // the client, when it is a driven queue pair
  };

  Result<Context*> GetContext(const std::string& name);
  Result<Context*> StartContext(const std::string& name, const PollParams& params);
  Status CheckNew(const ClientSpec& spec);
  Result<Entry*> Find(uint32_t handle);
  // Find the client and run fn(NetClient*) on its home thread; fn returns a Status or nothing.
  template <class Fn>
  Status WithClient(uint32_t handle, Fn&& fn);
  // The same for a virtio queue pair: fn(VirtioDeviceQueue*) -> Status.
  template <class Fn>
  Status WithVirtio(uint32_t handle, Fn&& fn);
  template <class Fn>
  Status WithDriver(uint32_t handle, Fn&& fn);
  Status Move(Entry* e, Context* to);
  Status StartClient(Entry* e);
  // Store a new client under its handle and start it there; forgotten again if it cannot start.
  Status Register(const ClientSpec& spec, Context* ctx, std::unique_ptr<NetClient> client, JsPort* port = nullptr,
                  VirtioDeviceQueue* virtio = nullptr);
  void StopClient(Entry* e);
  void RecomputeOffloads();

  EventSink sink_;
  std::map<std::string, Context> contexts_;
  std::unordered_map<uint32_t, Entry> clients_;
  std::map<int, std::unique_ptr<Hub>> hubs_;
  std::map<int, Context*> hub_contexts_;
  bool auto_offloads_ = true;
  bool closed_ = false;
  struct Capture {
    std::unique_ptr<FilterDump> dump;
    std::vector<uint32_t> handles;
  };
  std::map<std::string, Capture> captures_;
};

}  // namespace netplane::core
