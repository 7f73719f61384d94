#include "net/net_graph.h"

#include "socket/dgram_client.h"
#include "socket/stream_client.h"

#include <type_traits>

namespace netplane::core {

namespace {
std::string DefaultContextName(uint32_t queue_index) { return "np-q" + std::to_string(queue_index); }
}  // namespace

NetGraph::NetGraph(EventSink sink) : sink_(std::move(sink)) {}

NetGraph::~NetGraph() { Close(); }

Result<NetGraph::Context*> NetGraph::GetContext(const std::string& name) {
  auto it = contexts_.find(name);
  if (it != contexts_.end()) return Result<Context*>::Of(&it->second);
  return StartContext(name, DefaultIothreadPollParams());
}

Result<NetGraph::Context*> NetGraph::StartContext(const std::string& name, const PollParams& params) {
  auto t = IoThread::Start(name, params);
  if (!t.ok()) return Result<Context*>::Fail(t.status);
  Context& c = contexts_[name];
  c.thread = std::move(t.value);
  c.net = std::make_unique<NetContext>();
  c.net->aio = &c.thread->context();
  c.net->name = name;
  c.net->events = &sink_;
  return Result<Context*>::Of(&c);
}

Status NetGraph::AddIothread(const std::string& name, const PollParams& params) {
  if (closed_) return Status::Closed("the data plane is closed");
  if (name.empty()) return Status::Invalid("iothread name must not be empty");
  auto it = contexts_.find(name);
  if (it != contexts_.end()) {
    AioContext* aio = it->second.net->aio;
    it->second.thread->RunSync([&] { aio->SetPollParams(params); });
    return Status::Ok();
  }
  return StartContext(name, params).status;
}

Status NetGraph::CheckNew(const ClientSpec& spec) {
  if (closed_) return Status::Closed("the data plane is closed");
  if (clients_.count(spec.handle))
    return Status::InUse("net client handle " + std::to_string(spec.handle) + " is already in use");
  return Status::Ok();
}

Result<NetGraph::Entry*> NetGraph::Find(uint32_t handle) {
  if (closed_) return Result<Entry*>::Fail(Status::Closed("the data plane is closed"));
  auto it = clients_.find(handle);
  if (it == clients_.end())
    return Result<Entry*>::Fail(Status::NotFound("no net client with handle " + std::to_string(handle)));
  return Result<Entry*>::Of(&it->second);
}

template <class Fn>
Status NetGraph::WithClient(uint32_t handle, Fn&& fn) {
  auto f = Find(handle);
  if (!f.ok()) return f.status;
  NetClient* c = f.value->client.get();
  Status s;
  f.value->ctx->thread->RunSync([&] {
    if constexpr (std::is_void_v<std::invoke_result_t<Fn&, NetClient*>>)
      fn(c);
    else
      s = fn(c);
  });
  return s;
}

template <class Fn>
Status NetGraph::WithVirtio(uint32_t handle, Fn&& fn) {
  auto f = Find(handle);
  if (!f.ok()) return f.status;
  VirtioDeviceQueue* q = f.value->virtio;
  if (!q) return Status::Invalid("net client '" + f.value->client->name() + "' is not a virtio device queue");
  Status s;
  f.value->ctx->thread->RunSync([&] { s = fn(q); });
  return s;
}

template <class Fn>
Status NetGraph::WithDriver(uint32_t handle, Fn&& fn) {
  auto f = Find(handle);
  if (!f.ok()) return f.status;
  VirtioDriverQueue* q = f.value->driver;
  if (!q) return Status::Invalid("net client '" + f.value->client->name() + "' is not a virtio driver queue");
  Status s;
  f.value->ctx->thread->RunSync([&] { s = fn(q); });
  return s;
}

Status NetGraph::StartClient(Entry* e) {
  Status s;
  NetClient* c = e->client.get();
  e->ctx->thread->RunSync([&] { s = c->Start(); });
  return s;
}

void NetGraph::StopClient(Entry* e) {
  NetClient* c = e->client.get();
  e->ctx->thread->RunSync([&] {
    c->Unlink();
    c->incoming().Purge(nullptr, DropReason::kPurged);
    c->Stop();
  });
}

Status NetGraph::AddTap(const ClientSpec& spec, int fd, int vnet_hdr_len, bool io_uring) {
  Status s = CheckNew(spec);
  if (!s.ok()) return s;
  if (fd < 0) return Status::Invalid("tap '" + spec.name + "': fd must be a non-negative integer");
  if (vnet_hdr_len != 0 && !IsVnetHdrLen(static_cast<size_t>(vnet_hdr_len)))
    return Status::Invalid("tap '" + spec.name + "': vnet header length must be 0, 10, 12 or 20, got " +
                           std::to_string(vnet_hdr_len));
  auto ctx = GetContext(spec.iothread.empty() ? DefaultContextName(spec.queue_index) : spec.iothread);
  if (!ctx.ok()) return ctx.status;
  return Register(
      spec, ctx.value,
      std::make_unique<TapClient>(spec.handle, spec.name, ctx.value->net.get(), fd, vnet_hdr_len, io_uring));
}

Status NetGraph::Register(const ClientSpec& spec, Context* ctx, std::unique_ptr<NetClient> client, JsPort* port,
                          VirtioDeviceQueue* virtio) {
  Entry e;
  e.client = std::move(client);
  e.port = port;
  e.virtio = virtio;
  e.ctx = ctx;
  e.spec = spec;
  e.pinned = !spec.iothread.empty();
  Entry& stored = clients_[spec.handle] = std::move(e);
  Status s = StartClient(&stored);
  if (!s.ok()) clients_.erase(spec.handle);
  return s;
}

Status NetGraph::AddHubPort(const ClientSpec& spec, int hub_id) {
  Status s = CheckNew(spec);
  if (!s.ok()) return s;
  Hub* hub;
  Context* ctx;
  auto hit = hubs_.find(hub_id);
  if (hit == hubs_.end()) {
    auto c = GetContext(spec.iothread.empty() ? DefaultContextName(0) : spec.iothread);
    if (!c.ok()) return c.status;
    ctx = c.value;
    hub = (hubs_[hub_id] = std::make_unique<Hub>(hub_id, ctx->net.get())).get();
    hub_contexts_[hub_id] = ctx;
  } else {
    hub = hit->second.get();
    ctx = hub_contexts_[hub_id];
    if (!spec.iothread.empty() && spec.iothread != ctx->net->name)
      return Status::Invalid("hub port '" + spec.name + "' asks for iothread '" + spec.iothread + "' but hub " +
                             std::to_string(hub_id) + " runs on '" + ctx->net->name + "'");
  }
  Entry e;
  e.ctx = ctx;
  e.spec = spec;
  e.pinned = true;
  // The port joins the hub's port list, which the hub's thread walks: do it there.
  ctx->thread->RunSync([&] {
    e.client = std::make_unique<HubPort>(spec.handle, spec.name, hub);
    hub->FlushPorts();  // a new (peerless) port can take what other ports' senders queued
  });
  clients_[spec.handle] = std::move(e);
  return Status::Ok();
}

Status NetGraph::AddJsPort(const ClientSpec& spec, const JsPortConfig& cfg) {
  Status s = CheckNew(spec);
  if (!s.ok()) return s;
  auto ctx = GetContext(spec.iothread.empty() ? DefaultContextName(spec.queue_index) : spec.iothread);
  if (!ctx.ok()) return ctx.status;
  auto port = JsPort::Create(spec.handle, spec.name, ctx.value->net.get(), cfg);
  if (!port.ok()) return port.status;
  return Register(spec, ctx.value, std::unique_ptr<NetClient>(port.value), port.value);
}

Status NetGraph::AddVirtioDevice(const ClientSpec& spec) {
  Status s = CheckNew(spec);
  if (!s.ok()) return s;
  auto ctx = GetContext(spec.iothread.empty() ? DefaultContextName(spec.queue_index) : spec.iothread);
  if (!ctx.ok()) return ctx.status;
  auto q = std::make_unique<VirtioDeviceQueue>(spec.handle, spec.name, ctx.value->net.get());
  VirtioDeviceQueue* raw = q.get();
  return Register(spec, ctx.value, std::move(q), nullptr, raw);
}

Status NetGraph::AddSlirp(const ClientSpec& spec, SlirpOptions opts) {
  Status s = CheckNew(spec);
  if (!s.ok()) return s;
  auto ctx = GetContext(spec.iothread.empty() ? DefaultContextName(spec.queue_index) : spec.iothread);
  if (!ctx.ok()) return ctx.status;
  auto c = SlirpClient::Create(spec.handle, spec.name, ctx.value->net.get(), std::move(opts));
  if (!c.ok()) return c.status;
  SlirpClient* raw = c.value.get();
  // Start creates the stack on its thread; a failed start leaves nothing behind.
  s = Register(spec, ctx.value, std::move(c.value));
  if (!s.ok()) return s;
  clients_[spec.handle].pinned = true;  // its timers and sockets live on this context
  clients_[spec.handle].slirp = raw;
  return Status::Ok();
}

Status NetGraph::WithSlirp(uint32_t handle, const std::function<Status(SlirpClient*)>& fn) {
  auto f = Find(handle);
  if (!f.ok()) return f.status;
  SlirpClient* c = f.value->slirp;
  if (!c) return Status::Invalid("net client '" + f.value->client->name() + "' is not a user netdev");
  Status s;
  f.value->ctx->thread->RunSync([&] { s = fn(c); });
  return s;
}

Status NetGraph::AddVirtioDriver(const ClientSpec& spec) {
  Status s = CheckNew(spec);
  if (!s.ok()) return s;
  auto ctx = GetContext(spec.iothread.empty() ? DefaultContextName(spec.queue_index) : spec.iothread);
  if (!ctx.ok()) return ctx.status;
  auto q = std::make_unique<VirtioDriverQueue>(spec.handle, spec.name, ctx.value->net.get());
  VirtioDriverQueue* raw = q.get();
  s = Register(spec, ctx.value, std::move(q));
  if (s.ok()) clients_[spec.handle].driver = raw;
  return s;
}

Status NetGraph::SetDriverFeatures(uint32_t handle, uint64_t features) {
  Status s = WithDriver(handle, [&](VirtioDriverQueue* q) { return q->SetFeatures(features); });
  if (!s.ok()) return s;
  RecomputeOffloads();
  return Status::Ok();
}

Status NetGraph::StartDriverRing(uint32_t handle, VirtioRing ring, DriverRingStart start) {
  return WithDriver(handle, [&](VirtioDriverQueue* q) { return q->StartRing(ring, std::move(start)); });
}

Result<uint16_t> NetGraph::StopDriverRing(uint32_t handle, VirtioRing ring) {
  uint16_t base = 0;
  Status s = WithDriver(handle, [&](VirtioDriverQueue* q) {
    base = q->StopRing(ring);
    return Status::Ok();
  });
  if (!s.ok()) return Result<uint16_t>::Fail(s);
  return Result<uint16_t>::Of(base);
}

Status NetGraph::SetVirtioFeatures(uint32_t handle, uint64_t features) {
  Status s = WithVirtio(handle, [&](VirtioDeviceQueue* q) { return q->SetFeatures(features); });
  if (!s.ok()) return s;
  RecomputeOffloads();
  return Status::Ok();
}

Status NetGraph::StartVring(uint32_t handle, VirtioRing ring, VirtioRingStart start) {
  return WithVirtio(handle, [&](VirtioDeviceQueue* q) { return q->StartRing(ring, std::move(start)); });
}

Result<uint32_t> NetGraph::StopVring(uint32_t handle, VirtioRing ring) {
  uint32_t base = 0;
  Status s = WithVirtio(handle, [&](VirtioDeviceQueue* q) {
    base = q->StopRing(ring);
    return Status::Ok();
  });
  if (!s.ok()) return Result<uint32_t>::Fail(s);
  return Result<uint32_t>::Of(base);
}

Status NetGraph::AddStream(const ClientSpec& spec) {
  Status s = CheckNew(spec);
  if (!s.ok()) return s;
  auto ctx = GetContext(spec.iothread.empty() ? DefaultContextName(spec.queue_index) : spec.iothread);
  if (!ctx.ok()) return ctx.status;
  return Register(spec, ctx.value, std::make_unique<StreamClient>(spec.handle, spec.name, ctx.value->net.get()));
}

Status NetGraph::AddDgram(const ClientSpec& spec, const SockAddr& dest) {
  Status s = CheckNew(spec);
  if (!s.ok()) return s;
  auto ctx = GetContext(spec.iothread.empty() ? DefaultContextName(spec.queue_index) : spec.iothread);
  if (!ctx.ok()) return ctx.status;
  return Register(spec, ctx.value,
                  std::make_unique<DgramClient>(spec.handle, spec.name, ctx.value->net.get(), dest.ss, dest.len));
}

Status NetGraph::SetSocketFd(uint32_t handle, int fd) {
  return WithClient(handle, [&](NetClient* c) {
    if (c->kind() != ClientKind::kStream && c->kind() != ClientKind::kDgram)
      return Status::Invalid("client '" + c->name() + "' is not a stream or dgram socket");
    return static_cast<SocketClient*>(c)->AttachFd(fd);
  });
}

Status NetGraph::Remove(uint32_t handle) {
  auto f = Find(handle);
  if (!f.ok()) return f.status;
  Entry* e = f.value;
  // The hub this removal touches: the client's own (a hub port) or its peer's. Read the
  // peer before StopClient unlinks it.
  int touched_hub = -1;
  e->ctx->thread->RunSync([&] {
    NetClient* c = e->client.get();
    touched_hub = c->hub_id() >= 0 ? c->hub_id() : c->peer() ? c->peer()->hub_id() : -1;
  });
  StopClient(e);
  const int hub_id = e->client->hub_id();
  // Destroy on the home thread: the queue returns buffers to that context's pool and a
  // hub port leaves a list the thread walks.
  e->ctx->thread->RunSync([&] { e->client.reset(); });
  clients_.erase(handle);
  if (hub_id >= 0) {
    auto hit = hubs_.find(hub_id);
    if (hit != hubs_.end() && hit->second->empty()) {
      hubs_.erase(hit);
      hub_contexts_.erase(hub_id);
    }
  }
  if (touched_hub >= 0) {
    // Senders on the remaining ports may have queued a frame waiting for the one that went.
    auto hit = hubs_.find(touched_hub);
    if (hit != hubs_.end()) {
      Hub* hub = hit->second.get();
      hub_contexts_[touched_hub]->thread->RunSync([hub] { hub->FlushPorts(); });
    }
  }
  RecomputeOffloads();
  return Status::Ok();
}

Status NetGraph::Move(Entry* e, Context* to) {
  StopClient(e);
  e->client->Relocate(to->net.get());
  e->ctx = to;
  return StartClient(e);
}

Status NetGraph::Connect(uint32_t a, uint32_t b) {
  auto fa = Find(a);
  if (!fa.ok()) return fa.status;
  auto fb = Find(b);
  if (!fb.ok()) return fb.status;
  Entry* ea = fa.value;
  Entry* eb = fb.value;
  NetClient* ca = ea->client.get();
  NetClient* cb = eb->client.get();
  if (ca == cb) return Status::Invalid("cannot peer net client '" + ca->name() + "' with itself");
  if (ca->peer())
    return Status::InUse("net client '" + ca->name() + "' already has a peer ('" + ca->peer()->name() + "')");
  if (cb->peer())
    return Status::InUse("net client '" + cb->name() + "' already has a peer ('" + cb->peer()->name() + "')");
  if (ea->ctx != eb->ctx) {
    // Move whichever side is free to move (not pinned, not a hub port).
    if (!ea->pinned) {
      Status s = Move(ea, eb->ctx);
      if (!s.ok()) return s;
    } else if (!eb->pinned) {
      Status s = Move(eb, ea->ctx);
      if (!s.ok()) return s;
    } else {
      return Status::Invalid("net clients '" + ca->name() + "' and '" + cb->name() +
                             "' are placed on different iothreads ('" + ea->ctx->net->name + "', '" +
                             eb->ctx->net->name + "'); a client and its peer must share one");
    }
  }
  Status s;
  ea->ctx->thread->RunSync([&] {
    s = NetClient::Link(ca, cb);
    if (!s.ok()) return;
    ca->OnLinked();
    cb->OnLinked();
  });
  if (!s.ok()) return s;
  RecomputeOffloads();
  return Status::Ok();
}

Status NetGraph::SetLinkDown(uint32_t handle, bool down) {
  return WithClient(handle, [&](NetClient* c) { c->SetLinkDown(down); });
}

Status NetGraph::SetVnetHdrLen(uint32_t handle, int len) {
  Status s = WithClient(handle, [&](NetClient* c) {
    if (len != 0 && !IsVnetHdrLen(static_cast<size_t>(len)))
      return Status::Invalid("vnet header length must be 0, 10, 12 or 20, got " + std::to_string(len));
    return c->SetVnetHdrLen(len);
  });
  if (!s.ok()) return s;
  RecomputeOffloads();
  return Status::Ok();
}

Status NetGraph::SetQueueEnabled(uint32_t handle, bool enabled) {
  return WithClient(handle, [&](NetClient* c) { c->SetQueueEnabled(enabled); });
}

void NetGraph::SetAutoOffloads(bool on) {
  auto_offloads_ = on;
  RecomputeOffloads();
}

void NetGraph::RecomputeOffloads() {
  for (auto& [handle, e] : clients_) {
    NetClient* c = e.client.get();
    bool on = auto_offloads_;
    e.ctx->thread->RunSync([c, on] { c->RecomputeOffloads(on); });
  }
}

Status NetGraph::KickPort(uint32_t handle, bool tx) {
  auto p = FindPort(handle);
  if (!p.ok()) return p.status;
  if (tx)
    p.value->KickTx();
  else
    p.value->KickRxRoom();
  return Status::Ok();
}

Result<JsPort*> NetGraph::FindPort(uint32_t handle) {
  auto f = Find(handle);
  if (!f.ok()) return Result<JsPort*>::Fail(f.status);
  if (!f.value->port)
    return Result<JsPort*>::Fail(Status::Invalid("net client '" + f.value->client->name() + "' is not a packet port"));
  return Result<JsPort*>::Of(f.value->port);
}

std::vector<ClientInfo> NetGraph::Snapshot() {
  std::vector<ClientInfo> out;
  if (closed_) return out;
  for (auto& [name, ctx] : contexts_) {
    std::vector<Entry*> mine;
    for (auto& [h, e] : clients_)
      if (e.ctx == &ctx) mine.push_back(&e);
    if (mine.empty()) continue;
    int tid = ctx.thread->tid();
    const std::string& ctx_name = name;  // lambdas may not capture structured bindings before C++20
    ctx.thread->RunSync([&] {
      for (Entry* e : mine) {
        NetClient* c = e->client.get();
        ClientInfo i;
        i.handle = c->handle();
        i.name = c->name();
        i.kind = c->kind();
        i.queue_index = e->spec.queue_index;
        i.iothread = ctx_name;
        i.thread_id = tid;
        i.peer = c->peer() ? static_cast<int64_t>(c->peer()->handle()) : -1;
        i.link_down = c->link_down();
        i.dead = c->dead();
        i.vnet_hdr_len = c->vnet_hdr_len();
        c->Describe(i);
        i.counters = c->counters().Snapshot();
        out.push_back(std::move(i));
      }
    });
  }
  return out;
}

Status NetGraph::AddCapture(const std::string& id, FilterDumpConfig cfg, const std::vector<uint32_t>& handles) {
  if (closed_) return Status::Closed("the graph is closed");
  if (captures_.count(id)) return Status::InUse("capture '" + id + "' exists");
  if (handles.empty()) return Status::Invalid("a capture needs at least one net client");
  for (uint32_t h : handles) {
    auto f = Find(h);
    if (!f.ok()) return f.status;
    bool taken = false;
    f.value->ctx->thread->RunSync([&] { taken = f.value->client->capture() != nullptr; });
    if (taken) return Status::InUse("net client '" + f.value->client->name() + "' is already captured");
  }
  cfg.rings = handles.size();
  auto dump = std::make_unique<FilterDump>();
  Status s = dump->Start(cfg);
  if (!s.ok()) return s;
  for (size_t i = 0; i < handles.size(); i++) {
    CaptureRing* ring = dump->ring(i);
    WithClient(handles[i], [ring](NetClient* c) { c->set_capture(ring); });
  }
  captures_[id] = Capture{std::move(dump), handles};
  return Status::Ok();
}

Result<FilterDumpStats> NetGraph::RemoveCapture(const std::string& id) {
  auto it = captures_.find(id);
  if (it == captures_.end()) return Result<FilterDumpStats>::Fail(Status::NotFound("capture '" + id + "' not found"));
  Capture cap = std::move(it->second);
  captures_.erase(it);
  for (size_t i = 0; i < cap.handles.size(); i++) {
    CaptureRing* ring = cap.dump->ring(i);
    // A client removed meanwhile is gone with its pointer; one that was re-captured keeps its own.
    if (Has(cap.handles[i]))
      WithClient(cap.handles[i], [ring](NetClient* c) {
        if (c->capture() == ring) c->set_capture(nullptr);
      });
  }
  cap.dump->Stop();
  return Result<FilterDumpStats>::Of(cap.dump->Stats());
}

Result<FilterDumpStats> NetGraph::CaptureStats(const std::string& id) const {
  auto it = captures_.find(id);
  if (it == captures_.end()) return Result<FilterDumpStats>::Fail(Status::NotFound("capture '" + id + "' not found"));
  return Result<FilterDumpStats>::Of(it->second.dump->Stats());
}

void NetGraph::Close() {
  if (closed_) return;
  for (auto& [h, e] : clients_) StopClient(&e);
  // (named entry, not a structured binding: lambdas may not capture those before C++20)
  for (auto& entry : clients_) {
    Entry& e = entry.second;
    e.ctx->thread->RunSync([&e] { e.client.reset(); });
  }
  clients_.clear();
  // The clients are gone, so no producer is left: drain and close every capture file.
  for (auto& entry : captures_) entry.second.dump->Stop();
  captures_.clear();
  hubs_.clear();
  hub_contexts_.clear();
  for (auto& [name, ctx] : contexts_) ctx.thread->Stop();
  contexts_.clear();
  closed_ = true;
}

}  // namespace netplane::core
